"""AdamW and the GrokFast filters against SPEC §4, recomputed here step by step in float64.

The expected values are written out with plain numpy in each test (never taken from grokfast.py).
Both sides do the same float64 arithmetic in nearly the same order, so they agree to a few ulps;
rtol 1e-12 leaves room for reordering while any formula change (a missing bias correction, decay on
the wrong w, a window off by one) moves results by 1e-4 or more at the sizes used here.
"""
import numpy as np
import pytest

import grokfast

RTOL = 1e-12
STEPS = 7
SHAPES = {"a": (3, 4), "b": (5,), "c": (2, 2, 3)}


def random_params(seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s) for k, s in SHAPES.items()}


def random_grads(rng):
    return {k: rng.standard_normal(s) for k, s in SHAPES.items()}


def copy(d):
    return {k: v.copy() for k, v in d.items()}


def assert_dicts_close(mine, want, what):
    assert set(mine) == set(want)
    for k in want:
        np.testing.assert_allclose(mine[k], want[k], rtol=RTOL, atol=1e-15, err_msg=f"{what} {k}")


# ------------------------------------------------------------------ AdamW

def adamw_reference(w, grads_seq, lr, b1, b2, eps, wd):
    """SPEC §4 AdamW for one array over a sequence of gradients; returns the w after each step."""
    m, v, out = np.zeros_like(w), np.zeros_like(w), []
    for t, g in enumerate(grads_seq, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        w = w - lr * (m_hat / (np.sqrt(v_hat) + eps) + wd * w)  # decay on w before the step
        out.append(w)
    return out


@pytest.mark.parametrize("hyper", [
    dict(lr=1e-3, b1=0.9, b2=0.98, eps=1e-8, wd=0.5),
    dict(lr=0.05, b1=0.8, b2=0.9, eps=1e-3, wd=1 / 3),
    dict(lr=0.1, b1=0.0, b2=0.5, eps=1e-8, wd=0.0),
])
def test_adamw_matches_formula_over_several_steps(hyper):
    params = random_params()
    rng = np.random.default_rng(1)
    grads_seq = [random_grads(rng) for _ in range(STEPS)]
    want = {k: adamw_reference(params[k].copy(), [g[k] for g in grads_seq], **hyper) for k in SHAPES}
    state = grokfast.adamw_init(params)
    for t, grads in enumerate(grads_seq):
        returned = grokfast.adamw_step(params, copy(grads), state, **hyper)
        assert returned is params
        assert state["step"] == t + 1
        assert_dicts_close(params, {k: want[k][t] for k in SHAPES}, f"step {t + 1}")


def test_adamw_first_step_is_bias_corrected():
    """At t = 1, m^ = g and v^ = g^2, so the step is lr * g / (|g| + eps): about lr * sign(g)."""
    w = {"a": np.array([1.0, -2.0, 0.5])}
    g = np.array([0.3, -1e-3, 4.0])
    lr, eps = 0.01, 1e-8
    grokfast.adamw_step(w, {"a": g.copy()}, grokfast.adamw_init(w), lr=lr, b1=0.9, b2=0.98, eps=eps, wd=0.0)
    want = np.array([1.0, -2.0, 0.5]) - lr * g / (np.abs(g) + eps)
    np.testing.assert_allclose(w["a"], want, rtol=RTOL)
    # without bias correction the step would be (0.1 g) / sqrt(0.02 g^2) ~ 0.71 lr: clearly different
    assert np.all(np.abs(w["a"] - (np.array([1.0, -2.0, 0.5]) - 0.71 * lr * np.sign(g))) > 1e-3)


def test_adamw_weight_decay_uses_w_before_the_step():
    w0 = np.array([2.0, -3.0])
    g = np.array([1.0, 1.0])
    lr, wd, eps = 0.1, 0.5, 1e-8
    params = {"a": w0.copy()}
    grokfast.adamw_step(params, {"a": g.copy()}, grokfast.adamw_init(params), lr=lr, b1=0.9, b2=0.98,
                        eps=eps, wd=wd)
    adam = g / (np.abs(g) + eps)  # step 1, see above
    want = w0 - lr * (adam + wd * w0)
    np.testing.assert_allclose(params["a"], want, rtol=RTOL)
    after_adam = w0 - lr * adam  # the alternative: decay applied to w after the Adam part
    assert np.all(np.abs(params["a"] - (after_adam - lr * wd * after_adam)) > 1e-4)
    # zero gradient: the step is pure decay, w (1 - lr wd)
    params = {"a": w0.copy()}
    grokfast.adamw_step(params, {"a": np.zeros(2)}, grokfast.adamw_init(params), lr=lr, wd=wd)
    np.testing.assert_allclose(params["a"], w0 * (1 - lr * wd), rtol=RTOL)


def test_adamw_updates_in_place():
    """train() relies on the step changing the param arrays it was given."""
    params = random_params()
    arrays = dict(params)
    before = copy(params)
    grokfast.adamw_step(params, random_grads(np.random.default_rng(2)), grokfast.adamw_init(params), lr=0.1)
    for k in SHAPES:
        assert params[k] is arrays[k]
        assert not np.allclose(params[k], before[k])


# ------------------------------------------------------------------ GrokFast-EMA

def ema_reference(grads_seq, alpha, lamb):
    """SPEC §4: e <- alpha e + (1 - alpha) g, g <- g + lamb e, e starting at zero."""
    e, out = np.zeros_like(grads_seq[0]), []
    for g in grads_seq:
        e = alpha * e + (1 - alpha) * g
        out.append(g + lamb * e)
    return out


@pytest.mark.parametrize("alpha, lamb", [(0.98, 0.5), (0.5, 2.0), (0.0, 1.0)])
def test_ema_filter_matches_formula(alpha, lamb):
    rng = np.random.default_rng(3)
    grads_seq = [random_grads(rng) for _ in range(STEPS)]
    want = {k: ema_reference([g[k] for g in grads_seq], alpha, lamb) for k in SHAPES}
    state = grokfast.init_filter("ema", random_params())
    for t, grads in enumerate(grads_seq):
        g = copy(grads)
        returned = grokfast.apply_filter("ema", g, state, alpha=alpha, lamb=lamb)
        assert returned is g
        assert_dicts_close(g, {k: want[k][t] for k in SHAPES}, f"ema step {t + 1}")


def test_ema_starts_at_zero():
    """First step: e = (1 - alpha) g, so g becomes g (1 + lamb (1 - alpha)), not g (1 + lamb)."""
    params = random_params()
    state = grokfast.init_filter("ema", params)
    for k in SHAPES:
        assert np.all(state["ema"][k] == 0) and state["ema"][k].shape == params[k].shape
    g = random_grads(np.random.default_rng(4))
    filtered = grokfast.apply_filter("ema", copy(g), state, alpha=0.9, lamb=0.5)
    for k in SHAPES:
        np.testing.assert_allclose(filtered[k], g[k] * (1 + 0.5 * 0.1), rtol=RTOL)


# ------------------------------------------------------------------ GrokFast-MA

def ma_reference(grads_seq, window, lamb):
    """g <- g + lamb * mean(last `window` raw gradients, current included; fewer before it fills)."""
    out = []
    for t, g in enumerate(grads_seq):
        recent = grads_seq[max(0, t + 1 - window):t + 1]
        out.append(g + lamb * np.mean(recent, axis=0))
    return out


@pytest.mark.parametrize("window", [1, 3, 5, 10])
def test_ma_filter_matches_formula(window):
    rng = np.random.default_rng(5)
    grads_seq = [random_grads(rng) for _ in range(STEPS)]
    want = {k: ma_reference([g[k] for g in grads_seq], window, 0.7) for k in SHAPES}
    state = grokfast.init_filter("ma", random_params(), window=window)
    for t, grads in enumerate(grads_seq):
        g = copy(grads)
        returned = grokfast.apply_filter("ma", g, state, lamb=0.7)
        assert returned is g
        assert_dicts_close(g, {k: want[k][t] for k in SHAPES}, f"ma window {window} step {t + 1}")


def test_ma_mean_before_window_fills_is_over_seen_gradients():
    """Window 4, gradients 1, 2, 3: the means are 1, 1.5, 2 (not divided by 4)."""
    state = grokfast.init_filter("ma", {"a": np.zeros(2)}, window=4)
    for value, mean in [(1.0, 1.0), (2.0, 1.5), (3.0, 2.0), (6.0, 3.0), (10.0, 5.25)]:
        g = grokfast.apply_filter("ma", {"a": np.full(2, value)}, state, lamb=1.0)
        np.testing.assert_allclose(g["a"], value + mean, rtol=RTOL)


@pytest.mark.parametrize("window", [0, -3])
def test_ma_window_below_one_raises(window):
    with pytest.raises(ValueError):
        grokfast.init_filter("ma", random_params(), window=window)


# ------------------------------------------------------------------ the entry points

def test_filter_none_leaves_grads_unchanged():
    g = random_grads(np.random.default_rng(6))
    arrays = dict(g)
    before = copy(g)
    state = grokfast.init_filter("none", random_params())
    out = grokfast.apply_filter("none", g, state, alpha=0.9, lamb=5.0)
    for _ in range(3):
        out = grokfast.apply_filter("none", out, state, alpha=0.9, lamb=5.0)
    assert out is g
    for k in SHAPES:
        assert g[k] is arrays[k]
        np.testing.assert_array_equal(g[k], before[k])


@pytest.mark.parametrize("kind", ["foo", "EMA", "", "mа"])  # the last has a Cyrillic 'а'
def test_unknown_filter_raises(kind):
    with pytest.raises(ValueError):
        grokfast.init_filter(kind, random_params())


@pytest.mark.parametrize("kind", ["ema", "ma"])
def test_lambda_zero_leaves_grads_unchanged(kind):
    state = grokfast.init_filter(kind, random_params(), window=3)
    rng = np.random.default_rng(7)
    for _ in range(4):
        g = random_grads(rng)
        before = copy(g)
        grokfast.apply_filter(kind, g, state, alpha=0.9, lamb=0.0)
        assert_dicts_close(g, before, f"{kind} lamb 0")
