"""Exact parameter accounting vs the paper's closed forms (Tables 1, 3, 4)."""

import pytest

from companion import alpha_for_budget, count_params, paper_param_count
from companion.nn.params import PAPER_NETS, layer_table, paper_layer_formulas, scaling, table1_params


@pytest.mark.parametrize("name", PAPER_NETS)
@pytest.mark.parametrize("alpha,s,c", [(3, 32, 10), (5, 16, 100), (2, 64, 10)])
def test_every_layer_against_table(name, alpha, s, c):
    """Per layer, exact weights = the table's entry, except Table 3's D-LOCAL conv3..conv8."""
    table = layer_table(name, alpha, image_size=s, num_classes=c).set_index("layer")
    layers = table.drop(index="Total")
    for layer, row in layers.iterrows():
        i = int(layer[4:]) if layer.startswith("conv") else 0
        if name == "d-local" and i >= 3:
            # Table 3 prints 9·s²α²/2^(i-1); a local layer has conv weights × positions:
            # 9·(in)(out)·(s/2^⌊i/2⌋)² = 9·s²α² (odd i) or 9·s²α²/2 (even i).
            expected = 9 * s**2 * alpha**2 / (2 if i % 2 == 0 else 1)
            assert row.weight == expected and row.paper == 9 * s**2 * alpha**2 / 2 ** (i - 1)
        else:
            assert row.weight == row.paper, layer
    # batch-norm: 2 per channel (conv/local) or per unit (fc) after every layer but the last
    last = layers.index[-1]
    assert layers.loc[last, "bn"] == 0 and layers.loc[last, "bias"] == c
    assert (layers.drop(index=last)["bias"] == 0).all()
    assert table.loc["Total", "total"] == count_params(name, alpha, image_size=s, num_classes=c)


@pytest.mark.parametrize("name", PAPER_NETS)
def test_totals_explained(name):
    """Exact total = paper's total formula + documented differences (params.py docstring)."""
    a, s, c = 4, 32, 10
    table = layer_table(name, a, image_size=s, num_classes=c).set_index("layer")
    total = table.loc["Total"]
    weights = total.weight
    depth, variant = name.split("-")
    paper = paper_param_count(name, a, s, c)
    formulas = paper_layer_formulas(name, a, s, c)
    if depth == "s":
        assert weights == paper == sum(formulas.values())
    elif variant == "conv":
        assert paper - weights == 9 * 2 * a**2  # 9·2⁸ vs the exact 9·(2⁸−2)
    elif variant == "fc":
        assert paper - weights == s**4 * a**2 / 128  # s⁴α² vs s⁴α²·127/128
    else:  # d-local: Table 3's conv3..8 column; fc1 and conv1 agree
        # conv1 27s²α, conv2..8: 4 even layers × 9s²α²/2 + 3 odd layers × 9s²α² = 45s²α²
        assert weights == 27 * s**2 * a + 45 * s**2 * a**2 + 4 * s**2 * a**2 + 64 * c * a
    assert total.total == weights + c + total.bn


def test_table1_params_columns_to_papers_precision():
    t1 = table1_params().set_index("model")
    assert t1.loc["d-conv", "alpha"] == 15 and t1.loc["s-conv", "alpha"] == 150
    # the paper's "orig." column (printed to 3 significant digits) and FC-emb. "256"
    assert round(t1.loc["d-conv", "orig_M"], 2) == 1.45
    assert round(t1.loc["s-conv", "orig_M"]) == 138
    assert int(t1.loc["s-local", "orig_M"]) == 147
    for name in ("s-conv", "s-local", "s-fc", "3-fc"):
        assert round(t1.loc[name, "fc_emb_M"]) == 256
    # D-LOCAL: the paper's 3.42 M is Table 3's formula; D-FC at α=15 is 282 M ("roughly 256")
    assert round(t1.loc["d-local", "formula_orig_M"], 2) == 3.42
    assert round(t1.loc["d-local", "orig_M"], 1) == 11.7
    assert round(t1.loc["d-fc", "fc_emb_M"]) == 282


def test_alpha_for_budget_is_smallest_reaching_budget():
    a = alpha_for_budget("s-conv", 10e6)
    assert count_params("s-fc", a) >= 10e6 > count_params("s-fc", a - 1)
    assert alpha_for_budget("3-fc", 1e6) == alpha_for_budget("3-fc", 1e6)
    h = alpha_for_budget("3-fc", 1e6)
    assert count_params("3-fc", h) >= 1e6 > count_params("3-fc", h - 1)


def test_paper_param_count_errors():
    with pytest.raises(ValueError, match="no closed form"):
        paper_param_count("resnet18", 64)
    with pytest.raises(ValueError, match="unknown model"):
        paper_param_count("vgg", 64)
    with pytest.raises(ValueError, match="positive"):
        alpha_for_budget("s-fc", -1)


def test_scaling_fc_grows_with_fourth_power_of_image_size():
    df = scaling(["s-fc", "s-conv"], alphas=[4], image_sizes=[32, 64], alpha=4)
    by = df[df.sweep == "image_size"].set_index(["model", "image_size"])["params"]
    # Section 2.1: FC counts depend on s⁴, CONV/LOCAL on s² (for large s the ratio approaches 16 / 4)
    assert by["s-fc", 64] / by["s-fc", 32] > 8
    assert by["s-conv", 64] / by["s-conv", 32] < 4.1


def test_cli_params_prints_table1(capsys):
    from companion.cli import main

    assert main(["params", "s-conv", "--alpha", "2"]) == 0
    out = capsys.readouterr().out
    assert "conv9x9(α, 2)" in out and "FC(24α)" in out
    assert main(["params"]) == 0
    out = capsys.readouterr().out
    assert "d-local" in out and "3.42" in out and "11.7" in out
    assert main(["params", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
