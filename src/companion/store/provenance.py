"""Where a run and the book come from: the git commit of the source tree (recorded in every run's
summary and shown by the Reproducibility chapter) and the book's root folder (the one holding
``_toc.yml``), under which the committed results store ``results/<profile>`` lives."""

from __future__ import annotations

import subprocess
from pathlib import Path

#: the file that marks the book's root folder
BOOK_MARKER = "_toc.yml"


def git_commit() -> str | None:
    """Commit of the source tree this package runs from, if it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def find_book_root(start: str | Path | None = None) -> Path | None:
    """The nearest folder from ``start`` (default: the working directory) up that holds the
    book's ``_toc.yml`` (notebooks run from ``notebooks/`` and the CLI from the top both find
    it), or None."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / BOOK_MARKER).is_file():
            return folder
    return None
