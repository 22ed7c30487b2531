"""Rebuild the book's chapters: execute every notebook with papermill at one scale profile.

``reproduce(profile)`` runs ``notebooks/*.ipynb`` (sorted) with the parameter ``profile``
injected and writes the executed copies to ``book/<same name>.ipynb``; Jupyter Book then
renders those copies without executing anything (``execute_notebooks: "off"``).

* The parameter cells (papermill's ``injected-parameters`` cell and the notebook's own
  ``parameters`` cell) are tagged ``remove-cell`` in the executed copy, the tag Jupyter Book
  1.x (MyST-NB) honours to drop a cell from the page; the profile is stated in the captions.
* A notebook is executed into a temporary file that replaces the chapter only on success, so a
  failing notebook never overwrites a good chapter; the failed copy is kept beside it as
  ``<name>.ipynb.failed`` for inspection.
* An executed copy records a hash of what produced it (notebook, parameters, the package's
  source, the finished runs of the store it reads); it is re-executed only when that hash
  changes (e.g. a run lands), or with ``force=True``.
* ``in_place=True`` refreshes the committed notebooks themselves (smoke profile, no injected
  cell, no run-specific metadata): these are the reference outputs ``nbval`` compares against.
* Progress (``progress=True``, the default): one line per notebook, and what the notebook's
  kernel prints to stdout/stderr is forwarded to this process's as it runs (papermill's
  ``stdout_file``/``stderr_file``), with ``progress=True`` injected into the notebooks that
  declare it, so a run trained inside a chapter shows its progress line
  (:mod:`companion.train.progress`) on the terminal. ``progress`` does not change a chapter's content,
  so it is left out of the hash that decides whether a chapter is up to date.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import yaml

#: Scale profiles a notebook can be run at (defined once, in ``companion.experiments.profiles``).
from companion.book import chapters, plan
from companion.experiments import cost, profiles
from companion.experiments.cost import Throughput
from companion.experiments.profiles import PROFILE_NAMES as PROFILES
from companion.experiments.runs import results_dir
from companion.experiments.study import Study
from companion.store.artifacts import WEIGHTS
from companion.store.results import SUMMARY

#: Profile of the outputs committed in ``notebooks/`` (what ``nbval`` checks).
REFERENCE_PROFILE = "smoke"
NOTEBOOKS_DIR = "notebooks"
BOOK_DIR = "book"
#: Cells holding parameters are removed from the rendered page (MyST-NB cell tag).
PARAMETER_TAGS = ("parameters", "injected-parameters")
REMOVE_TAG = "remove-cell"
#: Key under the executed notebook's metadata where the provenance is stored.
META_KEY = "companion"
#: notebook parameter that turns on training progress lines; not part of the inputs digest
PROGRESS_PARAM = "progress"


def find_notebooks(notebooks=None, only: Iterable[str] | None = None) -> list[Path]:
    """The notebooks to run, sorted by name.

    ``notebooks``: None (``notebooks/``), a directory, or an iterable of notebook paths.
    ``only``: names (``01_parameters`` or ``01_parameters.ipynb``) to keep.
    """
    if notebooks is None or isinstance(notebooks, (str, os.PathLike)):
        folder = Path(NOTEBOOKS_DIR if notebooks is None else notebooks)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"notebook folder {str(folder)!r} not found (run from the project root, "
                "or pass the folder that holds the *.ipynb notebooks)"
            )
        paths = sorted(folder.glob("*.ipynb"))
    else:
        paths = sorted(Path(p) for p in notebooks)
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"notebook(s) not found: {', '.join(missing)}")
    if only:
        wanted = {Path(name).stem for name in only}
        unknown = wanted - {p.stem for p in paths}
        if unknown:
            raise ValueError(
                f"unknown notebook(s) {sorted(unknown)}; available: {[p.stem for p in paths]}"
            )
        paths = [p for p in paths if p.stem in wanted]
    if not paths:
        raise FileNotFoundError("no *.ipynb notebooks to run")
    return paths


def declared_parameters(path: Path) -> set[str]:
    """Names assigned in the notebook's cell tagged ``parameters`` (papermill's convention)."""
    import papermill

    return set(papermill.inspect_notebook(str(path)))


def reproduce(
    profile: str = "smoke",
    notebooks=None,
    out: str | os.PathLike = BOOK_DIR,
    force: bool = False,
    progress: bool = True,
    *,
    only: Iterable[str] | None = None,
    in_place: bool = False,
    **extra_params,
) -> list[Path]:
    """Execute the notebooks at ``profile`` into ``out`` and return the written paths.

    ``extra_params`` are injected into the notebooks that declare them (each must be declared
    by at least one). With ``in_place=True`` the notebooks are re-executed into themselves at
    their default (smoke) parameters to refresh the reference outputs that ``nbval`` compares.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if in_place and (profile != REFERENCE_PROFILE or extra_params):
        raise ValueError(
            f"in_place refreshes the committed reference outputs, which are the "
            f"{REFERENCE_PROFILE!r} profile at the notebooks' defaults; got profile={profile!r}"
            + (f" and parameters {sorted(extra_params)}" if extra_params else "")
        )
    paths = find_notebooks(notebooks, only)
    declared = {path: declared_parameters(path) for path in paths}
    for path, names in declared.items():
        if "profile" not in names:
            raise ValueError(
                f"{path} has no 'profile' in a cell tagged 'parameters'; every notebook must "
                "declare one"
            )
    undeclared = sorted(set(extra_params) - set().union(*declared.values()))
    if undeclared:
        raise ValueError(
            f"parameter(s) {undeclared} are declared by none of the notebooks; declared: "
            f"{sorted(set().union(*declared.values()))}"
        )

    out_dir = None if in_place else Path(out)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, path in enumerate(paths, 1):
        if in_place:
            params, target = {}, path
        else:
            params = {"profile": profile}
            params.update({k: v for k, v in extra_params.items() if k in declared[path]})
            target = out_dir / path.name
        digest = _inputs_digest(path, params)
        if not force and not in_place and _recorded_digest(target) == digest:
            if progress:
                print(f"[{i}/{len(paths)}] {path.name}: up to date ({profile})", flush=True)
            written.append(target)
            continue
        if progress:
            print(f"[{i}/{len(paths)}] {path.name}: executing at profile {profile}", flush=True)
            if not in_place and PROGRESS_PARAM in declared[path]:
                params.setdefault(PROGRESS_PARAM, True)
        _execute(path, target, params, digest, in_place=in_place, stream=progress)
        written.append(target)
    return written


def _execute(source: Path, target: Path, params: dict, digest: str, *, in_place: bool,
             stream: bool = False) -> None:
    """Run ``source`` into a temporary file beside ``target``; replace ``target`` on success.
    ``stream``: forward the kernel's stdout/stderr to this process's as they come."""
    import nbformat
    import papermill

    tmp = target.with_name(f".{target.stem}.tmp.ipynb")
    failed = target.with_name(f"{target.name}.failed")
    forward = {"stdout_file": sys.stdout, "stderr_file": sys.stderr} if stream else {}
    try:
        papermill.execute_notebook(
            str(source), str(tmp), parameters=params or None, progress_bar=False, **forward
        )
    except papermill.PapermillExecutionError as exc:
        if tmp.exists():
            os.replace(tmp, failed)
        raise RuntimeError(
            f"{source} failed at cell {exc.exec_count} ({exc.ename}: {exc.evalue}); the executed "
            f"copy is in {failed}; {target} was left as it was"
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    nb = nbformat.read(tmp, as_version=4)
    if in_place:
        _strip_run_metadata(nb)
    else:
        _hide_parameter_cells(nb)
        shown = {k: v for k, v in params.items() if k != PROGRESS_PARAM}  # what determines the content
        nb.metadata[META_KEY] = {"inputs_digest": digest, "parameters": shown}
    nbformat.write(nb, tmp)
    os.replace(tmp, target)
    if failed.exists():
        failed.unlink()


def _hide_parameter_cells(nb) -> None:
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if any(tag in tags for tag in PARAMETER_TAGS) and REMOVE_TAG not in tags:
            tags.append(REMOVE_TAG)


def _strip_run_metadata(nb) -> None:
    """Drop what changes from run to run (timings, paths) so the committed file is stable."""
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.metadata.get("tags") == []:
            del cell.metadata["tags"]


def _recorded_digest(target: Path) -> str | None:
    if not target.is_file():
        return None
    try:
        meta = json.loads(target.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError):
        return None
    return meta.get(META_KEY, {}).get("inputs_digest")


def _inputs_digest(source: Path, params: dict) -> str:
    """Hash of what determines an executed notebook: its source, parameters, the whole package's
    code and the finished runs of the results store it reads (:func:`_store_digest`)."""
    h = hashlib.sha256()
    h.update(source.read_bytes())
    content = {k: v for k, v in params.items() if k != PROGRESS_PARAM}
    h.update(json.dumps(content, sort_keys=True, default=str).encode())
    package = Path(__file__).resolve().parents[1]  # companion/, not only companion/book/
    for path in sorted(package.rglob("*")):
        if path.suffix in {".py", ".json", ".yaml"} and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(package)).encode())
            h.update(path.read_bytes())
    if "profile" in params:
        h.update(_store_digest(results_dir(profiles.get(params["profile"]), params.get("results_dir"))))
    return h.hexdigest()[:16]


def _store_digest(root: Path) -> bytes:
    """What of a results store a chapter can read: each finished run's summary (written last, so
    it changes whenever the run does) and which runs have stored weights. A run that finishes
    after a chapter was built makes the chapter out of date."""
    h = hashlib.sha256()
    for summary in sorted(Path(root).glob(f"*/{SUMMARY}")):
        h.update(summary.parent.name.encode())
        h.update(summary.read_bytes())
        h.update(b"w" if (summary.parent / WEIGHTS).is_file() else b"-")
    return h.digest()


def _parse_param(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise ValueError(f"--param expects NAME=VALUE (VALUE read as YAML), got {text!r}")
    return name, yaml.safe_load(value)


def add_cli(subparsers) -> None:
    """``companion reproduce --profile {smoke,cpu,paper} [--only NAME] [--force]``."""
    p = subparsers.add_parser(
        "reproduce",
        help="execute the notebooks at a scale profile into book/ (then: jupyter-book build .)",
        description="Execute notebooks/*.ipynb with papermill at a profile; the executed copies "
        "in book/ are the book's chapters.",
    )
    p.add_argument("--profile", choices=PROFILES, default="smoke", help="scale (default smoke)")
    p.add_argument("--only", action="append", metavar="NAME", help="run only this notebook "
                   "(stem or file name; repeatable)")
    p.add_argument("--force", action="store_true", help="re-execute even if up to date")
    p.add_argument("--notebooks", default=NOTEBOOKS_DIR, help="folder of notebooks")
    p.add_argument("--out", default=BOOK_DIR, help="folder for executed copies (default book)")
    p.add_argument("--in-place", action="store_true", help="refresh the committed notebooks' "
                   "reference outputs (smoke profile, no injected parameters)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="extra notebook parameter (repeatable)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="print nothing while executing (default: a line per notebook, and the notebooks' "
                        "own output, such as training progress lines, as it comes)")
    p.add_argument("--dry-run", action="store_true", help="print what each chapter trains (runs, "
                   "missing, estimated GPU-hours) and execute nothing")
    p.set_defaults(func=_run_cli)


def dry_run(profile: str, root=None) -> str:
    """The plan of ``companion reproduce --profile P --dry-run`` (see :mod:`companion.book.plan`)."""
    study = Study(profiles.get(profile), root)
    needed = chapters.chapter_configs(study)
    throughput = Throughput.load()
    table = plan.chapter_plan(study, needed, throughput=throughput)
    distinct = list({c.run_id(): c for cs in needed.values() for c in cs}.values())
    table.attrs["distinct_runs"] = len(distinct)
    table.attrs["distinct_gpu_hours"] = cost.gpu_hours(distinct, throughput)
    return plan.describe_plan(table, profile, throughput)


def _run_cli(args) -> int:
    if args.dry_run:
        print(dry_run(args.profile))
        return 0
    extra = dict(_parse_param(text) for text in args.param)
    written = reproduce(
        args.profile, args.notebooks, args.out, force=args.force, progress=args.progress,
        only=args.only, in_place=args.in_place, **extra,
    )
    for path in written:
        print(path)
    return 0
