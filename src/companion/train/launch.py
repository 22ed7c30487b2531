"""Many runs at once: train the unfinished runs of a list of configs (Appendix A.2's grid, or
one stage of ``companion experiments``), one job per run, and a status view of them.

Executors (``executor=``):

- ``serial``: one run after another in this process (``train(config, resume=True)``);
- ``local``: each run in its own process through submitit's ``LocalExecutor``, at most
  ``array_parallelism`` at a time, each on its own GPU (by default one job per visible GPU; on
  a machine without CUDA, CPU jobs sharing the cores). submitit's local executor starts every job at once, so the
  limit is kept here by submitting a job when a slot frees;
- ``slurm``: one SLURM job array through submitit's ``SlurmExecutor.map_array`` (at most
  ``array_parallelism`` tasks running), with ``--requeue``.

Every job is a :class:`TrainJob`, a submitit ``Checkpointable``: when SLURM preempts it or its
time limit nears (``--signal=USR2``), submitit calls ``checkpoint()``, which resubmits the same
call; the new job's ``train(..., resume=True)`` continues from the run's last epoch checkpoint.

One writer per run, one store: runs with a ``summary.json`` are skipped, runs whose lock is held
by a live process (``locks.lock_holder``) are skipped and reported, and every job writes into
``root/<run_id>/`` as ``companion train`` does. ``root/.launch/`` keeps the submitit logs
(``logs/``) and the last error of each failed run (``errors/<run_id>.json``); ``load_runs``
ignores it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import submitit

from companion.config import TrainConfig
from companion.store import locks, results
from companion.train.launch_options import LaunchOptions, SLURM_TIME, launch_options, parse_time
from companion.train import loop
from companion.train.progress import RunWatcher

#: states of :func:`status`
STATES = ("finished", "running", "failed", "interrupted", "missing")
LAUNCH_DIR = ".launch"
#: a local job's time limit (submitit's default is 2 minutes)
LOCAL_TIME_MIN = 7 * 24 * 60
#: how often the local executor looks at its running jobs (seconds)
POLL_S = 0.5


# --------------------------------------------------------------------------- the job
class TrainJob(submitit.helpers.Checkpointable):
    """One run as a submitit job: ``train(config, root=root, resume=True)``.

    Returns ``{"run_id", "state"}`` with state ``finished``, or ``locked`` (and ``holder``) when
    another live process holds the run. A failure is recorded in ``root/.launch/errors/`` and
    re-raised (submitit keeps the traceback)."""

    def __init__(self, root: str | os.PathLike, threads: int | None = None, progress: bool = False):
        self.root, self.threads, self.progress = str(root), threads, progress

    def __call__(self, config: TrainConfig) -> dict:
        import torch


        if self.threads:
            torch.set_num_threads(self.threads)
        run_id = config.run_id()
        try:
            loop.train(config, root=self.root, resume=True, progress=self.progress)
        except Exception as exc:
            if isinstance(exc, locks.RunLocked):
                return {"run_id": run_id, "state": "locked", "holder": _holder(Path(self.root) / run_id)}
            record_error(self.root, run_id, f"{type(exc).__name__}: {exc}")
            raise
        clear_error(self.root, run_id)
        return {"run_id": run_id, "state": "finished"}

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """On preemption or time-out: the same call again (train resumes from the run's checkpoint)."""
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _holder(run_dir: Path) -> dict | None:
    """Who holds ``run_dir`` (host, pid, start), or None."""
    return locks.lock_holder(run_dir)


def _error_path(root, run_id: str) -> Path:
    return Path(root) / LAUNCH_DIR / "errors" / f"{run_id}.json"


def record_error(root, run_id: str, error: str, job_id: str | None = None) -> None:
    """Keep ``error`` as the run's last failure (what :func:`status` calls ``failed``)."""
    path = _error_path(root, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    job_id = job_id or os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID")
    results.write_json(path, {"run_id": run_id, "error": error, "job_id": job_id,
                              "host": socket.gethostname(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")})


def clear_error(root, run_id: str) -> None:
    _error_path(root, run_id).unlink(missing_ok=True)


def read_error(root, run_id: str) -> str | None:
    path = _error_path(root, run_id)
    try:
        return json.loads(path.read_text())["error"]
    except (OSError, ValueError, KeyError):
        return None


# --------------------------------------------------------------------------- status
def status(configs, root: str | os.PathLike) -> pd.DataFrame:
    """One row per config: ``state`` (finished; running: its lock is held by a live process;
    failed: a job error is recorded; interrupted: unfinished, with a checkpoint and no live
    holder; missing), ``epochs_logged`` (lines of metrics.jsonl), ``holder`` and ``error``."""
    root = Path(root)
    rows = []
    for config in _unique(configs):
        run_id = config.run_id()
        run_dir = root / run_id
        holder = None if (run_dir / results.SUMMARY).is_file() else _holder(run_dir)
        error = read_error(root, run_id)
        if (run_dir / results.SUMMARY).is_file():
            state, error = "finished", None
        elif holder is not None:
            state = "running"
        elif error is not None:
            state = "failed"
        elif (run_dir / results.CHECKPOINT).is_file():
            state = "interrupted"
        else:
            state = "missing"
        rows.append({"run_id": run_id, "dataset": config.dataset, "model": config.model, "alpha": config.alpha,
                     "optimizer": config.optimizer, "epochs": config.epochs, "state": state,
                     "epochs_logged": len(results.read_jsonl(run_dir / results.METRICS)),
                     "holder": _describe_holder(holder), "error": error})
    return pd.DataFrame(rows, columns=["run_id", "dataset", "model", "alpha", "optimizer", "epochs", "state",
                                       "epochs_logged", "holder", "error"])


def _describe_holder(holder: dict | None) -> str | None:
    """``pid 123 on node7 since 2026-01-01 12:00`` (the lock's ``pid``, ``host``, ``started``)."""
    if not holder:
        return None
    started = holder.get("started")
    since = (time.strftime(" since %Y-%m-%d %H:%M", time.localtime(started))
             if isinstance(started, (int, float)) else "")
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}{since}"


def _unique(configs) -> list[TrainConfig]:
    out: dict[str, TrainConfig] = {}
    for config in configs:
        if not isinstance(config, TrainConfig):
            raise ValueError(f"configs must be TrainConfig objects, got {type(config).__name__}")
        out.setdefault(config.run_id(), config)
    return list(out.values())


# --------------------------------------------------------------------------- launching
@dataclass
class LaunchReport:
    """What :func:`train_missing` did, by run id."""

    executor: str
    already_finished: list[str] = field(default_factory=list)
    locked: dict[str, str | None] = field(default_factory=dict)  # run id -> who holds it
    trained: list[str] = field(default_factory=list)  # finished by this call
    failed: dict[str, str] = field(default_factory=dict)  # run id -> error (one line)
    submitted: dict[str, str] = field(default_factory=dict)  # run id -> job id (local, slurm)
    pending: list[str] = field(default_factory=list)  # submitted, not waited for (wait=False)
    log_dir: str | None = None

    def describe(self) -> str:
        parts = [f"{len(self.trained)} trained", f"{len(self.already_finished)} already finished"]
        if self.pending:
            parts.append(f"{len(self.pending)} submitted, not waited for")
        if self.locked:
            held = ", ".join(f"{r} ({h or 'holder unknown'})" for r, h in self.locked.items())
            parts.append(f"{len(self.locked)} skipped, held by another process: {held}")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        return ", ".join(parts)


class LaunchError(RuntimeError):
    """Some runs failed (the others are kept); ``.report`` is the :class:`LaunchReport`."""

    def __init__(self, report: LaunchReport):
        self.report = report
        where = f"; job logs in {report.log_dir}" if report.log_dir else ""
        lines = "\n".join(f"  {run_id}: {error}" for run_id, error in report.failed.items())
        super().__init__(f"{len(report.failed)} run(s) failed ({report.describe()}){where}; "
                         f"rerunning resumes them from their last checkpoint:\n{lines}")


def train_missing(configs, root: str | os.PathLike, *, executor: str = "serial", progress: bool = True,
                  **options) -> LaunchReport:
    """Train every config without a finished run in ``root``, one job per run (``options``:
    :class:`LaunchOptions`; executors: module docstring). Bad options raise before anything runs.

    Finished runs are skipped; runs held by another live process are skipped and reported.
    Waits for every job (unless ``wait=False``, SLURM only), then raises one :class:`LaunchError`
    listing the failed runs, or returns the :class:`LaunchReport`. For staged experiments call
    it once per stage: when it returns, every run of the stage is finished."""
    opts = launch_options(executor, **options)
    configs = _unique(configs)
    if executor == "slurm":
        missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
        if missing:
            raise RuntimeError(f"--executor slurm needs SLURM ({', '.join(missing)} not on PATH): run it "
                               "on the cluster's login node; on one machine use --executor local or serial")
    root = Path(root)
    report = LaunchReport(executor)
    todo = []
    for config in configs:
        holder = None
        if results.find_run(config, root) is not None:
            report.already_finished.append(config.run_id())
        elif (holder := _holder(root / config.run_id())) is not None:
            report.locked[config.run_id()] = _describe_holder(holder)
        else:
            todo.append(config)
    if todo:
        root.mkdir(parents=True, exist_ok=True)
        runner = {"serial": _run_serial, "local": _run_local, "slurm": _run_slurm}[executor]
        runner(todo, root, opts, report, progress)
    if report.locked:
        print(f"skipped {len(report.locked)} run(s) held by another process: "
              + ", ".join(f"{r} ({h})" for r, h in report.locked.items()), file=sys.stderr, flush=True)
    if report.failed:
        raise LaunchError(report)
    return report


def _outcome(out: dict, report: LaunchReport) -> None:
    if out["state"] == "locked":
        report.locked[out["run_id"]] = _describe_holder(out.get("holder"))
    else:
        report.trained.append(out["run_id"])


def _run_serial(todo, root, opts, report, progress) -> None:
    """In this process, one run after another; a RuntimeError (diverged, unreadable checkpoint)
    fails that run only."""
    job = TrainJob(root, progress=progress)
    for i, config in enumerate(todo, 1):
        if progress:
            print(f"[{i}/{len(todo)}] {config.run_id()}", flush=True)
        try:
            _outcome(job(config), report)
        except RuntimeError as exc:
            report.failed[config.run_id()] = f"{type(exc).__name__}: {exc}"
            print(f"run {config.run_id()} failed: {exc}", file=sys.stderr, flush=True)


def _log_dir(root: Path, opts: LaunchOptions) -> Path:
    return Path(opts.log_dir) if opts.log_dir else root / LAUNCH_DIR / "logs"


def _visible_gpus() -> list[int]:
    """Indices of the GPUs this process may use (``CUDA_VISIBLE_DEVICES`` as numbers, else all)."""
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None or not visible.strip():
        return list(range(torch.cuda.device_count())) if visible is None else []
    try:
        return [int(v) for v in visible.split(",")]
    except ValueError:
        raise ValueError(f"--executor local assigns GPUs by index; CUDA_VISIBLE_DEVICES={visible!r} is "
                         "not a list of indices") from None


def _local_executors(root: Path, opts: LaunchOptions) -> tuple[list, int | None]:
    """One submitit LocalExecutor per slot, each with its own GPUs; and the torch threads of a job."""
    gpus = _visible_gpus()
    per_job = opts.gpus_per_job if opts.gpus_per_job is not None else (1 if gpus else 0)
    if per_job > len(gpus):
        raise ValueError(f"gpus_per_job={per_job} but {len(gpus)} GPU(s) are visible; use --gpus-per-job 0 "
                         "to train on the CPU")
    slots = opts.array_parallelism or (len(gpus) // per_job if per_job else 1)
    if per_job and slots * per_job > len(gpus):
        raise ValueError(f"array_parallelism={slots} jobs × {per_job} GPU(s) need {slots * per_job} GPUs; "
                         f"{len(gpus)} are visible")
    threads = opts.cpus_per_job or (None if per_job else max(1, (os.cpu_count() or 1) // slots))
    minutes = parse_time(opts.time) if opts.time is not None else LOCAL_TIME_MIN
    executors = []
    for slot in range(slots):
        executor = submitit.LocalExecutor(folder=_log_dir(root, opts), max_num_timeout=opts.max_requeue)
        executor.update_parameters(timeout_min=minutes, gpus_per_node=per_job,
                                   visible_gpus=tuple(gpus[slot * per_job:(slot + 1) * per_job]))
        executors.append(executor)
    return executors, threads


def _run_local(todo, root, opts, report, progress) -> None:
    """At most one job per slot (submitit's LocalExecutor would start all at once)."""

    executors, threads = _local_executors(root, opts)
    report.log_dir = str(_log_dir(root, opts))
    queue, running, watchers = list(todo), {}, {}  # slot -> (config, job), slot -> its progress line
    try:
        while queue or running:
            for slot, executor in enumerate(executors):
                if slot not in running and queue:
                    config = queue.pop(0)
                    job = executor.submit(TrainJob(root, threads, progress), config)
                    watchers[slot] = RunWatcher(config, root / config.run_id())
                    job._results_timeout_s = 2  # a killed local job leaves no result: do not wait 15 s for it
                    report.submitted[config.run_id()] = job.job_id
                    running[slot] = (config, job)
                    if progress:
                        print(f"[{len(report.submitted)}/{len(todo)}] {config.run_id()}: local job {job.job_id}",
                              flush=True)
            if progress:
                for slot in running:
                    watchers[slot].poll()  # one line per epoch a job logged
            done = [slot for slot, (_, job) in running.items() if job.done()]
            for slot in done:
                _collect(*running.pop(slot), root, report, progress)
            if not done:
                time.sleep(POLL_S)
    except BaseException:  # interrupted: stop the jobs this process started
        for _, job in running.values():
            job.cancel()
        raise


def _mem(gb: float) -> str:
    return f"{int(gb)}GB" if gb == int(gb) else f"{int(gb * 1024)}MB"


def slurm_executor(opts: LaunchOptions, folder: str | os.PathLike) -> submitit.SlurmExecutor:
    """A SlurmExecutor configured from ``opts`` (nothing is submitted; needs ``srun`` on PATH)."""
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=opts.max_requeue)
    gpus = 1 if opts.gpus_per_job is None else opts.gpus_per_job
    params = {"job_name": "companion", "time": parse_time(opts.time or SLURM_TIME), "nodes": 1,
              "ntasks_per_node": 1, "gpus_per_node": gpus or None, "cpus_per_task": opts.cpus_per_job,
              "mem": _mem(opts.mem_gb) if opts.mem_gb else None, "partition": opts.partition,
              "array_parallelism": opts.array_parallelism,
              "additional_parameters": {"requeue": True, **opts.slurm_extra}}
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return executor


def _run_slurm(todo, root, opts, report, progress) -> None:
    """One job array (``map_array``); waits for it unless ``wait=False``."""
    folder = _log_dir(root, opts)
    report.log_dir = str(folder)
    jobs = slurm_executor(opts, folder).map_array(TrainJob(root, opts.cpus_per_job), todo)
    for config, job in zip(todo, jobs):
        report.submitted[config.run_id()] = job.job_id
    if progress:
        print(f"submitted {len(jobs)} run(s) to SLURM (job {jobs[0].job_id.split('_')[0]}); logs in {folder}",
              flush=True)
    if not opts.wait:
        report.pending = [config.run_id() for config in todo]
        return
    for config, job in zip(todo, jobs):
        _collect(config, job, root, report, progress)


def _collect(config: TrainConfig, job, root, report: LaunchReport, progress: bool) -> None:
    """Wait for ``job`` and file its outcome in ``report`` (a failure also in root/.launch/errors)."""
    run_id = config.run_id()
    try:
        out = job.result()
    except submitit.core.utils.UncompletedJobError as exc:  # FailedJobError is one too
        text = str(exc)
        if isinstance(exc, submitit.core.utils.FailedJobError) and "-" * 22 in text:
            lines = [line for line in text.split("-" * 22)[1].splitlines() if line.strip()]
            error = lines[-1].strip() if lines else text.splitlines()[0]
        else:
            error = f"job {job.job_id} ended without a result (killed, out of memory or time?); log {job.paths.stderr}"
        report.failed[run_id] = error
        record_error(root, run_id, error, job.job_id)
        print(f"run {run_id} failed: {error}", file=sys.stderr, flush=True)
        return
    _outcome(out, report)
    if progress:
        print(f"{run_id}: {out['state']}", flush=True)
