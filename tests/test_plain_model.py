"""plain_model.py, the textbook model, against the optimised miiii.py and against finite differences.

All in float64, on T_miiii, T_masked (loss weights 0 on q = 2, 3, 5, 7) and T_nanda at tiny sizes.

Plain vs optimised: logits, the neurons and attention weights at '=', the loss and every parameter's
gradient, without dropout and with the same dropout masks. Tolerance SAME = 1e-12, as
max |plain - optimised| / max |optimised| per array. Both compute the same sums in float64 in a
different order (gathered token tables and one-hot scatter-adds against per-sequence einsums; a
log1p of the other classes' mass against a plain log-softmax), so they differ by rounding: ~1e-16
per operation through a dozen dependent ones and sums of up to N = 169 terms, 1e-15 .. 1e-14
(seen: <= 2e-15). A wrong term (a missing residual, a head's scale, a position read off by one, a
dropout mask applied in the wrong place) moves results by 1e-3 or more.

Plain vs finite differences: see test_plain_model_agrees_with_finite_differences.
"""
import os
import sys

import numpy as np
import pytest

import miiii
import plain_model

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for test_gradients' helper
from test_gradients import H, TOL, assert_grads_match  # noqa: E402

CASES = [("miiii", 13, 16, 2), ("masked", 13, 8, 2), ("nanda", 11, 8, 2)]  # (task, p, d, heads)
SAME = 1e-12  # plain vs optimised, max-normalised; see the module docstring
RATE = 0.2  # dropout rate: high enough that every sample has dropped entries


def tiny_case(task_name, p, d, heads):
    """A task and its float64 parameters from miiii's own initialisation (the same dict both models take)."""
    task = miiii.make_task(task_name, p, 0.5, seed=0)
    params = miiii.init_params(p, d, heads, task["classes"], seed=1)
    return task, {name: w.astype(np.float64) for name, w in params.items()}


def assert_same(plain, optimised, what):
    assert plain.shape == optimised.shape, f"{what}: shape {plain.shape} != {optimised.shape}"
    err = np.abs(plain - optimised).max() / np.abs(optimised).max()
    assert err < SAME, f"{what}: plain and optimised differ by {err:.1e} (max-normalised)"


def assert_same_loss_and_grads(plain, optimised, what):
    (plain_loss, plain_grads), (loss, grads) = plain, optimised
    assert plain_loss == pytest.approx(loss, rel=SAME, abs=0), f"{what}: loss"
    assert sorted(plain_grads) == sorted(miiii.PARAM_NAMES)
    for name in miiii.PARAM_NAMES:
        assert_same(plain_grads[name], grads[name], f"{what}: gradient of {name}")


def whole_stream(mask_at_eq, rng):
    """miiii's (N, d) mask at '=' -> an (N, 3, d) mask for the plain model's whole residual stream.

    Positions 0 and 1 get masks of their own from `rng`: in a one-block model they never reach the
    logits, so the results must not change (that is the first of miiii.py's shortcuts, tested).
    """
    others = (rng.random((mask_at_eq.shape[0], 2, mask_at_eq.shape[1])) >= RATE) / (1.0 - RATE)
    return np.concatenate([others, mask_at_eq[:, None, :]], axis=1)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_plain_equals_optimised_without_dropout(case):
    task, params = tiny_case(*case)
    x, y, classes, mask = task["x"], task["y"], task["classes"], task["mask"]
    logits, cache = miiii.forward(params, x)
    plain_logits, plain_cache = plain_model.forward(params, x)
    assert_same(plain_logits, logits, "logits")
    assert_same(plain_cache["hid"][:, 2], cache["hid"], "neurons at '='")
    # plain: (N, h, query, key); miiii: the query '=' only, (N, key, h)
    assert_same(plain_cache["att"][:, :, 2].transpose(0, 2, 1), cache["att"], "attention from '='")
    assert_same_loss_and_grads(plain_model.loss_and_grads(params, x, y, classes, mask),
                               miiii.loss_and_grads(params, x, y, classes, mask), "no dropout")


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_plain_equals_optimised_with_the_same_dropout_masks(case):
    task, params = tiny_case(*case)
    x, y, classes, mask = task["x"], task["y"], task["classes"], task["mask"]
    # the optimised model one step at a time, so that its cache hands over the masks it drew
    logits, cache = miiii.forward(params, x, dropout=RATE, rng=miiii.dropout_rng(seed=0, epoch=3))
    loss, ce_cache = miiii.cross_entropy_forward(logits, y, classes, mask)
    grads = miiii.backward(miiii.cross_entropy_backward(ce_cache), cache)
    drop1, drop2 = cache["drop1"], cache["drop2"]  # (N, d) each: 0 or 1 / (1 - RATE)
    assert drop1.shape == drop2.shape == (len(x), params["W_in"].shape[0])
    assert (drop1 == 0).any() and (drop2 == 0).any() and not np.array_equal(drop1, drop2)
    # loss_and_grads with a generator seeded alike draws the same masks: the very same numbers
    again_loss, again_grads = miiii.loss_and_grads(params, x, y, classes, mask, dropout=RATE,
                                                   rng=miiii.dropout_rng(seed=0, epoch=3))
    assert again_loss == loss and all(np.array_equal(again_grads[k], grads[k]) for k in grads)

    rng = np.random.default_rng(11)
    masks = (whole_stream(drop1, rng), whole_stream(drop2, rng))
    plain_logits, _ = plain_model.forward(params, x, masks)
    assert_same(plain_logits, logits, "logits with dropout")
    plain = plain_model.loss_and_grads(params, x, y, classes, mask, masks)
    assert_same_loss_and_grads(plain, (loss, grads), "dropout")
    no_dropout_loss, _ = plain_model.loss_and_grads(params, x, y, classes, mask)
    assert abs(plain[0] - no_dropout_loss) > 1e-3  # the masks really changed something


@pytest.mark.parametrize("dropout", [False, True], ids=["no-dropout", "dropout"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_plain_model_agrees_with_finite_differences(case, dropout):
    """plain_model.loss_and_grads against central differences of its own loss, every parameter.

    Step H = 1e-6 in float64 (test_gradients' helper: every entry of arrays up to 64 entries, 30
    random ones of larger arrays). Central differences have truncation error H^2 f''' / 6 ~ 1e-12
    and rounding error ~ eps |f| / H = 2.2e-16 * (1.2 .. 2.3) / 1e-6 <= 5e-10 in the loss's units.
    The error is divided by the largest gradient entry of the array, >= 1.4e-2 in these cases, which
    lifts the rounding term to <= 4e-8 (seen: <= 1.1e-8). TOL = 1e-6 leaves a margin of 25x over that
    bound; a wrong term in a backward pass gives 1e-2 .. 1. The ReLU kink is the only place the loss is not smooth: the
    helper asserts that no perturbation flips a neuron at '=' (the only position read; a flip at
    positions 0 or 1 cannot change the loss).
    """
    task, params = tiny_case(*case)
    x, y, classes, mask = task["x"], task["y"], task["classes"], task["mask"]
    rng = np.random.default_rng(5)
    shape = (len(x), 3, params["W_in"].shape[0])
    masks = tuple((rng.random(shape) >= RATE) / (1.0 - RATE) for _ in range(2)) if dropout else (None, None)
    loss, grads = plain_model.loss_and_grads(params, x, y, classes, mask, masks)

    def loss_and_relu_pattern(params):  # fixed masks: a smooth function of params between kinks
        logits, cache = plain_model.forward(params, x, masks)
        return plain_model.cross_entropy_forward(logits, y, classes, mask)[0], cache["hid"][:, 2] > 0

    assert loss_and_relu_pattern(params)[0] == loss
    assert H == 1e-6 and TOL == 1e-6  # the numbers the docstring reasons with
    assert_grads_match(loss_and_relu_pattern, params, grads, np.random.default_rng(6))
