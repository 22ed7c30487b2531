"""Chapters 06–10: the helpers behind Figure 3, Figures 4/7–9, Theorem 2 across runs, learned
locality and the permutation test, on constructed runs with known answers; and their figures."""

import math
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from companion.book import claims, labels, tables, weight_captions, weight_tables
from companion.book import weight_figures as W
from companion.nn import analysis
from companion.data.permutation import permute, pixel_order, unpermute_filters
from companion.experiments.runs import BEST_LASSO, PERMUTATION_SEED, S_CONV_SGD, S_FC_SGD, S_LOCAL_SGD, lasso_key

BEST = BEST_LASSO


# ------------------------------------------------------------------ constructed runs
@dataclass
class FakeRun:
    """What the chapter helpers read from a :class:`companion.store.results.Run`."""

    run_id: str
    config: SimpleNamespace
    summary: dict
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    store: dict = field(default_factory=dict)

    def arrays(self):
        return self.store


LAYERS = {"conv": {"conv1.layer": 10, "fc1.layer": 40, "fc2.layer": 8},
          "local": {"conv1.layer": 100, "fc1.layer": 40, "fc2.layer": 8},
          "fc": {"conv1.layer": 1000, "fc1.layer": 40, "fc2.layer": 8}}


def fake_run(run_id, params, nonzeros_by_epoch, *, optimizer="sgd", beta=None, n_test=1000,
             test_acc=0.5, store=None, permute_pixels=None):
    rows = [{"epoch": e, **{f"nonzeros.{k}": v for k, v in nnz.items()}}
            for e, nnz in enumerate(nonzeros_by_epoch, 1)]
    summary = {"params": dict(params), "nonzeros": dict(nonzeros_by_epoch[-1]),
               "dataset": {"n_test": n_test}, "final_test_acc": test_acc}
    config = SimpleNamespace(optimizer=optimizer, beta=beta, permute_pixels=permute_pixels)
    return FakeRun(run_id, config, summary, pd.DataFrame(rows), store or {})


@pytest.fixture
def table2_runs():
    dense = [LAYERS["fc"]] * 2
    runs = {
        S_CONV_SGD: fake_run("c", LAYERS["conv"], [LAYERS["conv"]] * 2),
        S_LOCAL_SGD: fake_run("l", LAYERS["local"], [LAYERS["local"]] * 2),
        S_FC_SGD: fake_run("f", LAYERS["fc"], dense),
        lasso_key(0): fake_run("b0", LAYERS["fc"], [{"conv1.layer": 900, "fc1.layer": 40, "fc2.layer": 8},
                                                              {"conv1.layer": 800, "fc1.layer": 36, "fc2.layer": 8}],
                                        optimizer="beta-lasso", beta=0.0),
        lasso_key(50): fake_run("b50", LAYERS["fc"], [{"conv1.layer": 300, "fc1.layer": 30, "fc2.layer": 8},
                                                                {"conv1.layer": 50, "fc1.layer": 10, "fc2.layer": 6}],
                                         optimizer="beta-lasso", beta=50.0),
    }
    runs[BEST] = runs[lasso_key(50)]
    return runs


# ------------------------------------------------------------------ analysis additions
def test_pixel_order_is_the_one_data_permute_applies():
    x = torch.arange(2 * 3 * 5 * 4, dtype=torch.float32).reshape(2, 3, 5, 4)
    perm = pixel_order(7, 5, 4)
    assert sorted(perm.tolist()) == list(range(20))
    torch.testing.assert_close(permute(x, 7), x.reshape(2, 3, 20)[:, :, perm].reshape(2, 3, 5, 4))


def test_unpermute_restores_a_local_filter_and_keeps_responses():
    local = torch.zeros(2, 3, 32, 32)
    local[0, :, 4:7, 10:13] = torch.arange(27, dtype=torch.float32).reshape(3, 3, 3) - 13
    local[1, 2, 20, 20] = 1.0
    seen = permute(local, 5)  # the filter a network trained on permuted images needs for the same response
    back = unpermute_filters(seen, 5)
    torch.testing.assert_close(back, local)
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(permute(x, 5).flatten(1) @ seen.flatten(1).T, x.flatten(1) @ local.flatten(1).T)
    # local on the image grid, spread all over the permuted grid
    assert analysis.locality(back)["radius"][0] < 1.5 < 8 < analysis.locality(seen)["radius"][0]
    np.testing.assert_array_equal(unpermute_filters(seen.numpy(), 5).numpy(), local.numpy())
    with pytest.raises(ValueError, match="units × C × H × W"):
        unpermute_filters(torch.zeros(3, 32, 32), 5)


def test_rank_correlation_known_values():
    up = analysis.rank_correlation([1, 2, 3, 4, 5], [10, 20, 30, 40, 50])
    assert up["rho"] == pytest.approx(1) and up["n"] == 5
    assert up["p_value"] == pytest.approx(2 / math.factorial(5))  # only the two perfect pairings as extreme
    assert analysis.rank_correlation([1, 2, 3, 4], [4, 3, 2, 1])["rho"] == pytest.approx(-1)
    flat = analysis.rank_correlation([1, 2, 3], [5, 5, 5])
    assert math.isnan(flat["rho"]) and math.isnan(flat["p_value"])
    assert math.isnan(analysis.rank_correlation([1, 2], [1, 2])["rho"])
    from scipy import stats

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 12).astype(float), rng.normal(size=12)  # ties in x
    r = analysis.rank_correlation(x, y)
    assert r["rho"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert r["p_value"] == pytest.approx(stats.spearmanr(x, y).pvalue)
    assert analysis.rank_correlation([1, 2, float("nan"), 4], [1, 3, 2, 5])["n"] == 3
    with pytest.raises(ValueError, match="equal length"):
        analysis.rank_correlation([1, 2], [1, 2, 3])


# ------------------------------------------------------------------ Figure 3
def test_distinct_runs_merges_the_best_row(table2_runs):
    keys = list(tables.distinct_runs(table2_runs))
    assert keys[-1] == lasso_key(50)._replace(chosen="beta+best") and BEST not in keys
    assert labels.run_label(keys[-1]) == "S-FC, β-LASSO (β=50; best on validation)"
    assert len(keys) == 5
    assert [labels.run_label(k) for k in tables.lasso_runs(table2_runs)] == [
        "S-FC, β-LASSO (β=0)", "S-FC, β-LASSO (β=50; best on validation)"]


def test_nonzeros_curves_references_and_table(table2_runs):
    curves = tables.nonzeros_curves(table2_runs)
    assert len(curves) == 2 * 2 * 3  # runs × epochs × layers
    best = curves[curves["best"]]
    assert set(best["beta"]) == {50.0}
    first = best[best["layer"] == "conv1"].sort_values("epoch")
    assert first["nonzeros"].tolist() == [300, 50] and set(first["weights"]) == {1000}
    ref = tables.layer_references(table2_runs)
    assert ref.to_dict("records")[0] == {"layer": "conv1", "S-CONV": 10, "S-LOCAL": 100, "S-FC": 1000}
    table = tables.sparsity_table(table2_runs)
    assert table["S-FC, β-LASSO (β=50; best on validation)"].tolist() == [50, 10, 6]
    assert table["S-LOCAL weights"].tolist() == [100, 40, 8]
    text = weight_captions.describe_sparsity(table2_runs)
    assert "(β = 50)" in text and "50 non-zero weights" in text and "between S-CONV's and S-LOCAL's count" in text
    assert "fc1 25.0 %, fc2 75.0 %" in text
    assert weight_captions.relative_position(5, 10, 100) == "below S-CONV's"
    assert weight_captions.relative_position(100, 10, 100) == "at or above S-LOCAL's"


def test_layer_references_need_the_sgd_rows(table2_runs):
    del table2_runs[S_LOCAL_SGD]
    with pytest.raises(ValueError, match="S-LOCAL, SGD"):
        tables.layer_references(table2_runs)


# ------------------------------------------------------------------ filters
def _store(filters, unit_nonzeros):
    f = np.asarray(filters, dtype=np.float16)
    return {"filters": f, "filter_units": np.arange(len(f)), "unit_nonzeros": np.asarray(unit_nonzeros),
            "locality_radius": np.full(len(unit_nonzeros), 1.0, dtype=np.float32),
            "locality_window_mass": np.full(len(unit_nonzeros), 1.0, dtype=np.float32)}


def test_filter_sets_and_description():
    f = np.zeros((2, 3, 8, 8))
    f[0, :, :3, :3] = 1  # 27 non-zeros
    f[1, 0, :5, :5] = -1  # 25
    runs = {S_LOCAL_SGD: fake_run("l", {}, [{}], store=_store(f, [27, 25, 3, 0]))}
    sets = weight_tables.filter_sets(runs, rows=(S_LOCAL_SGD,))
    s = sets["S-LOCAL, SGD"]
    assert s["filters"].dtype == np.float32 and s["nonzeros"].tolist() == [27, 25]
    assert (s["eligible"], s["units_total"], s["grid_weights"]) == (2, 4, 192)
    assert "2 filters drawn from the 2 of its 4 units with at least 20 non-zeros (median 26" in weight_captions.describe_filters(sets)
    with pytest.raises(ValueError, match="S-FC, SGD"):
        weight_tables.filter_sets(runs, rows=(S_FC_SGD,))
    rule = "chosen at random among the filters with at least 20 non-zero weights"
    assert weight_captions.describe_filter_rule(runs, [S_LOCAL_SGD]) == rule
    # a run whose units all have < 20 non-zeros: the trainer drew among all units
    sparse = {(S_FC_SGD, True): fake_run("s", {}, [{}], store=_store(f[:1] * 0, [1, 0, 19]))}
    assert weight_captions.describe_filter_rule(sparse, [(S_FC_SGD, True)]) == (
        rule + " (among all filters for S-FC, SGD, permuted pixels, which has none)")
    text = weight_captions.describe_filters(weight_tables.filter_sets({S_FC_SGD: sparse[(S_FC_SGD, True)]}, rows=(S_FC_SGD,)))
    assert "drawn from all its 3 units (none has 20 non-zeros) (median 0 non-zero" in text


# ------------------------------------------------------------------ Theorem 2
def test_mdl_correlation_and_description():
    table = pd.DataFrame({"row": ["a", "b", "c", "d"], "description_bits": [1e6, 2e6, 3e6, 4e6],
                          "test_acc": [80.0, 70.0, 60.0, 50.0], "gap": [0.5, 1.5, 2.0, 3.0],
                          "bound": [0.7, 1.8, 2.4, 3.5]})
    corr = weight_tables.mdl_correlation(table)
    assert corr["rho"] == pytest.approx(-1) and corr["p_value"] == pytest.approx(2 / 24)
    text = weight_captions.describe_mdl(table, corr)
    assert text.startswith("Spearman's ρ = -1.00 over 4 runs (p = 0.08): shorter descriptions go with higher")
    assert "not distinguishable from no relation" in text
    assert "a's (1.00 Mbit" in text and "d's (4.00 Mbit" in text
    assert "vacuous (a bound on the test error of at least 1) for 3 of the 4 runs" in text
    flat = weight_captions.describe_mdl(table, {"rho": float("nan"), "p_value": float("nan"), "n": 2})
    assert flat.startswith("The rank correlation is undefined")


@pytest.mark.parametrize("name", ["s-conv", "d-conv", "s-local", "s-fc"])
def test_embedded_nonzeros_counts_the_fc_embedding(name):
    """Theorem 2's ‖w‖₀ of the first layer: the non-zeros of the same layer written as FC,
    also when some weights are zero (a convolution's weight then drops at every position)."""
    from companion import build_model
    from companion.nn.embedding import embed

    torch.manual_seed(0)
    model = build_model(name, 2)
    first = model.get_submodule((getattr(model, "conv_positions", ()) or model.paper_layers)[0])
    with torch.no_grad():
        first.weight.mul_(torch.rand_like(first.weight) > 0.3)  # about 30 % zeros
    fc = model if name.endswith("fc") else embed(model, "fc")
    expected = int(fc.get_submodule(fc.paper_layers[0]).weight.count_nonzero())
    assert analysis.embedded_nonzeros(model) == expected
    stored = int(first.weight.count_nonzero())
    # a convolution's weight counts once per position; a local layer's weights on padding drop
    assert {"s-conv": expected > stored, "d-conv": expected > stored,
            "s-local": expected < stored, "s-fc": expected == stored}[name]


# ------------------------------------------------------------------ locality over training
def test_locality_curves_skip_untracked_epochs_and_describe():
    metrics = pd.DataFrame({"epoch": [1, 2, 3],
                            "locality.radius": [[13, 13, 13, 13, 13], float("nan"), [3, 4, 5, 6, 7]],
                            "locality.window_mass": [[0.1] * 5, float("nan"), [0.5, 0.6, 0.7, 0.8, 0.9]]})
    run = FakeRun("x", SimpleNamespace(), {}, metrics)
    curves = weight_tables.locality_curves({S_FC_SGD: run}, rows=(S_FC_SGD,))
    assert len(curves) == 4 and list(curves.columns[-5:]) == ["q10", "q25", "q50", "q75", "q90"]
    radius = curves[curves["score"] == "radius"]
    assert radius["epoch"].tolist() == [1, 3] and radius["q50"].tolist() == [13, 5]
    refs = {"uniform": {"radius": 13.0}, "s-local": {"radius": 3.0}}
    text = weight_captions.describe_locality(curves, refs)
    assert "13.00 px after epoch 1, 5.00 px after epoch 3 (80 % of the way from uniform random weights to S-LOCAL)" in text
    assert weight_captions.way_to_local(float("nan"), 13, 3) == "no non-zero filter"


def test_final_locality_stacks_units():
    store = _store(np.zeros((1, 3, 4, 4)), [5, 0, 30])
    runs = {S_FC_SGD: fake_run("a", {}, [{}], store=store)}
    final = weight_tables.final_locality(runs, rows=(S_FC_SGD,))
    assert final["unit"].tolist() == [0, 1, 2] and final["nonzeros"].tolist() == [5, 0, 30]


# ------------------------------------------------------------------ permutation test
def test_permutation_summary_and_verdict():
    table = pd.DataFrame({"original": [80.0, 70.0], "permuted": [60.0, 69.5]},
                         index=pd.Index(["S-CONV, SGD", "S-FC, SGD"], name="row"))
    table["difference"] = table["permuted"] - table["original"]
    keys = {"S-CONV, SGD": S_CONV_SGD, "S-FC, SGD": S_FC_SGD}
    runs = {(keys[r], p): fake_run(r + str(p), {}, [{}], n_test=10_000) for r in table.index for p in (False, True)}
    summary = claims.permutation_summary(table, runs)
    se = math.sqrt(0.8 * 0.2 / 10_000 + 0.6 * 0.4 / 10_000) * 100
    assert summary.loc[0, "se"] == pytest.approx(se)
    assert summary["changes"].tolist() == [True, False]
    assert summary["paper_claim"].tolist() == ["not invariant", "invariant"]
    assert "holds here" in weight_captions.describe_permutation(summary)
    summary.loc[0, "changes"] = False
    assert "does not hold here" in weight_captions.describe_permutation(summary)


def test_permuted_filters_are_mapped_back_to_a_local_filter():
    local = np.zeros((3, 3, 32, 32), dtype=np.float32)
    for u in range(3):
        local[u, :, 8 * u : 8 * u + 3, 5:8] = 1.0 + u
    seen = permute(torch.from_numpy(local), PERMUTATION_SEED).numpy()
    runs = {(BEST, False): fake_run("o", {}, [{}], store=_store(local, [27] * 3)),
            (BEST, True): fake_run("p", {}, [{}], store=_store(seen, [27] * 3), permute_pixels=PERMUTATION_SEED)}
    sets = weight_tables.permuted_filters(runs)
    np.testing.assert_array_equal(sets[weight_tables.MAPPED_FILTERS], local)
    np.testing.assert_array_equal(sets[weight_tables.PERMUTED_FILTERS], seen)
    loc = weight_tables.filters_locality(sets).set_index("filters")
    assert loc.loc[weight_tables.MAPPED_FILTERS, "radius"] == pytest.approx(loc.loc[weight_tables.ORIGINAL_FILTERS, "radius"])
    assert loc.loc[weight_tables.MAPPED_FILTERS, "window_mass"] == 1.0
    assert loc.loc[weight_tables.PERMUTED_FILTERS, "radius"] > 8
    text = weight_captions.describe_permuted_filters(loc.reset_index())
    assert "mapped back to the image 1.15 px" in text  # RMS distance within a 3×3 block: √(4/3)
    runs[(BEST, True)].config.permute_pixels = None
    with pytest.raises(ValueError, match="not trained on permuted pixels"):
        weight_tables.permuted_filters(runs)


# ------------------------------------------------------------------ figures and frames
def test_filter_rgb_scheme():
    f = np.zeros((2, 3, 2, 2))
    f[0, 0, 0, 0], f[0, 1, 1, 1], f[0, 2, 0, 1] = 4.0, -4.0, 2.0
    img = W.filter_rgb(f)
    assert img.shape == (2, 2, 2, 3)
    assert img[0, 0, 0].tolist() == [1.0, 0.5, 0.5]  # +max: full red, other channels grey
    assert img[0, 1, 1].tolist() == [0.5, 0.0, 0.5]  # −max: no green
    assert img[0, 0, 1].tolist() == [0.5, 0.5, 0.75]
    assert (img[1] == 0.5).all()  # an all-zero filter is grey
    with pytest.raises(ValueError, match="units × 3 × H × W"):
        W.filter_rgb(np.zeros((2, 1, 4, 4)))


def test_figures_are_drawn(table2_runs):
    fig = W.figure3(tables.nonzeros_curves(table2_runs), tables.layer_references(table2_runs))
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    conv1, fc1 = fig.axes[0], fig.axes[1]
    assert conv1.get_yscale() == "log" and fc1.get_yscale() == "linear"
    assert {t.get_text() for t in fc1.get_legend().get_texts()} >= {"S-CONV = S-LOCAL = S-FC weights"}
    frame = W.sparsity_frame(tables.sparsity_table(table2_runs))
    assert frame.iloc[0]["S-FC, β-LASSO (β=50; best on validation) non-zeros"] == "50 (5.0 %)"
    assert frame.iloc[0]["S-FC weights"] == "1,000"

    f = np.random.default_rng(0).normal(size=(5, 3, 8, 8))
    assert len(W.filter_grid(f, ncols=4).axes) == 8  # 2 rows × 4, three blank
    assert len(W.figure4({"a": f, "b": {"filters": f[:2]}}, per=4, ncols=2).axes) == 4 + 2
    assert len(W.filters_rows({"a": f, "b": f}, per=3).axes) == 6
    with pytest.raises(ValueError, match="no filters"):
        W.filter_grid(f[:0])

    table = pd.DataFrame({"row": ["a", "b", "c"], "n": [100] * 3, "k": [10, 20, 30], "nonzeros": [10, 20, 30],
                          "kb": [320, 640, 960], "d_g": [5.0, 6.0, 7.0], "log_term": [8.0] * 3,
                          "description_bits": [333.0, 654.0, 975.0], "gap": [0.5, 1.0, 2.0],
                          "bound": [0.6, 1.1, 2.2], "train_acc": [90.0] * 3, "test_acc": [70.0, 60.0, 50.0]})
    frame = W.mdl_frame(table)
    assert frame["bound"].tolist() == ["0.60", "1.10 (vacuous)", "2.20 (vacuous)"]
    assert len(W.mdl_figure(table, weight_tables.mdl_correlation(table)).axes) == 2

    curves = pd.DataFrame([{"row": r, "epoch": e, "score": s, "q10": 1, "q25": 2, "q50": 3, "q75": 4, "q90": 5}
                           for r in ("x", "y") for e in (1, 2) for s in ("radius", "window_mass")])
    refs = analysis.reference_locality(units=16)
    assert len(W.locality_figure(curves, refs).axes) == 2
    final = pd.DataFrame({"row": ["x", "x", "y"], "radius": [1.0, float("nan"), 12.0], "window_mass": [1.0, 0.5, 0.1]})
    assert len(W.locality_histogram(final, refs).axes) == 2

    summary = pd.DataFrame({"row": ["S-FC, SGD"], "original": [70.0], "permuted": [69.0], "difference": [-1.0],
                            "se": [0.6], "changes": [False], "paper_claim": ["invariant"]})
    assert W.permutation_frame(summary).iloc[0].tolist() == ["S-FC, SGD", "70.00", "69.00", "-1.00", "1.20", "no",
                                                             "invariant"]
    loc = pd.DataFrame({"filters": ["a"], "count": [3], "radius": [1.234], "window_mass": [0.5]})
    assert W.locality_frame(loc).iloc[0].tolist() == ["a", "3", "1.23", "0.500"]
