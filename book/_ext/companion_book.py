"""Sphinx extension for the companion book (Jupyter Book 1.x ``sphinx.local_extensions``).

Two things Jupyter Book's own configuration cannot express:

* **One repository URL.** ``repository.url`` in ``_config.yml`` is the book's only record of where
  the repository lives; the environment variable ``BOOK_REPOSITORY_URL`` (set by the publishing
  workflow from ``${{ github.server_url }}/${{ github.repository }}``) replaces it at build time,
  before the theme derives its repository button and launch links from it.
* **Launch buttons open the source notebook.** A chapter page is rendered from the executed copy
  ``book/NN_name.ipynb``, which is not committed, so the theme's Binder / Colab / JupyterHub links
  (built from the page's path) would point at a file the repository does not have. For every page
  ``book/NN_name`` whose source ``notebooks/NN_name.ipynb`` exists, the links are rewritten to
  that committed notebook.

It also adds ``static/companion_book.css`` (display equations wider than the page scroll instead
of losing their left end).
"""

from __future__ import annotations

import os
from pathlib import Path

#: Folder of the committed source notebooks, relative to the repository root (= the book root).
NOTEBOOKS_DIR = "notebooks"
#: Environment variable that overrides ``repository.url`` (the publishing workflow sets it).
URL_VARIABLE = "BOOK_REPOSITORY_URL"


def override_repository_url(app, config) -> None:
    """``config-inited``: take the repository URL from ``$BOOK_REPOSITORY_URL`` when it is set."""
    url = os.environ.get(URL_VARIABLE, "").strip().rstrip("/")
    if not url:
        return
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"{URL_VARIABLE}={url!r}: expected an http(s) URL of the repository")
    config.html_theme_options = {**config.html_theme_options, "repository_url": url}


def source_notebook(srcdir: str | os.PathLike, pagename: str) -> str | None:
    """``notebooks/<name>.ipynb`` (repository-relative) when it is the source of ``pagename``."""
    name = Path(pagename).name
    relative = f"{NOTEBOOKS_DIR}/{name}.ipynb"
    return relative if (Path(srcdir) / relative).is_file() else None


def link_source_notebooks(app, pagename, templatename, context, doctree) -> None:
    """``html-page-context`` (after the theme's launch buttons): point them at ``notebooks/``."""
    source = source_notebook(app.srcdir, pagename)
    if source is None:
        return
    rendered = f"{pagename}.ipynb"  # the path the theme put into each launch URL
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if "url" in button:
                button["url"] = button["url"].replace(rendered, source)


def add_static_files(app, config) -> None:
    """``config-inited``: serve ``static/`` and load its style sheet on every page."""
    config.html_static_path = [*config.html_static_path, str(Path(__file__).parent / "static")]
    app.add_css_file("companion_book.css")


def setup(app):
    app.connect("config-inited", override_repository_url)
    app.connect("config-inited", add_static_files)
    # sphinx-book-theme adds its launch buttons at priority 501; run after it.
    app.connect("html-page-context", link_source_notebooks, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
