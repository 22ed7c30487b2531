"""The package's layers point one way and hold no import cycle (``[tool.importlinter]`` in
pyproject.toml, checked by ``lint-imports``), and no module imports another's private names."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import companion

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(companion.__file__).resolve().parent


def _lint_imports() -> str | None:
    """The ``lint-imports`` of the running interpreter's environment, else the one on PATH."""
    beside = Path(sys.executable).with_name("lint-imports")
    return str(beside) if beside.is_file() else shutil.which("lint-imports")


def test_lint_imports_keeps_every_contract():
    exe = _lint_imports()
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    # the package under test, whichever checkout it is imported from
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE.parent), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([exe, str(ROOT / "pyproject.toml"), "--no-cache"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_no_private_name_crosses_modules():
    crossing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("companion"):
                crossing += [f"{path.relative_to(PACKAGE)}: from {node.module} import {a.name}"
                             for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert not crossing, "\n".join(crossing)


def test_the_package_root_holds_at_most_seven_modules():
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(modules) <= 7, modules
