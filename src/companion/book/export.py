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


def add_cli(subparsers) -> None:
    """``companion weights --profile P``: store the compact weights the sparse-execution chapter
    needs (:func:`companion.book.weight_tables.weights_needed`) beside their runs."""
    p = subparsers.add_parser(
        "weights", help="store the compact trained weights chapter 11 reads (weights.npz)",
        description=f"Write {WEIGHTS} (int32 positions and fp32 values of the non-zero weights of each "
                    "sparse tensor, other tensors as they are) beside each run of Table 2's S-FC networks "
                    "whose export is sparse, from its checkpoint; dense runs are not stored (chapter 11 "
                    "times an untrained network of their shape). Fails, writing nothing, over --max-mib.")
    p.add_argument("--profile", choices=PROFILE_NAMES, default="cpu")
    p.add_argument("--results-dir", default=None, help="results store (default results/<profile>)")
    p.add_argument("--max-mib", type=float, default=25.0, help="limit on all stored weights together (MiB)")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    study = Study(profiles.get(args.profile), args.results_dir)
    root = study.root
    runs = weight_tables.sparse_runs(study)
    needed = {k: r for k, r in runs.items() if weight_tables.weights_needed(r)}
    sizes = store_weights(needed.values(), max_bytes=int(args.max_mib * 2**20))
    for key, run in runs.items():
        if key in needed:
            state = f"{sizes[run.run_id] / 2**20:6.2f} MiB  {run.path / WEIGHTS}"
        else:
            state = "  not stored (dense: chapter 11 times an untrained network of its shape)"
        print(f"{run.run_id}  {run_label(key):45s} {state}")
    print(f"{len(needed)} of {len(runs)} runs stored, {sum(sizes.values()) / 2**20:.2f} MiB of "
          f"{args.max_mib:g} MiB in {root}")
    return 0
