"""Tests of figures.py: every figure on tiny real runs and on hand-made arrays, Table 1 against
fft_analysis, and the command line (files written, skipped figures, bad input)."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.figure import Figure

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import fft_analysis as fa  # noqa: E402
import fourier  # noqa: E402
import figures  # noqa: E402
import miiii  # noqa: E402
import rundir  # noqa: E402

TINY = dict(d=16, heads=2, epochs=300, log_every=10)
TINY_P = {"nanda": 11, "miiii": 11, "basis": 11, "masked": 13}  # masked needs a prime >= 11 in the loss
HEADS = TINY["heads"]

# panels (data axes, colour bars not counted) of each output, on the tiny runs
PANELS = {
    "fig01_neuron_activation": 1, "fig02_embedding_sinusoid": 2, "fig03_grokking": 2, "fig04_task_data": 2,
    "fig05_task_accuracy": 2, "fig06_positional_embeddings": 2, "fig07_token_embeddings_fourier": 2,
    "fig08_neurons": 6, "fig09_neuron_spectra": 6, "fig10_active_frequencies": 1,
    "fig11_omega_and_accuracy": 3, "extra_loss_curves": 2, "extra_singular_values": 2,
    "extra_gradient_norms": 1, "extra_attention_nanda": 3 * HEADS, "extra_attention_miiii": 3 * HEADS,
    "extra_dft_matrix": 2, "extra_basis_control": 6, "extra_masked_accuracy": 2,
}


# the progress-measure figures draw_all adds (figures.draw_progress): T_nanda, and T_miiii's first three tasks
PROGRESS = ["extra_progress_measures_nanda"] + [f"extra_progress_measures_miiii_q{q}" for q in (2, 3, 5)]


def make_run(out, task):
    """A tiny real run with every training record (omega.npz, omega_talk.npz, grad_norms.npz, params_256.npz)."""
    cfg = {**miiii.DEFAULTS, **TINY, "task": task, "p": TINY_P[task]}
    state = {}
    params, metrics = miiii.train(cfg, progress=False, hooks=miiii.training_hooks(cfg, state))
    miiii.write_run(out, cfg, params, metrics)
    rundir.finish_records(out, state)
    return str(out)


@pytest.fixture(scope="session")
def run_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("figure-runs")
    return {task: make_run(base / task, task) for task in TINY_P}


@pytest.fixture(scope="session")
def runs(run_dirs):
    return figures.load_runs(run_dirs)


def check_labelled(fig):
    """Every panel has a y label, and an x label of its own or on a panel sharing its x axis."""
    for ax in figures.panels(fig):
        assert ax.get_ylabel(), f"panel {ax.get_title()!r} has no y label"
        shared = ax.get_shared_x_axes().get_siblings(ax)
        assert any(a.get_xlabel() for a in shared), f"panel {ax.get_title()!r} has no x label"


def run_cli(*args):
    return subprocess.run([sys.executable, "figures.py", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


# ============================================================================ on real runs
def test_plan_covers_every_output():
    assert [stem for stem, _, _ in figures.PLAN] == list(PANELS)


@pytest.mark.parametrize("stem, needs, draw", figures.PLAN, ids=[stem for stem, _, _ in figures.PLAN])
def test_every_figure_on_a_tiny_real_run(runs, stem, needs, draw):
    fig = draw(runs)
    assert isinstance(fig, Figure)
    assert len(figures.panels(fig)) == PANELS[stem]
    check_labelled(fig)


# ============================================================================ on hand-made arrays
def wave(p, k, phase=0.0):
    return np.cos(2 * np.pi * k * np.arange(p) / p + phase)


def planted_grids(p, n=4):
    """n neuron grids [x0, x1]: neuron 2 a pure wave along x0 + x1, the others noise, neuron 3 dead."""
    rng = np.random.default_rng(0)
    grids = rng.random((n, p, p)).astype(np.float32)
    x0, x1 = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    grids[2] = 1 + np.cos(2 * np.pi * 3 * (x0 + x1) / p)
    grids[3] = 0.0
    return grids


def test_neuron_figures_on_planted_grids():
    p = 13
    grids = planted_grids(p)
    fig = figures.fig_neuron_activation(grids)
    assert "neuron 2" in figures.panels(fig)[0].get_title()  # the pure wave is the clearest neuron
    np.testing.assert_array_equal(figures.panels(fig)[0].images[0].get_array(), grids[2])  # rows x0, cols x1
    check_labelled(fig)
    for fig in (figures.fig_neurons(grids, grids), figures.fig_neuron_spectra(grids, grids),
                figures.fig_basis_control(grids)):
        assert len(figures.panels(fig)) == 6
        check_labelled(fig)


def test_spectrum_circles_the_planted_frequency():
    p = 13
    grids = planted_grids(p)
    fig = figures.fig_neuron_spectra(grids, grids)
    ax = figures.panels(fig)[2]  # T_nanda neuron 2: the pure wave cos(2 pi 3 (x0 + x1) / p)
    circled = ax.collections[0].get_offsets()  # (k1, k0) of the active frequencies
    assert [tuple(c) for c in circled] == [(3, 3)]
    image = np.asarray(ax.images[0].get_array())  # rows k0 = -p//2 .. p//2
    assert image.shape == (p, p // 2 + 1)
    assert np.unravel_index(image.argmax(), image.shape) == (3 + p // 2, 3)
    left, right, bottom, top = ax.images[0].get_extent()  # one unit per pixel, centred on the integers
    assert (left, right, bottom, top) == (-0.5, p // 2 + 0.5, -(p // 2) - 0.5, p - 1 - p // 2 + 0.5)


@pytest.mark.parametrize("p", [11, 12])
def test_signed_frequencies_match_the_spectrum_rows(p):
    k0 = np.arange(p)
    shown = np.roll(k0, p // 2)  # the order draw_spectrum shows the rows in, bottom to top
    np.testing.assert_array_equal(figures.signed_k(shown, p), np.arange(-(p // 2), p - p // 2))


def test_embedding_sinusoid_is_the_projection_fit():
    p, d = 17, 6
    rng = np.random.default_rng(1)
    tok = rng.normal(0, 0.05, (p + 1, d))
    tok[:p, 4] += 0.8 * wave(p, 5, 0.7) + 0.3  # dimension 4 carries frequency 5
    fig = figures.fig_embedding_sinusoid(tok)
    ax = figures.panels(fig)[0]
    assert "k = 5" in ax.get_title() and ax.get_ylabel() == "embedding dim 4"
    # at the tokens, the drawn formula is fft_analysis's projection on const, cos 5, sin 5
    coeffs = fourier.project(tok[:p, 4])
    kept = np.zeros(p)
    kept[[0, 9, 10]] = coeffs[[0, 9, 10]]
    fit = fourier.unproject(kept)
    np.testing.assert_allclose(ax.lines[0].get_ydata()[::20], fit, atol=1e-9)
    # folded: token x sits at 5 x mod p, on one period of the same curve
    folded = figures.panels(fig)[1]
    u = 5 * np.arange(p) % p
    np.testing.assert_array_equal(folded.lines[1].get_xdata(), u)
    np.testing.assert_allclose(folded.lines[0].get_ydata()[::20][u], fit, atol=1e-9)
    check_labelled(fig)


def test_embedding_comparisons_on_built_embeddings():
    p, d = 59, 8  # mean + 2 std picks 3 equal frequencies only when there are enough others (p/10)
    rng = np.random.default_rng(2)
    tok = rng.normal(0, 0.01, (p + 1, d))
    for j, k in enumerate((2, 7, 9)):
        tok[:p, j] += wave(p, k)
    tok[:p, 3] += 0.5  # a constant: frequency 0 for the authors' rule, nothing for ours
    fig = figures.fig_token_embeddings_fourier(tok, tok)
    ax = figures.panels(fig)[0]
    red = [t.get_text() for t in ax.get_xticklabels() if t.get_color() == "red"]
    assert red == ["2", "7", "9"] == [str(k) for k in fourier.embedding_fourier(tok)["key_freqs"]]
    # two marker styles above the image: ours (triangles) and the authors' (circles), at the columns
    ours, authors = ax.collections[:2]
    assert "ours" in ours.get_label() and "authors'" in authors.get_label()
    labels = fourier.fourier_labels(p)
    x_of = {0: 0.0, **{k: labels.index(f"cos {k}") + 0.5 for k in range(1, p // 2 + 1)}}  # cos k, sin k: 2k-1, 2k
    assert ours.get_offsets()[:, 0].tolist() == [x_of[k] for k in (2, 7, 9)] == [3.5, 13.5, 17.5]
    assert authors.get_offsets()[:, 0].tolist() == [x_of[k] for k in (0, 2, 7, 9)]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [ours.get_label(), authors.get_label()]
    pos = np.stack([wave(d, 1), wave(d, 1) * 0.5 + 0.1, wave(d, 2)])
    fig = figures.fig_positional_embeddings(pos, -pos)
    # Pearson 1.00; cosine (d = 8 < 37: all dims) = 0.5 |w|^2 / (|w| |0.5 w + 0.1|) = 2 / (2 sqrt(1.08))
    assert round(2 / (2 * np.sqrt(1.08)), 2) == 0.96
    titles = [ax.get_title() for ax in figures.panels(fig)]
    assert all("Pearson r = 1.00" in t and "cosine = 0.96" in t and "all 8 dims" in t for t in titles)
    assert "talk: 0.95" in titles[0] and "0.64" in titles[1]
    for fig in (figures.fig_token_embeddings_fourier(tok, tok), figures.fig_singular_values(tok, tok * 2),
                figures.fig_positional_embeddings(pos, pos)):
        assert len(figures.panels(fig)) == 2
        check_labelled(fig)


def hand_metrics(T, L=20):
    epochs = np.concatenate([[0], 2 ** np.arange(L - 1)])
    ramp = np.linspace(0, 1, L)[:, None] * np.ones(T)
    return {"epochs": epochs, "train_acc": ramp, "valid_acc": ramp ** 3, "train_loss": 1.5 - ramp,
            "valid_loss": 1.6 - ramp, "step_loss": np.ones(int(epochs[-1]))}


def hand_omega(S=12, F=40, ever=(3, 17, 8), always=20):
    """omega.npz arrays: ever[i] is active in the model from snapshot 2 + 3 i on, `always` throughout.

    At p = 9, w = 3 is (0, 4), an axis frequency; 17 = (3, 3), 8 = (1, 4), 20 = (4, 1) mix x0 and x1.
    """
    epochs = np.concatenate([[0], 2 ** np.arange(S - 1)])
    counts = np.ones((S, F), dtype=np.int64)
    active = np.zeros((S, F), dtype=bool)
    for i, w in enumerate(ever):
        active[2 + 3 * i:, w] = True
        counts[2 + 3 * i:, w] = 10 + i
    active[:, always], counts[:, always] = True, 50
    p = 9  # (p^2 - 1) / 2 = 40 frequencies
    return {"epochs": epochs, "freqs": fourier.frequency_index(p), "counts": counts, "live": np.full(S, 30),
            "share": np.full(S, 0.05), "active": active, "n_active": active.sum(axis=1)}


def test_omega_rows_are_the_ever_active_mixing_frequencies_in_order_of_appearance():
    omega = hand_omega()
    assert [tuple(omega["freqs"][w]) for w in (3, 17, 8, 20, 4, 5, 6)] == [
        (0, 4), (3, 3), (1, 4), (4, 1), (1, 0), (1, 1), (1, 2)]
    rows, note = figures.omega_rows(omega)  # w = 3, an axis frequency, is never a row
    assert rows.tolist() == [20, 17, 8] and "3 mixing frequencies ever active" in note
    rows, note = figures.omega_rows(omega, max_rows=2)  # capped: the changing ones first, by peak count
    assert rows.tolist() == [17, 8] and "2 of the 3 mixing frequencies ever active" in note
    rows, note = figures.omega_rows(omega, max_rows=1)
    assert rows.tolist() == [8]  # peak 12 beats 17's 11
    quiet = {**omega, "active": np.zeros_like(omega["active"])}
    rows, note = figures.omega_rows(quiet, max_rows=5)  # none active: the highest mixing counts
    assert rows.tolist() == [20, 8, 17, 5, 6] and "no mixing frequency active" in note
    # w = 20 is active throughout, w = 3 is an axis frequency, 17 and 8 join at snapshots 5 and 8
    np.testing.assert_array_equal(figures.mixing_counts(omega), [1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3])


def test_training_figures_on_hand_made_records():
    omega, T = hand_omega(), 4
    fig = figures.fig_active_frequencies(omega)
    ax = figures.panels(fig)[0]
    p = 9
    labels = [t.get_text() for t in ax.get_yticklabels()]
    expected = [f"({figures.signed_k(k0, p)}, {k1})" for k0, k1 in omega["freqs"][[20, 17, 8]]]
    assert labels == expected == ["(4, 1)", "(3, 3)", "(1, 4)"]
    assert len(ax.collections[1].get_offsets()) == omega["active"][1:][:, [20, 17, 8]].sum()  # a dot per active cell
    grad_norms = {"epochs": np.arange(0, 100, 10), **{n: np.linspace(2, 1, 10) for n in miiii.PARAM_NAMES}}
    attention = np.random.default_rng(0).dirichlet(np.ones(3), size=(3, 7, 7)).transpose(0, 3, 1, 2)
    for fig, n in ((fig, 1), (figures.fig_omega_and_accuracy(omega, hand_metrics(T), [2, 3, 5, 7]), 3),
                   (figures.fig_grokking(hand_metrics(1)), 2),
                   (figures.fig_task_accuracy(hand_metrics(T), [2, 3, 5, 7]), 2),
                   (figures.fig_task_accuracy(hand_metrics(T), [2, 3, 5, 7], mask=[0, 0, 1, 1], loss=True), 2),
                   (figures.fig_gradient_norms(grad_norms), 1), (figures.fig_attention(attention, "T"), 9),
                   (figures.fig_dft_matrix(8), 2), (figures.fig_task_data(), 2)):
        assert len(figures.panels(fig)) == n
        check_labelled(fig)


def test_task_data_shows_the_training_targets():
    fig = figures.fig_task_data()
    top, bottom = figures.panels(fig)
    n = np.asarray(top.images[0].get_array())
    assert n[3, 5] == 3 + 7 * 5  # rows x0, columns x1
    y = np.asarray(bottom.images[0].get_array())
    x0, x1 = np.meshgrid(np.arange(13), np.arange(13), indexing="ij")
    np.testing.assert_array_equal(y, (x0 + 13 * x1) % 11)


# ============================================================================ Table 1
def table_rows(text):
    """{row label: [cells]} of a markdown table."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_table1_holds_fft_analysis_numbers(run_dirs, runs, tmp_path):
    analysis = fa.analyse_run(run_dirs["miiii"])
    omega = runs["miiii"]["omega"]
    mixing = (omega["freqs"] != 0).all(axis=1)  # k0, k1 both non-zero
    reported = {int(e): n for e, n in analysis["active_freqs"].items()}
    assert reported == {int(e): int((a & mixing).sum()) for e, a in zip(omega["epochs"], omega["active"])
                        if e in fourier.TABLE1_EPOCHS}
    figures.draw_all({"miiii": runs["miiii"]}, str(tmp_path), ["png"], log=lambda line: None, warn=lambda line: None)
    rows = table_rows(open(tmp_path / "table1.md").read())
    (ours,) = [cells for label, cells in rows.items() if label.startswith("ours: mixing")]
    assert ours == [str(reported[e]) if e in reported else "-" for e in fourier.TABLE1_EPOCHS]
    assert ours[0] != "-"  # a 300-epoch run reaches epoch 256
    talk = analysis["omega_talk"]["table1"]["256"]
    (count,) = [cells for label, cells in rows.items() if label.startswith("talk's rule, count")]
    (printed,) = [cells for label, cells in rows.items() if label.startswith("talk's rule, printed")]
    assert count == [str(talk["count"])] + ["-"] * 4 and printed == [str(talk["printed"])] + ["-"] * 4
    assert talk["printed"] == int(np.floor(talk["count"] ** 0.75 + 1e-9))
    (at_columns,) = [cells for label, cells in rows.items() if label.startswith("talk's rule at the talk's columns")]
    shown = analysis["omega_talk"]["talk_columns"]
    assert at_columns == [f"{v['printed']} ({v['count']})" for v in shown.values()]
    assert rows["talk (p = 113), as printed"] == ["0", "0", "10", "18", "10"]


def test_table1_markdown_on_a_hand_made_analysis():
    talk = {"columns": 168, "approximated_columns": 7,
            "table1": {"256": {"count": 0, "printed": 0}, "1024": {"count": 22, "printed": 10}},
            "talk_columns": {str(i): {"epoch": e, "count": c, "printed": int(c ** 0.75)}
                             for i, e, c in zip((81, 101, 121, 141, 161), (217, 818, 3089, 11658, 43998),
                                                (0, 1, 22, 47, 23))}}
    text = figures.table1_markdown({"active_freqs": {"256": 3, "1024": 5}, "omega_talk": talk}, "run A")
    rows = table_rows(text)
    assert rows["epoch"] == ["256", "1024", "4096", "16384", "65536"]
    assert rows["ours: mixing frequencies active in the model, run A"] == ["3", "5", "-", "-", "-"]
    assert rows["talk's rule, count (neuron 0, nearest of 168 columns), run A"] == ["0", "22", "-", "-", "-"]
    assert rows["talk's rule, printed floor(count^0.75), run A"] == ["0", "10", "-", "-", "-"]
    (at_columns,) = [cells for label, cells in rows.items() if "(here epochs 217, 818, 3089, 11658, 43998)" in label]
    assert at_columns == ["0 (0)", "1 (1)", "10 (22)", "17 (47)", "10 (23)"]
    assert "7 of 168 columns approximated" in text
    old = table_rows(figures.table1_markdown({"active_freqs": {}, "omega_talk": None}))
    assert all(cells == ["-"] * 5 for label, cells in old.items() if label.startswith(("ours", "talk's rule")))
    assert "not recorded" in figures.table1_markdown({"active_freqs": {}, "omega_talk": None})


def test_omega_counts_panel_shows_ours_and_the_talks_rule():
    omega = hand_omega()
    talk = fourier.talk_omega(np.arange(0, 1025), np.outer(np.arange(1025.0), [1.0, 0.5]) + [0.0, 2.0], 1024)
    fig = figures.fig_omega_and_accuracy(omega, hand_metrics(4), [2, 3, 5, 7], talk=talk)
    middle = figures.panels(fig)[1]
    ours, raw, printed = middle.lines
    np.testing.assert_array_equal(ours.get_ydata(), figures.mixing_counts(omega)[1:])  # epoch 0 is off the log axis
    np.testing.assert_array_equal(raw.get_ydata(), talk["counts"])
    assert printed.get_ydata().tolist() == [int(np.floor(c ** 0.75 + 1e-9)) for c in talk["counts"]]
    check_labelled(fig)


# ============================================================================ command line
def test_cli_draws_every_figure(run_dirs, tmp_path):
    out = tmp_path / "figs"
    result = run_cli(*(a for role, path in run_dirs.items() for a in (f"--{role}", path)), "--out", out)
    assert result.returncode == 0, result.stderr
    written = sorted(os.listdir(out))
    assert written == sorted([f"{stem}.png" for stem in PANELS] + [f"{stem}.png" for stem in PROGRESS] + ["table1.md"])
    assert all(os.path.getsize(out / name) > 0 for name in written)
    assert "skip" not in result.stderr
    assert "| epoch | 256 |" in result.stdout  # Table 1 printed


def test_cli_skips_what_is_missing_with_one_line_each(run_dirs, tmp_path):
    bare = tmp_path / "miiii-no-records"
    shutil.copytree(run_dirs["miiii"], bare)
    for name in os.listdir(bare):
        if name in ("omega.npz", "omega_talk.npz", "grad_norms.npz") or name.startswith("params_"):
            os.remove(bare / name)
    shutil.rmtree(bare / "records")  # the segments the combined files were made from
    out = tmp_path / "figs"
    result = run_cli("--miiii", bare, "--out", out, "--format", "svg,pdf")
    assert result.returncode == 0, result.stderr
    skipped = {line.split()[1].rstrip(":"): line for line in result.stderr.splitlines() if line.startswith("skip")}
    lacking = {"miiii": {"metrics": {"epochs": np.array([0, 1])}}}  # metrics, none of the training records
    assert set(skipped) == ({stem for stem, needs, _ in figures.PLAN if figures.missing(needs, lacking)}
                            | {"table1", "extra_progress_measures_nanda"})
    assert "no omega.npz" in skipped["fig10_active_frequencies"]
    assert "needs --nanda" in skipped["fig01_neuron_activation"]
    drawn = ({stem for stem, _, _ in figures.PLAN} - set(skipped)) | set(PROGRESS[1:])  # progress_params/ kept
    assert sorted(os.listdir(out)) == sorted(f"{stem}.{fmt}" for stem in drawn for fmt in ("svg", "pdf"))
    assert all(os.path.getsize(out / name) > 0 for name in os.listdir(out))
    assert "Traceback" not in result.stderr


def test_cli_run_of_zero_epochs_skips_the_curves(tmp_path):
    cfg = {**miiii.DEFAULTS, "task": "miiii", "p": 7, "d": 8, "heads": 2, "epochs": 0}
    state = {}
    params, metrics = miiii.train(cfg, progress=False, hooks=miiii.training_hooks(cfg, state))
    miiii.write_run(tmp_path / "run", cfg, params, metrics)
    rundir.finish_records(tmp_path / "run", state)
    result = run_cli("--miiii", tmp_path / "run", "--out", tmp_path / "figs")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for stem in ("fig05_task_accuracy", "fig10_active_frequencies", "fig11_omega_and_accuracy", "extra_loss_curves"):
        assert f"skip {stem}: the --miiii run's" in result.stderr and "after epoch 0" in result.stderr
    assert os.path.exists(tmp_path / "figs" / "extra_attention_miiii.png")


@pytest.mark.parametrize("args, message", [
    (["--nanda", "{missing}"], "nope"),  # the wording of these two is fft_analysis.load_run's
    (["--nanda", "{empty}"], "config.json"),
    (["--nanda", "{miiii}"], "is a miiii run, expected task nanda"),
    (["--format", "png,jpg"], "unknown format 'jpg'"),
    (["--format", ""], "unknown format"),
    (["--out", "{file}"], "exists and is not a directory"),
    (["--colour", "red"], "unrecognized arguments"),
])
def test_cli_bad_input_is_one_line_and_exit_2(run_dirs, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    paths = {"missing": tmp_path / "nope", "empty": tmp_path / "empty", "miiii": run_dirs["miiii"],
             "file": tmp_path / "file"}
    args = [a.format(**paths) for a in args]
    out = tmp_path / "figs"
    result = run_cli(*args, *(["--out", out] if "--out" not in args else []))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    assert not out.exists()  # nothing written


def test_cli_with_no_run_draws_what_needs_none_and_says_how_to_use_it(tmp_path):
    result = run_cli("--out", tmp_path / "figs")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("figures.py: no run given") and "usage: figures.py --nanda RUN_DIR" in lines[0]
    assert "--dpi" in lines[0] and "--dpi" in figures.__doc__.split("\n\n")[1]  # the synopsis shows --dpi
    assert sorted(os.listdir(tmp_path / "figs")) == ["extra_dft_matrix.png", "fig04_task_data.png"]


def test_the_first_tasks_have_colours_and_names_of_their_own():
    """Figures 5 and 11: q = 2 .. 19 tell apart at a glance (the claims name them); the others share greys."""
    import matplotlib.colors as mc
    moduli = miiii.primes_below(61)  # 17 tasks
    epochs = np.array([0, 1, 2, 4, 8])
    fig, ax = figures.new_figure(1, 1, 4, 3)
    mappable = figures.draw_task_curves(ax[0, 0], epochs, np.random.default_rng(0).random((5, len(moduli))), moduli)
    lines = ax[0, 0].get_lines()
    first = [mc.to_rgb(line.get_color()) for line in lines[:figures.FIRST_TASKS]]
    assert len(set(first)) == figures.FIRST_TASKS  # all different
    assert [line.get_label() for line in lines[:figures.FIRST_TASKS]] == [f"q = {q}" for q in moduli[:8]]
    rest = [mc.to_rgb(line.get_color()) for line in lines[figures.FIRST_TASKS:]]
    assert all(r == g == b for r, g, b in rest) and not set(rest) & set(first)  # greys, none of the first colours
    assert [line.get_label().startswith("_") for line in lines[figures.FIRST_TASKS:]] == [True] * len(rest)
    assert mappable.norm.vmin == 23 and mappable.norm.vmax == 59  # the colour bar covers the other tasks only
    labels = [t.get_text() for t in ax[0, 0].get_legend().get_texts()]
    assert labels == [f"q = {q}" for q in moduli[:8]]


def test_a_tall_omega_panel_shows_every_row_and_thins_only_its_labels():
    omega = hand_omega()
    S, F = omega["active"].shape
    many = {**omega, "active": np.zeros((S, F), dtype=bool), "counts": np.ones((S, F), dtype=np.int64)}
    mixing = np.flatnonzero((omega["freqs"] != 0).all(axis=1))  # 32 at p = 9
    many["active"][np.arange(len(mixing)) % S, mixing] = True
    fig, ax = figures.new_figure(1, 1, 4, 3)
    old = figures.LABELLED_ROWS
    try:
        figures.LABELLED_ROWS = 10
        mesh, note = figures.draw_omega(ax[0, 0], many)
    finally:
        figures.LABELLED_ROWS = old
    assert mesh.get_array().shape[0] == len(mixing)  # every ever-active mixing frequency is a row
    assert f"all {len(mixing)} mixing frequencies" in note and "one row in 4 labelled" in note
    assert len(ax[0, 0].get_yticks()) == 8  # 32 rows, every 4th labelled
