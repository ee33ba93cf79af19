#!/bin/bash
# taskflow workers as an HTCondor cluster of jobs: every job (process) of the cluster runs one worker.
#
# Usage: submit it with the submit description beside it, which names this script as its executable:
#   condor_submit taskfile=taskfile.py workers=20 scripts/condor/taskflow_array.sub
#
# The workers share the work through the store (beside the taskfile unless --store), which
# must be on a filesystem every node sees: the description asks for no file transfer.
# getenv hands the submitting shell's environment (PATH, virtualenv, TASKFLOW_*) to the job,
# so the worker runs the submitting shell's python3; set TASKFLOW_PYTHON to choose another.
# allowed_execute_duration becomes the worker's --max-time, less a margin (see below). Log of
# each job, stdout and stderr joined: taskflow-<cluster>.<process>.log in the log folder;
# HTCondor's own event log of the cluster beside it (taskflow-<cluster>.events.log).
set -u
# The job ad HTCondor writes for the job (_CONDOR_JOB_AD): which cluster and process this is.
ad=${_CONDOR_JOB_AD:-/dev/null}
attribute() { sed -n "s/^$1 = \"\{0,1\}\([^\"]*\)\"\{0,1\}\$/\1/p" "$ad" 2>/dev/null | head -n 1; }
job=$(attribute ClusterId)
job=${job:-0}
task=$(attribute ProcId)
task=${task:-0}
exec >>"{{log_dir}}/taskflow-$job.$task.log" 2>&1
walltime=$(attribute AllowedExecuteDuration)
{{walltime}}
{{worker}}
