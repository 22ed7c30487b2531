"""The ``companion weights`` command: store, beside their runs, the compact trained weights the
sparse-execution chapter reads (:func:`companion.book.weight_tables.weights_needed` says which;
:func:`companion.store.artifacts.store_weights` writes them)."""

from __future__ import annotations

from companion.book.labels import run_label
from companion.book import weight_tables
from companion.experiments import profiles
from companion.experiments.profiles import PROFILE_NAMES
from companion.experiments.study import Study
from companion.store.artifacts import WEIGHTS, store_weights
from companion.store.results import CHECKPOINT


def add_cli(subparsers) -> None:
    """``companion weights --profile P``: store the compact weights the sparse-execution chapter
    needs (:func:`companion.book.weight_tables.weights_needed`) beside their runs."""
    p = subparsers.add_parser(
        "weights", help="store the compact trained weights chapter 11 reads (weights.npz)",
        description=f"Write {WEIGHTS} (int32 positions and fp32 values of the non-zero weights of each "
                    "sparse tensor, other tensors as they are) beside each run of Table 2's S-FC networks "
                    "whose export is sparse, from its checkpoint; dense runs are not stored (chapter 11 "
                    "times an untrained network of their shape); and beside the finished β-LASSO runs of "
                    "the longer lengths (training-length chapter). Fails, writing nothing, over --max-mib.")
    p.add_argument("--profile", choices=PROFILE_NAMES, default="cpu")
    p.add_argument("--results-dir", default=None, help="results store (default results/<profile>)")
    p.add_argument("--max-mib", type=float, default=25.0, help="limit on all stored weights together (MiB)")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    study = Study(profiles.get(args.profile), args.results_dir)
    root = study.root
    longer = weight_tables.longer_sparse_runs(study)
    # a longer run trained on another machine (or whose checkpoint was not kept) cannot be stored
    lost = {k: r for k, r in longer.items() if not any((r.path / f).is_file() for f in (WEIGHTS, CHECKPOINT))}
    runs = {**weight_tables.sparse_runs(study), **longer}
    needed = {k: r for k, r in runs.items() if weight_tables.weights_needed(r) and k not in lost}
    sizes = store_weights(needed.values(), max_bytes=int(args.max_mib * 2**20))
    for key, run in runs.items():
        if key in needed:
            state = f"{sizes[run.run_id] / 2**20:6.2f} MiB  {run.path / WEIGHTS}"
        elif key in lost:
            state = "  not stored (no checkpoint here: retrain it with --force to store its weights)"
        else:
            state = "  not stored (dense: chapter 11 times an untrained network of its shape)"
        label = f"{run_label(key[1])}, {key[0]} ep, seed {key[2]}" if isinstance(key[0], int) else run_label(key)
        print(f"{run.run_id}  {label:45s} {state}")
    print(f"{len(needed)} of {len(runs)} runs stored, {sum(sizes.values()) / 2**20:.2f} MiB of "
          f"{args.max_mib:g} MiB in {root}")
    return 0
