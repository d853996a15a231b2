"""Finite-difference checks of every hand-written backward function, in float64.

Each layer is checked on its own: pick a random upstream gradient R, take the scalar
f = sum(out * R), and compare the layer's backward (fed R) with central differences of f on every
input array and parameter. Then the whole model: `loss_and_grads` against central differences of
the loss on every parameter, for each task family, with dropout off and on (a fixed mask).

Tolerance. Central differences with step H = 1e-6 in float64 have truncation error
O(H^2 * f''') ~ 1e-12 and rounding error ~ eps * |f| / H ~ 1e-16 / 1e-6 = 1e-10 (times |f| ~ 1).
We compare max |numeric - analytic| against the largest gradient entry of that array
(max-normalised; some arrays' gradients are ~1e-2 of |f|, which lifts the rounding term to ~1e-8,
the worst seen here). We accept 1e-6: two or more orders of magnitude above both error sources,
while a wrong term in a backward pass gives errors of order 1e-2 .. 1.

ReLU kinks. Central differences are only valid where f is smooth on [w - H, w + H]. The MLP's ReLU
is the only kink (softmax max-shifts do not change the value). With continuous random inputs a
pre-activation within ~1e-6 of zero is improbable; rather than trusting luck, the checks below
record the ReLU on/off pattern at every perturbed point and assert that it is unchanged, so a
crossed kink fails with a clear message instead of a puzzling mismatch. The fixed seeds pass it.
"""
import types

import numpy as np
import pytest

import miiii

H = 1e-6  # central-difference step
TOL = 1e-6  # max-normalised relative error bound, see the module docstring
SUBSET = 30  # entries checked per array when it is larger than FULL_UP_TO
FULL_UP_TO = 64  # arrays up to this size are checked at every entry


# ------------------------------------------------------------------ helpers

def check_indices(size, rng, full_up_to=FULL_UP_TO):
    """Every flat index for a small array, else a random subset of SUBSET of them."""
    if size <= full_up_to:
        return np.arange(size)
    return rng.choice(size, SUBSET, replace=False)


def central_difference(f, arrays, name, flat_index, pattern0):
    """(f(w + H) - f(w - H)) / 2H for one entry of arrays[name], restored afterwards.

    `f(arrays)` returns (value, relu_pattern or None); the pattern must not change (no kink crossed).
    """
    a = arrays[name]
    i = np.unravel_index(flat_index, a.shape)
    old = a[i]
    a[i] = old + H
    f_plus, pat_plus = f(arrays)
    a[i] = old - H
    f_minus, pat_minus = f(arrays)
    a[i] = old
    if pattern0 is not None:
        assert np.array_equal(pat_plus, pattern0) and np.array_equal(pat_minus, pattern0), (
            f"a ReLU kink lies within H of {name}{i}: pick another seed")
    return (f_plus - f_minus) / (2 * H)


def assert_grads_match(f, arrays, analytic, rng, full_up_to=FULL_UP_TO):
    """Compare analytic[name] with central differences of f on each array in `arrays`."""
    _, pattern0 = f(arrays)
    for name, a in arrays.items():
        assert analytic[name].shape == a.shape, name
        assert analytic[name].dtype == np.float64, f"{name}: backward left float64"
        idx = check_indices(a.size, rng, full_up_to)
        numeric = np.array([central_difference(f, arrays, name, k, pattern0) for k in idx])
        mine = analytic[name].reshape(-1)[idx]
        scale = max(np.abs(analytic[name]).max(), np.abs(numeric).max())
        assert scale > 1e-8, f"{name}: gradient is zero, the check would prove nothing"
        err = np.abs(numeric - mine).max() / scale
        assert err < TOL, f"{name}: max-normalised error {err:.2e} (numeric vs backward)"


def dot(out, R):
    """f = sum(out * R), the scalar whose gradient wrt `out` is R."""
    return float((out * R).sum())


def to64(params):
    return {k: v.astype(np.float64) for k, v in params.items()}


# ------------------------------------------------------------------ layers, each on its own

P, D, HEADS, N = 7, 8, 2, 20  # vocabulary V = P + 1


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def random_inputs(rng, n=N, p=P):
    x = np.stack([rng.integers(0, p, n), rng.integers(0, p, n), np.full(n, p)], axis=1)
    return x


def test_embedding_backward(rng):
    arrays = {"tok_emb": rng.standard_normal((P + 1, D)), "pos_emb": rng.standard_normal((3, D))}
    (z_in, z_eq), cache = miiii.embedding_forward(arrays["tok_emb"], arrays["pos_emb"])
    R_in, R_eq = rng.standard_normal(z_in.shape), rng.standard_normal(z_eq.shape)

    def f(A):
        (zi, ze), _ = miiii.embedding_forward(A["tok_emb"], A["pos_emb"])
        return dot(zi, R_in) + dot(ze, R_eq), None

    analytic = miiii.embedding_backward((R_in, R_eq), cache)
    assert_grads_match(f, arrays, analytic, rng, full_up_to=10**6)


def attention_arrays(rng):
    dh = D // HEADS
    return {
        "z_in": rng.standard_normal((2, P + 1, D)), "z_eq": rng.standard_normal(D),
        "W_Q": rng.standard_normal((HEADS, D, dh)) * 0.5, "W_K": rng.standard_normal((HEADS, D, dh)) * 0.5,
        "W_V": rng.standard_normal((HEADS, D, dh)) * 0.5, "W_O": rng.standard_normal((HEADS, dh, D)) * 0.5,
    }


def attention_call(A, x):
    return miiii.attention_forward((A["z_in"], A["z_eq"]), x, A["W_Q"], A["W_K"], A["W_V"], A["W_O"])


def test_attention_backward(rng):
    x = random_inputs(rng)
    arrays = attention_arrays(rng)
    out, cache = attention_call(arrays, x)
    assert out.shape == (N, D)
    R = rng.standard_normal(out.shape)
    (dz_in, dz_eq), grads = miiii.attention_backward(R, cache)
    analytic = {"z_in": dz_in, "z_eq": dz_eq, **grads}
    assert set(grads) == {"W_Q", "W_K", "W_V", "W_O"}
    assert_grads_match(lambda A: (dot(attention_call(A, x)[0], R), None), arrays, analytic, rng,
                       full_up_to=10**6)


def test_attention_forward_matches_plain_formula(rng):
    """The gathered/shared-row attention equals the per-sequence formula of docs/definitions.md §2 (read at '=')."""
    x = random_inputs(rng)
    A = attention_arrays(rng)
    out, _ = attention_call(A, x)
    dh = D // HEADS
    for n in range(N):
        z0 = np.stack([A["z_in"][0, x[n, 0]], A["z_in"][1, x[n, 1]], A["z_eq"]])  # (3, d)
        want = np.zeros(D)
        for h in range(HEADS):
            q, k, v = z0 @ A["W_Q"][h], z0 @ A["W_K"][h], z0 @ A["W_V"][h]
            s = q[-1] @ k.T / np.sqrt(dh)
            att = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
            want += (att @ v) @ A["W_O"][h]
        np.testing.assert_allclose(out[n], want, rtol=1e-12, atol=1e-12)


def test_dropout_backward():
    rate, seed = 0.25, 7
    base = np.random.default_rng(3)
    arrays = {"h": base.standard_normal((N, D))}
    out, mask = miiii.dropout_forward(arrays["h"], rate, np.random.default_rng(seed))
    R = base.standard_normal(out.shape)

    def f(A):  # a fresh generator per evaluation: every forward draws the same mask
        return dot(miiii.dropout_forward(A["h"], rate, np.random.default_rng(seed))[0], R), None

    analytic = {"h": miiii.dropout_backward(R, mask)}
    assert_grads_match(f, arrays, analytic, base, full_up_to=10**6)


def test_dropout_forward_is_inverted_dropout():
    rate = 0.25
    h = np.random.default_rng(0).standard_normal((400, 50))
    out, mask = miiii.dropout_forward(h, rate, np.random.default_rng(1))
    assert mask.dtype == np.float64
    kept = mask != 0
    np.testing.assert_array_equal(mask[kept], 1.0 / (1.0 - rate))  # scale kept at 1/(1-rate)
    np.testing.assert_array_equal(out, h * mask)
    # share dropped ~ rate: 20,000 Bernoulli draws, sd 0.003; 0.02 is a ~7 sd bound
    assert abs((~kept).mean() - rate) < 0.02
    same, none = miiii.dropout_forward(h, 0.0, np.random.default_rng(1))
    assert none is None and same is h  # rate 0: identity
    np.testing.assert_array_equal(miiii.dropout_backward(h, None), h)


def test_mlp_backward(rng):
    arrays = {"z1": rng.standard_normal((N, D)), "W_in": rng.standard_normal((D, 4 * D)) * 0.5,
              "W_out": rng.standard_normal((4 * D, D)) * 0.5}
    out, cache = miiii.mlp_forward(arrays["z1"], arrays["W_in"], arrays["W_out"])
    assert out.shape == (N, D)
    hid = cache[3]
    assert (hid > 0).any() and (hid == 0).any()  # both sides of the ReLU are exercised
    np.testing.assert_array_equal(hid, np.maximum(arrays["z1"] @ arrays["W_in"], 0))
    R = rng.standard_normal(out.shape)

    def f(A):
        o, c = miiii.mlp_forward(A["z1"], A["W_in"], A["W_out"])
        return dot(o, R), c[3] > 0

    dz1, grads = miiii.mlp_backward(R, cache)
    assert_grads_match(f, arrays, {"z1": dz1, **grads}, rng, full_up_to=10**6)


def test_unembed_backward(rng):
    C = 17
    arrays = {"z2": rng.standard_normal((N, D)), "W_U": rng.standard_normal((D, C))}
    out, cache = miiii.unembed_forward(arrays["z2"], arrays["W_U"])
    R = rng.standard_normal(out.shape)
    dz2, grads = miiii.unembed_backward(R, cache)
    f = lambda A: (dot(miiii.unembed_forward(A["z2"], A["W_U"])[0], R), None)  # noqa: E731
    assert_grads_match(f, arrays, {"z2": dz2, **grads}, rng, full_up_to=10**6)


@pytest.mark.parametrize("classes, mask", [
    ([2, 3, 5, 7, 11], None),  # miiii at p = 13
    ([13], None),  # nanda
    ([2, 3, 5, 7, 11], [0, 0, 0, 0, 1]),  # masked
    ([2, 2, 2, 2, 2], None),  # divisible
    ([2, 3, 5], [1.0, 0.0, 1.0]),
])
def test_cross_entropy_backward(rng, classes, mask):
    """cross_entropy_backward returns d loss / d logits; the loss itself is the scalar f here."""
    n = 12
    y = np.stack([rng.integers(0, q, n) for q in classes], axis=1)
    arrays = {"logits": rng.standard_normal((n, sum(classes))) * 3}
    m = None if mask is None else np.array(mask, dtype=np.float64)
    _, cache = miiii.cross_entropy_forward(arrays["logits"], y, classes, m)
    analytic = {"logits": miiii.cross_entropy_backward(cache)}
    f = lambda A: (miiii.cross_entropy_forward(A["logits"], y, classes, m)[0], None)  # noqa: E731
    assert_grads_match(f, arrays, analytic, rng, full_up_to=10**6)
    if m is not None:  # masked heads get exactly zero gradient
        cols = np.repeat(np.array(mask) == 0, classes)
        assert np.all(analytic["logits"][:, cols] == 0)


# ------------------------------------------------------------------ the whole model

CASES = [  # (task, p, d, heads): tiny sizes; masked needs p >= 12
    ("miiii", 13, 16, 2),
    ("nanda", 11, 8, 2),
    ("masked", 13, 8, 2),
    ("divisible", 13, 8, 2),
]
DROPOUT_SEED = 99


def model_setup(task_name, p, d, heads):
    task = miiii.make_task(task_name, p, 0.5, seed=0)
    # init_params is float32; scale up so the loss is far from flat and gradients are O(0.01 .. 1)
    params = {k: v * 1.5 for k, v in to64(miiii.init_params(p, d, heads, task["classes"], seed=1)).items()}
    return task, params


def loss_fn(task, dropout):
    """f(params) -> (loss, ReLU pattern); a fresh seeded generator per call fixes the dropout masks."""
    def f(params):
        rng = np.random.default_rng(DROPOUT_SEED) if dropout else None
        logits, cache = miiii.forward(params, task["x"], dropout=dropout, rng=rng)
        loss, _ = miiii.cross_entropy_forward(logits, task["y"], task["classes"], task["mask"])
        return loss, cache["hid"] > 0
    return f


@pytest.mark.parametrize("dropout", [0.0, 0.2])
@pytest.mark.parametrize("task_name, p, d, heads", CASES)
def test_loss_and_grads_finite_differences(task_name, p, d, heads, dropout):
    task, params = model_setup(task_name, p, d, heads)
    rng = np.random.default_rng(DROPOUT_SEED) if dropout else None
    loss, grads = miiii.loss_and_grads(params, task["x"], task["y"], task["classes"], task["mask"],
                                       dropout=dropout, rng=rng)
    f = loss_fn(task, dropout)
    assert loss == pytest.approx(f(params)[0], rel=1e-14, abs=0)
    if dropout:  # the masks really are on: the loss differs from the dropout-free one
        assert abs(loss - loss_fn(task, 0.0)(params)[0]) > 1e-3
    assert list(grads) == list(miiii.PARAM_NAMES)
    assert_grads_match(f, params, grads, np.random.default_rng(5))


def test_loss_and_grads_follow_float32():
    """float32 params give float32 gradients (the training dtype), close to the float64 ones."""
    task, params = model_setup("miiii", 13, 8, 2)
    _, g64 = miiii.loss_and_grads(params, task["x"], task["y"], task["classes"], task["mask"])
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    _, g32 = miiii.loss_and_grads(p32, task["x"], task["y"], task["classes"], task["mask"])
    for name in miiii.PARAM_NAMES:
        assert g32[name].dtype == np.float32, name
        err = np.abs(g32[name] - g64[name]).max() / np.abs(g64[name]).max()
        assert err < 1e-4, f"{name}: float32 vs float64 gradient differ by {err:.1e}"


# ------------------------------------------------------------------ the CuPy-style code path

class NumpyLookalike(types.ModuleType):
    """A module that is not numpy (so `xp is np` is False) but forwards every attribute to numpy.

    Its own __name__ keeps head_layout's cache (keyed by xp.__name__) apart from numpy's.
    """

    def __getattr__(self, name):
        return getattr(np, name)


def per_head(kind, a, classes):
    """Plain slicing loop: the expected result of segment_reduce."""
    offsets = np.concatenate([[0], np.cumsum(classes)[:-1]])
    red = np.max if kind == "max" else np.sum
    return np.stack([red(a[:, o:o + q], axis=1) for o, q in zip(offsets, classes)], axis=1)


@pytest.mark.parametrize("classes", [[2, 3, 5, 7, 11], [13], [2, 2, 2], [5, 2, 7]])
@pytest.mark.parametrize("kind", ["max", "sum"])
def test_segment_reduce_padded_branch_matches_reduceat(monkeypatch, classes, kind):
    a = np.random.default_rng(2).standard_normal((9, sum(classes))) - 3.0  # negatives: pads must not win max
    numpy_result = miiii.segment_reduce(kind, a, miiii.head_layout(classes))
    monkeypatch.setattr(miiii, "xp", NumpyLookalike("numpy_lookalike"))
    assert miiii.xp is not np  # the padded-gather branch is the one taken below
    padded_result = miiii.segment_reduce(kind, a, miiii.head_layout(classes))
    want = per_head(kind, a, classes)
    np.testing.assert_allclose(numpy_result, want, rtol=1e-14)
    np.testing.assert_allclose(padded_result, want, rtol=1e-14)


@pytest.mark.parametrize("task_name, p, d, heads", CASES)
def test_loss_and_grads_same_on_padded_branch(monkeypatch, task_name, p, d, heads):
    """The whole loss and gradient through the non-numpy branches equals the numpy run."""
    task, params = model_setup(task_name, p, d, heads)
    args = (task["x"], task["y"], task["classes"], task["mask"])
    loss_np, grads_np = miiii.loss_and_grads(params, *args)
    monkeypatch.setattr(miiii, "xp", NumpyLookalike("numpy_lookalike"))
    loss_px, grads_px = miiii.loss_and_grads(params, *args)
    assert loss_px == pytest.approx(loss_np, rel=1e-13)
    for name in miiii.PARAM_NAMES:  # only summation order differs: float64 rounding, 1e-12 is ample
        np.testing.assert_allclose(grads_px[name], grads_np[name], rtol=1e-12,
                                   atol=1e-12 * np.abs(grads_np[name]).max(), err_msg=name)
