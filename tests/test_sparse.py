"""companion.nn.sparse: exporting a β-LASSO-sparse FC network to sparse inference (Section 5)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from companion.nn.models import build_model
from companion.nn.sparse import (
    LAYOUTS, SparseMLP, density_report, memory_bytes, to_sparse,
)

#: fraction of weights zeroed per layer of the test S-FC (fc2 stays dense, Figure 3)
ZEROED = {"conv1.layer": 0.95, "fc1.layer": 0.80, "fc2.layer": 0.0}


def _zero_exactly(weight: torch.Tensor, fraction: float, gen: torch.Generator) -> int:
    """Zero exactly round(fraction·numel) random entries (none of them zero before); return non-zeros."""
    n = weight.numel()
    zeroed = round(fraction * n)
    with torch.no_grad():
        weight.view(-1)[torch.randperm(n, generator=gen)[:zeroed]] = 0.0
    return n - zeroed


def _random_bn_(bn: nn.BatchNorm1d, gen: torch.Generator) -> None:
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=gen) * 0.5)
        bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) * 2 + 0.1)
        bn.weight.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
        bn.bias.copy_(torch.randn(bn.num_features, generator=gen))


@pytest.fixture(scope="module")
def sparse_s_fc():
    """S-FC α=2 with 5 % / 20 % / 100 % non-zeros, random BN statistics, eval mode; and its counts."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = build_model("s-fc", 2)
    nonzeros = {}
    for name, fraction in ZEROED.items():
        layer = model.get_submodule(name)
        assert torch.count_nonzero(layer.weight) == layer.weight.numel()  # so the counts below are exact
        nonzeros[name] = _zero_exactly(layer.weight, fraction, gen)
    _random_bn_(model.conv1.bn, gen)
    _random_bn_(model.fc1.bn, gen)
    return model.eval(), nonzeros


@pytest.fixture(scope="module")
def images():
    return torch.randn(100, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_same_logits_and_predictions(sparse_s_fc, images, layout):
    model, _ = sparse_s_fc
    with torch.no_grad():
        expected = model(images)
    exported = to_sparse(model, layout=layout, batch_block=32)  # 100 = 3 full blocks + 4
    got = exported(images)
    assert got.shape == expected.shape == (100, 10)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert torch.equal(got.argmax(1), expected.argmax(1))
    assert expected.std() > 0.1  # the logits are not trivially equal (e.g. all zero)
    assert exported(images[:0]).shape == (0, 10)


def test_batchnorm_is_folded_and_auto_picks_by_density(sparse_s_fc):
    model, _ = sparse_s_fc
    exported = to_sparse(model, layout="auto", max_density=0.1)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in exported.modules())
    assert [s.layout for s in exported.layers()] == ["bag", "dense", "dense"]  # 5 %, 20 %, 100 %
    assert [s.layout for s in to_sparse(model, max_density=0.5).layers()] == ["bag", "bag", "dense"]
    # folding scales rows: the zero pattern of every layer is kept exactly
    for layer, name in zip(exported.layers(), ZEROED):
        assert layer.nonzeros == torch.count_nonzero(model.get_submodule(name).weight)
    # ... also in the stored arrays of the sparse layouts
    bag, csr = to_sparse(model, layout="bag").layers()[0], to_sparse(model, layout="csr").layers()[0]
    assert bag.values.numel() == csr.weight.values().numel() == exported.layers()[0].nonzeros


def test_density_report_is_exact(sparse_s_fc):
    model, nonzeros = sparse_s_fc
    report = density_report(model)
    assert list(report.columns) == ["layer", "params", "nonzeros", "density"]
    assert list(report["layer"]) == list(ZEROED)
    params = [2 * 16 * 16 * 3 * 32 * 32, 24 * 2 * 2 * 16 * 16, 10 * 24 * 2]  # Table 4 with α = 2
    assert list(report["params"]) == params
    assert list(report["nonzeros"]) == [nonzeros[n] for n in ZEROED]
    assert report["density"].tolist() == pytest.approx([nonzeros[n] / p for n, p in zip(ZEROED, params)])
    assert report["density"].tolist() == pytest.approx([0.05, 0.20, 1.0], abs=1e-4)
    # the exported module reports the same layers and counts
    exported = density_report(to_sparse(model))
    assert exported[["layer", "params", "nonzeros"]].equals(report[["layer", "params", "nonzeros"]])


def test_memory_smaller_than_dense_at_5_percent(sparse_s_fc):
    model, nonzeros = sparse_s_fc
    dense_bytes = memory_bytes(model)
    assert dense_bytes >= 4 * sum(p.numel() for p in model.parameters())
    exported = to_sparse(model, layout="bag")
    first = exported.layers()[0]
    # bag layout: float32 value + int32 column per non-zero, int32 row offsets, float32 bias
    assert memory_bytes(first) == 8 * nonzeros["conv1.layer"] + 4 * (first.out_features + 1) + 4 * first.out_features
    assert memory_bytes(exported) < 0.2 * dense_bytes
    assert memory_bytes(to_sparse(model, layout="dense")) < dense_bytes  # BN folded away
    assert memory_bytes(to_sparse(model, layout="coo")) > memory_bytes(exported)  # int64 indices


def test_other_fc_models_export():
    images = torch.randn(50, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    for name, alpha in (("d-fc", 1), ("3-fc", 32)):
        torch.manual_seed(0)
        model = build_model(name, alpha, image_size=16, dropout=0.1)
        gen = torch.Generator().manual_seed(2)
        for m in model.modules():
            if isinstance(m, nn.Linear):
                _zero_exactly(m.weight, 0.9, gen)
            elif isinstance(m, nn.BatchNorm1d):
                _random_bn_(m, gen)
        model.eval()
        with torch.no_grad():
            expected = model(images)
        got = to_sparse(model)(images)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        assert torch.equal(got.argmax(1), expected.argmax(1))


@pytest.mark.parametrize("name", ["s-conv", "s-local"])
def test_unsupported_layers_are_a_clear_value_error(name):
    model = build_model(name, 1).eval()
    with pytest.raises(ValueError, match=r"unsupported layer 'conv1\.layer'.*accepted"):
        to_sparse(model)


def test_non_sequential_model_is_a_value_error():
    with pytest.raises(ValueError, match="nn.Sequential"):
        to_sparse(build_model("resnet18", 1).eval())


def test_training_mode_model_is_a_value_error(sparse_s_fc):
    model, _ = sparse_s_fc
    model.train()
    try:
        with pytest.raises(ValueError, match=r"training mode.*model\.eval\(\)"):
            to_sparse(model)
    finally:
        model.eval()


def test_bad_arguments_are_value_errors(sparse_s_fc, images):
    model, _ = sparse_s_fc
    with pytest.raises(ValueError, match="layout must be one of auto, bag, csr, coo, dense"):
        to_sparse(model, layout="ell")
    with pytest.raises(ValueError, match="max_density"):
        to_sparse(model, max_density=1.5)
    with pytest.raises(ValueError, match="batch_block"):
        to_sparse(model, batch_block=0)
    exported = to_sparse(model)
    with pytest.raises(ValueError, match="3072 features"):
        exported(images[:, :, :16])
    with pytest.raises(ValueError, match="inference-only"):
        exported.train()


def test_export_does_not_share_or_change_the_model(sparse_s_fc, images):
    model, _ = sparse_s_fc
    before = {k: v.clone() for k, v in model.state_dict().items()}
    exported = to_sparse(model, layout="dense")
    exported.layers()[0].weight.zero_()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert isinstance(exported, SparseMLP) and not exported.training


# ------------------------------------------------------------------ measurements (chapter 11)
def test_timed_calls_each_variant_warm_up_plus_repeats_and_returns_medians():
    from companion.nn.sparse import timed

    calls = {"a": 0, "b": 0}

    def bump(name):
        calls[name] += 1

    t = timed({"a": lambda: bump("a"), "b": lambda: bump("b")}, repeats=3)
    assert calls == {"a": 4, "b": 4} and set(t) == {"a", "b"} and all(v >= 0 for v in t.values())
    with pytest.raises(ValueError, match="repeats must be an integer >= 1"):
        timed({"a": lambda: None}, repeats=0)
    ticks = iter(range(100))  # a clock that advances by one per reading: every call takes 1
    assert timed({"a": lambda: None, "b": lambda: None}, repeats=3, clock=lambda: next(ticks),
                 pause=1e-4) == {"a": 1, "b": 1}
    calls = {"a": 0, "b": 0}  # warm: one more (untimed) call of the same variant before each timed one
    timed({"a": lambda: bump("a"), "b": lambda: bump("b")}, repeats=3, warm=True)
    assert calls == {"a": 7, "b": 7}


def test_inference_speed_is_a_ratio_of_rates_and_restores_threads(sparse_s_fc, images):
    from companion.nn.sparse import inference_speed

    model, _ = sparse_s_fc
    before = torch.get_num_threads()
    r = inference_speed(model, to_sparse(model), images, threads=1, repeats=2)
    assert torch.get_num_threads() == before
    assert r["threads"] == 1 and r["batch"] == len(images)
    assert r["speedup"] == pytest.approx(r["sparse_images_per_s"] / r["dense_images_per_s"])
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        inference_speed(model, to_sparse(model), images, threads=0)


def test_agreement_counts_same_predictions_and_logit_gap(sparse_s_fc, images):
    from companion.nn.sparse import agreement

    model, _ = sparse_s_fc
    exact = agreement(model, to_sparse(model), images, batch=30)  # several blocks
    assert exact["images"] == 100 and exact["same_prediction"] == 100 and exact["max_logit_diff"] < 1e-4
    other = build_model("s-fc", 2).eval()  # another network: some predictions differ
    off = agreement(other, to_sparse(model), images)
    assert off["same_prediction"] < 100 and off["max_logit_diff"] > 1e-2


# ------------------------------------------------------------------ layouts and threads
def test_choose_layout_keeps_sparse_rows_up_to_the_measured_threshold():
    from companion.nn.sparse import AUTO_MAX_DENSITY
    from companion.nn.sparse_layout import choose_layout

    assert AUTO_MAX_DENSITY == 0.30  # bench_sparse_inference.py part 1: "bag" 0.72-0.90x dense at 30 %, ~1x at 35 %
    assert choose_layout("auto", 0.004) == choose_layout("auto", 0.30) == "bag"
    assert choose_layout("auto", 0.31) == choose_layout("auto", 1.0) == "dense"
    assert choose_layout("auto", 0.5, max_density=0.6) == "bag"
    assert choose_layout("csr", 0.99) == "csr"
    with pytest.raises(ValueError, match="layout must be one of"):
        choose_layout("ell", 0.1)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("batch", [100, 20])
def test_threads_split_the_blocks_and_give_the_same_logits(sparse_s_fc, images, threads, batch):
    """With T threads the blocks are cut into (at most) T shards run side by side, each on one
    intra-op thread, so each block is computed as on one thread: the logits are bitwise those of
    one thread. A single block runs on the caller's intra-op threads. The caller's thread count
    (and the one new threads start with) is restored."""
    import threading

    model, _ = sparse_s_fc
    exported = to_sparse(model, batch_block=32)  # 100 = 3 full blocks + 4; 20 = one short block
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = exported(images[:batch])
        torch.set_num_threads(threads)
        many = exported(images[:batch])
        assert torch.get_num_threads() == threads
        seen = []
        fresh = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        fresh.start()
        fresh.join()
        assert seen == [threads]
    finally:
        torch.set_num_threads(before)
    if batch > 32:  # several blocks, so several shards
        assert torch.equal(one, many)
    with torch.no_grad():
        torch.testing.assert_close(many, model(images[:batch]), rtol=1e-4, atol=1e-5)
    assert not many.is_inference() and many.add_(1).shape == (batch, 10)  # an ordinary tensor


def test_a_network_without_sparse_layers_runs_in_one_block(sparse_s_fc, images):
    model, _ = sparse_s_fc
    exported = to_sparse(model, layout="dense", batch_block=7)
    assert not exported.sparse and to_sparse(model).sparse
    calls = []
    first = exported.stages[0]
    first.register_forward_pre_hook(lambda m, a: calls.append(a))  # not called: stages run .forward
    with torch.no_grad():
        torch.testing.assert_close(exported(images), model(images), rtol=1e-4, atol=1e-5)
    assert calls == []


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dense_layout_multiplies_through_onednn_or_addmm(dtype):
    """Section 5's dense remainder (β=10's fc1): ``W h`` through oneDNN where it runs (float32),
    else ``addmm`` (float64, or no oneDNN); the same product either way, bias added."""
    from companion.nn.sparse_layout import SparseLinear, onednn_matmul

    gen = torch.Generator().manual_seed(2)
    w, b = torch.randn(7, 33, generator=gen, dtype=dtype), torch.randn(7, generator=gen, dtype=dtype)
    h = torch.randn(33, 5, generator=gen, dtype=dtype)  # feature-major: in_features x batch
    y = onednn_matmul(w, h)
    if dtype == torch.float64:
        assert y is None
    elif y is not None:  # oneDNN available in this build
        torch.testing.assert_close(y, w @ h, rtol=1e-5, atol=1e-5)
        assert y.shape == (7, 5) and y.is_contiguous()
    layer = SparseLinear(w, b, "dense")
    with torch.no_grad():
        torch.testing.assert_close(layer(h), torch.addmm(b[:, None], w, h), rtol=1e-5, atol=1e-5)
        assert layer(h[:, :0]).shape == (7, 0) and layer(h[:, :1]).shape == (7, 1)
