"""The row blocks of the elementwise work (miiii.over_rows): the same numbers whatever the block size,
down to the last bit."""
import numpy as np
import pytest

import miiii


def step_numbers(block, whole_below, dtype, task="miiii", p=23, d=32):
    """Loss, gradients and evaluation of one step at the given blocking, with dropout on."""
    old = miiii.ROW_BLOCK, miiii.WHOLE_BELOW
    try:
        miiii.ROW_BLOCK, miiii.WHOLE_BELOW = block, whole_below
        t = miiii.make_task(task, p, 0.5, 0)
        params = {k: v.astype(dtype) for k, v in miiii.init_params(p, d, 4, t["classes"], seed=1).items()}
        x, y = t["x"][t["train"]], t["y"][t["train"]]
        loss, grads = miiii.loss_and_grads(params, x, y, t["classes"], t["mask"], dropout=0.1,
                                           rng=miiii.dropout_rng(0, 7))
        (tl, ta, cs, cg), _ = miiii.evaluate(params, t["x"], t["y"], t["classes"], (t["train"], t["valid"]), True)
        return loss, grads, (tl, ta, cs, cg)
    finally:
        miiii.ROW_BLOCK, miiii.WHOLE_BELOW = old


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("task", ["miiii", "masked", "nanda"])
def test_blocks_change_no_bit(dtype, task):
    whole = step_numbers(128, 10 ** 6, dtype, task)  # one pass over every row, as without blocking
    for block in (7, 64, 100):  # uneven last blocks
        loss, grads, ev = step_numbers(block, 0, dtype, task)
        assert loss == whole[0]
        for name in grads:
            assert grads[name].tobytes() == whole[1][name].tobytes(), (block, name)
        for a, b in zip(ev, whole[2]):
            assert a.tobytes() == b.tobytes()


def test_blocks_cover_every_row_once():
    seen = []
    old = miiii.WHOLE_BELOW
    try:
        miiii.WHOLE_BELOW = 0
        miiii.over_rows(3 * miiii.ROW_BLOCK + 5, lambda r: seen.extend(range(r.start, r.stop)))
    finally:
        miiii.WHOLE_BELOW = old
    assert seen == list(range(3 * miiii.ROW_BLOCK + 5))
