"""Tests for companion.optim: β-LASSO (Algorithm 1) and the paper's parameter groups.

The oracle is :func:`beta_lasso_step_reference`, Algorithm 1 as written. :class:`BetaLasso`
computes θ + (−η)∇f with one rounding (an FMA, as ``torch.optim.SGD``) and then the ℓ1 term, in
both modes: it differs from the reference by a few units in the last place (at most 2 ulp of the
larger of |θ| and |η∇f|, measured below), and a weight within that distance of βλ can be thresholded differently. The default mode
is bit-identical to the update that trained the committed results (``tests/beta_lasso_v1.py``);
the fused mode is bit-identical to the default where the compiler contracts the FMA (x86-64
with FMA, this project's machines), in float32 and float64.
"""

import copy
import math

import pytest
import torch
import torch.distributed as dist
from torch import nn

import beta_lasso_v1
from companion import optim
from companion.optim import BetaLasso, beta_lasso_step_reference, lasso_param_groups

LR = 0.1


def f64(values):
    return torch.tensor(values, dtype=torch.float64)


def one_step(theta, grad, fused=False, **hyper):
    """Run one BetaLasso step on a single float64 parameter and return its new value."""
    p = nn.Parameter(f64(theta))
    p.grad = f64(grad)
    BetaLasso([p], fused=fused, **hyper).step()
    return p.detach()


def clones(params):
    return [nn.Parameter(p.detach().clone()) for p in params]


# Parameter groups with their own λ/β (and one on the defaults, one SGD group, one β = 0 group);
# the optimizer's defaults are lam=0.03, beta=3.
DEFAULTS = {"lam": 0.03, "beta": 3.0}
GROUPS = [
    ({"lam": 0.05, "beta": 2.0}, [(3, 4, 5), (17,), (6, 6)]),
    ({"beta": 1.5}, [(40, 30), (5,)]),
    ({"lam": 0.0}, [(7, 2)]),
    ({"lam": 0.05, "beta": 0.0}, [(9,)]),
    ({}, [(8, 3)]),
]


def make_groups(dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [[(torch.randn(s, generator=gen) * 0.3).to(dtype) for s in shapes]
            for _, shapes in GROUPS]


def set_grads(param_lists, step, dtype):
    """The same pseudo-random gradient for the same position in every list of parameter lists."""
    for params_by_group in param_lists:
        gen = torch.Generator().manual_seed(1000 + step)
        for params in params_by_group:
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen).to(dtype)


def reference_steps(params_by_group):
    for (hyper, _), params in zip(GROUPS, params_by_group):
        h = {**DEFAULTS, **hyper}
        beta_lasso_step_reference(params, LR, h["lam"], h["beta"])


def fast_optimizer(params_by_group, fused):
    groups = [{"params": ps, **hyper} for (hyper, _), ps in zip(GROUPS, params_by_group)]
    return BetaLasso(groups, lr=LR, fused=fused, **DEFAULTS)


# --- Algorithm 1, hand-computed -------------------------------------------------------------
# lr=0.5, lam=0.25, beta=2: l1 push lr*lam = 0.125, threshold beta*lam = 0.5 (all exact in binary).

@pytest.mark.parametrize("fused", [False, True])
def test_step_matches_hand_computed_values(fused):
    new = one_step(
        fused=fused,
        theta=[1.0, -0.75, 0.0, 0.25, 0.875, 0.0],
        grad=[0.5, 0.5, 2.0, 0.0, 0.25, 0.5],
        lr=0.5, lam=0.25, beta=2.0,
    )
    # 1.0 - 0.25 - 0.125 = 0.625 (kept);  -0.75 - 0.25 + 0.125 = -0.875 (kept);
    # 0.0 - 1.0 - 0 = -1.0 (a zero weight is revived by a large gradient);
    # 0.25 - 0 - 0.125 = 0.125 < 0.5 (zeroed);  0.875 - 0.125 - 0.125 = 0.625 (kept);
    # 0.0 - 0.25 - 0 = -0.25 (a small gradient does not revive a zero weight)
    assert torch.equal(new, f64([0.625, -0.875, -1.0, 0.0, 0.625, 0.0]))


@pytest.mark.parametrize("fused", [False, True])
def test_weight_exactly_at_threshold_is_kept_and_just_below_is_zeroed(fused):
    eps = 2.0**-30
    new = one_step(
        fused=fused,
        theta=[0.75, 0.75, 0.75, -0.75],
        grad=[0.25, 0.25 + 2 * eps, 0.25 - 2 * eps, -0.25],
        lr=0.5, lam=0.25, beta=2.0,
    )
    # 0.75 - 0.5*g - 0.125: exactly 0.5 (kept), 0.5 - eps (zeroed), 0.5 + eps (kept), -0.5 (kept)
    assert torch.equal(new, f64([0.5, 0.0, 0.5 + eps, -0.5]))


@pytest.mark.parametrize("fused", [False, True])
def test_zero_weight_gets_no_l1_push(fused):
    # sign(0) = 0: with a zero gradient a zero weight stays exactly zero, even with beta=0.
    new = one_step([0.0, 0.0], [0.0, 0.0], fused, lr=0.5, lam=0.25, beta=0.0)
    assert torch.equal(new, f64([0.0, 0.0]))


@pytest.mark.parametrize("fused", [False, True])
def test_beta_zero_is_the_l1_subgradient_step(fused):
    new = one_step([0.25, 0.0, -0.0625], [0.0, 0.125, 0.0], fused, lr=0.5, lam=0.25, beta=0.0)
    # 0.25 - 0.125 = 0.125;  0 - 0.0625 = -0.0625;  -0.0625 + 0.125 = 0.0625 (nothing thresholded)
    assert torch.equal(new, f64([0.125, -0.0625, 0.0625]))


@pytest.mark.parametrize("dtype, fused", [(torch.float32, False), (torch.float32, True),
                                          (torch.bfloat16, False), (torch.bfloat16, True),
                                          (torch.float16, False)])
def test_threshold_is_exact_in_low_precision(dtype, fused):
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
    BetaLasso([p], lr=0.0, lam=lam, beta=beta, fused=fused).step()
    expected = torch.where(theta.double().abs() >= threshold, theta.double(), 0.0)
    assert torch.equal(p.detach().double(), expected)
    assert 0 < int((expected != 0).sum()) < theta.numel()  # the grid straddles the threshold


# --- relation to SGD and per-group settings -------------------------------------------------

@pytest.mark.parametrize("fused", [False, True])
def test_lam_zero_equals_sgd_over_several_steps(fused):
    torch.manual_seed(0)
    model_a = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    model_b = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    model_b.load_state_dict(model_a.state_dict())
    initial = [p.detach().clone() for p in model_a.parameters()]
    opt_a = BetaLasso(model_a.parameters(), lr=0.1, lam=0.0, beta=50.0, fused=fused)
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


@pytest.mark.parametrize("fused", [False, True])
def test_per_group_overrides_of_lam_and_beta(fused):
    a = nn.Parameter(f64([0.25, 1.0]))
    b = nn.Parameter(f64([0.25, 1.0]))
    c = nn.Parameter(f64([0.25, 1.0]))
    for p in (a, b, c):
        p.grad = f64([0.0, 0.0])
    opt = BetaLasso([{"params": [a]},  # defaults: lam=0.25, beta=2 -> push 0.125, threshold 0.5
                     {"params": [b], "lam": 0.0625},  # push 0.03125, threshold 0.125
                     {"params": [c], "beta": 0.0}],  # push 0.125, no threshold
                    lr=0.5, lam=0.25, beta=2.0, fused=fused)
    opt.step()
    assert torch.equal(a.detach(), f64([0.0, 0.875]))
    assert torch.equal(b.detach(), f64([0.21875, 0.96875]))
    assert torch.equal(c.detach(), f64([0.125, 0.875]))


# --- both modes against the reference (Algorithm 1 as written) -------------------------------

@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference_over_several_steps_with_per_group_lam_and_beta(fused, dtype):
    initial = make_groups(dtype)
    fast = [clones(ps) for ps in initial]
    ref = [clones(ps) for ps in initial]
    fast[0].append(nn.Parameter(torch.randn(6, 4, dtype=dtype).t()))  # non-contiguous
    ref[0].append(nn.Parameter(fast[0][-1].detach().clone()))
    opt = fast_optimizer(fast, fused)
    eps = torch.finfo(dtype).eps
    for step in range(4):
        set_grads([fast, ref], step, dtype)
        opt.step()
        reference_steps(ref)
        for (hyper, _), fast_ps, ref_ps in zip(GROUPS, fast, ref):
            for a, b in zip(fast_ps, ref_ps):
                # rounding order differs (module docstring); nothing lands near βλ here
                torch.testing.assert_close(a, b, rtol=16 * eps, atol=16 * eps)
                assert torch.equal(a == 0, b == 0)
    moved = [not torch.equal(a, b) for a, b in zip(sum(fast, []), sum(initial, []))]
    zeros = sum(int((p == 0).sum()) for p in sum(fast, []))
    assert all(moved) and zeros > 0  # every parameter moved, thresholding did something


@pytest.mark.parametrize("fused", [False, True])
def test_mixed_dtypes_in_one_group(fused):
    torch.manual_seed(2)
    lam, beta = 0.05, 2.0
    p32 = nn.Parameter(torch.randn(5, 4) * 0.5)
    p16 = nn.Parameter((torch.randn(9) * 0.5).to(torch.bfloat16))
    grads = [torch.randn_like(p32), torch.randn_like(p16)]
    ref32, ref64 = clones([p32]), clones([p32.double(), p16.double()])
    for p, g in zip((p32, p16), grads):
        p.grad = g
    ref32[0].grad = grads[0]
    for p, g in zip(ref64, grads):
        p.grad = g.double()
    BetaLasso([p32, p16], lr=LR, lam=lam, beta=beta, fused=fused).step()
    beta_lasso_step_reference(ref32, LR, lam, beta)
    beta_lasso_step_reference(ref64, LR, lam, beta)
    assert p16.dtype == torch.bfloat16
    torch.testing.assert_close(p32, ref32[0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(p16.detach().double(), ref64[1].detach(), rtol=2e-2, atol=1e-2)


# --- the default mode reproduces the committed results ---------------------------------------

@pytest.mark.parametrize("batch_numel", [None, 7, optim._CPU_BATCH_NUMEL])
def test_default_mode_is_bit_identical_to_the_committed_update(monkeypatch, batch_numel):
    # The last is the default CPU path, None the accelerator path (whole tensors, foreach
    # kernels); 7 cuts tensors into pieces and batches small ones together, a stress test of the
    # batching. The frozen copy always uses its own default batching.
    monkeypatch.setattr(optim, "_CPU_BATCH_NUMEL", batch_numel)
    for dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        initial = make_groups(dtype, seed=3)
        fast, frozen = [clones(ps) for ps in initial], [clones(ps) for ps in initial]
        opt = fast_optimizer(fast, fused=False)
        for step in range(3):
            set_grads([fast, frozen], step, dtype)
            opt.step()
            for (hyper, _), ps in zip(GROUPS, frozen):
                h = {**DEFAULTS, **hyper}
                beta_lasso_v1._beta_lasso_([p.data for p in ps], [p.grad for p in ps], lr=LR,
                                           lam=h["lam"], beta=h["beta"])
        if batch_numel == 7 and dtype in (torch.bfloat16, torch.float16):
            # pieces of a few elements go through PyTorch's non-vectorised 16-bit kernels, which
            # round differently (then thresholds can flip); real batches are 2^20 elements
            continue
        for a, b in zip(sum(fast, []), sum(frozen, [])):
            assert torch.equal(a, b), dtype


# --- fused vs exact: the same numbers; both against the reference ---------------------------

FMA_CPU = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


def straddling_weights(n, lam, beta, seed, dtype=torch.float32):
    """Weights that land within a few hundred ulp of βλ after one step (both signs)."""
    threshold = beta * lam
    gen = torch.Generator().manual_seed(seed)
    theta = threshold * (1 + 2e-5 * (torch.rand(n, generator=gen) - 0.5)) + LR * lam
    grad = threshold / LR * 2e-5 * (torch.rand(n, generator=gen) - 0.5)
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    return (theta * sign).to(dtype), (grad * sign).to(dtype)


@pytest.mark.skipif(not FMA_CPU, reason="the claim is for x86-64 CPUs with FMA (AVX2 or AVX-512)")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_is_bit_identical_to_exact_even_at_the_threshold(dtype):
    assert optim.fused_matches_exact("cpu", dtype)
    lam, beta = 1e-6, 50.0
    theta, grad = straddling_weights(100_003, lam, beta, seed=4, dtype=dtype)
    initial = make_groups(dtype, seed=5)
    runs = []
    for fused in (False, True):
        a = nn.Parameter(theta.clone())
        a.grad = grad
        BetaLasso([a], lr=LR, lam=lam, beta=beta, fused=fused).step()
        ps = [clones(g) for g in initial]
        opt = fast_optimizer(ps, fused)
        for step in range(3):
            set_grads([ps], step, dtype)
            opt.step()
        runs.append([a.detach()] + [p.detach() for p in sum(ps, [])])
    for x, y in zip(*runs):
        assert torch.equal(x, y)
    assert (runs[0][0] == 0).any() and (runs[0][0] != 0).any()  # the data straddles βλ


def test_both_modes_are_within_2_ulp_of_the_reference():
    # the rounding statement of the module docstring, on 3 x 2M updates: ulp of the larger
    # operand of θ − η∇f (the result itself can be much smaller after cancellation)
    gen = torch.Generator().manual_seed(1)
    worst, flips = 0.0, 0
    for lr in (0.1, 0.05, 0.0123):
        theta = torch.randn(2_000_000, generator=gen) * 0.02
        grad = torch.randn(2_000_000, generator=gen) * 0.01
        ref = nn.Parameter(theta.clone())
        ref.grad = grad
        beta_lasso_step_reference([ref], lr, 3e-5, 10.0)
        fast = theta.clone()
        optim._beta_lasso_([fast], [grad], lr=lr, lam=3e-5, beta=10.0)
        ref = ref.detach()
        both = (ref != 0) & (fast != 0)
        scale = torch.maximum(theta.abs(), (lr * grad).abs())[both]
        ulp = torch.nextafter(scale, torch.tensor(math.inf)) - scale
        worst = max(worst, ((fast[both] - ref[both]).abs() / ulp).max().item())
        flips += int(((ref == 0) != (fast == 0)).sum())
    assert 0 < worst <= 2  # they do differ, by rounding only
    assert flips <= 3


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


@pytest.mark.parametrize("fused", ["auto", 1, None])
def test_bad_fused_raises(fused):
    with pytest.raises(ValueError, match="fused must be True or False"):
        BetaLasso([nn.Parameter(torch.zeros(2))], fused=fused)


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
    expected = clones([conv_w, lin_w])
    for p in expected:
        p.grad = torch.zeros_like(p)
    beta_lasso_step_reference(expected[:1], lr, lam_first, 1.0)
    beta_lasso_step_reference(expected[1:], lr, lam, 1.0)
    torch.testing.assert_close(model[0].weight, expected[0])
    torch.testing.assert_close(model[4].weight, expected[1])
    assert torch.equal(model[0].bias.detach(), bias)  # unregularized, zero gradient: unchanged


# --- fused mode: parameters stay ordinary tensors ----------------------------------------------

def train_steps(model, opt, steps, seed=5):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(4, 3, 4, 4, generator=gen)
        y = torch.randint(0, 2, (4,), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def test_fused_mode_keeps_model_and_optimizer_state_dicts_and_checkpoints_working(tmp_path):
    torch.manual_seed(6)
    model, twin = small_model(), small_model()
    twin.load_state_dict(model.state_dict())
    pointers = [p.data_ptr() for p in model.parameters()]
    opt = BetaLasso(lasso_param_groups(model, lam=1e-3, lam_first=1e-2), lr=0.1, beta=1.0,
                    fused=True)
    exact = BetaLasso(lasso_param_groups(twin, lam=1e-3, lam_first=1e-2), lr=0.1, beta=1.0)
    train_steps(model, opt, 2)
    train_steps(twin, exact, 2)
    # the parameters were updated in place: same tensors, same memory, no views
    assert [p.data_ptr() for p in model.parameters()] == pointers
    assert all(p._base is None for p in model.parameters())
    # the optimizer's state_dict does not depend on the mode
    assert opt.state_dict() == exact.state_dict()
    assert all("fused" not in g for g in opt.state_dict()["param_groups"])
    # checkpoint, then load into a new model whose optimizer already exists, and go on
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, path)
    params_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    assert path.stat().st_size < params_bytes + 20_000  # parameters saved once, nothing more
    restored = small_model()
    restored_opt = BetaLasso(lasso_param_groups(restored, lam=0.5), lr=0.5, fused=True)
    checkpoint = torch.load(path)
    restored.load_state_dict(checkpoint["model"])
    restored_opt.load_state_dict(checkpoint["optimizer"])
    assert restored_opt.fused and restored_opt.param_groups[0]["lam"] == 1e-2
    train_steps(model, opt, 2, seed=7)
    train_steps(restored, restored_opt, 2, seed=7)
    for a, b in zip(model.parameters(), restored.parameters()):
        assert torch.equal(a, b)
    assert copy.deepcopy(opt).fused and not copy.deepcopy(exact).fused


def test_fused_mode_under_distributed_data_parallel(tmp_path):
    # One process (world size 1, gloo on CPU); gradients are views into DDP's buckets.
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        torch.manual_seed(8)
        model = small_model()
        plain = copy.deepcopy(model)
        ddp = nn.parallel.DistributedDataParallel(model, gradient_as_bucket_view=True)
        opt = BetaLasso(lasso_param_groups(model, lam=1e-3, lam_first=1e-2), lr=0.1, beta=1.0,
                        fused=True)
        opt_plain = BetaLasso(lasso_param_groups(plain, lam=1e-3, lam_first=1e-2), lr=0.1,
                              beta=1.0, fused=True)
        train_steps(ddp, opt, 3)
        train_steps(plain, opt_plain, 3)
    finally:
        dist.destroy_process_group()
    for a, b in zip(model.parameters(), plain.parameters()):
        assert torch.equal(a, b)
    assert sum(int((p == 0).sum()) for p in model.parameters()) > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fused_step_on_cuda_against_the_reference_and_the_exact_mode():
    # on a GPU the fused pass is one Triton kernel; it must agree with Algorithm 1 to rounding and
    # say whether it is bit-identical to the exact mode there (the trainer records it)
    initial = make_groups(torch.float32, seed=6)
    runs = {}
    for mode in ("reference", "exact", "fused"):
        ps = [[nn.Parameter(p.detach().cuda()) for p in g] for g in initial]
        opt = None if mode == "reference" else fast_optimizer(ps, fused=mode == "fused")
        for step in range(3):
            gen = torch.Generator().manual_seed(1000 + step)
            for p in sum(ps, []):
                p.grad = torch.randn(p.shape, generator=gen).cuda()
            reference_steps(ps) if opt is None else opt.step()
        runs[mode] = [p.detach().cpu() for p in sum(ps, [])]
    eps = torch.finfo(torch.float32).eps
    for a, b in zip(runs["fused"], runs["reference"]):
        torch.testing.assert_close(a, b, rtol=16 * eps, atol=16 * eps)
    same = all(torch.equal(a, b) for a, b in zip(runs["fused"], runs["exact"]))
    assert same == optim.fused_matches_exact("cuda")  # the trainer's probe tells the truth here
