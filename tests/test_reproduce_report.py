"""experiments/: the report helpers that turn run numbers into RESULTS.md's words (report.py), the
registry's groups (registry.py), and the command line's answers that need no cluster (reproduce.py)."""
import os
import subprocess
import sys

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
    assert all(callable(judge) for _, _, judge in report.CLAIMS) and len(report.CLAIMS) == 11
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
