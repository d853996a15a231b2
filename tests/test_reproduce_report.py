"""experiments/: the report helpers that turn run numbers into RESULTS.md's words (report.py), the
registry's groups (registry.py), and the command line's answers that need no cluster (reproduce.py)."""
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))

import registry  # noqa: E402
import report  # noqa: E402
import reproduce  # noqa: E402


def test_mean_sd_counts_the_missing():
    assert report.mean_sd([100, 200, None]) == "150 ± 71 (n = 2; not reached in 1)"
    assert report.mean_sd([None, None]) == "not reached (2 of 2)"
    assert report.mean_sd([7]) == "7 (n = 1)"


def test_speed_line_words_follow_the_ratio():
    line = report.speed_line({"ema": ([1000, 1000], 2), "fast": ([400, 600], 2), "same": ([950], 2),
                              "slow": ([2000, 2400], 2), "never": ([], 3)})
    assert "`ema` itself got there in 2 of 2 seeds" in line
    assert "`fast` 2.00x, faster" in line  # 1000 / 500
    assert "`same` 1.05x, about as fast, 1 of 2 seeds short" in line
    assert "`slow` 0.45x, slower" in line  # 1000 / 2200
    assert "`never` never (3 of 3 seeds short)" in line
    assert "no speed ratios" in report.speed_line({"ema": ([], 3), "ma": ([500], 3)})
    assert report.speed_line({"ema": ([10], 1)}, 0.95).startswith("Speed to >= 0.95 against `ema`")


def test_a_filter_comparison_is_one_command_with_its_baselines():
    for group, task in (("filters", "nanda"), ("filters-miiii", "miiii")):
        names = set(registry.select(group))
        for s in registry.SEEDS:  # none, ema and the four others, every seed
            assert {f"{task}-s{s}", f"{task}-nofilter-s{s}"} <= names
            assert {f"{task}-{k}-s{s}" for k in registry.FILTER_VARIANTS} <= names
        assert not any(n.startswith("sweep-") or n.startswith("masked") for n in names)
    assert set(registry.select(None)) == set(registry.REGISTRY)


def test_nanda_order_needs_every_start_in_sequence():
    ph = {"memorisation": 20, "circuit_formation": 150, "cleanup": 225}
    assert report.in_nanda_order(ph, 900)
    assert not report.in_nanda_order(ph, 200)  # grokked before clean-up started
    assert not report.in_nanda_order({**ph, "cleanup": None}, 900)
    assert not report.in_nanda_order(ph, None)
    assert not report.in_nanda_order({**ph, "circuit_formation": 10}, 900)


def test_verdict_words_come_from_one_rule():
    assert [report.graded(True), report.graded(False, True), report.graded(False)] == \
        ["reproduced", "partly", "not reproduced"]
    assert all(callable(judge) for _, _, judge in report.CLAIMS) and len(report.CLAIMS) == 12
    assert report.claims_section({}) == (report.claims_section({})[0], [])  # no runs: no rows, no verdicts


def cli(*args, env=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "reproduce.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)


def test_help_and_docstring_name_every_group_and_help_says_the_cost():
    out = cli("--help").stdout
    for group in registry.GROUPS:
        assert group in reproduce.__doc__, group
        count = sum(g == group for g, _ in registry.REGISTRY.values())
        assert f"{group}{count}" in "".join(out.split()), group  # help wraps lines, at hyphens too
    assert "machine-hours" in out or "Every run of the registry is present" in out


def test_commands_say_nothing_is_missing_when_nothing_is(tmp_path):
    done = cli("--commands", "--only", "claims")  # the claims runs are committed
    assert (done.returncode, done.stdout) == (0, f"nothing missing: {len(registry.select('claims'))} runs present\n")
    fresh = cli("--commands", "--names", "nanda-s0", "--runs-dir", str(tmp_path))
    assert fresh.stdout.split() == ["python", "miiii.py", *registry.REGISTRY["nanda-s0"][1], "--out",
                                    str(tmp_path / "nanda-s0"), "--threads", "1", "--quiet"]


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    for args, words in ((["--only", "nope"], "no group named 'nope'"), (["--names", "nope"], "no run named 'nope'"),
                        (["--names", "nanda-s0", "--runs-dir", str(tmp_path), "--scheduler", "nonsense"],
                         "cannot reach the Dask scheduler at nonsense")):
        r = cli(*args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and words in r.stderr, (args, r.stderr)
    # without Dask: the same, with how to install it (an import of distributed that fails)
    block = "import os, sys, runpy; sys.modules['distributed'] = None; sys.argv = sys.argv[1:]; " \
            "sys.path.insert(0, os.path.dirname(sys.argv[0])); runpy.run_path(sys.argv[0], run_name='__main__')"
    r = subprocess.run([sys.executable, "-c", block, os.path.join(ROOT, "experiments", "reproduce.py"), "--names",
                        "nanda-s0", "--runs-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "pip install -e .[sweep]" in r.stderr, r.stderr


# ---------------------------------------------------------------------------- hand-made runs for the verdicts
def hand_run(name, moduli, epochs, valid_acc, task="miiii", p=61, total=None, **config):
    """A loaded run as report.load returns it, from a hand-written (L, T) validation accuracy."""
    va = np.asarray(valid_acc, dtype=float)
    return {"name": name, "partial": False, "config": {"task": task, "p": p, "moduli": list(moduli), "epochs": total
            or int(epochs[-1]), "lamb": 2.0, **config},
            "metrics": {"epochs": np.asarray(epochs), "valid_acc": va, "train_acc": np.ones_like(va)}}


def test_p_mod_q_kinds_at_the_two_primes():
    assert report.easy_primes(61) == [2, 3, 5, 31] and report.easy_primes(113) == [2, 3, 7, 19]
    assert [report.p_mod_q_kind(113, q) for q in (7, 19, 5)] == ["+1", "-1", "other"]  # 112 = 16 * 7, 114 = 6 * 19


def test_a_task_that_reached_the_level_and_fell_back_is_named():
    r = hand_run("miiii-nodropout-s0", (2, 3, 5), [0, 100, 200, 300, 400],
                 [[.5, .3, .2], [.99, .96, .96], [1, .99, .97], [1, 1, .93], [1, 1, .91]])
    assert report.transient(r) == [(5, 100, 200, 0.91)]
    ours, _, verdict, _ = report.without_dropout_only_2_3({"miiii-nodropout-s0": r})
    assert verdict == "reproduced" and "q = 5 (>= 0.95 from 100 to 200, 0.91 at the end)" in ours


def test_masked_is_judged_per_seed_and_in_two_parts():
    E = [0, 1000, 2000, 3000, 4000, 5000, 6000]
    def grokking(at):  # each task stays >= 0.95 from its epoch in `at`
        return [[1.0 if e >= a else 0.5 for a in at] for e in E]
    moduli = (2, 3, 5, 7, 11, 13, 17, 19, 23)
    runs = {"miiii-s0": hand_run("miiii-s0", moduli, E, grokking([0] * 4 + [1000, 1000, 2000, 2000, 2000])),
            "miiii-s1": hand_run("miiii-s1", moduli, E, grokking([0] * 4 + [1000, 1000, 2000, 2000, 2000])),
            "masked-s0": hand_run("masked-s0", moduli, E, grokking([0] * 4 + [1000, 1000, 1000, 1000, 2000])),
            "masked-s1": hand_run("masked-s1", moduli, E, grokking([0] * 4 + [2000, 1000, 1000, 1000, 6000]))}
    ours, _, verdict, why = report.masked_not_delayed(runs)  # seed 0: 1.0x, seed 1: 3.0x
    assert verdict == "partly" and "1 of 2 seeds" in why and "2,000 vs 2,000 (1.00x); 6,000 vs 2,000 (3.00x)" in ours
    ours, _, verdict, why = report.masked_11_13_17_19_first(runs)
    assert verdict == "reproduced" and "2 of 2 seeds" in why


def test_the_speed_up_of_a_filter_that_never_gets_there_is_a_lower_bound():
    text, faster = report.speedup([2000, 2200], {"epochs": [None, None], "length": 12000})
    assert text.startswith("> 5.7x") and faster
    assert report.speedup([1000], {"epochs": [1100], "length": 10000}) == ("1.1x", False)


def test_the_paper_scale_section_judges_the_campaign_runs_by_the_same_rules():
    E = [0, 100, 1000, 65536]
    moduli = (2, 3, 5, 7, 11)
    va = [[.5, .3, .2, .1, .1], [1, .96, .3, .96, .1], [1, 1, .3, 1, .97], [1, 1, .99, 1, 1]]
    runs = {"paper-miiii-s0": hand_run("paper-miiii-s0", moduli, E, va, p=113),
            "miiii-s0": hand_run("miiii-s0", moduli, E, va)}  # a CPU-scale run is not a campaign run
    paper = report.paper_scale_runs(runs)
    assert list(paper) == ["miiii-s0"] and paper["miiii-s0"]["config"]["p"] == 113
    lines, verdicts = report.paper_scale_section(runs)
    text = "\n".join(lines)
    assert ("reproduced", "T_miiii groks on all tasks with GrokFast") in verdicts
    assert "--out results/runs/paper-miiii-s0" in text  # the command shown is the campaign run's
    # the order: by the epoch from which each task stays >= 0.95, with p mod q at p = 113
    assert report.order_rows(runs["paper-miiii-s0"]) == [
        "| 2 | +1 | 100 | 100 | 1.000 |", "| 3 | -1 | 100 | 1,000 | 1.000 |", "| 7 | +1 | 100 | 1,000 | 1.000 |",
        "| 11 | other | 1,000 | 65,536 | 1.000 |", "| 5 | other | 65,536 | 65,536 | 0.990 |"]
    assert "Waiting for their runs:" in text and "without GrokFast (lambda 0) it does not converge" in text
