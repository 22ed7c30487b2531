"""Hyper-parameter sweeps (Appendix A.2): run a grid of configs, pick the best by *validation*
accuracy ("for each experiment, picked models with highest validation accuracy").

A sweep spec (YAML or the same structure in Python) is one block or a list of blocks::

    base: {model: s-fc, alpha: 150, epochs: 400, optimizer: beta-lasso, val_size: 5000}
    grid: {lam: [1.0e-6, 2.0e-6], dropout: [0.0, 0.5]}

Each block expands to the product of its ``grid`` lists, each combination laid over ``base``
(grid keys in their written order; a field may not be in both). Every field is a
:class:`~companion.config.TrainConfig` field; configs that hash alike are run once.
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from companion.config import OPTIMIZER_FIELDS, TrainConfig
from companion.store import results
from companion.train import launch, launch_options

#: default groups within which the best configuration is picked
GROUP_BY = ("dataset", "model", "alpha", "optimizer", "epochs")
#: validation metrics one may select by (never a test metric)
SELECT_BY = ("final_val_acc", "best_val_acc")
BLOCK_KEYS = ("base", "grid")


def _reject_unknown(where: str, what: str, keys, accepted) -> None:
    """One ValueError naming the keys not in ``accepted`` (sorted) and listing the accepted ones."""
    unknown = sorted(set(keys) - set(accepted))
    if unknown:
        raise ValueError(f"{where}: unknown {what}: {', '.join(map(str, unknown))}; "
                         f"accepted: {', '.join(accepted)}")


def load_spec(spec: str | os.PathLike | dict | list) -> list[dict]:
    """Read a spec (path to YAML, a block, or a list of blocks) into a list of blocks."""
    where = "sweep spec"
    if isinstance(spec, (str, os.PathLike)):
        import yaml

        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"sweep spec {path} does not exist")
        where = str(path)
        with open(path) as f:
            try:
                spec = yaml.safe_load(f)
            except yaml.YAMLError as exc:
                raise ValueError(f"{where} is not valid YAML: {exc}") from None
    blocks = spec if isinstance(spec, list) else [spec]
    if not blocks:
        raise ValueError(f"{where}: no blocks; expected a mapping with 'base' and 'grid' or a list of them")
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            raise ValueError(f"{where}: block {i} must be a mapping with keys base, grid; got {block!r}")
        _reject_unknown(where, f"key(s) in block {i}", block, BLOCK_KEYS)
    return [dict(block, _where=f"{where}, block {i}") for i, block in enumerate(blocks)]


def expand(spec: str | os.PathLike | dict | list) -> list[TrainConfig]:
    """All validated configs of a spec, in order, duplicates (same run id) removed.

    Raises one ValueError naming the block and the bad field/value before anything runs.
    """
    fields = list(TrainConfig.__dataclass_fields__)
    configs: dict[str, TrainConfig] = {}
    for block in load_spec(spec):
        where = block["_where"]
        base = block.get("base") or {}
        grid = block.get("grid") or {}
        for name, part in (("base", base), ("grid", grid)):
            if not isinstance(part, dict):
                raise ValueError(f"{where}: '{name}' must be a mapping of field: value, got {part!r}")
            _reject_unknown(where, f"field(s) in {name}", part, fields)
        both = sorted(set(base) & set(grid))
        if both:
            raise ValueError(f"{where}: field(s) {', '.join(both)} are in both base and grid; keep one")
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"{where}: grid field {key} must be a non-empty list, got {values!r}")
        keys = list(grid)
        for combo in itertools.product(*(grid[k] for k in keys)):
            values = {**base, **dict(zip(keys, combo))}
            try:
                config = TrainConfig.from_dict(values).validate()
            except ValueError as exc:
                raise ValueError(f"{where}: {exc} (in {values})") from None
            configs.setdefault(config.run_id(), config)
    return list(configs.values())


def _settings(config: TrainConfig) -> dict[str, Any]:
    """The config's fields, with those its optimizer ignores shown as None (for display)."""
    d = config.to_dict()
    for optimizer, names in OPTIMIZER_FIELDS.items():
        if optimizer != config.optimizer:
            d.update(dict.fromkeys(names))
    return d


def best_by_validation(df: pd.DataFrame, group_by=GROUP_BY, metric: str = "final_val_acc") -> pd.DataFrame:
    """Per group, the run with the highest validation accuracy (Appendix A.2); test accuracy is
    reported for the chosen run but never used to choose."""
    if metric not in SELECT_BY:
        raise ValueError(f"select by a validation metric: {', '.join(SELECT_BY)}; got {metric!r}")
    group_by = [group_by] if isinstance(group_by, str) else list(group_by)
    missing = [c for c in group_by + [metric] if c not in df.columns]
    if missing:
        raise ValueError(f"runs table lacks column(s) {', '.join(missing)}; accepted group_by: "
                         f"{', '.join(TrainConfig.__dataclass_fields__)}")
    if df.empty:
        return df.copy()
    if df[metric].isna().all():
        raise ValueError(f"no run has a {metric}: train with val_size > 0 to select by validation accuracy")
    scored = df[df[metric].notna()]
    best = scored.loc[scored.groupby(group_by, dropna=False)[metric].idxmax()]
    return best.sort_values(group_by).reset_index(drop=True)


def run_sweep(spec, root: str | os.PathLike = "runs", progress: bool = True, *,
              dry_run: bool = False, executor: str = "serial", **options) -> pd.DataFrame:
    """Train every config of ``spec`` into ``root`` that is not finished (unfinished ones resume
    from their checkpoint), one job per run through :func:`companion.train.launch.train_missing`
    (``executor`` serial, local or slurm; ``options``: :class:`~companion.train.launch_options.LaunchOptions`),
    and return one row per finished config (as :func:`results.load_runs`; with ``dry_run`` only
    the configs, their run ids and whether each is already finished).

    A run that fails (diverged, bad checkpoint, job killed) is reported and skipped:
    ``df.attrs["failed"]`` maps its run id to the error; ``df.attrs["report"]`` is the
    :class:`~companion.train.launch.LaunchReport` (runs held by another process: ``.locked``)."""
    configs = expand(spec)
    root = Path(root)
    if dry_run:
        rows = [{"run_id": c.run_id(), **_settings(c),
                 "finished": results.find_run(c, root) is not None} for c in configs]
        return pd.DataFrame(rows)
    try:
        report = launch.train_missing(configs, root, executor=executor, progress=progress, **options)
    except launch.LaunchError as exc:  # the failed runs are listed; the others are kept
        report = exc.report
    ids = {c.run_id() for c in configs}
    df = results.load_runs(root) if root.is_dir() else pd.DataFrame(columns=["run_id", *_settings(configs[0])])
    df = df[df["run_id"].isin(ids)].reset_index(drop=True)
    df.attrs["failed"] = report.failed
    df.attrs["report"] = report
    return df


# --------------------------------------------------------------------------- CLI
def add_cli(subparsers) -> None:
    """``companion sweep GRID.yaml [--executor serial|local|slurm] [--status]``."""
    p = subparsers.add_parser(
        "sweep", help="run a grid of configs (Appendix A.2) and pick the best by validation accuracy",
        description="Train every config of a sweep spec into the results store, one job per "
                    "unfinished run (finished runs are skipped, unfinished ones resumed from their "
                    "checkpoint, runs another process holds are skipped), then print the best per "
                    "group by validation accuracy (never test).",
    )
    p.add_argument("spec", help="YAML file: base/grid block(s); e.g. the packaged sweeps/paper_a2.yaml")
    p.add_argument("--root", default="runs", metavar="DIR", help="results root (default: runs)")
    p.add_argument("--dry-run", action="store_true", help="list the configs without training")
    p.add_argument("--status", action="store_true",
                   help="show each run's state (finished, running, failed, interrupted, missing); train nothing")
    p.add_argument("--group-by", default=",".join(GROUP_BY),
                   help=f"comma-separated config fields (default: {','.join(GROUP_BY)})")
    p.add_argument("--select-by", default="final_val_acc", choices=SELECT_BY)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    launch_options.add_arguments(p)
    p.set_defaults(func=_cli)


def packaged_spec(name: str) -> Path:
    """Path of a spec shipped with the package (``companion/sweeps/<name>.yaml``)."""
    return Path(__file__).parent / "sweeps" / f"{name}.yaml"


def _varying(df: pd.DataFrame, exclude=()) -> list[str]:
    """Config columns whose value differs between rows (what the sweep varies)."""
    return [c for c in TrainConfig.__dataclass_fields__ if c in df.columns and c not in exclude
            and df[c].astype(str).nunique() > 1]


def _print_status(spec, root) -> int:
    configs = expand(spec)
    df = launch.status(configs, root)
    settings = pd.DataFrame([_settings(c) for c in configs])
    varying = _varying(settings)
    df = pd.concat([df[["run_id"]], settings[varying], df[["state", "epochs_logged", "epochs", "holder", "error"]]],
                   axis=1)
    df["error"] = df["error"].map(lambda e: e[:77] + "..." if isinstance(e, str) and len(e) > 80 else e)
    counts = df["state"].value_counts()
    print(f"{len(df)} configs under {root}: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in launch.STATES))
    print(df.dropna(axis=1, how="all").fillna("").to_string(index=False))
    return 0


def _cli(args) -> int:
    spec = args.spec
    if not Path(spec).exists() and packaged_spec(spec).is_file():
        spec = packaged_spec(spec)  # allow `companion sweep paper_a2`
    group_by = [g.strip() for g in args.group_by.split(",") if g.strip()]
    unknown = [g for g in group_by if g not in TrainConfig.__dataclass_fields__]
    if unknown:
        raise ValueError(f"--group-by: unknown field(s) {', '.join(unknown)}; "
                         f"accepted: {', '.join(TrainConfig.__dataclass_fields__)}")
    options = launch_options.options_from_args(args)
    launch_options.launch_options(args.executor, **options)  # bad options: one error before anything else
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200):
        if args.status:
            return _print_status(spec, args.root)
        df = run_sweep(spec, args.root, progress=not args.quiet, dry_run=args.dry_run,
                       executor=args.executor, **options)
        if args.dry_run:
            done = int(df["finished"].sum()) if len(df) else 0
            print(f"{len(df)} configs ({done} finished, {len(df) - done} to run) under {args.root}")
            print(df[["run_id", *_varying(df), "finished"]].to_string(index=False))
            return 0
        report = df.attrs["report"]
        print(f"{args.executor}: {report.describe()}")
        if report.pending:
            print(f"follow them with: companion sweep {args.spec} --root {args.root} --status")
            return 0
        if df.empty:
            print(f"no finished runs ({len(report.failed)} failed)")
            return 1
        if df[args.select_by].isna().all():  # trained without a validation split: nothing to select by
            print(f"{len(df)} run(s) finished under {args.root}, none with a {args.select_by} (no validation split):")
            print(df[["run_id", *_varying(df), "final_train_acc", "final_test_acc"]].to_string(index=False))
            print("to select on validation accuracy (Appendix A.2; never on test), set val_size (e.g. 5000) in "
                  "the spec's base and run the sweep again: it trains those runs with a held-out split")
            return 1 if report.failed else 0
        best = best_by_validation(df, group_by, args.select_by)
        show = [*group_by, *_varying(df, group_by), "run_id", args.select_by, "final_test_acc"]
        print(f"best by {args.select_by} per {', '.join(group_by)}:")
        print(best[show].to_string(index=False))
    if report.failed:
        print(f"{len(report.failed)} run(s) failed: {', '.join(report.failed)}", file=sys.stderr)
        return 1
    return 0
