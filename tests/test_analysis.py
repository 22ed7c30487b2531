"""Analysis: first-layer filters on the grid, locality scores, Theorem 2's terms."""

import math

import pytest
import torch

from companion import build_model
from companion.nn.analysis import first_layer_filters, locality, reference_locality, theorem2


def test_locality_of_constructed_filters():
    f = torch.zeros(4, 3, 32, 32)
    f[0, 1, 10, 20] = 2.0  # a single pixel: radius 0, all mass in the window
    f[1, :, 5, 5] = 1.0
    f[1, :, 5, 9] = 1.0  # two equal pixels 4 apart: centroid between them, radius 2
    f[2, 0, 0, 0] = 1.0
    f[2, 0, 31, 31] = 1.0  # opposite corners: radius = half the diagonal, half the mass in the window
    scores = locality(f)
    r, wm = scores["radius"], scores["window_mass"]
    assert r[0] == 0 and wm[0] == 1
    assert r[1] == pytest.approx(2.0) and wm[1] == 1
    assert r[2] == pytest.approx(31 * math.sqrt(2) / 2) and wm[2] == 0  # centroid (15.5,15.5): both corners outside
    assert math.isnan(r[3]) and math.isnan(wm[3])  # an all-zero filter has no locality


def test_reference_values_separate_dense_from_local():
    ref = reference_locality(units=128)
    # i.i.d. weights over 32×32: RMS distance from the centre √(2·(32²−1)/12) ≈ 13.06
    assert ref["uniform"]["radius"] == pytest.approx(math.sqrt(2 * (32**2 - 1) / 12), rel=0.02)
    assert ref["uniform"]["window_mass"] == pytest.approx(81 / 1024, rel=0.1)
    # a full 9×9 field: √(2·(9²−1)/12) ≈ 3.65, all mass inside
    assert ref["s-local"]["radius"] == pytest.approx(math.sqrt(2 * 80 / 12), rel=0.05)
    assert ref["s-local"]["window_mass"] == 1.0


def test_first_layer_filters_follow_the_embedding():
    torch.manual_seed(0)
    for name, units in (("s-fc", 2 * 256), ("s-local", 2 * 256), ("s-conv", 2)):
        model = build_model(name, 2)
        f = first_layer_filters(model)
        assert f.shape == (units, 3, 32, 32)
        nnz = f.flatten(1).count_nonzero(1)
        if name == "s-fc":
            assert (nnz == 3072).all()
        else:  # 9×9×3 fields, clipped by the padding at the border
            assert nnz.max() == 243 and (nnz <= 243).all()
    conv = build_model("s-conv", 2)
    f = first_layer_filters(conv)
    # the central unit (8, 8) reads rows/cols 2·8−4 … 2·8+4
    torch.testing.assert_close(f[1, :, 12:21, 12:21], conv.conv1.layer.weight[1].detach())


def test_theorem2_terms_by_hand():
    t = theorem2(n=1024, k=16, nonzeros=32, m=1000, train_error=0.1, b=8, delta=0.5)
    d_g = 32 * math.log2(16 * 1024) + 2 * math.log2(1024)  # 32·14 + 20 = 468
    assert t["d_g"] == pytest.approx(468)
    assert t["kb"] == 128 and t["log_term"] == pytest.approx(math.log2(2 * 1024 / 0.5))  # 12
    assert t["gap"] == pytest.approx(math.sqrt((128 + 468 + 12) / 2000))
    assert t["bound"] == pytest.approx(0.1 + t["gap"])
    with pytest.raises(ValueError, match="1 <= k <= n"):
        theorem2(n=10, k=11, nonzeros=3, m=5)


def test_random_placement_null_spreads_few_weights_over_the_grid():
    from companion.nn.analysis import random_placement_locality

    counts = torch.tensor([0, 1, 3, 20, 3072])
    null = random_placement_locality(counts, seed=1)
    r, wm = null["radius"], null["window_mass"]
    assert math.isnan(r[0]) and math.isnan(wm[0])  # no weight, no locality
    assert r[1] == 0 and wm[1] == 1  # one weight is trivially "local"
    # many weights at random: the uniform reference (≈ 13.06 px, ≈ 81/1024 of the mass)
    assert r[4] == pytest.approx(13.06, rel=0.03) and wm[4] == pytest.approx(81 / 1024, rel=0.25)
    many = random_placement_locality(torch.full((256,), 20), seed=2)["radius"]
    assert 11 < float(many.median()) < 14  # 20 random pixels are far from a 9×9 field (3.65 px)
    with pytest.raises(ValueError, match=r"unit_nonzeros must lie in \[0, 3072\]"):
        random_placement_locality([5000])


def test_settled_epoch_finds_when_a_series_stops_moving():
    from companion.nn.analysis import settled_epoch

    assert settled_epoch([10, 8, 5, 4.1, 4.05, 4.0], tolerance=0.2) == 3
    assert settled_epoch([4, 4, 4], tolerance=0.0) == 0
    assert settled_epoch([1, 5, 1], tolerance=0.5) == 2  # it left and came back: settled only at the end
    assert settled_epoch([float("nan"), 2.0], tolerance=1.0) == 1
    with pytest.raises(ValueError, match="tolerance"):
        settled_epoch([1.0], tolerance=-1)
