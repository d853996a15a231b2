"""fourier: the Fourier rules of the analysis, as pure functions of arrays.

The real Fourier basis and the frequency energy of an embedding; the 2D spectra of the neurons, their
folding into frequencies w = (k0, k1) and the rules that call a frequency active in a neuron and in the
model (the Omega count); the talk's Omega rule; the waves of a head's logits; the epochs at which a
run records what these rules read. Every rule is stated once, in docs/analysis.md; the functions
name it. Nothing here knows the model: miiii.py and fft_analysis.py hand in the arrays (neuron
values, logits, weights). Arrays may be NumPy or CuPy where a docstring says so: the array module is
then the input's own (`array_module`).
"""
import math
import sys

import numpy as np

TABLE1_EPOCHS = (256, 1024, 4096, 16384, 65536)  # the talk's Table 1
SNAPSHOTS_PER_OCTAVE = 8  # log-spaced snapshot density
SIGMAS_NEURON = 2.0  # per-neuron rule: power > mean + 2 std
SIGMAS_MODEL = 4.0  # model rule: C(w) > n r + 4 binomial std
FLAT_SPECTRUM = 1e-3  # std / mean below this: a flat spectrum (rounding noise only), nothing active
# the talk's rules (docs/analysis.md, "authors'")
TALK_COLUMNS = 168  # log-spaced time columns of the talk's Omega matrix
TALK_NEURON = 0  # the one neuron the talk's Omega rule reads
TALK_SIGMAS = 1.0  # talk's Omega rule and the authors' key frequencies: > mean + 1 std
TALK_PRINT_POWER = 0.75  # the talk prints floor(count ** 0.75)
TALK_COLUMNS_SHOWN = (81, 101, 121, 141, 161)  # the talk's Table-1 columns, 0-based (docs/analysis.md)
TALK_TABLE1 = {256: 0, 1024: 0, 4096: 10, 16384: 18, 65536: 10}  # the talk's Table 1 as printed (p = 113)
POS_COS_DIMS = 37  # authors' positional similarity: cosine over the first 37 dimensions
# progress measures (Nanda et al. 2023, §5; docs/analysis.md)
PROGRESS_LOG = 24  # log-spaced progress epochs: round(geomspace(1, E, 24))
PROGRESS_LINEAR = 40  # evenly spaced ones: round(linspace(0, E, 41)), i.e. every E/40
KEY_ENERGY = 0.9  # key waves of a head: the fewest explaining 90 % of its (centred) logit energy


def array_module(a):
    """The library of an array: numpy for host arrays, else the array type's own (CuPy)."""
    return np if isinstance(a, np.ndarray) else sys.modules[type(a).__module__.split(".")[0]]


def host(a):
    """An array of any library as a numpy array (a copy from a device)."""
    return a if isinstance(a, np.ndarray) else array_module(a).asnumpy(a)


# ============================================================================ the basis
def fourier_basis(p):
    """The orthonormal real Fourier basis (p, p): const, cos 1, sin 1, cos 2, ... (docs/analysis.md)."""
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
    return omega_from_counts(host(active.sum(axis=0)), live)  # (n, F) -> (F,): C(w)


def dft_tables(p):
    """float32 host tables for a 2D DFT by matmuls (omega_from_hidden), signs as numpy's FFT (e^-i...).

    rfft (2K, p): rows cos(2 pi k1 x / p) then -sin(...) for k1 = 0 .. p//2 (K = p//2 + 1);
    full (2p, p): rows cos(2 pi k0 x / p) then sin(...) for k0 = 0 .. p-1.
    """
    x = np.arange(p)
    a1 = 2 * np.pi * np.outer(np.arange(p // 2 + 1), x) / p  # (K, p)
    a2 = 2 * np.pi * np.outer(x, x) / p  # (p, p)
    rfft = np.concatenate([np.cos(a1), -np.sin(a1)]).astype(np.float32)  # (2K, p)
    full = np.concatenate([np.cos(a2), np.sin(a2)]).astype(np.float32)  # (2p, p)
    return rfft, full


def omega_from_hidden(H, p):
    """C(w), live neurons, r and the model-level active frequencies (omega_from_counts) of neuron
    values H (N, n) in sample order, NumPy or CuPy (overwritten: centred in place); the grid
    [x0, x1] of neuron j is H[:, j].reshape(p, p).T.

    Means the same as neuron_power -> neuron_active -> omega_from_active on the grids, but cheaper:
    float32 throughout, the 2D DFT of all neurons as two large matmuls against dft_tables (p = 113
    is a prime length, slow for an FFT), dead neurons masked rather than gathered out (a column
    gather of (N, n) costs more than the few dead columns save). Agrees with the float64
    computation up to float32 rounding (tests/test_talk_rules.py).
    """
    xp = array_module(H)
    n, K = H.shape[1], p // 2 + 1  # H[x1 p + x0, j]
    live = H.max(axis=0) > H.min(axis=0)  # (n,): dead neurons are constant (0 for a dead ReLU)
    H -= H.mean(axis=0, keepdims=True)  # the mean only moves the (0, 0) entry, set aside; less rounding
    rfft, full = (xp.asarray(t) for t in dft_tables(p))
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
    folded = power.reshape(p * K, n)[xp.asarray(freqs[:, 0] * K + freqs[:, 1])]  # (F, n): a row gather
    ones = xp.ones((1, folded.shape[0]), dtype=folded.dtype)  # sums over F as a matmul: blocked, accurate
    mean = (ones @ folded)[0] / folded.shape[0]  # (n,)
    folded -= mean  # deviations, in place
    std = xp.sqrt((ones @ (folded * folded))[0] / folded.shape[0])  # (n,) population std
    keep = live & (std > FLAT_SPECTRUM * mean)  # (n,): dead and flat spectra have nothing active
    active = (folded > SIGMAS_NEURON * std) & keep  # (F, n): power - mean > 2 std
    return omega_from_counts(host(active.sum(axis=1)), int(live.sum()))


# ============================================================================ the talk's Omega rule
def talk_neuron_spectrum(values, p):
    """The talk's spectrum of one neuron: ((p-1)//2 + 1,) float64, step 1 of the rule (docs/analysis.md).

    values (M,), M = (p-1)^2: the neuron on the inputs with both digits non-zero, x0 fastest (row
    (x1 - 1)(p - 1) + (x0 - 1)); |rfft2| with the rfft along x0, mean over the x1 frequencies (zero
    included).
    """
    grid = np.asarray(values, dtype=np.float64).reshape(p - 1, p - 1)  # (M,) -> [x1 - 1, x0 - 1]
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
    """The talk's Omega counts from recorded spectra: steps 2 and 3 of the rule (docs/analysis.md).

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


# ============================================================================ waves of the logits
def logit_grids(logits, p):
    """(N, q) logits in sample order -> (p, p, q) grids [x0, x1, class] (docs/definitions.md §1: reshape(p, p).T)."""
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


def signed_wave(k0, k1, p):
    """A folded (k0, k1) as shown to people: k0 above p/2 is the negative frequency k0 - p."""
    return [int(k0) - p if 2 * int(k0) > p else int(k0), int(k1)]


# ============================================================================ what a run records, when
def snapshot_epochs(epochs, per_octave=SNAPSHOTS_PER_OCTAVE):
    """Sorted int64 epochs for snapshots: 0, the end, Table-1 epochs reached, `per_octave` per doubling."""
    epochs = int(epochs)
    octaves = math.log2(epochs) if epochs >= 1 else 0.0
    steps = np.arange(int(np.floor(octaves * per_octave)) + 1)
    marks = np.round(2.0 ** (steps / per_octave)).astype(np.int64)  # (i,) 1 .. epochs, log-spaced
    table1 = [e for e in TABLE1_EPOCHS if e <= epochs]
    marks = np.concatenate([[0, epochs], table1, marks[marks <= epochs]]).astype(np.int64)
    return np.unique(marks)


def progress_epochs(epochs, n_log=PROGRESS_LOG, n_linear=PROGRESS_LINEAR):
    """Sorted int64 epochs at which the parameters are kept for the progress measures (docs/analysis.md).

    The union of {0, E}, round(geomspace(1, E, n_log)) and round(linspace(0, E, n_linear + 1))
    (np.round: half to even), repeats merged. Depends on E only, so a resumed run records the same.
    """
    E = int(epochs)
    if E < 1:
        return np.zeros(1, dtype=np.int64)  # a 0-epoch run: the initial weights only
    log = np.round(np.geomspace(1, E, n_log))  # (n_log,) dense early, where memorisation happens
    linear = np.round(np.linspace(0, E, n_linear + 1))  # (n_linear + 1,) even over the whole run
    return np.unique(np.concatenate([[0, E], log, linear]).astype(np.int64))
