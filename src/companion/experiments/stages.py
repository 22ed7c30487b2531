"""The book's runs in three training stages, and the command that trains them
(``companion experiments``): stage 1 needs no selection; stage 2 is listed from stage 1's
finished λ/β and SGD searches (:mod:`companion.experiments.search`); stage 3 from stage 2's
finished candidates at the longer lengths (:mod:`companion.experiments.lengths`). Listing never trains;
:func:`ensure` and :func:`train_missing` do, and say so."""

from __future__ import annotations

from companion.config import TrainConfig
from companion.experiments import lengths, profiles
from companion.experiments.profiles import PROFILE_NAMES, Profile
from companion.experiments.runs import (MissingRunsError, S_FC_SGD, figure5_configs, permutation_configs,
                                        scaling_configs, search_configs, seed_configs, sgd, sgd_search_configs,
                                        table1_configs, table2_sgd_configs, unique)
from companion.experiments.study import Study
from companion.train import launch, launch_options
from companion.train.loop import train
from companion.train.progress import describe_run


def stage1(p: Profile) -> list[TrainConfig]:
    """Every run that needs no selection: the two searches, Table 1, Figures 2/6, Table 2's SGD
    rows other than S-FC's (with their seeds and permuted copies), Figure 5's SGD runs."""
    fixed = {k: c for k, c in table2_sgd_configs(p).items() if k != S_FC_SGD or not p.sgd_grid}
    figure5_sgd = [sgd(p, "resnet18", p.resnet_alpha, p.epochs_short, kernel_size=k) for k in p.resnet_kernels]
    return unique(search_configs(p) + sgd_search_configs(p) + table1_configs(p) + list(fixed.values())
                   + list(seed_configs(p, fixed).values()) + scaling_configs(p) + figure5_sgd
                   + list(permutation_configs(fixed).values()))


def stage2(study: Study) -> list[TrainConfig]:
    """The runs listed from ``study``'s finished searches and not in stage 1: Table 2's β-LASSO rows and
    chosen S-FC SGD row, their seeds, Figure 5's β-LASSO runs, their permuted copies (raises :class:`MissingRunsError`
    listing the search runs if a search is unfinished)."""

    p = study.profile
    chosen = {k: c for k, c in study.table2_configs.items() if k.model == "s-fc"}
    out = list(chosen.values()) + list(seed_configs(p, chosen).values())
    out += [c for c in figure5_configs(p, study.choices["best"]) if c.optimizer == "beta-lasso"]
    out += list(permutation_configs(chosen).values())
    out += lengths.stage2_configs(study)
    first = {c.run_id() for c in stage1(p)}
    return [c for c in unique(out) if c.run_id() not in first]


def stage3(study: Study) -> list[TrainConfig]:
    """The runs listed from ``study``'s finished candidates at the longer lengths (issue 16): each chosen
    setting with every seed, and the trend lengths (:func:`companion.experiments.lengths.stage3_configs`)."""
    done = {c.run_id() for c in stage1(study.profile) + stage2(study)}
    return [c for c in unique(lengths.stage3_configs(study)) if c.run_id() not in done]


def stages(study: Study):
    """Yield stage 1, then (computed when asked, so after the stage before is trained) stages 2 and 3
    (``study`` keeps only finished runs, so it lists each stage from what the one before trained)."""
    yield stage1(study.profile)
    yield stage2(study)
    yield stage3(study)


def ensure(configs, root, *, progress: bool = True) -> list:
    """Train every config that has no finished run in ``root`` (resuming unfinished ones)."""

    runs = []
    for i, config in enumerate(configs, 1):
        if progress:
            print(f"[{i}/{len(configs)}] {describe_run(config)}", flush=True)
        runs.append(train(config, root=root, resume=True, progress=progress))
    return runs


def train_missing(p: Profile, root=None, *, progress: bool = True, executor: str = "serial", **options) -> list:
    """Train every run of the book that is missing: stage 1, then stage 2 (listed from stage 1's
    finished search), then stage 3 (listed from stage 2's finished candidates). With an ``executor`` other than ``serial`` each stage is submitted through
    :func:`companion.train.launch.train_missing` and waited for, so stage 2's selection-dependent runs
    are submitted only once the search they depend on has finished. Returns the finished runs."""

    study = Study(p, root)
    folder = study.root
    if executor == "serial":
        return [run for stage in stages(study) for run in ensure(stage, folder, progress=progress)]
    launch_options.launch_options(executor, **options)  # bad options fail before stage 1
    done = []
    for stage in stages(study):
        launch.train_missing(stage, folder, executor=executor, progress=progress, **options)
        done += study.finished(stage)
    return done


# ---------------------------------------------------------------------------------- CLI
def add_cli(subparsers) -> None:
    p = subparsers.add_parser("experiments", help="train every run the book needs, at a profile",
                              description="Train (or find in the results store) every run behind the book's "
                                          "tables and figures, at one scale profile.")
    p.add_argument("--profile", choices=PROFILE_NAMES, default="smoke")
    p.add_argument("--results-dir", default=None, help="results store (default results/<profile>)")
    p.add_argument("--data-root", default=None, help="dataset folder (default $COMPANION_DATA_ROOT)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, ... (default auto)")
    p.add_argument("--list", action="store_true", help="only list the runs and whether they are finished")

    launch_options.add_arguments(p)
    p.set_defaults(func=_cli)


def _cli(args) -> int:

    prof = profiles.get(args.profile, data_root=args.data_root, device=args.device)
    study = Study(prof, args.results_dir)
    root = study.root
    if args.list:
        configs = stage1(prof)
        try:
            configs += stage2(study)
            configs += stage3(study)
        except MissingRunsError as exc:
            print(f"(later stages are listed from finished runs and are not listed yet: {exc})")
        for c in configs:
            state = "finished" if study.find(c) else "missing"
            print(f"{c.run_id()}  {state:8s}  {c.model} α={c.alpha} {c.optimizer} {c.epochs} ep")
        return 0

    options = launch_options.options_from_args(args)
    if options.get("wait") is False:
        raise ValueError("--no-wait submits one stage and returns; experiments needs stage 1 finished "
                         "before it can list stage 2 (drop --no-wait, or use companion sweep)")
    runs = train_missing(prof, root, executor=args.executor, **options)
    print(f"{len(runs)} runs finished in {root}")
    return 0
