"""Measuring a sparse export against its dense network (Section 5's future work, measured):
the same predictions (:func:`agreement`) and how much faster on the CPU (:func:`inference_speed`),
timed side by side in interleaved rounds (:func:`timed`) so that load on a shared machine falls on
both alike. Used by chapter 11 (:func:`companion.book.weight_tables.sparse_execution`) and
``benchmarks/bench_sparse_inference.py``; re-exported by :mod:`companion.nn.sparse`.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from companion.checks import check_int

__all__ = ["SETTLE_S", "agreement", "inference_speed", "num_threads", "timed"]

#: seconds :func:`inference_speed` waits (untimed) before each variant's calls: after its last parallel
#: region an OpenMP thread spins for 6-8 ms of CPU time (libgomp's default spin count; measured on
#: the 2-core machine), which would take a core from whatever variant runs next (the sparse
#: export's threads are not OpenMP's). Each variant is then timed as if it ran alone.
SETTLE_S = 0.02


def timed(variants: dict[str, Callable[[], object]], repeats: int,
          clock: Callable[[], float] = time.perf_counter, pause: float = 0.0,
          warm: bool = False) -> dict[str, float]:
    """Median seconds per call of each variant: one warm-up call each, then ``repeats`` rounds
    that call every variant once, in an order rotated each round (so that a burst of load on a
    shared machine falls on all variants alike). ``clock``: wall time by default;
    ``time.thread_time`` counts only the calling thread's CPU time (one-thread runs on a loaded
    machine). ``pause``: seconds slept, untimed, before each call (:data:`SETTLE_S`). ``warm``:
    call the variant once more, untimed, right before each timed call (after the pause), so that
    each call is timed as in a run of back-to-back calls of its own (threads awake, data in cache)
    rather than right after an idle pause: on the 2-core VM of the measurements a core idle for
    20 ms often took 0.3-3 ms to resume and then ran the 5 ms two-thread sparse call of β=10 at
    about half speed (both threads' busy time 7.6 ms instead of 4.2), which the 35-70 ms dense
    call hardly feels."""
    check_int("repeats", repeats, minimum=1)
    names = list(variants)
    times: dict[str, list[float]] = {n: [] for n in names}
    for n in names:
        variants[n]()
    for r in range(repeats):
        for n in names[r % len(names):] + names[:r % len(names)]:
            if pause > 0:
                time.sleep(pause)
            if warm:
                variants[n]()
            start = clock()
            variants[n]()
            times[n].append(clock() - start)
    return {n: statistics.median(t) for n, t in times.items()}


@contextlib.contextmanager
def num_threads(n: int):
    """Run the block with ``torch.set_num_threads(n)``, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def inference_speed(model: nn.Module, sparse: nn.Module, x: torch.Tensor, *, threads: int,
                    repeats: int = 5) -> dict[str, float]:
    """Images per second of the dense eval ``model`` and its export ``sparse`` on the batch ``x``
    with ``threads`` CPU threads, measured side by side (:func:`timed`, :data:`SETTLE_S` apart);
    ``speedup`` is their ratio (the number to quote: absolute rates drift on a shared machine).
    Each timed call follows an untimed one of the same network (``timed(warm=True)``): the steady
    state of a stream of batches."""
    check_int("threads", threads, minimum=1)
    with num_threads(threads):
        t = timed({"dense": lambda: model(x), "sparse": lambda: sparse(x)}, repeats, pause=SETTLE_S,
                  warm=True)
    n = len(x)
    return {"threads": threads, "batch": n, "dense_images_per_s": n / t["dense"],
            "sparse_images_per_s": n / t["sparse"], "speedup": t["dense"] / t["sparse"]}


@torch.no_grad()
def agreement(model: nn.Module, sparse: nn.Module, x: torch.Tensor, *, batch: int = 1000) -> dict[str, float]:
    """How far the export's predictions are from the dense model's on images ``x``: the number of
    images whose predicted class is the same, and the largest absolute logit difference."""
    same, diff = 0, 0.0
    for start in range(0, len(x), batch):
        a, b = model(x[start:start + batch]), sparse(x[start:start + batch])
        same += int((a.argmax(1) == b.argmax(1)).sum())
        diff = max(diff, float((a - b).abs().max()))
    return {"images": len(x), "same_prediction": same, "max_logit_diff": diff}
