"""The row blocks of the elementwise work (miiii.over_rows): the same numbers whatever the block size
and the number of row threads, down to the last bit."""
import numpy as np
import pytest

import miiii


def step_numbers(block, threads, dtype, task="miiii", p=23, d=32):
    """Loss, gradients and evaluation of one step at the given blocking, with dropout on."""
    old = miiii.ROW_BLOCK
    try:
        miiii.ROW_BLOCK = block
        miiii.set_row_threads(threads)
        t = miiii.make_task(task, p, 0.5, 0)
        params = {k: v.astype(dtype) for k, v in miiii.init_params(p, d, 4, t["classes"], seed=1).items()}
        x, y = t["x"][t["train"]], t["y"][t["train"]]
        loss, grads = miiii.loss_and_grads(params, x, y, t["classes"], t["mask"], dropout=0.1,
                                           rng=miiii.dropout_rng(0, 7))
        (tl, ta, cs, cg), _ = miiii.evaluate(params, t["x"], t["y"], t["classes"], (t["train"], t["valid"]), True)
        return loss, grads, (tl, ta, cs, cg)
    finally:
        miiii.ROW_BLOCK = old
        miiii.set_row_threads(1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("task", ["miiii", "masked", "nanda"])
def test_blocks_and_threads_change_no_bit(dtype, task):
    whole = step_numbers(10 ** 6, 1, dtype, task)  # one block: every array at once, as without blocking
    for block, threads in ((7, 1), (64, 2), (100, 3)):  # uneven last blocks, more threads than cores
        loss, grads, ev = step_numbers(block, threads, dtype, task)
        assert loss == whole[0]
        for name in grads:
            assert grads[name].tobytes() == whole[1][name].tobytes(), (block, threads, name)
        for a, b in zip(ev, whole[2]):
            assert a.tobytes() == b.tobytes()


def test_an_error_in_a_block_reaches_the_caller():
    miiii.set_row_threads(2)
    try:
        def work(rows):
            if rows.start >= miiii.ROW_BLOCK:
                raise ValueError("block failed")
        with pytest.raises(ValueError, match="block failed"):
            miiii.over_rows(3 * miiii.ROW_BLOCK, work)
    finally:
        miiii.set_row_threads(1)
