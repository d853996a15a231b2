"""The talk's (authors') rules beside ours, with known answers worked out here, not by the code:
the talk's Omega rule (neuron 0, 168 log-spaced columns, mean + 1 std), the authors' embedding key
frequencies and cosine-37 positional similarity, our mixing Omega count, the fast Omega snapshot
against a float64 computation, the talk hook during training, extended runs and old run directories."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import fft_analysis as fa
import fourier
import miiii
import rundir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wave_grid(p, k0, k1, phase=0.0):
    """cos(2 pi (k0 x0 + k1 x1) / p + phase) as a grid [x0, x1]."""
    x0, x1 = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    return np.cos(2 * np.pi * (k0 * x0 + k1 * x1) / p + phase)


# ============================================================================ the talk's Omega rule
def test_talk_columns_are_zero_based_and_log_spaced():
    cols = fourier.talk_columns(65536)
    assert cols.shape == (168,) and cols[0] == 1 and cols[-1] == 65536
    # the talk's columns 81, 101, 121, 141, 161 are its epochs ~215, 817, 3.1k, 11.7k, 44k: 0-based indices
    # (docs/analysis.md, the talk's Omega rule)
    assert cols[[81, 101, 121, 141, 161]].tolist() == [217, 818, 3089, 11658, 43998]
    assert [round(65536 ** (i / 167)) for i in (81, 101, 121, 141, 161)] == [217, 818, 3089, 11658, 43998]
    assert cols[[80, 100]].tolist() == [203, 766]  # 1-based would read these: further from 215, 817
    assert (np.diff(cols) >= 0).all() and len(np.unique(cols)) == 141  # early columns repeat (1, 1, 1, ...)
    rec = fourier.talk_epochs(65536)
    assert set(np.unique(cols).tolist()) <= set(rec.tolist()) and len(rec) == 375
    assert {c + s for c in cols.tolist() for s in (-1, 0, 1) if 0 <= c + s <= 65536} == set(rec.tolist())
    assert fourier.talk_columns(0).size == 0 and fourier.talk_epochs(0).size == 0
    assert fourier.talk_epochs(3).tolist() == [0, 1, 2, 3]


def hand_talk_counts(cols, series, last):
    """The talk's rule written out with loops: series {epoch: (bins,)} recorded at every epoch 0..last."""
    bins = len(next(iter(series.values())))
    M = np.zeros((bins, len(cols)))
    for j, c in enumerate(cols):
        window = [e for e in (c - 1, c, c + 1) if 0 <= e <= last]
        for b in range(bins):
            M[b, j] = sum(series[e][b] for e in window) / len(window)
    for b in range(bins):
        total = sum(M[b])
        M[b] = M[b] / total if total > 0 else 0.0
    values = M.ravel().tolist()
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return [sum(M[b, j] > mean + std for b in range(bins)) for j in range(len(cols))], mean + std, M


def test_talk_rule_on_synthetic_spectra():
    """Bins: constant (1/168 per column after normalising: never counts), growing (counts late
    only), all zero (stays 0)."""
    E = 400
    cols = fourier.talk_columns(E).tolist()
    series = {e: [5.0, float(e), 0.0] for e in range(E + 1)}
    epochs = np.arange(E + 1)
    spectra = np.array([series[e] for e in epochs])
    talk = fourier.talk_omega(epochs, spectra, E)
    counts, threshold, M = hand_talk_counts(cols, series, E)
    assert talk["counts"].tolist() == counts and talk["approximated"] == 0
    assert talk["threshold"] == pytest.approx(threshold, rel=1e-12)
    np.testing.assert_allclose(talk["matrix"], M, rtol=1e-12, atol=1e-15)
    # the known shape of the answer
    np.testing.assert_allclose(talk["matrix"][0], 1 / 168)  # constant bin: 1/168 everywhere, never above
    assert not (talk["matrix"][0] > talk["threshold"]).any() and (talk["matrix"][2] == 0).all()
    # the growing bin: moving average of a line is the line (E - 0.5 at the last column), so its row is
    # epoch / sum(epochs); it counts exactly where that exceeds the threshold: late columns only
    g = np.array(cols, dtype=float)
    g[-1] = E - 0.5
    grow = g / g.sum() > talk["threshold"]
    assert (talk["matrix"][1] > talk["threshold"]).tolist() == grow.tolist()
    first = int(np.argmax(grow))
    assert grow[first:].all() and not grow[:first].any() and 100 < first < 167  # counted late, not early
    assert talk["counts"].tolist() == grow.astype(int).tolist()  # one bin at most, the growing one


def test_talk_rule_moving_average_spreads_a_spike():
    """A one-epoch spike at epoch s reaches the columns at s - 1, s, s + 1 with a third of its height."""
    E = 400
    cols = fourier.talk_columns(E).tolist()
    s = min(cols, key=lambda c: abs(c - 150))  # a column epoch near 150
    series = {e: [3.0 if e == s else 0.0, 1.0 + e % 3] for e in range(E + 1)}
    epochs = np.arange(E + 1)
    talk = fourier.talk_omega(epochs, np.array([series[e] for e in epochs]), E)
    counts, threshold, M = hand_talk_counts(cols, series, E)
    assert talk["counts"].tolist() == counts and talk["threshold"] == pytest.approx(threshold, rel=1e-12)
    hit = [j for j, c in enumerate(cols) if abs(c - s) <= 1]  # columns whose window holds the spike
    assert hit and (talk["matrix"][0][hit] == pytest.approx(1 / len(hit))) and not talk["matrix"][0][
        [j for j in range(168) if j not in hit]].any()


def test_talk_rule_columns_approximated_in_an_extended_run():
    """A run of 2,000 epochs extended to 65,536: middle columns of the new layout were not recorded."""
    E = 65536
    old, new = fourier.talk_epochs(2000).tolist(), fourier.talk_epochs(E).tolist()
    recorded = sorted(set(old) | {e for e in new if e > 2000})
    spectra = np.array([[1.0 + e, 2.0, (e % 7) * 0.5] for e in recorded])
    talk = fourier.talk_omega(recorded, spectra, E)
    rec = set(recorded)
    expected = sum(1 for c in fourier.talk_columns(E).tolist()
                   if c not in rec or any(e not in rec for e in (c - 1, c + 1) if 0 <= e <= E))
    assert talk["approximated"] == expected > 10
    for c, used in zip(talk["column_epochs"].tolist(), talk["used_epochs"].tolist()):
        assert used in rec and abs(used - c) == min(abs(e - c) for e in rec)  # the nearest recorded epoch
    full = fourier.talk_omega(new, np.array([[1.0 + e, 2.0, (e % 7) * 0.5] for e in new]), E)
    assert full["approximated"] == 0 and (full["used_epochs"] == full["column_epochs"]).all()
    assert fourier.talk_omega([], np.zeros((0, 3)), E) is None


def test_talk_printed_and_summary():
    assert [fourier.talk_printed(n) for n in (0, 1, 2, 16, 22, 47, 50, 23, 81)] == [0, 1, 1, 8, 10, 17, 18, 10, 27]
    talk = fourier.talk_omega(np.arange(65537), np.outer(np.arange(65537.0), [1.0, 0.0]) + [0.0, 1.0], 65536)
    s = fourier.talk_summary(talk, 65536)
    assert list(s["table1"]) == ["256", "1024", "4096", "16384", "65536"]
    cols = fourier.talk_columns(65536).tolist()
    nearest = [min(cols, key=lambda c: (abs(c - e), c)) for e in (256, 1024, 4096, 16384, 65536)]
    assert [v["epoch"] for v in s["table1"].values()] == nearest == [248, 999, 4029, 16249, 65536]
    assert [v["epoch"] for v in s["talk_columns"].values()] == [217, 818, 3089, 11658, 43998]
    assert s["columns"] == 168 and s["bins"] == 2 and s["approximated_columns"] == 0


def test_talk_spectrum_against_a_hand_computation():
    """Neuron 0 over the non-zero digits, |FFT| along x0 (first half incl. DC) averaged over all x1 frequencies."""
    p, d = 13, 16
    task = miiii.make_task("nanda", p)
    params = miiii.init_params(p, d, 2, task["classes"], seed=3)
    _, cache = miiii.forward(params, miiii.all_pairs(p))
    grid = cache["hid"][:, 0].reshape(p, p).T.astype(np.float64)[1:, 1:]  # [x0, x1], digits 1 .. p-1
    F = np.fft.fft2(grid)  # full 2D DFT, axis 0 = x0
    expected = np.abs(F)[: (p - 1) // 2 + 1, :].mean(axis=1)  # k0 = 0 .. (p-1)//2, mean over every k1
    got = miiii.talk_spectrum(params, p)
    assert got.shape == ((p - 1) // 2 + 1,) == (7,)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    other = miiii.talk_spectrum({**params, "W_in": params["W_in"][:, ::-1].copy()}, p)  # neuron 0 only
    assert not np.allclose(other, got)


# ============================================================================ the authors' embedding rules
@pytest.mark.parametrize("offset", [0.0, 0.5])
def test_authors_key_frequencies_find_three_planted_waves(offset):
    rng = np.random.default_rng(7)
    p, d, x = 59, 32, np.arange(59)[:, None]
    tok = 0.01 * rng.standard_normal((p + 1, d))
    tok[p] += 10.0  # the '=' row is not a number: ignored
    for k in (4, 11, 23):
        tok[:p] += rng.uniform(1, 2, d) * np.cos(2 * np.pi * k * x / p + rng.uniform(0, 2 * np.pi, d))
    tok[:p] += offset  # a constant offset is frequency k = 0, which the authors' rule includes
    keys, norms = fourier.key_frequencies_authors(tok)
    assert norms.shape == (p // 2 + 1,)
    assert keys == ([0] if offset else []) + [4, 11, 23]
    # the norm at a planted k: each dimension's |rfft| there is amplitude * p / 2
    assert norms[4] > 20 * norms[5]


def test_authors_positional_cosine_on_hand_vectors():
    rng = np.random.default_rng(0)
    pos = rng.standard_normal((3, 64))
    pos[0, :37], pos[1, :37] = 0.0, 0.0
    pos[0, 0], pos[1, 0], pos[1, 1] = 1.0, 1.0, 1.0  # first 37 dims: e0 and e0 + e1, cosine 1/sqrt(2)
    cos, dims = fourier.positional_cosine(pos)
    assert dims == 37 and cos == pytest.approx(1 / math.sqrt(2), rel=1e-12)  # dims 37 .. 63 ignored
    pos[1, :37] = -2 * pos[0, :37]
    assert fourier.positional_cosine(pos)[0] == pytest.approx(-1.0)
    small = np.array([[1.0, 2.0, 0.0, 0.0], [2.0, 0.0, 1.0, 0.0], [9.0, 9.0, 9.0, 9.0]])  # d = 4 < 37: all dims
    assert fourier.positional_cosine(small) == (pytest.approx(2 / 5), 4)  # (1*2) / (sqrt(5) sqrt(5))
    assert math.isnan(fourier.positional_cosine(np.zeros((3, 40)))[0])


# ============================================================================ our Omega count: mixing
def test_mixing_count_on_planted_waves():
    """Axis waves (k, 0), (0, k) are active in the model but not counted; mixing waves are."""
    rng = np.random.default_rng(1)
    p = 23
    planted = [(3, 0), (0, 5), (4, 7), (p - 2, 9)]  # two axis, two mixing waves
    grids = np.stack([rng.uniform(0.5, 2) * wave_grid(p, k0, k1, rng.uniform(0, 2 * np.pi))
                      for (k0, k1) in planted for _ in range(10)])
    grids = (grids + 0.02 * rng.standard_normal(grids.shape)).astype(np.float32)
    power = fourier.neuron_power(grids)
    omega = fourier.omega_from_active(fourier.neuron_active(power), int(fourier.live_neurons(power).sum()))
    freqs = [tuple(w) for w in fourier.frequency_index(p)]
    assert {freqs[i] for i in np.flatnonzero(omega["active"])} == set(planted)
    assert fourier.omega_split(omega["active"], p) == {"mixing": 2, "axis": 2, "all": 4}
    only_axis = fourier.omega_from_active(fourier.neuron_active(power[:20]), 20)
    assert fourier.omega_split(only_axis["active"], p) == {"mixing": 0, "axis": 2, "all": 2}


def test_fresh_model_has_axis_frequencies_but_no_mixing_ones():
    """At initialisation a neuron is ~ relu(f(x0) + g(x1) + c): its power is on the axes.

    Measured once (He init, the miiii task, seeds 0-4): mixing 0 and axis p - 1 in every case at
    p = 37 (d = 128 and 256) and p = 113 (d = 128 and 256), i.e. 36 / 112 axis frequencies. The
    bound tested here, mixing <= 2 and axis >= p - 3, leaves room for a rare spurious frequency.
    """
    p, d = 37, 128
    task = miiii.make_task("miiii", p)
    for seed in (0, 1):
        params = miiii.init_params(p, d, 4, task["classes"], seed=seed)
        split = fourier.omega_split(miiii.omega_snapshot(params, p)["active"], p)
        assert split["mixing"] <= 2 and split["axis"] >= p - 3, split


# ============================================================================ the fast snapshot
def float64_snapshot(params, p):
    """The straightforward computation: float64 forward, numpy rfft2 per neuron, fold, thresholds."""
    p64 = {name: np.asarray(w, dtype=np.float64) for name, w in params.items()}
    _, cache = miiii.forward(p64, miiii.all_pairs(p))
    grids = cache["hid"].reshape(p, p, -1).transpose(2, 1, 0)  # (4d, x0, x1)
    power = fourier.neuron_power(grids)
    return fourier.omega_from_active(fourier.neuron_active(power), int(fourier.live_neurons(power).sum()))


@pytest.mark.parametrize("p, trained", [(23, False), (24, False), (23, True)])
def test_fast_snapshot_agrees_with_float64(p, trained):
    cfg = dict(task="nanda", p=p, d=32, heads=4, lr=3e-3, wd=1.0, lamb=2.0, epochs=150 if trained else 0)
    params = miiii.train(cfg, progress=False)[0]
    fast, slow = miiii.omega_snapshot(params, p), float64_snapshot(params, p)
    assert fast["live"] == slow["live"]
    pairs = fast["live"] * len(fast["counts"])
    assert np.abs(fast["counts"] - slow["counts"]).sum() <= 1e-4 * pairs  # float32 rounding near a threshold
    np.testing.assert_array_equal(fast["active"], slow["active"])
    assert fast["share"] == pytest.approx(slow["share"], rel=1e-3)


def test_fast_path_on_planted_neurons_matches_the_grid_path():
    """omega_from_hidden (matmul DFT, float32) against neuron_power / neuron_active (numpy FFT) on
    planted waves, noise, a dead neuron and a neuron non-zero at one input (a flat spectrum)."""
    rng = np.random.default_rng(5)
    p = 19
    planted = [(2, 0), (0, 7), (3, 5), (p - 3, 5)] * 6
    grids = np.stack([rng.uniform(0.5, 2) * wave_grid(p, k0, k1, rng.uniform(0, 2 * np.pi)) + 1.0
                      for k0, k1 in planted] + [rng.standard_normal((p, p)) for _ in range(6)])
    delta = np.zeros((p, p))
    delta[4, 11] = 2.5  # one input: |FFT|^2 is the same at every frequency
    grids = np.concatenate([grids, np.zeros((2, p, p)), delta[None]]).astype(np.float32)
    H = grids.transpose(2, 1, 0).reshape(p * p, -1).copy()  # (N, n) in sample order x0 + x1 p
    fast = fourier.omega_from_hidden(H, p)
    power = fourier.neuron_power(grids)
    active = fourier.neuron_active(power)
    assert not active[-1].any() and not active[-3:-1].any()  # the flat spectrum and the dead ones: nothing
    slow = fourier.omega_from_active(active, int(fourier.live_neurons(power).sum()))
    assert fast["live"] == slow["live"] == len(planted) + 6 + 1
    np.testing.assert_array_equal(fast["counts"], slow["counts"])
    freqs = [tuple(w) for w in fourier.frequency_index(p)]
    assert {freqs[i] for i in np.flatnonzero(fast["active"])} == set(planted)
    alone = fourier.omega_from_hidden(delta.T.reshape(p * p, 1).astype(np.float32).copy(), p)
    assert alone["live"] == 1 and alone["counts"].sum() == 0


def test_hidden_is_forwards_hidden_layer():
    p = 17
    task = miiii.make_task("miiii", p)
    params = miiii.init_params(p, 24, 4, task["classes"], seed=2)
    x = miiii.all_pairs(p)
    _, cache = miiii.forward(params, x)
    assert miiii.hidden(params, x).tobytes() == cache["hid"].tobytes()  # bit-identical
    # one neuron alone: a matrix-vector product, which BLAS sums in another order than the matrix product
    np.testing.assert_allclose(miiii.hidden(params, x, 5), cache["hid"][:, 5], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(task["x"], x)  # make_task's inputs are all_pairs


# ============================================================================ during training
def test_talk_hook_records_at_exactly_its_epochs_and_changes_nothing():
    cfg = dict(task="miiii", p=11, d=16, heads=2, epochs=60, log_every=10, dropout=0.1)
    state = {}
    hooks = [h for h in miiii.training_hooks(cfg, state)
             if h.get("snapshot_epochs") == set(fourier.talk_epochs(60).tolist())]
    assert len(hooks) == 1
    with_hook, _ = miiii.train(cfg, progress=False, hooks=hooks)
    plain, _ = miiii.train(cfg, progress=False)
    for name in miiii.PARAM_NAMES:
        assert with_hook[name].tobytes() == plain[name].tobytes(), name
    assert sorted(state["omega_talk"]) == fourier.talk_epochs(60).tolist()
    np.testing.assert_array_equal(state["omega_talk"][60], miiii.talk_spectrum(plain, 11))
    assert len(state["omega_talk"]) == 61  # a 60-epoch run: every epoch is a column or a neighbour


def test_extended_run_keeps_old_talk_records():
    """training_hooks called again with the longer config and the old records (miiii --resume --epochs N)."""
    cfg = dict(task="nanda", p=11, d=16, heads=2, epochs=300)
    records = {}
    miiii.train(cfg, progress=False, hooks=miiii.training_hooks(cfg, records))
    old = dict(records["omega_talk"])
    assert sorted(old) == fourier.talk_epochs(300).tolist()
    longer = {**cfg, "epochs": 3000, "extended_from": [300]}
    json_like = {key: ({str(e): v for e, v in val.items()} if isinstance(val, dict) and key != "timing" else val)
                 for key, val in records.items()}  # a checkpoint gives string epoch keys
    hooks = miiii.training_hooks(longer, json_like)
    talk_hook = [h for h in hooks if h.get("snapshot_epochs") == set(fourier.talk_epochs(3000).tolist())]
    assert len(talk_hook) == 1 and sorted(json_like["omega_talk"]) == sorted(old)
    params = miiii.train({**cfg, "epochs": 5}, progress=False)[0]
    for e in fourier.talk_epochs(3000).tolist():
        if e > 300:
            talk_hook[0]["snapshot"](e, params)  # stand-in weights: only the epochs matter here
    epochs = sorted(json_like["omega_talk"])
    talk = fourier.talk_omega(epochs, [json_like["omega_talk"][e] for e in epochs], 3000)
    assert set(old) <= set(epochs) and talk["approximated"] > 0


# ============================================================================ old run directories
@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    """A fresh tiny run with the new records deleted: what a run made before them looks like."""
    out = tmp_path_factory.mktemp("old") / "run"
    cfg = {**miiii.DEFAULTS, "task": "miiii", "p": 11, "d": 16, "heads": 2, "epochs": 300, "log_every": 10}
    state = {}
    params, metrics = miiii.train(cfg, progress=False, hooks=miiii.training_hooks(cfg, state))
    miiii.write_run(str(out), cfg, params, metrics)
    rundir.finish_records(str(out), state)
    for name in os.listdir(out):
        if name in ("omega_talk.npz", "omega.npz") or name.startswith("params_"):
            os.remove(out / name)
    return out


def test_old_run_directory_still_analyses_with_one_line_note(old_run):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "fft_analysis.py"), str(old_run)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and done.stderr == ""
    notes = [line for line in done.stdout.splitlines() if "missing" in line]
    assert len(notes) == 1 and "omega_talk.npz" in notes[0] and "omega.npz" in notes[0], done.stdout
    assert "params_<epoch>.npz" in notes[0] and "grad_norms" not in notes[0]
    with open(old_run / "analysis.json") as f:
        a = json.load(f)
    assert a["omega_talk"] is None and a["active_freqs"] == {} and len(a["missing"]) == 3
    assert a["active_freqs_all_final"] >= a["active_freqs_final"] >= 0  # the final weights are always there


def test_old_run_directory_draws_what_it_can(old_run, tmp_path):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "figures.py"), "--miiii", str(old_run),
                           "--out", str(tmp_path / "figs")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "skip fig10_active_frequencies: the --miiii run has no omega.npz" in done.stderr
    assert os.path.exists(tmp_path / "figs" / "fig05_task_accuracy.png")


def test_run_without_only_the_talk_record(tmp_path):
    """A run made with omega.npz but before omega_talk.npz: everything but the talk's rule, said once."""
    out = tmp_path / "run"
    cfg = {**miiii.DEFAULTS, "task": "miiii", "p": 11, "d": 16, "heads": 2, "epochs": 300, "log_every": 10}
    state = {}
    params, metrics = miiii.train(cfg, progress=False, hooks=miiii.training_hooks(cfg, state))
    miiii.write_run(str(out), cfg, params, metrics)
    rundir.finish_records(str(out), state)
    os.remove(out / "omega_talk.npz")
    a = fa.analyse_run(str(out))
    assert a["missing"] == ["omega_talk.npz (the talk's Omega rule)"] and a["omega_talk"] is None
    assert list(a["active_freqs"]) == ["256"]
    text = fa.report(a)
    assert sum("missing" in line for line in text.splitlines()) == 1 and "not recorded" in text
    done = subprocess.run([sys.executable, os.path.join(ROOT, "figures.py"), "--miiii", str(out),
                           "--out", str(tmp_path / "figs")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert os.path.exists(tmp_path / "figs" / "fig11_omega_and_accuracy.png")
    table = open(tmp_path / "figs" / "table1.md").read()
    assert "not recorded in this run (no omega_talk.npz)" in table
