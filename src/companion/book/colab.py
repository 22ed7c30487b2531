"""The set-up cell that lets a chapter's notebook run on Colab (or any fresh Jupyter).

A chapter's "Colab" button (Jupyter Book launch buttons, see ``_config.yml``) opens the
committed ``notebooks/NN_name.ipynb`` straight from the repository, in a kernel that has neither
the ``companion`` package nor the committed results the chapter reads. The cell below, inserted
first in every notebook, does nothing where ``companion`` imports (``make env``, Binder, the
book's own execution); elsewhere it clones the repository, installs the package from it with pip
(``pyproject.toml``; Colab's own torch is kept) plus ``myst-nb`` (the notebooks ``glue`` their
numbers for the book), and moves into the clone's ``notebooks/`` so that the chapter finds the
book's ``results/``. It is tagged ``remove-cell``: the book does not show it.

``python -m companion.book.colab notebooks/*.ipynb`` inserts (or refreshes) the cell, with the
repository URL and branch read from ``_config.yml`` (``repository.url`` / ``repository.branch``),
the one place the book records them.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

#: Tag that marks the set-up cell (refreshed in place when the cell is inserted again).
CELL_TAG = "colab-setup"
#: MyST-NB tag that keeps the cell off the rendered page.
HIDE_TAG = "remove-cell"
#: What ``_config.yml`` may hold before the real repository is filled in.
PLACEHOLDER = re.compile(r"github\.com/OWNER/", re.IGNORECASE)

_TEMPLATE = '''\
# Set-up for Colab or a fresh Jupyter: install the companion package if it is missing.
try:
    import companion  # noqa: F401
except ImportError:
    import os, subprocess, sys
    repository, branch = {url!r}, {branch!r}
    clone = os.path.abspath(os.path.basename(repository.rstrip("/")))
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "--depth", "1", "--branch", branch, repository, clone],
                       check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", clone, "myst-nb"],
                   check=True)
    os.chdir(os.path.join(clone, "notebooks"))  # the chapter reads the book's results/
    import importlib
    importlib.invalidate_caches()
    import companion  # noqa: F401
'''


def _check_url(url: str) -> str:
    url = str(url).strip().rstrip("/")
    if not re.fullmatch(r"https://[^\s/]+/[^\s/]+/[^\s/]+", url) or PLACEHOLDER.search(url):
        raise ValueError(
            f"repository URL {url!r}: expected the repository's https URL, like "
            "https://github.com/ORG/REPO (set repository.url in _config.yml, or pass --url)"
        )
    return url


def setup_cell(url: str, branch: str = "main") -> dict:
    """The set-up cell (nbformat 4 code cell) for the repository ``url`` at ``branch``."""
    url = _check_url(url)
    if not re.fullmatch(r"[A-Za-z0-9._/-]+", str(branch)):
        raise ValueError(f"branch {branch!r}: expected a git branch name such as 'main'")
    source = _TEMPLATE.format(url=url, branch=branch)
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {"tags": [HIDE_TAG, CELL_TAG]},
        "outputs": [],
        "source": source.splitlines(keepends=True),
    }


def is_setup_cell(cell: dict) -> bool:
    return CELL_TAG in cell.get("metadata", {}).get("tags", [])


def insert_setup_cell(path: str | Path, url: str, branch: str = "main") -> bool:
    """Put the set-up cell first in the notebook at ``path`` (replacing an earlier one).

    Returns True when the file changed. The notebook is rewritten only after it was read and
    parsed; a file that is not a notebook raises ValueError and is left as it was.
    """
    path = Path(path)
    cell = setup_cell(url, branch)
    text = path.read_text(encoding="utf-8")
    try:
        notebook = json.loads(text)
        cells = notebook["cells"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a Jupyter notebook (nbformat 4 JSON with 'cells')") from error
    if notebook.get("nbformat") == 4 and notebook.get("nbformat_minor", 0) >= 5:
        old = next((c for c in cells if is_setup_cell(c)), None)
        cell["id"] = old["id"] if old and "id" in old else "colab-setup"
    notebook["cells"] = [cell] + [c for c in cells if not is_setup_cell(c)]
    new_text = json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"  # as nbformat writes
    if new_text == text:
        return False
    path.write_text(new_text, encoding="utf-8")
    return True


def repository_from_config(config: str | Path = "_config.yml") -> tuple[str, str]:
    """(url, branch) from the book's ``_config.yml`` (``repository.url`` / ``.branch``)."""
    import yaml

    repository = (yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}).get("repository", {})
    if not repository.get("url"):
        raise ValueError(f"{config}: no repository.url (the repository's https URL)")
    return repository["url"], repository.get("branch", "main")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m companion.book.colab",
        description="Insert the Colab set-up cell first in each notebook (idempotent).")
    parser.add_argument("notebooks", nargs="+", type=Path, help="notebooks/*.ipynb")
    parser.add_argument("--config", default="_config.yml", help="book config with repository.url")
    parser.add_argument("--url", help="repository URL (default: repository.url of --config)")
    parser.add_argument("--branch", help="branch (default: repository.branch of --config, else main)")
    args = parser.parse_args(argv)
    url, branch = args.url, args.branch
    if url is None or branch is None:
        config_url, config_branch = repository_from_config(args.config)
        url, branch = url or config_url, branch or config_branch
    setup_cell(url, branch)  # one clear error before any notebook is touched
    for path in args.notebooks:
        changed = insert_setup_cell(path, url, branch)
        print(f"{path}: {'updated' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
