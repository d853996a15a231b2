"""figures: the talk's figures, Table 1 and the paper's extras, drawn from miiii run directories.

    python figures.py --nanda RUN_DIR --miiii RUN_DIR [--basis RUN_DIR] [--masked RUN_DIR]
                      [--out DIR] [--format png,svg,pdf] [--dpi 150]

draws every figure whose runs are given into --out (default runs/figures), one file per figure and
format (--dpi: PNG resolution), writes Table 1 as table1.md and prints it. A figure whose run (or
whose record in the run, e.g. omega.npz) is missing is skipped with one line saying what it lacks.
With no run at all, one usage line goes to stderr and the two figures that need no run (Figure 4,
the DFT matrix) are still drawn (exit 0). Bad input (a path that is not a run directory, a run of
the wrong task, an unknown format) is one line on stderr, exit 2.
An unfinished run (running or interrupted) is drawn as far as its last checkpoint, with one line
saying so.

This module draws; it does not analyse. Every number in a figure is either read from the run
directory or computed by fourier.py and fft_analysis.py (Fourier projections, spectra, active frequencies, SVD,
correlations, attention); the code here only selects, arranges and labels.

Figures (numbered as in the talk; file stem, then the function that draws it)
  1  fig01_neuron_activation     fig_neuron_activation        one T_nanda MLP neuron over (x0, x1)
  2  fig02_embedding_sinusoid    fig_embedding_sinusoid       an embedding dimension and its fitted sinusoid
  3  fig03_grokking              fig_grokking                 T_nanda train/valid accuracy and loss, log epochs
  4  fig04_task_data             fig_task_data                inputs X for p = 7, targets (x0 + 13 x1) mod 11
  5  fig05_task_accuracy         fig_task_accuracy            T_miiii train (top) / valid (bottom) accuracy per task
  6  fig06_positional_embeddings fig_positional_embeddings    pos_emb, T_nanda (top) vs T_miiii (bottom), with r
                                                              (ours) and cosine-37 (authors')
  7  fig07_token_embeddings_fourier
                                 fig_token_embeddings_fourier tok_emb in the Fourier basis, T_nanda vs T_miiii,
                                                              key frequencies by our rule and the authors'
  8  fig08_neurons               fig_neurons                  first three neurons, T_nanda (top) vs T_miiii (bottom)
  9  fig09_neuron_spectra        fig_neuron_spectra           their 2D power spectra, active frequencies circled
 10  fig10_active_frequencies    fig_active_frequencies       C(w) of the mixing frequencies w, through training
 11  fig11_omega_and_accuracy    fig_omega_and_accuracy       Figure 10, the Omega counts (ours and the talk's
                                                              rule) and the T_miiii validation accuracy
  T1 table1.md                   table1_markdown              Omega counts at epochs 256 .. 65536: ours (mixing),
                                                              the talk's rule (count, printed), the talk's row
 Paper extras
     extra_loss_curves           fig_task_accuracy(loss=True) T_miiii train / valid loss per task
     extra_singular_values       fig_singular_values          embedding singular values, 50 % / 90 % marks
     extra_gradient_norms        fig_gradient_norms           raw gradient norm per parameter through training
     extra_attention_nanda, extra_attention_miiii
                                 fig_attention                attention from '=' to x0, x1, '=' per head
     extra_dft_matrix            fig_dft_matrix               the Fourier basis (DFT matrix) the analysis uses
     extra_basis_control         fig_basis_control            T_basis neurons and spectra: no structure to find
     extra_masked_accuracy       fig_task_accuracy(mask=...)  T_masked accuracy per task, masked tasks dashed
     extra_progress_measures_nanda, extra_progress_measures_miiii_q<q> (the first PROGRESS_TASKS tasks)
                                 fig_progress_measures        Nanda et al.'s progress measures, phase starts
                                                              marked (from progress.npz, else computed from
                                                              progress_params.npz; skipped with one line if
                                                              the run has neither)
 RESULTS.md's figures (docs/results/, drawn by experiments/report.py from results/runs)
     sweep_min_valid_acc         fig_sweep                    the sweep: each run's slowest task
     softmax_collapse            fig_softmax_collapse         collapsed share and training loss, wd 1 vs 0
     filters_compared            fig_filters_compared         the GrokFast filters, T_nanda and T_miiii
     miiii_filters, nanda_filters
                                 fig_mean_valid_acc           mean validation accuracy of groups of runs

Conventions
  Grids over the inputs are [x0, x1] (docs/definitions.md §1): x0 on the vertical axis (increasing upwards), x1 on
  the horizontal one. Spectra are [k0, k1], k0 shown from -p//2 to p//2 (a negative k0 is the
  frequency p + k0 of rfft2), k1 from 0 to p//2.
  One colour map for signed values (SIGNED, zero white, symmetric limits) and one for magnitudes
  (MAGNITUDE); categorical lines use matplotlib's default cycle.
  Epoch axes are logarithmic (as in the talk); epoch 0 has no place on them and is left out.
  A figure's "panels" are its data axes; colour bars are not counted.

Figures are built with matplotlib.figure.Figure, never pyplot: nothing is shown, no backend or
display is needed (PNG is rendered by Agg), and a figure is freed when it is dropped.
"""
import os
import sys
import time

import numpy as np
import matplotlib
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

import fft_analysis as fa
import fourier
import miiii
import rundir

SIGNED = "RdBu_r"  # signed values: blue negative, white zero, red positive
MAGNITUDE = "viridis"  # magnitudes (activations, power, counts, accuracy-by-task colours)
FORMATS = ("png", "svg", "pdf")
TALK_TABLE1 = fourier.TALK_TABLE1  # the talk's Table 1 as printed (p = 113)
TALK_POS = {"T_nanda": "0.95", "T_miiii": "\u22120.64 (printed 0.64)"}  # the talk's positional similarity
MAX_OMEGA_ROWS = 60  # Figure 10 rows when no mixing frequency is ever active: this many highest counts
LABELLED_ROWS = 60  # Figure 10 tick labels: every row up to this many rows, else evenly thinned
FIRST_TASKS = 8  # the smallest primes (2 .. 19) drawn in colours of their own: the talk's claims name them
FIRST_COLORS = ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C9")  # tab10 without its grey and olive
N_NEURONS = 3  # "first three neurons" (Figures 8, 9 and the T_basis control)
PROGRESS_TASKS = 3  # T_miiii tasks drawn with their progress measures: the first three (q = 2, 3, 5)

# the other tasks in greys (light: small q, dark: large q), so no colour of FIRST_COLORS recurs among them
OTHER_TASKS = matplotlib.colors.ListedColormap(matplotlib.colormaps["Greys"](np.linspace(0.3, 0.9, 256)), "greys")

# Readable at slide size. Set on import: every figure of this module shares it.
matplotlib.rcParams.update({
    "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "xtick.labelsize": 9,
    "ytick.labelsize": 9, "legend.fontsize": 9, "figure.dpi": 100, "savefig.dpi": 150,
    "axes.spines.top": False, "axes.spines.right": False, "image.interpolation": "nearest",
})


# ============================================================================ layout helpers
def new_figure(rows, cols, width, height, **kwargs):
    """A constrained-layout Figure and its (rows, cols) array of axes."""
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False, **kwargs)


def panels(fig):
    """The data axes of a figure (colour bars are axes too, but not panels)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def symmetric(a):
    """Colour limits +-max|a| for a signed map, so white is exactly zero."""
    m = float(np.max(np.abs(a))) if np.size(a) else 0.0
    return (-m, m) if m > 0 else (-1.0, 1.0)


def draw_grid(ax, grid, cmap=MAGNITUDE, vlim=None):
    """An input grid [x0, x1]: x0 up the vertical axis, x1 along the horizontal one."""
    vmin, vmax = vlim if vlim is not None else (None, None)
    im = ax.imshow(grid, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, aspect="equal")
    ax.set_xlabel("x1")
    ax.set_ylabel("x0")
    return im


def draw_spectrum(ax, power, mark_active=True):
    """A neuron's power |rfft2|^2 over [k0, k1], k0 centred on 0; active frequencies circled."""
    p = power.shape[0]
    shown = np.roll(power, p // 2, axis=0)  # row i is k0 = i - p//2 (rfft2 stores k0 mod p)
    extent = (-0.5, power.shape[1] - 0.5, -(p // 2) - 0.5, p - 1 - p // 2 + 0.5)  # pixel centres on integers
    im = ax.imshow(shown, origin="lower", cmap=MAGNITUDE, extent=extent, aspect="equal")
    if mark_active:
        active = fourier.neuron_active(power[None])[0]  # (F,) the w > mu + 2 sigma rule of fourier.neuron_active
        k = fourier.frequency_index(p)[active]  # (n, 2) as (k0, k1)
        size = max(6.0, (1.5 * 180 / p) ** 2)  # circles ~1.5 pixels wide: a ~180 pt tall panel holds p pixels
        ax.scatter(k[:, 1], signed_k(k[:, 0], p), s=size, facecolors="none", edgecolors="red",
                   linewidths=0.8 if p < 60 else 0.5)
    ax.set_xlabel("k1 (frequency along x1)")
    ax.set_ylabel("k0 (along x0)")
    return im


def signed_k(k0, p):
    """rfft2 row k0 (0 .. p-1) as the signed frequency -p//2 .. (p-1)//2 shown on spectra: k0 - p above."""
    return (np.asarray(k0) + p // 2) % p - p // 2


def positive_epochs(epochs, *arrays):
    """Drop epoch 0 (no place on a log axis) from epochs and the arrays that go with them."""
    keep = np.asarray(epochs) > 0
    return (np.asarray(epochs)[keep],) + tuple(np.asarray(a)[keep] for a in arrays)


def epoch_axis(ax, label=True):
    """A log epoch axis; label=False for the upper panels of a shared axis."""
    ax.set_xscale("log")
    ax.set_xlabel("epoch (log scale)" if label else "")


def draw_task_curves(ax, epochs, values, moduli, mask=None, xlabel=True):
    """One line per task. The first FIRST_TASKS tasks (the smallest primes) each in a colour of their
    own, named in a legend; the others coloured by q on a continuous scale; tasks with loss weight 0
    dashed and thicker.

    Returns the ScalarMappable for the colour bar of the other tasks (None if there are none).
    """
    epochs, values = positive_epochs(epochs, values)
    moduli = list(moduli)
    masked = [q for t, q in enumerate(moduli) if mask is not None and mask[t] == 0]
    if len(moduli) == 1:
        ax.plot(epochs, values[:, 0], color="C0", linewidth=1.5, label=f"mod {moduli[0]}")
        epoch_axis(ax, xlabel)
        ax.legend(loc="best")
        return None
    rest = moduli[FIRST_TASKS:]
    norm = Normalize(min(rest), max(max(rest), min(rest) + 1)) if rest else None
    cmap = OTHER_TASKS
    for t, q in enumerate(moduli):
        first = t < FIRST_TASKS
        color = FIRST_COLORS[t] if first else cmap(norm(q))
        style = dict(linestyle="--", linewidth=2.0) if q in masked else \
            dict(linewidth=1.6 if first else 1.0, alpha=1.0 if first else 0.8)
        label = f"q = {q}" + (" (masked in the loss)" if q in masked else "") if first else None
        ax.plot(epochs, values[:, t], color=color, label=label, zorder=3 if first else 2, **style)
    epoch_axis(ax, xlabel)
    ax.legend(loc="best", fontsize=7, ncol=2, framealpha=0.85)
    return None if not rest else ScalarMappable(norm=norm, cmap=cmap)


def log_edges(centres):
    """Cell edges around positive, increasing centres, halfway between them in log space."""
    logc = np.log(np.asarray(centres, dtype=np.float64))
    if len(logc) == 1:
        return np.exp(logc[0] + np.array([-0.2, 0.2]))
    mid = (logc[1:] + logc[:-1]) / 2
    return np.exp(np.concatenate([[2 * logc[0] - mid[0]], mid, [2 * logc[-1] - mid[-1]]]))


def omega_rows(omega, max_rows=None):
    """Which frequencies w Figure 10 shows, in display order, and a note on the choice.

    Only mixing frequencies (k0 != 0 and k1 != 0: our Omega count; the axis ones are active from
    initialisation in every run, see docs/analysis.md). Of those, every one ever active in the model
    (C(w) above fourier's 4-sigma line at some snapshot), ordered by the first snapshot at
    which it is active, so the Omega spike reads top-left to bottom-right. max_rows (None: all) caps
    the rows for small panels: those whose state changes during training first (a w active at every
    snapshot says nothing about timing), each group by peak count. With none ever active: the
    MAX_OMEGA_ROWS mixing frequencies of highest peak count, in order of peak count.
    """
    counts, active = np.asarray(omega["counts"]), np.asarray(omega["active"], dtype=bool)  # (S, F)
    mixing = (np.asarray(omega["freqs"]) != 0).all(axis=1)  # (F,)
    peak = np.where(mixing, counts.max(axis=0), -1)  # (F,): axis frequencies never chosen
    ever = np.flatnonzero(active.any(axis=0) & mixing)
    if len(ever) == 0:
        rows = np.argsort(-peak, kind="stable")[:min(max_rows or MAX_OMEGA_ROWS, int(mixing.sum()))]
        rows = rows[peak[rows] > 0] if (peak[rows] > 0).any() else rows
        return rows, f"no mixing frequency active in the model; the {len(rows)} highest counts"
    note = f"all {len(ever)} mixing frequencies ever active in the model"
    if max_rows is not None and len(ever) > max_rows:
        always = active[:, ever].all(axis=0)  # (n,)
        keep = np.lexsort((-peak[ever], always))[:max_rows]  # changing ones first, then by peak count
        note = (f"{max_rows} of the {len(ever)} mixing frequencies ever active in the model: "
                f"{int((~always[keep]).sum())} that change, {int(always[keep].sum())} always active")
        ever = ever[keep]
    first = active[:, ever].argmax(axis=0)  # (n,) first active snapshot
    return ever[np.lexsort((ever, first))], note


def mixing_counts(omega):
    """(S,) our Omega count at each snapshot: the mixing frequencies active in the model."""
    mixing = (np.asarray(omega["freqs"]) != 0).all(axis=1)  # (F,)
    return (np.asarray(omega["active"], dtype=bool) & mixing).sum(axis=1)  # (S, F) -> (S,)


def omega_height(omega):
    """Inches for the Figure 10 heat map: a readable row height, at most 7.5 inches in all."""
    return float(np.clip(0.15 * len(omega_rows(omega)[0]), 2.0, 7.5))


def draw_omega(ax, omega, max_rows=None, xlabel=True):
    """C(w) for the chosen frequencies (rows) at each snapshot (columns, log epochs); dots = active."""
    rows, note = omega_rows(omega, max_rows)
    freqs = np.asarray(omega["freqs"])
    p = int(freqs[:, 0].max()) + 1  # k0 runs over 0 .. p-1 (columns 0 < k1 < p/2 hold every k0)
    epochs, counts, active = positive_epochs(omega["epochs"], omega["counts"], omega["active"])
    counts, active = counts[:, rows].T, active[:, rows].T  # (S, F) -> (n, S)
    mesh = ax.pcolormesh(log_edges(epochs), np.arange(len(rows) + 1) - 0.5, counts, cmap=MAGNITUDE,
                         shading="flat")
    r, s = np.nonzero(active)
    ax.scatter(epochs[s], r, s=4, color="white", edgecolors="none", label="active in the model")
    every = -(-len(rows) // LABELLED_ROWS)
    ticks = np.arange(len(rows))[::every]  # every row, or every k-th of many
    note += f" (one row in {every} labelled)" if every > 1 else ""
    ax.set_yticks(ticks)
    ax.set_yticklabels([f"({signed_k(freqs[rows[i], 0], p)}, {freqs[rows[i], 1]})" for i in ticks],
                       fontsize=7 if len(ticks) > 25 else 9)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first-active frequency at the top
    ax.set_ylabel("frequency w = (k0, k1)")
    epoch_axis(ax, xlabel)
    return mesh, note


# ============================================================================ figures
def pick_neuron(grids):
    """The neuron whose power is most concentrated in one frequency (the clearest wave)."""
    power = fourier.neuron_power(grids)  # (n, p, p//2+1)
    total = power.reshape(len(power), -1).sum(axis=1)
    peak = power.reshape(len(power), -1).max(axis=1)
    concentration = np.where(total > 0, peak / np.where(total > 0, total, 1.0), -1.0)  # dead: -1
    return int(np.argmax(concentration))


def fig_neuron_activation(grids, neuron=None, task="T_nanda"):
    """Figure 1: one MLP neuron's activation over all inputs (x0, x1). 1 panel.

    grids: (n, p, p) from fft_analysis.neuron_grids; neuron=None picks the most periodic one.
    """
    j = pick_neuron(grids) if neuron is None else int(neuron)
    fig, ax = new_figure(1, 1, 5.4, 4.6)
    im = draw_grid(ax[0, 0], grids[j])
    fig.colorbar(im, ax=ax[0, 0], label="activation (ReLU output)")
    ax[0, 0].set_title(f"{task}: MLP neuron {j} at '='")
    return fig


def fig_embedding_sinusoid(tok_emb, task="T_nanda"):
    """Figure 2: a learned embedding dimension against the sinusoid fitted to it. 2 panels.

    The dimension is the one with most energy at the model's strongest frequency k; the fit is its
    projection on the constant, cos k and sin k rows of fourier.fourier_basis (the
    least-squares sinusoid of frequency k), drawn as the formula c + A cos(2 pi k x / p - phi).
    Top: against the token x. Bottom: the same points with the tokens reordered by k x mod p, where
    the k periods fold onto one (cos(2 pi k x / p) = cos(2 pi (k x mod p) / p)), so the wave is plain.
    """
    p = tok_emb.shape[0] - 1
    embedding = fourier.embedding_fourier(tok_emb)
    coeffs = embedding["coeffs"]  # (p, d)
    k = int(np.argmax(embedding["energy"])) + 1  # the strongest frequency
    labels = fourier.fourier_labels(p)
    wave_rows = [labels.index(f"cos {k}")] + ([labels.index(f"sin {k}")] if f"sin {k}" in labels else [])
    j = int(np.argmax((coeffs[wave_rows] ** 2).sum(axis=0)))  # the dimension most in tune with k
    share = fourier.frequency_energy(coeffs[:, j])[k - 1]  # share of the dimension's variance at k: the fit's R^2
    # the coefficients as a formula: B[cos row, 0] is the scale of the cos (and sin) row, B[0, 0] the const's
    B = fourier.fourier_basis(p)
    a = coeffs[wave_rows[0], j] * B[wave_rows[0], 0]
    b = coeffs[wave_rows[1], j] * B[wave_rows[0], 0] if len(wave_rows) > 1 else 0.0
    c, amp, phi = coeffs[0, j] * B[0, 0], float(np.hypot(a, b)), float(np.arctan2(b, a))
    x = np.linspace(0, p - 1, 20 * (p - 1) + 1)  # every 20th point is a token
    tokens, values = np.arange(p), tok_emb[:p, j]
    sign = "\u2212" if phi >= 0 else "+"
    fig, ax = new_figure(2, 1, 8.0, 6.6)
    top, bottom = ax[0, 0], ax[1, 0]
    top.plot(x, c + amp * np.cos(2 * np.pi * k * x / p - phi), color="C1", linewidth=1.2,
             label=f"fitted sinusoid: {c:.2f} + {amp:.2f} cos(2\u03c0\u00b7{k}x/{p} {sign} {abs(phi):.2f}),"
                   f"  R\u00b2 = {share:.2f}")
    top.plot(tokens, values, "o", color="C0", markersize=4, label=f"tok_emb[x, {j}]")
    top.set_xlabel("token x")
    top.set_ylabel(f"embedding dim {j}")
    top.set_title(f"{task}: a learned embedding direction is a wave of frequency k = {k}")
    bottom.plot(x, c + amp * np.cos(2 * np.pi * x / p - phi), color="C1", linewidth=1.5)  # one period
    bottom.plot(k * tokens % p, values, "o", color="C0", markersize=4)
    bottom.set_xlabel(f"{k} x mod {p} (tokens reordered: the {k} periods folded onto one)")
    bottom.set_ylabel(f"embedding dim {j}")
    fig.legend(*top.get_legend_handles_labels(), loc="outside lower center", ncol=2, frameon=False)
    return fig


def fig_grokking(metrics, task="T_nanda"):
    """Figure 3: grokking, train vs valid accuracy (top) and loss (bottom) on log epochs. 2 panels.

    metrics: the metrics.npz arrays; several tasks are averaged (T_nanda has one).
    """
    epochs, ta, va, tl, vl = positive_epochs(
        metrics["epochs"], *(np.asarray(metrics[key]).mean(axis=1)
                             for key in ("train_acc", "valid_acc", "train_loss", "valid_loss")))
    fig, ax = new_figure(2, 1, 7.0, 6.0, sharex=True)
    ax[0, 0].plot(epochs, ta, color="C0", label="train")
    ax[0, 0].plot(epochs, va, color="C1", label="validation")
    ax[0, 0].set_ylabel("accuracy")
    ax[0, 0].set_ylim(-0.02, 1.02)
    ax[0, 0].legend(loc="upper left")
    ax[0, 0].set_title(f"{task}: grokking (generalisation long after memorisation)")
    ax[1, 0].plot(epochs, tl, color="C0", label="train")
    ax[1, 0].plot(epochs, vl, color="C1", label="validation")
    ax[1, 0].axhline(1.0, color="grey", linewidth=0.8, linestyle=":", label="chance")
    ax[1, 0].set_yscale("log")
    ax[1, 0].set_ylabel("loss / ln q (log scale)")
    ax[1, 0].legend(loc="lower left")
    epoch_axis(ax[0, 0], label=False)
    epoch_axis(ax[1, 0])
    return fig


def annotate_cells(ax, grid, texts, vmax, fontsize):
    """Write texts[x0][x1] in each cell of a grid image; dark text on the bright end of the map."""
    for x0 in range(grid.shape[0]):
        for x1 in range(grid.shape[1]):
            ax.text(x1, x0, texts[x0][x1], ha="center", va="center", fontsize=fontsize,
                    color="black" if grid[x0, x1] > 0.6 * vmax else "white")


def fig_task_data(p_inputs=7, p_targets=13, q=11):
    """Figure 4: the inputs X for p = 7 (top) and the targets n mod 11 for p = 13 (bottom). 2 panels.

    Both come from miiii.make_task, i.e. exactly what the model is trained on: sample n is the
    sequence [x0, x1, '='] with n = x0 + x1 p, and T_miiii's target for prime q is n mod q.
    Both are grids [x0, x1]; the top one is coloured by n, the number the pair stands for.
    """
    x = miiii.make_task("miiii", p_inputs)["x"]  # (p^2, 3) in sample order n
    task = miiii.make_task("miiii", p_targets)
    y = task["y"][:, task["moduli"].index(q)]  # (p^2,) n mod q
    fig = Figure(figsize=(7.0, 11.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=[p_inputs, p_targets])
    n = np.arange(p_inputs ** 2).reshape(p_inputs, p_inputs).T  # docs/definitions.md §1: grid = reshape(p, p).T
    sequences = x.reshape(p_inputs, p_inputs, 3).transpose(1, 0, 2)  # (x1, x0, 3) -> (x0, x1, 3)
    im = draw_grid(top, n, vlim=(0, n.max()))
    annotate_cells(top, n, [[f"{a} {b} =" for a, b, _ in row] for row in sequences], n.max(), 8)
    top.set_title(f"X for p = {p_inputs}: every input [x0, x1, =]")
    fig.colorbar(im, ax=top, label=f"n = x0 + {p_inputs} x1")
    grid = y.reshape(p_targets, p_targets).T  # [x0, x1]
    im = draw_grid(bottom, grid, vlim=(0, q - 1))
    annotate_cells(bottom, grid, grid.astype(str).tolist(), q - 1, 8)
    bottom.set_title(f"Y for q = {q}, p = {p_targets}: (x0 + {p_targets} x1) mod {q}")
    fig.colorbar(im, ax=bottom, label=f"target (one of {q} classes)")
    return fig


def fig_task_accuracy(metrics, moduli, task="T_miiii", mask=None, loss=False):
    """Figure 5: train (top) and validation (bottom) accuracy per task on log epochs. 2 panels.

    One line per task, coloured by its prime q. mask (T,) loss weights: tasks with weight 0 are
    drawn dashed (T_masked). loss=True draws the per-task loss / ln q instead (a paper extra).
    """
    kind = "loss" if loss else "acc"
    fig, ax = new_figure(2, 1, 8.0, 6.5, sharex=True)
    for row, split in enumerate(("train", "valid")):
        a = ax[row, 0]
        mappable = draw_task_curves(a, metrics["epochs"], metrics[f"{split}_{kind}"], moduli, mask,
                                    xlabel=row == 1)
        name = "training" if split == "train" else "validation"
        if loss:
            a.set_yscale("log")
            a.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
            a.set_ylabel(f"{name} loss / ln q")
        else:
            a.set_ylim(-0.02, 1.02)
            a.set_ylabel(f"{name} accuracy")
    if mappable is not None:
        fig.colorbar(mappable, ax=ax[:, 0].tolist(), label="other tasks: prime q")
    what = "loss (chance = 1)" if loss else "accuracy"
    ax[0, 0].set_title(f"{task}: {what} per task, training (top) and validation (bottom)")
    return fig


def fig_positional_embeddings(pos_nanda, pos_miiii):
    """Figure 6: positional embeddings, T_nanda (top) and T_miiii (bottom). 2 panels.

    Titled with the similarity of the x0 and x1 rows by both rules: Pearson r over all dims (ours)
    and the cosine of the first 37 dims (the authors'; all dims if d < 37), and the talk's value.
    """
    fig, ax = new_figure(2, 1, 10.0, 4.6)
    fmt = lambda v: "undefined" if np.isnan(v) else f"{v:.2f}"  # noqa: E731
    for a, pos, task in ((ax[0, 0], pos_nanda, "T_nanda"), (ax[1, 0], pos_miiii, "T_miiii")):
        im = a.imshow(pos, cmap=SIGNED, aspect="auto", vmin=symmetric(pos)[0], vmax=symmetric(pos)[1])
        r = fourier.positional_correlation(pos)
        cos, dims = fourier.positional_cosine(pos)
        a.set_yticks([0, 1, 2])
        a.set_yticklabels(["x0", "x1", "="])
        a.set_ylabel("position")
        a.set_xlabel("embedding dimension")
        a.set_title(f"{task}, x0 vs x1: Pearson r = {fmt(r)} (ours, all {pos.shape[1]} dims); "
                    f"cosine = {fmt(cos)} (authors', {'first' if dims < pos.shape[1] else 'all'} {dims} dims); "
                    f"talk: {TALK_POS[task]}", fontsize=10)
        fig.colorbar(im, ax=a, label="weight")
    return fig


def frequency_ticks(n_freqs, keys, most=12):
    """Which k = 1 .. n_freqs to tick: every key frequency, and a regular spacing that keeps clear of them."""
    step = max(1, -(-n_freqs // most))  # ceil
    regular = [k for k in range(step, n_freqs + 1, step) if all(abs(k - key) > step // 2 for key in keys)]
    return sorted(set(regular) | set(keys))


def fig_token_embeddings_fourier(tok_nanda, tok_miiii):
    """Figure 7: token embeddings in the Fourier basis, T_nanda (top) and T_miiii (bottom). 2 panels.

    Columns are the Fourier components (const, cos 1, sin 1, ...), rows the embedding dimensions;
    a few bright columns = the embedding is a combination of a few waves. Key frequencies by our rule
    are ticked in red and marked by triangles above the image; those significant by the authors'
    rule (k = 0 included) by circles; a legend below says which is which.
    """
    fig, ax = new_figure(2, 1, 10.0, 8.6)
    listed = lambda keys: ", ".join(map(str, keys)) if keys else "none"  # noqa: E731
    for a, tok, task in ((ax[0, 0], tok_nanda, "T_nanda"), (ax[1, 0], tok_miiii, "T_miiii")):
        embedding = fourier.embedding_fourier(tok)
        coeffs = embedding["coeffs"]  # (p, d)
        labels = fourier.fourier_labels(coeffs.shape[0])
        lo, hi = symmetric(coeffs)
        im = a.imshow(coeffs.T, cmap=SIGNED, aspect="auto", vmin=lo, vmax=hi)
        keys = embedding["key_freqs"]
        authors, _ = fourier.key_frequencies_authors(tok)  # k = 0 (the constant) included
        ks = frequency_ticks(len(embedding["energy"]), sorted(set(keys) | {k for k in authors if k > 0}))
        a.set_xticks([0] + [frequency_column(k, labels) for k in ks])  # between the cos k and sin k columns
        a.set_xticklabels(["const"] + [str(k) for k in ks])
        for tick, k in zip(a.get_xticklabels()[1:], ks):
            if k in keys:
                tick.set_color("red")
                tick.set_fontweight("bold")
        # markers just above the image, one style per rule: x at the frequency's columns
        top = a.get_xaxis_transform()  # x in data, y in axes fractions
        a.scatter([frequency_column(k, labels) for k in keys], [1.02] * len(keys), transform=top, clip_on=False,
                  marker="v", s=30, color="red", label="key frequency, ours: energy share > mean + 2 std")
        a.scatter([frequency_column(k, labels) for k in authors], [1.06] * len(authors), transform=top,
                  clip_on=False, marker="o", s=26, facecolors="none", edgecolors="black", linewidths=1.0,
                  label="significant, authors': norm of |rfft| > mean + 1 std (k = 0 is const)")
        a.set_xlabel("frequency k (columns cos k, sin k); our key frequencies in red")
        a.set_ylabel("embedding dimension")
        a.set_title(f"{task}: key frequencies, ours {listed(keys)}; authors' {listed(authors)}", pad=24)
        fig.colorbar(im, ax=a, label="coefficient")
    fig.legend(*ax[0, 0].get_legend_handles_labels(), loc="outside lower center", ncol=2, frameon=False)
    return fig


def frequency_column(k, labels):
    """x position of frequency k on Figure 7: the const column for k = 0, else between cos k and sin k."""
    if k == 0:
        return 0.0
    return labels.index(f"cos {k}") + (0.5 if f"sin {k}" in labels else 0.0)


def fig_neurons(grids_nanda, grids_miiii, n=N_NEURONS):
    """Figure 8: the first n neurons' activations, T_nanda (top) and T_miiii (bottom). 2n panels."""
    fig, ax = new_figure(2, n, 3.6 * n, 6.6)
    for row, (grids, task) in enumerate(((grids_nanda, "T_nanda"), (grids_miiii, "T_miiii"))):
        for j in range(n):
            im = draw_grid(ax[row, j], grids[j])
            ax[row, j].set_title(f"{task}: neuron {j}")
            fig.colorbar(im, ax=ax[row, j], shrink=0.8, label="activation" if j == n - 1 else None)
    return fig


def fig_neuron_spectra(grids_nanda, grids_miiii, n=N_NEURONS):
    """Figure 9: the 2D power spectra of the first n neurons, T_nanda (top) and T_miiii (bottom). 2n panels.

    Circles mark the frequencies active in the neuron (power > mean + 2 std, fourier.neuron_active).
    """
    fig, ax = new_figure(2, n, 3.0 * n, 7.6)
    for row, (grids, task) in enumerate(((grids_nanda, "T_nanda"), (grids_miiii, "T_miiii"))):
        power = fourier.neuron_power(grids[:n])  # (n, p, p//2+1)
        for j in range(n):
            im = draw_spectrum(ax[row, j], power[j])
            ax[row, j].set_title(f"{task}: neuron {j}")
            fig.colorbar(im, ax=ax[row, j], shrink=0.8, label="power |FFT|\u00b2" if j == n - 1 else None)
    fig.suptitle("circled: active frequencies (power > \u03bc + 2\u03c3 of the neuron's spectrum)", fontsize=10)
    return fig


def fig_active_frequencies(omega, task="T_miiii"):
    """Figure 10: C(w), the number of neurons with mixing frequency w active, through training. 1 panel.

    omega: the omega.npz arrays. Rows: see omega_rows (mixing frequencies only). White dots: w
    active in the model.
    """
    fig, ax = new_figure(1, 1, 10.0, omega_height(omega) + 1.5)
    mesh, note = draw_omega(ax[0, 0], omega)
    fig.colorbar(mesh, ax=ax[0, 0], label="C(w): neurons with w active")
    ax[0, 0].set_title(f"{task}: C(w), neurons with frequency w active, through training\n"
                       f"rows: {note}; white dot: w active in the model", fontsize=10)
    return fig


def draw_omega_counts(ax, omega, talk=None, xlabel=True):
    """The Omega count through training: ours (mixing frequencies active in the model, per snapshot)
    and, if given, the talk's rule (fourier.talk_omega: count per column, and as printed)."""
    epochs, ours = positive_epochs(omega["epochs"], mixing_counts(omega))
    ax.plot(epochs, ours, "o-", color="C0", markersize=2.5, linewidth=1.2,
            label="ours: mixing frequencies active in the model")
    if talk is not None:
        cols, counts = positive_epochs(talk["column_epochs"], talk["counts"])
        printed = [fourier.talk_printed(int(c)) for c in counts]
        ax.step(cols, counts, where="mid", color="C3", linewidth=1.2,
                label=f"talk's rule: neuron 0, {talk['matrix'].shape[0]} bins > mean + 1 std")
        ax.step(cols, printed, where="mid", color="C3", linestyle=":", linewidth=1.2,
                label="talk's rule as the talk prints it: floor(count^0.75)")
        if talk["approximated"]:
            ax.text(0.01, 0.95, f"{talk['approximated']} of {len(talk['counts'])} talk columns approximated "
                    f"(extended run)", transform=ax.transAxes, fontsize=8, va="top")
    ax.set_ylabel("Omega count")
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    epoch_axis(ax, xlabel)


def fig_omega_and_accuracy(omega, metrics, moduli, task="T_miiii", talk=None):
    """Figure 11: Figure 10 (top), the Omega counts (middle) and the validation accuracy per task
    (bottom), on one epoch axis. 3 panels. talk: fourier.talk_omega of the run, or None."""
    height = omega_height(omega)
    fig = Figure(figsize=(10.0, height + 6.5), layout="constrained")
    top, middle, bottom = fig.subplots(3, 1, sharex=True, height_ratios=[height, 2.0, 3.0])
    mesh, note = draw_omega(top, omega, xlabel=False)
    fig.colorbar(mesh, ax=top, label="C(w)")
    top.set_title(f"{task}: C(w) of the mixing frequencies (top), the Omega count (middle) and validation "
                  f"accuracy (bottom)\nrows: {note}; white dot: w active in the model", fontsize=10)
    draw_omega_counts(middle, omega, talk, xlabel=False)
    mappable = draw_task_curves(bottom, metrics["epochs"], metrics["valid_acc"], moduli)
    bottom.set_ylabel("validation accuracy")
    bottom.set_ylim(-0.02, 1.02)
    if mappable is not None:
        fig.colorbar(mappable, ax=bottom, label="other tasks: prime q")
    lo = min(log_edges(positive_epochs(omega["epochs"])[0])[0], positive_epochs(metrics["epochs"])[0][0])
    top.set_xlim(lo, max(np.max(omega["epochs"]), np.max(metrics["epochs"])) * 1.05)
    return fig


def table1_markdown(analysis, run_label="this run"):
    """Table 1 as markdown from analyse_run's dict: the Omega counts at epochs 256 .. 65536.

    Rows: ours (mixing frequencies active in the model, "active_freqs"); the talk's rule on this
    run, its count and as printed (floor(count^0.75)), at the column nearest each epoch; the talk's
    rule at the talk's own columns 81, 101, 121, 141, 161 of 168 (our reading of which columns the
    talk's table shows), printed (count); the talk's row. '-': the run did not get there, or the
    record is missing (a run made before omega_talk.npz existed).
    """
    talk = analysis.get("omega_talk")

    def row(label, cells):
        return f"| {label} | " + " | ".join(cells) + " |"

    def by_epoch(values):
        values = {int(e): v for e, v in values.items()}
        return [str(values[e]) if e in values else "-" for e in fourier.TABLE1_EPOCHS]

    at = (talk or {}).get("table1", {})
    cols = (talk or {}).get("talk_columns", {})
    col_cells = [f"{v['printed']} ({v['count']})" for v in cols.values()] + ["-"] * (5 - len(cols))
    col_epochs = ", ".join(str(v["epoch"]) for v in cols.values())
    lines = [row("epoch", [str(e) for e in fourier.TABLE1_EPOCHS]), "|---|" + "---|" * len(fourier.TABLE1_EPOCHS),
             row(f"ours: mixing frequencies active in the model, {run_label}", by_epoch(analysis["active_freqs"])),
             row(f"talk's rule, count (neuron 0, nearest of 168 columns), {run_label}",
                 by_epoch({e: v["count"] for e, v in at.items()})),
             row(f"talk's rule, printed floor(count^0.75), {run_label}",
                 by_epoch({e: v["printed"] for e, v in at.items()})),
             row(f"talk's rule at the talk's columns 81, 101, 121, 141, 161"
                 + (f" (here epochs {col_epochs})" if cols else "") + ", printed (count)", col_cells),
             row("talk (p = 113), as printed", [str(TALK_TABLE1[e]) for e in fourier.TABLE1_EPOCHS])]
    if talk is None:
        lines.append("\nThe talk's rule: not recorded in this run (no omega_talk.npz).")
    elif talk.get("approximated_columns"):
        lines.append(f"\nThe talk's rule: {talk['approximated_columns']} of {talk['columns']} columns approximated "
                     f"(extended run: nearest recorded epoch).")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- paper extras
def fig_singular_values(tok_nanda, tok_miiii):
    """Singular values of the token embeddings (left) and their cumulative energy (right). 2 panels.

    Dotted lines: 50 % and 90 % of the energy; markers: n50 / n90 of each run (fourier.embedding_svd).
    """
    fig, ax = new_figure(1, 2, 11.0, 4.2)
    for colour, tok, task in (("C0", tok_nanda, "T_nanda"), ("C1", tok_miiii, "T_miiii")):
        svd = fourier.embedding_svd(tok)
        s, cum = svd["singular_values"], svd["cum_energy"]
        i = np.arange(1, len(s) + 1)
        ax[0, 0].plot(i, s, "o-", color=colour, markersize=3, label=task)
        ax[0, 1].plot(i, cum, "-", color=colour, label=f"{task}: n50 = {svd['n50']}, n90 = {svd['n90']}")
        ax[0, 1].plot([svd["n50"], svd["n90"]], cum[[svd["n50"] - 1, svd["n90"] - 1]], "o", color=colour)
    ax[0, 0].set_yscale("log")
    ax[0, 0].set_xlabel("component")
    ax[0, 0].set_ylabel("singular value (log scale)")
    ax[0, 0].set_title("token embedding singular values")
    ax[0, 0].legend()
    for level in (0.5, 0.9):
        ax[0, 1].axhline(level, color="grey", linestyle=":", linewidth=0.8)
    ax[0, 1].set_xlabel("components kept")
    ax[0, 1].set_ylabel("share of energy (sum s\u00b2)")
    ax[0, 1].set_ylim(0, 1.02)
    ax[0, 1].set_title("cumulative energy; 50 % and 90 % marked")
    ax[0, 1].legend(loc="lower right")
    return fig


def fig_gradient_norms(grad_norms, task="T_miiii"):
    """L2 norm of each parameter's raw gradient (before GrokFast) through training. 1 panel."""
    fig, ax = new_figure(1, 1, 8.0, 4.6)
    for i, name in enumerate(miiii.PARAM_NAMES):
        epochs, norms = positive_epochs(grad_norms["epochs"], grad_norms[name])
        ax[0, 0].plot(epochs, norms, color=f"C{i}", linewidth=1.0, label=name)
    epoch_axis(ax[0, 0])
    ax[0, 0].set_yscale("log")
    ax[0, 0].set_ylabel("gradient L2 norm (log scale)")
    ax[0, 0].set_title(f"{task}: raw gradient norm per parameter")
    ax[0, 0].legend(ncol=3, fontsize=8)
    return fig


def fig_attention(patterns, task):
    """Attention weights from '=' to x0, x1 and '=' over the inputs, one row per head. 3h panels."""
    heads = patterns.shape[0]
    fig, ax = new_figure(heads, 3, 10.0, 2.9 * heads + 0.6)
    for h in range(heads):
        for t, key in enumerate(("x0", "x1", "=")):
            im = draw_grid(ax[h, t], patterns[h, t], vlim=(0.0, 1.0))
            ax[h, t].set_title(f"head {h}: '=' attends to {key}", fontsize=10)
    fig.colorbar(im, ax=ax.ravel().tolist(), shrink=0.6, label="attention weight")
    fig.suptitle(f"{task}: attention from '=' per head")
    return fig


def fig_dft_matrix(p):
    """The real DFT matrix (Fourier basis) of size p (top) and three of its rows (bottom). 2 panels."""
    B = fourier.fourier_basis(p)
    labels = fourier.fourier_labels(p)
    fig = Figure(figsize=(7.0, 9.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=[2.2, 1])
    im = top.imshow(B, cmap=SIGNED, vmin=symmetric(B)[0], vmax=symmetric(B)[1], aspect="equal")
    step = max(1, p // 24)  # about 12 ticked frequencies: const and cos k for every step-th k
    rows = [0] + [labels.index(f"cos {k}") for k in range(step, p // 2 + 1, step)]
    top.set_yticks(rows)
    top.set_yticklabels([labels[r] for r in rows])
    top.set_xlabel("x (token)")
    top.set_ylabel("basis row")
    top.set_title(f"Fourier basis for p = {p}: const, cos k, sin k (orthonormal rows)")
    fig.colorbar(im, ax=top, label="value")
    for r, colour in zip(range(1, min(p, 4)), ("C0", "C1", "C2")):
        bottom.plot(np.arange(p), B[r], "o-", color=colour, markersize=3, label=f"row {labels[r]}")
    bottom.set_xlabel("x (token)")
    bottom.set_ylabel("basis value")
    bottom.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)  # above, off the data
    return fig


def fig_basis_control(grids_basis, n=N_NEURONS):
    """T_basis (targets shuffled): the first n neurons (top) and their spectra (bottom). 2n panels.

    The no-structure control: no single frequency should stand out, unlike Figures 8 and 9.
    """
    fig, ax = new_figure(2, n, 3.6 * n, 7.0)
    power = fourier.neuron_power(grids_basis[:n])
    for j in range(n):
        im = draw_grid(ax[0, j], grids_basis[j])
        ax[0, j].set_title(f"T_basis: neuron {j}")
        fig.colorbar(im, ax=ax[0, j], shrink=0.8, label="activation" if j == n - 1 else None)
        im = draw_spectrum(ax[1, j], power[j])
        ax[1, j].set_title(f"T_basis: neuron {j} spectrum")
        fig.colorbar(im, ax=ax[1, j], shrink=0.8, label="power |FFT|\u00b2" if j == n - 1 else None)
    fig.suptitle("T_basis, the no-structure control: neurons (top) and spectra (bottom, circled = active)",
                 fontsize=10)
    return fig


def fig_progress_measures(progress, metrics=None, task="T_nanda", t=0):
    """Nanda et al.'s progress measures of task t through training, phase starts marked. 2 panels.

    progress: progress.npz's arrays (fft_analysis.progress_measures). Top: training, validation,
    restricted (all inputs) and excluded (training inputs) loss / ln q, log scales; metrics, if
    given, adds the logged validation loss (finer in time) thin. Bottom: the sum of squared weights.
    Vertical lines: the starts of memorisation, circuit formation and clean-up (fft_analysis rules).
    """
    epochs, tl, vl, rl, el, ssw = positive_epochs(
        progress["epochs"], *(np.asarray(progress[k])[:, t] for k in ("train_loss", "valid_loss",
                                                                     "restricted_loss", "excluded_loss")),
        progress["sum_sq_weights"])
    q = int(np.asarray(progress["moduli"])[t])
    fig, ax = new_figure(2, 1, 8.0, 6.8, sharex=True, height_ratios=[2.2, 1])
    top, bottom = ax[0, 0], ax[1, 0]
    if metrics is not None:
        me, mv = positive_epochs(metrics["epochs"], np.asarray(metrics["valid_loss"])[:, t])
        top.plot(me, mv, color="C1", linewidth=0.6, alpha=0.5, label="validation (logged epochs)")
    for values, colour, label in ((tl, "C0", "training"), (vl, "C1", "validation"),
                                  (rl, "C2", "restricted (key waves only, all inputs)"),
                                  (el, "C3", "excluded (key waves removed, training inputs)")):
        top.plot(epochs, values, "o-", color=colour, markersize=2.5, linewidth=1.2, label=label)
    top.axhline(1.0, color="grey", linewidth=0.8, linestyle=":", label="chance")
    top.set_yscale("log")
    top.set_ylabel("loss / ln q (log scale)")
    bottom.plot(epochs, ssw, "o-", color="C4", markersize=2.5, linewidth=1.2)
    bottom.set_ylabel("sum of squared weights")
    waves = np.asarray(progress["key_waves"])
    n_keys = int((waves[:, 0] == t).sum()) if waves.size else 0
    starts = np.asarray(progress["phases"])[t]
    for e, name, style in zip(starts.tolist(), ("memorisation", "circuit formation", "clean-up"), ("--", "-.", ":")):
        if e > 0:  # -1: not found; 0 has no place on a log axis
            for a in (top, bottom):
                a.axvline(e, color="black", linestyle=style, linewidth=1.0,
                          label=f"{name} starts ({e})" if a is top else None)
    top.legend(loc="lower left", fontsize=8)
    top.set_title(f"{task} (mod {q}): progress measures; {n_keys} key waves "
                  f"({float(np.asarray(progress['key_energy'])):.0%} of the final logit energy)", fontsize=10)
    epoch_axis(top, label=False)
    epoch_axis(bottom)
    return fig


def progress_of(run):
    """A loaded run's progress measures: progress.npz, else computed from its progress copies, else None."""
    if "progress" not in run:
        copies = rundir.load_copies(run["dir"], "progress", miiii.PARAM_NAMES)
        if copies:
            run["progress"] = fa.progress_measures({**run, "progress_params": copies})
    return run.get("progress")


def draw_progress(runs, out, formats, log, warn, dpi=None):
    """The progress-measure figures of the --nanda run and of the first tasks of the --miiii run."""
    written = []
    for role, name in (("nanda", "T_nanda"), ("miiii", "T_miiii")):
        stem = f"extra_progress_measures_{role}"
        if role not in runs:
            warn(f"skip {stem}: needs --{role}")
            continue
        progress = progress_of(runs[role])
        if progress is None or not np.any(np.asarray(progress["epochs"]) > 0):
            warn(f"skip {stem}: the --{role} run has no {rundir.PROGRESS} or progress parameter copies past epoch 0 "
                 f"(a run made before the progress hook, or with --no-analysis)")
            continue
        moduli = np.asarray(progress["moduli"]).tolist()
        for t in range(1 if role == "nanda" else min(PROGRESS_TASKS, len(moduli))):
            name_t = stem if role == "nanda" else f"{stem}_q{moduli[t]}"
            start = time.perf_counter()
            written += save(fig_progress_measures(progress, runs[role].get("metrics"), name, t), out, name_t,
                            formats, dpi)
            log(f"wrote {name_t} ({time.perf_counter() - start:.1f} s)")
    return written


# ============================================================================ RESULTS.md's figures
# Drawn by experiments/report.py into docs/results/ from the loaded runs of results/runs; a run is a
# dict with "config" and "metrics" (report.load), the curves are the metrics' per-task accuracies.
def draw_valid_acc(ax, run, over_tasks, span=None, **style):
    """A run's validation accuracy through training, reduced over tasks (over_tasks: "min", the slowest
    task, or "mean"); epoch 0 left out, and with `span` the epochs after it."""
    ep, va = run["metrics"]["epochs"], run["metrics"]["valid_acc"]
    keep = ep > 0
    if span is not None:
        keep &= ep <= span
    ax.plot(ep[keep], getattr(va[keep], over_tasks)(axis=1), **style)


def fig_sweep(sweep):
    """The sweep (sweep: {run name: run}): the slowest task's validation accuracy of each run."""
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    for name, r in sweep.items():
        draw_valid_acc(ax, r, "min", label=name.replace("sweep-", ""), linewidth=1.2)
    ax.set_xscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("min over tasks of validation accuracy")
    ax.axhline(0.99, color="grey", linestyle=":", linewidth=0.8)
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("The sweep: the slowest task's validation accuracy (T_miiii, seed 0)")
    return fig


def fig_softmax_collapse(pair):
    """Softmax collapse (Prieto et al. 2025): the share of targets with a zero naive float32 gradient and
    the training loss of T_nanda runs that differ in weight decay (pair: the runs)."""
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    for i, r in enumerate(pair):
        ep = r["metrics"]["epochs"]
        keep = ep > 0
        label = f"wd {r['config']['wd']:g}"
        ax.plot(ep[keep], r["metrics"]["collapse_grad"][keep, 0], color=f"C{i}", label=f"{label}: share of "
                "targets with a zero naive float32 gradient")
        ax.plot(ep[keep], r["metrics"]["train_loss"][keep, 0], color=f"C{i}", linestyle=":",
                label=f"{label}: training loss / ln p")
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_ylim(0, 1.5)
    ax.set_xlabel("epoch")
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("Softmax collapse (Prieto et al. 2025), T_nanda p = 59, with and without weight decay")
    return fig


def fig_filters_compared(panels, span):
    """The GrokFast filters side by side: one panel per task (panels: [(title, {filter: its runs})]),
    the slowest task's validation accuracy of every seed, up to epoch `span` (the runs' common length)."""
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (title, kinds) in zip(axes, panels):
        for i, (kind, rs) in enumerate(kinds.items()):
            for j, r in enumerate(rs):
                draw_valid_acc(ax, r, "min", span, color=f"C{i}", linewidth=0.9, alpha=0.8,
                               label=kind if j == 0 else None)
        ax.set_xscale("log")
        ax.set_xlabel("epoch")
        ax.axhline(0.99, color="grey", linestyle=":", linewidth=0.8)
        ax.set_title(f"{title}, seeds 0-2", fontsize=10)
    axes[0].set_ylabel("min over tasks of validation accuracy")
    axes[1].legend(fontsize=8, frameon=False, loc="upper left")
    fig.suptitle("GrokFast filters compared: " + ", ".join(panels[0][1]), fontsize=10)
    return fig


def fig_mean_valid_acc(groups, title):
    """Mean validation accuracy over tasks of groups of runs (groups: {label: runs}), one colour a group."""
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    for i, (k, rs) in enumerate(groups.items()):
        for j, r in enumerate(rs):
            draw_valid_acc(ax, r, "mean", color=f"C{i}", linewidth=1, alpha=0.8, label=k if j == 0 else None)
    ax.set_xscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean validation accuracy over tasks")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(title)
    return fig


# ============================================================================ runs -> figures
def neuron_grids(run):
    """fft_analysis.neuron_grids of a loaded run, computed once and kept in the run dict."""
    if "neuron_grids" not in run:
        run["neuron_grids"] = fa.neuron_grids(run["params"], int(run["config"]["p"]))
    return run["neuron_grids"]


def moduli(run):
    return run["config"]["moduli"]


def talk_omega(run):
    """fourier.talk_omega of a loaded run (its omega_talk.npz), or None when it has none."""
    if "omega_talk" not in run:
        return None
    return fourier.talk_omega(run["omega_talk"]["epochs"], run["omega_talk"]["spectra"],
                              int(run["metrics"]["epochs"][-1]))


def default_p(runs):
    """p for the DFT matrix: that of the T_miiii run, else the T_nanda run, else the paper's 113."""
    for role in ("miiii", "nanda"):
        if role in runs:
            return int(runs[role]["config"]["p"])
    return 113


# Every output: (file stem, what it needs, how to draw it from the loaded runs R). A need is a run
# role ("nanda", "miiii", "basis", "masked"), or "role.record" for a record of that run drawn
# through training (metrics, omega, grad_norms), which must then be there and go past epoch 0.
PLAN = [
    ("fig01_neuron_activation", ["nanda"], lambda R: fig_neuron_activation(neuron_grids(R["nanda"]))),
    ("fig02_embedding_sinusoid", ["nanda"], lambda R: fig_embedding_sinusoid(R["nanda"]["params"]["tok_emb"])),
    ("fig03_grokking", ["nanda.metrics"], lambda R: fig_grokking(R["nanda"]["metrics"])),
    ("fig04_task_data", [], lambda R: fig_task_data()),
    ("fig05_task_accuracy", ["miiii.metrics"],
     lambda R: fig_task_accuracy(R["miiii"]["metrics"], moduli(R["miiii"]))),
    ("fig06_positional_embeddings", ["nanda", "miiii"],
     lambda R: fig_positional_embeddings(R["nanda"]["params"]["pos_emb"], R["miiii"]["params"]["pos_emb"])),
    ("fig07_token_embeddings_fourier", ["nanda", "miiii"],
     lambda R: fig_token_embeddings_fourier(R["nanda"]["params"]["tok_emb"], R["miiii"]["params"]["tok_emb"])),
    ("fig08_neurons", ["nanda", "miiii"],
     lambda R: fig_neurons(neuron_grids(R["nanda"]), neuron_grids(R["miiii"]))),
    ("fig09_neuron_spectra", ["nanda", "miiii"],
     lambda R: fig_neuron_spectra(neuron_grids(R["nanda"]), neuron_grids(R["miiii"]))),
    ("fig10_active_frequencies", ["miiii.omega"], lambda R: fig_active_frequencies(R["miiii"]["omega"])),
    ("fig11_omega_and_accuracy", ["miiii.omega", "miiii.metrics"],
     lambda R: fig_omega_and_accuracy(R["miiii"]["omega"], R["miiii"]["metrics"], moduli(R["miiii"]),
                                      talk=talk_omega(R["miiii"]))),
    ("extra_loss_curves", ["miiii.metrics"],
     lambda R: fig_task_accuracy(R["miiii"]["metrics"], moduli(R["miiii"]), loss=True)),
    ("extra_singular_values", ["nanda", "miiii"],
     lambda R: fig_singular_values(R["nanda"]["params"]["tok_emb"], R["miiii"]["params"]["tok_emb"])),
    ("extra_gradient_norms", ["miiii.grad_norms"], lambda R: fig_gradient_norms(R["miiii"]["grad_norms"])),
    ("extra_attention_nanda", ["nanda"],
     lambda R: fig_attention(fa.attention_patterns(R["nanda"]["params"], R["nanda"]["config"]["p"]), "T_nanda")),
    ("extra_attention_miiii", ["miiii"],
     lambda R: fig_attention(fa.attention_patterns(R["miiii"]["params"], R["miiii"]["config"]["p"]), "T_miiii")),
    ("extra_dft_matrix", [], lambda R: fig_dft_matrix(default_p(R))),
    ("extra_basis_control", ["basis"], lambda R: fig_basis_control(neuron_grids(R["basis"]))),
    ("extra_masked_accuracy", ["masked.metrics"],
     lambda R: fig_task_accuracy(R["masked"]["metrics"], moduli(R["masked"]), task="T_masked",
                                 mask=R["masked"]["config"]["mask"])),
]
RECORD_FILES = {"metrics": "metrics.npz", "omega": "omega.npz", "grad_norms": "grad_norms.npz"}


def missing(needs, runs):
    """Why a figure cannot be drawn (one phrase), or None when all it needs is there.

    A record drawn through training must also reach past epoch 0: a log epoch axis has no 0.
    """
    for need in needs:
        role, _, record = need.partition(".")
        if role not in runs:
            return f"needs --{role}"
        if not record:
            continue
        if record not in runs[role]:
            return f"the --{role} run has no {RECORD_FILES[record]}"
        if not np.any(np.asarray(runs[role][record]["epochs"]) > 0):
            return f"the --{role} run's {RECORD_FILES[record]} has nothing after epoch 0 to draw on a log axis"
    return None


def load_runs(paths):
    """{role: fft_analysis.load_run(path)} for the roles given; each run must be of its role's task."""
    runs = {}
    for role, path in paths.items():
        run = fa.load_run(path, progress_params=False)  # progress_of reads them only when needed
        if run["config"]["task"] != role:
            raise rundir.RunError(f"--{role} {path}: is a {run['config']['task']} run, expected task {role}")
        runs[role] = run
    return runs


def save(fig, out, stem, formats, dpi=None):
    """Write fig as out/stem.<format> for each format (dpi: raster resolution); returns the paths."""
    paths = []
    for fmt in formats:
        path = os.path.join(out, f"{stem}.{fmt}")
        fig.savefig(path, format=fmt, dpi=dpi or "figure")
        paths.append(path)
    return paths


def draw_all(runs, out, formats, log=print, warn=None, dpi=None):
    """Draw every figure of PLAN that its runs allow, and Table 1; returns the paths written."""
    warn = warn or (lambda line: print(line, file=sys.stderr))
    os.makedirs(out, exist_ok=True)
    written = []
    for stem, needs, draw in PLAN:
        why = missing(needs, runs)
        if why:
            warn(f"skip {stem}: {why}")
            continue
        start = time.perf_counter()
        written += save(draw(runs), out, stem, formats, dpi)
        log(f"wrote {stem} ({time.perf_counter() - start:.1f} s)")
    written += draw_progress(runs, out, formats, log, warn, dpi)
    # Table 1: the counts fft_analysis reports (ours from omega.npz, else params_<E>.npz; the talk's
    # rule from omega_talk.npz)
    if "miiii" not in runs:
        warn("skip table1: needs --miiii")
    else:
        try:
            analysis = fa.analyse_run(runs["miiii"]["dir"], progress=False)  # Table 1 needs no progress measures
        except rundir.RunError as e:
            analysis = {"active_freqs": {}, "error": str(e)}
        if "error" in analysis:
            warn(f"skip table1: {analysis['error']}")
        elif not analysis["active_freqs"] and not (analysis["omega_talk"] or {}).get("table1"):
            warn("skip table1: the --miiii run has no Omega count at a Table-1 epoch (it did not reach "
                 "epoch 256, or has none of omega.npz, params_<epoch>.npz, omega_talk.npz)")
        else:
            p = analysis["p"]
            table = (f"Table 1: the Omega count of the T_miiii model (p = {p}) through training, by our rule "
                     f"and the talk's (- = epoch not reached or not recorded)\n\n"
                     + table1_markdown(analysis, f"this run (p = {p})"))
            path = os.path.join(out, "table1.md")
            rundir.atomic_write(path, lambda f: f.write(table.encode()))
            written.append(path)
            log(table)
    return written


# ============================================================================ command line
def parse_formats(text):
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise miiii.UsageError(f"unknown format {unknown[0] if unknown else text!r} (choose from {', '.join(FORMATS)})")
    return list(dict.fromkeys(formats))  # keep order, drop repeats


def main(argv=None):
    ap = miiii.OneLineParser(prog="figures.py", description="Draw the talk's figures (and the paper's extras) "
                             "from miiii run directories; a figure whose run is not given is skipped.")
    for role, what in (("nanda", "T_nanda"), ("miiii", "T_miiii"), ("basis", "T_basis (control)"),
                       ("masked", "T_masked")):
        ap.add_argument(f"--{role}", metavar="RUN_DIR", help=f"a {what} run directory")
    ap.add_argument("--out", default=os.path.join("runs", "figures"), help="output folder (default: %(default)s)")
    ap.add_argument("--format", default="png", help="comma-separated: png, svg, pdf (default: %(default)s)")
    ap.add_argument("--dpi", type=int, default=150, help="resolution of PNGs (default: %(default)s)")
    try:
        args = ap.parse_args(argv)
        formats = parse_formats(args.format)
        if not 10 <= args.dpi <= 1200:
            raise miiii.UsageError(f"--dpi must be in 10 .. 1200, got {args.dpi}")
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise miiii.UsageError(f"--out {args.out} exists and is not a directory")
        runs = load_runs({role: getattr(args, role) for role in ("nanda", "miiii", "basis", "masked")
                          if getattr(args, role) is not None})
        if not runs:  # still useful: Figure 4 and the DFT matrix need no run
            print("figures.py: no run given: drawing only what needs none (Figure 4, the DFT matrix); usage: "
                  "figures.py --nanda RUN_DIR --miiii RUN_DIR [--basis RUN_DIR] [--masked RUN_DIR] [--out DIR] "
                  "[--format png,svg,pdf] [--dpi N]", file=sys.stderr)
        os.makedirs(args.out, exist_ok=True)
        if not os.access(args.out, os.W_OK):
            raise miiii.UsageError(f"--out {args.out} is not writable")
    except (miiii.UsageError, rundir.RunError) as e:
        print(f"figures.py: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"figures.py: error: cannot create --out {args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    for role, run in runs.items():
        late = rundir.unfinished(run)
        if late:
            print(f"figures.py: --{role} {late}; drawn as far as it has come", file=sys.stderr)
    start = time.perf_counter()
    written = draw_all(runs, args.out, formats, dpi=args.dpi)
    print(f"{len(written)} files in {args.out} ({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
