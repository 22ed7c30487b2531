"""Where a training step's time goes: data and augmentation, forward + backward, the optimizer
step and the evaluation (amortised over the steps between evaluations), with images/s and the
matmul FLOP utilisation, for one run's config (``companion train ... --profile-steps N``).

Each phase is timed with the device synchronised around it, so the shares add up; images/s is
timed separately over the same number of unsynchronised steps (the trainer's hot loop never
synchronises). FLOPs are the matrix products of one forward + backward pass as counted by
``torch.utils.flop_counter``; the utilisation is against a square matrix product timed on the
same device, threads and precision (the achievable peak), and against a nominal peak if given.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from companion.config import TrainConfig
from companion.nn.analysis import locality_quantiles, nonzeros
from companion.train.device import autocast, device_name, resolve_device, resolve_precision
from companion.train.distributed import Group
from companion.train.setup import Job, Loop, build_loop
from companion.train.step import evaluate, training_inputs

PHASES = ("data + augmentation", "forward + backward", "optimizer step", "evaluation (amortised)")


@dataclass
class StepProfile:
    """Seconds per step of each phase (:data:`PHASES`), throughput and FLOP utilisation."""

    title: str
    steps: int
    warmup: int
    batch: int
    seconds: dict[str, float]
    images_per_s: float
    flops_per_step: float
    peak_flops: float
    peak_label: str
    nominal_peak_flops: float | None = None

    @property
    def shares(self) -> dict[str, float]:
        total = sum(self.seconds.values())
        return {k: v / total for k, v in self.seconds.items()}

    @property
    def train_seconds(self) -> float:
        """Synchronised seconds of one training step (every phase but the evaluation)."""
        return sum(v for k, v in self.seconds.items() if k != PHASES[3])

    @property
    def achieved_flops(self) -> float:
        """Matmul FLOP/s at the unsynchronised pace."""
        return self.flops_per_step * self.images_per_s / self.batch

    @property
    def utilisation(self) -> float:
        """:attr:`achieved_flops` over the measured peak."""
        return self.achieved_flops / self.peak_flops

    def lines(self) -> list[str]:
        out = [self.title, f"  {self.steps} steps after {self.warmup} warm-up steps; phases synchronised",
               f"  {'phase':26s} {'ms/step':>9s} {'share':>7s}"]
        for name, share in self.shares.items():
            out.append(f"  {name:26s} {1e3 * self.seconds[name]:9.2f} {100 * share:6.1f} %")
        with_eval = self.images_per_s / (1 + self.seconds[PHASES[3]] * self.images_per_s / self.batch)
        out.append(f"  images/s: {self.images_per_s:,.0f} training (unsynchronised), {with_eval:,.0f} with evaluation")
        out.append(f"  matmul FLOPs/step {self.flops_per_step / 1e9:.2f} G -> {self.achieved_flops / 1e9:,.1f} GFLOP/s"
                   f" = {100 * self.utilisation:.1f} % of the measured peak ({self.peak_flops / 1e9:,.1f} GFLOP/s,"
                   f" {self.peak_label})")
        if self.nominal_peak_flops:
            out.append(f"  = {100 * self.achieved_flops / self.nominal_peak_flops:.1f} % of the nominal peak "
                       f"({self.nominal_peak_flops / 1e12:,.0f} TFLOP/s)")
        return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _phased_step(loop: Loop, gen: torch.Generator, clock: dict[str, float], synchronise: bool = True) -> None:
    """One training step as the trainer takes it (:func:`companion.train.loop.train_epoch`),
    adding each phase's seconds to ``clock`` (synchronised, or not: the hot loop's pace)."""
    job, device = loop.job, loop.job.device
    sync = _sync if synchronise else (lambda device: None)
    n, batch = len(loop.data.train.y), job.config.batch_size
    t0 = time.perf_counter()
    idx = torch.randint(0, n, (batch,), generator=gen, device=device)
    x = training_inputs(loop.data.train.x[idx], loop.augment, gen, loop.permutation)
    y = loop.data.train.y[idx]
    sync(device)
    t1 = time.perf_counter()
    loop.optimizer.zero_grad(set_to_none=True)
    with autocast(device, job.precision):
        loss = job.group.loss(loop.net(x), y, batch)
    (loss if loop.scaler is None else loop.scaler.scale(loss)).backward()
    sync(device)
    t2 = time.perf_counter()
    if loop.scaler is None:
        loop.optimizer.step()
    else:
        loop.scaler.step(loop.optimizer)
        loop.scaler.update()
    loop.scheduler.step()
    sync(device)
    t3 = time.perf_counter()
    for name, dt in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2)):
        clock[name] += dt


def _evaluation_seconds_per_step(loop: Loop) -> float:
    """The evaluation work of :func:`companion.train.loop.epoch_metrics`, per training step: the
    validation and test accuracies (every ``track_every`` epochs) and the first layer's non-zeros
    and locality (every epoch)."""
    job = loop.job
    _sync(job.device)
    t0 = time.perf_counter()
    for split in (loop.data.val, loop.data.test):
        if split is not None:
            evaluate(loop.model, split, job.config.dataset, job.device, job.precision, loop.permutation)
    _sync(job.device)
    t1 = time.perf_counter()
    nonzeros(loop.model)
    locality_quantiles(loop.model)
    _sync(job.device)
    t2 = time.perf_counter()
    return (t1 - t0) / (job.config.track_every * loop.steps) + (t2 - t1) / loop.steps


def _step_flops(loop: Loop) -> float:
    """Matmul FLOPs of one forward + backward pass on one batch."""
    job = loop.job
    x = training_inputs(loop.data.train.x[:job.config.batch_size], loop.augment,
                        torch.Generator(device=job.device).manual_seed(0), loop.permutation)
    with FlopCounterMode(display=False) as counter:
        with autocast(job.device, job.precision):
            loss = job.group.loss(loop.net(x), loop.data.train.y[:len(x)], len(x))
        loss.backward()
    loop.optimizer.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def matmul_peak(device: torch.device, precision: str, size: int | None = None) -> tuple[float, str]:
    """FLOP/s of a square matrix product on ``device`` in the run's precision (best of 5)."""
    dtype = {"fp16-amp": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
    size = size or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = float("inf")
    for _ in range(6):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best, f"{size}x{size} {str(dtype).removeprefix('torch.')} matmul"


def profile_steps(config: TrainConfig, steps: int, *, warmup: int = 5,
                  nominal_peak_tflops: float | None = None) -> StepProfile:
    """Profile ``steps`` training steps of ``config`` after ``warmup`` steps (nothing is stored)."""
    if not isinstance(steps, int) or steps < 1 or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"profile_steps: steps must be an integer >= 1 and warmup >= 0, got {steps!r}, {warmup!r}")
    config.validate()
    device = resolve_device(config.device)
    job = Job(config, device, resolve_precision(config.precision, device), Group())
    loop = build_loop(job, None)
    loop.net.train()
    gen = torch.Generator(device=device).manual_seed(config.seed)
    clock = dict.fromkeys(PHASES, 0.0)
    for _ in range(warmup):
        _phased_step(loop, gen, clock)
    clock = dict.fromkeys(PHASES, 0.0)
    for _ in range(steps):
        _phased_step(loop, gen, clock)
    images_per_s = _unsynchronised_images_per_s(loop, gen, steps)
    seconds = {k: v / steps for k, v in clock.items()}
    seconds[PHASES[3]] = _evaluation_seconds_per_step(loop)
    peak, label = matmul_peak(device, job.precision)
    mode = (loop.step_mode or {}).get("mode")
    title = (f"step profile: {config.model} α={config.alpha}, batch {config.batch_size}, {config.optimizer}"
             f"{f' ({mode} step)' if mode else ''}, augment {config.augment}, {job.precision}, "
             f"{device_name(device)}, {torch.get_num_threads()} thread(s)")
    return StepProfile(title, steps, warmup, config.batch_size, seconds, images_per_s, _step_flops(loop), peak, label,
                       nominal_peak_tflops * 1e12 if nominal_peak_tflops else None)


def _unsynchronised_images_per_s(loop: Loop, gen: torch.Generator, steps: int) -> float:
    clock = dict.fromkeys(PHASES, 0.0)
    _sync(loop.job.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        _phased_step(loop, gen, clock, synchronise=False)
    _sync(loop.job.device)
    return steps * loop.job.config.batch_size / (time.perf_counter() - t0)
