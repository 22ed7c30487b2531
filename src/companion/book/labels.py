"""The book's labels and number formats: the label of a run (:func:`run_label`, from its
:class:`~companion.experiments.runs.RunKey`), of a network (:func:`model_label`), of a dataset and
of a column of the paper's numbers, and the one number formatter (:func:`number`; :func:`sci`
writes λ as the paper does). Every table, claim and caption takes its words for these from here."""

from __future__ import annotations

import math

import pandas as pd

from companion.experiments.profiles import Profile

DATASET_LABELS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "svhn": "SVHN", "synthetic": "synthetic"}
OPTIMIZER_LABELS = {"sgd": "SGD", "beta-lasso": "β-LASSO"}


def model_label(name: str) -> str:
    """``s-conv`` → ``S-CONV``, ``resnet18`` → ``ResNet18`` (the paper's spelling)."""
    return "ResNet18" if name == "resnet18" else name.upper()


def run_label(key, *, with_model: bool = True) -> str:
    """A table row's label from its :class:`~companion.experiments.runs.RunKey`: ``S-FC, SGD``,
    ``S-FC, β-LASSO (β=1)``, ``S-FC, β-LASSO (best β on validation)``, ``S-FC, β-LASSO (β=50;
    best on validation)``; without ``S-FC, `` when not ``with_model``."""
    how = {None: "", "beta": f" (β={key.beta:g})" if key.beta is not None else "",
           "best": " (best β on validation)",
           "beta+best": f" (β={key.beta:g}; best on validation)" if key.beta is not None else ""}
    if key.chosen not in how:
        raise ValueError(f"unknown RunKey.chosen {key.chosen!r}; accepted: None, 'beta', 'best', 'beta+best'")
    text = OPTIMIZER_LABELS[key.optimizer] + how[key.chosen]
    return f"{model_label(key.model)}, {text}" if with_model else text


def reference_dataset(p: Profile) -> str:
    """The dataset whose paper numbers sit beside ours: the profile's, CIFAR-10 for synthetic data."""
    return "cifar10" if p.dataset == "synthetic" else p.dataset


def paper_label(p: Profile, epochs: int | None = None) -> str:
    """Label of a column of the paper's numbers, e.g. ``paper, 400 ep., CIFAR-10``."""
    ep = f", {epochs} ep." if epochs else ""
    return f"paper{ep}, {DATASET_LABELS[reference_dataset(p)]}"


def number(value, digits: int = 2, sign: bool = False) -> str:
    """A number to ``digits`` decimals (with its sign if ``sign``); None / NaN as an em dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return "—"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def sci(value: float) -> str:
    """1e-05 → 1·10⁻⁵ (the paper's way of writing λ)."""
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.0e}".split("e")
    sup = str(int(exponent)).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"10{sup}" if mantissa == "1" else f"{mantissa}·10{sup}"


def listing(values) -> str:
    """``1, 2.5, 3``: integers as written, floats in their shortest form."""
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)
