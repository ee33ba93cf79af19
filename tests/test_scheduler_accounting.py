"""What schedulers/answers.py and accounting.py make of sacct, scontrol and qacct answers, as those tools print
them (the real ones are asked in tests/test_cluster_integration.py)."""
from __future__ import annotations

from taskflow.schedulers import accounting, answers
from taskflow.worker import died


def test_sacct_names_the_step_killed_for_memory_and_the_peak():
    out = ("77_3|OUT_OF_MEMORY|0:125|\n"
           "77_3.batch|OUT_OF_MEMORY|0:125|2100M\n"
           "77_3.extern|COMPLETED|0:0|1M\n")
    assert answers.slurm_sacct(out) == ("OUT_OF_MEMORY", "exit code 0:125, MaxRSS 2100M")


def test_sacct_timeout_and_cancelled_by():
    assert answers.slurm_sacct("9_1|TIMEOUT|0:0|\n9_1.batch|CANCELLED|0:15|12K\n")[0] == "TIMEOUT"
    assert answers.slurm_sacct("9_1|CANCELLED by 1000|0:0|\n")[0] == "CANCELLED"
    assert answers.slurm_sacct("") is None


def test_scontrol_show_job_where_accounting_is_off():
    out = "JobId=12 ArrayJobId=11 ArrayTaskId=2 JobName=x JobState=OUT_OF_MEMORY Reason=OutOfMemory ExitCode=0:125\n"
    assert answers.slurm_scontrol(out) == ("OUT_OF_MEMORY", "exit code 0:125, reason OutOfMemory")
    assert answers.slurm_scontrol("slurm_load_jobs error: Invalid job id specified") is None


def test_qacct_of_a_task_killed_and_its_peak_memory():
    out = ("==============================================================\n"
           "qname        all.q\njobnumber    41\ntaskid       2\nfailed       0\n"
           "exit_status  137                 (Killed)\nmaxvmem      2.010GB\n")
    assert answers.sge_qacct(out) == ("KILLED", "exit_status 137                 (Killed), maxvmem 2.010GB")
    assert answers.sge_qacct("error: job id 41 not found") is None


def test_why_it_ended_in_words_asks_again_while_the_job_is_ending(monkeypatch):
    answers = iter([("COMPLETING", "exit code 0:0"), ("TIMEOUT", "exit code 0:0")])
    monkeypatch.setattr(accounting, "ask", lambda scheduler, job, task: next(answers))
    assert accounting.why_it_ended("slurm", "5", "1", pause=0) == \
        "slurm job 5.1: TIMEOUT (killed at its walltime), exit code 0:0"
    assert accounting.why_it_ended("pbs", "5", "1") is None


def _asked(monkeypatch, answers: dict[str, str | None]) -> list[list[str]]:
    """The commands accounting asks, each answered from `answers` by its program (None: not there)."""
    asked: list[list[str]] = []

    def run(argv):
        asked.append(argv)
        return answers.get(argv[0])

    monkeypatch.setattr(accounting, "_run", run)
    return asked


def test_each_scheduler_says_how_to_ask_its_accounting(monkeypatch):
    """The commands come from the scheduler modules (found through the registry), in their order."""
    asked = _asked(monkeypatch, {"sacct": "", "scontrol": "JobId=6 JobState=TIMEOUT Reason=TimeLimit ExitCode=0:0\n"})
    assert accounting.why_it_ended("slurm", "5", "1", pause=0) == \
        "slurm job 5.1: TIMEOUT (killed at its walltime), exit code 0:0, reason TimeLimit"
    assert asked == [["sacct", "-n", "-P", "-j", "5_1", "-o", "JobID,State,ExitCode,MaxRSS"],
                     ["scontrol", "show", "job", "-o", "5_1"]]
    asked = _asked(monkeypatch, {"qacct": "qname all.q\nfailed 0\nexit_status 0\n"})
    assert accounting.why_it_ended("sge", "41", "2", pause=0) == "sge job 41.2: EXITED, exit_status 0"
    assert asked == [["qacct", "-j", "41", "-t", "2"]]


def test_only_sge_is_asked_again_when_its_accounting_does_not_know_the_task_yet(monkeypatch):
    asked = _asked(monkeypatch, {})
    assert accounting.why_it_ended("sge", "41", "2", tries=3, pause=0) is None
    assert [argv[0] for argv in asked] == ["qacct"] * 3
    asked = _asked(monkeypatch, {})
    assert accounting.why_it_ended("slurm", "5", "1", tries=3, pause=0) is None
    assert [argv[0] for argv in asked] == ["sacct", "scontrol"]


def test_schedulers_without_accounting_and_unknown_ones_are_not_asked(monkeypatch):
    asked = _asked(monkeypatch, {})
    for name in ("pbs", "condor", "lsf", ""):
        assert accounting.why_it_ended(name, "5", "1", pause=0) is None
    assert asked == []


def test_the_reason_names_the_count():
    assert died.message(3) == "its worker died 3 times while running it: check memory and walltime"
    assert died.message(1).startswith("its worker died once")
