"""The loss in float32 training: as good as float32 allows, and free of softmax collapse.

Every expected value here is computed independently in the test, in float64 with a per-head
log-sum-exp written out head by head (a loop: clarity over speed), never by the code under test.
"""
from decimal import Decimal, localcontext

import numpy as np
import pytest

import miiii


def reference_loss_and_grad(logits, y, classes, weights):
    """float64 loss and d loss / d logits, one head at a time (max-shifted log-sum-exp)."""
    logits = np.asarray(logits, dtype=np.float64)
    N = logits.shape[0]
    loss, grad, off = 0.0, np.zeros_like(logits), 0
    for t, q in enumerate(classes):
        z = logits[:, off:off + q]
        z = z - z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        p = np.exp(z - lse[:, None])
        nll = lse - z[np.arange(N), y[:, t]]
        loss += weights[t] * nll.mean()
        g = p.copy()
        g[np.arange(N), y[:, t]] -= 1.0
        grad[:, off:off + q] = weights[t] / N * g
        off += q
    return loss, grad


def exact_loss_and_grad(logits, y, classes, weights):
    """The same quantities with 40 significant digits (Python's decimal), from the float32 inputs:
    the truth against which float64's own rounding of p_t - 1 (~1e-16 absolute) would be too coarse."""
    N = logits.shape[0]
    loss, grad, off = Decimal(0), np.zeros(logits.shape), 0
    with localcontext() as ctx:
        ctx.prec = 40
        for t, q in enumerate(classes):
            for i in range(N):
                z = [Decimal(float(v)) for v in logits[i, off:off + q]]
                e = [v.exp() for v in z]
                total = sum(e)
                k = int(y[i, t])
                loss += Decimal(float(weights[t])) * (total.ln() - z[k]) / N
                for j in range(q):
                    p = e[j] / total
                    g = -(total - e[k]) / total if j == k else p  # p_k - 1, exactly
                    grad[i, off + j] = float(Decimal(float(weights[t])) / N * g)
            off += q
    return float(loss), grad


def ours(logits, y, classes, mask=None):
    loss, cache = miiii.cross_entropy_forward(logits, y, classes, mask)
    return loss, miiii.cross_entropy_backward(cache), cache


def weights_of(classes, mask=None):
    m = np.ones(len(classes)) if mask is None else np.asarray(mask, float)
    return m / np.log(classes) / m.sum()


CLASSES = [2, 3, 5, 7, 11, 13]


def random_case(seed, N=64, spread=4.0):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((N, sum(CLASSES))) * spread
    y = np.stack([rng.integers(0, q, N) for q in CLASSES], axis=1)
    return logits, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float64_path_matches_the_reference_formula(seed):
    logits, y = random_case(seed)
    loss, grad, _ = ours(logits, y, CLASSES)
    want_loss, want_grad = reference_loss_and_grad(logits, y, CLASSES, weights_of(CLASSES))
    assert abs(loss - want_loss) <= 1e-13 * abs(want_loss)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-18)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float32_matches_float64_within_float32_precision(seed):
    """Same logits (exactly representable in float32), float32 path against the float64 formula.

    Tolerance: float32 exp has <= 1 ulp (6e-8) relative error per entry, the float32 shift adds one
    rounding of the logit difference (|z| <= ~40 here, so <= 40 * 6e-8 = 2.4e-6 absolute in the
    exponent, i.e. 2.4e-6 relative in exp), and the gradient is rounded once to float32: 1e-5
    relative on every entry (and on the loss) leaves a margin of ~4x, while an error of the kind
    this guards against (a missing term, a wrong head) is of order 1.
    """
    logits, y = random_case(seed, spread=8.0)
    logits32 = logits.astype(np.float32)
    loss, grad, _ = ours(logits32, y, CLASSES)
    assert grad.dtype == np.float32
    want_loss, want_grad = reference_loss_and_grad(logits32, y, CLASSES, weights_of(CLASSES))
    assert abs(loss - want_loss) <= 1e-5 * abs(want_loss)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-5 * np.abs(want_grad).max() * 1e-3)


def test_dominant_target_keeps_its_gradient_in_float32():
    """p_t rounds to 1.0 in float32 (the others sit 25-40 below), so a naive float32 softmax gives
    the target exactly zero gradient -- softmax collapse. Ours gives the exact value to 1e-5 (float64's
naive p_t - 1 would not: it is off by up to 5 % at these magnitudes, which is why the truth here is
computed with 40 digits)."""
    rng = np.random.default_rng(7)
    N, classes = 32, [5, 7]
    logits = rng.uniform(-40, -25, (N, 12)).astype(np.float32)
    y = np.stack([rng.integers(0, 5, N), rng.integers(0, 7, N)], axis=1)
    offsets = np.array([0, 5])
    logits[np.arange(N)[:, None], y + offsets] = 0.0  # the target dominates in every head
    # the collapse is real: float32 softmax rounds p_t to 1 and p_t - 1 to 0
    z = logits[:, :5] - logits[:, :5].max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert (p[np.arange(N), y[:, 0]] == np.float32(1.0)).all()
    assert (p[np.arange(N), y[:, 0]] - np.float32(1.0) == 0).all()

    loss, grad, _ = ours(logits, y, classes)
    want_loss, want_grad = exact_loss_and_grad(logits, y, classes, weights_of(classes))
    cols = y + offsets
    got_t, want_t = grad[np.arange(N)[:, None], cols], want_grad[np.arange(N)[:, None], cols]
    assert (want_t < 0).all() and (got_t < 0).all()  # never zero
    np.testing.assert_allclose(got_t, want_t, rtol=1e-5)
    assert want_loss > 0 and abs(loss - want_loss) <= 1e-5 * want_loss  # a tiny loss, still accurate
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_head_far_below_another_head_in_the_same_row(dtype):
    """A head whose logits all sit ~200 (float32) or ~1000 (float64) below another head's: one shift
    per row would underflow all its exps to 0 (log 0, 0 / 0). Those rows must fall back to a shift
    per head and still give a finite, correct loss and gradient."""
    rng = np.random.default_rng(3)
    N, classes = 16, [3, 5, 7]
    logits = rng.standard_normal((N, 15)) * 2
    drop = 200.0 if dtype == np.float32 else 1000.0
    logits[::2, 3:8] -= drop  # head 1 far below heads 0 and 2, in every other row
    logits = logits.astype(dtype)
    y = np.stack([rng.integers(0, q, N) for q in classes], axis=1)
    loss, grad, cache = ours(logits, y, classes)
    assert np.isfinite(loss) and np.isfinite(grad).all()
    want_loss, want_grad = reference_loss_and_grad(logits, y, classes, weights_of(classes))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert abs(loss - want_loss) <= tol * want_loss
    np.testing.assert_allclose(grad, want_grad, rtol=tol, atol=tol * np.abs(want_grad).max())
    assert np.isfinite(cache["nll"]).all()


def test_masked_weights_and_a_consumed_cache():
    logits, y = random_case(4)
    mask = np.array([0, 0, 1, 1, 1, 0.0])
    loss, grad, cache = ours(logits, y, CLASSES, mask)
    want_loss, want_grad = reference_loss_and_grad(logits, y, CLASSES, weights_of(CLASSES, mask))
    assert abs(loss - want_loss) <= 1e-13 * want_loss
    np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-18)
    assert (grad[:, :5] == 0).all() and (grad[:, -13:] == 0).all()  # heads 2, 3 and 13: no gradient
    with pytest.raises(ValueError, match="used already"):  # the gradient reused the cache's buffer
        miiii.cross_entropy_backward(cache)


def test_softmax_collapse_measure_matches_a_naive_float32_softmax():
    """softmax_collapse against the thing it measures: a float32 softmax computed here head by head
    (shift by the max, float32 exp, the sum correctly rounded to float32, p_t = e_t / sum), on rows
    whose margins span the collapse threshold (the others 5 .. 30 below the max), ties included.
    (A naive float32 sum may absorb a little more, depending on its order of additions: adding
    2^-25 to 1 twice gives 1, adding it to itself first does not; the measure fixes the order.)"""
    rng = np.random.default_rng(11)
    N, classes = 400, [3, 7, 11]
    y = np.stack([rng.integers(0, q, N) for q in classes], axis=1)
    logits = rng.uniform(-1, 0, (N, 21)).astype(np.float32)
    margin = rng.uniform(5, 30, (N, 3)).astype(np.float32)
    offsets = np.array([0, 3, 10])
    for t, (off, q) in enumerate(zip(offsets, classes)):
        top = np.where(rng.random(N) < 0.7, y[:, t], rng.integers(0, q, N))  # mostly the target on top
        logits[np.arange(N), off + top] = margin[:, t]
    logits[:5, 3:5] = 7.0  # ties at the maximum of head 1
    sum_is_one, grad_zero = miiii.softmax_collapse(logits, y, classes)
    for t, (off, q) in enumerate(zip(offsets, classes)):
        z = logits[:, off:off + q]
        e = np.exp(z - z.max(axis=1, keepdims=True))  # float32
        total = e.astype(np.float64).sum(axis=1).astype(np.float32)  # correctly rounded
        p_t = e[np.arange(N), y[:, t]] / total
        np.testing.assert_array_equal(sum_is_one[:, t], total == np.float32(1.0))
        np.testing.assert_array_equal(grad_zero[:, t], p_t - np.float32(1.0) == 0)
    assert 0.2 < grad_zero.mean() < 0.8 and (sum_is_one & ~grad_zero).any()  # the case mix is real
