"""Job scripts: golden files per scheduler and option set, scripts/ agreeing with the templates,
and what a rendered script does when a scheduler runs it (with fake scheduler commands)."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from taskflow.errors import UsageError
from taskflow.schedulers import SCHEDULERS, ScriptSpec, format_walltime, parse_memory, safe_job_name

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("TASKFLOW_UPDATE_GOLDEN") == "1"

PROJECT = "/shared/project"
CASES = {
    "default": ScriptSpec(),
    "submit_all": ScriptSpec(name="taskflow-analysis", python="/opt/venv/bin/python3",
                             log_dir=f"{PROJECT}/analysis.taskflow/jobs/logs",
                             arguments=(f"{PROJECT}/analysis.py", "--store", f"{PROJECT}/analysis.taskflow"),
                             walltime=4 * 3600, memory=8 * 1024, queue="long"),
    "submit_time": ScriptSpec(name="taskflow-analysis", python="/opt/venv/bin/python3",
                              log_dir=f"{PROJECT}/analysis.taskflow/jobs/logs",
                              arguments=(f"{PROJECT}/analysis.py", "--store", f"{PROJECT}/analysis.taskflow"),
                              walltime=90 * 60),
    "submit_mem_queue": ScriptSpec(name="taskflow-analysis", python="/opt/my env/bin/python",
                                   log_dir=f"{PROJECT}/analysis.taskflow/jobs/logs",
                                   arguments=(f"{PROJECT}/my analysis.py", "--store", f"{PROJECT}/a.taskflow"),
                                   memory=1536, queue="short"),
    # Two resource classes of one taskfile, as `taskflow submit` writes them: each worker is told its class.
    "class_small": ScriptSpec(name="taskflow-analysis", python="/opt/venv/bin/python3",
                              log_dir=f"{PROJECT}/analysis.taskflow/jobs/logs",
                              arguments=(f"{PROJECT}/analysis.py", "--store", f"{PROJECT}/analysis.taskflow",
                                         "--mem", "2G"),
                              walltime=10 * 60, memory=2048),
    "class_big": ScriptSpec(name="taskflow-analysis", python="/opt/venv/bin/python3",
                            log_dir=f"{PROJECT}/analysis.taskflow/jobs/logs",
                            arguments=(f"{PROJECT}/analysis.py", "--store", f"{PROJECT}/analysis.taskflow",
                                       "--cpus", "4", "--mem", "16G", "--gpus", "1"),
                            walltime=2 * 3600, memory=16 * 1024, cpus=4, gpus=1),
}


def golden_path(scheduler, case: str) -> Path:
    return GOLDEN / scheduler.name / f"{case}{scheduler.suffix}"


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_rendered_script_matches_golden_file(name, case):
    scheduler = SCHEDULERS[name]
    text = scheduler.render(CASES[case])
    path = golden_path(scheduler, case)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with TASKFLOW_UPDATE_GOLDEN=1 to write it"
    assert text == path.read_text(), f"{path} differs (TASKFLOW_UPDATE_GOLDEN=1 rewrites it after a wanted change)"


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_scripts_folder_agrees_with_templates(name):
    scheduler = SCHEDULERS[name]
    path = ROOT / scheduler.script
    assert path.read_text() == scheduler.render(ScriptSpec()), (
        f"{scheduler.script} differs from its template: run python3 scripts/update_job_scripts.py")
    assert os.access(path, os.X_OK)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_rendered_script_is_valid_bash(name, case):
    text = SCHEDULERS[name].render(CASES[case])
    proc = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_class_directives():
    big = CASES["class_big"]
    expected = {"slurm": ["#SBATCH --time=02:00:00", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=16G",
                          "#SBATCH --gres=gpu:1"],
                # h_vmem counts per slot: 16G over 4 slots
                "sge": ["#$ -l h_rt=02:00:00", "#$ -pe smp 4", "#$ -l h_vmem=4G", "#$ -l gpu=1"],
                "pbs": ["#PBS -l walltime=02:00:00", "#PBS -l ncpus=4", "#PBS -l mem=16gb", "#PBS -l ngpus=1"]}
    for name, lines in expected.items():
        assert SCHEDULERS[name].resource_lines(big) == lines
        assert "--cpus 4 --mem 16G --gpus 1" in SCHEDULERS[name].render(big)
    one_cpu = ScriptSpec(cpus=1, gpus=0, memory=1000)  # one cpu and no GPU are every scheduler's default
    assert SCHEDULERS["sge"].resource_lines(one_cpu) == ["#$ -l h_vmem=1000M"]
    assert SCHEDULERS["slurm"].resource_lines(ScriptSpec(cpus=3, memory=1000)) == [
        "#SBATCH --cpus-per-task=3", "#SBATCH --mem=1000M"]
    assert SCHEDULERS["sge"].resource_lines(ScriptSpec(cpus=3, memory=1000)) == ["#$ -pe smp 3", "#$ -l h_vmem=334M"]


def test_directives():
    spec = CASES["submit_all"]
    sge, slurm, pbs = (SCHEDULERS[n].render(spec) for n in ("sge", "slurm", "pbs"))
    for line in ("#$ -l h_rt=04:00:00", "#$ -l h_vmem=8G", "#$ -q long", "#$ -V", "#$ -cwd", "#$ -j y",
                 "#$ -S /bin/bash", f"#$ -o {PROJECT}/analysis.taskflow/jobs/logs/taskflow-$JOB_ID.$TASK_ID.log"):
        assert line in sge.splitlines()
    for line in ("#SBATCH --time=04:00:00", "#SBATCH --mem=8G", "#SBATCH --partition=long",
                 f"#SBATCH --output={PROJECT}/analysis.taskflow/jobs/logs/taskflow-%A.%a.log"):
        assert line in slurm.splitlines()
    for line in ("#PBS -l walltime=04:00:00", "#PBS -l mem=8gb", "#PBS -q long", "#PBS -V", "#PBS -N taskflow-analys"):
        assert line in pbs.splitlines()
    for text in (sge, slurm, pbs):
        assert "python=${TASKFLOW_PYTHON:-/opt/venv/bin/python3}" in text
        assert f"[ $# -gt 0 ] || set -- {PROJECT}/analysis.py --store {PROJECT}/analysis.taskflow" in text
        assert "Walltime, memory and queue per worker, for example" not in text
    plain = SCHEDULERS["sge"].render(ScriptSpec())
    assert "##$ -l h_rt=04:00:00" in plain and "|| set --" not in plain


def test_units():
    assert format_walltime(90) == "00:01:30" and format_walltime(4 * 3600) == "04:00:00"
    assert format_walltime(50 * 3600 + 0.5) == "50:00:01"
    assert parse_memory("8G") == 8192 and parse_memory("8gb") == 8192 and parse_memory("512M") == 512
    assert parse_memory("1.5G") == 1536 and parse_memory("2048") == 2048 and parse_memory("1T") == 1024 ** 2
    assert parse_memory("1GiB") == 1024
    for bad in ("lots", "8X", "", "0"):
        with pytest.raises(UsageError):
            parse_memory(bad)
    assert safe_job_name("taskflow-my analysis/v2") == "taskflow-my_analysis_v2"
    assert safe_job_name("2024-run") == "tf-2024-run"


# -- running the rendered scripts as a scheduler would ----------------------------------------

FAKE_PYTHON = """#!/bin/sh
# Stands in for python: records how the worker would be started.
printf '%s\\n' "$@" > "$FAKE_OUT"
"""


@pytest.fixture
def fake(tmp_path):
    """A folder with a fake python and room for fake scheduler commands."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    py = bin_dir / "python-fake"
    py.write_text(FAKE_PYTHON)
    py.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()

    class Fake:
        folder = tmp_path

        def command(self, name: str, output: str, expect_args: str | None = None) -> None:
            check = ""
            if expect_args is not None:
                check = f'[ "$*" = {shlex.quote(expect_args)} ] || {{ echo "unexpected args: $*" >&2; exit 9; }}\n'
            path = bin_dir / name
            path.write_text(f"#!/bin/sh\n{check}cat <<'EOF'\n{output}\nEOF\n")
            path.chmod(0o755)

        def run(self, scheduler: str, env: dict, *args: str, spec: ScriptSpec = ScriptSpec()):
            script = tmp_path / f"job{SCHEDULERS[scheduler].suffix}"
            script.write_text(SCHEDULERS[scheduler].render(spec))
            out = tmp_path / "worker-args"
            if out.exists():
                out.unlink()
            full = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "FAKE_OUT": str(out),
                    "TASKFLOW_PYTHON": str(py), **env}
            proc = subprocess.run(["bash", str(script), *args], cwd=work, env=full, capture_output=True, text=True)
            argv = out.read_text().splitlines() if out.exists() else None
            return proc, argv

    return Fake()


def test_sge_script_takes_h_rt_as_max_time(fake):
    fake.command("qstat", "job_number:                 7\nhard resource_list:         h_vmem=2G,h_rt=5400",
                 expect_args="-j 7")
    proc, argv = fake.run("sge", {"JOB_ID": "7", "SGE_TASK_ID": "2"}, "taskfile.py", "--lease", "60")
    assert proc.returncode == 0, proc.stderr
    assert argv == ["-m", "taskflow", "execute", "--max-time", "4860", "taskfile.py", "--lease", "60"]
    assert "SGE job 7 task 2" in proc.stderr and "walltime 5400, --max-time 4860s" in proc.stderr


def test_slurm_script_asks_for_the_time_left_of_its_own_array_task(fake):
    fake.command("squeue", "1:30:00", expect_args="-h -j 9_3 -o %L")
    proc, argv = fake.run("slurm", {"SLURM_ARRAY_JOB_ID": "9", "SLURM_ARRAY_TASK_ID": "3", "SLURM_JOB_ID": "12"},
                          "taskfile.py")
    assert proc.returncode == 0, proc.stderr
    assert argv == ["-m", "taskflow", "execute", "--max-time", "4860", "taskfile.py"]


def test_pbs_script_reads_walltime_logs_per_array_task_and_takes_taskfile_from_env(fake):
    fake.command("qstat", "Job Id: 123[4].server\n    Resource_List.walltime = 01:30:00\n    queue = workq",
                 expect_args="-f 123[4].server")
    work = fake.folder / "work"
    proc, argv = fake.run("pbs", {"PBS_JOBID": "123[4].server", "PBS_ARRAY_INDEX": "4",
                                  "PBS_O_WORKDIR": str(work), "TASKFLOW_TASKFILE": "taskfile.py"})
    assert proc.returncode == 0, proc.stderr
    assert argv == ["-m", "taskflow", "execute", "--max-time", "4860", "taskfile.py"]
    log = (work / "taskflow-123.4.log").read_text()
    assert "PBS job 123 task 4" in log and "--max-time 4860s" in log
    # Torque: PBS_ARRAYID and PBS_WALLTIME in seconds
    proc, argv = fake.run("pbs", {"PBS_JOBID": "77[2].torque", "PBS_ARRAYID": "2", "PBS_WALLTIME": "600",
                                  "PBS_O_WORKDIR": str(work)}, "taskfile.py")
    assert argv == ["-m", "taskflow", "execute", "--max-time", "540", "taskfile.py"]
    assert (work / "taskflow-77.2.log").exists()


@pytest.mark.parametrize("walltime, margin, expected", [
    ("UNLIMITED", None, None),
    ("", None, None),
    ("1-00:00:00", None, "77760"),     # a tenth of a day
    ("100", None, "50"),                # a minute's margin would be more than half
    ("10:00", None, "540"),             # at least a minute
    ("2:00:00", "15:00", "6300"),       # TASKFLOW_TIME_MARGIN
    ("2:00:00", "7200", "0"),
])
def test_margin(fake, walltime, margin, expected):
    fake.command("squeue", walltime)
    env = {"SLURM_JOB_ID": "5"}
    if margin is not None:
        env["TASKFLOW_TIME_MARGIN"] = margin
    proc, argv = fake.run("slurm", env, "t.py")
    assert proc.returncode == 0, proc.stderr
    assert argv == (["-m", "taskflow", "execute", "t.py"] if expected is None
                    else ["-m", "taskflow", "execute", "--max-time", expected, "t.py"])


def test_submitted_script_falls_back_to_its_own_walltime_and_arguments(fake):
    # no qstat on PATH: the scheduler cannot be asked
    spec = ScriptSpec(arguments=("/data/tf.py", "--store", "/data/tf.taskflow"), walltime=3600)
    proc, argv = fake.run("sge", {"JOB_ID": "3", "SGE_TASK_ID": "1"}, spec=spec)
    assert proc.returncode == 0, proc.stderr
    assert argv == ["-m", "taskflow", "execute", "--max-time", "3240", "/data/tf.py", "--store", "/data/tf.taskflow"]
    # arguments given to the script win over the built-in ones
    proc, argv = fake.run("sge", {"JOB_ID": "3", "SGE_TASK_ID": "1"}, "other.py", spec=spec)
    assert argv == ["-m", "taskflow", "execute", "--max-time", "3240", "other.py"]


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_script_without_taskfile_is_a_usage_error(fake, name):
    proc, argv = fake.run(name, {"PBS_O_WORKDIR": str(fake.folder / "work")})
    assert proc.returncode == 2 and argv is None
    text = proc.stderr + "".join(p.read_text() for p in (fake.folder / "work").glob("*.log"))
    assert "no taskfile" in text


def test_default_python_is_the_one_on_path(fake):
    # Without TASKFLOW_PYTHON the script runs python3 from the PATH the job inherited.
    bin_dir = fake.folder / "bin"
    (bin_dir / "python3").symlink_to(bin_dir / "python-fake")
    script = fake.folder / "job.sbatch"
    script.write_text(SCHEDULERS["slurm"].render())
    out = fake.folder / "args"
    proc = subprocess.run(["bash", str(script), "t.py"], env={"PATH": f"{bin_dir}:/usr/bin:/bin",
                                                             "FAKE_OUT": str(out), "SLURM_JOB_ID": "1"},
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().split() == ["-m", "taskflow", "execute", "t.py"]


@pytest.mark.parametrize("name, variable", [("sge", "SGE_O_PATH"), ("pbs", "PBS_O_PATH")])
def test_submitting_path_comes_first_again_after_a_login_shell(fake, name, variable):
    # SGE and PBS start jobs in login shells whose profiles may reset PATH; the submitting
    # shell's PATH, which they keep in SGE_O_PATH/PBS_O_PATH, must decide which python3 runs.
    submitter = fake.folder / "venv-bin"
    submitter.mkdir()
    (submitter / "python3").symlink_to(fake.folder / "bin" / "python-fake")
    script = fake.folder / "job"
    script.write_text(SCHEDULERS[name].render())
    out = fake.folder / "args"
    work = fake.folder / "work"
    env = {"PATH": "/usr/bin:/bin", variable: f"{submitter}:/usr/bin:/bin", "FAKE_OUT": str(out),
           "PBS_O_WORKDIR": str(work), "TASKFLOW_TASKFILE": "t.py"}
    proc = subprocess.run(["bash", str(script)], cwd=work, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().split() == ["-m", "taskflow", "execute", "t.py"]


def test_package_ships_the_templates():
    # Package data: rendering must work from an installed copy, not only from the repository.
    from importlib import resources
    names = {p.name for p in resources.files("taskflow.schedulers").joinpath("templates").iterdir()}
    assert {"sge.sge", "slurm.sbatch", "pbs.pbs", "worker.sh"} <= names
    assert 'templates/*' in (ROOT / "pyproject.toml").read_text()
    assert sys.modules.get("taskflow.schedulers") is not None
