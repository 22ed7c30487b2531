"""The ``companion store prune`` command: keep in a results store only the runs some chapter reads
(:func:`companion.book.chapters.chapter_configs`); git history keeps the others.

Dry run by default: it lists what it would delete and their summed size. ``--delete`` deletes.
Only finished runs that no chapter reads are candidates; an unfinished run (no summary: training,
interrupted, or waiting to resume) and a locked one are never touched, nor are files that are not
run directories (the store's test labels).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from companion.book.chapters import chapter_configs
from companion.experiments import profiles
from companion.experiments.profiles import PROFILE_NAMES
from companion.experiments.study import Study
from companion.store import locks, results


def read_run_ids(study: Study) -> set[str]:
    """Run ids of every run some chapter reads at ``study``'s profile (listed from its store's finished runs)."""
    return {c.run_id() for configs in chapter_configs(study).values() for c in configs}


def unread_runs(study: Study) -> list[Path]:
    """Finished, unlocked run directories of ``study``'s store that no chapter reads, sorted."""
    folder = study.root
    if not folder.is_dir():
        raise FileNotFoundError(f"results store {folder} does not exist")
    read = read_run_ids(study)
    out = []
    for path in sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")):
        finished = (path / results.SUMMARY).is_file()
        if finished and path.name not in read and locks.lock_holder(path) is None:
            out.append(path)
    return out


def size_of(path: Path) -> int:
    """Bytes of the files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def add_cli(subparsers) -> None:
    """``companion store prune --profile P [--delete]``."""
    store = subparsers.add_parser("store", help="maintain a results store",
                                  description="Maintain a results store (results/<profile>).")
    sub = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    p = sub.add_parser("prune", help="delete the finished runs no chapter reads (dry run unless --delete)",
                       description="List (and with --delete, delete) the finished runs of the store that no "
                                   "chapter of the book reads; unfinished and locked runs are never touched.")
    p.add_argument("--profile", choices=PROFILE_NAMES, default="smoke")
    p.add_argument("--results-dir", default=None, help="results store (default results/<profile>)")
    p.add_argument("--delete", action="store_true", help="delete them (default: only list them)")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    study = Study(profiles.get(args.profile), args.results_dir)
    root = study.root
    unread = unread_runs(study)
    total = 0
    for path in unread:
        run = results.load_run(path)
        size = size_of(path)
        total += size
        c = run.config
        print(f"{path.name}  {size / 2**20:6.2f} MiB  {c.model} α={c.alpha} {c.optimizer} {c.epochs} ep")
        if args.delete:
            shutil.rmtree(path)
    verb = "deleted" if args.delete else "would delete (dry run; --delete deletes)"
    print(f"{len(unread)} run(s) no chapter reads, {total / 2**20:.2f} MiB: {verb} in {root}")
    return 0
