"""AdamW and the GrokFast gradient filters, written by hand.

Everything here acts on a dict of named arrays (params, grads, optimiser state) and knows nothing
of the model. Arrays may be NumPy or CuPy: only elementwise array methods and operators are used,
so the backend is whatever the arrays are. Updates are in place (the hot path allocates little);
each function also returns what it changed, so call sites read like pure functions.

Definitions (SPEC §4):
  AdamW, decoupled weight decay as PyTorch's `AdamW`:
      m <- b1 m + (1 - b1) g           v <- b2 v + (1 - b2) g^2
      m^ = m / (1 - b1^t)              v^ = v / (1 - b2^t)
      w <- w - lr (m^ / (sqrt(v^) + eps) + wd w)
  GrokFast-EMA (Lee et al. 2024), on the raw gradient before AdamW, e starting at zero:
      e <- alpha e + (1 - alpha) g     g <- g + lamb e
  GrokFast-MA: g <- g + lamb * mean(last `window` gradients, the current one included). Before
  `window` gradients have been seen, the mean is over those seen so far (our choice: the filter is
  on from the first step, as the EMA is).
"""


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
    """The EMA of gradients, starting at zero (SPEC §4)."""
    return {"ema": {name: w * 0 for name, w in params.items()}}


def ema_filter(grads, state, alpha=0.98, lamb=0.5):
    """e <- alpha e + (1 - alpha) g; g <- g + lamb e. Updates grads and state in place."""
    for name, g in grads.items():
        e = state["ema"][name]
        e *= alpha
        e += (1.0 - alpha) * g
        g += lamb * e
    return grads


# ---------------------------------------------------------------- GrokFast-MA

def ma_init(params, window):
    """A ring buffer of the last `window` gradients per parameter, and how many it holds."""
    if int(window) < 1:
        raise ValueError(f"GrokFast-MA window must be >= 1, got {window}")
    window = int(window)
    buffers = {}
    for name, w in params.items():
        buf = w[None] * 0  # (1, *shape), then widened to (window, *shape)
        buffers[name] = buf.repeat(window, axis=0)
    return {"buffer": buffers, "count": 0, "window": window}


def ma_filter(grads, state, lamb=0.5):
    """g <- g + lamb * mean(last `window` raw gradients, this one included). In place."""
    window = state["window"]
    slot = state["count"] % window
    state["count"] += 1
    seen = min(state["count"], window)
    for name, g in grads.items():
        buf = state["buffer"][name]
        buf[slot] = g  # store the raw gradient before it is changed below
        mean = buf[:seen].sum(axis=0) / seen
        g += lamb * mean
    return grads


# ---------------------------------------------------------------- one entry point

def init_filter(kind, params, window=100):
    """State for the gradient filter `kind` in {'ema', 'ma', 'none'}."""
    if kind == "ema":
        return ema_init(params)
    if kind == "ma":
        return ma_init(params, window)
    if kind == "none":
        return {}
    raise ValueError(f"unknown gradient filter {kind!r} (expected ema, ma or none)")


def apply_filter(kind, grads, state, alpha=0.98, lamb=0.5):
    """Apply the filter `kind` to grads in place; 'none' (or lamb == 0 for EMA/MA) leaves g as is."""
    if kind == "ema":
        return ema_filter(grads, state, alpha=alpha, lamb=lamb)
    if kind == "ma":
        return ma_filter(grads, state, lamb=lamb)
    if kind != "none":
        raise ValueError(f"unknown gradient filter {kind!r} (expected ema, ma or none)")
    return grads

