"""Tests of the progress measures (Nanda et al. 2023, §5) in fft_analysis.py and their figure:
restricted / excluded loss on hand-built logits, the key waves, the schedule and the hook, the
weight norm, the phase rules, and the files the command line writes."""
import math
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import fft_analysis as fa  # noqa: E402
import fourier  # noqa: E402
import figures  # noqa: E402
import miiii  # noqa: E402
import rundir  # noqa: E402

P = 23


def nanda_logits(p, waves):
    """(p*p, p) logits in sample order: sum of A cos(2 pi k (x0 + x1 - c) / p) over (k, A) in waves."""
    n = np.arange(p * p)
    s = (n % p + n // p)[:, None] - np.arange(p)[None, :]  # (N, p): x0 + x1 - c
    return sum(a * np.cos(2 * np.pi * k * s / p) for k, a in waves)


def targets(p):
    n = np.arange(p * p)
    return (n % p + n // p) % p  # (N,)


def loss_by_hand(logits, y):
    """Mean -log softmax(logits)[y] / ln q, written out plainly."""
    q = logits.shape[1]
    total = 0.0
    for row, t in zip(logits, y):
        total += -(row[t] - math.log(sum(math.exp(v) for v in row)))
    return total / len(y) / math.log(q)


# ============================================================================ restriction, by hand
def test_restricted_loss_of_logits_made_of_the_key_waves_is_the_full_loss():
    logits, y = nanda_logits(P, [(3, 2.0), (7, 1.5)]), targets(P)
    train = np.arange(0, P * P, 2)
    full = loss_by_hand(logits, y)
    assert full < 0.6  # the two waves do answer the task: far from chance
    restricted, excluded = fa.restricted_and_excluded(logits, y, P, [(3, 3), (7, 7)], train)
    assert restricted == pytest.approx(full, rel=1e-9)
    assert excluded == pytest.approx(1.0, abs=1e-9)  # nothing left but the constant 0: chance
    np.testing.assert_allclose(fourier.restrict_logits(logits, P, [(3, 3), (7, 7)]), logits, atol=1e-9)
    # a mirrored spelling of the same waves, (p - k, p - k), is the same projection
    np.testing.assert_allclose(fourier.restrict_logits(logits, P, [(P - 3, P - 3), (7, 7)]), logits, atol=1e-9)


def test_restriction_to_other_waves_leaves_chance():
    logits, y = nanda_logits(P, [(3, 2.0), (7, 1.5)]), targets(P)
    # (3, P - 3) is the wave of x0 - x1, (5, 5) a frequency the logits lack: both orthogonal to them
    restricted, excluded = fa.restricted_and_excluded(logits, y, P, [(3, P - 3), (5, 5)], np.arange(P * P))
    assert restricted == pytest.approx(1.0, abs=1e-9)
    assert excluded == pytest.approx(loss_by_hand(logits, y), rel=1e-9)  # removed nothing the logits had
    # removing one of the two waves leaves the other one's logits
    one = fourier.restrict_logits(logits, P, [(7, 7)], keep=False)
    np.testing.assert_allclose(one, nanda_logits(P, [(3, 2.0)]), atol=1e-9)


def test_restricted_loss_of_random_logits_is_about_chance():
    rng = np.random.default_rng(0)
    logits, y = rng.normal(size=(P * P, P)), targets(P)
    restricted, excluded = fa.restricted_and_excluded(logits, y, P, [(3, 3), (7, 7)], np.arange(P * P))
    # 5 of P*P = 529 directions per class kept: ~1 % of the variance, logits std ~0.1: near uniform
    assert restricted == pytest.approx(1.0, abs=0.02)
    assert loss_by_hand(logits, y) > 1.1  # the full random logits are worse than chance


def test_constant_and_class_shifts_are_kept_and_ignored():
    base, y = nanda_logits(P, [(4, 1.0)]), targets(P)
    rng = np.random.default_rng(1)
    shifted = base + rng.normal(size=(P * P, 1)) + rng.normal(size=(1, P))  # per input, per class
    assert fourier.key_waves(shifted, P)[0].tolist() == [[4, 4]]  # input shifts cancel in the softmax
    per_class = rng.normal(size=(1, P))  # a constant per class is kept by both restrictions
    kept = fourier.restrict_logits(base + per_class, P, [(4, 4)])
    np.testing.assert_allclose(kept, base + per_class, atol=1e-9)
    np.testing.assert_allclose(fourier.restrict_logits(base + per_class, P, [(4, 4)], keep=False),
                               np.broadcast_to(per_class, base.shape), atol=1e-9)


def test_key_waves_of_known_logits():
    logits = nanda_logits(P, [(3, 2.0), (7, 1.0), (10, 0.25)])
    waves, shares = fourier.key_waves(logits, P)
    # energy ~ A^2: 4, 1, 1/16 of 5.0625; the first two reach 98.8 % >= 90 %, the first alone 79 %
    assert waves.tolist() == [[3, 3], [7, 7]]
    np.testing.assert_allclose(shares, [4 / 5.0625, 1 / 5.0625], rtol=1e-9)
    waves, _ = fourier.key_waves(logits, P, level=0.995)
    assert waves.tolist() == [[3, 3], [7, 7], [10, 10]]
    assert fourier.key_waves(np.ones((P * P, P)), P)[0].shape == (0, 2)  # no energy, no key wave


def test_head_loss_against_a_hand_sum():
    logits = np.array([[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]])
    y = np.array([2, 1])
    by_hand = (-(2 - math.log(1 + math.e + math.e ** 2)) - (0 - math.log(math.e ** 3 + 2))) / 2 / math.log(3)
    assert fa.head_loss(logits, y) == pytest.approx(by_hand, rel=1e-12)
    assert fa.head_loss(np.array([[0.0, 60.0]]), np.array([1])) == pytest.approx(math.exp(-60) / math.log(2), rel=1e-9)


# ============================================================================ weight norm, phases
def test_sum_of_squared_weights_by_hand():
    shapes = miiii.param_shapes(5, 4, 2, [5])
    params = {name: np.ones(shape, dtype=np.float32) for name, (shape, _) in shapes.items()}
    params["W_U"] = np.full(shapes["W_U"][0], 3.0, dtype=np.float32)
    # every entry counts 1, except W_U's (4, 5) entries 9 each
    sizes = {"tok_emb": 6 * 4, "pos_emb": 3 * 4, "W_Q": 2 * 4 * 2, "W_K": 16, "W_V": 16, "W_O": 2 * 2 * 4,
             "W_in": 4 * 16, "W_out": 16 * 4}
    assert fa.sum_squared_weights(params) == sum(sizes.values()) + 9 * 20


def test_phase_rules_on_hand_made_curves():
    epochs = np.array([0, 10, 20, 30, 40, 50, 60, 70])
    train = np.array([1.2, 0.95, 0.5, 0.1, 0.01, 0.01, 0.01, 0.01])  # <= 0.9 x min(1.2, 1) = 0.9: first at 20
    # excluded loss from 20 on: minimum 0.20 at 30; first >= 0.30 at 60 (the rise); the last epoch
    # before it within 0.02 of the minimum is 50 (0.215; 40's 0.23 is above the floor, 50 is back on it)
    excluded = np.array([1.2, 0.95, 0.55, 0.20, 0.23, 0.215, 0.9, 1.5])
    restricted = np.array([1.0, 1.0, 0.9, 0.85, 0.8, 0.6, 0.35, 0.1])  # <= 0.5 x 0.6 (at 50) from 50 on: 70
    assert fa.phase_starts(epochs, train, restricted, excluded) == [20, 50, 70]
    assert fa.phase_starts(epochs, np.ones(8), restricted, excluded) == [None, None, None]  # never memorises
    # the excluded loss falls with the training loss and never rises: no circuit
    assert fa.phase_starts(epochs, train, restricted, train + 0.05) == [20, None, None]
    # a rise of 0.09 above the minimum is not a rise
    assert fa.phase_starts(epochs, train, restricted, np.minimum(excluded, 0.29)) == [20, None, None]
    # the restricted loss never halves: circuit found, clean-up not
    assert fa.phase_starts(epochs, train, np.full(8, 0.7), excluded) == [20, 50, None]
    # a lower excluded loss BEFORE memorisation does not count: the floor is taken from 20 on
    early_dip = excluded.copy()
    early_dip[1] = 0.0
    assert fa.phase_starts(epochs, train, restricted, early_dip) == [20, 50, 70]


# ============================================================================ schedule and hook
def test_progress_epochs_schedule():
    assert fourier.progress_epochs(40).tolist() == list(range(41))  # every E/40 = every epoch
    assert fourier.progress_epochs(0).tolist() == [0]
    e80 = fourier.progress_epochs(80).tolist()
    logs = {int(np.round(80 ** (i / 23))) for i in range(24)}  # geomspace(1, 80, 24) by hand
    assert e80 == sorted(set(range(0, 81, 2)) | logs)
    big = fourier.progress_epochs(65536)
    assert big[0] == 0 and big[-1] == 65536 and len(big) == 64
    assert {int(np.round(65536 * i / 40)) for i in range(41)} <= set(big.tolist())
    np.testing.assert_array_equal(fourier.progress_epochs(65536), big)  # deterministic


TINY = dict(miiii.DEFAULTS, task="nanda", p=11, d=16, heads=2, epochs=80, log_every=10)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    state = {}
    params, metrics = miiii.train(TINY, progress=False, hooks=miiii.training_hooks(TINY, state))
    plain, _ = miiii.train(TINY, progress=False)
    out = str(tmp_path_factory.mktemp("progress") / "run")
    miiii.write_run(out, TINY, params, metrics)
    rundir.finish_records(out, state)
    return out, state, params, plain


def test_hook_records_exactly_the_schedule_and_changes_nothing(tiny):
    out, state, params, plain = tiny
    assert sorted(state["progress"]) == fourier.progress_epochs(80).tolist()
    for name in miiii.PARAM_NAMES:
        assert params[name].tobytes() == plain[name].tobytes(), name
        assert state["progress"][80][name].dtype == np.float32
        np.testing.assert_array_equal(state["progress"][80][name], params[name])
    task = miiii.make_task("nanda", 11)
    init = miiii.init_params(11, 16, 2, task["classes"], TINY["seed"])
    np.testing.assert_array_equal(state["progress"][0]["W_in"], init["W_in"])  # a copy, not the live array
    # the files: one progress_params/<epoch>.npz per copy, read back as {epoch: params}
    assert sorted(os.listdir(os.path.join(out, "progress_params"))) == sorted(
        f"{e}.npz" for e in fourier.progress_epochs(80).tolist())
    with np.load(os.path.join(out, "progress_params", "40.npz")) as f:
        assert sorted(f.files) == sorted(miiii.PARAM_NAMES)
    back = fa.load_records(out)["progress_params"]
    assert sorted(back) == sorted(state["progress"])
    np.testing.assert_array_equal(back[40]["W_U"], state["progress"][40]["W_U"])
    assert "progress_params" not in fa.load_records(out, progress_params=False)


def test_extended_run_keeps_old_epochs_and_adds_the_new_ones():
    short = dict(TINY, epochs=50)
    state = miiii.init_state(short)
    miiii.train(short, progress=False, hooks=miiii.training_hooks(short, state["records"]), state=state)
    packed = {}  # through a checkpoint's JSON skeleton: epoch keys become strings
    records = rundir.unpack_tree(rundir.pack_tree(state["records"], packed), packed)
    state["records"] = records
    state = miiii.extend_state(state, TINY)
    miiii.train(TINY, progress=False, hooks=miiii.training_hooks(TINY, state["records"]), state=state)
    want = set(fourier.progress_epochs(50).tolist()) | {e for e in fourier.progress_epochs(80).tolist() if e > 50}
    assert sorted(state["records"]["progress"]) == sorted(want)
    p80 = fourier.progress_epochs(80)
    skipped = set(p80[p80 < 50].tolist()) - set(fourier.progress_epochs(50).tolist())  # before the resume point
    assert skipped and not skipped & set(state["records"]["progress"])
    assert all(isinstance(e, int) for e in state["records"]["progress"])


# ============================================================================ analysis and figure
def test_command_line_writes_progress_npz_and_the_summary(tiny, capsys):
    out = tiny[0]
    assert fa.main([out]) == 0
    assert "progress measures" in capsys.readouterr().out
    pm = dict(np.load(os.path.join(out, "progress.npz")))
    assert sorted(pm) == sorted(rundir.PROGRESS_KEYS)
    S = len(fourier.progress_epochs(80))
    for key in ("train_loss", "valid_loss", "restricted_loss", "excluded_loss"):
        assert pm[key].shape == (S, 1)
    assert pm["phases"].shape == (1, 3) and pm["key_waves"].shape[1] == 3
    assert pm["key_share"].sum() >= 0.9 - 1e-9
    np.testing.assert_allclose(pm["sum_sq_weights"][-1], fa.sum_squared_weights(tiny[2]), rtol=1e-12)
    # the full model's training loss at the last epoch is the logged one (float64 here, float32 there)
    metrics = np.load(os.path.join(out, "metrics.npz"))
    assert pm["train_loss"][-1, 0] == pytest.approx(metrics["train_loss"][-1, 0], rel=1e-3, abs=1e-6)
    a = rundir.load_json(os.path.join(out, "analysis.json"))
    t = a["progress"]["tasks"]["mod 11"]
    assert t["n_key_waves"] == len(pm["key_waves"]) and len(t["phases"]) == 3
    assert a["progress"]["recorded_epochs"] == S


def test_progress_figure(tiny):
    run = fa.load_run(tiny[0])
    pm = fa.progress_measures(run)
    pm["phases"] = np.array([[5, 20, -1]])  # two starts found, one not
    fig = figures.fig_progress_measures(pm, run["metrics"], "T_nanda")
    top, bottom = figures.panels(fig)
    assert len(top.lines) == 5 + 1 + 2  # 4 curves + logged validation, chance, two phase starts
    assert [ln.get_xdata()[0] for ln in bottom.lines[1:]] == [5, 20]
    assert top.get_ylabel() and bottom.get_xlabel()


def test_readers_apply_todays_phase_rules_and_refuse_a_damaged_file(tiny, tmp_path):
    import shutil
    run_dir = str(tmp_path / "run")
    shutil.copytree(tiny[0], run_dir)
    assert fa.main([run_dir]) == 0
    path = os.path.join(run_dir, rundir.PROGRESS)
    pm = dict(np.load(path))
    truth = fa.progress_phases(pm)
    stale = {**pm, "phases": np.full((1, 3), 7, dtype=np.int64)}  # written under some older rule
    rundir.save_npz(path, stale)
    np.testing.assert_array_equal(fa.load_records(run_dir, progress_params=False)["progress"]["phases"], truth)
    rundir.save_npz(path, {**pm, "train_loss": pm["train_loss"][:-1]})  # one epoch short
    with pytest.raises(rundir.RunError, match="damaged"):
        fa.load_records(run_dir, progress_params=False)
