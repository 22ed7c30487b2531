"""One progress line per training run, updated once per epoch (issue 10: progress while anything
trains, whether from ``companion train``, ``experiments``, ``sweep`` or a notebook that
``companion reproduce`` executes).

The line names the run and says where it is::

    s-fc α=16 sgd 120 ep (run 04f597ca54f9): epoch 3/120, 1,234 images/s, ETA 0:12:34

images/s is the last epoch's training throughput; the ETA is the epochs left times the mean wall
time of the epochs trained so far in this session (evaluation included). On a terminal, or in a
Jupyter kernel (whose output ``companion reproduce`` forwards to the terminal), the line is
rewritten in place (``\\r``); anywhere else (a log file, a SLURM job's output) each epoch gets its
own line, so the log keeps the history.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (``D days, H:MM:SS`` past a day) of a non-negative number of seconds."""
    seconds = max(0, int(round(seconds)))
    days, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{days} day{'s' if days > 1 else ''}, " if days else "") + f"{h}:{m:02d}:{s:02d}"


def describe_run(config) -> str:
    """``model α=… optimizer N ep (run id)``: which run a line is about (a TrainConfig)."""
    extra = f" k={config.kernel_size}" if config.kernel_size is not None else ""
    extra += " permuted" if config.permute_pixels is not None else ""
    return (f"{config.model} α={config.alpha}{extra} {config.optimizer} {config.epochs} ep "
            f"(run {config.run_id()})")


def _in_place(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return True
    return type(stream).__module__.startswith("ipykernel")  # a notebook honours \r


class EpochProgress:
    """The progress line of one run: :meth:`epoch` after each epoch, :meth:`close` at the end.

    ``start``: epochs already done (a resumed run). ``stream``: where to write (default
    ``sys.stderr``, looked up when the line is written); ``in_place``: rewrite the line with
    ``\\r`` (default: on a terminal or in a Jupyter kernel); ``enabled=False`` writes nothing."""

    def __init__(self, config, start: int = 0, *, enabled: bool = True, stream=None, in_place: bool | None = None,
                 clock=time.perf_counter):
        self.label, self.total, self.start = describe_run(config), config.epochs, start
        self.enabled, self._stream, self._in_place, self._clock = enabled, stream, in_place, clock
        self._t0, self._width, self._open = clock(), 0, False
        if start and enabled:
            self._write(f"{self.label}: resuming after epoch {start}/{self.total}", final=False)

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stderr

    def line(self, epoch: int, images_per_s: float, seconds_per_epoch: float | None = None) -> str:
        """The text for ``epoch`` done, at ``images_per_s`` training images per second (the ETA
        from ``seconds_per_epoch`` when given, else from this session's clock)."""
        elapsed = self._clock() - self._t0
        done = epoch - self.start
        measured = seconds_per_epoch is not None
        if not measured:
            seconds_per_epoch = elapsed / done if done > 0 else float("nan")
        eta = seconds_per_epoch * (self.total - epoch)
        if epoch >= self.total:
            when = "done" if measured else f"done in {format_duration(elapsed)}"
        else:
            when = f"ETA {format_duration(eta) if eta == eta else '?'}"
        return f"{self.label}: epoch {epoch}/{self.total}, {images_per_s:,.0f} images/s, {when}"

    def epoch(self, epoch: int, images_per_s: float, seconds_per_epoch: float | None = None) -> None:
        """Report ``epoch`` (1-based) finished."""
        if self.enabled:
            self._write(self.line(epoch, images_per_s, seconds_per_epoch), final=epoch >= self.total)

    def close(self) -> None:
        """End the line (a run stopped early leaves its last state on screen)."""
        if self.enabled and self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False

    def _write(self, text: str, *, final: bool) -> None:
        stream = self.stream
        if self._in_place if self._in_place is not None else _in_place(stream):
            pad = " " * max(0, self._width - len(text))
            stream.write(f"\r{text}{pad}" + ("\n" if final else ""))
            self._width, self._open = len(text), not final
        else:
            stream.write(text + "\n")
        stream.flush()


class RunWatcher:
    """The progress line of a run another process trains (a local job of ``companion experiments``
    or ``sweep``), read from the epochs its ``metrics.jsonl`` holds; the ETA is the mean of the
    logged epochs' wall times times the epochs left. One line per new epoch (never in place:
    several runs report at once)."""

    def __init__(self, config, run_dir, *, stream=None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.config, self._stream, self._size, self._line = config, stream, -1, None

    def poll(self) -> None:
        """Print a line if the run logged an epoch since the last poll."""
        try:
            size = self.path.stat().st_size
        except OSError:
            return
        if size == self._size:
            return
        self._size = size
        with open(self.path, encoding="utf-8") as f:
            lines = [line for line in f.read().split("\n")[:-1] if line.strip()]  # complete lines only
        if not lines:
            return
        rows = [json.loads(line) for line in lines]
        last = rows[-1]
        if self._line is None:
            self._line = EpochProgress(self.config, stream=self._stream or sys.stdout, in_place=False)
        seconds = [r["seconds"] for r in rows if r.get("seconds") is not None]
        self._line.epoch(last["epoch"], last.get("images_per_s") or 0.0,
                         sum(seconds) / len(seconds) if seconds else None)
