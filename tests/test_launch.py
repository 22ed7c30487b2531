"""Tests for companion.train.launch: one job per unfinished run (serial, submitit local, SLURM), run
states, and the `companion sweep --executor/--status` command line. CPU only; no SLURM needed."""

import json
import os
import signal
import stat
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import submitit

from companion.store import locks, results
from companion.train import launch, launch_options
from companion.cli import main
from companion.config import TrainConfig

TINY = dict(dataset="synthetic", subset=128, val_size=64, batch_size=64, device="cpu", epochs=1,
            alpha=16, model="3-fc")


def tiny(**changes) -> TrainConfig:
    return TrainConfig(**{**TINY, **changes})


def fake_run(root, config, *files) -> None:
    """A run directory holding ``files`` (empty) besides its config, as training leaves it."""
    path = root / config.run_id()
    path.mkdir(parents=True)
    (path / results.CONFIG).write_text(json.dumps(config.to_dict()))
    for name in files:
        (path / name).write_text("{}")


def kill_after_first_checkpoint(run_dir, timeout_s: float = 120.0) -> dict:
    """SIGKILL the process training ``run_dir`` (the pid in its lock) once a checkpoint exists."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        holder = locks.lock_holder(run_dir)
        if holder and holder.get("pid") and (run_dir / results.CHECKPOINT).is_file():
            os.kill(int(holder["pid"]), signal.SIGKILL)
            return holder
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint of {run_dir} within {timeout_s} s")


@pytest.mark.slow
def test_local_jobs_run_killed_one_resumes_rerun_trains_nothing(tmp_path):
    """Two local jobs at once; one is SIGKILLed after its first epoch's checkpoint and reported
    as failed; the rerun resumes only that one from its checkpoint; a third call trains nothing."""
    quick, killed = tiny(seed=0), tiny(seed=1, epochs=4)
    root = tmp_path / "runs"
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(launch.train_missing, [quick, killed], root, executor="local",
                            array_parallelism=2, progress=False)
        kill_after_first_checkpoint(root / killed.run_id())
        with pytest.raises(launch.LaunchError, match=f"(?s)1 run\\(s\\) failed.*{killed.run_id()}.*without a result"):
            first.result(timeout=300)
    view = launch.status([quick, killed], root).set_index("run_id")
    assert view.loc[quick.run_id(), "state"] == "finished"
    assert view.loc[killed.run_id(), "state"] == "failed"  # the job's failure is recorded
    assert not (root / killed.run_id() / results.SUMMARY).exists()
    quick_mtime = (root / quick.run_id() / results.SUMMARY).stat().st_mtime_ns

    report = launch.train_missing([quick, killed], root, executor="local", progress=False)
    assert list(report.submitted) == [killed.run_id()] and report.trained == [killed.run_id()]
    assert report.already_finished == [quick.run_id()] and not report.failed
    summary = results.find_run(killed, root).summary
    assert len(summary["resumed_at"]) == 1 and 1 <= summary["resumed_at"][0] < 4  # resumed, not restarted
    assert len(results.load_run(root / killed.run_id()).metrics) == 4
    assert set(launch.status([quick, killed], root)["state"]) == {"finished"}

    again = launch.train_missing([quick, killed], root, executor="local", progress=False)
    assert again.submitted == {} and again.trained == [] and len(again.already_finished) == 2
    assert (root / quick.run_id() / results.SUMMARY).stat().st_mtime_ns == quick_mtime


def test_status_states(tmp_path, monkeypatch):
    configs = [tiny(seed=s) for s in range(5)]
    finished, running, failed, interrupted, missing = configs
    fake_run(tmp_path, finished, results.SUMMARY, results.CHECKPOINT)
    fake_run(tmp_path, running, results.CHECKPOINT)
    fake_run(tmp_path, failed, results.CHECKPOINT)
    fake_run(tmp_path, interrupted, results.CHECKPOINT)
    launch.record_error(tmp_path, failed.run_id(), "RuntimeError: training diverged")
    holder = {"host": "node7", "pid": 123, "started": 0.0, "heartbeat": 0.0}
    monkeypatch.setattr(locks, "lock_holder", lambda d: holder if d.name == running.run_id() else None,
                        raising=False)
    view = launch.status(configs + [missing], tmp_path)
    assert list(view["state"]) == ["finished", "running", "failed", "interrupted", "missing"]
    assert view["holder"].iloc[1].startswith("pid 123 on node7 since 19")
    assert view["error"].iloc[2] == "RuntimeError: training diverged"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*(c.run_id() for c in configs[:4]), ".launch"])


def test_held_runs_are_skipped_and_reported(tmp_path, monkeypatch, capsys):
    held, free = tiny(seed=0), tiny(seed=1)
    monkeypatch.setattr(locks, "lock_holder",
                        lambda d: {"host": "elsewhere", "pid": 9} if d.name == held.run_id() else None,
                        raising=False)
    report = launch.train_missing([held, free], tmp_path, progress=False)
    assert report.locked == {held.run_id(): "pid 9 on elsewhere"} and report.trained == [free.run_id()]
    assert not (tmp_path / held.run_id()).exists()
    assert held.run_id() in capsys.readouterr().err

    class RunLocked(RuntimeError):  # the lock taken between the check and the job's start
        pass

    monkeypatch.setattr(locks, "RunLocked", RunLocked, raising=False)
    monkeypatch.setattr(locks, "lock_holder", lambda d: None, raising=False)

    def locked_train(config, **kwargs):
        raise RunLocked("held")

    monkeypatch.setattr("companion.train.loop.train", locked_train)
    report = launch.train_missing([held, free], tmp_path, progress=False)
    assert list(report.locked) == [held.run_id()] and report.already_finished == [free.run_id()]


def test_job_checkpoint_resubmits_itself():
    job = launch.TrainJob("runs", threads=2)
    config = tiny()
    delayed = job.checkpoint(config)
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert delayed.function is job and delayed.args == (config,)


@pytest.mark.parametrize("text, minutes", [
    (90, 90), ("90", 90), ("1:30", 2), ("02:00:00", 120), ("1-00", 1440), ("2-12:30", 3630), ("1-0:0:1", 1441),
])
def test_parse_time(text, minutes):
    assert launch_options.parse_time(text) == minutes


@pytest.mark.parametrize("executor, options, message", [
    ("pbs", {}, "unknown executor 'pbs'; accepted: serial, local, slurm"),
    ("local", {"gpus": 1}, "unknown launch option.*gpus; accepted: array_parallelism"),
    ("serial", {"array_parallelism": 4}, "array_parallelism need --executor local or slurm"),
    ("local", {"partition": "gpu"}, "partition apply to --executor slurm only"),
    ("local", {"wait": False}, "--no-wait.*needs --executor slurm"),
    ("slurm", {"array_parallelism": 0}, "array_parallelism must be an integer >= 1 or None, got 0"),
    ("slurm", {"gpus_per_job": -1}, "gpus_per_job must be an integer >= 0"),
    ("slurm", {"gpus_per_job": 2}, "gpus_per_job=2: a job trains one run .* use torchrun"),
    ("slurm", {"mem_gb": "lots"}, "mem_gb must be a number > 0"),
    ("slurm", {"time": "1:2:3:4"}, "time: expected minutes or \\[D-\\]HH:MM\\[:SS\\].*'1:2:3:4'"),
    ("slurm", {"time": "0"}, "time: expected"),
    ("slurm", {"slurm_extra": ["=x"]}, "slurm_extra: expected KEY=VALUE"),
    ("slurm", {"slurm_extra": ["partition=gpu"]}, "set partition with its own option"),
])
def test_bad_launch_options_are_one_clear_error(executor, options, message):
    with pytest.raises(ValueError, match=message):
        launch_options.launch_options(executor, **options)


def test_slurm_without_slurm_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    with pytest.raises(RuntimeError, match="--executor slurm needs SLURM \\(sbatch, srun not on PATH\\)"):
        launch.train_missing([tiny()], tmp_path / "runs", executor="slurm")
    assert not (tmp_path / "runs").exists()


def fake_slurm(tmp_path, monkeypatch):
    """``sbatch`` that keeps the script it is given and answers as SLURM does; a do-nothing ``srun``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/sbatch.sh\necho "Submitted batch job 4242"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "sbatch.sh"


def test_slurm_job_array_from_cli_options(tmp_path, monkeypatch, capsys):
    """The SLURM executor built from the command-line options writes the expected sbatch script
    (submitted to a fake sbatch; nothing runs)."""
    script = fake_slurm(tmp_path, monkeypatch)
    spec = tmp_path / "tiny.yaml"
    spec.write_text("base: {" + ", ".join(f"{k}: {v}" for k, v in TINY.items()) + "}\ngrid: {seed: [0, 1, 2]}\n")
    root = tmp_path / "runs"
    fake_run(root, tiny(seed=2), results.SUMMARY)  # finished: not submitted
    code = main(["sweep", str(spec), "--root", str(root), "--executor", "slurm", "--partition", "gpu",
                 "--gpus-per-job", "1", "--cpus-per-job", "8", "--mem-gb", "32", "--time", "2-00:00:00",
                 "--array-parallelism", "1", "--slurm-extra", "account=abc", "--slurm-extra", "exclusive",
                 "--no-wait"])
    out = capsys.readouterr().out
    assert code == 0 and "submitted 2 run(s) to SLURM (job 4242)" in out and "--status" in out
    lines = set(script.read_text().splitlines())
    for flag in ("--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=8", "--mem=32GB", "--time=2880",
                 "--array=0-1%1", "--signal=USR2@90", "--requeue", "--account=abc", "--exclusive",
                 "--nodes=1", "--ntasks-per-node=1", "--job-name=companion"):
        assert f"#SBATCH {flag}" in lines, flag
    assert any("submitit.core._submit" in line for line in lines)
    options = launch_options.launch_options("slurm", gpus_per_job=0, max_requeue=2)
    executor = launch.slurm_executor(options, tmp_path / "logs")
    assert "gpus_per_node" not in executor.parameters and executor.max_num_timeout == 2
    assert executor.parameters["time"] == 24 * 60  # the default time limit


def test_cli_status_and_bad_option(tmp_path, capsys):
    spec = tmp_path / "tiny.yaml"
    spec.write_text("base: {" + ", ".join(f"{k}: {v}" for k, v in TINY.items()) + "}\ngrid: {seed: [0, 1]}\n")
    root = tmp_path / "runs"
    fake_run(root, tiny(seed=0), results.CHECKPOINT)
    assert main(["sweep", str(spec), "--root", str(root), "--status"]) == 0
    out = capsys.readouterr().out
    assert "2 configs under" in out and "0 finished, 0 running, 0 failed, 1 interrupted, 1 missing" in out
    launch.record_error(root, tiny(seed=1).run_id(), "RuntimeError: " + "x" * 200)
    assert main(["sweep", str(spec), "--root", str(root), "--status"]) == 0
    out = capsys.readouterr().out
    assert "1 failed, 1 interrupted, 0 missing" in out and "RuntimeError: xxx" in out and "x" * 100 not in out
    assert main(["sweep", str(spec), "--root", str(root), "--executor", "local", "--partition", "x"]) == 2
    assert "partition apply to --executor slurm only" in capsys.readouterr().err
