"""fft_analysis: what the trained miiii model computes, read off in the Fourier basis.

    python fft_analysis.py RUN_DIR [RUN_DIR ...]    # a report per run; writes RUN_DIR/analysis.json

The functions are used in three places: by this command line on finished runs, by figures.py, and
during training through `training_hooks` (snapshots of the neurons' frequencies, gradient norms and
parameters, stored in the run directory). Definitions follow SPEC.md §5; every choice the spec
leaves open is named below, once, and tested in tests/test_fft_analysis.py.

Quantities
----------
Fourier basis B (p, p). Row 0 is the constant 1/sqrt(p); then, for k = 1 .. p//2, the rows
    cos(2 pi k x / p) and sin(2 pi k x / p), each scaled to unit length,
so the rows are orthonormal and B is the real DFT matrix: `project(a) = B @ a` rewrites any (p, ...)
array indexed by a token as coefficients on the waves, `unproject` = B.T undoes it. For even p the
k = p/2 sine is identically zero and left out, and the k = p/2 cosine, (-1)^x, is scaled by
1/sqrt(p) instead of sqrt(2/p); the basis still has p rows.

Frequency energy share (p//2,). The squared coefficients of the non-constant rows, summed over every
other axis, with cos k and sin k added (a wave's phase is not its frequency), divided by their total.
A matrix with no non-constant energy gets all zeros, not 0/0.

Key frequencies. The k whose share exceeds mean + 2 std of the p//2 shares (population std, ddof 0).
This rule finds at most ~p/10 frequencies when the energy is spread evenly over them
(k + 2 sqrt(k (n - k)) < n with n = p//2); Nanda's T_nanda model has about 5.

Embeddings. `tok_emb[:p]` only: row p is the '=' token, which is not a number and has no place on
the circle. The SVD is of the uncentred (p, d) matrix; its energy is the sum of squared singular
values, and n50 / n90 are the fewest leading components whose cumulative energy reaches 50 % / 90 %
(compared with a relative tolerance of 1e-9, so exactly-equal singular values split evenly).
The positional correlation is Pearson's r of pos_emb[0] and pos_emb[1] (NaN, reported as null, if
either row is constant).

Neurons. `hid` at the last position ('=') with dropout off, for all p*p inputs, reshaped per
neuron to a grid indexed [x0, x1] (SPEC §1: grid = values.reshape(p, p).T).

Neuron power (4d, p, p//2+1). |rfft2(grid - mean)|^2: entry [k0, k1] is frequency k0 along x0
and k1 along x1. The zero frequency is set to 0. A constant grid (a dead ReLU neuron is exactly 0
everywhere) is given an exactly zero spectrum, so FFT rounding cannot make it look alive.

Folding (our choice). A real grid has P[k0, k1] = P[-k0 mod p, -k1 mod p]; rfft2 already drops
the half-plane k1 > p/2, but the k1 = 0 column (and the k1 = p/2 column for even p) still holds
each frequency twice, at k0 and p - k0. We keep k0 = 1 .. p//2 in the k1 = 0 column, k0 = 0 .. p//2
in the k1 = p/2 column (even p), and every k0 = 0 .. p-1 in the columns 0 < k1 < p/2. Each kept
entry (k0, k1) -- a "frequency w" -- is then one physical 2D wave cos(2 pi (k0 x0 + k1 x1) / p + phi),
counted once: F = (p^2 - 1) / 2 frequencies for odd p (6384 at p = 113), p^2 / 2 + 1 for even p.
k0 > p/2 means the negative frequency k0 - p: (k0, k1) and (p - k0, k1) are different waves
(along x0 + x1 versus x0 - x1). Every kept entry holds half its wave's energy (the mirror half is
dropped), so entries compare fairly; only for even p do the <= 3 self-mirrored entries (p/2, 0),
(0, p/2), (p/2, p/2) hold the whole of theirs. No doubling is done: a common factor changes no rule.

Active frequencies of a neuron (4d, F). w is active when its power exceeds mean + 2 std of that
neuron's F folded entries (the talk's w > mu + 2 sigma; population std). A dead neuron (all-zero
spectrum) is not live and has none. For white noise about e^-3 ~ 5 % of entries pass by chance.

Active frequencies of the model (F,). C(w) = number of neurons with w active. With n = live neurons
and r = the share of active (neuron, w) pairs among live neurons, w is active in the model when
C(w) > n r + 4 sqrt(n r (1 - r)): four binomial standard deviations above what neurons picking
frequencies at random would give (SPEC §5). Their number through training is the Omega-spike series.

Mixing frequencies (our addition). The w with k0 != 0 and k1 != 0 (`interaction_mask`): waves that
depend on x0 and x1 together. What to expect: a freshly initialised one-block model computes, per
neuron, roughly relu(f(x0) + g(x1) + c), whose power sits on the axes (k0 = 0 or k1 = 0), so under
the rule above all p - 1 axis frequencies are active in the model at epoch 0 (112 at p = 113,
d = 256), where the talk's Table 1 has 0 at epochs 256 and 1024. The mixing count starts at 0 and rises as the model
generalises; in a T_nanda run at p = 59 (d = 64, 2000 epochs, grokked at epoch 300) the model went
from 58 axis + 0 mixing to 10 axis + 8 mixing frequencies, the mixing ones at (k, k) and (p - k, k)
for its key frequencies k. The report and analysis.json give both counts.

Attention (h, 3, p, p). Per head, the softmax weights from the '=' query to the keys at x0, x1 and
'=' (the only query that reaches the logits in a one-block model), as grids [x0, x1].

During training (`training_hooks`)
----------------------------------
* Snapshots of C(w), live neurons, r, the model-level active set and its size at `snapshot_epochs`:
  0, the last epoch, the Table-1 epochs 256 .. 65536 that are reached, and round(2^(i/8)) for all i
  (8 per octave, `per_octave` to change; rounding merges the first few) -- 112 snapshots in a
  65,536-epoch run, 50 in 300.
  Only C(w) and these counts are stored, never raw activations.
* The L2 norm of each parameter's raw (unfiltered) gradient at every logged epoch < the last
  (no gradient is computed after the last step); the gradient at epoch e is the one of step e -> e+1.
* A copy of the parameters at each Table-1 epoch reached.
Hooks only read params and grads (the saved parameters are copies), draw no random numbers and
run nothing at other epochs, so training gives bit-identical weights with and without them.

Files written into the run directory (plain numpy arrays, atomic writes)
  omega.npz       epochs (S,) int64, freqs (F, 2) int64, counts (S, F) int64, live (S,) int64,
                  share (S,) float64, active (S, F) bool, n_active (S,) int64
  grad_norms.npz  epochs (L,) int64 and one (L,) float64 array per parameter name
  params_<E>.npz  the parameters at epoch E, under the SPEC names
  analysis.json   written by the command line: see `analyse_run`

Grokking epoch of a task: the first logged epoch at which its validation accuracy is >= 0.99.
"""
import json
import math
import os
import re
import sys
import time

import numpy as np

import miiii

TABLE1_EPOCHS = (256, 1024, 4096, 16384, 65536)  # the talk's Table 1
SNAPSHOTS_PER_OCTAVE = 8  # log-spaced snapshot density
GROK_ACC = 0.99  # validation accuracy that counts as "solved" for the grokking order
SIGMAS_NEURON = 2.0  # per-neuron rule: power > mean + 2 std
SIGMAS_MODEL = 4.0  # model rule: C(w) > n r + 4 binomial std


class RunError(Exception):
    """A run directory that cannot be analysed; the message is one line."""


def array_module(a):
    """numpy for host arrays, else the backend miiii runs on (CuPy): functions work on either."""
    return np if isinstance(a, np.ndarray) else miiii.xp


# ============================================================================ Fourier tools
def fourier_basis(p):
    """The orthonormal real Fourier basis (p, p): const, cos 1, sin 1, cos 2, ... (module docstring)."""
    x = np.arange(p)
    k = np.arange(1, p // 2 + 1)
    angle = 2 * np.pi * np.outer(k, x) / p  # (K,), (p,) -> (K, p), K = p//2
    waves = np.stack([np.cos(angle), np.sin(angle)], axis=1).reshape(2 * len(k), p)  # (K, 2, p) -> (2K, p)
    if p % 2 == 0:
        waves = waves[:-1]  # sin(pi x) is zero at every integer x: drop it -> (p - 1, p)
    basis = np.concatenate([np.ones((1, p)), waves], axis=0)  # (p, p)
    return basis / np.linalg.norm(basis, axis=1, keepdims=True)


def fourier_labels(p):
    """Row names of fourier_basis(p): 'const', 'cos 1', 'sin 1', ..."""
    labels = ["const"] + [f"{wave} {k}" for k in range(1, p // 2 + 1) for wave in ("cos", "sin")]
    return labels[:p]  # even p: no 'sin p/2'


def project(a):
    """Coefficients of a (p, ...) array on the Fourier basis: B @ a, same shape."""
    a = np.asarray(a, dtype=np.float64)
    return np.tensordot(fourier_basis(a.shape[0]), a, axes=(1, 0))  # (p, p) . (p, ...) -> (p, ...)


def unproject(c):
    """The inverse of project: B.T @ c (B is orthonormal)."""
    c = np.asarray(c, dtype=np.float64)
    return np.tensordot(fourier_basis(c.shape[0]).T, c, axes=(1, 0))  # (p, p) . (p, ...) -> (p, ...)


def frequency_energy(coeffs):
    """Share of the non-constant energy at each frequency k = 1 .. p//2 (cos k + sin k); sums to 1."""
    coeffs = np.asarray(coeffs, dtype=np.float64)
    p = coeffs.shape[0]
    row_energy = (coeffs.reshape(p, -1) ** 2).sum(axis=1)  # (p, ...) -> (p,)
    k_of_row = (np.arange(1, p) + 1) // 2  # (p - 1,): rows 1, 2 -> k 1 (cos, sin); rows 3, 4 -> k 2; ...
    energy = np.bincount(k_of_row - 1, weights=row_energy[1:], minlength=p // 2)  # (p - 1,) -> (p//2,)
    total = energy.sum()
    return energy / total if total > 0 else energy


def key_frequencies(energy):
    """The k (1-based) whose energy share exceeds mean + 2 std of all shares."""
    energy = np.asarray(energy, dtype=np.float64)
    return [int(k) + 1 for k in np.flatnonzero(energy > energy.mean() + 2 * energy.std())]


# ============================================================================ embeddings
def embedding_fourier(tok_emb):
    """Token embeddings of the p numbers (the '=' row dropped) in the Fourier basis."""
    tok_emb = np.asarray(tok_emb)
    coeffs = project(tok_emb[:-1])  # (p + 1, d) -> (p, d)
    energy = frequency_energy(coeffs)  # (p, d) -> (p//2,)
    return {"coeffs": coeffs, "energy": energy, "key_freqs": key_frequencies(energy)}


def embedding_svd(tok_emb):
    """SVD of the (p, d) number embeddings; n50 / n90 = components reaching 50 / 90 % of sum s^2."""
    E = np.asarray(tok_emb, dtype=np.float64)[:-1]  # (p + 1, d) -> (p, d)
    U, s, Vt = np.linalg.svd(E, full_matrices=False)  # (p, r), (r,), (r, d); r = min(p, d)
    cum = np.cumsum(s ** 2) / max((s ** 2).sum(), np.finfo(float).tiny)  # (r,)
    # fewest components whose cumulative share reaches the level; 1e-9 forgives rounding at equality
    n50, n90 = (np.searchsorted(cum, np.array([0.5, 0.9]) * (1 - 1e-9)) + 1).tolist()
    return {"singular_values": s, "cum_energy": cum, "n50": int(min(n50, len(s))),
            "n90": int(min(n90, len(s))), "U": U, "Vt": Vt}


def positional_correlation(pos_emb):
    """Pearson correlation of the embeddings of positions 0 and 1 (x0 and x1)."""
    a, b = np.asarray(pos_emb, dtype=np.float64)[:2]
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


# ============================================================================ neurons
def all_inputs(p):
    """The (p*p, 3) inputs [x0, x1, '='] in SPEC order: sample i is n = i = x0 + x1 p."""
    n = np.arange(p * p)
    return np.stack([n % p, n // p, np.full(p * p, p)], axis=1).astype(np.int64)  # (N,) -> (N, 3)


def device_params(params):
    """The parameters on miiii's current backend (no copy when they are there already)."""
    return {name: miiii.to_device(params[name]) for name in miiii.PARAM_NAMES}


def neuron_grids(params, p, batch=16384, host=True):
    """MLP activations at '=' over all inputs, dropout off: (4d, p, p) float32, grid[j, x0, x1].

    Runs miiii.forward on the current backend, `batch` inputs at a time; only the result moves to
    the host (host=False keeps it on the backend, for the training snapshots).
    """
    params = device_params(params)
    x = miiii.to_device(all_inputs(p))  # (N, 3)
    hid = miiii.xp.concatenate([miiii.forward(params, x[i:i + batch])[1]["hid"]  # (N, 4d)
                                for i in range(0, p * p, batch)], axis=0)
    grids = hid.reshape(p, p, -1).transpose(2, 1, 0)  # (N, 4d) -> (x1, x0, 4d) -> (4d, x0, x1)
    grids = miiii.xp.ascontiguousarray(grids, dtype=np.float32)  # each neuron's grid contiguous, for the FFT
    return miiii.to_host(grids) if host else grids


def neuron_power(grids):
    """Per grid, |rfft2(grid - mean)|^2 with the zero frequency 0: (..., p, p) -> (..., p, p//2+1)."""
    xp = array_module(grids)
    constant = grids.max(axis=(-2, -1)) == grids.min(axis=(-2, -1))  # (n,): dead neurons
    centred = grids - grids.mean(axis=(-2, -1), keepdims=True)  # (n, p, p)
    centred = centred * ~constant[..., None, None]  # a constant grid gets an exactly zero spectrum
    spectrum = xp.fft.rfft2(centred)  # (n, p, p) -> (n, p, p//2+1) complex
    power = spectrum.real ** 2 + spectrum.imag ** 2  # (n, p, p//2+1)
    power[..., 0, 0] = 0.0
    return power


def frequency_index(p):
    """(F, 2) int64: the (k0, k1) entry of the rfft2 grid that stands for each frequency w (folding)."""
    k0, k1 = np.meshgrid(np.arange(p), np.arange(p // 2 + 1), indexing="ij")  # (p, p//2+1) each
    edge = (k1 == 0) | (2 * k1 == p)  # columns that hold each frequency at both k0 and p - k0
    keep = ~edge | (k0 <= p // 2)  # on those columns keep k0 = 0 .. p//2 only
    keep[0, 0] = False  # the zero frequency (the mean) is not a frequency
    return np.stack([k0[keep], k1[keep]], axis=1).astype(np.int64)  # (F, 2), row-major order of the grid


def interaction_mask(p):
    """(F,) bool: the frequencies w that mix x0 and x1 (k0 != 0 and k1 != 0), i.e. not on an axis."""
    return (frequency_index(p) != 0).all(axis=1)  # (F, 2) -> (F,)


def fold(power):
    """(..., p, p//2+1) -> (..., F): the power at each frequency w of frequency_index(p)."""
    xp = array_module(power)
    index = xp.asarray(frequency_index(power.shape[-2]))  # (F, 2)
    return power[..., index[:, 0], index[:, 1]]  # (n, p, p//2+1) -> (n, F)


def live_neurons(power):
    """(n,) bool: neurons whose activation varies over the inputs (any non-zero power)."""
    return power.reshape(power.shape[0], -1).max(axis=1) > 0  # (n, p, p//2+1) -> (n,)


def neuron_active(power):
    """(n, F) bool: frequency w is active in neuron j when its power > mean + 2 std of j's spectrum."""
    folded = fold(power)  # (n, p, p//2+1) -> (n, F)
    threshold = folded.mean(axis=1, keepdims=True) + SIGMAS_NEURON * folded.std(axis=1, keepdims=True)  # (n, 1)
    return (folded > threshold) & live_neurons(power)[:, None]  # dead neurons: nothing active


def model_active(counts, live, share):
    """(F,) bool: C(w) > n r + 4 sqrt(n r (1 - r)), n = live neurons, r = share of active pairs."""
    n, r = float(live), float(share)
    return np.asarray(counts) > n * r + SIGMAS_MODEL * math.sqrt(n * r * (1.0 - r))


def omega_from_active(active, live):
    """The Omega-spike numbers from per-neuron active sets (n, F) and the live count."""
    counts = np.asarray(miiii.to_host(active.sum(axis=0)), dtype=np.int64)  # (n, F) -> (F,): C(w)
    share = float(counts.sum()) / (live * counts.size) if live else 0.0  # dead neurons have no pairs
    active_model = model_active(counts, live, share)  # (F,)
    return {"counts": counts, "live": int(live), "share": share,
            "active": active_model, "n_active": int(active_model.sum())}


def omega_snapshot(params, p):
    """C(w), live neurons, r and the model-level active frequencies, computed on the backend."""
    power = neuron_power(neuron_grids(params, p, host=False))  # (4d, p, p//2+1)
    live = int(live_neurons(power).sum())
    return omega_from_active(neuron_active(power), live)


# ============================================================================ attention
def attention_patterns(params, p):
    """(h, 3, p, p): per head, the weights from '=' to x0, x1 and '=' over the grid [x0, x1]."""
    _, cache = miiii.forward(device_params(params), miiii.to_device(all_inputs(p)))
    att = cache["att"]  # (N, 3, h): the softmax over the three key positions
    return miiii.to_host(att.reshape(p, p, 3, -1).transpose(3, 2, 1, 0))  # (x1, x0, 3, h) -> (h, 3, x0, x1)


# ============================================================================ during training
def snapshot_epochs(epochs, per_octave=SNAPSHOTS_PER_OCTAVE):
    """Sorted int64 epochs for snapshots: 0, the end, Table-1 epochs reached, `per_octave` per doubling."""
    epochs = int(epochs)
    octaves = math.log2(epochs) if epochs >= 1 else 0.0
    steps = np.arange(int(np.floor(octaves * per_octave)) + 1)
    marks = np.round(2.0 ** (steps / per_octave)).astype(np.int64)  # (i,) 1 .. epochs, log-spaced
    table1 = [e for e in TABLE1_EPOCHS if e <= epochs]
    marks = np.concatenate([[0, epochs], table1, marks[marks <= epochs]]).astype(np.int64)
    return np.unique(marks)


def by_epoch(records):
    """{epoch: value} with int keys (JSON-based checkpoints store them as strings)."""
    return {int(e): v for e, v in records.items()}


def training_hooks(cfg, state, per_octave=SNAPSHOTS_PER_OCTAVE):
    """Hook dicts for miiii.train that record Omega snapshots, gradient norms and Table-1 params into `state`.

    `state` is a plain dict (keys: p, omega, grad_norms, snapshots, timing), keyed by epoch, so an
    epoch seen twice (a resumed run) is stored once; write it out with write_training_records.
    """
    cfg = {**miiii.DEFAULTS, **cfg}
    p, epochs = int(cfg["p"]), int(cfg["epochs"])
    state.setdefault("p", p)
    for key in ("omega", "grad_norms", "snapshots"):
        state[key] = by_epoch(state.get(key, {}))  # a checkpoint may have turned the keys into strings
    state.setdefault("timing", {"snapshot_s": 0.0, "snapshots": 0})

    def record_omega(epoch, params):
        start = time.perf_counter()
        state["omega"][int(epoch)] = omega_snapshot(params, p)
        state["timing"]["snapshot_s"] += time.perf_counter() - start
        state["timing"]["snapshots"] += 1

    def record_grads(epoch, grads):
        state["grad_norms"][int(epoch)] = miiii.grad_norms(grads)

    def record_params(epoch, params):
        # copies: training updates the arrays in place
        state["snapshots"][int(epoch)] = {name: np.array(miiii.to_host(w), copy=True) for name, w in params.items()}

    return [
        {"snapshot": record_omega, "snapshot_epochs": set(snapshot_epochs(epochs, per_octave).tolist())},
        {"grads": record_grads},
        {"snapshot": record_params, "snapshot_epochs": {e for e in TABLE1_EPOCHS if e <= epochs}},
    ]


def omega_arrays(state):
    """The omega.npz arrays from state['omega'] ({epoch: omega_snapshot dict})."""
    omega = by_epoch(state["omega"])
    epochs = sorted(omega)
    rows = [omega[e] for e in epochs]  # S snapshots, each (F,)
    return {
        "epochs": np.array(epochs, dtype=np.int64),
        "freqs": frequency_index(state["p"]),
        "counts": np.array([r["counts"] for r in rows], dtype=np.int64).reshape(len(rows), -1),  # (S, F)
        "live": np.array([r["live"] for r in rows], dtype=np.int64),
        "share": np.array([r["share"] for r in rows], dtype=np.float64),
        "active": np.array([r["active"] for r in rows], dtype=bool).reshape(len(rows), -1),  # (S, F)
        "n_active": np.array([r["n_active"] for r in rows], dtype=np.int64),
    }


def write_training_records(run_dir, state):
    """Write omega.npz, grad_norms.npz and params_<epoch>.npz from the hooks' state (atomic writes)."""
    os.makedirs(run_dir, exist_ok=True)
    if state.get("omega"):
        miiii.save_npz(os.path.join(run_dir, "omega.npz"), omega_arrays(state))
    if state.get("grad_norms"):
        norms = by_epoch(state["grad_norms"])
        epochs = sorted(norms)
        arrays = {"epochs": np.array(epochs, dtype=np.int64)}
        for name in miiii.PARAM_NAMES:
            arrays[name] = np.array([norms[e][name] for e in epochs], dtype=np.float64)  # (L,)
        miiii.save_npz(os.path.join(run_dir, "grad_norms.npz"), arrays)
    for epoch, params in by_epoch(state.get("snapshots", {})).items():
        miiii.save_npz(os.path.join(run_dir, f"params_{int(epoch)}.npz"), params)


def read_training_records(run_dir, p):
    """The inverse of write_training_records: the hooks' state from the files (to resume a run)."""
    records = load_records(run_dir)
    state = {"p": int(p), "omega": {}, "grad_norms": {}, "snapshots": records.get("snapshots", {}),
             "timing": {"snapshot_s": 0.0, "snapshots": 0}}
    om = records.get("omega")
    if om is not None:
        for i, e in enumerate(om["epochs"].tolist()):  # one record per stored snapshot
            state["omega"][e] = {"counts": om["counts"][i], "live": int(om["live"][i]),
                                 "share": float(om["share"][i]), "active": om["active"][i],
                                 "n_active": int(om["n_active"][i])}
    gn = records.get("grad_norms")
    if gn is not None:
        for i, e in enumerate(gn["epochs"].tolist()):
            state["grad_norms"][e] = {name: float(gn[name][i]) for name in miiii.PARAM_NAMES}
    return state


# ============================================================================ run directories
def read_json(path):
    """A JSON object from path; RunError (one line, naming the file) if missing or damaged."""
    try:
        obj = miiii.load_json(path)
    except miiii.UsageError as e:
        raise RunError(str(e)) from None
    if not isinstance(obj, dict):
        raise RunError(f"{path}: damaged, not a JSON object")
    return obj


def read_npz(path, required=()):
    """All arrays of an .npz file, read eagerly so a damaged file fails here, with one-line errors."""
    try:
        return miiii.load_npz(path, required)
    except miiii.UsageError as e:
        raise RunError(str(e)) from None


OMEGA_KEYS = ("epochs", "freqs", "counts", "live", "share", "active", "n_active")


def load_records(run_dir):
    """The training records present in run_dir: omega, grad_norms, snapshots ({epoch: params})."""
    records = {}
    if not os.path.isdir(run_dir):
        return records
    if os.path.exists(os.path.join(run_dir, "omega.npz")):
        records["omega"] = read_npz(os.path.join(run_dir, "omega.npz"), OMEGA_KEYS)
    if os.path.exists(os.path.join(run_dir, "grad_norms.npz")):
        records["grad_norms"] = read_npz(os.path.join(run_dir, "grad_norms.npz"), ("epochs",) + miiii.PARAM_NAMES)
    found = [m for m in map(re.compile(r"params_(\d+)\.npz$").match, os.listdir(run_dir)) if m]
    if found:
        records["snapshots"] = {int(m.group(1)): read_npz(os.path.join(run_dir, m.group(0)), miiii.PARAM_NAMES)
                                for m in sorted(found, key=lambda m: int(m.group(1)))}
    return records


def load_run(run_dir):
    """Everything in a run directory: dir, config, metrics, params and, when present, omega,
    grad_norms and snapshots ({epoch: params}). Raises RunError (one line) for a bad directory."""
    if not os.path.isdir(run_dir):
        raise RunError(f"{run_dir}: no such run directory")
    config = read_json(os.path.join(run_dir, "config.json"))
    for key in ("task", "p", "moduli", "classes"):
        if key not in config:
            raise RunError(f"{os.path.join(run_dir, 'config.json')} is damaged: no '{key}'")
    run = {"dir": run_dir, "config": config,
           "metrics": read_npz(os.path.join(run_dir, "metrics.npz"), ("epochs", "valid_acc", "train_acc")),
           "params": read_npz(os.path.join(run_dir, "params.npz"), miiii.PARAM_NAMES)}
    p = config["p"]
    if not isinstance(p, int) or isinstance(p, bool) or p < 2:
        raise RunError(f"{os.path.join(run_dir, 'config.json')} is damaged: p = {p!r}")
    if run["params"]["tok_emb"].shape[0] != p + 1 or run["metrics"]["valid_acc"].ndim != 2:
        raise RunError(f"{run_dir}: params.npz or metrics.npz does not match config.json (p = {p})")
    run.update(load_records(run_dir))
    return run


def task_labels(config):
    """One name per task head: 'mod q' (or 'div q' for the divisibility variant)."""
    kind = "div" if config["task"] == "divisible" else "mod"
    return [f"{kind} {q}" for q in config["moduli"]]


def grokking_epochs(epochs, valid_acc, level=GROK_ACC):
    """First logged epoch at which each task's valid accuracy reaches `level`, or None: (T,) list."""
    reached = valid_acc >= level  # (L, T)
    first = reached.argmax(axis=0)  # (L, T) -> (T,): first True (0 where never)
    return [int(epochs[i]) if ok else None for i, ok in zip(first, reached.any(axis=0))]


def finite_or_none(v):
    return v if math.isfinite(v) else None  # JSON has no NaN


def analyse_run(run_dir):
    """The analysis.json contents of one run directory (plain Python values)."""
    run = load_run(run_dir)
    config, metrics, params = run["config"], run["metrics"], run["params"]
    p = int(config["p"])
    labels = task_labels(config)
    va = metrics["valid_acc"]  # (L, T)
    if va.shape[1] != len(labels):
        raise RunError(f"{run_dir}: metrics.npz has {va.shape[1]} tasks, config.json {len(labels)}")
    fourier, svd = embedding_fourier(params["tok_emb"]), embedding_svd(params["tok_emb"])
    # active-frequency counts at the Table-1 epochs (all w, and the w that mix x0 and x1):
    # from omega.npz, else recomputed from the saved parameters
    mixing = interaction_mask(p)  # (F,)
    active, active_mixing = {}, {}
    if "omega" in run:
        om = run["omega"]
        for i in np.flatnonzero(np.isin(om["epochs"], TABLE1_EPOCHS)):  # at most 5 snapshots
            e = int(om["epochs"][i])
            active[e], active_mixing[e] = int(om["n_active"][i]), int((om["active"][i] & mixing).sum())
    for e, snap in run.get("snapshots", {}).items():
        if e in TABLE1_EPOCHS and e not in active:
            omega = omega_snapshot(snap, p)
            active[e], active_mixing[e] = omega["n_active"], int((omega["active"] & mixing).sum())
    final = omega_snapshot(params, p)
    grok = grokking_epochs(metrics["epochs"], va)
    order = sorted((e, i) for i, e in enumerate(grok) if e is not None)  # ties keep task order
    return {
        "run_dir": os.path.abspath(run_dir),
        "task": config["task"], "p": p, "d": int(params["tok_emb"].shape[1]),
        "epochs": int(metrics["epochs"][-1]),
        "tasks": labels,
        "final_valid_acc": dict(zip(labels, va[-1].astype(float).tolist())),
        "final_train_acc": dict(zip(labels, metrics["train_acc"][-1].astype(float).tolist())),
        "mean_final_valid_acc": float(va[-1].mean()),
        "pos_corr": finite_or_none(positional_correlation(params["pos_emb"])),
        "key_freqs": fourier["key_freqs"],
        "svd_n50": svd["n50"], "svd_n90": svd["n90"], "svd_rank": int(len(svd["singular_values"])),
        "active_freqs": {str(e): active[e] for e in sorted(active)},
        "active_freqs_mixing": {str(e): active_mixing[e] for e in sorted(active_mixing)},
        "active_freqs_final": final["n_active"],
        "active_freqs_mixing_final": int((final["active"] & mixing).sum()),
        "live_neurons_final": final["live"],
        "grok_level": GROK_ACC,
        "grok_epoch": dict(zip(labels, grok)),
        "grok_order": [labels[i] for _, i in order],
    }


def report(analysis):
    """A short human-readable report of analyse_run's dict."""
    a = analysis
    acc = a["final_valid_acc"]
    lines = [
        f"run {a['run_dir']}",
        f"  task {a['task']}, p = {a['p']}, d = {a['d']}, {a['epochs']} epochs",
        f"  final valid accuracy: mean {a['mean_final_valid_acc']:.3f}, min {min(acc.values()):.3f}",
        "    " + "  ".join(f"{name} {v:.3f}" for name, v in acc.items()),
        "  positional embedding correlation: "
        + ("undefined (constant row)" if a["pos_corr"] is None else f"{a['pos_corr']:.3f}"),
        f"  embedding key frequencies: {', '.join(map(str, a['key_freqs'])) or 'none'}",
        f"  embedding SVD: {a['svd_n50']} components reach 50 %, {a['svd_n90']} reach 90 % "
        f"(of {a['svd_rank']})",
        "  active frequencies (Table 1), all / mixing x0 and x1: "
        + ("  ".join(f"epoch {e}: {n} / {a['active_freqs_mixing'][e]}" for e, n in a["active_freqs"].items())
           or "no Table-1 epoch recorded")
        + f"  final: {a['active_freqs_final']} / {a['active_freqs_mixing_final']}"
        + f" ({a['live_neurons_final']} live neurons)",
    ]
    reached = [f"{name} @ {a['grok_epoch'][name]}" for name in a["grok_order"]]
    missing = [name for name, e in a["grok_epoch"].items() if e is None]
    lines.append(f"  grokking order (valid acc >= {a['grok_level']}): " + (", ".join(reached) or "none"))
    if missing:
        lines.append(f"    not reached: {', '.join(missing)}")
    return "\n".join(lines)


# ============================================================================ command line
def main(argv=None):
    ap = miiii.OneLineParser(prog="fft_analysis.py", description="Report the Fourier analysis of finished "
                             "miiii runs and write analysis.json into each run directory.")
    ap.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories written by miiii.py")
    ap.add_argument("--gpu", action="store_true", help="compute on a CUDA GPU with CuPy")
    try:
        args = ap.parse_args(argv)
        if args.gpu:
            miiii.use_backend("cupy")
    except miiii.UsageError as e:
        print(f"fft_analysis.py: error: {e}", file=sys.stderr)
        return 2
    status = 0
    for run_dir in args.run_dirs:  # a bad directory is reported and skipped; the others still run
        try:
            analysis = analyse_run(run_dir)
            miiii.save_json(os.path.join(run_dir, "analysis.json"), analysis)
        except RunError as e:
            print(f"fft_analysis.py: error: {e}", file=sys.stderr)
            status = 2
            continue
        except OSError as e:
            print(f"fft_analysis.py: error: cannot write {os.path.join(run_dir, 'analysis.json')}: "
                  f"{e.strerror or e}", file=sys.stderr)
            status = 2
            continue
        print(report(analysis))
    return status


if __name__ == "__main__":
    sys.exit(main())
