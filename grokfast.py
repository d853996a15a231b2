"""AdamW and the GrokFast gradient filters, written by hand.

Everything here acts on a dict of named arrays (params, grads, optimiser state) and knows nothing
of the model. Arrays may be NumPy or CuPy: only elementwise array methods and operators are used,
so the backend is whatever the arrays are. Updates are in place (the hot path allocates little);
each function also returns what it changed, so call sites read like pure functions. Filter states
are plain dicts of arrays and Python scalars (what rundir.pack_tree checkpoints), and every filter
updates its state from the raw gradient whatever lamb is, so lamb may change from step to step.

Definitions (definitions §4, docs/definitions.md), g the raw gradient of one parameter at this step:
  AdamW, decoupled weight decay as PyTorch's `AdamW`:
      m <- b1 m + (1 - b1) g           v <- b2 v + (1 - b2) g^2
      m^ = m / (1 - b1^t)              v^ = v / (1 - b2^t)
      w <- w - lr (m^ / (sqrt(v^) + eps) + wd w)
  GrokFast-EMA ("ema", Lee et al. 2024), on the raw gradient before AdamW, e starting at zero:
      e <- alpha e + (1 - alpha) g     g <- g + lamb e
  GrokFast-MA ("ma"): g <- g + lamb * mean(last `window` gradients, the current one included). Before
  `window` gradients have been seen, the mean is over those seen so far (our choice: the filter is
  on from the first step, as the EMA is). Kept as a running sum s next to the ring buffer:
      s <- s - (oldest in the buffer, 0 before it fills) + g      mean = s / min(t, window)
  and s is re-summed from the buffer each time the buffer wraps (t a multiple of `window`).
  Normalised GrokFast ("norm", grokfast issue #9: large lamb explodes), e starting at zero:
      e <- alpha e + (1 - alpha) g     g <- (g + lamb e) / (1 + lamb)
  Band-pass GrokFast ("bandpass", ours), both EMAs starting at zero, alpha_fast < alpha:
      f <- alpha_fast f + (1 - alpha_fast) g    s <- alpha s + (1 - alpha) g    g <- g + lamb (f - s)
  The lamb schedule ("constant" or "gap", ours), from the losses at the last logged epoch:
      constant: lamb                   gap: lamb * clip((valid - train) / max(valid, 1e-12), 0, 1)
"""
import math

FILTERS = ("ema", "ma", "none", "norm", "bandpass")
SCHEDULES = ("constant", "gap")


# ---------------------------------------------------------------- AdamW

def adamw_init(params):
    """Zero first and second moments for every parameter, step 0."""
    return {
        "step": 0,
        "m": {name: w * 0 for name, w in params.items()},
        "v": {name: w * 0 for name, w in params.items()},
    }


def adamw_step(params, grads, state, lr, b1=0.9, b2=0.98, eps=1e-8, wd=0.0):
    """One AdamW step on every parameter; updates params and state in place and returns params."""
    state["step"] += 1
    t = state["step"]
    bias1 = 1.0 - b1 ** t  # bias corrections, scalars on the host
    bias2 = 1.0 - b2 ** t
    for name, w in params.items():  # a loop over the 9 named parameters, not over data
        g = grads[name]
        m, v = state["m"][name], state["v"][name]
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        # m^ / (sqrt(v^) + eps) written as (m / bias1) / (sqrt(v / bias2) + eps)
        update = (m / bias1) / ((v / bias2) ** 0.5 + eps)
        update += wd * w  # decoupled decay: uses w before this step, as PyTorch's AdamW
        w -= lr * update
    return params


# ---------------------------------------------------------------- GrokFast-EMA

def ema_init(params):
    """The EMA of gradients, starting at zero (definitions §4). Also the state of the 'norm' filter."""
    return {"ema": {name: w * 0 for name, w in params.items()}}


def ema_filter(grads, state, alpha=0.98, lamb=0.5):
    """e <- alpha e + (1 - alpha) g; g <- g + lamb e. Updates grads and state in place."""
    for name, g in grads.items():
        e = state["ema"][name]
        e *= alpha
        e += (1.0 - alpha) * g
        g += lamb * e
    return grads


def norm_filter(grads, state, alpha=0.98, lamb=0.5):
    """e <- alpha e + (1 - alpha) g; g <- (g + lamb e) / (1 + lamb). In place; state as ema_init.

    A weighted average of g and its EMA instead of a sum (grokfast issue #9): the filtered gradient
    is a convex combination of raw gradients (and the zero e starts from), so its scale stays that
    of g for any lamb, where plain EMA multiplies a steady gradient by 1 + lamb. The cost: lamb
    only shifts weight towards the slow part, it no longer amplifies it (lamb -> inf gives g = e).
    """
    for name, g in grads.items():
        e = state["ema"][name]
        e *= alpha
        e += (1.0 - alpha) * g
        g += lamb * e
        g /= 1.0 + lamb
    return grads


# ---------------------------------------------------------------- GrokFast-MA

def ma_init(params, window):
    """A ring buffer of the last `window` gradients per parameter, their running sum, and a count."""
    if int(window) < 1:
        raise ValueError(f"GrokFast-MA window must be >= 1, got {window}")
    window = int(window)
    buffers = {}
    for name, w in params.items():
        buf = w[None] * 0  # (1, *shape), then widened to (window, *shape)
        buffers[name] = buf.repeat(window, axis=0)
    sums = {name: w * 0 for name, w in params.items()}
    return {"buffer": buffers, "sum": sums, "count": 0, "window": window}


def ma_filter(grads, state, lamb=0.5):
    """g <- g + lamb * mean(last `window` raw gradients, this one included). In place.

    The sum over the window is kept running (s += g - oldest), so a step costs O(1) per element
    instead of O(window). It differs from a fresh re-sum of the buffer only by float rounding, and
    to keep that rounding from piling up over a long run (float32; gradients that shrink by orders
    of magnitude while an early large one's rounding error stays in s) s is re-summed from the
    buffer whenever the buffer wraps: one O(window) sum every `window` steps, amortised O(1). s
    lives in the state, so a resumed run stays bit-identical.
    """
    window = state["window"]
    if "sum" not in state:  # a state saved before the running sum existed
        seen = min(state["count"], window)
        state["sum"] = {name: buf[:seen].sum(axis=0) for name, buf in state["buffer"].items()}
    slot = state["count"] % window
    state["count"] += 1
    seen = min(state["count"], window)
    refresh = state["count"] % window == 0  # the buffer now holds exactly the last `window` gradients
    for name, g in grads.items():
        buf, s = state["buffer"][name], state["sum"][name]
        s -= buf[slot]  # the gradient leaving the window (zeros before the buffer fills)
        s += g
        buf[slot] = g  # store the raw gradient before it is changed below
        if refresh:
            s[...] = buf.sum(axis=0)
        g += lamb * (s / seen)
    return grads


# ---------------------------------------------------------------- band-pass GrokFast

def bandpass_init(params):
    """A fast and a slow EMA of gradients, both starting at zero."""
    return {"fast": {name: w * 0 for name, w in params.items()},
            "slow": {name: w * 0 for name, w in params.items()}}


def bandpass_filter(grads, state, alpha=0.98, lamb=0.5, alpha_fast=0.9):
    """f <- af f + (1 - af) g; s <- alpha s + (1 - alpha) g; g <- g + lamb (f - s). In place.

    GrokFast amplifies the slowest part of the gradient (its frequency response 1 + lamb F(w),
    F(w) = (1 - a) / (1 - a e^-iw), is largest at w = 0), i.e. what the final circuit wants. The
    talk sees temporarily useful structure (the Omega-spike: frequencies that rise during
    generalisation and fade after it); its gradient varies on a middle timescale, neither step
    to step noise nor constant. f - s, a difference of low-passes, is a band-pass: 0 at w = 0 (a
    constant gradient is left as it is once both EMAs have converged to it), small for fast
    noise, largest near the period 2 pi sqrt(tau_fast tau_slow), tau = 1 / (1 - a). With alpha
    0.98, alpha_fast 0.9, |F_fast - F_slow| is 0 at a constant, 0.68 at its peak near period 136
    steps (nearly in phase there: gain ~1 + 0.68 lamb), 0.24 at period 1000, 0.04 at period 2.
    alpha_fast > alpha flips the sign (a band-stop); alpha_fast = alpha turns the filter off.
    """
    for name, g in grads.items():
        f, s = state["fast"][name], state["slow"][name]
        f *= alpha_fast
        f += (1.0 - alpha_fast) * g
        s *= alpha
        s += (1.0 - alpha) * g
        g += lamb * (f - s)
    return grads


# ---------------------------------------------------------------- lamb schedule

def scheduled_lamb(schedule, lamb, signals=None):
    """The lamb to use at this step, a Python float, from the schedule in SCHEDULES.

    'constant': lamb. 'gap': lamb * clip((valid - train) / max(valid, 1e-12), 0, 1), where train
    and valid are signals["train_loss"] and signals["valid_loss"], the losses at the last logged
    epoch (weighted means over tasks). The relative gap 1 - train/valid is near 1 while the model
    memorises (train loss ~ 0, valid loss high), so the slow gradient gets the full lamb exactly
    on the grokking plateau; it falls towards 0 as valid loss comes down to train loss, so the
    amplification backs off once the model generalises (a large lamb there only adds noise). At
    initialisation both losses are ~log q, so lamb starts near 0 and rises as the gap opens; the
    filter state still follows the raw gradient meanwhile. Relative, not absolute: the losses'
    scale (log q) differs by task. Signals that are missing (None, before the first logged epoch)
    or not finite fall back to lamb. Pure host arithmetic on the logged floats, so a resumed run,
    which reads the same logged values, gets the same lamb bit for bit.
    """
    if schedule == "constant":
        return float(lamb)
    if schedule != "gap":
        raise ValueError(f"unknown lamb schedule {schedule!r} (expected one of {', '.join(SCHEDULES)})")
    signals = signals or {}
    train, valid = signals.get("train_loss"), signals.get("valid_loss")
    if train is None or valid is None or not (math.isfinite(train) and math.isfinite(valid)):
        return float(lamb)
    train, valid = float(train), float(valid)
    gap = (valid - train) / max(valid, 1e-12)
    return float(lamb) * min(max(gap, 0.0), 1.0)


# ---------------------------------------------------------------- one entry point

def _unknown(kind):
    return ValueError(f"unknown gradient filter {kind!r} (expected one of {', '.join(FILTERS)})")


def init_filter(kind, params, window=100, alpha_fast=0.9):
    """State for the gradient filter `kind` in FILTERS ('none': an empty dict).

    alpha_fast is accepted (and unused) so a caller can pass init_filter and apply_filter the
    same options.
    """
    if kind in ("ema", "norm"):
        return ema_init(params)
    if kind == "ma":
        return ma_init(params, window)
    if kind == "bandpass":
        return bandpass_init(params)
    if kind == "none":
        return {}
    raise _unknown(kind)


def apply_filter(kind, grads, state, alpha=0.98, lamb=0.5, alpha_fast=0.9):
    """Apply the filter `kind` to grads in place; 'none' (or lamb == 0) leaves g as it is.

    alpha is the EMA's ('ema', 'norm') or the slow EMA's ('bandpass'); alpha_fast is the fast
    EMA's ('bandpass' only); 'ma' uses neither (its window is in the state).
    """
    if kind == "ema":
        return ema_filter(grads, state, alpha=alpha, lamb=lamb)
    if kind == "norm":
        return norm_filter(grads, state, alpha=alpha, lamb=lamb)
    if kind == "ma":
        return ma_filter(grads, state, lamb=lamb)
    if kind == "bandpass":
        return bandpass_filter(grads, state, alpha=alpha, lamb=lamb, alpha_fast=alpha_fast)
    if kind != "none":
        raise _unknown(kind)
    return grads
