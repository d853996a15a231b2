"""The campaign's progress table (experiments/campaign.py): what each run has reached, and the tasks that stay
>= 0.95 in the order they got there, read from hand-made run directories."""
import os
import sys

import numpy as np

import rundir

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments"))
import campaign  # noqa: E402


def hand_run(run_dir, moduli, valid_acc):
    """A finished run directory with only what the table reads: config.json and metrics.npz."""
    os.makedirs(run_dir)
    va = np.asarray(valid_acc, dtype=np.float32)  # (L, T)
    rundir.save_json(os.path.join(run_dir, rundir.CONFIG), {"status": "complete", "moduli": moduli})
    rundir.save_npz(os.path.join(run_dir, rundir.METRICS),
                    {"epochs": np.arange(len(va)) * 10, "valid_acc": va, "train_acc": np.ones_like(va)})


def test_the_table_lists_the_tasks_staying_above_095_in_the_order_they_got_there(tmp_path):
    # epochs 0, 10, 20, 30. q = 2 stays from 10; q = 3 is up at 10, falls at 20, stays from 30; q = 5 stays
    # from 20; q = 7 never gets there. So the order is 2, 5, 3, and q = 3's first visit does not count.
    hand_run(tmp_path / "paper-miiii-s0", [2, 3, 5, 7], [[0.5, 0.3, 0.2, 0.1],
                                                          [0.96, 0.97, 0.2, 0.1],
                                                          [0.99, 0.90, 0.95, 0.2],
                                                          [1.0, 0.98, 0.96, 0.3]])
    hand_run(tmp_path / "paper-miiii-nofilter-s0", [2, 3], [[0.1, 0.2], [0.95, 0.99]])  # all: no list
    rows = {row.split(" | ")[0]: row.split(" | ") for row in campaign.progress_rows(str(tmp_path))}
    assert rows["| `paper-miiii-s0`"][4] == "0.300 / 0.810 (3 of 4: q = 2, 5, 3)"
    assert rows["| `paper-miiii-s0`"][2:4] == ["complete", "30 / 65,536"]
    assert rows["| `paper-miiii-nofilter-s0`"][4] == "0.950 / 0.970 (2 of 2)"
    assert rows["| `paper-miiii-s1`"][2:5] == ["not started", "0 / 65,536", "-"]
