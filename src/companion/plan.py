"""What each chapter costs and how to rerun it: the Reproducibility page and
``companion reproduce --dry-run``.

Input: the runs each chapter reads (``{chapter: [TrainConfig, ...]}``, from
:mod:`companion.runs`) and the results store. Per chapter: how many runs, how many are finished,
their summed training time, the devices / torch versions / commits that trained them, the
estimated GPU-hours of training them all (:mod:`companion.cost`), and the commands that rerun the
chapter at the ``cpu`` and ``paper`` profiles. Provenance names data by dataset, split sizes and
content hash, never by a path of the machine that trained it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from companion import results
from companion.cost import Throughput, gpu_hours  # noqa: F401  (gpu_hours re-exported for reproduce)


def rerun_commands(chapter: str, profile: str) -> str:
    """The commands that retrain what ``chapter`` needs at ``profile`` and re-execute it."""
    return (f"companion experiments --profile {profile} && "
            f"companion reproduce --profile {profile} --only {chapter}")


def _distinct(values) -> str:
    seen = sorted({str(v) for v in values if v not in (None, "")})
    return ", ".join(seen) if seen else "–"


def data_provenance(run: results.Run) -> str:
    """``dataset: train/val/test sizes, content hash`` of the data a run trained on."""
    d = run.summary.get("dataset", {})
    return (f"{d.get('dataset', run.config.dataset)}: {d.get('n_train')}/{d.get('n_val')}/{d.get('n_test')} "
            f"images, blake2b {d.get('content_blake2b', '?')}")


def chapter_plan(chapter_runs: dict[str, list], root: str | Path, *,
                 throughput: Throughput | None = None) -> pd.DataFrame:
    """One row per chapter: runs needed, finished, missing, summed training hours of the finished
    runs, devices, torch versions, commits and data of those runs, estimated GPU-hours."""
    throughput = throughput or Throughput.load()
    rows = []
    for chapter, configs in chapter_runs.items():
        unique = list({c.run_id(): c for c in configs}.values())
        done = [r for r in (results.find_run(c, root) for c in unique) if r is not None]
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
    execution time (seconds); chapters not executed yet are absent."""
    rows = []
    for path in sorted(Path(book_dir).glob("*.ipynb")):
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
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
