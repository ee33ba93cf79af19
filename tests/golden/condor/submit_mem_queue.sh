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
exec >>"/shared/project/analysis.taskflow/jobs/logs/taskflow-$job.$task.log" 2>&1
walltime=$(attribute AllowedExecuteDuration)
# ---- from here on the same for every scheduler -------------------------------------------
python=${TASKFLOW_PYTHON:-'/opt/my env/bin/python'}
# The taskfile and store taskflow submit wrote this script for:
[ $# -gt 0 ] || set -- '/shared/project/my analysis.py' --store /shared/project/a.taskflow
if [ $# -eq 0 ] && [ -n "${TASKFLOW_TASKFILE:-}" ]; then
    set -- "$TASKFLOW_TASKFILE"
fi
if [ $# -eq 0 ]; then
    echo "taskflow: no taskfile: give it as the script's argument or in TASKFLOW_TASKFILE" >&2
    exit 2
fi

# Seconds in [D-]HH:MM:SS, HH:MM:SS, MM:SS or plain seconds; nothing for UNLIMITED and the like.
seconds() {
    local t=$1 days=0 total=0 part
    case $t in *-*) days=${t%%-*}; t=${t#*-} ;; esac
    case $days in ''|*[!0-9]*) return 0 ;; esac
    case $t in ''|*[!0-9:]*) return 0 ;; esac
    local IFS=:
    for part in $t; do
        total=$((total * 60 + 10#${part:-0}))
    done
    echo $((days * 86400 + total))
}

# Take no new task once the time left is down to a margin in which a task can still finish:
# TASKFLOW_TIME_MARGIN, else a tenth of the walltime, at least a minute and at most half.
max_time=
limit=$(seconds "${walltime:-}")
if [ -n "$limit" ] && [ "$limit" -gt 0 ]; then
    margin=$(seconds "${TASKFLOW_TIME_MARGIN:-}")
    if [ -z "$margin" ]; then
        margin=$((limit / 10))
        [ "$margin" -ge 60 ] || margin=60
        [ "$margin" -le $((limit / 2)) ] || margin=$((limit / 2))
    fi
    max_time=$((limit - margin))
    [ "$max_time" -ge 0 ] || max_time=0
    # The whole time left, for the worker to judge which tasks can still finish in it.
    export TASKFLOW_WALLTIME_LEFT=$limit
else
    unset TASKFLOW_WALLTIME_LEFT
fi

echo "taskflow: HTCondor job $job task $task on $(hostname) at $(date '+%Y-%m-%d %H:%M:%S');" \
     "python $python; walltime ${walltime:-none}${max_time:+, --max-time ${max_time}s}" >&2
if [ -n "$max_time" ]; then
    exec "$python" -m taskflow execute --max-time "$max_time" "$@"
fi
exec "$python" -m taskflow execute "$@"
