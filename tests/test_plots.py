"""Figures and formatted tables of chapters 00, 02–05 (companion.book.figures), on constructed frames."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from companion import paper
from companion.book import figures as plots
from companion.experiments.runs import TABLE1_MODELS

LABELS = dict(short_label="ours, 8 ep.", long_label="ours, 24 ep.",
              paper_short_label="paper, 400 ep., CIFAR-10", paper_long_label="paper, 4000 ep., CIFAR-10")


def table1_frame(paper_numbers=True) -> pd.DataFrame:
    n = len(TABLE1_MODELS)
    return pd.DataFrame({
        "model": list(TABLE1_MODELS), "alpha": range(1, n + 1), "params_M": np.linspace(0.1, 1, n),
        "fc_emb_M": [1.6] * n, "short_test": np.linspace(30, 60, n), "long_test": np.linspace(35, 65, n),
        "short_train": np.linspace(40, 70, n), "long_train": np.linspace(50, 90, n),
        "paper_400": [paper.TABLE1_ACCURACY[m][("cifar10", 400)] if paper_numbers else None for m in TABLE1_MODELS],
        "paper_4000": [paper.TABLE1_ACCURACY[m][("cifar10", 4000)] if paper_numbers else None for m in TABLE1_MODELS],
    })


def test_table1_figure_bars_and_paper_markers():
    fig = plots.table1_figure(table1_frame(), **LABELS)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.containers) == 2 and all(len(c) == len(TABLE1_MODELS) for c in ax.containers)
    assert [line.get_label() for line in ax.lines] == [LABELS["paper_short_label"], LABELS["paper_long_label"]]
    heights = [bar.get_height() for bar in ax.containers[1]]
    assert heights == pytest.approx(table1_frame()["long_test"].tolist())
    # a dataset the paper has no numbers for: bars only, no markers
    assert len(plots.table1_figure(table1_frame(paper_numbers=False), **LABELS).axes[0].lines) == 0


def test_table1_table_labels_paper_columns():
    out = plots.table1_accuracy_table(table1_frame(), **LABELS)
    assert LABELS["paper_long_label"] in out.columns and "test, ours, 24 ep." in out.columns
    assert out.loc[0, LABELS["paper_short_label"]] == "88.84"  # D-CONV, paper, 400 ep.
    assert out["model"].tolist()[0] == "D-CONV"


@pytest.mark.parametrize("function", [plots.table1_figure, plots.table1_accuracy_table])
def test_table1_missing_column_is_named(function):
    with pytest.raises(ValueError, match="paper_4000"):
        function(table1_frame().drop(columns="paper_4000"), **LABELS)


def scaling_frames():
    rows = []
    for i, model in enumerate(("d-conv", "s-conv", "3-fc", "resnet18")):
        for j, params in enumerate((1e4, 1e5, 1e6)):
            rows.append({"model": model, "alpha": j + 1, "params": params * (i + 1),
                         "train_acc": 50 + 10 * j + i, "test_acc": 40 + 5 * j - i})
    scaling = pd.DataFrame(rows)
    fit = pd.DataFrame({"model": ["d-conv", "s-conv", "3-fc", "resnet18"], "min_params": [1e5, 2e5, 3e5, 4e5],
                        "best_test_acc": [50.0, 49.0, 48.0, 47.0]})
    return scaling, fit


def test_scaling_figure_has_three_panels_with_one_line_per_family():
    scaling, fit = scaling_frames()
    fig = plots.scaling_figure(scaling, fit, target=70.0)
    assert len(fig.axes) == 3
    test_ax, train_ax, fit_ax = fig.axes
    assert len(test_ax.lines) == 4 and len(fit_ax.lines) == 4
    assert len(train_ax.lines) == 5  # four families and the dashed target
    assert train_ax.lines[-1].get_ydata()[0] == 70.0
    assert all(ax.get_xscale() == "log" for ax in fig.axes)


def test_scaling_figure_missing_columns():
    scaling, fit = scaling_frames()
    with pytest.raises(ValueError, match="train_acc"):
        plots.scaling_figure(scaling.drop(columns="train_acc"), fit, 70.0)
    with pytest.raises(ValueError, match="min_params"):
        plots.scaling_figure(scaling, fit.drop(columns="min_params"), 70.0)


def search_frame():
    rows = []
    for beta in (0.0, 50.0):
        for lam in (1e-5, 1e-4):
            for factor in (1, 3):
                rows.append({"beta": beta, "lam": lam, "lam_first": lam * factor, "train_acc": 0.5,
                             "val_acc": 0.4 + lam * 100 + factor / 100 + beta / 1000, "test_acc": 0.4,
                             "nonzeros": 50, "weights": 100, "chosen_for_beta": lam == 1e-4 and factor == 3,
                             "chosen": beta == 50.0 and lam == 1e-4 and factor == 3})
    return pd.DataFrame(rows)


def test_lasso_heatmaps_one_panel_per_beta_and_a_colour_bar():
    fig = plots.lasso_heatmaps(search_frame())
    assert len(fig.axes) == 3  # β = 0, β = 50, colour bar
    first = fig.axes[0]
    assert first.images[0].get_array().shape == (2, 2)
    assert [t.get_text() for t in first.texts] == ["41.1", "42.0", "43.1", "44.0"]  # rows: λ_first/λ
    [box] = first.patches  # the chosen cell (λ = 1e-4, λ_first = 3λ) is boxed
    assert box.get_xy() == (0.5, 0.5)
    with pytest.raises(ValueError, match="val_acc"):
        plots.lasso_heatmaps(search_frame().drop(columns="val_acc"))


def test_lasso_search_table_marks_the_choice_and_labels_test_as_unused():
    out = plots.lasso_search_table(search_frame())
    assert "test acc. (%, not used)" in out.columns
    assert out["chosen on validation"].tolist().count("best overall") == 1
    assert out["chosen on validation"].tolist().count("best for its β") == 1
    with pytest.raises(ValueError, match="chosen"):
        plots.lasso_search_table(search_frame().drop(columns=["chosen"]))


def test_table2_table_and_literature():
    t2 = pd.DataFrame({"row": ["S-FC, SGD", "S-FC, β-LASSO (β=50)"], "beta": [None, 50.0], "lam": [None, 1e-4],
                       "lam_first": [None, 3e-4], "val_acc": [40.0, 45.0], "test_acc": [39.0, 44.0],
                       "paper": [78.63, 85.19]})
    layers = pd.DataFrame({"row": ["S-FC, SGD", "S-FC, β-LASSO (β=50)"], "first_weights": [3072, 3072],
                           "first_nonzeros": [3072, 100], "total_weights": [4000, 4000],
                           "total_nonzeros": [4000, 900]})
    out = plots.table2_accuracy_table(t2, layers, paper_label="paper, 4000 ep., CIFAR-10")
    assert out["paper, 4000 ep., CIFAR-10"].tolist() == ["78.63", "85.19"]
    assert out["1st layer non-zeros / weights"].tolist() == ["3,072 / 3,072", "100 / 3,072"]
    assert out["λ / λ_first"].tolist() == ["—", "1e-04 / 3e-04"]
    with pytest.raises(ValueError, match="first_nonzeros"):
        plots.table2_accuracy_table(t2, layers.drop(columns="first_nonzeros"), paper_label="paper")
    lit = plots.literature_table(paper.TABLE2)
    assert len(lit) == 5 and not lit["model (as cited in the paper)"].str.contains("S-FC|3-FC").any()
    assert lit.loc[0, "CIFAR-100"] == "—"  # Neyshabur et al. (2019) report no CIFAR-100 number
    with pytest.raises(ValueError, match="literature"):
        plots.literature_table([("S-CONV", "SGD", {"cifar10": 87.05})])


def test_figure5_figure_two_panels_two_optimizers():
    f5 = pd.DataFrame({"kernel_size": [3, 3, 5, 5], "optimizer": ["sgd", "beta-lasso"] * 2,
                       "test_acc": [50.0, 51.0, 49.0, 52.0], "conv_nonzero_frac": [1.0, 0.3, 1.0, 0.2]})
    fig = plots.figure5_figure(f5)
    assert len(fig.axes) == 2
    acc, nnz = fig.axes
    assert [line.get_label() for line in acc.lines] == ["SGD", "β-LASSO"]
    assert list(nnz.lines[1].get_ydata()) == pytest.approx([30.0, 20.0])
    with pytest.raises(ValueError, match="conv_nonzero_frac"):
        plots.figure5_figure(f5.drop(columns="conv_nonzero_frac"))


def test_claims_and_observations_tables():
    claims = pd.DataFrame({"id": ["a", "b"], "claim": ["x", "y"], "paper": ["p", "q"], "ours": ["o", "r"],
                           "holds": [True, False], "scale": ["cpu", "cpu"], "train_min": [60.0, 96.0],
                           "train_max": [76.4, 99.0], "underfit": [True, False]})
    out = plots.claims_table(claims)
    assert out["holds here?"].tolist() == ["yes", "no"] and out[""].tolist() == ["(a)", "(b)"]
    assert out["training accuracy of its runs"].tolist() == ["60–76 % (underfit)", "96–99 %"]
    with pytest.raises(ValueError, match="scale"):
        plots.claims_table(claims.drop(columns="scale"))
    obs = pd.DataFrame({"observation": ["(1) locality, D: …", "(3) S-FC > D-FC", "(2) shallow …"],
                        "training": ["short", "short", "short → long"], "ours_a": [10.0, -1.5, 2.0],
                        "ours_b": [-3.0, float("nan"), 1.0], "holds_here": [True, False, True],
                        "paper_a": [21.35, 7.99, 4.37], "paper_b": [2.71, float("nan"), -0.09],
                        "holds_in_paper": [True, True, True]})
    table = plots.observations_table(obs, paper_label="paper, CIFAR-10")
    assert table["ours (pp)"].tolist() == ["10.00 vs 3.00", "-1.50", "S +2.00 vs D +1.00"]
    assert table["holds here"].tolist() == ["yes", "no", "yes"]


def test_model_label_keeps_table_names_and_spells_resnet():
    assert plots.model_label("s-conv") == "S-CONV"
    assert plots.model_label("resnet18") == "ResNet18"  # the one model_label (companion.book.captions)
