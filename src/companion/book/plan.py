"""What each chapter costs and how to rerun it: the Reproducibility page and
``companion reproduce --dry-run``.

Input: the runs each chapter reads (``{chapter: [TrainConfig, ...]}``, from
:mod:`companion.book.chapters`) and the results store (:class:`~companion.experiments.study.Study`). Per chapter: how many runs, how many are finished,
their summed training time, the devices / torch versions / commits that trained them, the
estimated GPU-hours of training them all (:mod:`companion.experiments.cost`), and the commands that rerun the
chapter at the ``cpu`` and ``paper`` profiles. Provenance names data by dataset, split sizes and
content hash, never by a path of the machine that trained it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from companion.book import chapters
from companion.experiments import profiles
from companion.experiments.cost import Throughput, gpu_hours
from companion.experiments.study import Study
from companion.store.provenance import find_book_root
from companion.store import results
from companion.train.progress import format_duration


def rerun_commands(chapter: str, profile: str, *, trains: bool = True) -> str:
    """The commands that retrain what ``chapter`` needs at ``profile`` (``experiments`` trains
    every missing run of the book and skips finished ones) and re-execute it; ``trains=False``:
    a chapter that reads no runs only needs re-executing."""
    execute = f"companion reproduce --profile {profile} --only {chapter}"
    return f"companion experiments --profile {profile} && {execute}" if trains else execute


def _distinct(values) -> str:
    seen = sorted({str(v) for v in values if v not in (None, "")})
    return ", ".join(seen) if seen else "–"


def data_provenance(run: results.Run) -> str:
    """``dataset: train/val/test sizes, content hash`` of the data a run trained on."""
    d = run.summary.get("dataset", {})
    return (f"{d.get('dataset', run.config.dataset)}: {d.get('n_train')}/{d.get('n_val')}/{d.get('n_test')} "
            f"images, blake2b {d.get('content_blake2b', '?')}")


def chapter_plan(study: Study, chapter_runs: dict[str, list], *,
                 throughput: Throughput | None = None) -> pd.DataFrame:
    """One row per chapter: runs needed, finished (in ``study``'s store), missing, summed training
    hours of the finished runs, devices, torch versions, commits and data of those runs, estimated GPU-hours."""
    throughput = throughput or Throughput.load()
    rows = []
    for chapter, configs in chapter_runs.items():
        unique = list({c.run_id(): c for c in configs}.values())
        done = [r for r in (study.find(c) for c in unique) if r is not None]
        rows.append({
            "chapter": chapter, "runs": len(unique), "finished": len(done), "missing": len(unique) - len(done),
            "train_hours": sum(r.summary.get("wall_time_s", 0.0) for r in done) / 3600,
            "devices": _distinct(r.summary.get("device_name") for r in done),
            "torch": _distinct(r.summary.get("torch_version") for r in done),
            "commits": _distinct((r.summary.get("git_commit") or "")[:7] for r in done),
            "data": _distinct(data_provenance(r) for r in done),
            "gpu_hours_estimate": gpu_hours(unique, throughput) if unique else 0.0,
        })
    return pd.DataFrame(rows)


def executed_chapters(book_dir: str | Path) -> pd.DataFrame:
    """What papermill recorded for each executed chapter in ``book_dir``: parameters and
    execution time (seconds); chapters not executed yet are absent, and so are the temporary
    copies of chapters being executed (``.NAME.tmp.ipynb``) and unreadable files."""
    rows = []
    for path in sorted(Path(book_dir).glob("*.ipynb")):
        if path.name.startswith("."):
            continue
        try:
            meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
        except (OSError, ValueError):
            continue
        papermill = meta.get("papermill", {})
        rows.append({"chapter": path.stem,
                     "parameters": json.dumps(meta.get("companion", {}).get("parameters", {}), sort_keys=True),
                     "execution_s": papermill.get("duration")})
    return pd.DataFrame(rows, columns=["chapter", "parameters", "execution_s"])


def describe_plan(plan: pd.DataFrame, profile: str, throughput: Throughput) -> str:
    """The dry-run text: one line per chapter, then the totals and where the throughput comes from."""
    lines = [f"profile {profile}: what each chapter trains (estimated at {throughput.flops_per_s / 1e12:.0f} "
             f"TFLOP/s, {throughput.source})"]
    for row in plan.itertuples():
        lines.append(f"  {row.chapter:<24} {row.runs:4d} runs ({row.missing} missing)  "
                     f"~{row.gpu_hours_estimate:,.1f} GPU-h")
    lines.append(f"  {'all chapters (distinct runs)':<24} {int(plan.attrs.get('distinct_runs', plan['runs'].sum())):4d} runs  "
                 f"~{plan.attrs.get('distinct_gpu_hours', plan['gpu_hours_estimate'].sum()):,.1f} GPU-h")
    lines.append("  (matmul FLOPs only: a lower bound; the optimizer step, augmentation and data movement "
                 "are memory-bound and not counted)")
    return "\n".join(lines)


# ------------------------------------------------------------------ the Reproducibility page
#: the page itself (executed last; its own execution time is not known while it runs)
THIS_PAGE = "12_reproducibility"


def book_root(start: str | Path | None = None) -> Path:
    """The nearest folder from ``start`` (default: the working directory) up that holds the
    book's ``_toc.yml`` (notebooks run from ``notebooks/`` or the top both find it)."""
    root = find_book_root(start)
    if root is not None:
        return root
    here = Path(start or Path.cwd()).resolve()
    raise FileNotFoundError(f"no _toc.yml in {here} or above: run from inside the book's repository")


def chapter_titles(notebooks_dir: str | Path) -> dict[str, str]:
    """Chapter name → the title (first ``# `` heading) of each source notebook, sorted by name."""
    titles = {}
    for path in sorted(Path(notebooks_dir).glob("*.ipynb")):
        if path.name.startswith("."):  # a copy being executed
            continue
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        text = "".join(next((c["source"] for c in cells if c["cell_type"] == "markdown"), []))
        heading = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), path.stem)
        titles[path.stem] = heading
    return titles


def _execution(executed: pd.DataFrame, chapter: str, profile: str, current: str) -> tuple[str, str]:
    """(parameters, execution time) of ``chapter`` as executed at ``profile``."""

    if chapter == current:
        return f'{{"profile": "{profile}"}}', "this page (being executed)"
    row = executed[executed["chapter"] == chapter]
    if row.empty or json.loads(row["parameters"].iloc[0]).get("profile") != profile:
        return "–", f"not executed at {profile}"
    seconds = row["execution_s"].iloc[0]
    return row["parameters"].iloc[0], (format_duration(seconds) if seconds is not None else "–")


def reproducibility_tables(study: Study, *, book_dir=None, notebooks_dir=None, current: str = THIS_PAGE,
                           throughput: Throughput | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The Reproducibility page's two tables, one row per chapter (the notebooks in
    ``notebooks_dir``, default the book's ``notebooks/``).

    * this build, at ``study``'s profile and store: parameters and execution time papermill
      recorded in ``book_dir`` (default the book's ``book/``; ``current``, the chapter being
      executed, is marked as such), the runs the chapter reads, how many are finished and their
      summed training time (``wall_time_s``), and the devices, torch versions,
      commits and data (dataset, split sizes, content hash) of those runs;
    * rerunning: the commands (as Markdown code) that rerun the chapter at the ``cpu`` and
      ``paper`` profiles, and at ``paper`` the number of runs and their estimated GPU-hours
      (:mod:`companion.experiments.cost`: counted matmul FLOPs at ``throughput``, default
      :meth:`Throughput.load`; a lower bound).
    """

    top = book_root()
    throughput = throughput or Throughput.load(top / "results" / "paper_throughput.json")
    titles = chapter_titles(notebooks_dir or top / "notebooks")
    executed = executed_chapters(book_dir or top / "book")
    here = chapter_plan(study, chapters.chapter_configs(study), throughput=throughput).set_index("chapter")
    paper_configs = chapters.chapter_configs(Study(profiles.get("paper")))
    build, rerun = [], []
    for chapter, title in titles.items():
        parameters, execution = _execution(executed, chapter, study.profile.name, current)
        plan = here.loc[chapter] if chapter in here.index else None
        n_runs = int(plan["runs"]) if plan is not None else 0
        build.append({
            "chapter": title, "parameters": parameters, "execution time": execution, "runs": n_runs,
            "finished": int(plan["finished"]) if plan is not None else 0,
            "training time": format_duration(plan["train_hours"] * 3600) if plan is not None and n_runs else "–",
            **{k: (plan[k] if plan is not None and n_runs else "–") for k in ("devices", "torch", "commits", "data")},
        })
        configs = list({c.run_id(): c for c in paper_configs.get(chapter, [])}.values())
        trains = bool(configs) or n_runs > 0
        rerun.append({
            "chapter": title,
            "rerun at cpu": f"`{rerun_commands(chapter, 'cpu', trains=trains)}`",
            "rerun at paper": f"`{rerun_commands(chapter, 'paper', trains=trains)}`",
            "paper runs": len(configs),
            "paper GPU-hours (est.)": f"{gpu_hours(configs, throughput):,.1f}" if configs else "–",
        })
    return pd.DataFrame(build), pd.DataFrame(rerun)
