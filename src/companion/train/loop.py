"""Training loop (Appendix A.2): SGD or β-LASSO (Algorithm 1), cosine-annealed learning rate,
mixed precision, per-epoch metrics and checkpoints, exact resume.

- Schedule: ``CosineAnnealingLR`` from ``lr`` to 0 over all training *steps*, stepped once per
  step. Each epoch takes ``N // batch_size`` steps (the last partial batch is dropped, so every
  step sees a full batch and BatchNorm never sees a batch of one; the shuffle differs per epoch,
  so every image is still seen).
- Precision: ``auto`` = fp16 autocast + ``GradScaler`` on CUDA (autocast keeps batch-norm in
  fp32, as in Appendix A), fp32 on CPU; ``bf16`` = bf16 autocast (CPU or CUDA).
- Randomness: the model is initialised from ``seed``; each epoch draws its data order,
  augmentation and dropout from generators seeded by ``(seed, epoch)``, so a run resumed from
  its checkpoint replays the uninterrupted run exactly (bit for bit on CPU with the same number
  of threads: the summation order of a CPU matrix multiply depends on it).
- The hot loop never synchronises with the host: loss and correct-count are summed on the
  device and read once per epoch (GradScaler's own inf check is the one exception on CUDA fp16).
  A non-finite epoch loss stops the run with ``RuntimeError``; the last good checkpoint stays.
- Permutation test (Section 4.1): ``permute_pixels`` moves the pixels of every batch the network
  sees — after augmentation for training batches (:func:`training_inputs`), and of every
  validation/test batch — so that flips and crops act on the image, not on the permuted grid.
- Weight decay (SGD) applies to all parameters, as ``torch.optim.SGD`` does; β-LASSO's λ applies
  to weight tensors only (``lasso_param_groups``).

- One writer per run: the run directory is locked while training (:func:`locks.run_lock`).
- Data parallel (``torchrun --nproc-per-node N -m companion train ...``): the same run on N
  processes, see :mod:`companion.train.distributed`; rank 0 alone touches the results store.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from companion import __version__
from companion.config import TrainConfig
from companion.data.datasets import batches
from companion.nn.analysis import (FILTER_MIN_NONZEROS, embedded_nonzeros, first_layer_filters, layer_sizes,
                                   locality, locality_quantiles, nonzeros)
from companion.nn.snapshots import Recorder
from companion.store import locks, results
from companion.store.provenance import git_commit
from companion.store.results import Run, load_checkpoint
from companion.train import distributed
from companion.train.device import autocast, device_name, resolve_device, resolve_precision
from companion.train.progress import EpochProgress
from companion.train.setup import Job, Loop, build_loop
from companion.train.step import epoch_seed, evaluate, generator, optimizer_step, predict, training_inputs

#: arrays.npz keeps this many first-layer filters (as float16 on the input grid) for Figures 4, 7-9
FILTER_SAMPLE = 32


# --------------------------------------------------------------------------- the run
def train(
    config: TrainConfig, *, root: str | os.PathLike = "runs", resume: bool = False,
    progress: bool = True, force: bool = False, wait: bool = False,
) -> Run:
    """Train ``config`` into ``root/<run_id>/`` and return the finished :class:`Run`.

    A finished run of the same config is returned as is (no training) unless ``force=True``,
    which retrains in a temporary directory and swaps it in only on success (so neither a
    finished nor an unfinished run is lost to a failed retrain). ``resume=True`` continues an
    unfinished run from its checkpoint (or starts fresh if there is none); with
    ``resume=False`` an unfinished run's checkpoint is a ``FileExistsError`` (never silently
    thrown away). One writer per run: while training, the run is held by
    :func:`~companion.store.locks.run_lock`; another process training it is
    :class:`~companion.store.locks.RunLocked`, or is waited for with ``wait=True``.
    Under ``torchrun`` every rank calls this and trains its share (:mod:`companion.train.distributed`).
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    config.validate()
    if force and resume:
        raise ValueError("force=True retrains from scratch; it cannot be combined with resume=True")
    if config.subset is not None and config.batch_size > config.subset:  # known before loading data
        raise ValueError(f"batch_size {config.batch_size} is larger than the training set "
                         f"({config.subset} images, subset={config.subset}); use batch_size <= {config.subset}")
    device = resolve_device(config.device)
    with distributed.session(device) as group:
        device = group.device(device)
        job = Job(config, device, resolve_precision(config.precision, device), group)
        return distributed.run(group, lambda start: _lead(job, Path(root), resume, progress, force, wait, start),
                               lambda state: _run(job, None, state, False, None))


def _lead(job: Job, root: Path, resume: bool, progress: bool, force: bool, wait: bool, start) -> Run:
    """Rank 0 (or the one process): find, lock, resume or retrain the run. ``start(state)``
    tells the other ranks to train from ``state`` (see :func:`companion.train.distributed.run`)."""
    config = job.config
    if not force and (done := results.find_run(config, root)) is not None:
        return done
    final_dir = root / config.run_id()
    root.mkdir(parents=True, exist_ok=True)
    created = not final_dir.exists()
    final_dir.mkdir(exist_ok=True)
    try:
        with locks.run_lock(final_dir, wait=wait) as lock:
            def fit(run_dir: Path, state: dict | None) -> None:
                start(state)
                _run(job, run_dir, state, progress, lock)

            if not force:
                if (done := results.find_run(config, root)) is not None:  # finished while we waited
                    return done
                checkpoint = final_dir / results.CHECKPOINT
                if checkpoint.exists() and not resume:
                    raise FileExistsError(
                        f"an unfinished run of this config exists in {final_dir}; resume it (resume=True, "
                        "--resume) or retrain from scratch (force=True, --force)")
                state = None
                if checkpoint.exists():  # read before any work or write
                    where = torch.device("cpu") if job.group.distributed else job.device
                    state = load_checkpoint(checkpoint, config, where)
                fit(final_dir, state)
            else:
                _retrain(job.config, root, final_dir, fit)
    finally:
        if created and final_dir.is_dir() and not any(final_dir.iterdir()):  # failed before writing
            final_dir.rmdir()
    return results.load_run(final_dir)


def _retrain(config: TrainConfig, root: Path, final_dir: Path, fit) -> None:
    """``force=True``: ``fit`` in a side directory, then swap it in for ``final_dir``."""
    work_dir = Path(tempfile.mkdtemp(prefix=f".{config.run_id()}.", dir=root))
    try:
        fit(work_dir, None)
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    old = Path(tempfile.mkdtemp(prefix=f".{config.run_id()}.old.", dir=root))
    os.replace(final_dir, old / "run")
    os.replace(work_dir, final_dir)
    shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- the epoch loop
def _run(job: Job, run_dir: Path | None, state: dict | None, progress: bool, lock) -> None:
    """Train from ``state`` (a checkpoint, or None) to the last epoch. Rank 0 evaluates, writes
    metrics and checkpoints into ``run_dir``, then the arrays and summary."""

    config, writer = job.config, job.group.writer
    loop = build_loop(job, state)
    recorder = None
    if writer:  # the first layer's chosen units over time (companion.nn.snapshots)
        filters = first_layer_filters(loop.model)
        recorder = Recorder(config.epochs, filters.shape[0], config.seed, state and state.get("snapshots"))
        if state is None:
            recorder.record(0, filters)
        del filters
    start, metrics, wall_before, resumed_at = 0, [], 0.0, []
    if state is not None:
        start, metrics = state["epoch"], list(state["metrics"])
        wall_before, resumed_at = state["wall_time_s"], list(state["resumed_at"]) + [start]
        del state
    if writer:
        results.write_json(run_dir / results.CONFIG, config.stored_dict())
        results.write_jsonl(run_dir / results.METRICS, metrics)  # the metrics the checkpoint vouches for
    sizes = layer_sizes(loop.model)
    session_start = time.perf_counter()
    line = EpochProgress(config, start, enabled=progress and writer)  # one line per run, per epoch
    try:
        for epoch in range(start + 1, config.epochs + 1):
            t0 = time.perf_counter()
            lr = loop.scheduler.get_last_lr()[0]
            train_loss, train_acc = train_epoch(loop, epoch)
            if not math.isfinite(train_loss):
                last = f"epoch {epoch - 1}'s checkpoint is kept" if epoch > 1 else "no checkpoint was written"
                raise RuntimeError(
                    f"training diverged: non-finite training loss ({train_loss}) in epoch {epoch} of "
                    f"{config.run_id()} (lr={config.lr}); {last}; the run is not finished")
            if not writer:
                continue
            row = epoch_metrics(loop, epoch, train_loss, train_acc, lr, sizes, t0)
            metrics.append(row)
            if epoch in recorder.epochs:
                recorder.record(epoch, first_layer_filters(loop.model))
            save_checkpoint(run_dir / results.CHECKPOINT, loop, epoch, metrics, resumed_at,
                            wall_before + time.perf_counter() - session_start, recorder)
            results.append_jsonl(run_dir / results.METRICS, row)
            lock.heartbeat()
            line.epoch(epoch, row["images_per_s"])
    finally:
        line.close()
    if writer:
        _finish(loop, run_dir, metrics, wall_before + time.perf_counter() - session_start, resumed_at, recorder)


def train_epoch(loop: Loop, epoch: int) -> tuple[float, float]:
    """One pass over the training set in a fresh order (Appendix A.2); returns the mean training
    loss and accuracy over all ranks. Order, augmentation and dropout are seeded by (seed, epoch)."""

    job = loop.job
    config, device, group = job.config, job.device, job.group
    dropout = "dropout" if group.rank == 0 else f"dropout:{group.rank}"
    torch.manual_seed(epoch_seed(config.seed, epoch, dropout))
    order = generator(device, epoch_seed(config.seed, epoch, "order"))
    aug = generator(device, epoch_seed(config.seed, epoch, "augment"))
    loop.net.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for idx in batches(len(loop.data.train.y), config.batch_size, generator=order, shuffle=True,
                       drop_last=True, device=device):
        x = group.shard(training_inputs(loop.data.train.x[idx], loop.augment, aug, loop.permutation))
        y = group.shard(loop.data.train.y[idx])
        with autocast(device, job.precision):
            logits = loop.net(x)
            loss = group.loss(logits, y, len(idx))
        optimizer_step(loss, loop.optimizer, loop.scaler)
        loop.scheduler.step()
        loss_sum += loss.detach().float()
        correct += (logits.detach().argmax(1) == y).sum()
    # the epoch's one sync of the training loop
    train_loss = group.total(loss_sum).item() / group.world_size / loop.steps
    return train_loss, group.total(correct).item() / (loop.steps * config.batch_size)


def epoch_metrics(loop: Loop, epoch: int, train_loss: float, train_acc: float, lr: float,
                  sizes: dict, t0: float) -> dict:
    """The epoch's metrics line: training numbers, val/test accuracy (every ``track_every``
    epochs and the last), non-zeros per layer and the first layer's locality (Figure 4)."""
    job = loop.job
    config = job.config
    train_seconds = time.perf_counter() - t0
    row = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
           "val_acc": None, "test_acc": None, "lr": lr}
    if epoch % config.track_every == 0 or epoch == config.epochs:
        if loop.data.val is not None:
            row["val_acc"] = evaluate(loop.model, loop.data.val, config.dataset, job.device, job.precision,
                                      loop.permutation)
        row["test_acc"] = evaluate(loop.model, loop.data.test, config.dataset, job.device, job.precision,
                                   loop.permutation)
    row["nonzeros"] = nonzeros(loop.model)
    row["params"] = sizes
    row["locality"] = locality_quantiles(loop.model)  # first layer, Section 4.1 / Figure 4
    row["images_per_s"] = loop.steps * config.batch_size / train_seconds
    row["seconds"] = time.perf_counter() - t0
    return row


def save_checkpoint(path: Path, loop: Loop, epoch: int, metrics: list[dict], resumed_at: list[int],
                    wall: float, recorder: Recorder) -> None:
    """Everything needed to continue after ``epoch`` exactly."""
    results.write_checkpoint(path, {
        "run_id": loop.job.config.run_id(), "config": loop.job.config.to_dict(), "epoch": epoch,
        "model": loop.model.state_dict(), "optimizer": loop.optimizer.state_dict(),
        "scheduler": loop.scheduler.state_dict(),
        "scaler": loop.scaler.state_dict() if loop.scaler is not None else None,
        "metrics": metrics, "resumed_at": resumed_at, "wall_time_s": wall, "snapshots": recorder.state(),
    })


def _finish(loop: Loop, run_dir: Path, metrics: list[dict], wall: float, resumed_at: list[int],
            recorder: Recorder) -> None:
    """arrays.npz, then summary.json (last, atomically: the run's 'finished' marker)."""
    first, filters, units = _save_arrays(loop, run_dir / results.ARRAYS, recorder)
    results.write_test_labels(run_dir.parent, loop.data.fingerprint, loop.data.test.y.cpu().numpy())
    results.write_json(run_dir / results.SUMMARY, summary(loop, metrics, wall, resumed_at, first, filters, units))


def _save_arrays(loop: Loop, path: Path, recorder: Recorder):
    """The first layer's filters (Figures 4, 7-9 draw filters "chosen randomly among all filters
    with at least 20 non-zero values", :data:`~companion.nn.analysis.FILTER_MIN_NONZEROS`: FILTER_SAMPLE of them, seeded), non-zeros and locality;
    the recorded snapshots (:mod:`companion.nn.snapshots`); the test-set predictions (uint8 classes,
    for gains paired image by image)."""
    import numpy as np

    model = loop.model
    first = (getattr(model, "conv_positions", ()) or model.paper_layers)[0]
    filters = first_layer_filters(model).float()  # units × C × H × W, on the input grid
    unit_nonzeros = filters.flatten(1).count_nonzero(1)
    scores = locality(filters)
    eligible = (unit_nonzeros >= FILTER_MIN_NONZEROS).nonzero().flatten().cpu()
    if eligible.numel() == 0:
        eligible = torch.arange(filters.shape[0])
    g = torch.Generator().manual_seed(loop.job.config.seed)
    units = eligible[torch.randperm(eligible.numel(), generator=g)[:FILTER_SAMPLE]].sort().values
    job = loop.job
    predicted = predict(model, loop.data.test, job.config.dataset, job.device, job.precision, loop.permutation)
    results.write_atomic(path, lambda f: np.savez_compressed(
        f, first_layer_name=np.array(first), filter_units=units.numpy(),
        filters=filters[units.to(filters.device)].cpu().to(torch.float16).numpy(),
        unit_nonzeros=unit_nonzeros.to(torch.int32).cpu().numpy(),
        locality_radius=scores["radius"].cpu().numpy(),
        locality_window_mass=scores["window_mass"].cpu().numpy(),
        test_predictions=predicted.to(torch.uint8).cpu().numpy(), **recorder.arrays()))
    return first, filters, units


def summary(loop: Loop, metrics: list[dict], wall: float, resumed_at: list[int], first: str,
            filters: torch.Tensor, units: torch.Tensor) -> dict:
    """summary.json: final and best-validation numbers, non-zeros, provenance."""
    job = loop.job
    config = job.config
    last = metrics[-1]
    tracked = [m for m in metrics if m["val_acc"] is not None]
    best = max(tracked, key=lambda m: m["val_acc"]) if tracked else None
    return {
        "run_id": config.run_id(), "config": config.stored_dict(), "epochs": config.epochs,
        "final_train_loss": last["train_loss"], "final_train_acc": last["train_acc"],
        "final_val_acc": last["val_acc"], "final_test_acc": last["test_acc"],
        "best_val_acc": best["val_acc"] if best else None,
        "best_val_epoch": best["epoch"] if best else None,
        "test_acc_at_best_val": best["test_acc"] if best else None,
        "nonzeros": last["nonzeros"], "params": last["params"],
        "total_nonzeros": sum(last["nonzeros"].values()), "total_weights": sum(last["params"].values()),
        "wall_time_s": wall, "resumed_at": resumed_at,
        "package_version": __version__, "git_commit": git_commit(),
        "torch_version": torch.__version__, "device_used": str(job.device),
        "device_name": device_name(job.device), "precision_used": job.precision,
        "world_size": job.group.world_size, "dataset": loop.data.fingerprint,
        "beta_lasso_step": loop.step_mode,
        "first_layer": {"layer": first, "units": int(filters.shape[0]),
                        "embedded_nonzeros": embedded_nonzeros(loop.model), "filters_saved": int(units.numel())},
    }
