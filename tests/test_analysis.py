"""Analysis: first-layer filters on the grid, locality scores, Theorem 2's terms."""

import math

import pytest
import torch

from companion import build_model
from companion.analysis import first_layer_filters, locality, reference_locality, theorem2


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
