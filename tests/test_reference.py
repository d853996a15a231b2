"""The model against the independent reference vectors (tests/data/vectors.npz, float64).

For each case (miiii, nanda, masked, divisible): logits, neurons, loss, every gradient, and five
optimiser steps (GrokFast-EMA then AdamW) from the stored parameters, in float64 and in float32.

Tolerances, as max |ours - reference| / max |reference| per array:
- float64: 1e-10. The reference agrees with a second implementation to 1e-14; ours differs only in
  the order of float64 operations (gathered tables, einsum), ~1e-16 per operation through a dozen
  dependent ones, so 1e-15 .. 1e-14 is expected (seen: < 1e-15). 1e-10 keeps a wide margin while a
  wrong term (a missing residual, a scale, a transposed head) shows up at 1e-3 or more.
- float32: 2e-5. float32 rounding is 6e-8 per operation; through the same depth, sums of d = 16 and
  4d = 64 terms, errors of a few 1e-7 are expected (seen: <= 6e-7). Five Adam steps stay close because
  the reference gradients are far from zero in these cases (Adam divides by |g|).

The vectors live in the repository, tests/data/vectors.npz; tests/data/README.md says how they were made.
"""
import math
from pathlib import Path

import numpy as np
import pytest

import grokfast
import miiii

CASES = ("miiii", "nanda", "masked", "divisible")
TOL = {np.float64: 1e-10, np.float32: 2e-5}
STEP = dict(lr=1e-3, b1=0.9, b2=0.98, eps=1e-8, wd=0.5)  # tests/data/README.md: the five steps
EMA = dict(alpha=0.98, lamb=0.5)


REFERENCE = Path(__file__).resolve().parent / "data" / "vectors.npz"


@pytest.fixture(scope="module")
def ref():
    with np.load(REFERENCE) as z:
        return {k: z[k] for k in z.files}


def load_case(ref, case, dtype):
    params = {name: ref[f"{case}/param/{name}"].astype(dtype) for name in miiii.PARAM_NAMES}
    classes = [int(q) for q in ref[f"{case}/moduli"]]
    return params, ref[f"{case}/x"], ref[f"{case}/y"], classes, ref[f"{case}/mask"]


def assert_close(mine, want, dtype, what):
    assert mine.shape == want.shape, f"{what}: shape {mine.shape} != {want.shape}"
    err = np.abs(np.asarray(mine, dtype=np.float64) - want).max() / np.abs(want).max()
    assert err < TOL[dtype], f"{what}: max-normalised error {err:.2e} > {TOL[dtype]:.0e}"


DTYPES = [np.float64, np.float32]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("case", CASES)
def test_forward_matches_reference(ref, case, dtype):
    params, x, y, classes, mask = load_case(ref, case, dtype)
    logits, cache = miiii.forward(params, x)
    assert logits.dtype == dtype
    assert_close(logits, ref[f"{case}/logits"], dtype, f"{case} logits")
    assert_close(cache["hid"], ref[f"{case}/neurons"], dtype, f"{case} neurons")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("case", CASES)
def test_loss_and_grads_match_reference(ref, case, dtype):
    params, x, y, classes, mask = load_case(ref, case, dtype)
    loss, grads = miiii.loss_and_grads(params, x, y, classes, mask)
    want = float(ref[f"{case}/loss"])
    assert abs(loss - want) / abs(want) < TOL[dtype], f"{case} loss {loss} != {want}"
    assert set(grads) == set(miiii.PARAM_NAMES)
    for name in miiii.PARAM_NAMES:
        assert grads[name].dtype == dtype, name
        assert_close(grads[name], ref[f"{case}/grad/{name}"], dtype, f"{case} grad {name}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("case", CASES)
def test_five_optimiser_steps_match_reference(ref, case, dtype):
    """Full batch, no dropout: GrokFast-EMA (EMA from zero) then AdamW, five times."""
    params, x, y, classes, mask = load_case(ref, case, dtype)
    opt = grokfast.adamw_init(params)
    filt = grokfast.init_filter("ema", params)
    losses = []
    for _ in range(5):
        loss, grads = miiii.loss_and_grads(params, x, y, classes, mask)
        losses.append(loss)
        grokfast.apply_filter("ema", grads, filt, **EMA)
        grokfast.adamw_step(params, grads, opt, **STEP)
    assert_close(np.array(losses), ref[f"{case}/losses5"], dtype, f"{case} losses5")
    for name in miiii.PARAM_NAMES:
        assert params[name].dtype == dtype, name
        assert_close(params[name], ref[f"{case}/after5/{name}"], dtype, f"{case} after5 {name}")


def test_reference_cases_are_what_the_readme_says(ref):
    """Guards the fixture itself: the cases hold the tasks we think they do."""
    assert [int(q) for q in ref["miiii/moduli"]] == [2, 3, 5, 7, 11]
    assert [int(q) for q in ref["nanda/moduli"]] == [11]
    assert [int(q) for q in ref["masked/moduli"]] == [2, 3, 5, 7, 11, 13]
    assert ref["masked/mask"].tolist() == [0, 0, 0, 0, 1, 1]
    assert [int(q) for q in ref["divisible/moduli"]] == [2] * 5
    for case in CASES:
        assert ref[f"{case}/x"].shape == (40, 3)


@pytest.mark.parametrize("case", CASES)
def test_evaluate_matches_reference_logits(ref, case):
    """Per-task loss (CE / ln q) and accuracy (argmax per head) from the reference logits, by hand."""
    params, x, y, classes, _ = load_case(ref, case, np.float64)
    logits = ref[f"{case}/logits"]
    halves = (np.arange(0, 40, 2), np.arange(1, 40, 2))
    result = miiii.evaluate(params, x, y, classes, halves)
    for idx, (loss, acc) in zip(halves, result):
        off = 0
        for t, q in enumerate(classes):
            z = logits[idx, off:off + q]
            logp = z - z.max(1, keepdims=True)
            logp -= np.log(np.exp(logp).sum(1, keepdims=True))
            want_loss = -logp[np.arange(len(idx)), y[idx, t]].mean() / math.log(q)
            want_acc = (z.argmax(1) == y[idx, t]).mean()
            assert loss[t] == pytest.approx(want_loss, rel=1e-10), f"{case} task {t} loss"
            assert acc[t] == want_acc, f"{case} task {t} accuracy"
            off += q


# ------------------------------------------------------------------ the loss, independently

def plain_loss(logits, y, classes, mask):
    """docs/definitions.md §3 per task: sum_t m_t CE_t / ln q_t / sum_t m_t, log-softmax by hand."""
    total, off = 0.0, 0
    for t, q in enumerate(classes):
        z = logits[:, off:off + q].astype(np.float64)
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        ce = -logp[np.arange(len(y)), y[:, t]].mean()
        total += mask[t] * ce / math.log(q)
        off += q
    return total / sum(mask)


@pytest.mark.parametrize("classes, mask", [([2, 3, 5, 7, 11], [1] * 5), ([2, 3, 5, 7, 11, 13], [0, 0, 0, 0, 1, 1]),
                                           ([2, 2, 2], [1, 1, 1]), ([19], [1])])
def test_loss_is_spec_formula(classes, mask):
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((25, sum(classes))) * 4
    y = np.stack([rng.integers(0, q, 25) for q in classes], axis=1)
    loss, _ = miiii.cross_entropy_forward(logits, y, classes, np.array(mask, dtype=np.float64))
    assert loss == pytest.approx(plain_loss(logits, y, classes, mask), rel=1e-13)


@pytest.mark.parametrize("classes", [[2, 3, 5, 7, 11], [2, 2], [113]])
def test_loss_is_one_at_chance(classes):
    """Uniform logits: CE_t = ln q_t, so every task and the loss sit at exactly 1 (the ln q division)."""
    y = np.zeros((4, len(classes)), dtype=np.int64)
    loss, cache = miiii.cross_entropy_forward(np.zeros((4, sum(classes))), y, classes)
    assert loss == pytest.approx(1.0, rel=1e-14)
    np.testing.assert_allclose(cache["nll"], np.log(classes)[None, :].repeat(4, 0), rtol=1e-14)


def test_loss_is_stable_for_huge_float32_logits():
    """float64 log-softmax: confident float32 logits give a finite, tiny loss and finite gradients."""
    classes = [3, 5]
    y = np.array([[0, 4], [2, 1]])
    logits = np.full((2, 8), -3e4, dtype=np.float32)
    logits[0, 0], logits[0, 3 + 4], logits[1, 2], logits[1, 3 + 1] = 3e4, 3e4, 3e4, 3e4
    loss, cache = miiii.cross_entropy_forward(logits, y, classes)
    dlogits = miiii.cross_entropy_backward(cache)
    assert loss == 0.0 or 0 < loss < 1e-30
    assert dlogits.dtype == np.float32 and np.isfinite(dlogits).all()
    logits[0, 0], logits[0, 1] = -3e4, 3e4  # now confidently wrong: nll 6e4, large but finite
    loss, _ = miiii.cross_entropy_forward(logits, y, classes)
    assert np.isfinite(loss) and loss > 1e3
