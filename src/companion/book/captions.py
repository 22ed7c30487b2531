"""The book's prose for the accuracy chapters: the settings of a profile beside Appendix A.2's,
and the sentences of chapters 00, 02–05 (chapters 06–11: :mod:`companion.book.weight_captions`;
labels and number formats: :mod:`companion.book.labels`). Only sentences: the numbers come from
:mod:`companion.book.tables` and the verdicts from :mod:`companion.book.claims`."""

from __future__ import annotations

import pandas as pd

from companion import paper
from companion.book.claims import NULL_MIN_NONZEROS
from companion.book.summary import FIT_TRAIN_ACC
from companion.book.labels import DATASET_LABELS, listing, model_label, run_label, sci
from companion.book.protocol import DENSITY_TOLERANCE, RADIUS_TOLERANCE, steps
from companion.checks import require_columns
from companion.config import TrainConfig
from companion.experiments.profiles import Profile
from companion.experiments.runs import BEST_LASSO, search_epochs
from companion.experiments.study import Study
from companion.nn.params import alpha_for_budget


def first_summary(study: Study, configs) -> dict:
    """The summary of the first finished run among ``configs`` (they share the data split)."""

    for config in configs:
        run = study.find(config)
        if run is not None:
            return run.summary
    raise FileNotFoundError(f"none of the {len(configs)} runs is finished in {study.root}; "
                            "train them with `companion experiments --profile P`")


def describe_data(p: Profile, summary: dict) -> str:
    """The data of a run: dataset, images used for training / held out / tested."""
    d = summary["dataset"]
    name = f"{DATASET_LABELS[p.dataset]} data"
    if p.dataset == "synthetic":
        name += " (the label is which local patch is planted: the numbers are a pipeline check, not a result)"
    return (f"{name}: {d['n_train']:,} training images, {d['n_val']:,} held out for validation (used only "
            f"to choose hyper-parameters), {d['n_test']:,} test images")


def describe_alphas(configs) -> str:
    """α of each network among ``configs``, e.g. ``α: S-CONV 2; 3-FC 452``."""
    alphas: dict[str, list[int]] = {}
    for c in configs:
        alphas.setdefault(model_label(c.model), [])
        if c.alpha not in alphas[model_label(c.model)]:
            alphas[model_label(c.model)].append(c.alpha)
    return "α: " + "; ".join(f"{m} {listing(sorted(a))}" for m, a in alphas.items())


def describe_optimizers(p: Profile, configs) -> str:
    """The optimizers of ``configs``: SGD's fixed settings; β-LASSO's grid or values."""
    parts = []
    lr = configs[0].lr
    sgd = sorted({(c.momentum, c.weight_decay) for c in configs if c.optimizer == "sgd"})
    if sgd:
        what = "; ".join(f"momentum {m:g}, weight decay {sci(wd)}" for m, wd in sgd)
        parts.append(f"SGD (learning rate {lr:g} cosine-annealed to 0, {what})")
    lasso = [c for c in configs if c.optimizer == "beta-lasso"]
    if lasso:
        settings = sorted({(c.beta, c.lam, c.lam_first) for c in lasso})
        if len(settings) == 1:
            beta, lam, lam_first = settings[0]
            what = f"β = {beta:g}, λ = {sci(lam)}, λ_first = {sci(lam_first)}"
        else:
            what = "β, λ, λ_first as listed"
        parts.append(f"β-LASSO (Algorithm 1, no momentum, learning rate {lr:g} cosine-annealed; {what})")
    return "; ".join(parts)


def describe_setting(study: Study, configs) -> str:
    """The caption's account of a set of ``study``'s runs: profile, hardware, data sizes, epochs, α,
    batch, augmentation and optimizer settings (all read from the profile and the runs)."""
    p = study.profile
    configs = list(configs)
    if not configs:
        raise ValueError("describe_setting needs at least one TrainConfig")
    epochs = sorted({c.epochs for c in configs})
    names = {p.epochs_short: "short", p.epochs_long: "long"}
    ep = " / ".join(f"{e} ({names[e]})" if e in names else str(e) for e in epochs)
    return (f"Profile {p.name} ({p.hardware}); {describe_data(p, first_summary(study, configs))}; "
            f"epochs {ep}; batch {configs[0].batch_size}; {configs[0].augment} augmentation; "
            f"{describe_alphas(configs)}; {describe_optimizers(p, configs)}.")


def describe_steps(p: Profile) -> str:
    """T of one search run spelled out: epochs × steps per epoch (batches of the training images)."""

    n = search_epochs(p)
    return f"{n} epochs × {steps(p, 1):,} batches of {p.batch_size} = {steps(p, n):,} steps"


def search_length(p: Profile) -> str:
    """How long the search runs train: 'the full (long) training (120 epochs)' or the short one."""

    n = search_epochs(p)
    which = "the full (long) training" if p.search_length == "long" else "the short training"
    return f"{which} ({n} epoch{'s' if n != 1 else ''})"


#: topic -> (setting, the paper's (Appendix A.2 unless said), this profile's as a function of p)
_SETTINGS = {
    "data": ("data", "CIFAR-10, CIFAR-100, SVHN; a validation split picks every hyper-parameter",
             lambda p: (f"{DATASET_LABELS[p.dataset]}, {p.train_size:,} training images" if p.train_size
                        else f"{DATASET_LABELS[p.dataset]}, all training images")
             + f", {p.val_size:,} held out for validation (hyper-parameters picked on it, never on test)"),
    "epochs": ("epochs", "400 (Table 1's first column, Figures 2, 5, 6) and 4000 (Table 1's second "
               "column, Table 2, Figure 3)",
               lambda p: f"{p.epochs_short} (short, in place of 400) and {p.epochs_long} (long, in place of 4000)"
               + (f"; S-FC's SGD against β-LASSO also at {listing(p.longer_epochs)} (selected and seeded there)"
                  if p.longer_epochs else "")
               + (f" and, one seed, {listing(p.trend_epochs)}" if p.trend_epochs else "")),
    "batch": ("batch size", f"{paper.BATCH_SIZE}", lambda p: f"{p.batch_size}"),
    "augment": ("augmentation", "Fast AutoAugment policies (Lim et al., 2019)", lambda p: p.augment),
    "lr": ("learning rate", f"{paper.LR:g}, cosine annealing",
           lambda p: f"{TrainConfig.__dataclass_fields__['lr'].default:g}, cosine annealing to 0"),
    "sgd": ("SGD", f"momentum ∈ {{{listing(paper.SGD_MOMENTA)}}} × weight decay ∈ "
                   f"{{{', '.join(sci(w) for w in paper.SGD_WEIGHT_DECAYS)}}}, picked on validation",
            lambda p: (f"S-FC: (momentum, weight decay) ∈ {{{', '.join(f'({m:g}, {sci(wd)})' for m, wd in p.sgd_grid)}}}, "
                       f"picked on validation after {search_length(p)}; other networks: " if p.sgd_grid else "")
            + f"momentum {p.sgd_momentum:g}, weight decay {sci(p.sgd_weight_decay)} (fixed, not searched)"),
    "dropout": ("dropout", "with and without (last two layers), picked on validation",
                lambda p: "none (not searched)"),
    "budget": ("network size",
               lambda: "FC counterpart of about 256 M parameters (Section 2.2); the smallest α reaching it: "
                       f"D-CONV {alpha_for_budget('d-conv', paper.FC_BUDGET)}, "
                       f"S-CONV {alpha_for_budget('s-conv', paper.FC_BUDGET)}",
               lambda p: f"FC counterpart of at least {p.fc_budget:,} parameters (S-FC at α = {p.s_alpha})"),
    "lasso": ("β-LASSO", f"no momentum; β = {paper.BETA:g}; λ ∈ {{{', '.join(sci(v) for v in paper.LAMBDAS)}}} "
                         "for the conv-position layer and the others separately, picked on validation",
              lambda p: f"no momentum; β ∈ {{{listing(p.betas)}}}, λ ∈ {{{', '.join(sci(v) for v in p.lambdas)}}}, "
                        f"λ_first = λ × {{{listing(p.lam_first_factors)}}}; picked on validation after "
                        f"{search_length(p)}"),
    "seeds": ("seeds", "not stated (one number per setting)",
              lambda p: (f"{len(p.seeds)} ({listing(p.seeds)}) for Table 2's S-CONV, S-LOCAL, S-FC SGD and chosen "
                         "β-LASSO rows, reported as mean ± sd; one for every other run") if len(p.seeds) > 1
              else "one per run"),
    "scaling": ("α grid (Figures 2, 6)", "not listed; up to about a billion parameters (Section 3)",
                lambda p: "; ".join(f"{model_label(m)} {listing(a)}" for m, a in p.scaling_alphas.items())),
    "resnet": ("ResNet18 (Figure 5)", "kernel sizes of Figure 5; β-LASSO and SGD as above",
               lambda p: f"α = {p.resnet_alpha}, kernel sizes {listing(p.resnet_kernels)}; β-LASSO with "
                         "S-FC's best (β, λ, λ_first), not re-tuned"),
    "hardware": ("hardware", "V100 GPUs, 16-bit (batch-norm 32-bit)", lambda p: p.hardware),
}
SETTING_TOPICS = tuple(_SETTINGS)


def settings_comparison(p: Profile, topics=SETTING_TOPICS) -> pd.DataFrame:
    """The paper's training settings (Appendix A.2) beside this profile's, one row per topic
    of :data:`SETTING_TOPICS`."""
    if unknown := [t for t in topics if t not in _SETTINGS]:
        raise ValueError(f"unknown setting topic(s) {unknown}; known: {', '.join(SETTING_TOPICS)}")
    rows = [{"setting": _SETTINGS[t][0],
             "paper (Appendix A.2)": _SETTINGS[t][1]() if callable(_SETTINGS[t][1]) else _SETTINGS[t][1],
             f"this book (profile {p.name})": _SETTINGS[t][2](p)} for t in topics]
    return pd.DataFrame(rows)


def describe_observations(observations: pd.DataFrame) -> str:
    """A sentence counting the observations of :func:`table1_observations` that hold, ours and the paper's."""
    require_columns(observations, ["observation", "group", "training", "holds_here", "holds_in_paper"],
          "the observations frame")
    failed = [f"{o.split(' ')[0]}{' ' + g if o.startswith('(1)') else ''} {t}" for o, g, t, h in
              zip(observations["observation"], observations["group"], observations["training"],
                  observations["holds_here"]) if not h]
    n = len(observations)
    text = (f"On this book's numbers {n - len(failed)} of {n} checks hold"
            + (f" (not: {', '.join(failed)})" if failed else "")
            + f"; on the paper's numbers, by the same rules, {int(observations['holds_in_paper'].sum())} of {n}.")
    return text


def describe_lasso_choice(t2: pd.DataFrame) -> str:
    """The (β, λ, λ_first) Table 2's best-β row uses, and how it was chosen."""
    require_columns(t2, ["row", "beta", "lam", "lam_first", "val_acc"], "the Table 2 frame")

    best = t2[t2["row"] == run_label(BEST_LASSO)]
    if best.empty:
        raise ValueError(f"the Table 2 frame has no row {run_label(BEST_LASSO)!r}")
    b = best.iloc[0]
    return (f"β = {b['beta']:g}, λ = {sci(b['lam'])} and λ_first = {sci(b['lam_first'])}, the setting "
            "with the highest validation accuracy in the search (ties to the smaller λ); test accuracy "
            "was not used to choose")


def describe_claims(claims_df: pd.DataFrame, p: Profile) -> str:
    """How many claims hold at this profile and, for each that does not, whether the networks it
    reads fit their training set (if they do not, "no" at this scale is not a refutation)."""

    require_columns(claims_df, ["id", "holds", "underfit", "train_min", "train_max"], "the claims frame")
    held = claims_df.loc[claims_df["holds"], "id"].tolist()
    text = (f"At profile {p.name}, {len(held)} of {len(claims_df)} checks come out as the paper says"
            + (f" ({', '.join(held)})" if held else "") + ".")
    failed = claims_df[~claims_df["holds"]]
    under, fitted = failed[failed["underfit"]], failed[~failed["underfit"]]
    if len(under):
        ids = ", ".join(f"({i}): {lo:.0f}–{hi:.0f} %" for i, lo, hi in
                        zip(under["id"], under["train_min"], under["train_max"]))
        text += (f" The checks that do not hold and read networks that do not fit their training set "
                 f"(training accuracy below {FIT_TRAIN_ACC:g} %; {ids}) are no refutation of the paper: "
                 "its networks train to ≈ 100 %, these underfit at this scale.")
    if len(fitted):
        text += (f" {', '.join(f'({i})' for i in fitted['id'])} do not hold on networks that fit their "
                 "training set: evidence against the claim at this scale.")
    if p.dataset == "synthetic":
        text += " The data is synthetic: these outcomes test the pipeline, not the paper."
    return text


def describe_settling(settled: dict, label: str) -> str:
    """A sentence on :func:`companion.book.protocol.settled`: when the first layer of ``label`` stopped
    changing and how much of the learning rate was left then."""

    def when(key, what, tolerance):
        e, left = settled[f"{key}_epoch"], settled[f"{key}_lr_left"]
        if e != e:
            return f"its {what} was not tracked"
        return (f"its {what} stayed within {tolerance} of its final value from epoch {e} on "
                f"({100 * left:.0f} % of the learning rate left)")

    return (f"{label}, trained for {settled['epochs']} epochs: "
            f"{when('density', 'first-layer density', f'{100 * DENSITY_TOLERANCE:.0f} %')}, and "
            f"{when('radius', 'median locality radius', f'{RADIUS_TOLERANCE:g} px')}.")


def describe_null(null: dict) -> str:
    """A sentence on :func:`companion.book.claims.null_comparison`: trained radius against the null's,
    the test's p-value, and the filters counted apart."""

    if not null["units"]:
        return f"No filter has {NULL_MIN_NONZEROS} or more non-zero weights: the null comparison has nothing to compare."
    few = (f" {null['few_units']:,} filters with 1–{NULL_MIN_NONZEROS - 1} non-zeros, counted apart, have a median "
           f"radius of {null['few_median_radius']:.1f} px." if null["few_units"] else "")
    return (f"On the {null['units']:,} filters with at least {NULL_MIN_NONZEROS} non-zeros, the median radius is "
            f"{null['median_radius']:.1f} px trained and {null['null_median_radius']:.1f} px for the same counts "
            f"placed at random (window mass {null['median_window_mass']:.2f} against "
            f"{null['null_median_window_mass']:.2f}); a one-sided Mann–Whitney test gives p = {null['p_value']:.1g} "
            f"that the trained radii are not smaller.{few}")
