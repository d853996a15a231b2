"""The report helpers of experiments/reproduce.py that turn run numbers into RESULTS.md's words, and
the runner's view of the training processes on the machine."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))

import reproduce  # noqa: E402


def test_mean_sd_counts_the_missing():
    assert reproduce.mean_sd([100, 200, None]) == "150 ± 71 (n = 2; not reached in 1)"
    assert reproduce.mean_sd([None, None]) == "not reached (2 of 2)"
    assert reproduce.mean_sd([7]) == "7 (n = 1)"


def test_speed_line_words_follow_the_ratio():
    line = reproduce.speed_line({"ema": ([1000, 1000], 2), "fast": ([400, 600], 2), "same": ([950], 2),
                                 "slow": ([2000, 2400], 2), "never": ([], 3)})
    assert "`ema` itself got there in 2 of 2 seeds" in line
    assert "`fast` 2.00x, faster" in line  # 1000 / 500
    assert "`same` 1.05x, about as fast, 1 of 2 seeds short" in line
    assert "`slow` 0.45x, slower" in line  # 1000 / 2200
    assert "`never` never (3 of 3 seeds short)" in line
    assert "no speed ratios" in reproduce.speed_line({"ema": ([], 3), "ma": ([500], 3)})
    assert reproduce.speed_line({"ema": ([10], 1)}, 0.95).startswith("Speed to >= 0.95 against `ema`")


def test_a_filter_comparison_is_one_command_with_its_baselines():
    for group, task in (("filters", "nanda"), ("filters-miiii", "miiii")):
        names = set(reproduce.select(group))
        for s in reproduce.SEEDS:  # none, ema and the four others, every seed
            assert {f"{task}-s{s}", f"{task}-nofilter-s{s}"} <= names
            assert {f"{task}-{k}-s{s}" for k in reproduce.FILTER_VARIANTS} <= names
        assert not any(n.startswith("sweep-") or n.startswith("masked") for n in names)
    assert set(reproduce.select(None)) == set(reproduce.all_runs())


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc (Linux)")
def test_the_runner_sees_training_processes_started_by_others(tmp_path):
    import subprocess
    fake = tmp_path / "miiii.py"
    fake.write_text("import time\ntime.sleep(30)\n")
    out = os.path.join(reproduce.RUNS, "someone-elses-run")
    proc = subprocess.Popen([sys.executable, str(fake), "--resume", out, "--epochs", "10"])
    try:
        import time
        for _ in range(50):  # until the child has exec'd
            if any(str(fake) in a for a in sum(reproduce.training_processes(), [])):
                break
            time.sleep(0.05)
        seen = reproduce.training_processes()
        assert any(str(fake) in args for args in seen)
        assert "someone-elses-run" in reproduce.busy_elsewhere(seen)
        assert reproduce.busy_elsewhere([["python", "miiii.py", "--out", "/elsewhere/run"]]) == set()
    finally:
        proc.kill()
        proc.wait()


def test_nanda_order_needs_every_start_in_sequence():
    ph = {"memorisation": 20, "circuit_formation": 150, "cleanup": 225}
    assert reproduce.in_nanda_order(ph, 900)
    assert not reproduce.in_nanda_order(ph, 200)  # grokked before clean-up started
    assert not reproduce.in_nanda_order({**ph, "cleanup": None}, 900)
    assert not reproduce.in_nanda_order(ph, None)
    assert not reproduce.in_nanda_order({**ph, "circuit_formation": 10}, 900)
