"""What a batch scheduler tells the job it runs: which job and array task this is, and what it
was given (cpus, memory, GPUs, walltime), read from the job's environment variables.

One function per scheduler reads that scheduler's variables; `detect` asks each in turn.
Names and meanings are those of the schedulers' own documentation:

- Slurm, sbatch(1) "OUTPUT ENVIRONMENT VARIABLES": SLURM_JOB_ID, SLURM_ARRAY_JOB_ID,
  SLURM_ARRAY_TASK_ID/MIN/MAX/STEP/COUNT, SLURM_CPUS_ON_NODE (of the batch step),
  SLURM_CPUS_PER_TASK (only with --cpus-per-task), SLURM_MEM_PER_NODE (--mem) and
  SLURM_MEM_PER_CPU (--mem-per-cpu) in megabytes, SLURM_GPUS_ON_NODE, SLURM_JOB_START_TIME and
  SLURM_JOB_END_TIME (Unix times; newer Slurm releases only, not 22.05).
- Grid Engine, qsub(1) "ENVIRONMENT VARIABLES": JOB_ID, SGE_TASK_ID ("undefined" outside an
  array job), SGE_TASK_FIRST/LAST/STEPSIZE, NSLOTS. No variable carries h_rt or h_vmem; the
  shepherd writes the job's limits (h_vmem among them, h_rt not) to the `config` file in
  SGE_JOB_SPOOL_DIR, which is where the memory here comes from.
- PBS Pro / OpenPBS: PBS_JOBID (`123[7].server` for an array task), PBS_ARRAY_INDEX, NCPUS.
  Torque: PBS_JOBID, PBS_ARRAYID, PBS_NP (processors of the job), PBS_NUM_PPN (per node),
  PBS_WALLTIME (the walltime requested, in seconds). Neither exports the memory requested.
- HTCondor, "Services for Running Jobs": BATCH_SYSTEM=HTCondor, _CONDOR_JOB_AD (a file holding the
  job's ClassAd: ClusterId, ProcId, RequestCpus, RequestMemory in megabytes, RequestGPUs,
  AllowedExecuteDuration in seconds, JobCurrentStartDate, TotalSubmitProcs), _CONDOR_MACHINE_AD
  (the slot's ad: Cpus and Memory provisioned), OMP_NUM_THREADS and the like (the cores
  provisioned). HTCondor has no array: a cluster's jobs are its processes 0 to N-1.
- Any scheduler: CUDA_VISIBLE_DEVICES, the GPUs this process may use.
"""
from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

_MIB = 1024 * 1024


@dataclass(frozen=True)
class JobEnvironment:
    """One job's view of its scheduler; None in a field the scheduler does not tell."""

    scheduler: str | None = None      # "slurm", "sge", "pbs", "condor"; None outside a scheduler
    job_id: str | None = None         # this job (a Slurm array task has its own)
    array_job_id: str | None = None   # the array this job is a task of
    array_task: str | None = None     # this task's index, as the scheduler wrote it
    array_first: int | None = None
    array_last: int | None = None
    array_step: int | None = None
    array_count: int | None = None    # tasks in the array, where the scheduler says
    cpus: int | None = None           # allocated to this job on this node
    memory: int | None = None         # bytes
    gpus: tuple[str, ...] | None = None  # device ids this process may use
    walltime: float | None = None     # the job's limit, seconds
    start_time: float | None = None   # Unix time the job started
    end_time: float | None = None     # Unix time the scheduler ends it
    worker: str | None = None         # the id claims carry: `<scheduler>:<job>.<task>`

    @property
    def array_index(self) -> int | None:
        return _int(self.array_task)

    @property
    def array_size(self) -> int | None:
        """Tasks in the array: counted by the scheduler, else from its first, last and step."""
        if self.array_count is not None:
            return self.array_count
        if self.array_first is None or self.array_last is None or self.array_last < self.array_first:
            return None
        return (self.array_last - self.array_first) // (self.array_step or 1) + 1

    @property
    def array_rank(self) -> int | None:
        """This task's place in its array, 0 to array_size - 1."""
        index, size = self.array_index, self.array_size
        if index is None or size is None or self.array_first is None or index < self.array_first:
            return None
        rank = (index - self.array_first) // (self.array_step or 1)
        return rank if rank < size else None  # an index list with gaps (Slurm's 1,5,9) has no step to go by

    def time_left(self, now: float | None = None) -> float | None:
        """Seconds until the scheduler ends this job, where it tells the end or start and limit."""
        end = self.end_time
        if end is None and self.start_time is not None and self.walltime is not None:
            end = self.start_time + self.walltime
        if end is None:
            return None
        return end - (time.time() if now is None else now)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _positive(text: str | None) -> int | None:
    value = _int(text)
    return value if value is not None and value > 0 else None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def visible_devices(environ: Mapping[str, str]) -> tuple[str, ...] | None:
    """The GPU ids in CUDA_VISIBLE_DEVICES (`0,1`, `2, 3`, `GPU-<uuid>`); None when it is unset, empty
    for none visible: an empty value, or Slurm's "NoDevFiles" (a GPU gres without device files).

    The one reader of that variable, for the schedulers' allocation here and for the machine's GPUs
    (capacity.machine_gpus). "NoDevFiles" names no device wherever it stands, so it is dropped item by
    item, as are empty items.
    """
    text = environ.get("CUDA_VISIBLE_DEVICES")
    if text is None:
        return None
    return tuple(d for d in (item.strip() for item in text.split(",")) if d and d != "NoDevFiles")


def _label(scheduler: str, job: str | None, task: str | None) -> str | None:
    return f"{scheduler}:{job or '?'}.{task}" if task else None


_SGE_MEMORY = re.compile(r"(\d+(?:\.\d+)?)([kKmMgGtT]?)")
_SGE_UNITS = {"": 1, "k": 1000, "K": 1024, "m": 1000 ** 2, "M": 1024 ** 2, "g": 1000 ** 3, "G": 1024 ** 3,
              "t": 1000 ** 4, "T": 1024 ** 4}


def sge_memory(text: str) -> int | None:
    """Bytes in an SGE memory value (`200M`, `1.5G`, `4g`, `1048576`); None for INFINITY or junk.

    Grid Engine's multipliers (sge_types(5)): k, m, g are powers of 1000, K, M, G of 1024.
    """
    m = _SGE_MEMORY.fullmatch(text.strip())
    if not m:
        return None
    return int(float(m.group(1)) * _SGE_UNITS[m.group(2)]) or None


def _sge_spool_config(environ: Mapping[str, str]) -> dict[str, str]:
    """The `key=value` lines of the job's config file in SGE_JOB_SPOOL_DIR; empty when unreadable."""
    folder = environ.get("SGE_JOB_SPOOL_DIR")
    if not folder:
        return {}
    path = os.path.join(folder, "config")
    values: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.rstrip("\n").partition("=")
                values[key] = value
    except OSError as e:
        log.debug("cannot read %s: %s", path, e)
    return values


def slurm(environ: Mapping[str, str]) -> JobEnvironment | None:
    job = environ.get("SLURM_JOB_ID") or environ.get("SLURM_JOBID")
    task = environ.get("SLURM_ARRAY_TASK_ID") or None
    if not job and not task:
        return None
    array_job = environ.get("SLURM_ARRAY_JOB_ID") or (job if task else None)
    # The worker runs as the batch step, which has every cpu of the job on this node (several
    # tasks' worth with --ntasks); --cpus-per-task alone is the fallback.
    cpus = _positive(environ.get("SLURM_CPUS_ON_NODE")) or _positive(environ.get("SLURM_CPUS_PER_TASK"))
    memory = None
    per_node = _positive(environ.get("SLURM_MEM_PER_NODE"))
    per_cpu = _positive(environ.get("SLURM_MEM_PER_CPU"))
    if per_node is not None:
        memory = per_node * _MIB
    elif per_cpu is not None:
        memory = per_cpu * _MIB * (cpus or 1)
    gpus = visible_devices(environ)
    if gpus is None and _int(environ.get("SLURM_GPUS_ON_NODE")) == 0:
        gpus = ()
    start, end = _float(environ.get("SLURM_JOB_START_TIME")), _float(environ.get("SLURM_JOB_END_TIME"))
    return JobEnvironment(
        scheduler="slurm", job_id=job, array_job_id=array_job, array_task=task,
        array_first=_int(environ.get("SLURM_ARRAY_TASK_MIN")), array_last=_int(environ.get("SLURM_ARRAY_TASK_MAX")),
        array_step=_positive(environ.get("SLURM_ARRAY_TASK_STEP")),
        array_count=_positive(environ.get("SLURM_ARRAY_TASK_COUNT")),
        cpus=cpus, memory=memory, gpus=gpus,
        walltime=end - start if start is not None and end is not None and end > start else None,
        start_time=start, end_time=end,
        worker=_label("slurm", environ.get("SLURM_ARRAY_JOB_ID") or job, task))


def sge(environ: Mapping[str, str]) -> JobEnvironment | None:
    task = environ.get("SGE_TASK_ID")
    if task == "undefined":
        task = None
    job = environ.get("JOB_ID")
    # JOB_ID alone is too common a name to mean Grid Engine: ask for one of its own variables too.
    if not task and not (job and (environ.get("SGE_JOB_SPOOL_DIR") or environ.get("SGE_TASK_ID"))):
        return None
    config = _sge_spool_config(environ)
    slots = _positive(environ.get("NSLOTS"))
    memory = None
    per_slot = sge_memory(config.get("h_vmem", ""))
    if per_slot is not None:  # h_vmem counts per slot; the limit of this host's share is per slot times its slots
        memory = per_slot * (_positive(config.get("host_slots")) or slots or 1)
    in_array = task is not None

    def number(name: str) -> int | None:
        return _int(environ.get(name)) if in_array else None  # "undefined" outside an array job

    return JobEnvironment(
        scheduler="sge", job_id=job, array_job_id=job if in_array else None, array_task=task or None,
        array_first=number("SGE_TASK_FIRST"), array_last=number("SGE_TASK_LAST"),
        array_step=_positive(environ.get("SGE_TASK_STEPSIZE")) if in_array else None,
        cpus=slots, memory=memory, gpus=visible_devices(environ),
        worker=_label("sge", job, task))


def pbs(environ: Mapping[str, str]) -> JobEnvironment | None:
    job = environ.get("PBS_JOBID")
    task = environ.get("PBS_ARRAYID") or environ.get("PBS_ARRAY_INDEX") or None  # Torque, PBS Pro
    if not job and not task:
        return None
    # An array task's PBS_JOBID is `123[7].server`; the array is `123[].server`.
    array_job = re.sub(r"\[\d+\]", "[]", job, count=1) if job and task else None
    cpus = (_positive(environ.get("NCPUS")) or _positive(environ.get("PBS_NUM_PPN"))
            or _positive(environ.get("PBS_NP")))
    return JobEnvironment(
        scheduler="pbs", job_id=job, array_job_id=array_job, array_task=task,
        cpus=cpus, gpus=visible_devices(environ), walltime=_float(environ.get("PBS_WALLTIME")),
        worker=_label("pbs", job, task))


def _classad(path: str | None) -> dict[str, str]:
    """The `Name = value` lines of a ClassAd file (quotes taken off strings); empty when unreadable."""
    values: dict[str, str] = {}
    if not path:
        return values
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                name, sep, value = line.strip().partition(" = ")
                if sep:
                    value = value.strip()
                    values[name] = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    except OSError as e:
        log.debug("cannot read %s: %s", path, e)
    return values


def condor(environ: Mapping[str, str]) -> JobEnvironment | None:
    if environ.get("BATCH_SYSTEM") != "HTCondor" and not environ.get("_CONDOR_JOB_AD"):
        return None
    job = _classad(environ.get("_CONDOR_JOB_AD"))
    machine = _classad(environ.get("_CONDOR_MACHINE_AD"))
    cluster, process = job.get("ClusterId"), job.get("ProcId")
    count = _positive(job.get("TotalSubmitProcs"))
    # What the slot was given (it may be more than asked for), else what the job asked for.
    cpus = (_positive(machine.get("Cpus")) or _positive(environ.get("OMP_NUM_THREADS"))
            or _positive(job.get("RequestCpus")))
    megabytes = _positive(machine.get("Memory")) or _positive(job.get("RequestMemory"))
    start = _float(job.get("JobCurrentStartDate"))
    walltime = _float(job.get("AllowedExecuteDuration"))
    return JobEnvironment(
        scheduler="condor", job_id=f"{cluster}.{process}" if cluster and process else cluster,
        array_job_id=cluster if process is not None else None, array_task=process,
        array_first=0 if process is not None else None, array_last=count - 1 if count else None,
        array_step=1 if process is not None else None, array_count=count,
        cpus=cpus, memory=megabytes * _MIB if megabytes else None, gpus=visible_devices(environ),
        walltime=walltime if walltime and walltime > 0 else None, start_time=start,
        worker=_label("condor", cluster, process))


# In this order: the first that finds an array task wins, else the first that finds a job. A job
# submitted from inside another scheduler's job inherits its variables (Slurm and `qsub -V` pass
# the environment on), so an array task is the stronger sign.
READERS: tuple[Callable[[Mapping[str, str]], JobEnvironment | None], ...] = (slurm, sge, pbs, condor)


def detect(environ: Mapping[str, str] | None = None) -> JobEnvironment:
    """What the scheduler running this process tells it; an empty JobEnvironment outside one."""
    environ = os.environ if environ is None else environ
    found = [job for job in (read(environ) for read in READERS) if job is not None]
    for job in found:
        if job.array_task:
            return job
    return found[0] if found else JobEnvironment()


_WORKER = re.compile(r"(?P<scheduler>[a-z]+):(?P<job>.+)\.(?P<task>\d+)")


def parse_worker(worker: str) -> tuple[str, str, str] | None:
    """(scheduler, job number, array task) of an array worker's id; None for host:pid workers."""
    m = _WORKER.fullmatch(worker or "")
    if not m:
        return None
    number = re.match(r"\d+", m.group("job"))
    if not number:
        return None
    return m.group("scheduler"), number.group(0), m.group("task")


def slurm_duration(text: str) -> float | None:
    """Seconds in Slurm's `[D-]HH:MM:SS`, `MM:SS` or `MM`; None for UNLIMITED, INVALID and the like."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        return None
    days = int(m.group(1) or 0)
    parts = [int(p) for p in m.group(2, 3, 4) if p is not None]
    if m.group(1) is not None:  # D-HH[:MM[:SS]]
        parts += [0] * (3 - len(parts))
        hours, minutes, seconds = parts
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    elif len(parts) == 2:
        hours, (minutes, seconds) = 0, parts
    else:
        hours, minutes, seconds = 0, parts[0], 0
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def time_left(job: JobEnvironment, now: float | None = None) -> float | None:
    """Seconds until the scheduler ends this job: from its environment where it tells the end (or
    start and limit), else for Slurm from `squeue -o %L`; None where neither tells.

    Grid Engine gives a running job neither its h_rt nor its start time in the environment, and
    `qstat -j` shows h_rt but no start time: there the job script reads h_rt when the job starts
    and hands it to the worker as `--max-time`.
    """
    left = job.time_left(now)
    if left is not None:
        return left
    if job.walltime is not None:  # PBS tells the limit but not the start: the worker starts with the job
        return job.walltime
    if job.scheduler != "slurm" or not job.job_id:
        return None
    import subprocess  # only inside a Slurm job that does not tell its end

    try:
        proc = subprocess.run(["squeue", "-h", "-j", job.job_id, "-o", "%L"], capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        log.debug("cannot ask squeue for the time left: %s", e)
        return None
    lines = proc.stdout.split()
    return slurm_duration(lines[0]) if proc.returncode == 0 and lines else None
