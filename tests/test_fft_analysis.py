"""Tests of fft_analysis: known answers (planted waves, built embeddings, explicit formulas), the
training hooks (epochs, files, bit-identical training) and the command line."""
import json
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

TINY = dict(task="nanda", p=11, d=16, heads=2, epochs=300, log_every=10)
REFERENCE = os.path.join(ROOT, "tests", "data", "vectors.npz")  # independent reference values (tests/data/README.md)


def wave_grid(p, k0, k1, phase=0.0):
    """cos(2 pi (k0 x0 + k1 x1) / p + phase) as a grid [x0, x1]."""
    x0, x1 = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    return np.cos(2 * np.pi * (k0 * x0 + k1 * x1) / p + phase)


# ============================================================================ Fourier tools
@pytest.mark.parametrize("p", [2, 3, 7, 12, 113])
def test_basis_is_orthonormal_and_projection_inverts(p):
    B = fourier.fourier_basis(p)
    assert B.shape == (p, p) and B.dtype == np.float64
    np.testing.assert_allclose(B @ B.T, np.eye(p), atol=1e-12)
    a = np.random.default_rng(p).standard_normal((p, 3, 2))
    np.testing.assert_allclose(fourier.unproject(fourier.project(a)), a, atol=1e-12)
    np.testing.assert_allclose(fourier.project(a[:, 0, 0]), B @ a[:, 0, 0], atol=1e-12)
    assert len(fourier.fourier_labels(p)) == p


@pytest.mark.parametrize("p", [7, 8])
def test_basis_rows_are_the_explicit_waves(p):
    B, labels, x = fourier.fourier_basis(p), fourier.fourier_labels(p), np.arange(p)
    np.testing.assert_allclose(B[0], np.full(p, 1 / np.sqrt(p)))
    assert labels[0] == "const"
    for k in range(1, p // 2 + 1):
        cos_scale = np.sqrt(1 / p) if 2 * k == p else np.sqrt(2 / p)  # (-1)^x has norm sqrt(p)
        np.testing.assert_allclose(B[2 * k - 1], cos_scale * np.cos(2 * np.pi * k * x / p), atol=1e-12)
        assert labels[2 * k - 1] == f"cos {k}"
        if 2 * k < p:
            np.testing.assert_allclose(B[2 * k], np.sqrt(2 / p) * np.sin(2 * np.pi * k * x / p), atol=1e-12)
            assert labels[2 * k] == f"sin {k}"
    assert labels[-1] == ("sin 3" if p == 7 else "cos 4")  # even p: no sine at k = p/2


def test_frequency_energy_counts_cos_and_sin_together():
    p, x = 13, np.arange(13)
    a = np.stack([np.cos(2 * np.pi * 3 * x / p + 0.7), 2 * np.sin(2 * np.pi * 5 * x / p), np.full(p, 9.0)], axis=1)
    energy = fourier.frequency_energy(fourier.project(a))  # the constant column carries no frequency
    assert energy.shape == (6,)
    np.testing.assert_allclose(energy.sum(), 1.0)
    np.testing.assert_allclose(energy[[2, 4]], [1 / 5, 4 / 5], atol=1e-12)  # amplitudes 1 and 2
    assert fourier.key_frequencies(energy) == [5]  # mean + 2 std of (0, 0, .2, 0, .8, 0) is 0.65
    np.testing.assert_array_equal(fourier.frequency_energy(np.zeros((p, 2))), np.zeros(6))
    assert fourier.key_frequencies(np.zeros(6)) == []
    even = fourier.frequency_energy(fourier.project(np.cos(np.pi * np.arange(8))[:, None]))  # (-1)^x at p = 8
    np.testing.assert_allclose(even, [0, 0, 0, 1], atol=1e-12)


# ============================================================================ embeddings
@pytest.mark.parametrize("p, freqs", [(113, [4, 14, 35, 41, 52]), (59, [3, 17, 29])])
def test_embeddings_built_from_chosen_frequencies_have_those_key_frequencies(p, freqs):
    rng = np.random.default_rng(p)
    d, x = 32, np.arange(p)[:, None]
    tok = 0.01 * rng.standard_normal((p + 1, d))  # small noise everywhere, '=' row included
    tok[p] += 5.0 * rng.standard_normal(d)  # a large '=' row must not matter: it is dropped
    for k in freqs:  # each frequency: random phase per dimension, amplitude 1 .. 2
        tok[:p] += rng.uniform(1, 2, d) * np.cos(2 * np.pi * k * x / p + rng.uniform(0, 2 * np.pi, d))
    out = fourier.embedding_fourier(tok)
    assert out["coeffs"].shape == (p, d) and out["energy"].shape == (p // 2,)
    assert out["key_freqs"] == sorted(freqs)


def test_svd_counts_follow_the_rank():
    rng = np.random.default_rng(0)
    p, d, r = 31, 20, 6
    Q1, _ = np.linalg.qr(rng.standard_normal((p, r)))
    Q2, _ = np.linalg.qr(rng.standard_normal((d, r)))
    tok = np.vstack([Q1 @ Q2.T * 3.0, rng.standard_normal((1, d))])  # rank 6, equal singular values
    out = fourier.embedding_svd(tok)
    assert out["singular_values"].shape == (d,) and out["U"].shape == (p, d) and out["Vt"].shape == (d, d)
    np.testing.assert_allclose(out["singular_values"][:r], 3.0)
    assert out["singular_values"][r:].max() < 1e-10
    assert (out["n50"], out["n90"]) == (3, 6)  # 3/6 of the energy reaches 50 %; 5/6 < 90 %
    np.testing.assert_allclose(out["cum_energy"][-1], 1.0)
    two = fourier.embedding_svd(np.vstack([Q1[:, :2] * [4.0, 3.0] @ Q2[:, :2].T, np.zeros((1, d))]))
    assert (two["n50"], two["n90"]) == (1, 2)  # energies 16 and 9: 64 % then 100 %


def test_positional_correlation_known_values():
    a = np.random.default_rng(1).standard_normal(64)
    assert fourier.positional_correlation(np.stack([a, a, a])) == pytest.approx(1.0)
    assert fourier.positional_correlation(np.stack([a, -a, a])) == pytest.approx(-1.0)
    assert fourier.positional_correlation(np.stack([a, 2 * a + 3, a])) == pytest.approx(1.0)
    assert np.isnan(fourier.positional_correlation(np.stack([a, np.ones(64), a])))


# ============================================================================ neurons
@pytest.mark.parametrize("p", [2, 5, 6, 7, 8])
def test_folding_counts_each_physical_frequency_once(p):
    freqs = fourier.frequency_index(p)
    full = np.zeros((p, p), int)  # how often each full-plane frequency is reached by a kept w or its mirror
    np.add.at(full, (freqs[:, 0], freqs[:, 1]), 1)
    np.add.at(full, ((-freqs[:, 0]) % p, (-freqs[:, 1]) % p), 1)
    self_mirrored = (2 * freqs % p == 0).all(axis=1).sum()  # w = -w: only at even p
    assert full[0, 0] == 0
    assert full.sum() - full[0, 0] == 2 * len(freqs) and (full[1:].min() >= 1) and (full[0, 1:].min() >= 1)
    assert ((full == 2).sum() == self_mirrored) and ((full <= 2).all())
    assert len(freqs) == ((p * p - 1) // 2 if p % 2 else p * p // 2 + 1)


def test_power_of_a_single_wave():
    p = 11
    grids = np.stack([wave_grid(p, 3, 4) + 7.0, wave_grid(p, 2, 0), np.full((p, p), 0.3)]).astype(np.float32)
    power = fourier.neuron_power(grids)
    assert power.shape == (3, p, p // 2 + 1)
    big = power > 1e-3 * power.max()
    assert set(zip(*np.nonzero(big[0]))) == {(3, 4)}  # the offset 7 is the mean, removed
    assert set(zip(*np.nonzero(big[1]))) == {(2, 0), (p - 2, 0)}  # the k1 = 0 column holds both mirrors
    np.testing.assert_allclose(power[0, 3, 4], (p * p / 2) ** 2, rtol=1e-4)
    assert (power[2] == 0).all() and (power[:, 0, 0] == 0).all()  # constant grid: exactly zero spectrum
    active = fourier.neuron_active(power)
    freqs = [tuple(w) for w in fourier.frequency_index(p)]
    assert [freqs[i] for i in np.flatnonzero(active[0])] == [(3, 4)]
    assert [freqs[i] for i in np.flatnonzero(active[1])] == [(2, 0)]  # folded: counted once
    assert not active[2].any() and fourier.live_neurons(power).tolist() == [True, True, False]


def test_planted_frequencies_are_exactly_the_model_active_ones():
    rng = np.random.default_rng(0)
    p = 23
    planted = [(5, 0), (p - 3, 0), (2, 7), (p - 2, 7), (0, 11)]  # (p-3, 0) folds to (3, 0)
    expected = {(5, 0), (3, 0), (2, 7), (p - 2, 7), (0, 11)}  # (2, 7) and (p-2, 7) are different waves
    grids = [rng.uniform(0.5, 2) * wave_grid(p, k0, k1, rng.uniform(0, 2 * np.pi))
             for (k0, k1) in planted for _ in range(12)]  # 12 neurons per frequency
    grids = np.stack(grids) + 0.02 * rng.standard_normal((len(grids), p, p))
    grids = np.concatenate([grids, np.zeros((10, p, p)), np.full((3, p, p), 1.5)]).astype(np.float32)  # dead
    power = fourier.neuron_power(grids)
    active = fourier.neuron_active(power)
    assert active.sum(axis=1).tolist() == [1] * 60 + [0] * 13
    omega = fourier.omega_from_active(active, int(fourier.live_neurons(power).sum()))
    freqs = [tuple(w) for w in fourier.frequency_index(p)]
    assert omega["live"] == 60 and omega["n_active"] == 5
    assert {freqs[i] for i in np.flatnonzero(omega["active"])} == expected
    assert omega["counts"].sum() == 60 and omega["share"] == pytest.approx(60 / (60 * len(freqs)))
    assert (omega["active"] & fourier.interaction_mask(p)).sum() == 2  # only (2, 7) and (p-2, 7) mix x0 and x1


def test_pure_noise_neurons_give_no_model_level_frequency():
    p, quiet, shares = 23, 0, []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        grids = np.concatenate([rng.standard_normal((128, p, p)), np.zeros((16, p, p))]).astype(np.float32)
        power = fourier.neuron_power(grids)
        omega = fourier.omega_from_active(fourier.neuron_active(power), int(fourier.live_neurons(power).sum()))
        assert omega["live"] == 128
        quiet += omega["n_active"] == 0
        shares.append(omega["share"])
    assert quiet >= 19
    assert np.mean(shares) == pytest.approx(np.exp(-3), abs=0.01)  # P(exponential power > 3 x its mean)


def test_model_active_threshold():
    n, r = 100, 0.05  # n r = 5, binomial std = sqrt(4.75) = 2.179..., threshold 13.7
    assert fourier.model_active(np.array([13, 14, 0, 100]), n, r).tolist() == [False, True, False, True]
    assert not fourier.model_active(np.zeros(4, int), 0, 0.0).any()


def reference_case(name):
    with np.load(REFERENCE) as f:
        params = {k: f[f"{name}/param/{k}"] for k in miiii.PARAM_NAMES}
        return params, f[f"{name}/x"], f[f"{name}/neurons"]


def test_neuron_grids_layout_matches_reference_neurons():
    params, x, neurons = reference_case("nanda")  # computed independently, 40 inputs
    p = int(x[0, 2])
    grids = fa.neuron_grids(params, p)
    assert grids.shape == (4 * params["tok_emb"].shape[1], p, p) and grids.dtype == np.float32
    np.testing.assert_allclose(grids[:, x[:, 0], x[:, 1]].T, neurons, rtol=1e-5, atol=1e-6)  # grid[j, x0, x1]
    np.testing.assert_array_equal(fa.neuron_grids(params, p, batch=7), grids)  # batching changes nothing


def test_attention_patterns():
    params, x, _ = reference_case("nanda")
    p, heads = int(x[0, 2]), params["W_Q"].shape[0]
    att = fa.attention_patterns(params, p)
    assert att.shape == (heads, 3, p, p)
    np.testing.assert_allclose(att.sum(axis=1), 1.0, atol=1e-12)
    # direct softmax for one input, grid index [x0, x1]
    x0, x1 = 3, 8
    z = params["tok_emb"][[x0, x1, p]] + params["pos_emb"]  # (3, d)
    q = z[2] @ params["W_Q"]  # (h, dh)
    k = np.einsum("td,hde->hte", z, params["W_K"])  # (h, 3, dh)
    s = np.einsum("he,hte->ht", q, k) / np.sqrt(q.shape[1])
    w = np.exp(s - s.max(axis=1, keepdims=True))
    np.testing.assert_allclose(att[:, :, x0, x1], w / w.sum(axis=1, keepdims=True), rtol=1e-10)
    flat = fa.attention_patterns({**params, "W_Q": np.zeros_like(params["W_Q"])}, p)
    np.testing.assert_allclose(flat, 1 / 3)  # no query: uniform attention


# ============================================================================ during training
def test_snapshot_epochs():
    full = fourier.snapshot_epochs(65536)
    assert full.dtype == np.int64 and (np.diff(full) > 0).all()
    assert len(full) >= 100 and full[0] == 0 and full[-1] == 65536
    assert set(fourier.TABLE1_EPOCHS) <= set(full.tolist())
    short = fourier.snapshot_epochs(300).tolist()
    assert short[0] == 0 and short[-1] == 300 and 256 in short and 1024 not in short
    assert fourier.snapshot_epochs(0).tolist() == [0] and fourier.snapshot_epochs(5).tolist() == [0, 1, 2, 3, 4, 5]
    late = full[full >= 1024]  # log-spaced: about 8 per octave
    assert 7 * 6 <= len(late) <= 8 * 6 + 2
    sparse = fourier.snapshot_epochs(65536, per_octave=2)
    assert set(fourier.TABLE1_EPOCHS) | {0, 65536} <= set(sparse.tolist()) and len(sparse) < 40


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny finished run with training records, and the same run trained without hooks."""
    out = str(tmp_path_factory.mktemp("runs") / "tiny")
    state = {}
    params, metrics = miiii.train(TINY, progress=False, hooks=miiii.training_hooks(TINY, state))
    miiii.write_run(out, {**miiii.DEFAULTS, **TINY}, params, metrics)
    rundir.finish_records(out, state)
    plain, _ = miiii.train(TINY, progress=False)
    return out, state, params, metrics, plain


def test_hooks_leave_training_bit_identical(tiny_run):
    _, _, params, _, plain = tiny_run
    for name in miiii.PARAM_NAMES:
        assert params[name].tobytes() == plain[name].tobytes(), name


def test_training_records_on_disk(tiny_run):
    out, state, params, metrics, _ = tiny_run
    p, F = TINY["p"], (TINY["p"] ** 2 - 1) // 2
    with np.load(os.path.join(out, "omega.npz")) as f:
        om = {k: f[k] for k in f.files}
    assert sorted(om) == sorted(["epochs", "freqs", "counts", "live", "share", "active", "n_active"])
    np.testing.assert_array_equal(om["epochs"], fourier.snapshot_epochs(300))
    S = len(om["epochs"])
    assert om["counts"].shape == (S, F) and om["counts"].dtype == np.int64
    assert om["active"].shape == (S, F) and om["active"].dtype == bool
    assert om["freqs"].shape == (F, 2) and om["share"].dtype == np.float64
    np.testing.assert_array_equal(om["n_active"], om["active"].sum(axis=1))
    assert ((om["live"] > 0) & (om["live"] <= 4 * TINY["d"])).all()
    # the snapshot at 256 is what the saved Table-1 parameters give
    saved = dict(np.load(os.path.join(out, "params_256.npz")))
    assert sorted(saved) == sorted(miiii.PARAM_NAMES)
    again = miiii.omega_snapshot(saved, p)
    i = int(np.flatnonzero(om["epochs"] == 256)[0])
    np.testing.assert_array_equal(again["counts"], om["counts"][i])
    assert not np.array_equal(saved["W_in"], params["W_in"])  # a copy from epoch 256, not the final weights
    assert sorted(n for n in os.listdir(out) if n.startswith("params_")) == ["params_256.npz"]
    # gradient norms: every logged epoch but the last, the raw gradient of that step
    with np.load(os.path.join(out, "grad_norms.npz")) as f:
        gn = {k: f[k] for k in f.files}
    np.testing.assert_array_equal(gn["epochs"], metrics["epochs"][:-1])
    cfg = {**miiii.DEFAULTS, **TINY}
    task = miiii.make_task(cfg["task"], p, cfg["train_frac"], cfg["seed"])
    init = miiii.init_params(p, cfg["d"], cfg["heads"], task["classes"], cfg["seed"])
    _, grads = miiii.loss_and_grads(init, task["x"][task["train"]], task["y"][task["train"]], task["classes"],
                                    task["mask"], dropout=cfg["dropout"], rng=miiii.dropout_rng(cfg["seed"], 0))
    for name in miiii.PARAM_NAMES:
        assert gn[name].shape == gn["epochs"].shape and gn[name].dtype == np.float64
        assert gn[name][0] == pytest.approx(np.linalg.norm(grads[name].astype(np.float64)), rel=1e-6)
    # neuron 0's talk spectrum at every column epoch of the talk's rule and its neighbours
    with np.load(os.path.join(out, "omega_talk.npz")) as f:
        talk = {k: f[k] for k in f.files}
    assert sorted(talk) == ["epochs", "spectra"]
    np.testing.assert_array_equal(talk["epochs"], fourier.talk_epochs(300))
    assert talk["spectra"].shape == (len(talk["epochs"]), (p - 1) // 2 + 1) and talk["spectra"].dtype == np.float64
    np.testing.assert_array_equal(talk["spectra"][-1], miiii.talk_spectrum(params, p))  # epoch 300: the final weights
    # the files hold what the hooks recorded, row by row
    assert om["epochs"].tolist() == sorted(state["omega"]) and gn["epochs"].tolist() == sorted(state["grad_norms"])
    for i, e in enumerate(om["epochs"].tolist()):
        for key in ("counts", "live", "share", "active", "n_active"):
            np.testing.assert_array_equal(om[key][i], state["omega"][e][key])
    np.testing.assert_array_equal(om["freqs"], fourier.frequency_index(p))
    assert talk["epochs"].tolist() == sorted(state["omega_talk"])
    for i, e in enumerate(talk["epochs"].tolist()):
        np.testing.assert_array_equal(state["omega_talk"][e], talk["spectra"][i])
    # and read back through rundir as the figures read them
    back = rundir.load_records(out, miiii.PARAM_NAMES)
    for key in om:
        np.testing.assert_array_equal(back["omega"][key], om[key])
    np.testing.assert_array_equal(back["snapshots"][256]["W_in"], saved["W_in"])


def test_hooks_resume_from_a_checkpointed_state(tiny_run, tmp_path):
    """Records that went through a JSON-based checkpoint (string epoch keys) carry on and write the same files."""
    out, state, params = tiny_run[0], tiny_run[1], tiny_run[2]
    resumed = {"p": state["p"]}
    for key in ("omega", "omega_talk", "grad_norms", "snapshots"):
        resumed[key] = {str(e): v for e, v in state[key].items() if e != 300}  # stopped before the end
    hooks = miiii.training_hooks(TINY, resumed)
    hooks[0]["snapshot"](300, params)  # the last snapshot, taken after the resume
    talk_hook = [h for h in hooks if h.get("snapshot_epochs") == set(fourier.talk_epochs(300).tolist())]
    assert len(talk_hook) == 1
    talk_hook[0]["snapshot"](300, params)
    assert all(isinstance(e, int) for e in resumed["omega"]) and all(isinstance(e, int) for e in resumed["omega_talk"])
    np.testing.assert_array_equal(resumed["omega"][300]["counts"], state["omega"][300]["counts"])
    rundir.finish_records(str(tmp_path), resumed)
    for name in ("omega.npz", "omega_talk.npz"):
        with np.load(os.path.join(out, name)) as a, np.load(str(tmp_path / name)) as b:
            assert a.files == b.files
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key])


def test_analysis_and_report_of_a_run(tiny_run):
    out = tiny_run[0]
    a = fa.analyse_run(out)
    assert a["task"] == "nanda" and a["p"] == 11 and a["tasks"] == ["mod 11"]
    assert set(a["active_freqs"]) == set(a["active_freqs_all"]) == set(a["active_freqs_axis"]) == {"256"}
    with np.load(os.path.join(out, "omega.npz")) as f:
        i = list(f["epochs"]).index(256)
        active, n_active = f["active"][i], int(f["n_active"][i])
    mixing = int((active & fourier.interaction_mask(11)).sum())  # the headline: mixing frequencies only
    assert a["active_freqs"]["256"] == mixing and a["active_freqs_all"]["256"] == n_active
    assert a["active_freqs_axis"]["256"] == n_active - mixing
    assert a["active_freqs_final"] + a["active_freqs_axis_final"] == a["active_freqs_all_final"]
    assert 1 <= a["svd_n50"] <= a["svd_n90"] <= a["svd_rank"]
    assert a["grok_epoch"] == a["grok_epoch_99"] and a["grok_order"] == a["grok_order_99"]
    assert a["missing"] == [] and a["omega_talk"]["columns"] == 168 and a["omega_talk"]["bins"] == 6
    assert list(a["omega_talk"]["table1"]) == ["256"] and list(a["omega_talk"]["talk_columns"]) == [
        "81", "101", "121", "141", "161"]
    assert a["pos_cos_dims"] == TINY["d"]  # d = 16 < 37: all dims
    json.dumps(a, allow_nan=False)
    text = fa.report(a)
    assert "mod 11" in text and "256: " in text and "talk's rule" in text and "missing" not in text
    assert "embedding key frequencies (ours, share > mean+2std): " in text


def test_grokking_epochs_stay_above_the_level():
    epochs = np.array([0, 10, 20, 30, 40])
    acc = np.array([[0.1, 0.2, 0.0, 0.99, 0.96],
                    [0.5, 0.995, 0.0, 0.99, 0.99],  # task 1 reaches 0.99 at 10, dips at 20
                    [0.99, 0.9, 0.3, 0.99, 0.94],
                    [1.0, 1.0, 0.5, 0.99, 0.97],
                    [1.0, 0.999, 0.995, 0.99, 0.951]])
    # first index from which every later value is >= the level, worked out by eye for each column
    assert fa.grokking_epochs(epochs, acc) == [20, 30, 40, 0, None]
    assert fa.grokking_epochs(epochs, acc, 0.95) == [20, 30, 40, 0, 30]  # task 4: >= 0.95 at 0 and 10, 0.94 at 20
    assert fa.grokking_order(["a", "b", "c", "d", "e"], [20, 30, 40, 0, None]) == ["d", "a", "b", "c"]


# ============================================================================ command line
def run_cli(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "fft_analysis.py"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_cli_reports_and_writes_analysis(tiny_run):
    out = tiny_run[0]
    done = run_cli(out)
    assert done.returncode == 0, done.stderr
    assert "mod 11" in done.stdout and "grokking order" in done.stdout
    with open(os.path.join(out, "analysis.json")) as f:
        a = json.load(f)
    for key in ("task", "p", "final_valid_acc", "pos_corr", "pos_cos37", "key_freqs", "key_freqs_authors",
                "svd_n50", "svd_n90", "active_freqs", "active_freqs_all", "active_freqs_axis", "omega_talk",
                "grok_epoch_99", "grok_epoch_95", "grok_order_99", "grok_order_95"):
        assert key in a, key


def test_cli_bad_run_directories(tiny_run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("config.json", "params.npz"):
        with open(os.path.join(tiny_run[0], name), "rb") as src, open(damaged / name, "wb") as dst:
            dst.write(src.read())
    (damaged / "metrics.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    bad_json = tmp_path / "bad_json"
    bad_json.mkdir()
    (bad_json / "config.json").write_text("{not json")
    for bad in (tmp_path / "missing", empty, damaged, bad_json):
        done = run_cli(str(bad))
        assert done.returncode == 2, (bad, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith("fft_analysis.py: error: ")
    done = run_cli()  # no run directory at all: a usage error
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    with pytest.raises(rundir.RunError):
        fa.load_run(str(damaged))
