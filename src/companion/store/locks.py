"""One writer per run: ``lock.json`` in a run directory while a process trains it (its host,
pid, start time and a heartbeat). :func:`run_lock` takes it, :func:`lock_holder` says who holds
it, and a lock whose holder is gone is stale and broken."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

from companion.store.results import write_json

#: held while a process trains the run (see :func:`run_lock`); never part of a finished run
LOCK = "lock.json"

#: a lock whose holder runs on another host is stale when its heartbeat (refreshed every epoch)
#: is older than this many seconds; on the same host it is stale as soon as its pid is gone
LOCK_STALE_S = 6 * 3600.0
#: how often ``run_lock(wait=True)`` looks again (seconds)
LOCK_POLL_S = 2.0


class RunLocked(RuntimeError):
    """The run is being trained by another live process (the message names it)."""


def _read_lock(path: Path) -> dict | None:
    """The lock's content, {} while its creator is still writing it, None when there is no lock."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(text)
    except ValueError:
        holder = None
    return holder if isinstance(holder, dict) else {}


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` (of this host) runs: it exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    try:  # Linux: a killed process nobody has reaped yet is a zombie ("Z"), not alive
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _is_stale(holder: dict, path: Path, stale_s: float) -> bool:

    if not holder:  # unreadable: stale once it is older than a writer could take to fill it
        try:
            return time.time() - path.stat().st_mtime > 60
        except FileNotFoundError:
            return True
    if holder.get("host") == socket.gethostname():
        return not _pid_alive(int(holder.get("pid", -1)))
    return time.time() - float(holder.get("heartbeat", 0)) > stale_s


def lock_holder(run_dir: str | os.PathLike, stale_s: float | None = None) -> dict | None:
    """Who is training the run in ``run_dir`` now: the lock's ``host``, ``pid``, ``started``,
    ``heartbeat`` (Unix times) and ``path``; None when nobody holds it or the lock is stale
    (same host: its pid is gone; other host: no heartbeat for ``stale_s``, default :data:`LOCK_STALE_S`)."""
    path = Path(run_dir) / LOCK
    holder = _read_lock(path)
    if holder is None or _is_stale(holder, path, LOCK_STALE_S if stale_s is None else stale_s):
        return None
    return {**holder, "path": str(path)}


def _describe(holder: dict) -> str:

    if not holder.get("pid"):
        return f"a process that is still writing {holder['path']}"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    beat = time.time() - float(holder.get("heartbeat", 0))
    return (f"pid {holder['pid']} on host {holder.get('host')} (since {started}, last heartbeat "
            f"{beat:.0f} s ago; lock file {holder['path']})")


class RunLock:
    """A held run lock (see :func:`run_lock`); :meth:`heartbeat` tells others it is alive."""

    def __init__(self, path: Path, token: str):
        self.path, self.token = path, token

    def _owned(self) -> dict | None:
        holder = _read_lock(self.path)
        return holder if holder and holder.get("token") == self.token else None

    def heartbeat(self) -> None:

        holder = self._owned()
        if holder is not None:
            write_json(self.path, {**holder, "heartbeat": time.time()})

    def release(self) -> None:
        if self._owned() is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


def _try_lock(path: Path, stale_s: float) -> RunLock | None:
    """Create the lock file (O_EXCL) or break a stale one; None if a live holder has it."""
    import uuid

    token = uuid.uuid4().hex
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        holder = _read_lock(path)
        if holder is not None and _is_stale(holder, path, stale_s):
            _break(path, holder)
        return None
    now = time.time()
    info = {"host": socket.gethostname(), "pid": os.getpid(), "started": now, "heartbeat": now,
            "token": token, "run_id": path.parent.name}
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(info, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return RunLock(path, token)


def _break(path: Path, stale: dict) -> None:
    """Remove the stale lock ``stale``, under a short-lived guard so that two processes breaking
    it at once cannot remove a fresh lock that one of them has just taken."""

    guard = path.with_name(path.name + ".break")
    try:
        fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        with contextlib.suppress(FileNotFoundError):
            if time.time() - guard.stat().st_mtime > 60:  # its breaker died
                os.unlink(guard)
        return
    try:
        if _read_lock(path) == stale:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    finally:
        os.close(fd)
        os.unlink(guard)


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, *, wait: bool = False, stale_s: float | None = None,
             poll_s: float | None = None):
    """Hold ``run_dir``'s lock (one writer per run) for the ``with`` block; yields a
    :class:`RunLock`. A live holder is :class:`RunLocked` naming it, or, with ``wait=True``,
    waited for. A stale lock (see :func:`lock_holder`) is broken. Released on exit and on errors."""

    path = Path(run_dir) / LOCK
    stale_s = LOCK_STALE_S if stale_s is None else stale_s
    while True:
        lock = _try_lock(path, stale_s)
        if lock is not None:
            break
        holder = lock_holder(run_dir, stale_s)
        if holder is not None and not wait:
            raise RunLocked(f"run {Path(run_dir).name} is being trained by {_describe(holder)}; "
                            "wait for it (wait=True, --wait) or, if that process is gone, delete the lock file")
        time.sleep(0.05 if holder is None else LOCK_POLL_S if poll_s is None else poll_s)
    try:
        yield lock
    finally:
        lock.release()
