"""AdamW and the GrokFast filters against docs/definitions.md §4 and grokfast.py's docstring, recomputed here.

The expected values are written out with plain numpy in each test (never taken from grokfast.py).
Both sides do the same float64 arithmetic in nearly the same order, so they agree to a few ulps;
rtol 1e-12 leaves room for reordering while any formula change (a missing bias correction, decay on
the wrong w, a window off by one, a swapped alpha) moves results by 1e-4 or more at the sizes used
here. GrokFast-MA's running sum is the one place where the order differs on purpose: see MA_ATOL.
"""
import copy as copying

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
    """AdamW (docs/definitions.md §4) for one array over a sequence of gradients; returns the w after each step."""
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
    """GrokFast-EMA (docs/definitions.md §4): e <- alpha e + (1 - alpha) g, g <- g + lamb e, e starting at zero."""
    e, out = np.zeros_like(grads_seq[0]), []
    for g in grads_seq:
        e = alpha * e + (1 - alpha) * g
        out.append(g + lamb * e)
    return out


def check_against_reference(kind, reference, alpha, lamb, seed):
    """STEPS random gradients through grokfast's filter `kind` and through `reference` (the formula
    written out here): the same values at every step, grads updated in place and returned."""
    rng = np.random.default_rng(seed)
    grads_seq = [random_grads(rng) for _ in range(STEPS)]
    want = {k: reference([g[k] for g in grads_seq], alpha, lamb) for k in SHAPES}
    state = grokfast.init_filter(kind, random_params())
    for t, grads in enumerate(grads_seq):
        g = copy(grads)
        returned = grokfast.apply_filter(kind, g, state, alpha=alpha, lamb=lamb)
        assert returned is g
        assert_dicts_close(g, {k: want[k][t] for k in SHAPES}, f"{kind} step {t + 1}")


@pytest.mark.parametrize("alpha, lamb", [(0.98, 0.5), (0.5, 2.0), (0.0, 1.0)])
def test_ema_filter_matches_formula(alpha, lamb):
    check_against_reference("ema", ema_reference, alpha, lamb, seed=3)


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


# ------------------------------------------------------------------ normalised GrokFast ("norm")

def norm_reference(grads_seq, alpha, lamb):
    """e <- alpha e + (1 - alpha) g, g <- (g + lamb e) / (1 + lamb), e starting at zero."""
    e, out = np.zeros_like(grads_seq[0]), []
    for g in grads_seq:
        e = alpha * e + (1 - alpha) * g
        out.append((g + lamb * e) / (1 + lamb))
    return out


@pytest.mark.parametrize("alpha, lamb", [(0.98, 0.5), (0.5, 2.0), (0.9, 100.0)])
def test_norm_filter_matches_formula(alpha, lamb):
    check_against_reference("norm", norm_reference, alpha, lamb, seed=8)


def test_norm_keeps_a_constant_gradient_at_its_scale():
    """Constant g, e from zero: after t steps e = g (1 - alpha^t), so the output is
    g (1 + lamb (1 - alpha^t)) / (1 + lamb): g / (1 + lamb) at first, g in the steady state,
    whatever lamb. Plain EMA gives g (1 + lamb (1 - alpha^t)) -> g (1 + lamb) instead."""
    alpha, lamb, steps = 0.9, 50.0, 400  # 0.9^400 ~ 5e-19: converged to the last bit
    g0 = np.array([1.0, -2.0, 0.25])
    norm, ema = grokfast.init_filter("norm", {"a": g0}), grokfast.init_filter("ema", {"a": g0})
    for t in range(1, steps + 1):
        out = grokfast.apply_filter("norm", {"a": g0.copy()}, norm, alpha=alpha, lamb=lamb)["a"]
        plain = grokfast.apply_filter("ema", {"a": g0.copy()}, ema, alpha=alpha, lamb=lamb)["a"]
        np.testing.assert_allclose(out, g0 * (1 + lamb * (1 - alpha ** t)) / (1 + lamb), rtol=RTOL)
        np.testing.assert_allclose(plain, g0 * (1 + lamb * (1 - alpha ** t)), rtol=RTOL)
        if t == 1:  # 1 + 50 * 0.1 = 6, over 51
            np.testing.assert_allclose(out, g0 * 6 / 51, rtol=RTOL)
    np.testing.assert_allclose(out, g0, rtol=RTOL)
    np.testing.assert_allclose(plain, g0 * 51, rtol=RTOL)


def test_norm_stays_bounded_for_large_lamb():
    """The output is a convex combination of past raw gradients (and zero), so it never leaves
    [-max|g|, max|g|] elementwise, at lamb 1e6 too; plain EMA at the same lamb is ~1e5 times larger."""
    rng = np.random.default_rng(9)
    lamb = 1e6
    norm = grokfast.init_filter("norm", random_params())
    ema = grokfast.init_filter("ema", random_params())
    biggest = {k: np.zeros(s) for k, s in SHAPES.items()}
    for _ in range(50):
        grads = {k: rng.uniform(0.5, 1.5, s) * rng.choice([-1, 1], s) for k, s in SHAPES.items()}
        biggest = {k: np.maximum(biggest[k], np.abs(grads[k])) for k in SHAPES}
        out = grokfast.apply_filter("norm", copy(grads), norm, alpha=0.9, lamb=lamb)
        plain = grokfast.apply_filter("ema", copy(grads), ema, alpha=0.9, lamb=lamb)
        for k in SHAPES:
            assert np.all(np.abs(out[k]) <= biggest[k] * (1 + 1e-12))
    assert max(np.abs(plain[k]).max() for k in SHAPES) > 1e4 * max(biggest[k].max() for k in SHAPES)


# ------------------------------------------------------------------ GrokFast-MA

# The running sum s += g - oldest rounds differently from a fresh re-sum of the window. Per step it
# adds two roundings of at most eps/2 * |partial sum| <= eps/2 * (window + 1) G, G = max |g| (about
# 5 for the ~800 standard normal draws of a test), and s is re-summed every `window` steps, so the
# sum is off by at most window * (window + 1) * eps * G ~ 10 * 11 * 2.2e-16 * 5 ~ 1.2e-13 at window
# 10, less once divided by the count and times lamb 0.7. atol 1e-12 covers that with room, while a
# window off by one or a stale oldest gradient moves the output by ~lamb * G / window ~ 0.1.
MA_ATOL = 1e-12


def ma_reference(grads_seq, window, lamb):
    """g <- g + lamb * mean(last `window` raw gradients, current included; fewer before it fills)."""
    out = []
    for t, g in enumerate(grads_seq):
        recent = grads_seq[max(0, t + 1 - window):t + 1]
        out.append(g + lamb * np.mean(recent, axis=0))
    return out


@pytest.mark.parametrize("window", [1, 2, 3, 5, 10])
def test_ma_filter_matches_formula(window):
    """Over 3 window + 4 steps, so the ring buffer wraps three times (and the sum is refreshed)."""
    rng = np.random.default_rng(5)
    grads_seq = [random_grads(rng) for _ in range(3 * window + 4)]
    want = {k: ma_reference([g[k] for g in grads_seq], window, 0.7) for k in SHAPES}
    state = grokfast.init_filter("ma", random_params(), window=window)
    for t, grads in enumerate(grads_seq):
        g = copy(grads)
        returned = grokfast.apply_filter("ma", g, state, lamb=0.7)
        assert returned is g
        assert state["count"] == t + 1
        for k in SHAPES:
            np.testing.assert_allclose(g[k], want[k][t], rtol=0, atol=MA_ATOL,
                                       err_msg=f"ma window {window} step {t + 1} {k}")
            recent = [h[k] for h in grads_seq[max(0, t + 1 - window):t + 1]]
            np.testing.assert_allclose(state["sum"][k], np.sum(recent, axis=0), rtol=0, atol=MA_ATOL)


def test_ma_mean_before_window_fills_is_over_seen_gradients():
    """Window 4, gradients 1, 2, 3: the means are 1, 1.5, 2 (not divided by 4)."""
    state = grokfast.init_filter("ma", {"a": np.zeros(2)}, window=4)
    for value, mean in [(1.0, 1.0), (2.0, 1.5), (3.0, 2.0), (6.0, 3.0), (10.0, 5.25)]:
        g = grokfast.apply_filter("ma", {"a": np.full(2, value)}, state, lamb=1.0)
        np.testing.assert_allclose(g["a"], value + mean, rtol=RTOL)


class CountingArray(np.ndarray):
    """An ndarray that counts calls of .sum: how the MA step's cost is seen from outside."""
    sums = 0

    def sum(self, *args, **kwargs):
        CountingArray.sums += 1
        return super().sum(*args, **kwargs)


def test_ma_step_does_not_resum_the_window():
    """40 steps of window 8 re-sum the buffer once per wrap (5 times), not once per step (40 times)."""
    window, steps = 8, 40
    params = {"a": np.zeros((3, 2)).view(CountingArray)}
    state = grokfast.init_filter("ma", params, window=window)
    assert isinstance(state["buffer"]["a"], CountingArray)
    rng = np.random.default_rng(10)
    CountingArray.sums = 0
    for _ in range(steps):
        grokfast.apply_filter("ma", {"a": rng.standard_normal((3, 2)).view(CountingArray)}, state, lamb=1.0)
    assert CountingArray.sums == steps // window


def test_ma_rounding_does_not_pile_up():
    """float32, the way a GPU run holds it: one lap of gradients ~1e4, then gradients ~1e-3. A sum
    only ever updated would keep the rounding of the large ones (~1e4 * 6e-8 ~ 6e-4, about the size
    of the small gradients' whole sum); re-summed at each wrap, one lap later the mean is that of the
    small gradients to float32 precision."""
    window = 16
    rng = np.random.default_rng(11)
    state = grokfast.init_filter("ma", {"a": np.zeros(64, np.float32)}, window=window)
    for _ in range(window):
        big = (rng.standard_normal(64) * 1e4).astype(np.float32)
        grokfast.apply_filter("ma", {"a": big}, state, lamb=1.0)
    small_seq = [(rng.standard_normal(64) * 1e-3).astype(np.float32) for _ in range(2 * window + 5)]
    for t, small in enumerate(small_seq):
        g = grokfast.apply_filter("ma", {"a": small.copy()}, state, lamb=1.0)["a"]
        if t >= window:  # the window holds small gradients only, and the sum was re-summed
            mean = np.mean(np.array(small_seq[t + 1 - window:t + 1], np.float64), axis=0)
            np.testing.assert_allclose(g - small, mean, rtol=0, atol=1e-8)  # float32 on ~1e-3


def test_ma_state_without_running_sum_is_rebuilt():
    """A state saved before the running sum existed (buffer and count only) resumes correctly."""
    rng = np.random.default_rng(12)
    grads_seq = [random_grads(rng) for _ in range(9)]
    state = grokfast.init_filter("ma", random_params(), window=4)
    for grads in grads_seq[:6]:
        grokfast.apply_filter("ma", copy(grads), state, lamb=0.7)
    del state["sum"]
    want = {k: ma_reference([g[k] for g in grads_seq], 4, 0.7) for k in SHAPES}
    for t in range(6, 9):
        g = grokfast.apply_filter("ma", copy(grads_seq[t]), state, lamb=0.7)
        for k in SHAPES:
            np.testing.assert_allclose(g[k], want[k][t], rtol=0, atol=MA_ATOL)


@pytest.mark.parametrize("window", [0, -3])
def test_ma_window_below_one_raises(window):
    with pytest.raises(ValueError):
        grokfast.init_filter("ma", random_params(), window=window)


# ------------------------------------------------------------------ band-pass GrokFast

def bandpass_reference(grads_seq, alpha, alpha_fast, lamb):
    """f <- af f + (1 - af) g, s <- alpha s + (1 - alpha) g, g <- g + lamb (f - s); f, s from zero."""
    f, s, out = np.zeros_like(grads_seq[0]), np.zeros_like(grads_seq[0]), []
    for g in grads_seq:
        f = alpha_fast * f + (1 - alpha_fast) * g
        s = alpha * s + (1 - alpha) * g
        out.append(g + lamb * (f - s))
    return out


@pytest.mark.parametrize("alpha, alpha_fast, lamb", [(0.98, 0.9, 0.5), (0.9, 0.5, 3.0), (0.5, 0.9, 1.0)])
def test_bandpass_filter_matches_formula(alpha, alpha_fast, lamb):
    rng = np.random.default_rng(13)
    grads_seq = [random_grads(rng) for _ in range(STEPS)]
    want = {k: bandpass_reference([g[k] for g in grads_seq], alpha, alpha_fast, lamb) for k in SHAPES}
    state = grokfast.init_filter("bandpass", random_params(), alpha_fast=alpha_fast)
    for t, grads in enumerate(grads_seq):
        g = copy(grads)
        returned = grokfast.apply_filter("bandpass", g, state, alpha=alpha, lamb=lamb, alpha_fast=alpha_fast)
        assert returned is g
        assert_dicts_close(g, {k: want[k][t] for k in SHAPES}, f"bandpass step {t + 1}")


def test_bandpass_default_alpha_fast_is_0_9():
    rng = np.random.default_rng(14)
    grads_seq = [random_grads(rng) for _ in range(STEPS)]
    want = {k: bandpass_reference([g[k] for g in grads_seq], 0.98, 0.9, 0.5) for k in SHAPES}
    state = grokfast.init_filter("bandpass", random_params())
    for t, grads in enumerate(grads_seq):
        g = grokfast.apply_filter("bandpass", copy(grads), state)
        assert_dicts_close(g, {k: want[k][t] for k in SHAPES}, f"bandpass defaults step {t + 1}")


def test_bandpass_does_not_amplify_a_constant_gradient():
    """Constant g: f - s = g (alpha^t - alpha_fast^t), a bump that dies out; in the long run the
    output is g itself (plain EMA: g (1 + lamb))."""
    alpha, alpha_fast, lamb = 0.98, 0.9, 2.0
    g0 = np.array([1.0, -3.0])
    state = grokfast.init_filter("bandpass", {"a": g0})
    for t in range(1, 2501):  # 0.98^2500 ~ 1e-22
        out = grokfast.apply_filter("bandpass", {"a": g0.copy()}, state, alpha=alpha, lamb=lamb,
                                    alpha_fast=alpha_fast)["a"]
        np.testing.assert_allclose(out, g0 * (1 + lamb * (alpha ** t - alpha_fast ** t)), rtol=1e-9)
        if t == 1:  # f = 0.1 g, s = 0.02 g: 1 + 2 * 0.08
            np.testing.assert_allclose(out, g0 * 1.16, rtol=RTOL)
    np.testing.assert_allclose(out, g0, rtol=1e-12)


def ema_gain(alpha, omega):
    """Steady-state response of e <- alpha e + (1 - alpha) g to g_t = e^{i omega t}: e_t = F g_t with
    F = (1 - alpha) / (1 - alpha e^{-i omega}) (substitute e_t = F e^{i omega t} and solve)."""
    return (1 - alpha) / (1 - alpha * np.exp(-1j * omega))


def test_bandpass_amplifies_a_middle_period_only():
    """g_t = cos(omega t): in the steady state the output is Re(H e^{i omega t}), H = 1 + lamb (F_fast
    - F_slow). Period 100 (between tau_fast ~ 10 and tau_slow ~ 50 steps): |H| ~ 1.66 at lamb 1. At
    period 2 (g = +-1), F = (1 - a) / (1 + a), so H = 1 + 0.1/1.9 - 0.02/1.98 = 1.0425: barely."""
    alpha, alpha_fast, lamb, steps = 0.98, 0.9, 1.0, 3000  # transients ~ 0.98^3000 ~ 4e-27
    for period, low, high in [(100.0, 1.6, 1.7), (2.0, 1.04, 1.045)]:
        omega = 2 * np.pi / period
        gain = 1 + lamb * (ema_gain(alpha_fast, omega) - ema_gain(alpha, omega))
        if period == 2.0:
            assert abs(gain - (1 + 0.1 / 1.9 - 0.02 / 1.98)) < 1e-12
        assert low < abs(gain) < high
        state = grokfast.init_filter("bandpass", {"a": np.zeros(1)})
        outs = []
        for t in range(steps):
            g = {"a": np.array([np.cos(omega * t)])}
            outs.append(grokfast.apply_filter("bandpass", g, state, alpha=alpha, lamb=lamb,
                                              alpha_fast=alpha_fast)["a"][0])
        tail = np.arange(steps - 200, steps)
        np.testing.assert_allclose(outs[-200:], (gain * np.exp(1j * omega * tail)).real, rtol=0, atol=1e-10)
        assert low < np.max(np.abs(outs[-200:])) <= abs(gain) + 1e-10  # input amplitude is 1


# ------------------------------------------------------------------ the lamb schedule

@pytest.mark.parametrize("signals", [None, {}, {"train_loss": None, "valid_loss": None},
                                     {"train_loss": 0.1, "valid_loss": 0.9}])
def test_constant_schedule_is_lamb(signals):
    out = grokfast.scheduled_lamb("constant", 0.5, signals)
    assert out == 0.5 and type(out) is float


@pytest.mark.parametrize("train, valid, want", [
    (0.1, 0.9, 2.0 * 8 / 9),  # relative gap (0.9 - 0.1) / 0.9 = 8/9 of lamb 2
    (0.0, 3.0, 2.0),          # memorised, not generalised: full lamb
    (0.5, 0.5, 0.0),          # generalised: off
    (0.6, 0.5, 0.0),          # valid below train: clipped at 0
    (1.0, 4.0, 1.5),          # 3/4 of 2
    (0.0, 0.0, 0.0),          # both zero: 0 / max(0, tiny)
])
def test_gap_schedule_at_hand_computed_points(train, valid, want):
    out = grokfast.scheduled_lamb("gap", 2.0, {"train_loss": train, "valid_loss": valid})
    assert type(out) is float
    assert out == pytest.approx(want, rel=1e-15, abs=0)
    # numpy scalars (what a metrics array yields) give the same float bit for bit
    assert grokfast.scheduled_lamb("gap", 2.0, {"train_loss": np.float64(train),
                                                "valid_loss": np.float64(valid)}) == out


@pytest.mark.parametrize("signals", [None, {}, {"train_loss": None, "valid_loss": None},
                                     {"train_loss": 0.1, "valid_loss": None},
                                     {"train_loss": float("nan"), "valid_loss": 0.9},
                                     {"train_loss": 0.1, "valid_loss": float("inf")}])
def test_gap_schedule_without_signals_is_lamb(signals):
    assert grokfast.scheduled_lamb("gap", 0.7, signals) == 0.7


@pytest.mark.parametrize("schedule", ["linear", "Gap", ""])
def test_unknown_schedule_raises(schedule):
    with pytest.raises(ValueError):
        grokfast.scheduled_lamb(schedule, 0.5, {"train_loss": 0.1, "valid_loss": 0.9})


# ------------------------------------------------------------------ the entry points

def test_filter_and_schedule_names():
    assert grokfast.FILTERS == ("ema", "ma", "none", "norm", "bandpass")
    assert grokfast.SCHEDULES == ("constant", "gap")


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


@pytest.mark.parametrize("kind", ["foo", "EMA", "", "mа", "band-pass"])  # 'mа' has a Cyrillic 'а'
def test_unknown_filter_raises(kind):
    with pytest.raises(ValueError):
        grokfast.init_filter(kind, random_params())
    with pytest.raises(ValueError):
        grokfast.apply_filter(kind, random_grads(np.random.default_rng(0)), {})


@pytest.mark.parametrize("kind", grokfast.FILTERS)
def test_lambda_zero_leaves_grads_unchanged(kind):
    state = grokfast.init_filter(kind, random_params(), window=3)
    rng = np.random.default_rng(7)
    for _ in range(4):
        g = random_grads(rng)
        before = copy(g)
        grokfast.apply_filter(kind, g, state, alpha=0.9, lamb=0.0)
        assert_dicts_close(g, before, f"{kind} lamb 0")


def assert_trees_equal(a, b, where="state"):
    """Bit-identical nested dicts of arrays and Python scalars."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            assert_trees_equal(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert a == b, where


@pytest.mark.parametrize("kind", grokfast.FILTERS)
def test_filter_state_does_not_depend_on_lamb(kind):
    """The state follows the raw gradient, so a scheduled lamb (0 for a while, then not) leaves it
    as a constant lamb would: switching the amplification on uses the history it missed."""
    rng = np.random.default_rng(15)
    grads_seq = [random_grads(rng) for _ in range(11)]
    states = [grokfast.init_filter(kind, random_params(), window=4) for _ in range(2)]
    for t, grads in enumerate(grads_seq):
        grokfast.apply_filter(kind, copy(grads), states[0], alpha=0.9, lamb=0.5, alpha_fast=0.6)
        grokfast.apply_filter(kind, copy(grads), states[1], alpha=0.9, lamb=[0.0, 3.0][t % 2], alpha_fast=0.6)
    assert_trees_equal(states[0], states[1])


def assert_plain_tree(tree, where="state"):
    """What rundir.pack_tree checkpoints: dicts with str keys, lists, arrays, Python scalars."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            assert type(k) is str, where
            assert_plain_tree(v, f"{where}[{k!r}]")
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            assert_plain_tree(v, f"{where}[{i}]")
    else:
        assert type(tree) in (np.ndarray, int, float, bool, str) or tree is None, f"{where}: {type(tree)}"


@pytest.mark.parametrize("kind", grokfast.FILTERS)
def test_resumed_filter_is_bit_identical(kind):
    """Save the state mid-run (a deep copy, as a checkpoint would), continue from both: the outputs
    and the states agree bit for bit, for MA past several wraps of the buffer (window 3)."""
    rng = np.random.default_rng(16)
    grads_seq = [random_grads(rng) for _ in range(17)]
    state = grokfast.init_filter(kind, random_params(), window=3, alpha_fast=0.7)
    assert_plain_tree(state)
    for grads in grads_seq[:8]:
        grokfast.apply_filter(kind, copy(grads), state, alpha=0.95, lamb=1.5, alpha_fast=0.7)
    assert_plain_tree(state)
    resumed = copying.deepcopy(state)
    for grads in grads_seq[8:]:
        a = grokfast.apply_filter(kind, copy(grads), state, alpha=0.95, lamb=1.5, alpha_fast=0.7)
        b = grokfast.apply_filter(kind, copy(grads), resumed, alpha=0.95, lamb=1.5, alpha_fast=0.7)
        assert_trees_equal(a, b, "grads")
    assert_trees_equal(state, resumed)


@pytest.mark.parametrize("kind", grokfast.FILTERS)
def test_filters_keep_dtype_and_arrays(kind):
    """float32 in, float32 out, in place: the hot path on a GPU neither upcasts nor reallocates."""
    params = {k: v.astype(np.float32) for k, v in random_params().items()}
    state = grokfast.init_filter(kind, params, window=2)
    rng = np.random.default_rng(17)
    for _ in range(3):
        g = {k: v.astype(np.float32) for k, v in random_grads(rng).items()}
        arrays = dict(g)
        grokfast.apply_filter(kind, g, state, lamb=2.0)
        for k in SHAPES:
            assert g[k] is arrays[k] and g[k].dtype == np.float32
    for leaf in (v for d in state.values() if isinstance(d, dict) for v in d.values()):
        assert leaf.dtype == np.float32
