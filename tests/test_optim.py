"""Tests for companion.optim: β-LASSO (Algorithm 1) and the paper's parameter groups."""

import math

import pytest
import torch
from torch import nn

from companion import optim
from companion.optim import BetaLasso, lasso_param_groups


def f64(values):
    return torch.tensor(values, dtype=torch.float64)


def one_step(theta, grad, **hyper):
    """Run one BetaLasso step on a single float64 parameter and return its new value."""
    p = nn.Parameter(f64(theta))
    p.grad = f64(grad)
    BetaLasso([p], **hyper).step()
    return p.detach()


# --- Algorithm 1, hand-computed -------------------------------------------------------------
# lr=0.5, lam=0.25, beta=2: l1 push lr*lam = 0.125, threshold beta*lam = 0.5 (all exact in binary).

def test_step_matches_hand_computed_values():
    new = one_step(
        theta=[1.0, -0.75, 0.0, 0.25, 0.875, 0.0],
        grad=[0.5, 0.5, 2.0, 0.0, 0.25, 0.5],
        lr=0.5, lam=0.25, beta=2.0,
    )
    # 1.0 - 0.25 - 0.125 = 0.625 (kept);  -0.75 - 0.25 + 0.125 = -0.875 (kept);
    # 0.0 - 1.0 - 0 = -1.0 (a zero weight is revived by a large gradient);
    # 0.25 - 0 - 0.125 = 0.125 < 0.5 (zeroed);  0.875 - 0.125 - 0.125 = 0.625 (kept);
    # 0.0 - 0.25 - 0 = -0.25 (a small gradient does not revive a zero weight)
    assert torch.equal(new, f64([0.625, -0.875, -1.0, 0.0, 0.625, 0.0]))


def test_weight_exactly_at_threshold_is_kept_and_just_below_is_zeroed():
    eps = 2.0**-30
    new = one_step(
        theta=[0.75, 0.75, 0.75, -0.75],
        grad=[0.25, 0.25 + 2 * eps, 0.25 - 2 * eps, -0.25],
        lr=0.5, lam=0.25, beta=2.0,
    )
    # 0.75 - 0.5*g - 0.125: exactly 0.5 (kept), 0.5 - eps (zeroed), 0.5 + eps (kept), -0.5 (kept)
    assert torch.equal(new, f64([0.5, 0.0, 0.5 + eps, -0.5]))


def test_zero_weight_gets_no_l1_push():
    # sign(0) = 0: with a zero gradient a zero weight stays exactly zero, even with beta=0.
    new = one_step(theta=[0.0, 0.0], grad=[0.0, 0.0], lr=0.5, lam=0.25, beta=0.0)
    assert torch.equal(new, f64([0.0, 0.0]))


def test_beta_zero_is_the_l1_subgradient_step():
    new = one_step(theta=[0.25, 0.0, -0.0625], grad=[0.0, 0.125, 0.0], lr=0.5, lam=0.25, beta=0.0)
    # 0.25 - 0.125 = 0.125;  0 - 0.0625 = -0.0625;  -0.0625 + 0.125 = 0.0625 (nothing thresholded)
    assert torch.equal(new, f64([0.125, -0.0625, 0.0625]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_threshold_is_exact_in_low_precision(dtype):
    # lr=0 leaves only line 3 of Algorithm 1; beta*lam = 5e-5 is not representable in these dtypes.
    lam, beta = 1e-6, 50.0
    threshold = beta * lam
    near = torch.tensor(threshold, dtype=torch.float64).to(dtype)
    values = [near]
    for direction in (0.0, 1.0):
        t = near
        for _ in range(3):
            t = torch.nextafter(t, torch.tensor(direction, dtype=dtype))
            values.append(t)
    theta = torch.stack(values)
    theta = torch.cat([theta, -theta])
    p = nn.Parameter(theta.clone())
    p.grad = torch.zeros_like(theta)
    BetaLasso([p], lr=0.0, lam=lam, beta=beta).step()
    expected = torch.where(theta.double().abs() >= threshold, theta.double(), 0.0)
    assert torch.equal(p.detach().double(), expected)
    assert 0 < int((expected != 0).sum()) < theta.numel()  # the grid straddles the threshold


# --- relation to SGD and per-group settings -------------------------------------------------

def test_lam_zero_equals_sgd_over_several_steps():
    torch.manual_seed(0)
    model_a = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    model_b = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    model_b.load_state_dict(model_a.state_dict())
    initial = [p.detach().clone() for p in model_a.parameters()]
    opt_a = BetaLasso(model_a.parameters(), lr=0.1, lam=0.0, beta=50.0)
    opt_b = torch.optim.SGD(model_b.parameters(), lr=0.1, momentum=0.0)
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    for _ in range(4):
        for model, opt in ((model_a, opt_a), (model_b, opt_b)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for pa, pb, p0 in zip(model_a.parameters(), model_b.parameters(), initial):
        assert torch.equal(pa, pb)
        assert not torch.equal(pa, p0)  # the steps did move every parameter


def test_per_group_overrides_of_lam_and_beta():
    a = nn.Parameter(f64([0.25, 1.0]))
    b = nn.Parameter(f64([0.25, 1.0]))
    c = nn.Parameter(f64([0.25, 1.0]))
    for p in (a, b, c):
        p.grad = f64([0.0, 0.0])
    opt = BetaLasso([{"params": [a]},  # defaults: lam=0.25, beta=2 -> push 0.125, threshold 0.5
                     {"params": [b], "lam": 0.0625},  # push 0.03125, threshold 0.125
                     {"params": [c], "beta": 0.0}],  # push 0.125, no threshold
                    lr=0.5, lam=0.25, beta=2.0)
    opt.step()
    assert torch.equal(a.detach(), f64([0.0, 0.875]))
    assert torch.equal(b.detach(), f64([0.21875, 0.96875]))
    assert torch.equal(c.detach(), f64([0.125, 0.875]))


def reference_step(p, g, lr, lam, beta):
    """Algorithm 1 written plainly for one tensor."""
    new = p - lr * (g + lam * torch.sign(p))
    return new * (new.abs() >= beta * lam)


@pytest.mark.parametrize("batch_numel", [None, 7, 50, optim._CPU_BATCH_NUMEL])
def test_group_of_many_shapes_matches_per_tensor_reference(monkeypatch, batch_numel):
    # 7 cuts tensors into pieces and batches small ones together; None is the accelerator path
    # (whole tensors, foreach kernels); the last is the default CPU path.
    monkeypatch.setattr(optim, "_CPU_BATCH_NUMEL", batch_numel)
    torch.manual_seed(1)
    lr, lam, beta = 0.1, 0.05, 2.0
    shapes = [(3, 4, 5), (17,), (2, 3), (1,), (6, 6)]
    params = [nn.Parameter(torch.randn(s, dtype=torch.float64) * 0.3) for s in shapes]
    params.append(nn.Parameter(torch.randn(6, 4, dtype=torch.float64).t()))  # non-contiguous
    grads = [torch.randn_like(p) for p in params]
    expected = [reference_step(p.detach(), g, lr, lam, beta) for p, g in zip(params, grads)]
    # keep the comparison away from rounding-sensitive values at the threshold
    for p, g in zip(params, grads):
        before_mask = (p - lr * (g + lam * torch.sign(p))).abs()
        assert ((before_mask - beta * lam).abs() > 1e-9).all()
    for p, g in zip(params, grads):
        p.grad = g.clone()
    BetaLasso(params, lr=lr, lam=lam, beta=beta).step()
    for p, e in zip(params, expected):
        torch.testing.assert_close(p.detach(), e, rtol=1e-14, atol=1e-15)
    assert sum(int((e == 0).sum()) for e in expected) > 0  # thresholding did something


def test_mixed_dtypes_in_one_group():
    torch.manual_seed(2)
    lr, lam, beta = 0.1, 0.05, 2.0
    p32 = nn.Parameter(torch.randn(5, 4) * 0.5)
    p16 = nn.Parameter((torch.randn(9) * 0.5).to(torch.bfloat16))
    grads = [torch.randn_like(p32), torch.randn_like(p16)]
    expected = [reference_step(p.detach().double(), g.double(), lr, lam, beta)
                for p, g in zip((p32, p16), grads)]
    p32.grad, p16.grad = grads
    BetaLasso([p32, p16], lr=lr, lam=lam, beta=beta).step()
    assert p16.dtype == torch.bfloat16
    torch.testing.assert_close(p32.detach().double(), expected[0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(p16.detach().double(), expected[1], rtol=2e-2, atol=1e-2)


def test_params_without_grad_are_skipped_and_no_state_is_kept():
    a = nn.Parameter(f64([1.0, 0.25]))
    b = nn.Parameter(f64([1.0, 0.25]))
    a.grad = f64([0.0, 0.0])
    opt = BetaLasso([a, b], lr=0.5, lam=0.25, beta=2.0)
    opt.step()
    assert torch.equal(a.detach(), f64([0.875, 0.0]))
    assert torch.equal(b.detach(), f64([1.0, 0.25]))
    assert len(opt.state) == 0


def test_closure_loss_is_returned():
    p = nn.Parameter(f64([1.0]))

    def closure():
        p.grad = None
        loss = (p * 2).sum()
        loss.backward()
        return loss

    loss = BetaLasso([p], lr=0.5, lam=0.0).step(closure)
    assert loss.item() == 2.0
    assert p.item() == 0.0  # 1 - 0.5 * 2


# --- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, needle", [
    ({"lr": -0.1}, "lr"),
    ({"lam": -1e-6}, "lam"),
    ({"beta": -1.0}, "beta"),
    ({"beta": math.nan}, "beta"),
    ({"lam": "1e-6"}, "lam"),
])
def test_bad_hyperparameters_raise(kwargs, needle):
    p = nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match=rf"{needle}.*>= 0"):
        BetaLasso([p], **kwargs)


def test_bad_group_overrides_raise():
    p, q = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="lam"):
        BetaLasso([{"params": [p], "lam": -1.0}])
    opt = BetaLasso([p])
    with pytest.raises(ValueError, match="beta.*'late'"):
        opt.add_param_group({"params": [q], "beta": -2.0, "name": "late"})


def test_bad_value_set_after_construction_raises_before_any_update():
    p, q = nn.Parameter(f64([1.0])), nn.Parameter(f64([1.0]))
    p.grad, q.grad = f64([1.0]), f64([1.0])
    opt = BetaLasso([{"params": [p]}, {"params": [q]}], lr=0.5, lam=0.0)
    opt.param_groups[1]["lam"] = -1.0
    with pytest.raises(ValueError, match="lam"):
        opt.step()
    assert p.item() == 1.0  # the first group was not updated either


def test_sparse_gradient_and_integer_parameters_raise():
    p = nn.Parameter(torch.zeros(3))
    p.grad = torch.zeros(3).to_sparse()
    with pytest.raises(ValueError, match="sparse"):
        BetaLasso([p]).step()
    with pytest.raises(ValueError, match="floating-point"):
        BetaLasso([torch.zeros(3, dtype=torch.int64)])


# --- lasso_param_groups (Section 4.1, Appendix A.2) -----------------------------------------

def small_model():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 2 * 2, 5), nn.ReLU(), nn.Linear(5, 2),
    )
    model.conv_positions = ("0",)
    return model


def ids(params):
    return {id(p) for p in params}


def test_lasso_param_groups_default_split():
    model = small_model()
    groups = lasso_param_groups(model, lam=1e-6, lam_first=2e-5, beta=50.0)
    by_name = {g["name"]: g for g in groups}
    assert list(by_name) == ["first", "other", "unregularized"]
    assert ids(by_name["first"]["params"]) == ids([model[0].weight])
    assert ids(by_name["other"]["params"]) == ids([model[4].weight, model[6].weight])
    assert ids(by_name["unregularized"]["params"]) == ids(
        [model[0].bias, model[1].weight, model[1].bias, model[4].bias, model[6].bias])
    assert (by_name["first"]["lam"], by_name["other"]["lam"]) == (2e-5, 1e-6)
    assert by_name["unregularized"]["lam"] == 0.0
    assert by_name["first"]["beta"] == by_name["other"]["beta"] == 50.0
    assert "beta" not in by_name["unregularized"]
    BetaLasso(groups)  # accepted as they are


class PositionBias(nn.Module):
    """Like a locally-connected layer: a 2-D weight and a bias with one entry per position."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(4, 3))
        self.bias = nn.Parameter(torch.zeros(3, 2, 2))


def test_lasso_param_groups_default_skips_multidimensional_bias():
    model = nn.Sequential(PositionBias(), nn.Linear(3, 2))
    model.conv_positions = ("0",)
    by_name = {g["name"]: g for g in lasso_param_groups(model, lam=1e-6)}
    assert ids(by_name["first"]["params"]) == ids([model[0].weight])
    assert ids(by_name["unregularized"]["params"]) == ids([model[0].bias, model[1].bias])


def test_lasso_param_groups_options():
    model = small_model()
    # lam_first defaults to lam; without beta the optimizer default applies
    groups = lasso_param_groups(model, lam=3e-6)
    assert [g["lam"] for g in groups] == [3e-6, 3e-6, 0.0]
    assert all("beta" not in g for g in groups)
    # explicit first (a single string is one name) overrides conv_positions
    groups = lasso_param_groups(model, lam=1e-6, lam_first=5e-6, first="4")
    assert ids(groups[0]["params"]) == ids([model[4].weight])
    # module names match whole components: "1" is not a prefix of "10"
    deep = nn.Sequential(*[nn.Linear(2, 2) for _ in range(11)])
    groups = lasso_param_groups(deep, lam=1e-6, first=["1"])
    assert ids(groups[0]["params"]) == ids([deep[1].weight])
    # custom predicate: regularise everything -> no unregularized group
    groups = lasso_param_groups(model, lam=1e-6, regularize=lambda name, p: True)
    assert [g["name"] for g in groups] == ["first", "other"]
    assert ids(groups[0]["params"]) == ids([model[0].weight, model[0].bias])
    # a model without conv_positions has no "first" group
    plain = nn.Sequential(nn.Linear(3, 2))
    assert [g["name"] for g in lasso_param_groups(plain, lam=1e-6)] == ["other", "unregularized"]


def test_lasso_param_groups_bad_input():
    model = small_model()
    with pytest.raises(ValueError, match=r"\['conv1', '9'\].*accepted"):
        lasso_param_groups(model, lam=1e-6, first=["conv1", "0", "9"])
    with pytest.raises(ValueError, match="lam_first"):
        lasso_param_groups(model, lam=1e-6, lam_first=-1.0)


def test_groups_train_first_layer_with_its_own_lam():
    model = small_model()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    conv_w = model[0].weight.detach().clone()
    lin_w = model[4].weight.detach().clone()
    bias = model[0].bias.detach().clone()
    lr, lam, lam_first = 0.1, 1e-3, 1e-2
    BetaLasso(lasso_param_groups(model, lam=lam, lam_first=lam_first), lr=lr, beta=1.0).step()
    torch.testing.assert_close(model[0].weight.detach(), reference_step(conv_w, 0, lr, lam_first, 1.0))
    torch.testing.assert_close(model[4].weight.detach(), reference_step(lin_w, 0, lr, lam, 1.0))
    assert torch.equal(model[0].bias.detach(), bias)  # unregularized, zero gradient: unchanged
