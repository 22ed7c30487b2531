"""The notebooks: committed with smoke-profile outputs that a fresh run reproduces (nbval), and
``companion.book.reproduce``, which executes them into the book's chapters (issue #2, item 6)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from companion.book import reproduce as rp

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/*.ipynb missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_holds_smoke_outputs(path):
    """Reference outputs for nbval: executed at the notebook's default (smoke) parameters."""
    nb = nbformat.read(path, as_version=4)
    tags = [cell.metadata.get("tags", []) for cell in nb.cells]
    assert sum("parameters" in t for t in tags) == 1, "exactly one cell tagged 'parameters'"
    assert not any("injected-parameters" in t for t in tags), "refresh with reproduce(in_place=True)"
    params = next(c for c, t in zip(nb.cells, tags) if "parameters" in t)
    assert f'profile = "{rp.REFERENCE_PROFILE}"' in params.source
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert all(c.execution_count is not None for c in code), "notebook committed unexecuted"
    assert sum(len(c.outputs) for c in code) > 0
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)


@pytest.mark.slow
def test_notebooks_reproduce_committed_outputs():
    """Re-execute notebooks/ with nbval and compare every output with the committed one."""
    pytest.importorskip("nbval", reason="nbval not installed (pip install -e '.[test]')")
    pytest.importorskip("myst_nb", reason="the notebooks glue figures with myst_nb (pip install -e '.[book]')")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
         "--nbval-current-env", f"--nbval-sanitize-with={SANITIZE}", *map(str, NOTEBOOKS)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, f"nbval found differences or errors:\n{run.stdout[-8000:]}\n{run.stderr[-2000:]}"


# ------------------------------------------------------------------ companion.book.reproduce
def _notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('profile = "smoke"\nscale = 1', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(body),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_unknown_profile_is_refused(tmp_path):
    with pytest.raises(ValueError, match="smoke, cpu, paper"):
        rp.reproduce("huge", notebooks=tmp_path, out=tmp_path / "out")


def test_unknown_only_and_undeclared_parameter_are_refused_before_running(tmp_path):
    _notebook(tmp_path / "01_a.ipynb", "x = 1")
    with pytest.raises(ValueError, match="01_a"):
        rp.reproduce("smoke", notebooks=tmp_path, out=tmp_path / "out", only=["02_b"])
    with pytest.raises(ValueError, match="epochs"):
        rp.reproduce("smoke", notebooks=tmp_path, out=tmp_path / "out", epochs=3)
    assert not (tmp_path / "out" / "01_a.ipynb").exists()


def test_missing_notebook_folder_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        rp.reproduce("smoke", notebooks=tmp_path / "nowhere", out=tmp_path / "out")


def test_in_place_only_refreshes_smoke_defaults(tmp_path):
    _notebook(tmp_path / "01_a.ipynb", "x = 1")
    with pytest.raises(ValueError, match="smoke"):
        rp.reproduce("paper", notebooks=tmp_path, in_place=True)


def test_parameter_cells_are_tagged_for_removal():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("profile = 'smoke'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("profile = 'cpu'", metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell("print(profile)"),
    ])
    rp._hide_parameter_cells(nb)
    assert [c.metadata.get("tags") for c in nb.cells] == [
        ["parameters", "remove-cell"], ["injected-parameters", "remove-cell"], []]


def test_inputs_digest_follows_notebook_and_parameters(tmp_path):
    path = _notebook(tmp_path / "01_a.ipynb", "x = 1")
    smoke = rp._inputs_digest(path, {"profile": "smoke"})
    assert smoke == rp._inputs_digest(path, {"profile": "smoke"})
    assert smoke != rp._inputs_digest(path, {"profile": "cpu"})
    _notebook(path, "x = 2")
    assert smoke != rp._inputs_digest(path, {"profile": "smoke"})


def test_inputs_digest_follows_the_store_and_the_whole_package(tmp_path, monkeypatch):
    # a run that lands after a chapter was built makes it out of date; so does a change to any
    # module of the package (not only companion.book's)
    path = _notebook(tmp_path / "01_a.ipynb", "x = 1")
    store = tmp_path / "store"
    params = {"profile": "smoke", "results_dir": str(store)}
    empty = rp._inputs_digest(path, params)
    (store / "abc123").mkdir(parents=True)
    (store / "abc123" / "config.json").write_text("{}")  # unfinished: no summary yet
    assert rp._inputs_digest(path, params) == empty
    (store / "abc123" / "summary.json").write_text('{"final_test_acc": 0.5}')
    finished = rp._inputs_digest(path, params)
    assert finished != empty
    (store / "abc123" / "weights.npz").write_bytes(b"w")
    assert rp._inputs_digest(path, params) != finished
    seen = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: seen.append(self) or real(self))
    rp._inputs_digest(path, params)
    assert any(p.name == "optim.py" for p in seen) and any(p.name == "loop.py" for p in seen)


@pytest.mark.slow
def test_reproduce_injects_profile_and_keeps_good_chapter_on_failure(tmp_path):
    pytest.importorskip("papermill", reason="papermill not installed")
    src, out = tmp_path / "notebooks", tmp_path / "book"
    src.mkdir()
    _notebook(src / "01_a.ipynb", "print(profile, scale)")
    [target] = rp.reproduce("cpu", notebooks=src, out=out, progress=False, scale=3)
    nb = nbformat.read(target, as_version=4)
    printed = [o.text for c in nb.cells if c.cell_type == "code" for o in c.outputs if "text" in o]
    assert printed == ["cpu 3\n"]
    hidden = [c for c in nb.cells if "remove-cell" in c.metadata.get("tags", [])]
    assert {t for c in hidden for t in c.metadata.tags} >= {"parameters", "injected-parameters"}
    assert nb.metadata["companion"]["parameters"] == {"profile": "cpu", "scale": 3}

    good = target.read_bytes()
    _notebook(src / "01_a.ipynb", "raise ValueError('boom')")
    with pytest.raises(RuntimeError, match="boom"):
        rp.reproduce("cpu", notebooks=src, out=out, progress=False, scale=3)
    assert target.read_bytes() == good
    failed = out / "01_a.ipynb.failed"
    assert "boom" in json.dumps(json.loads(failed.read_text()))
    assert not list(out.glob(".*.tmp.ipynb"))
