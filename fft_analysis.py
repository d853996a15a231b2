"""fft_analysis: what the trained miiii model computes, read off in the Fourier basis.

    python fft_analysis.py RUN_DIR [RUN_DIR ...]    # a report per run; writes RUN_DIR/analysis.json
                                                    # (a run not finished yet: the report only)

The functions are used in three places: by this command line on finished runs, by figures.py, and
during training through `training_hooks` (snapshots of the neurons' frequencies, neuron 0's spectrum
for the talk's rule, gradient norms and parameters, stored in the run directory). Definitions follow
SPEC.md §5: our rules first, and beside each quantity the talk reports, the authors' own rule
(marked "authors'"). Every choice the spec leaves open is named below, once, and tested in
tests/test_fft_analysis.py and tests/test_talk_rules.py.

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

Key frequencies, ours. The k whose share exceeds mean + 2 std of the p//2 shares (population std,
ddof 0). This rule finds at most ~p/10 frequencies when the energy is spread evenly over them
(k + 2 sqrt(k (n - k)) < n with n = p//2); Nanda's T_nanda model has about 5.
Key frequencies, authors'. Per k = 0 .. p//2 (the constant included), the L2 norm over the
embedding dimensions of |rfft over the p number tokens of tok_emb[:p]|; k is significant when its
norm exceeds mean + 1 std of those p//2 + 1 norms (their counts: T_nanda 5, T_miiii 11, T_basis 0).

Embeddings. `tok_emb[:p]` only: row p is the '=' token, which is not a number and has no place on
the circle. The SVD is of the uncentred (p, d) matrix; its energy is the sum of squared singular
values, and n50 / n90 are the fewest leading components whose cumulative energy reaches 50 % / 90 %
(compared with a relative tolerance of 1e-9, so exactly-equal singular values split evenly).
Positional similarity, ours: Pearson's r of pos_emb[0] and pos_emb[1] over all d dimensions (NaN,
reported as null, if either row is constant). Authors': the cosine similarity of pos_emb[0, :37] and
pos_emb[1, :37], the first 37 dimensions only; with d < 37 all d are used (and the report says so).
Their values: T_nanda 0.95, T_miiii -0.64 (the talk's "0.64" drops the sign).

Neurons. `hid` at the last position ('=') with dropout off, for all p*p inputs, reshaped per
neuron to a grid indexed [x0, x1] (SPEC §1: grid = values.reshape(p, p).T). They come from
`miiii.hidden`, the first half of miiii.forward (the same functions, the same numbers as its
cache["hid"]): the MLP output and the (N, C) logits are never computed, as the analysis never reads them.

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
spectrum) is not live and has none; nor has a flat spectrum (std <= 1e-3 x mean, e.g. a neuron
non-zero at a single input, whose |FFT|^2 is the same everywhere): in exact arithmetic nothing
exceeds mean + 2 x 0, and without this guard rounding noise picks a few % of its entries (it did
in the float32 matmul DFT of omega_snapshot, for neurons of a freshly initialised model).
For white noise about e^-3 ~ 5 % of entries pass by chance.

Active frequencies of the model (F,). C(w) = number of neurons with w active. With n = live neurons
and r = the share of active (neuron, w) pairs among live neurons, w is active in the model when
C(w) > n r + 4 sqrt(n r (1 - r)): four binomial standard deviations above what neurons picking
frequencies at random would give (SPEC §5).

Omega count, ours = the MIXING frequencies active in the model: k0 != 0 and k1 != 0
(`interaction_mask`), waves of x0 and x1 together. Why not all of them: at initialisation a ReLU
neuron is ~ relu(f(x0) + g(x1) + c), whose power sits on the axes, so all p - 1 axis frequencies
(k, 0), (0, k) are active in the model from epoch 0 in every run, T_basis included (measured: p - 1
of p - 1 at p = 37 and 113, d = 128 and 256). The mixing count starts near 0 and rises as the model
combines the two digits. analysis.json's `active_freqs` is this count; `active_freqs_all` (every w)
and `active_freqs_axis` (k0 = 0 or k1 = 0) stand beside it.

Omega count, the talk's rule (the authors' pipeline, SPEC §5; `talk_spectrum`, `talk_omega`):
  1. neuron 0's activations at '=' over the (p-1) x (p-1) inputs with both digits non-zero,
     |rfft2| (amplitude, no centring) with the rfft axis along x0, mean over the x1 frequencies
     (zero included): (p-1)//2 + 1 bins, recorded during training at `talk_epochs`;
  2. the 168 columns are the epochs round(geomspace(1, E, 168)) (np.round, half to even; E the
     run's last epoch), repeats kept, so column i (0-based) is epoch ~E^(i/167): columns 81, 101,
     121, 141, 161 of a 65,536-epoch run are epochs 217, 818, 3089, 11658, 43998, the talk's
     ~215, 817, 3.1k, 11.7k, 44k (1-based numbering would give 203, 771, ...: 0-based it is);
  3. each bin's series is smoothed by a 3-step moving average over the epochs e-1, e, e+1 (those of
     them in 0 .. E: at the last epoch, e-1 and e), sampled at the 168 columns, each bin's row
     divided by its sum over the 168 columns (an all-zero row stays 0), and an entry counts when it
     exceeds mean + 1 std (population) of the whole (bins x 168) matrix;
  4. the talk prints floor(count ** 0.75). Because each row is normalised over time, early columns
     (small amplitudes) can never pass, whatever the spectrum.
  A run extended after it finished (config "extended_from") has its early columns laid out for the
  old length: a column whose epoch (or a neighbour) was not recorded uses the recorded epoch nearest
  to it (ties: the earlier) and its recorded neighbours; the report counts these columns.

Attention (h, 3, p, p). Per head, the softmax weights from the '=' query to the keys at x0, x1 and
'=' (the only query that reaches the logits in a one-block model), as grids [x0, x1].

Grokking epoch of a task: the first logged epoch FROM WHICH its validation accuracy stays >= 0.99
to the end of the run (and the same for >= 0.95, the level the authors read by eye); None if the
last logged accuracy is below the level.

Progress measures (Nanda et al. 2023, "Progress measures for grokking via mechanistic
interpretability", §5; `progress_measures`), computed from parameters kept during training:
* Key waves of a task head, from the FINAL parameters (params.npz) and used at EVERY recorded epoch,
  as Nanda et al. use the final model's key frequencies. The head's logits on all p^2 inputs, one
  (p, p) grid [x0, x1] per class, centred over the classes (softmax ignores a shift shared by all
  classes) and over the inputs; |rfft2|^2 summed over the classes and folded as the neuron spectra,
  so each entry is one 2D wave w = (k0, k1), cos(2 pi (k0 x0 + k1 x1) / p + phi). The key waves are
  the fewest waves, largest share first, whose shares of that energy reach KEY_ENERGY = 90 %: their
  number is data-driven. For T_nanda, whose logits are ~ sum_k cos(2 pi k (x0 + x1 - c) / p), these
  are the waves (k, k): k is a key frequency in Nanda's sense (`key_freqs_sum` in analysis.json
  when every key wave is one).
* Restricted logits: each class's grid projected onto span{1, cos and sin of every key wave}
  (orthogonally, via fft2: the key entries, their mirrors (-k0, -k1) and the constant kept);
  restricted loss = their loss on ALL p^2 inputs. Excluded logits: the key waves removed (the
  constant and all other waves kept); excluded loss = their loss on the TRAINING inputs. Losses are
  per task, mean cross-entropy / ln q (chance 1.0), computed by miiii's own loss in float64.
* Sum of squared weights: of all nine parameters.
* T_miiii (n mod q, n = x0 + p x1). A function of n mod q is q-periodic in n, i.e. a combination of
  waves cos(2 pi j (x0 + p x1) / q + phi), j = 1 .. q//2. On the p x p grid such a wave has
  frequency j p / q along x0 and j p^2 / q along x1 (cycles per p samples), integers only if q
  divides p -- never for a prime q < p. So it is on no DFT bin: its energy leaks, sinc-like, over
  many (k0, k1), most near (round(j p / q), round(j p^2 / q) mod p) (for q = 2, odd p: around
  (p/2, p/2)). We do not pick bins by formula: each head gets its key waves exactly as T_nanda's,
  from that head's final logits. Consequence: a head needs many more bins for 90 % of its energy
  (tens to hundreds at p = 23, against 3 for a T_nanda model that grokked), the restriction is
  to those bins rather than to the head's q-periodic waves, and removing them (excluded loss) also
  removes much of whatever else the head computes. Read T_miiii's curves with that in mind.
* Phase starts per task (recorded epochs, at the resolution of the schedule below; None if not
  found), losses in the ln q normalisation:
    memorisation      the first epoch at which the training loss <= 0.9 x min(its first value, 1.0)
                      (10 % below chance; a fresh model often starts above chance)
    circuit formation the excluded loss's turn: while the model memorises, removing the key waves
                      costs ~nothing and the excluded loss falls with the training loss; once the
                      fit comes to rely on them it rises. From memorisation on, take its minimum m;
                      the first later epoch at which it is >= m + 0.1 is its rise; the start is the
                      last epoch before the rise at which it is still <= m + 0.02 (the end of its
                      floor, which can be long: thousands of epochs in Nanda's setting). No rise of
                      0.1: not found.
    clean-up          from then on, the first epoch at which the restricted loss <= 0.5 x its value
                      at the circuit start (Nanda et al.: it drops sharply in clean-up)
  (An earlier rule, excluded - training loss >= 0.1, fired during memorisation on GrokFast runs,
  where the two phases overlap, and put clean-up before the weight-norm peak.)
  The weight norm is shown beside them, not used by the rules. GrokFast runs move fast: the phases
  may start at the same recorded epoch.

During training (`training_hooks`)
----------------------------------
* Snapshots of C(w), live neurons, r, the model-level active set and its size at `snapshot_epochs`:
  0, the last epoch, the Table-1 epochs 256 .. 65536 that are reached, and round(2^(i/8)) for all i
  (8 per octave, `per_octave` to change; rounding merges the first few) -- 112 snapshots in a
  65,536-epoch run, 50 in 300. Only C(w) and these counts are stored, never raw activations.
  One snapshot (`omega_snapshot`): the hidden-only forward, then the 2D DFT of every neuron as two
  float32 matmuls against cos/sin tables (p = 113 is prime, where an FFT is slow), straight on the
  (N, 4d) activations (no per-neuron grids; one transposed copy between the two matmuls), dead
  neurons masked. At p = 113, d = 256 on a 2-core CPU: 0.31 s with the machine near idle, 0.35-0.6 s
  with other jobs on it (the full forward with per-neuron FFTs it replaces: 0.58 s idle, 0.8-1.6 s).
* Neuron 0's talk spectrum at `talk_epochs(E)`: the 168 columns' epochs and their neighbours
  (375 epochs in a 65,536-epoch run), through the hidden layer's column 0 only.
* The L2 norm of each parameter's raw (unfiltered) gradient at every logged epoch < the last
  (no gradient is computed after the last step); the gradient at epoch e is the one of step e -> e+1.
* A copy of the parameters at each Table-1 epoch reached.
* A host float32 copy of the parameters at `progress_epochs(E)`: the union of {0, E},
  round(geomspace(1, E, 24)) and round(linspace(0, E, 41)) (np.round, half to even; repeats merged):
  64 epochs at E = 65,536, 62 at 600, 63 at 3,000. Disk: 64 x the model (~220 MB for T_nanda at
  p = 113, d = 256; ~300 MB for T_miiii), each copy written once; in memory only until the next
  checkpoint. An extended run keeps the old epochs and adds the new length's epochs beyond the old end.
Hooks only read params and grads (the saved parameters are copies), draw no random numbers and
run nothing at other epochs, so training gives bit-identical weights with and without them.

Files written into the run directory (plain numpy arrays; rundir.py writes and reads them: each
record is written once, at the checkpoint after it was taken, into a segment records/<a>-<b>.npz or a
file of its own; the combined files below are written at the end of a run)
  omega.npz       epochs (S,) int64, freqs (F, 2) int64, counts (S, F) int64, live (S,) int64,
                  share (S,) float64, active (S, F) bool, n_active (S,) int64
  omega_talk.npz  epochs (R,) int64, spectra (R, (p-1)//2 + 1) float64: neuron 0, the talk's rule
  grad_norms.npz  epochs (L,) int64 and one (L,) float64 array per parameter name
  params_<E>.npz  the parameters at epoch E, under the SPEC names
  progress_params/<e>.npz  the parameters at progress epoch e (float32; large, stays local; older
                  runs: one progress_params.npz with arrays "<e>/<NAME>", still read)
  progress.npz    written by the command line from the progress copies (small, committed):
                  epochs (S,) int64, moduli (T,) int64, train_loss, valid_loss, restricted_loss,
                  excluded_loss (S, T) float64, sum_sq_weights (S,) float64, key_waves (K, 3)
                  int64 rows (task, k0, k1) as frequency_index (k0 > p/2: negative k0 - p),
                  largest share first per task, key_share (K,) float64 each wave's share of its
                  head's final logit energy, key_energy () the 90 % level, phases (T, 3) int64 the
                  starts of memorisation, circuit formation, clean-up (-1: not found)
  analysis.json   written by the command line: see `analyse_run`; for a complete run only (an
                  unfinished one, read as far as its last checkpoint, gets the report alone)
Run directories made before a record existed are still analysed; the report names what is missing.
"""
import math
import os
import sys
import time

import numpy as np

import miiii
import rundir

TABLE1_EPOCHS = (256, 1024, 4096, 16384, 65536)  # the talk's Table 1
SNAPSHOTS_PER_OCTAVE = 8  # log-spaced snapshot density
GROK_ACC = 0.99  # validation accuracy that counts as "solved" for the grokking order
GROK_ACC_LOW = 0.95  # the level the authors read by eye (GrokFast and others use it too)
SIGMAS_NEURON = 2.0  # per-neuron rule: power > mean + 2 std
SIGMAS_MODEL = 4.0  # model rule: C(w) > n r + 4 binomial std
FLAT_SPECTRUM = 1e-3  # std / mean below this: a flat spectrum (rounding noise only), nothing active
# the talk's rules (SPEC §5, "authors'")
TALK_COLUMNS = 168  # log-spaced time columns of the talk's Omega matrix
TALK_NEURON = 0  # the one neuron the talk's Omega rule reads
TALK_SIGMAS = 1.0  # talk's Omega rule and the authors' key frequencies: > mean + 1 std
TALK_PRINT_POWER = 0.75  # the talk prints floor(count ** 0.75)
TALK_COLUMNS_SHOWN = (81, 101, 121, 141, 161)  # the talk's Table-1 columns, 0-based (module doc)
TALK_TABLE1 = {256: 0, 1024: 0, 4096: 10, 16384: 18, 65536: 10}  # the talk's Table 1 as printed (p = 113)
POS_COS_DIMS = 37  # authors' positional similarity: cosine over the first 37 dimensions
# progress measures (Nanda et al. 2023, §5; module doc)
PROGRESS_LOG = 24  # log-spaced progress epochs: round(geomspace(1, E, 24))
PROGRESS_LINEAR = 40  # evenly spaced ones: round(linspace(0, E, 41)), i.e. every E/40
KEY_ENERGY = 0.9  # key waves of a head: the fewest explaining 90 % of its (centred) logit energy
MEMO_DROP = 0.1  # memorisation starts when the training loss is 10 % below chance (or its first value)
CIRCUIT_GAP = 0.1  # the excluded loss has risen when it is 0.1 above its minimum (chance = 1)
CIRCUIT_FLOOR = 0.02  # ... and its floor before that ends at the last epoch within 0.02 of the minimum
CLEANUP_FRACTION = 0.5  # clean-up starts when the restricted loss is half its value at circuit formation
PHASES = ("memorisation", "circuit_formation", "cleanup")
PROGRESS_WAVES_SHOWN = 16  # key waves listed per task in analysis.json (all are in progress.npz)


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


def key_frequencies_authors(tok_emb):
    """Authors' rule: the k = 0 .. p//2 whose norm over dims of |rfft_x tok_emb[:p]| > mean + 1 std.

    Returns (keys, norms): keys a list of k (0 = the constant), norms (p//2 + 1,).
    """
    E = np.asarray(tok_emb, dtype=np.float64)[:-1]  # (p + 1, d) -> (p, d): the '=' row is no number
    norms = np.linalg.norm(np.abs(np.fft.rfft(E, axis=0)), axis=1)  # (p, d) -> (p//2+1, d) -> (p//2+1,)
    keys = np.flatnonzero(norms > norms.mean() + TALK_SIGMAS * norms.std())
    return [int(k) for k in keys], norms


def positional_cosine(pos_emb, dims=POS_COS_DIMS):
    """Authors' rule: cosine similarity of pos_emb[0, :dims] and pos_emb[1, :dims] -> (cos, dims used).

    With d < dims all d dimensions are used; NaN if either part is all zero.
    """
    a, b = np.asarray(pos_emb, dtype=np.float64)[:2, :dims]  # (2, min(d, dims))
    denom = math.sqrt((a * a).sum() * (b * b).sum())
    return (float((a * b).sum() / denom) if denom > 0 else float("nan")), int(a.shape[0])


def positional_correlation(pos_emb):
    """Pearson correlation of the embeddings of positions 0 and 1 (x0 and x1)."""
    a, b = np.asarray(pos_emb, dtype=np.float64)[:2]
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


# ============================================================================ neurons
def device_params(params):
    """The parameters on miiii's current backend (no copy when they are there already)."""
    return {name: miiii.to_device(params[name]) for name in miiii.PARAM_NAMES}


def neuron_grids(params, p, batch=16384, host=True):
    """MLP activations at '=' over all inputs, dropout off: (4d, p, p) float32, grid[j, x0, x1].

    Runs miiii.hidden on the current backend, `batch` inputs at a time; only the result moves to
    the host (host=False keeps it on the backend).
    """
    params = device_params(params)
    x = miiii.to_device(miiii.all_pairs(p))  # (N, 3)
    hid = miiii.xp.concatenate([miiii.hidden(params, x[i:i + batch])  # (N, 4d)
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


def omega_split(active_model, p):
    """Model-level active frequencies (F,) bool -> {"mixing": k0, k1 != 0 (ours), "axis", "all"} counts."""
    mixing = int((np.asarray(active_model) & interaction_mask(p)).sum())
    total = int(np.asarray(active_model).sum())
    return {"mixing": mixing, "axis": total - mixing, "all": total}


def fold(power):
    """(..., p, p//2+1) -> (..., F): the power at each frequency w of frequency_index(p)."""
    xp = array_module(power)
    index = xp.asarray(frequency_index(power.shape[-2]))  # (F, 2)
    return power[..., index[:, 0], index[:, 1]]  # (n, p, p//2+1) -> (n, F)


def live_neurons(power):
    """(n,) bool: neurons whose activation varies over the inputs (any non-zero power)."""
    return power.reshape(power.shape[0], -1).max(axis=1) > 0  # (n, p, p//2+1) -> (n,)


def neuron_active(power):
    """(n, F) bool: frequency w is active in neuron j when its power > mean + 2 std of j's spectrum.

    A flat spectrum (std <= FLAT_SPECTRUM x mean, e.g. a neuron non-zero at one input) has nothing
    active, as in exact arithmetic; otherwise rounding noise could decide.
    """
    folded = fold(power)  # (n, p, p//2+1) -> (n, F)
    mean, std = folded.mean(axis=1, keepdims=True), folded.std(axis=1, keepdims=True)  # (n, 1) each
    keep = live_neurons(power)[:, None] & (std > FLAT_SPECTRUM * mean)  # dead neurons: nothing active
    return (folded > mean + SIGMAS_NEURON * std) & keep


def model_active(counts, live, share):
    """(F,) bool: C(w) > n r + 4 sqrt(n r (1 - r)), n = live neurons, r = share of active pairs."""
    n, r = float(live), float(share)
    return np.asarray(counts) > n * r + SIGMAS_MODEL * math.sqrt(n * r * (1.0 - r))


def omega_from_counts(counts, live):
    """The Omega-spike numbers from C(w) (F,) (host ints) and the number of live neurons."""
    counts = np.asarray(counts, dtype=np.int64)
    share = float(counts.sum()) / (live * counts.size) if live else 0.0  # dead neurons have no pairs
    active_model = model_active(counts, live, share)  # (F,)
    return {"counts": counts, "live": int(live), "share": share,
            "active": active_model, "n_active": int(active_model.sum())}


def omega_from_active(active, live):
    """The Omega-spike numbers from per-neuron active sets (n, F) and the live count."""
    return omega_from_counts(miiii.to_host(active.sum(axis=0)), live)  # (n, F) -> (F,): C(w)


def dft_tables(p):
    """float32 host tables for a 2D DFT by matmuls (module doc), signs as numpy's FFT (e^-i...).

    rfft (2K, p): rows cos(2 pi k1 x / p) then -sin(...) for k1 = 0 .. p//2 (K = p//2 + 1);
    full (2p, p): rows cos(2 pi k0 x / p) then sin(...) for k0 = 0 .. p-1.
    """
    x = np.arange(p)
    a1 = 2 * np.pi * np.outer(np.arange(p // 2 + 1), x) / p  # (K, p)
    a2 = 2 * np.pi * np.outer(x, x) / p  # (p, p)
    rfft = np.concatenate([np.cos(a1), -np.sin(a1)]).astype(np.float32)  # (2K, p)
    full = np.concatenate([np.cos(a2), np.sin(a2)]).astype(np.float32)  # (2p, p)
    return rfft, full


def omega_snapshot(params, p):
    """C(w), live neurons, r and the model-level active frequencies, computed on the backend.

    Means the same as neuron_power -> neuron_active -> omega_from_active on neuron_grids, but ~3x
    cheaper: no logits, float32 throughout, the 2D DFT of all neurons as two large matmuls (p = 113
    is a prime length, slow for an FFT), dead neurons masked rather than gathered out (a column
    gather of (N, 4d) costs more than the few dead columns save). Agrees with the float64
    computation up to float32 rounding (tests/test_talk_rules.py).
    """
    params = device_params(params)
    return omega_from_hidden(miiii.hidden(params, miiii.to_device(miiii.all_pairs(p))), p)


def omega_from_hidden(H, p):
    """omega_snapshot's work after the forward pass: H (N, n) neuron values in sample order, on the
    backend (overwritten: centred in place). Grid [x0, x1] of neuron j = H[:, j].reshape(p, p).T."""
    xp = miiii.xp
    n, K = H.shape[1], p // 2 + 1  # H[x1 p + x0, j]
    live = H.max(axis=0) > H.min(axis=0)  # (n,): dead neurons are constant (0 for a dead ReLU)
    H -= H.mean(axis=0, keepdims=True)  # the mean only moves the (0, 0) entry, set aside; less rounding
    rfft, full = (miiii.to_device(t) for t in dft_tables(p))
    A = (rfft @ H.reshape(p, p * n)).reshape(2 * K, p, n)  # along x1: (2K, p) @ (p, p n) -> [re/im k1, x0, j]
    A = xp.ascontiguousarray(A.transpose(1, 0, 2)).reshape(p, 2 * K * n)  # x0 first, for one matmul
    B = (full @ A).reshape(2 * p, 2 * K, n)  # along x0: (2p, p) @ (p, 2K n) -> [cos/sin k0, re/im k1, j]
    # (C - iS)(Ar + i Ai) = (C Ar + S Ai) + i (C Ai - S Ar)
    power = B[:p, :K] + B[p:, K:]  # real part (p, K, n) [k0, k1, j]
    power *= power
    im = B[:p, K:] - B[p:, :K]
    im *= im
    power += im  # |.|^2, row-major over (k0, k1) as frequency_index
    freqs = frequency_index(p)
    folded = power.reshape(p * K, n)[miiii.to_device(freqs[:, 0] * K + freqs[:, 1])]  # (F, n): a row gather
    ones = xp.ones((1, folded.shape[0]), dtype=folded.dtype)  # sums over F as a matmul: blocked, accurate
    mean = (ones @ folded)[0] / folded.shape[0]  # (n,)
    folded -= mean  # deviations, in place
    std = xp.sqrt((ones @ (folded * folded))[0] / folded.shape[0])  # (n,) population std
    keep = live & (std > FLAT_SPECTRUM * mean)  # (n,): dead and flat spectra have nothing active
    active = (folded > SIGMAS_NEURON * std) & keep  # (F, n): power - mean > 2 std
    return omega_from_counts(miiii.to_host(active.sum(axis=1)), int(live.sum()))


# ============================================================================ attention
def attention_patterns(params, p):
    """(h, 3, p, p): per head, the weights from '=' to x0, x1 and '=' over the grid [x0, x1]."""
    _, cache = miiii.forward(device_params(params), miiii.to_device(miiii.all_pairs(p)))
    att = cache["att"]  # (N, 3, h): the softmax over the three key positions
    return miiii.to_host(att.reshape(p, p, 3, -1).transpose(3, 2, 1, 0))  # (x1, x0, 3, h) -> (h, 3, x0, x1)


# ============================================================================ the talk's Omega rule
def talk_inputs(p):
    """(p-1)^2 inputs with both digits non-zero, x0 fastest: row (x1 - 1)(p - 1) + (x0 - 1)."""
    x = miiii.all_pairs(p)  # (N, 3), row x0 + x1 p
    return x[(x[:, 0] > 0) & (x[:, 1] > 0)]  # (p-1)^2 rows, order kept: x1-major, x0 fastest


def talk_spectrum(params, p, x=None, neuron=TALK_NEURON):
    """The talk's neuron spectrum: ((p-1)//2 + 1,) float64 (module doc, Omega count, the talk's rule).

    Neuron `neuron`'s activations at '=' on the (p-1) x (p-1) grid of non-zero digits (only the
    hidden layer's column `neuron` is computed), |rfft2| with the rfft along x0, mean over the x1
    frequencies (zero included). x: talk_inputs(p) on the backend, if already there.
    """
    params = device_params(params)
    x = miiii.to_device(talk_inputs(p)) if x is None else x
    h = miiii.to_host(miiii.hidden(params, x, neuron)).astype(np.float64)  # (M,), M = (p-1)^2, on the host
    grid = h.reshape(p - 1, p - 1)  # [x1 - 1, x0 - 1]
    return np.abs(np.fft.rfft2(grid)).mean(axis=0)  # rfft along x0 (last axis), fft along x1 -> (K,)


def talk_columns(last_epoch, columns=TALK_COLUMNS):
    """(168,) int64: the epochs of the talk's time columns, round(geomspace(1, E, 168)), repeats kept."""
    if last_epoch < 1:
        return np.zeros(0, dtype=np.int64)
    return np.round(np.geomspace(1, int(last_epoch), columns)).astype(np.int64)


def talk_epochs(last_epoch, columns=TALK_COLUMNS):
    """Sorted int64 epochs to record for the talk's rule: every column's epoch and its two neighbours."""
    c = np.unique(talk_columns(last_epoch, columns))
    marks = np.concatenate([c - 1, c, c + 1])
    return np.unique(marks[(marks >= 0) & (marks <= last_epoch)])


def talk_omega(epochs, spectra, last_epoch, columns=TALK_COLUMNS):
    """The talk's Omega counts from recorded spectra: a pure function (module doc, steps 2 and 3).

    epochs (R,) recorded epochs, spectra (R, bins), last_epoch E. Returns a dict: column_epochs
    (168,), used_epochs (168,) the recorded epoch each column was read at, counts (168,) int64,
    matrix (bins, 168) the normalised smoothed spectra, threshold, approximated (the number of
    columns whose epoch or a neighbour in 0 .. E was not recorded: an extended run) -- or None
    when nothing was recorded or E < 1.
    """
    epochs = np.asarray(epochs, dtype=np.int64)
    cols = talk_columns(last_epoch, columns)
    if len(epochs) == 0 or len(cols) == 0:
        return None
    spectra = np.asarray(spectra, dtype=np.float64).reshape(len(epochs), -1)  # (R, bins)
    order = np.argsort(epochs)
    epochs, spectra = epochs[order], spectra[order]
    row = {int(e): i for i, e in enumerate(epochs)}
    used, smoothed, approximated = [], [], 0
    for c in cols.tolist():
        r = int(epochs[np.argmin(np.abs(epochs - c))])  # nearest recorded epoch; ties: the earlier
        window = [e for e in (r - 1, r, r + 1) if e in row]  # the 3-step moving average, where recorded
        wanted = [e for e in (c - 1, c, c + 1) if 0 <= e <= last_epoch]
        approximated += r != c or len(window) < len(wanted)
        used.append(r)
        smoothed.append(spectra[[row[e] for e in window]].mean(axis=0))  # (bins,)
    M = np.stack(smoothed, axis=1)  # (bins, 168)
    total = M.sum(axis=1, keepdims=True)  # (bins, 1): each bin over the 168 columns
    M = np.divide(M, total, out=np.zeros_like(M), where=total > 0)  # an all-zero row stays 0
    threshold = float(M.mean() + TALK_SIGMAS * M.std())
    return {"column_epochs": cols, "used_epochs": np.array(used, dtype=np.int64),
            "counts": (M > threshold).sum(axis=0).astype(np.int64), "matrix": M,
            "threshold": threshold, "approximated": int(approximated)}


def talk_printed(count):
    """What the talk prints for a count: floor(count ** 0.75)."""
    return int(math.floor(count ** TALK_PRINT_POWER + 1e-9))  # 1e-9: 16 ** 0.75 = 8 exactly, not 7.999


def talk_summary(talk, last_epoch):
    """The talk's counts at the Table-1 epochs reached (nearest column) and at its columns 81 .. 161."""
    cols, counts = talk["column_epochs"], talk["counts"]
    table1 = {}
    for e in (e for e in TABLE1_EPOCHS if e <= last_epoch):
        i = int(np.argmin(np.abs(cols - e)))  # nearest column; ties: the earlier
        table1[str(e)] = {"column": i, "epoch": int(cols[i]), "count": int(counts[i]),
                          "printed": talk_printed(int(counts[i]))}
    shown = {str(i): {"epoch": int(cols[i]), "count": int(counts[i]), "printed": talk_printed(int(counts[i]))}
             for i in TALK_COLUMNS_SHOWN if i < len(cols)}
    return {"neuron": TALK_NEURON, "bins": int(talk["matrix"].shape[0]), "columns": int(len(cols)),
            "threshold": talk["threshold"], "approximated_columns": talk["approximated"],
            "table1": table1, "talk_columns": shown,
            "column_epochs": cols.tolist(), "counts": talk["counts"].tolist()}


# ============================================================================ progress measures
def progress_epochs(epochs, n_log=PROGRESS_LOG, n_linear=PROGRESS_LINEAR):
    """Sorted int64 epochs at which the parameters are kept for the progress measures (module doc).

    The union of {0, E}, round(geomspace(1, E, n_log)) and round(linspace(0, E, n_linear + 1))
    (np.round: half to even), repeats merged. Depends on E only, so a resumed run records the same.
    """
    E = int(epochs)
    if E < 1:
        return np.zeros(1, dtype=np.int64)  # a 0-epoch run: the initial weights only
    log = np.round(np.geomspace(1, E, n_log))  # (n_log,) dense early, where memorisation happens
    linear = np.round(np.linspace(0, E, n_linear + 1))  # (n_linear + 1,) even over the whole run
    return np.unique(np.concatenate([[0, E], log, linear]).astype(np.int64))


def sum_squared_weights(params):
    """Nanda et al.'s weight norm: the sum of the squares of every parameter (all nine), float64."""
    return float(sum((np.asarray(params[name], dtype=np.float64) ** 2).sum() for name in miiii.PARAM_NAMES))


def all_logits(params, p, batch=16384):
    """(p*p, C) float64 host logits for every input in sample order, dropout off."""
    params = device_params(params)
    x = miiii.to_device(miiii.all_pairs(p))  # (N, 3)
    parts = [miiii.to_host(miiii.forward(params, x[i:i + batch])[0]) for i in range(0, p * p, batch)]
    return np.concatenate(parts, axis=0).astype(np.float64)  # (N, C)


def head_nll(logits, y, classes):
    """(M, T) float64 host array: each sample's cross-entropy / ln q per head (chance = 1.0).

    logits (M, C) and y (M, T) (or (M,) for one head). Computed by miiii's own loss in float64, so
    the progress curves and the logged metrics share one formula: a confident answer keeps its tiny
    loss (log1p of the other classes' mass) instead of rounding to 0.
    """
    logits = miiii.to_device(np.asarray(logits, dtype=np.float64))
    y = miiii.to_device(np.asarray(y).reshape(len(logits), -1))
    _, cache = miiii.cross_entropy_forward(logits, y, classes)
    return miiii.to_host(cache["nll"]) / np.log(np.asarray(classes, dtype=np.float64))


def head_loss(logits, y):
    """Mean cross-entropy / ln q of one head's logits (M, q) against targets y (M,): chance = 1.0."""
    return float(head_nll(logits, y, [logits.shape[1]]).mean())


def logit_grids(logits, p):
    """(N, q) logits in sample order -> (p, p, q) grids [x0, x1, class] (SPEC §1: reshape(p, p).T)."""
    return logits.reshape(p, p, -1).transpose(1, 0, 2)  # (x1, x0, q) -> (x0, x1, q)


def wave_energy(logits, p):
    """(F,) each 2D wave's share of a head's logit energy; logits (N, q) in sample order.

    The logits are first centred over the classes (a shift shared by all classes of an input does not
    change the softmax) and over the inputs (each class's constant is kept by every restriction and
    is not a wave); then |rfft2|^2 over (x0, x1), summed over the classes, folded as the neuron
    spectra (frequency_index): entry w is the wave cos(2 pi (k0 x0 + k1 x1) / p + phi).
    """
    g = logit_grids(logits, p)  # (p, p, q)
    g = g - g.mean(axis=2, keepdims=True)  # over the classes
    g = g - g.mean(axis=(0, 1), keepdims=True)  # over the inputs
    spec = np.fft.rfft2(g, axes=(0, 1))  # (p, p//2+1, q) [k0, k1, class]
    power = (spec.real ** 2 + spec.imag ** 2).sum(axis=2)  # (p, p//2+1)
    energy = fold(power)  # (F,)
    total = energy.sum()
    return energy / total if total > 0 else energy


def key_waves(logits, p, level=KEY_ENERGY):
    """The key waves of a head: the fewest waves whose shares reach `level` of its logit energy.

    Returns (waves (K, 2) int64 as (k0, k1) of frequency_index, shares (K,)), largest share first.
    No energy at all (constant logits): no key wave.
    """
    share = wave_energy(logits, p)  # (F,)
    if share.sum() <= 0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    order = np.argsort(-share, kind="stable")  # (F,), ties: frequency_index order
    n = int(np.searchsorted(np.cumsum(share[order]), level * (1 - 1e-9))) + 1  # 1e-9: exact sums reach it
    keep = order[:min(n, len(order))]
    return frequency_index(p)[keep], share[keep]


def wave_mask(p, waves):
    """(p, p) bool over the full fft2 grid [k0, k1]: the constant, each wave and its mirror (-k0, -k1).

    A set closed under the mirror keeps an inverse FFT real: the mask is an orthogonal projection
    onto span{1, cos(2 pi (k0 x0 + k1 x1)/p), sin(...) for each wave}.
    """
    mask = np.zeros((p, p), dtype=bool)
    mask[0, 0] = True
    waves = np.asarray(waves, dtype=np.int64).reshape(-1, 2)
    mask[waves[:, 0] % p, waves[:, 1] % p] = True
    mask[-waves[:, 0] % p, -waves[:, 1] % p] = True
    return mask


def restrict_logits(logits, p, waves, keep=True):
    """Logits (N, q) projected, per class, onto the key waves plus the constant (keep=True: the
    restricted logits), or with the key waves removed, constant kept (keep=False: the excluded ones).

    The projection is over the (p, p) grid of inputs (x0, x1) of each class column; returns (N, q)
    in sample order.
    """
    mask = wave_mask(p, waves)  # (p, p) [k0, k1]
    if not keep:
        mask = ~mask
        mask[0, 0] = True  # the constant stays in both
    spec = np.fft.fft2(logit_grids(logits, p), axes=(0, 1))  # (p, p, q)
    g = np.fft.ifft2(spec * mask[:, :, None], axes=(0, 1)).real  # (p, p, q) [x0, x1, class]
    return g.transpose(1, 0, 2).reshape(p * p, -1)  # back to sample order (N, q)


def restricted_and_excluded(logits, y, p, waves, train):
    """(restricted loss on all inputs, excluded loss on the training inputs) of one head (module doc).

    logits (N, q) and y (N,) in sample order, train the training sample indices.
    """
    restricted = head_loss(restrict_logits(logits, p, waves, keep=True), y)
    excluded = restrict_logits(logits, p, waves, keep=False)[train]  # (n_train, q)
    return restricted, head_loss(excluded, y[train])


def first_epoch(epochs, condition, start=None):
    """The first epoch >= start (all when None) at which condition (S,) bool holds, or None."""
    ok = np.asarray(condition) & (True if start is None else np.asarray(epochs) >= start)
    return int(np.asarray(epochs)[np.argmax(ok)]) if ok.any() else None


def phase_starts(epochs, train_loss, restricted_loss, excluded_loss):
    """Starts of memorisation, circuit formation and clean-up for one task (module doc), or None.

    All arrays (S,) at the recorded epochs, losses in the ln q normalisation (chance = 1).
    """
    epochs = np.asarray(epochs)
    train_loss, restricted_loss, excluded_loss = (np.asarray(a) for a in (train_loss, restricted_loss, excluded_loss))
    # below chance, not just below a start that may lie above it (a fresh model's loss is often > 1)
    memo = first_epoch(epochs, train_loss <= (1 - MEMO_DROP) * min(train_loss[0], 1.0))
    if memo is None:
        return [None, None, None]
    after = epochs >= memo
    low = np.min(excluded_loss[after])  # the excluded loss's floor
    lowest = first_epoch(epochs, (excluded_loss == low) & after)
    rise = first_epoch(epochs, excluded_loss >= low + CIRCUIT_GAP, lowest)
    if rise is None:
        return [memo, None, None]
    floor = (excluded_loss <= low + CIRCUIT_FLOOR) & (epochs >= lowest) & (epochs < rise)  # (S,)
    circuit = int(epochs[np.flatnonzero(floor)[-1]])  # the floor's last epoch
    at_circuit = restricted_loss[np.flatnonzero(epochs == circuit)[0]]
    cleanup = first_epoch(epochs, restricted_loss <= CLEANUP_FRACTION * at_circuit, circuit)
    return [memo, circuit, cleanup]


def progress_measures(run):
    """Nanda et al.'s progress measures at every recorded epoch of a loaded run (module doc).

    run: a load_run dict with "progress_params" ({epoch: params}). Key waves come from the FINAL
    parameters (params.npz) and are used at every epoch. Returns progress.npz's arrays.
    """
    config, p = run["config"], int(run["config"]["p"])
    task = miiii.make_task(config["task"], p, config.get("train_frac", 0.5), config.get("seed", 0))
    classes, y = task["classes"], task["y"]  # (T,), (N, T)
    offsets = np.concatenate([[0], np.cumsum(classes)]).astype(int)  # head t: columns offsets[t]:offsets[t+1]
    final = all_logits(run["params"], p)  # (N, C)
    keys = [key_waves(final[:, offsets[t]:offsets[t + 1]], p) for t in range(len(classes))]
    snaps = rundir.by_epoch(run["progress_params"])
    epochs = np.array(sorted(snaps), dtype=np.int64)  # (S,)
    S, T = len(epochs), len(classes)
    out = {name: np.zeros((S, T)) for name in ("train_loss", "valid_loss", "restricted_loss", "excluded_loss")}
    out["sum_sq_weights"] = np.zeros(S)
    for i, e in enumerate(epochs.tolist()):
        logits = all_logits(snaps[e], p)  # (N, C)
        out["sum_sq_weights"][i] = sum_squared_weights(snaps[e])
        nll = head_nll(logits, y, classes)  # (N, T), every head at once
        out["train_loss"][i] = nll[task["train"]].mean(axis=0)
        out["valid_loss"][i] = nll[task["valid"]].mean(axis=0) if len(task["valid"]) else np.nan
        for t in range(T):  # each head has its own key waves
            head, yt = logits[:, offsets[t]:offsets[t + 1]], y[:, t]  # (N, q), (N,)
            out["restricted_loss"][i, t], out["excluded_loss"][i, t] = restricted_and_excluded(
                head, yt, p, keys[t][0], task["train"])
    out.update({
        "epochs": epochs, "moduli": np.array(task["moduli"], dtype=np.int64),
        "key_waves": np.array([[t, k0, k1] for t in range(T) for k0, k1 in keys[t][0].tolist()],
                              dtype=np.int64).reshape(-1, 3),  # (K, 3): task, k0, k1
        "key_share": np.concatenate([keys[t][1] for t in range(T)]).astype(np.float64),  # (K,)
        "key_energy": np.array(KEY_ENERGY),
    })
    out["phases"] = progress_phases(out)  # (T, 3)
    return out


def progress_phases(pm):
    """(T, 3) int64 phase starts (memorisation, circuit formation, clean-up; -1: not found) of every
    task, from the curves of progress measures pm (progress.npz's arrays). Recomputed by readers, so
    a progress.npz written under other rules is read under these."""
    return np.array([[-1 if e is None else e for e in phase_starts(
        pm["epochs"], pm["train_loss"][:, t], pm["restricted_loss"][:, t], pm["excluded_loss"][:, t])]
        for t in range(np.asarray(pm["train_loss"]).shape[1])], dtype=np.int64).reshape(-1, 3)


def task_phases(pm, t):
    """Task t's phase starts as {PHASES name: epoch, or None where not found} (pm: progress.npz's arrays)."""
    return dict(zip(PHASES, [None if e < 0 else int(e) for e in np.asarray(pm["phases"])[t].tolist()]))


def signed_wave(k0, k1, p):
    """A folded (k0, k1) as shown to people: k0 above p/2 is the negative frequency k0 - p."""
    return [int(k0) - p if 2 * int(k0) > p else int(k0), int(k1)]


def progress_summary(pm, labels, p, shown=PROGRESS_WAVES_SHOWN):
    """analysis.json's "progress": per task the key waves, their energy share, the phase starts and
    the final restricted / excluded losses (the full arrays are in progress.npz)."""
    tasks = {}
    for t, label in enumerate(labels):
        rows = pm["key_waves"][:, 0] == t
        waves = [signed_wave(k0, k1, p) for k0, k1 in pm["key_waves"][rows, 1:].tolist()]
        diagonal = sorted(k0 for k0, k1 in waves if k0 == k1)  # waves of x0 + x1: Nanda's key frequencies k
        tasks[label] = {
            "n_key_waves": len(waves), "key_waves": waves[:shown],
            "key_freqs_sum": diagonal if len(diagonal) == len(waves) else None,
            "key_share": float(pm["key_share"][rows].sum()),
            "phases": task_phases(pm, t),
            "final_restricted_loss": float(pm["restricted_loss"][-1, t]),
            "final_excluded_loss": float(pm["excluded_loss"][-1, t]),
            "final_train_loss": float(pm["train_loss"][-1, t]),
        }
    return {"recorded_epochs": len(pm["epochs"]), "key_energy": float(pm["key_energy"]),
            "sum_sq_weights_first": float(pm["sum_sq_weights"][0]),
            "sum_sq_weights_final": float(pm["sum_sq_weights"][-1]), "tasks": tasks}


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


def training_hooks(cfg, state, per_octave=SNAPSHOTS_PER_OCTAVE):
    """Hook dicts for miiii.train that record Omega snapshots, talk spectra, gradient norms and
    parameter copies into `state`, the records dict of rundir.py (its module doc).

    Each record is keyed by epoch (an epoch seen twice is stored once); rundir.flush_records writes
    them out at each checkpoint of a command-line run, rundir.finish_records at the end. A run
    extended to more epochs calls this again with the new cfg and the old records: the new
    length's schedules go on from there, the old records stay.
    """
    cfg = {**miiii.DEFAULTS, **cfg}
    p, epochs = int(cfg["p"]), int(cfg["epochs"])
    state.setdefault("p", p)
    for key in ("omega", "omega_talk", "grad_norms", "snapshots", "progress"):
        state[key] = rundir.by_epoch(state.get(key, {}))  # a checkpoint may have turned the keys into strings
    state.setdefault("timing", {"snapshot_s": 0.0, "snapshots": 0})
    state["constants"] = {"omega": {"freqs": frequency_index(p)}}  # omega.npz's columns, the (k0, k1) of each w
    talk_x = {}  # the talk's inputs on the backend, made at the first call (the backend is set by then)

    def record_omega(epoch, params):
        start = time.perf_counter()
        state["omega"][int(epoch)] = omega_snapshot(params, p)
        state["timing"]["snapshot_s"] += time.perf_counter() - start
        state["timing"]["snapshots"] += 1

    def record_talk(epoch, params):
        if "x" not in talk_x:
            talk_x["x"] = miiii.to_device(talk_inputs(p))
        state["omega_talk"][int(epoch)] = talk_spectrum(params, p, talk_x["x"])

    def record_grads(epoch, grads):
        state["grad_norms"][int(epoch)] = miiii.grad_norms(grads)

    def record_params(epoch, params):
        # copies: training updates the arrays in place
        state["snapshots"][int(epoch)] = {name: np.array(miiii.to_host(w), copy=True) for name, w in params.items()}

    def record_progress(epoch, params):
        # host float32 copies (training updates the arrays in place), for progress_measures
        state["progress"][int(epoch)] = {name: np.array(miiii.to_host(params[name]), dtype=np.float32, copy=True)
                                         for name in miiii.PARAM_NAMES}

    return [
        {"snapshot": record_omega, "snapshot_epochs": set(snapshot_epochs(epochs, per_octave).tolist())},
        {"grads": record_grads},
        {"snapshot": record_params, "snapshot_epochs": {e for e in TABLE1_EPOCHS if e <= epochs}},
        {"snapshot": record_talk, "snapshot_epochs": set(talk_epochs(epochs).tolist())},
        {"snapshot": record_progress, "snapshot_epochs": set(progress_epochs(epochs).tolist())},
    ]


def records_bytes(cfg, weights):
    """Bytes the training records of a run take at most, uncompressed: a copy of the weights
    (`weights` bytes) at each progress and Table-1 epoch, and the Omega snapshots, talk spectra
    and gradient norms twice (the segments, then the combined files), each segment with omega.npz's
    frequency columns."""
    E, p = int(cfg["epochs"]), int(cfg["p"])
    copies = len(progress_epochs(E)) + sum(e <= E for e in TABLE1_EPOCHS)
    F, S = len(frequency_index(p)), len(snapshot_epochs(E))
    omega = S * F * (8 + 1) + S * F * 2 * 8  # counts, active per snapshot; freqs per segment (<= S of them)
    talk = len(talk_epochs(E)) * ((p - 1) // 2 + 1) * 8
    norms = len(miiii.log_epochs(E, int(cfg["log_every"]))) * len(miiii.PARAM_NAMES) * 8
    return copies * weights + 2 * (omega + talk + norms)


def load_run(run_dir, progress_params=True):
    """rundir.load_run with miiii's parameter names, and progress.npz's phases under today's rules."""
    return rundir.load_run(run_dir, miiii.PARAM_NAMES, progress_params, phases=progress_phases)


def load_records(run_dir, progress_params=True):
    """rundir.load_records with miiii's parameter names, and progress.npz's phases under today's rules."""
    return rundir.load_records(run_dir, miiii.PARAM_NAMES, progress_params, phases=progress_phases)


def task_labels(config):
    """One name per task head: 'mod q' (or 'div q' for the divisibility variant)."""
    kind = "div" if config["task"] == "divisible" else "mod"
    return [f"{kind} {q}" for q in config["moduli"]]


def grokking_epochs(epochs, valid_acc, level=GROK_ACC):
    """Per task, the first logged epoch FROM WHICH valid accuracy stays >= level to the end, or None.

    epochs (L,), valid_acc (L, T) -> (T,) list. A task below the level at its last log gets None.
    """
    below = np.asarray(valid_acc) < level  # (L, T)
    L = below.shape[0]
    last_below = np.where(below.any(axis=0), L - 1 - below[::-1].argmax(axis=0), -1)  # (T,), -1: never below
    return [int(epochs[i + 1]) if i + 1 < L else None for i in last_below.tolist()]


def grokking_order(labels, grok):
    """Task labels in the order they grokked (ties keep task order); tasks that did not are left out."""
    return [labels[i] for _, i in sorted((e, i) for i, e in enumerate(grok) if e is not None)]


def finite_or_none(v):
    return v if math.isfinite(v) else None  # JSON has no NaN


def table1_counts(run, p):
    """{epoch: omega_split} model-level active counts at the Table-1 epochs the records hold.

    From omega.npz, else recomputed from the saved parameters params_<E>.npz.
    """
    counts = {}
    if "omega" in run:
        om = run["omega"]
        for i in np.flatnonzero(np.isin(om["epochs"], TABLE1_EPOCHS)):  # at most 5 snapshots
            counts[int(om["epochs"][i])] = omega_split(om["active"][i], p)
    for e, snap in run.get("snapshots", {}).items():
        if e in TABLE1_EPOCHS and e not in counts:
            counts[e] = omega_split(omega_snapshot(snap, p)["active"], p)
    return counts


def missing_records(run, last_epoch):
    """One phrase per training record an old (or --no-analysis) run directory lacks."""
    lacking = []
    if "omega_talk" not in run and last_epoch >= 1:  # a 0-epoch run has no column to record
        lacking.append("omega_talk.npz (the talk's Omega rule)")
    if "omega" not in run:
        lacking.append("omega.npz (Omega counts through training)")
    table1 = [e for e in TABLE1_EPOCHS if e <= last_epoch]
    if table1 and "omega" not in run and not set(table1) <= set(run.get("snapshots", {})):
        lacking.append("params_<epoch>.npz (Table-1 counts)")
    if "grad_norms" not in run:
        lacking.append("grad_norms.npz (gradient norms)")
    return lacking


def analyse_run(run_dir, arrays=None, progress=True, run=None):
    """The analysis.json contents of one run directory (plain Python values).

    With parameter copies for the progress measures in the run (and progress=True), they are
    computed; `arrays`, a dict, then receives progress.npz's arrays (the command line writes them).
    `run`: the directory as load_run read it, when the caller has it already.
    """
    run = load_run(run_dir, progress_params=progress) if run is None else run
    config, metrics, params = run["config"], run["metrics"], run["params"]
    p = int(config["p"])
    labels = task_labels(config)
    va = metrics["valid_acc"]  # (L, T)
    if va.shape[1] != len(labels):
        raise rundir.RunError(f"{run_dir}: metrics.npz has {va.shape[1]} tasks, config.json {len(labels)}")
    last = int(metrics["epochs"][-1])
    fourier, svd = embedding_fourier(params["tok_emb"]), embedding_svd(params["tok_emb"])
    keys_authors, _ = key_frequencies_authors(params["tok_emb"])
    cos37, cos_dims = positional_cosine(params["pos_emb"])
    table1 = table1_counts(run, p)  # {epoch: {"mixing", "axis", "all"}}
    final = omega_snapshot(params, p)
    final_split = omega_split(final["active"], p)
    talk = None
    if "omega_talk" in run:
        t = talk_omega(run["omega_talk"]["epochs"], run["omega_talk"]["spectra"], last)
        talk = talk_summary(t, last) if t is not None else None
    grok99 = grokking_epochs(metrics["epochs"], va, GROK_ACC)
    grok95 = grokking_epochs(metrics["epochs"], va, GROK_ACC_LOW)
    extended = config.get("extended_from", [])
    progress_json = None
    if "progress_params" in run:
        pm = progress_measures(run)
        progress_json = progress_summary(pm, labels, p)
        if arrays is not None:
            arrays.update(pm)
    return {
        "run_dir": os.path.abspath(run_dir),
        "task": config["task"], "p": p, "d": int(params["tok_emb"].shape[1]),
        "epochs": last,
        "extended_from": list(extended) if isinstance(extended, list) else [extended],
        "tasks": labels,
        "final_valid_acc": dict(zip(labels, va[-1].astype(float).tolist())),
        "final_train_acc": dict(zip(labels, metrics["train_acc"][-1].astype(float).tolist())),
        "mean_final_valid_acc": float(va[-1].mean()),
        "pos_corr": finite_or_none(positional_correlation(params["pos_emb"])),
        "pos_cos37": finite_or_none(cos37),
        "pos_cos_dims": cos_dims,
        "key_freqs": fourier["key_freqs"],
        "key_freqs_authors": keys_authors,
        "svd_n50": svd["n50"], "svd_n90": svd["n90"], "svd_rank": int(len(svd["singular_values"])),
        "active_freqs": {str(e): table1[e]["mixing"] for e in sorted(table1)},  # ours: mixing frequencies
        "active_freqs_all": {str(e): table1[e]["all"] for e in sorted(table1)},
        "active_freqs_axis": {str(e): table1[e]["axis"] for e in sorted(table1)},
        "active_freqs_final": final_split["mixing"],
        "active_freqs_all_final": final_split["all"],
        "active_freqs_axis_final": final_split["axis"],
        "live_neurons_final": final["live"],
        "omega_talk": talk,
        "grok_epoch_99": dict(zip(labels, grok99)),
        "grok_epoch_95": dict(zip(labels, grok95)),
        "grok_order_99": grokking_order(labels, grok99),
        "grok_order_95": grokking_order(labels, grok95),
        "grok_level": GROK_ACC,
        "grok_epoch": dict(zip(labels, grok99)),  # alias of grok_epoch_99, for older readers
        "grok_order": grokking_order(labels, grok99),
        "missing": missing_records(run, last),
        "progress": progress_json,
    }


def progress_report(progress, max_tasks=8):
    """The report's lines on the progress measures (analysis.json "progress"), at most max_tasks tasks."""
    if progress is None:
        return ["  progress measures: no progress_params.npz in this run"]
    lines = [f"  progress measures (Nanda et al. 2023) at {progress['recorded_epochs']} recorded epochs; key waves: "
             f"the fewest (k0, k1) explaining {progress['key_energy']:.0%} of the final logit energy; "
             f"sum of squared weights {progress['sum_sq_weights_first']:.4g} -> {progress['sum_sq_weights_final']:.4g}"]
    for label, t in list(progress["tasks"].items())[:max_tasks]:
        waves = " ".join(f"({k0},{k1})" for k0, k1 in t["key_waves"])
        more = f" +{t['n_key_waves'] - len(t['key_waves'])} more" if t["n_key_waves"] > len(t["key_waves"]) else ""
        nanda = f"; k = {', '.join(map(str, t['key_freqs_sum']))} (waves of x0 + x1)" if t["key_freqs_sum"] else ""
        ph = t["phases"]
        lines.append(f"    {label}: {t['n_key_waves']} key waves ({t['key_share']:.0%}) {waves}{more}{nanda}")
        lines.append(f"      phases start: memorisation {ph['memorisation']}, circuit formation "
                     f"{ph['circuit_formation']}, clean-up {ph['cleanup']}; final loss restricted "
                     f"{t['final_restricted_loss']:.3g}, excluded {t['final_excluded_loss']:.3g}, "
                     f"train {t['final_train_loss']:.3g}")
    if len(progress["tasks"]) > max_tasks:
        lines.append(f"    ... {len(progress['tasks']) - max_tasks} more tasks in analysis.json")
    return lines


def format_counts(by_epoch):
    return "  ".join(f"{e}: {n}" for e, n in by_epoch.items()) or "none recorded"


def report(analysis):
    """A short human-readable report of analyse_run's dict."""
    a = analysis
    acc = a["final_valid_acc"]
    ext = f" (extended from {', '.join(map(str, a['extended_from']))})" if a.get("extended_from") else ""
    dims = (f"first {POS_COS_DIMS} dims" if a["pos_cos_dims"] >= POS_COS_DIMS
            else f"all {a['pos_cos_dims']} dims, as d < {POS_COS_DIMS}")
    num = lambda v: "undefined (constant row)" if v is None else f"{v:.3f}"  # noqa: E731
    ks = lambda keys: "k = " + ", ".join(map(str, keys)) if keys else "none"  # noqa: E731
    lines = [
        f"run {a['run_dir']}",
        f"  task {a['task']}, p = {a['p']}, d = {a['d']}, {a['epochs']} epochs{ext}",
        f"  final valid accuracy: mean {a['mean_final_valid_acc']:.3f}, min {min(acc.values()):.3f}",
        "    " + "  ".join(f"{name} {v:.3f}" for name, v in acc.items()),
        f"  positional embeddings x0 vs x1: Pearson r (ours, all {a['d']} dims) {num(a['pos_corr'])}; "
        f"cosine (authors', {dims}) {num(a['pos_cos37'])}; talk: 0.95 T_nanda, -0.64 T_miiii",
        f"  embedding key frequencies (ours, share > mean+2std): {ks(a['key_freqs'])}",
        f"  embedding key frequencies (authors', |rfft| norm > mean+1std, k = 0 is the constant): "
        f"{ks(a['key_freqs_authors'])} ({len(a['key_freqs_authors'])}; talk: T_nanda 5, T_miiii 11, T_basis 0)",
        f"  embedding SVD: {a['svd_n50']} components reach 50 %, {a['svd_n90']} reach 90 % "
        f"(of {a['svd_rank']})",
        "  Omega count, ours (mixing frequencies active in the model), by epoch: "
        + format_counts(a["active_freqs"]) + f"; final {a['active_freqs_final']}",
        "    all frequencies: " + format_counts(a["active_freqs_all"]) + f"; final {a['active_freqs_all_final']}"
        + "   axis: " + format_counts(a["active_freqs_axis"]) + f"; final {a['active_freqs_axis_final']}"
        + f"   ({a['live_neurons_final']} live neurons)",
    ]
    t = a.get("omega_talk")
    if t is None:
        lines.append("  Omega count, the talk's rule: not recorded in this run")
    else:
        lines.append(f"  Omega count, the talk's rule (neuron 0, {t['bins']} bins x {t['columns']} log-spaced "
                     f"columns, > mean+1std), count -> printed floor(count^0.75):")
        lines.append("    at Table-1 epochs (nearest column): " + ("  ".join(
            f"{e}: {v['count']} -> {v['printed']} (column {v['column']}, epoch {v['epoch']})"
            for e, v in t["table1"].items()) or "none reached"))
        lines.append("    at the talk's columns (0-based): " + "  ".join(
            f"{i}: {v['count']} -> {v['printed']} (epoch {v['epoch']})" for i, v in t["talk_columns"].items())
            + "   talk: 0, 0, 10, 18, 10")
        if t["approximated_columns"]:
            lines.append(f"    {t['approximated_columns']} of {t['columns']} columns approximated (extended run: "
                         f"the nearest recorded epoch was used)")
    for level, key in ((GROK_ACC, "99"), (GROK_ACC_LOW, "95")):
        grok = a[f"grok_epoch_{key}"]
        reached = [f"{name} @ {grok[name]}" for name in a[f"grok_order_{key}"]]
        lines.append(f"  grokking order (valid acc stays >= {level} to the end): " + (", ".join(reached) or "none"))
        missing = [name for name, e in grok.items() if e is None]
        if missing:
            lines.append(f"    not reached: {', '.join(missing)}")
    lines += progress_report(a.get("progress"))
    if a.get("missing"):
        lines.append(f"  missing (a run made before these records, or with --no-analysis): {'; '.join(a['missing'])}")
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
            run = load_run(run_dir)
            progress = {}
            analysis = analyse_run(run_dir, arrays=progress, run=run)
            late = rundir.unfinished(run)
            if late:  # another process may be writing it: report only, write nothing into it
                print(f"fft_analysis.py: {late}; report only (analysis.json is written once the run is "
                      f"complete)", file=sys.stderr)
            else:
                if progress:
                    rundir.save_npz(os.path.join(run_dir, rundir.PROGRESS), progress)
                rundir.save_json(os.path.join(run_dir, rundir.ANALYSIS), analysis)
        except (rundir.RunError, rundir.WriteError) as e:
            print(f"fft_analysis.py: error: {e}", file=sys.stderr)
            status = 2
            continue
        print(report(analysis))
    return status


if __name__ == "__main__":
    sys.exit(main())
