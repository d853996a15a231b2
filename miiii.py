"""miiii: a one-block transformer that groks modular arithmetic, with backprop written by hand.

    python miiii.py --task miiii --p 113          # the paper's configuration (CPU: hours)
    python miiii.py --task nanda --p 23 --gpu     # the same code on CuPy

The math first: tasks, parameters, layers (each a *_forward / *_backward pair), the loss, the model,
the training loop and what it records for the analysis (built on fourier.py). Then the glue: run
directories (their format is rundir.py's) and the command line. Definitions: docs/definitions.md,
cited as "definitions §N"; the analysis rules: docs/analysis.md. A walk through this file: README.md.
"""
import argparse
import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

import fourier
import grokfast
import rundir


# ============================================================================ backend
# `xp` is the array module every hot-path function uses: numpy, or cupy after use_backend("cupy")
# (with the command line, at the end of this file). Host-side work (task tables, initial weights,
# logging) always uses numpy (`np`).
xp = np


class UsageError(Exception):
    """Bad input from the user: reported as one line on stderr, exit code 2."""


def to_host(a):
    """Copy an array of the current backend to a numpy array (the model's device->host path; fourier.py,
    which knows no backend, copies its few results with fourier.host)."""
    return xp.asnumpy(a) if hasattr(xp, "asnumpy") else np.asarray(a)


def to_device(a):
    """Copy a numpy array to the current backend (the only host->device path)."""
    return xp.asarray(a)


# ============================================================================ tasks
TASKS = ("miiii", "nanda", "basis", "masked", "divisible")
MASKED_PRIMES = (2, 3, 5, 7)  # left out of the T_masked loss, still evaluated


def primes_below(p):
    """All primes q < p, ascending (sieve of Eratosthenes)."""
    if p <= 2:
        return []
    sieve = np.ones(p, dtype=bool)
    sieve[:2] = False
    for q in range(2, int(math.isqrt(p - 1)) + 1):
        if sieve[q]:
            sieve[q * q::q] = False
    return [int(q) for q in np.flatnonzero(sieve)]


def is_prime(n):
    return n >= 2 and all(n % q for q in range(2, int(math.isqrt(n)) + 1))


def check_task_args(task, p, train_frac):
    """Raise UsageError for a task that cannot be built; return a warning string or None."""
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r} (choose from {', '.join(TASKS)})")
    if not isinstance(p, (int, np.integer)) or isinstance(p, bool):
        raise UsageError(f"p must be an integer, got {p!r}")
    min_p = {"nanda": 2, "masked": 12}.get(task, 3)  # masked: needs a prime >= 11 left in the loss
    if p < min_p:
        why = {"nanda": "", "masked": " (primes 2, 3, 5, 7 are masked, so one more prime below p is needed)"}
        raise UsageError(f"p = {p} is too small for task {task}: need p >= {min_p}{why.get(task, ' (a prime below p)')}")
    if not 0.0 < train_frac < 1.0:
        raise UsageError(f"train fraction must be in (0, 1), got {train_frac}")
    n_train = int(round(train_frac * p * p))
    if n_train < 1 or n_train > p * p - 1:
        raise UsageError(f"train fraction {train_frac} leaves an empty train or validation split at p = {p}")
    if task == "nanda" and not is_prime(p):
        return f"warning: p = {p} is not prime; T_nanda is defined for prime p in the paper"
    return None


def all_pairs(p):
    """The p*p inputs [x0, x1, '='] (N, 3) int64, row n = x0 + x1 * p; token p is '='."""
    n = np.arange(p * p)
    return np.stack([n % p, n // p, np.full(p * p, p)], axis=1).astype(np.int64)  # (N,) -> (N, 3)


def make_task(task, p, train_frac=0.5, seed=0):
    """All p*p inputs [x0, x1, '='] with their targets, loss weights and a seeded split.

    Returns a dict: x (N, 3) int64, y (N, T) int64, moduli (the q of each task), classes (output
    classes per task: q, or 2 for `divisible`), mask (T,) loss weights, train / valid index arrays,
    and task, p, seed. Sample i stands for n = i = x0 + x1 * p (definitions §1).
    """
    check_task_args(task, p, train_frac)
    rng = np.random.default_rng(seed)
    N = p * p
    n = np.arange(N)
    x = all_pairs(p)  # (N, 3)
    x0, x1 = x[:, 0], x[:, 1]
    if task == "nanda":
        moduli = [p]
        y = ((x0 + x1) % p)[:, None]  # (N, 1)
    else:
        moduli = primes_below(p)
        y = n[:, None] % np.array(moduli)[None, :]  # (N, T): n mod q for every prime q < p
    classes = list(moduli)
    if task == "divisible":
        y = (y == 0).astype(np.int64)  # is q a divisor of n: two classes per prime
        classes = [2] * len(moduli)
    perm = rng.permutation(N)  # the split: first round(train_frac * N) train, rest valid
    n_train = int(round(train_frac * N))
    if task == "basis":
        y = y[rng.permutation(N)]  # shuffle whole target rows across samples: no structure left
    mask = np.ones(len(moduli))
    if task == "masked":
        mask[np.isin(moduli, MASKED_PRIMES)] = 0.0
    return {
        "task": task, "p": p, "seed": seed, "train_frac": train_frac,
        "x": x, "y": y.astype(np.int64),
        "moduli": moduli, "classes": classes, "mask": mask,
        "train": np.sort(perm[:n_train]), "valid": np.sort(perm[n_train:]),
    }


# ============================================================================ parameters
PARAM_NAMES = ("tok_emb", "pos_emb", "W_Q", "W_K", "W_V", "W_O", "W_in", "W_out", "W_U")


def param_shapes(p, d, heads, classes):
    """The names and shapes of definitions §2; each entry is (shape, fan_in) for He initialisation."""
    dh = d // heads
    C = int(sum(classes))
    return {
        "tok_emb": ((p + 1, d), d),
        "pos_emb": ((3, d), d),
        "W_Q": ((heads, d, dh), d),
        "W_K": ((heads, d, dh), d),
        "W_V": ((heads, d, dh), d),
        "W_O": ((heads, dh, d), d),
        "W_in": ((d, 4 * d), d),
        "W_out": ((4 * d, d), 4 * d),
        "W_U": ((d, C), d),
    }


def init_params(p, d, heads, moduli, seed=0):
    """He-normal float32 weights from a seeded host generator (identical on CPU and GPU runs).

    `moduli` is the number of output classes of each task head (q, or 2 for `divisible`).
    """
    if d % heads:
        raise UsageError(f"d = {d} is not divisible by heads = {heads}")
    rng = np.random.default_rng(seed)
    params = {}
    for name, (shape, fan_in) in param_shapes(p, d, heads, moduli).items():
        params[name] = (rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(np.float32)
    return params


def device_params(params):
    """The parameters on the current backend (no copy when they are there already)."""
    return {name: to_device(params[name]) for name in PARAM_NAMES}


# ============================================================================ layers
# Every layer is a *_forward returning (out, cache) and a *_backward taking (dout, cache).
#
# The fixed 3-token shape is exploited throughout, exactly (no approximation):
# - one block means only the last position ('=') reaches the logits, so the query, the residual
#   stream after attention, the MLP and the unembedding are computed at that position alone;
# - the last token is always '=' at position 2, so its embedding, query, key and value are one
#   row shared by all samples;
# - positions 0 and 1 hold one of p+1 tokens, so their keys and values are projected once per
#   possible token (tables of V = p+1 rows) and gathered per sample, instead of N matmuls.


# The per-sample elementwise work (the loss's softmax, attention's mixing, the ReLU's mask) is a
# chain of passes over arrays larger than the cache. over_rows runs such a chain on blocks of
# ROW_BLOCK samples, so that each block's passes stay in cache. Every row goes through the same
# operations as it would on the whole array, so the results do not depend on the blocking. (Spreading
# the blocks over threads was measured and does not pay: reduceat and fancy indexing hold the GIL,
# and the cheap passes are bound by memory bandwidth; see docs/speed.md.)
ROW_BLOCK = 128  # (128, C) float32 is 0.76 MB at the paper's C = 1480: a core's L2 holds several
WHOLE_BELOW = 16 * ROW_BLOCK  # fewer rows than this: one pass over all of them (blocking costs more)


def over_rows(n, work):
    """work(rows) for slices `rows` that cover 0 .. n: cache-sized blocks on NumPy for many rows, one
    slice of everything otherwise (and on a GPU, which wants few, large kernels)."""
    if xp is not np or n < WHOLE_BELOW:
        work(slice(0, n))
        return
    for i in range(0, n, ROW_BLOCK):
        work(slice(i, min(i + ROW_BLOCK, n)))


def embedding_forward(tok_emb, pos_emb):
    """Every row z0 can hold: z_in[t, v] = tok_emb[v] + pos_emb[t] for the inputs, z_eq at '='."""
    z_in = tok_emb[None, :, :] + pos_emb[:2, None, :]  # (V, d), (2, d) -> (2, V, d)
    z_eq = tok_emb[-1] + pos_emb[2]  # (d,): the '=' token at position 2
    return (z_in, z_eq), None


def embedding_backward(dz, cache):
    dz_in, dz_eq = dz
    dtok_emb = dz_in.sum(axis=0)  # (2, V, d) -> (V, d)
    dtok_emb[-1] += dz_eq
    dpos_emb = xp.concatenate([dz_in.sum(axis=1), dz_eq[None]], axis=0)  # (2, d) + (1, d) -> (3, d)
    return {"tok_emb": dtok_emb, "pos_emb": dpos_emb}


def one_hot(index, depth, dtype):
    """(N,) ints -> (N, depth) one-hot rows; used to scatter-add per-sample rows into token tables."""
    return (index[:, None] == xp.arange(depth)[None, :]).astype(dtype)


def heads_side_by_side(W):
    """(h, d, dh) -> (d, h*dh): all heads' projections as one matrix, so one matmul does them all."""
    heads, d, dh = W.shape
    return W.transpose(1, 0, 2).reshape(d, heads * dh)


def heads_apart(M, heads):
    """(d, h*dh) -> (h, d, dh): the inverse of heads_side_by_side (for gradients)."""
    d = M.shape[0]
    return M.reshape(d, heads, -1).transpose(1, 0, 2)


def attention_forward(z, x, W_Q, W_K, W_V, W_O):
    """Multi-head attention read at '=': out[n] = sum_h softmax(q_h . k_h / sqrt(dh)) v_h W_O[h]."""
    z_in, z_eq = z
    heads, d, dh = W_Q.shape
    N, V = x.shape[0], z_in.shape[1]
    scale = 1.0 / math.sqrt(dh)
    rows = xp.concatenate([z_in.reshape(2 * V, d), z_eq[None]])  # (2V+1, d): every row z0 can hold
    keys = rows @ heads_side_by_side(W_K)  # (2V+1, d) -> (2V+1, h*dh)
    values = rows @ heads_side_by_side(W_V)  # (2V+1, h*dh)
    q = (z_eq @ heads_side_by_side(W_Q)).reshape(heads, dh)  # (d,) -> (h, dh): the one query, from '='
    k_in, k_eq = keys[:-1].reshape(2, V, heads, dh), keys[-1].reshape(heads, dh)
    v_in, v_eq = values[:-1].reshape(2, V, heads, dh), values[-1].reshape(heads, dh)
    s_in = (k_in * q).sum(axis=-1) * scale  # (2, V, h): score of each token at each input position
    s_eq = (k_eq * q).sum(axis=-1) * scale  # (h,)
    att = xp.empty((N, 3, heads), dtype=rows.dtype)
    v0, v1, a = (xp.empty((N, heads, dh), dtype=rows.dtype) for _ in range(3))

    def per_sample(r):
        n = x[r].shape[0]
        scores = xp.stack([s_in[0][x[r, 0]], s_in[1][x[r, 1]],  # gather -> (n, h) each
                           xp.broadcast_to(s_eq, (n, heads))], axis=1)  # -> (n, 3, h)
        scores = scores - scores.max(axis=1, keepdims=True)
        e = xp.exp(scores)
        att[r] = e / e.sum(axis=1, keepdims=True)  # (n, 3, h): softmax over the 3 key positions
        v0[r] = v_in[0][x[r, 0]]  # (n, h, dh)
        v1[r] = v_in[1][x[r, 1]]  # (n, h, dh)
        w = att[r]
        a[r] = w[:, 0, :, None] * v0[r] + w[:, 1, :, None] * v1[r] + w[:, 2, :, None] * v_eq  # (n, h, dh)

    over_rows(N, per_sample)
    out = a.reshape(N, heads * dh) @ W_O.reshape(heads * dh, d)  # (N, h*dh) -> (N, d): heads summed
    cache = {"rows": rows, "x": x, "W_Q": W_Q, "W_K": W_K, "W_V": W_V, "W_O": W_O, "q": q,
             "k_in": k_in, "k_eq": k_eq, "v_eq": v_eq, "v0": v0, "v1": v1, "att": att, "a": a}
    return out, cache


def attention_backward(dout, cache):
    c = cache
    x, att, q = c["x"], c["att"], c["q"]
    heads, d, dh = c["W_Q"].shape
    N, V = x.shape[0], c["k_in"].shape[1]
    scale = 1.0 / math.sqrt(dh)
    dW_O = (c["a"].reshape(N, heads * dh).T @ dout).reshape(heads, dh, d)  # (h*dh, N) @ (N, d)
    da = (dout @ c["W_O"].reshape(heads * dh, d).T).reshape(N, heads, dh)  # (N, d) -> (N, h, dh)
    dv = xp.empty((N, 3, heads, dh), dtype=da.dtype)
    dscores = xp.empty((N, 3, heads), dtype=da.dtype)

    def per_sample(r):
        # through a = sum_t att_t v_t
        datt = xp.stack([(da[r] * c["v0"][r]).sum(-1), (da[r] * c["v1"][r]).sum(-1),
                         (da[r] * c["v_eq"]).sum(-1)], axis=1)  # (n, h) each -> (n, 3, h)
        dv[r] = att[r][:, :, :, None] * da[r][:, None]  # (n, 3, h, dh): each position's share of da
        # softmax backward over the 3 positions
        w = att[r]
        dscores[r] = w * (datt - (w * datt).sum(axis=1, keepdims=True)) * scale  # (n, 3, h)

    over_rows(N, per_sample)
    hot0, hot1 = one_hot(x[:, 0], V, da.dtype), one_hot(x[:, 1], V, da.dtype)  # (N, V) each
    # scatter-add the per-sample gradients into the token tables: (V, N) @ (N, h*dh)
    dv_in = xp.stack([hot0.T @ dv[:, 0].reshape(N, heads * dh),
                      hot1.T @ dv[:, 1].reshape(N, heads * dh)])  # (2, V, h*dh)
    dv_eq = dv[:, 2].sum(axis=0).reshape(1, heads * dh)  # (1, h*dh)
    ds_in = xp.stack([hot0.T @ dscores[:, 0], hot1.T @ dscores[:, 1]])  # (2, V, h)
    ds_eq = dscores[:, 2].sum(axis=0)  # (h,)
    # through the scores s = q . k
    dq = (ds_in[..., None] * c["k_in"]).sum(axis=(0, 1)) + ds_eq[:, None] * c["k_eq"]  # (h, dh)
    dk_in = ds_in[..., None] * q  # (2, V, h, dh)
    dk_eq = ds_eq[:, None] * q  # (h, dh)
    # through the projections of the embedding rows, all heads at once
    dkeys = xp.concatenate([dk_in.reshape(2 * V, heads * dh), dk_eq.reshape(1, heads * dh)])  # (2V+1, h*dh)
    dvalues = xp.concatenate([dv_in.reshape(2 * V, heads * dh), dv_eq])  # (2V+1, h*dh)
    rows = c["rows"]
    dW_Q = heads_apart(xp.outer(rows[-1], dq.reshape(-1)), heads)  # only the '=' row made a query
    dW_K = heads_apart(rows.T @ dkeys, heads)  # (d, 2V+1) @ (2V+1, h*dh) -> (h, d, dh)
    dW_V = heads_apart(rows.T @ dvalues, heads)
    drows = dkeys @ heads_side_by_side(c["W_K"]).T + dvalues @ heads_side_by_side(c["W_V"]).T  # (2V+1, d)
    dz_in = drows[:-1].reshape(2, V, d)
    dz_eq = drows[-1] + heads_side_by_side(c["W_Q"]) @ dq.reshape(-1)  # (d,)
    grads = {"W_Q": dW_Q, "W_K": dW_K, "W_V": dW_V, "W_O": dW_O}
    return (dz_in, dz_eq), grads


def dropout_forward(h, rate, rng):
    """Inverted dropout: zero a share `rate` of entries and scale the rest by 1 / (1 - rate)."""
    if rate == 0.0:
        return h, None
    if rng is None:
        raise ValueError("dropout > 0 needs a generator `rng` (see dropout_rng)")
    u = rng.random(h.shape, dtype=np.float32)  # float32 uniforms: half the draw cost
    scale = 1.0 / (1.0 - rate)
    if h.dtype == u.dtype:  # training: the uniforms' buffer becomes the mask, one pass fewer
        mask = xp.multiply(u >= rate, u.dtype.type(scale), out=u)
    else:
        mask = (u >= rate).astype(h.dtype) * scale
    return h * mask, mask


def dropout_backward(dout, mask):
    return dout if mask is None else dout * mask


def mlp_hidden(z1, W_in):
    """The neurons: relu(z1 W_in)."""
    hid = z1 @ W_in  # (N, d) -> (N, 4d)
    xp.maximum(hid, 0, out=hid)  # relu in place
    return hid


def mlp_forward(z1, W_in, W_out):
    """hid = relu(z1 W_in) (the 'neurons'), out = hid W_out."""
    hid = mlp_hidden(z1, W_in)  # (N, d) -> (N, 4d)
    out = hid @ W_out  # (N, 4d) -> (N, d)
    return out, (z1, W_in, W_out, hid)


def mlp_backward(dout, cache):
    z1, W_in, W_out, hid = cache
    dW_out = hid.T @ dout  # (4d, N) @ (N, d)
    dhid = dout @ W_out.T  # (N, d) -> (N, 4d)

    def relu_backward(r):  # relu: hid > 0 exactly where its input was > 0
        xp.multiply(dhid[r], hid[r] > 0, out=dhid[r])

    over_rows(len(dhid), relu_backward)
    dW_in = z1.T @ dhid  # (d, N) @ (N, 4d)
    dz1 = dhid @ W_in.T  # (N, 4d) -> (N, d)
    return dz1, {"W_in": dW_in, "W_out": dW_out}


def unembed_forward(z2, W_U):
    return z2 @ W_U, (z2, W_U)  # (N, d) -> (N, C): all task heads side by side


def unembed_backward(dlogits, cache):
    z2, W_U = cache
    return dlogits @ W_U.T, {"W_U": z2.T @ dlogits}  # (N, C) -> (N, d); (d, N) @ (N, C)


# ============================================================================ the loss, per task head
_layouts = {}


def head_layout(classes):
    """Column bookkeeping for the task heads of widths `classes`, on the current backend (cached)."""
    key = (tuple(int(q) for q in classes), xp.__name__)
    if key not in _layouts:
        widths = np.array(key[0])
        offsets = np.concatenate([[0], np.cumsum(widths)[:-1]])
        qmax = int(widths.max())
        j = np.arange(qmax)[None, :]
        # padded (T, qmax) view of the columns; short heads repeat their last column (harmless for max)
        pad_index = offsets[:, None] + np.minimum(j, widths[:, None] - 1)
        _layouts[key] = {
            "classes": [int(q) for q in widths],
            "offsets": offsets, "offsets_xp": to_device(offsets),
            "pad_index": to_device(pad_index), "pad_valid": to_device(j < widths[:, None]),
            "log_q": np.log(widths.astype(np.float64)),
        }
    return _layouts[key]


def segment_reduce(kind, a, layout, dtype=None):
    """Reduce (N, C) over each task's columns -> (N, T); kind is 'max' or 'sum' (accumulated in dtype).

    NumPy has ufunc.reduceat, fast on the CPU; other backends (CuPy) take a padded gather.
    """
    if xp is np:
        if kind == "max":
            return np.maximum.reduceat(a, layout["offsets"], axis=1)
        return np.add.reduceat(a, layout["offsets"], axis=1, dtype=dtype)
    padded = a[:, layout["pad_index"]]  # (N, C) -> (N, T, qmax)
    if kind == "max":
        return padded.max(axis=-1)
    return xp.where(layout["pad_valid"], padded, 0).sum(axis=-1, dtype=dtype)


def segment_expand(a, layout):
    """(N, T) -> (N, C): each task's value repeated over its columns."""
    return xp.repeat(a, layout["classes"], axis=1)


def task_weights(classes, mask=None):
    """Loss weight of each task: m_t / ln(q_t) / sum m (chance level 1.0 for every task). Host numpy."""
    log_q = np.log(np.asarray(classes, dtype=np.float64))
    m = np.ones(len(classes)) if mask is None else np.asarray(mask, dtype=np.float64)
    if m.sum() <= 0:
        raise UsageError("every task has loss weight 0")
    return m / log_q / m.sum()


_weights = {}


def loss_weights(classes, mask=None):
    """task_weights on the current backend, made once per (classes, mask): no transfer in the hot path.

    Pass the mask as a host array (train does); a device mask is copied to the host once per call.
    """
    if mask is not None and not isinstance(mask, np.ndarray):
        mask = to_host(mask)
    m = None if mask is None else tuple(float(v) for v in mask)
    key = (tuple(int(q) for q in classes), m, xp.__name__)
    if key not in _weights:
        _weights[key] = to_device(task_weights(classes, m))
    return _weights[key]


def softmax_parts(logits, target, shift, layout, out=None):
    """The pieces of each head's softmax, shifted by `shift` ((n, 1) per row or (n, C) per column).

    Returns exp(logits - shift) in the logits' dtype (into `out`, if given) with every target entry
    set to 0 (n, C); `rest`,
    the other classes' mass per head, summed in float64 (n, T); and the targets' shifted logits in
    float64 (n, T). Keeping the target out of `rest` is what lets the target's gradient be computed
    from the other classes' mass instead of as p_t - 1 (see cross_entropy_forward).
    """
    rows = xp.arange(logits.shape[0])[:, None]
    shift_t = shift[rows, target] if shift.shape[1] > 1 else shift  # (n, T) or (n, 1)
    target_shifted = logits[rows, target].astype(xp.float64) - shift_t.astype(xp.float64)  # (n, T)
    exp = xp.subtract(logits, shift, out=out)  # (n, C), the logits' dtype: float32 in training
    xp.exp(exp, out=exp)
    exp_target = exp[rows, target]  # (n, T)
    exp[rows, target] = 0
    rest = segment_reduce("sum", exp, layout, dtype=xp.float64)  # (n, C) -> (n, T), float64 sums
    return {"exp": exp, "rest": rest, "target_shifted": target_shifted, "head_mass": rest + exp_target}


def cross_entropy_forward(logits, y, classes, mask=None):
    """The multi-task loss of definitions §3: sum_t m_t CE_t / ln q_t / sum_t m_t, free of softmax collapse.

    Precision (definitions §3): the exponentials are taken in the logits' dtype (float32 in training), the
    per-head sums and the log in float64. The target's probability is never formed as a number near
    1: with rest = the other classes' mass and e_t = exp(target), -log p_t = log1p(rest / e_t) and
    the target's gradient is -rest / (rest + e_t), so a dominant target still gets its (tiny) loss
    and gradient where a float32 softmax would round p_t to 1 and the gradient p_t - 1 to 0 (Prieto
    et al. 2025). One shift per row (its largest logit over all heads) is enough unless a head's
    exps all underflow next to another head's; those rows, if any, are redone with a shift per head.
    With float64 logits every step is float64. Returns (loss, cache); cache["nll"] (N, T).
    """
    layout = head_layout(classes)
    target = y + layout["offsets_xp"][None, :]  # (N, T): column of each target
    N, T = target.shape
    exp = xp.empty_like(logits)  # (N, C)
    rest, target_shifted = xp.empty((N, T)), xp.empty((N, T))  # float64
    floor = xp.finfo(logits.dtype).tiny / xp.finfo(logits.dtype).eps  # below: subnormal exps lose digits

    def per_sample(r):
        z = logits[r]
        parts = softmax_parts(z, target[r], z.max(axis=1, keepdims=True), layout, out=exp[r])  # (n, 1) shift
        low = parts["head_mass"].min(axis=1) < floor  # (n,): rows with a head far below another
        if bool(low.any()):  # rare: shift those rows per head (each head's largest exp is then 1)
            idx = xp.flatnonzero(low)
            head_max = segment_reduce("max", z[idx], layout)  # (m, T)
            redo = softmax_parts(z[idx], target[r][idx], segment_expand(head_max, layout), layout)
            for key in parts:  # four named arrays, not a loop over data
                parts[key][idx] = redo[key]
        rest[r], target_shifted[r] = parts["rest"], parts["target_shifted"]

    over_rows(N, per_sample)
    exp_t = xp.exp(target_shifted)  # (N, T) float64
    sums = rest + exp_t  # (N, T): each head's softmax denominator
    with np.errstate(divide="ignore", invalid="ignore"):  # each branch is used only where it is exact
        nll = xp.where(exp_t > rest, xp.log1p(rest / exp_t), xp.log(sums) - target_shifted)  # (N, T)
    weights = loss_weights(classes, mask)  # (T,)
    loss = float((nll.mean(axis=0) * weights).sum())
    cache = {"exp": exp, "rest": rest, "sums": sums, "target": target, "weights": weights,
             "layout": layout, "nll": nll}
    return loss, cache


def cross_entropy_backward(cache):
    """d loss / d logits = w_t / N * (softmax - onehot(target)), in the logits' dtype.

    Non-target entries: w_t / N * exp / sum. Target entries: w_t / N * (p_t - 1) = -w_t / N * rest / sum,
    computed from the other classes' mass, so it is exact to float precision even when p_t ~ 1.
    """
    exp, sums, rest, target = cache["exp"], cache["sums"], cache["rest"], cache["target"]
    if exp is None:
        raise ValueError("cross_entropy_backward: this cache was used already (its buffer became dlogits)")
    N = exp.shape[0]
    scale = cache["weights"] / N  # (T,)
    per_head = (scale / sums).astype(exp.dtype)  # (N, T)
    target_grad = (-scale * rest / sums).astype(exp.dtype)  # (N, T)
    dlogits = exp  # reuse the buffer (its target entries are 0): the cache is consumed
    cache["exp"] = None

    def per_sample(r):
        d = dlogits[r]
        d *= segment_expand(per_head[r], cache["layout"])  # (n, C): w_t / N * softmax off the target
        d[xp.arange(d.shape[0])[:, None], target[r]] = target_grad[r]

    over_rows(N, per_sample)
    return dlogits


def head_top(logits, classes):
    """(N, C): each column holds the largest logit of its task head."""
    layout = head_layout(classes)
    return segment_expand(segment_reduce("max", logits, layout), layout)


def head_accuracy(logits, y, classes, top=None):
    """(N, T) bool: is each head's target logit its unique maximum (a tie counts as wrong)."""
    layout = head_layout(classes)
    is_max = logits == (head_top(logits, classes) if top is None else top)  # (N, C)
    n_max = segment_reduce("sum", is_max.astype(xp.int32), layout)  # (N, T): how many share the max
    target = y + layout["offsets_xp"][None, :]  # (N, T): column of each target
    return is_max[xp.arange(len(y))[:, None], target] & (n_max == 1)


# ============================================================================ the model
def attention_block(params, x):
    """Embeddings and attention, read at '=': the residual stream z1 = z_eq + attention (N, d), and
    the two layers' caches."""
    z, emb_cache = embedding_forward(params["tok_emb"], params["pos_emb"])
    attn, attn_cache = attention_forward(z, x, params["W_Q"], params["W_K"], params["W_V"], params["W_O"])
    return z[1] + attn, (emb_cache, attn_cache)  # (N, d)


def hidden(params, x, neuron=None):
    """The MLP's neurons at '=' for inputs x (N, 3), dropout off: (N, 4d), the numbers of forward()'s
    cache["hid"]; neuron j: that column alone, (N,) (only it is computed). What the analysis reads."""
    z1, _ = attention_block(params, x)
    return mlp_hidden(z1, params["W_in"] if neuron is None else params["W_in"][:, neuron])


def forward(params, x, dropout=0.0, rng=None):
    """Logits (N, C) for inputs x (N, 3) = [x0, x1, '=']; dropout needs a generator `rng`.

    Returns (logits, cache); cache["hid"] holds the MLP activations at '=' (the neurons) and
    cache["att"] the attention weights from '=' to x0, x1, '=' per head.
    """
    z1, (emb_cache, attn_cache) = attention_block(params, x)
    z1, drop1 = dropout_forward(z1, dropout, rng)
    mlp, mlp_cache = mlp_forward(z1, params["W_in"], params["W_out"])
    z2, drop2 = dropout_forward(z1 + mlp, dropout, rng)  # (N, d): residual after the MLP
    logits, unembed_cache = unembed_forward(z2, params["W_U"])
    cache = {"emb": emb_cache, "attn": attn_cache, "drop1": drop1, "mlp": mlp_cache,
             "drop2": drop2, "unembed": unembed_cache,
             "hid": mlp_cache[3], "att": attn_cache["att"]}  # neurons (N, 4d), attention from '=' (N, 3, h)
    return logits, cache


def backward(dlogits, cache):
    """Gradients of every parameter, given d loss / d logits; the reverse of forward()."""
    dz2, grads = unembed_backward(dlogits, cache["unembed"])
    dz2 = dropout_backward(dz2, cache["drop2"])
    dz1, mlp_grads = mlp_backward(dz2, cache["mlp"])
    dz1 += dz2  # the residual around the MLP
    dz1 = dropout_backward(dz1, cache["drop1"])
    (dz_in, dz_eq), attn_grads = attention_backward(dz1, cache["attn"])
    dz_eq = dz_eq + dz1.sum(axis=0)  # the residual around attention: z_eq was added to every sample
    grads.update(mlp_grads)
    grads.update(attn_grads)
    grads.update(embedding_backward((dz_in, dz_eq), cache["emb"]))
    return {name: grads[name] for name in PARAM_NAMES}


def loss_and_grads(params, x, y, moduli, mask=None, dropout=0.0, rng=None):
    """The loss of definitions §3 on (x, y) and its gradient for every parameter.

    `moduli`: output classes per task head (q, or 2 for `divisible`); `mask`: loss weights (T,).
    """
    logits, cache = forward(params, x, dropout=dropout, rng=rng)
    loss, ce_cache = cross_entropy_forward(logits, y, moduli, mask)
    return loss, backward(cross_entropy_backward(ce_cache), cache)


def softmax_collapse(logits, y, classes, top=None):
    """Where a naive float32 softmax would collapse (Prieto et al. 2025), per sample and task (N, T) bool.

    sum_is_one: the head's softmax denominator exp(z - max) summed and rounded to float32 is exactly 1,
    i.e. the other classes' mass is <= 2^-24 (1 + x rounds to 1 there; a naive float32 sum, adding
    one class at a time, may absorb a little more); grad_zero: besides, the target is the
    head's maximum, so p_t rounds to 1 and the naive gradient p_t - 1 is exactly 0. (Our loss keeps
    that gradient; this measures how much of the data a float32 softmax would have stopped learning.)
    `top`: head_top(logits, classes), when the caller has it already.
    """
    layout = head_layout(classes)
    top = head_top(logits, classes) if top is None else top  # (N, C)
    exp = xp.exp(logits - top)  # (N, C), the max of each head -> 1
    others = segment_reduce("sum", exp, layout, dtype=xp.float64) - 1.0  # (N, T); a tie at the max -> >= 1
    sum_is_one = others <= 2.0 ** -24
    target = y + layout["offsets_xp"][None, :]
    rows = xp.arange(len(y))[:, None]
    is_max = logits[rows, target] == top[rows, target]  # (N, T)
    return sum_is_one, sum_is_one & is_max


def evaluate(params, x, y, classes, index_sets, collapse=False):
    """Per-task loss (CE / ln q) and accuracy, dropout off, for each index set; host numpy arrays.

    collapse=True adds, per set, the shares of softmax_collapse's sum_is_one and grad_zero per task.
    """
    logits, _ = forward(params, x)
    _, ce_cache = cross_entropy_forward(logits, y, classes)
    top = head_top(logits, classes)  # (N, C), shared by the accuracy and the collapse measures
    nll, correct = ce_cache["nll"], head_accuracy(logits, y, classes, top)  # (N, T) each
    measures = [nll, correct] + (list(softmax_collapse(logits, y, classes, top)) if collapse else [])
    log_q = head_layout(classes)["log_q"]
    out = []
    for idx in index_sets:  # train and valid: two sets, not a loop over data
        shares = [to_host(m[idx].mean(axis=0)) for m in measures]  # (T,) each
        out.append((shares[0] / log_q, *shares[1:]))
    return out


# ============================================================================ settings
# Every setting of a run, once: its default, what it changes, and its --help line (the default is
# added to it). What it changes: "trajectory", the weights' path; "length", only how far the path
# goes and where metrics are logged (a run extended to N epochs has the weights of a run of N epochs);
# "later", a trajectory setting added after the first runs were made: a config.json without it means
# its default, and at its default it is left out of the hash, so older runs keep their hash and
# directory name. Every setting is in the config hash (config_hash).
SETTINGS = {
    "task": ("miiii", "trajectory", f"one of {', '.join(TASKS)}"),
    "p": (113, "trajectory", "base p: inputs 0 <= x0, x1 < p"),
    "d": (256, "trajectory", "model width"),
    "heads": (4, "trajectory", "attention heads"),
    "lr": (3e-4, "trajectory", "AdamW learning rate"),
    "wd": (1.0 / 3.0, "trajectory", "AdamW weight decay"),
    "dropout": (0.1, "trajectory", "dropout rate"),
    "lamb": (0.5, "trajectory", "GrokFast lambda"),
    "alpha": (0.98, "trajectory", "GrokFast-EMA alpha"),
    "filter": ("ema", "trajectory", "gradient filter: ema, ma, none, norm (the EMA mixture normalised by "
               "1 + lambda) or bandpass (difference of two EMAs)"),
    "window": (100, "trajectory", "GrokFast-MA window"),
    "train_frac": (0.5, "trajectory", "share of the p^2 pairs trained on"),
    "epochs": (65536, "length", "full-batch steps"),
    "seed": (0, "trajectory", "seed of weights, split, dropout"),
    "b1": (0.9, "trajectory", "AdamW beta1"),
    "b2": (0.98, "trajectory", "AdamW beta2"),
    "eps": (1e-8, "trajectory", "AdamW epsilon"),
    "log_every": (0, "length", "log metrics every k epochs, besides epochs 0, 1, 2, 4, ...; "
                  "0: k = max(10, epochs/1000)"),
    "gpu": (False, "trajectory", "run on a CUDA GPU with CuPy"),
    "alpha_fast": (0.9, "later", "the faster EMA's alpha of the band-pass filter"),
    "lamb_schedule": ("constant", "later", "constant, or gap: lambda scaled by the validation-training "
                      "loss gap at the last logged epoch"),
}
DEFAULTS = {name: default for name, (default, _, _) in SETTINGS.items()}
RESULT_KEYS = tuple(SETTINGS)  # the hashed settings: all of them
LATER_KEYS = tuple(name for name, (_, changes, _) in SETTINGS.items() if changes == "later")
TRAJECTORY_KEYS = tuple(name for name, (_, changes, _) in SETTINGS.items() if changes != "length")
RUN_KEYS = ("extended_from", "threads")  # what the CLI adds about the run directory; not settings


def settings(config):
    """DEFAULTS overridden by config; UsageError naming an unknown key (a typo must not silently
    train at a default) or the first bad value."""
    unknown = [k for k in config if k not in DEFAULTS and k not in RUN_KEYS]
    if unknown:
        raise UsageError(f"unknown config key {unknown[0]!r} (valid: {', '.join(DEFAULTS)})")
    cfg = {**DEFAULTS, **config}
    validate(cfg)
    return cfg


def validate(cfg):
    """Check every setting; raise UsageError with one line for the first bad one. Returns a warning or None."""
    checks = [
        (cfg["d"] >= 1, f"--d must be >= 1, got {cfg['d']}"),
        (cfg["heads"] >= 1, f"--heads must be >= 1, got {cfg['heads']}"),
        (cfg["heads"] < 1 or cfg["d"] % cfg["heads"] == 0,
         f"--d {cfg['d']} is not divisible by --heads {cfg['heads']}"),
        (cfg["lr"] > 0 and math.isfinite(cfg["lr"]), f"--lr must be a positive number, got {cfg['lr']}"),
        (cfg["wd"] >= 0 and math.isfinite(cfg["wd"]), f"--wd must be >= 0, got {cfg['wd']}"),
        (0.0 <= cfg["dropout"] < 1.0, f"--dropout must be in [0, 1), got {cfg['dropout']}"),
        (cfg["lamb"] >= 0 and math.isfinite(cfg["lamb"]), f"--lamb must be >= 0, got {cfg['lamb']}"),
        (0.0 <= cfg["alpha"] < 1.0, f"--alpha must be in [0, 1), got {cfg['alpha']}"),
        (cfg["filter"] in grokfast.FILTERS,
         f"--filter must be one of {', '.join(grokfast.FILTERS)}, got {cfg['filter']!r}"),
        (cfg["window"] >= 1, f"--window must be >= 1, got {cfg['window']}"),
        (0.0 <= cfg["alpha_fast"] < 1.0, f"--alpha-fast must be in [0, 1), got {cfg['alpha_fast']}"),
        (cfg["lamb_schedule"] in grokfast.SCHEDULES,
         f"--lamb-schedule must be one of {', '.join(grokfast.SCHEDULES)}, got {cfg['lamb_schedule']!r}"),
        (cfg["epochs"] >= 0, f"--epochs must be >= 0, got {cfg['epochs']}"),
        (cfg["seed"] >= 0, f"--seed must be >= 0, got {cfg['seed']}"),
        (0.0 <= cfg["b1"] < 1.0 and 0.0 <= cfg["b2"] < 1.0, "--b1 and --b2 must be in [0, 1)"),
        (cfg["eps"] > 0 and math.isfinite(cfg["eps"]), f"--eps must be > 0, got {cfg['eps']}"),
        (cfg["log_every"] >= 0, f"--log-every must be >= 0, got {cfg['log_every']}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    return check_task_args(cfg["task"], cfg["p"], cfg["train_frac"])


# ============================================================================ training
METRIC_KEYS = ("train_loss", "valid_loss", "train_acc", "valid_acc", "collapse_sum", "collapse_grad")
# collapse_*: shares of the training samples where a naive float32 softmax would sum to exactly 1 /
# give the target exactly zero gradient (softmax_collapse), per task
CHECKPOINT_SECONDS = 180.0  # --checkpoint-every 0: a checkpoint every ~3 minutes of training


class Interrupted(Exception):
    """Training stopped on request (a signal); the state was checkpointed first."""


class NonFinite(Exception):
    """A loss or gradient was NaN or infinite; nothing after the last checkpoint is kept."""


def log_epochs(epochs, log_every):
    """Epochs (= optimiser steps done) at which metrics are logged: 0, powers of two, every k, the end.

    log_every = 0 picks k = max(10, epochs // 1000), which keeps evaluation (a forward pass over all
    p^2 inputs, ~2/3 of a training step) under 10 % of the training time.
    """
    k = log_every if log_every > 0 else max(10, epochs // 1000)
    marks = {0, epochs} | set(range(0, epochs + 1, k))
    marks |= {2 ** i for i in range(int(math.log2(max(epochs, 1))) + 1)}
    return np.array(sorted(e for e in marks if e <= epochs), dtype=np.int64)


def dropout_rng(seed, epoch):
    """Dropout generator for one epoch, seeded from (seed, epoch): a resumed run draws the same masks."""
    if xp is np:
        return np.random.default_rng([seed, epoch])
    return xp.random.default_rng(seed * 1_000_003 + epoch)  # one integer: portable across CuPy versions


def call_hooks(hooks, kind, epoch, *args):
    """Call hook `kind` of every hook dict that has one (and, for snapshots, wants this epoch)."""
    for hook in hooks:
        if kind in hook and (kind != "snapshot" or epoch in hook["snapshot_epochs"]):
            hook[kind](epoch, *args)


def init_state(cfg):
    """Everything a run carries from one epoch to the next, i.e. what a checkpoint holds.

    Device arrays: params, AdamW moments, GrokFast state. Host arrays: metrics, step losses, and
    `records`, where analysis hooks keep what they measure (so it survives a resume too).
    """
    cfg = {**DEFAULTS, **cfg}
    task = make_task(cfg["task"], cfg["p"], cfg["train_frac"], cfg["seed"])
    host_params = init_params(cfg["p"], cfg["d"], cfg["heads"], task["classes"], cfg["seed"])
    params = {name: to_device(w) for name, w in host_params.items()}
    logged = log_epochs(int(cfg["epochs"]), int(cfg["log_every"]))
    metrics = {key: np.zeros((len(logged), len(task["classes"]))) for key in METRIC_KEYS}
    metrics["epochs"] = logged
    return {
        "epoch": 0, "n_logged": 0, "params": params,
        "adam": grokfast.adamw_init(params),
        "filter": grokfast.init_filter(cfg["filter"], params, cfg["window"], alpha_fast=cfg["alpha_fast"]),
        "metrics": metrics, "step_loss": np.zeros(int(cfg["epochs"])), "records": {},
    }


def extend_state(state, cfg):
    """Fit a state (from init_state or a checkpoint) to cfg["epochs"], growing its schedule if needed.

    Extending a run to N epochs keeps everything already logged and appends the epochs of
    log_epochs(N) that lie beyond the old end; step_loss grows to N entries. Nothing else in the
    state depends on the planned length (dropout masks come from (seed, epoch)), so the weights
    after N epochs are bit-identical to those of a run planned for N epochs from the start.
    """
    epochs, planned = int(cfg["epochs"]), len(state["step_loss"])
    if state["epoch"] > epochs or planned > epochs:
        raise UsageError(f"the run has {max(planned, state['epoch'])} epochs; --epochs {epochs} would shorten it")
    metrics = state["metrics"]
    for key in METRIC_KEYS:  # a checkpoint made before a metric existed: unknown (NaN) where logged
        if key not in metrics:
            metrics[key] = np.full_like(metrics["valid_acc"], np.nan)
    if planned == epochs:
        return state
    old = metrics["epochs"]
    new = log_epochs(epochs, int(cfg["log_every"]))
    added = new[new > planned]
    metrics["epochs"] = np.concatenate([old, added]).astype(np.int64)
    for key in METRIC_KEYS:
        metrics[key] = np.concatenate([metrics[key], np.zeros((len(added), metrics[key].shape[1]))])
    state["step_loss"] = np.concatenate([state["step_loss"], np.zeros(epochs - planned)])
    return state


def grad_norms(grads):
    """L2 norm of each gradient, in float64 (no float32 overflow), as a host dict: one device sync."""
    norms = to_host(xp.stack([xp.sqrt((g.astype(xp.float64) ** 2).sum()) for g in grads.values()]))  # (9,)
    return dict(zip(grads, norms.tolist()))


def check_finite(epoch, loss, grads):
    """Raise NonFinite naming the epoch and the first bad parameter (or the loss)."""
    norms = grad_norms(grads)
    if math.isfinite(loss) and all(math.isfinite(v) for v in norms.values()):
        return
    bad = [name for name, v in norms.items() if not math.isfinite(v)]
    where = f"gradient of {bad[0]}" if bad else "loss"
    raise NonFinite(f"non-finite {where} at epoch {epoch} (loss {loss})")


def loss_signals(metrics, state, mask):
    """The loss-weighted mean training and validation loss at the last logged epoch (host floats), or
    None before the first: what a lambda schedule may react to (read from the logged metrics, so a
    resumed run sees the same values)."""
    if state["n_logged"] == 0:
        return None
    i, m = state["n_logged"] - 1, np.asarray(mask, dtype=np.float64)
    return {key: float((metrics[key][i] * m).sum() / m.sum()) for key in ("train_loss", "valid_loss")}


def train(config, progress=True, hooks=(), state=None, checkpoint=None, checkpoint_every=0, stop=None,
          timing=None):
    """Train from a config dict (keys of DEFAULTS); returns (params as numpy arrays, metrics dict).

    Full batch: one AdamW step per epoch on every training sample. Metrics are per task, logged at
    log_epochs(). `hooks` is a sequence of dicts of optional callbacks (how analysis plugs in):
      "log": f(epoch, params, metrics)     at every logged epoch, after its metrics are filled in
      "grads": f(epoch, grads)             at every logged epoch < epochs: the raw (unfiltered) gradient
      "snapshot": f(epoch, params), with "snapshot_epochs": a set of epochs at which to call it
    Epoch e means "after e optimiser steps". Hooks must not change params or grads.

    Resuming: pass `state` (from init_state or a checkpoint) to continue at state["epoch"]; the
    result is bit-identical to an uninterrupted run because every epoch's randomness comes from
    (seed, epoch). `checkpoint(state)` is called every `checkpoint_every` epochs (0: every ~3 min)
    and before stopping when `stop()` turns true, which raises Interrupted.

    `timing`, a dict, receives the wall-clock seconds spent in training steps, evaluations and hooks
    ("steps_s", "evaluation_s", "analysis_s") and their counts (on a GPU, work still queued when a
    clock is read is counted where it finishes).
    """
    cfg = settings(config)
    keep_freed_memory()
    timing = {} if timing is None else timing
    for key in ("steps", "evaluations", "steps_s", "evaluation_s", "analysis_s"):
        timing.setdefault(key, 0)
    task = make_task(cfg["task"], cfg["p"], cfg["train_frac"], cfg["seed"])
    classes = task["classes"]
    state = init_state(cfg) if state is None else state
    params, metrics = state["params"], state["metrics"]
    x, y = to_device(task["x"]), to_device(task["y"])
    train_idx, valid_idx = to_device(task["train"]), to_device(task["valid"])
    x_train, y_train = x[train_idx], y[train_idx]
    mask = task["mask"]  # host: loss_weights turns it into device weights once
    epochs, logged = int(cfg["epochs"]), metrics["epochs"]
    update = make_progress(epochs) if progress else None
    loss = float("nan")
    last = state["n_logged"] - 1
    acc = (metrics["train_acc"][last], metrics["valid_acc"][last]) if state["n_logged"] else None
    first, last_checkpoint = state["epoch"], time.time()
    for epoch in range(first, epochs + 1):
        state["epoch"] = epoch  # the state now holds `epoch` steps done, nothing of this epoch yet
        if checkpoint is not None and epoch > first:
            due = (epoch % checkpoint_every == 0) if checkpoint_every > 0 else \
                time.time() - last_checkpoint >= CHECKPOINT_SECONDS
            if due:
                checkpoint(state)
                last_checkpoint = time.time()
        if stop is not None and stop():
            if checkpoint is not None:
                checkpoint(state)
            raise Interrupted(epoch)
        li = state["n_logged"]
        logged_now = li < len(logged) and logged[li] == epoch
        clock = time.perf_counter()
        if logged_now:  # metrics after `epoch` steps, dropout off
            (tl, ta, cs, cg), (vl, va, _, _) = evaluate(params, x, y, classes, (train_idx, valid_idx), True)
            metrics["train_loss"][li], metrics["train_acc"][li] = tl, ta
            metrics["valid_loss"][li], metrics["valid_acc"][li] = vl, va
            metrics["collapse_sum"][li], metrics["collapse_grad"][li] = cs, cg
            acc = (ta, va)
            state["n_logged"] = li + 1
            timing["evaluations"] += 1
            timing["evaluation_s"] += time.perf_counter() - clock
            clock = time.perf_counter()
            call_hooks(hooks, "log", epoch, params, metrics)
        call_hooks(hooks, "snapshot", epoch, params)
        timing["analysis_s"] += time.perf_counter() - clock
        if epoch == epochs:
            break
        clock = time.perf_counter()
        loss, grads = loss_and_grads(params, x_train, y_train, classes, mask,
                                     dropout=cfg["dropout"], rng=dropout_rng(cfg["seed"], epoch))
        check_finite(epoch, loss, grads)
        state["step_loss"][epoch] = loss
        if logged_now:
            call_hooks(hooks, "grads", epoch, grads)
        lamb = grokfast.scheduled_lamb(cfg["lamb_schedule"], cfg["lamb"], loss_signals(metrics, state, mask))
        grokfast.apply_filter(cfg["filter"], grads, state["filter"], alpha=cfg["alpha"], lamb=lamb,
                              alpha_fast=cfg["alpha_fast"])
        grokfast.adamw_step(params, grads, state["adam"], lr=cfg["lr"], b1=cfg["b1"], b2=cfg["b2"],
                            eps=cfg["eps"], wd=cfg["wd"])
        timing["steps"] += 1
        timing["steps_s"] += time.perf_counter() - clock
        if update:
            update(epoch + 1, loss, acc)
    if update:
        update(epochs, loss, acc, force=True)
    return {name: to_host(w) for name, w in params.items()}, {**metrics, "step_loss": state["step_loss"]}


# ============================================================================ training records
# What the analysis needs of a run's path, recorded while it trains (docs/analysis.md, "Recorded during
# training"), as hooks for train: Omega snapshots, neuron 0's spectrum for the talk's rule, gradient
# norms and parameter copies, at the schedules of fourier.py. The hooks only read the weights and
# gradients and draw no random numbers, so the weights are bit-identical with and without them.
def talk_inputs(p):
    """(p-1)^2 inputs with both digits non-zero, x0 fastest: row (x1 - 1)(p - 1) + (x0 - 1)."""
    x = all_pairs(p)  # (N, 3), row x0 + x1 p
    return x[(x[:, 0] > 0) & (x[:, 1] > 0)]  # (p-1)^2 rows, order kept: x1-major, x0 fastest


def omega_snapshot(params, p):
    """C(w), live neurons, r and the model's active frequencies (fourier.omega_from_hidden) of the
    neurons on every input, on the current backend: the hidden layer only, no logits."""
    return fourier.omega_from_hidden(hidden(device_params(params), to_device(all_pairs(p))), p)


def talk_spectrum(params, p, x=None):
    """Neuron 0's spectrum by the talk's rule (fourier.talk_neuron_spectrum), ((p-1)//2 + 1,) float64;
    only the hidden layer's column 0 is computed. x: talk_inputs(p) on the backend, if there already."""
    x = to_device(talk_inputs(p)) if x is None else x
    values = to_host(hidden(device_params(params), x, fourier.TALK_NEURON))  # (M,), M = (p-1)^2
    return fourier.talk_neuron_spectrum(values, p)


def training_hooks(cfg, records, per_octave=fourier.SNAPSHOTS_PER_OCTAVE):
    """Hook dicts for train that record Omega snapshots, talk spectra, gradient norms and parameter
    copies into `records`, the records dict of rundir.py (its module doc).

    Each record is keyed by epoch (an epoch seen twice is stored once); rundir.flush_records writes
    them out at each checkpoint of a command-line run, rundir.finish_records at the end. A run
    extended to more epochs calls this again with the new cfg and the old records: the new
    length's schedules go on from there, the old records stay.
    """
    cfg = {**DEFAULTS, **cfg}
    p, epochs = int(cfg["p"]), int(cfg["epochs"])
    records.setdefault("p", p)
    for key in ("omega", "omega_talk", "grad_norms", "snapshots", "progress"):
        records[key] = rundir.by_epoch(records.get(key, {}))  # a checkpoint may have turned the keys into strings
    records.setdefault("timing", {"snapshot_s": 0.0, "snapshots": 0})
    records["constants"] = {"omega": {"freqs": fourier.frequency_index(p)}}  # omega.npz's columns: (k0, k1) of each w
    talk_x = {}  # the talk's inputs on the backend, made at the first call (the backend is set by then)

    def record_omega(epoch, params):
        start = time.perf_counter()
        records["omega"][int(epoch)] = omega_snapshot(params, p)
        records["timing"]["snapshot_s"] += time.perf_counter() - start
        records["timing"]["snapshots"] += 1

    def record_talk(epoch, params):
        if "x" not in talk_x:
            talk_x["x"] = to_device(talk_inputs(p))
        records["omega_talk"][int(epoch)] = talk_spectrum(params, p, talk_x["x"])

    def record_grads(epoch, grads):
        records["grad_norms"][int(epoch)] = grad_norms(grads)

    def record_params(epoch, params):
        # copies: training updates the arrays in place
        records["snapshots"][int(epoch)] = {name: np.array(to_host(w), copy=True) for name, w in params.items()}

    def record_progress(epoch, params):
        # host float32 copies (training updates the arrays in place), for the progress measures
        records["progress"][int(epoch)] = {name: np.array(to_host(params[name]), dtype=np.float32, copy=True)
                                           for name in PARAM_NAMES}

    table1 = {e for e in fourier.TABLE1_EPOCHS if e <= epochs}
    return [
        {"snapshot": record_omega, "snapshot_epochs": set(fourier.snapshot_epochs(epochs, per_octave).tolist())},
        {"grads": record_grads},
        {"snapshot": record_params, "snapshot_epochs": table1},
        {"snapshot": record_talk, "snapshot_epochs": set(fourier.talk_epochs(epochs).tolist())},
        {"snapshot": record_progress, "snapshot_epochs": set(fourier.progress_epochs(epochs).tolist())},
    ]


def records_bytes(cfg, weights):
    """Bytes the training records of a run take at most, uncompressed: a copy of the weights
    (`weights` bytes) at each progress and Table-1 epoch, and the Omega snapshots, talk spectra
    and gradient norms twice (the segments, then the combined files), each segment with omega.npz's
    frequency columns."""
    E, p = int(cfg["epochs"]), int(cfg["p"])
    copies = len(fourier.progress_epochs(E)) + sum(e <= E for e in fourier.TABLE1_EPOCHS)
    F, S = len(fourier.frequency_index(p)), len(fourier.snapshot_epochs(E))
    omega = S * F * (8 + 1) + S * F * 2 * 8  # counts, active per snapshot; freqs per segment (<= S of them)
    talk = len(fourier.talk_epochs(E)) * ((p - 1) // 2 + 1) * 8
    norms = len(log_epochs(E, int(cfg["log_every"]))) * len(PARAM_NAMES) * 8
    return copies * weights + 2 * (omega + talk + norms)


# ============================================================================ run directories
# The format of a run directory (its files, atomic writes, checkpoints, records, the lock) is
# rundir.py's. Here: what a miiii run writes into it (config.json, a checkpoint's hashes) and how the
# command line checkpoints, resumes and finishes a run.
def config_hash(cfg, keys=RESULT_KEYS):
    """Short hash of every setting that changes the result (the output path is not one of them)."""
    blob = json.dumps({k: cfg[k] for k in keys if not (k in LATER_KEYS and cfg[k] == DEFAULTS[k])},
                      sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:8]


def run_config(cfg, status="running"):
    """The config.json contents: every setting, the moduli and classes, the split, the run's status.

    `status` is "running" while a process trains it, "interrupted" once it stopped before the end,
    and "complete", written last, once every result file is on disk: a run directory is finished
    exactly when its config.json says so.
    """
    task = make_task(cfg["task"], cfg["p"], cfg["train_frac"], cfg["seed"])
    return {
        **{k: cfg[k] for k in RESULT_KEYS},
        "moduli": task["moduli"], "classes": task["classes"], "mask": task["mask"].tolist(),
        "split_seed": cfg["seed"], "n_train": int(len(task["train"])), "n_valid": int(len(task["valid"])),
        "backend": "cupy" if cfg["gpu"] else "numpy", "config_hash": config_hash(cfg),
        "trajectory_hash": config_hash(cfg, TRAJECTORY_KEYS),
        "extended_from": list(cfg.get("extended_from", [])), "threads": cfg.get("threads"),
        "code_commit": code_commit(), "status": status,
    }


def code_commit():
    """The git commit of this file's checkout (a trailing '+' if it has uncommitted changes), or None
    outside a git checkout: recorded in config.json so that a run names the code that made it."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+" if dirty.stdout.strip() else "")


def checkpoint_meta(cfg):
    """What a checkpoint says of its run: the hashes check_checkpoint compares."""
    return {"config_hash": config_hash(cfg), "trajectory_hash": config_hash(cfg, TRAJECTORY_KEYS)}


def check_checkpoint(meta, cfg, path):
    """RunError unless the checkpoint at `path` belongs to cfg: every setting that shapes the
    trajectory agrees (`epochs` may be larger than the checkpoint's: a run being extended)."""
    if "trajectory_hash" in meta:
        ok = meta["trajectory_hash"] == config_hash(cfg, TRAJECTORY_KEYS)
    else:  # checkpoints written before runs could be extended
        ok = meta.get("config_hash") == config_hash(cfg)
    if not ok:
        raise rundir.RunError(f"{path}: checkpoint of another config (hash {meta.get('config_hash')})")


def save_checkpoint(path, state, cfg):
    """The training state as one checkpoint file (a command-line run keeps two: checkpoint_run)."""
    rundir.write_checkpoint(path, state, checkpoint_meta(cfg), to_host)


def load_checkpoint(path, cfg):
    """The training state in one checkpoint file, fitted to cfg's schedule (see extend_state)."""
    meta, state = rundir.read_checkpoint(path, to_device)
    check_checkpoint(meta, cfg, path)
    return extend_state(state, cfg)


def run_outputs(state):
    """metrics.npz and params.npz as far as the state has come: the metrics of the epochs logged so
    far, the losses of the steps done, the weights (at the end of a run: the final files)."""
    n, steps = state["n_logged"], state["epoch"]
    metrics = {key: a[:n] for key, a in state["metrics"].items()}
    return {rundir.METRICS: {**metrics, "step_loss": state["step_loss"][:steps]},
            rundir.PARAMS: {name: to_host(w) for name, w in state["params"].items()}}


def checkpoint_run(out, state, cfg):
    """One checkpoint of a command-line run: the records taken since the last one (into files of
    their own), metrics.npz and params.npz as far as the run has come, and last the state itself
    (the checkpoint it replaces kept as checkpoint.prev.npz). A failed write leaves the latest
    checkpoint as it was."""
    rundir.flush_records(out, state["records"])
    for name, arrays in run_outputs(state).items():
        rundir.save_npz(os.path.join(out, name), arrays)
    rundir.save_checkpoint(out, state, checkpoint_meta(cfg), to_host)


def resume_run(out, cfg):
    """(state, note): the state to continue `out` from -- its latest checkpoint or, if that one is
    missing or damaged, the previous one (note: one line saying so) -- with the record files checked
    against it. Only then is anything changed: records written after that checkpoint are removed
    (the resumed run takes them again), and a previous checkpoint used replaces the damaged latest."""
    meta, state, path, note = rundir.load_checkpoint(out, to_device)
    check_checkpoint(meta, cfg, path)
    state = extend_state(state, cfg)
    rundir.resume_records(out, state["records"])
    if note is not None:
        os.replace(path, os.path.join(out, rundir.CHECKPOINT))
    return state, note


def run_status(out):
    """rundir.run_status for a miiii run: its status, and its config.json with the settings added
    later filled in at their defaults (see LATER_KEYS)."""
    status, config = rundir.run_status(out, [k for k in RESULT_KEYS if k not in LATER_KEYS])
    return status, None if config is None else {**{k: DEFAULTS[k] for k in LATER_KEYS}, **config}


def typed_config(old, path):
    """The RESULT_KEYS of a config.json as a cfg dict; UsageError if any is missing or mistyped.

    JSON is untyped: a config.json edited by hand must still mean a run.
    """
    if not isinstance(old, dict) or any(k not in old for k in RESULT_KEYS if k not in LATER_KEYS):
        raise UsageError(f"{path}: not the config of a miiii run")
    old = {**{k: DEFAULTS[k] for k in LATER_KEYS}, **old}
    cfg = {}
    for k in RESULT_KEYS:
        want, v = type(DEFAULTS[k]), old[k]
        ok = isinstance(v, want) if want in (str, bool) else \
            (isinstance(v, (int, float)) and not isinstance(v, bool) and (want is float or float(v).is_integer()))
        if not ok:
            raise UsageError(f"{path}: not the config of a miiii run ({k} = {v!r})")
        cfg[k] = want(v)
    extended = old.get("extended_from", [])
    cfg["extended_from"] = [int(e) for e in extended] if isinstance(extended, list) else []
    return cfg


def plan_new_run(cfg, out, force):
    """What a run (not --resume) does with `out`: 'new', 'resume' (its own interrupted run) or 'done'.

    Nothing a user can type without --force removes results: a finished run of the same config is
    left as it is ('done'), an interrupted one is continued, another run is refused.
    """
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} exists and is not a directory")
    status, old = run_status(out)
    if force or status == "absent":
        return "new"
    if status == "foreign":
        raise UsageError(f"--out {out} exists and is not a miiii run directory (use --force to overwrite)")
    if all(old.get(k) == cfg[k] for k in RESULT_KEYS):
        cfg["extended_from"] = typed_config(old, os.path.join(out, "config.json"))["extended_from"]
        return {"complete": "done", "interrupted": "resume", "started": "new"}[status]
    if all(old.get(k) == cfg[k] for k in TRAJECTORY_KEYS) and isinstance(old.get("epochs"), int) \
            and cfg["epochs"] > old["epochs"]:
        raise UsageError(f"--out {out} holds this run with {old['epochs']} epochs; train it longer with "
                         f"python miiii.py --resume {out} --epochs {cfg['epochs']}")
    raise UsageError(f"--out {out} holds another run (config hash {old.get('config_hash')}); "
                     f"use another --out, or --force to overwrite it")


def start_run(out, cfg):
    """Make the run directory with its config.json; results of an earlier run in it are removed (--force)."""
    try:
        os.makedirs(out, exist_ok=True)
        rundir.clear_run(out)
    except OSError as e:
        raise rundir.WriteError(f"cannot write {out}: {e.strerror or e}") from None
    rundir.save_json(os.path.join(out, rundir.CONFIG), run_config(cfg))


def write_run(out, cfg, params, metrics, status="complete"):
    """The results of a run; config.json goes last, so 'complete' is on disk only when they are."""
    os.makedirs(out, exist_ok=True)
    rundir.save_npz(os.path.join(out, rundir.METRICS), metrics)
    rundir.save_npz(os.path.join(out, rundir.PARAMS), params)
    rundir.save_json(os.path.join(out, rundir.CONFIG), run_config(cfg, status))


def model_size(cfg):
    """(outputs C, parameters) of a config: C = the task heads' classes side by side."""
    p, d = cfg["p"], cfg["d"]
    C = p if cfg["task"] == "nanda" else (2 * len(primes_below(p)) if cfg["task"] == "divisible"
                                          else sum(primes_below(p)))
    return C, (p + 1) * d + 3 * d + 4 * d * d + 8 * d * d + d * C


def filter_copies(cfg):
    """Copies of the weights the gradient filter keeps as state: the MA window and its sum, the two
    band-pass EMAs, one EMA (ema, norm), none."""
    return {"ma": cfg["window"] + 1, "bandpass": 2, "none": 0}.get(cfg["filter"], 1)


def estimate_bytes(cfg):
    """Peak memory of a run, roughly: evaluation over all p^2 inputs dominates at large p."""
    C, n_params = model_size(cfg)
    d = cfg["d"]
    per_sample = 3 * C * 8 + 2 * C * 4 + 3 * 4 * d * 4 + 12 * d * 4  # float64 loss work, logits, MLP, attention
    opt_copies = 4 + filter_copies(cfg)  # params, grads, m, v, and the filter's state
    return cfg["p"] ** 2 * per_sample + n_params * 4 * opt_copies


def estimate_disk_bytes(cfg, records=0):
    """Bytes a run directory needs at most, uncompressed (deflate saves ~10 % on weights): three
    checkpoints while one is written (the new one, the latest, the previous), each the weights,
    two AdamW moments and the filter's state plus the metrics and step losses; metrics.npz and
    params.npz; and the training records (`records` bytes: records_bytes)."""
    tasks = 1 if cfg["task"] == "nanda" else len(primes_below(cfg["p"]))
    weights = model_size(cfg)[1] * 4
    epochs = int(cfg["epochs"])
    metrics = len(log_epochs(epochs, int(cfg["log_every"]))) * tasks * 8 * len(METRIC_KEYS) + epochs * 8
    checkpoint = weights * (3 + filter_copies(cfg)) + metrics
    return 3 * checkpoint + weights + metrics + records


def format_bytes(n):
    return f"{n / 2 ** 30:.1f} GiB" if n >= 2 ** 30 else f"{n / 2 ** 20:.1f} MiB"


def available_bytes():
    """Memory this process may use: free GPU memory with --gpu, else MemAvailable (or all RAM)."""
    if xp is not np and hasattr(xp, "cuda"):
        return int(xp.cuda.Device().mem_info[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# ============================================================================ command line
def use_backend(name):
    """Select the array module: 'numpy' or 'cupy'. Raises UsageError if CuPy or a GPU is missing."""
    global xp
    if name == "numpy":
        xp = np
        return xp
    if name != "cupy":
        raise UsageError(f"unknown backend {name!r}")
    try:
        import cupy
    except Exception:  # ImportError, or a CuPy that fails to load its CUDA libraries
        raise UsageError("--gpu: CuPy is not installed (pip install cupy-cuda12x), run without --gpu")
    try:
        n_devices = cupy.cuda.runtime.getDeviceCount()
    except Exception:
        n_devices = 0
    if n_devices < 1:
        raise UsageError("--gpu: no CUDA device found, run without --gpu")
    xp = cupy
    return xp


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message):
        raise UsageError(message)


def shown_default(value):
    """A default as --help prints it: 3 significant digits for a float (1/3 -> 0.333)."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def build_parser(suppress=False):
    """The CLI; with suppress=True, flags not given are absent (to see what a user set explicitly).

    One flag per SETTINGS entry (its type from its default's; a False default is a switch), then the
    flags of the command itself."""
    prog = os.path.basename(sys.argv[0]) or "miiii"  # as invoked: miiii.py, or the `miiii` command
    ap = OneLineParser(prog=prog, description="Train a one-block transformer on modular arithmetic "
                       "tasks (hand-written backprop, NumPy or CuPy). Defaults are the paper's.",
                       argument_default=argparse.SUPPRESS if suppress else None)
    for name, (default, _, text) in SETTINGS.items():
        flag, given = "--" + name.replace("_", "-"), argparse.SUPPRESS if suppress else default
        if isinstance(default, bool):
            ap.add_argument(flag, action="store_true", default=given, help=text)
        else:
            ap.add_argument(flag, type=type(default), default=given,
                            help=f"{text} (default: {shown_default(default)})")
    ap.add_argument("--out", help="run directory (default: runs/<task>-p<p>-<config hash>)")
    ap.add_argument("--force", action="store_true", help="start over in --out, removing the results it holds")
    ap.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its checkpoint; "
                    "with a larger --epochs, train a finished run longer")
    ap.add_argument("--checkpoint-every", type=int, help="checkpoint every k epochs "
                    "(default 0: every ~3 minutes of training)")
    ap.add_argument("--no-analysis", action="store_true", help="skip the Omega snapshots and gradient "
                    "norms recorded during training for fft_analysis.py")
    ap.add_argument("--threads", type=int, help="cap the BLAS threads of this run (default: all cores); "
                    "for runs side by side, give each --threads 1. The count changes the last bits of the "
                    "results (OpenBLAS splits its sums by it), not the hash: it is recorded in config.json "
                    "and a resumed run uses it again")
    ap.add_argument("--quiet", action="store_true", help="no progress line")
    return ap


def parse_command(argv):
    """Parse and validate the command line: (cfg, out, args, warning, plan); UsageError on bad input.

    plan: 'new' (start from epoch 0), 'resume' (continue from the directory's checkpoint, perhaps to
    a larger --epochs), 'extend' (continue a finished run to a larger --epochs) or 'done' (the
    directory already holds this finished run). Reads the directory, writes nothing.
    """
    args = build_parser().parse_args(argv)
    if args.checkpoint_every is not None and args.checkpoint_every < 0:
        raise UsageError(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    if args.resume is not None:
        out = args.resume
        if args.out is not None and os.path.abspath(args.out) != os.path.abspath(out):
            raise UsageError("--resume writes into the run directory itself; drop --out")
        if not os.path.isdir(out):
            raise UsageError(f"--resume {out}: no such run directory")
        status, old = run_status(out)
        if status in ("absent", "foreign"):
            rundir.load_json(os.path.join(out, rundir.CONFIG))  # names a missing or damaged config.json
            raise UsageError(f"{os.path.join(out, 'config.json')}: not the config of a miiii run")
        cfg = typed_config(old, os.path.join(out, "config.json"))
        given = vars(build_parser(suppress=True).parse_args(argv))
        clash = [k for k in RESULT_KEYS if k in given and given[k] != cfg[k] and k != "epochs"]
        if clash:
            k = clash[0]
            raise UsageError(f"--resume {out}: --{k.replace('_', '-')} {given[k]} disagrees with the "
                             f"run's config ({cfg[k]})")
        if given.get("epochs", cfg["epochs"]) < cfg["epochs"]:
            raise UsageError(f"--resume {out}: --epochs {given['epochs']} is less than the run's "
                             f"{cfg['epochs']} (a run is only ever extended)")
        extend = given.get("epochs", cfg["epochs"]) > cfg["epochs"]
        if extend:
            cfg["extended_from"] = cfg["extended_from"] + [cfg["epochs"]]
            cfg["epochs"] = given["epochs"]
        has_checkpoint = rundir.has_checkpoint(out)
        if status == "complete" and not extend:
            plan = "done"
        elif status == "complete" and not has_checkpoint:
            raise UsageError(f"{out} is finished but has no {rundir.CHECKPOINT} (checkpoints stay out of git, "
                             f"and older runs did not keep one); it cannot be extended: train a new run with "
                             f"--epochs {cfg['epochs']}")
        elif status == "complete":
            plan = "extend"
        else:
            plan = "resume" if has_checkpoint else "new"  # 'started': nothing to continue from
    else:
        cfg = {**{k: getattr(args, k) for k in DEFAULTS}, "extended_from": []}
        out = args.out or os.path.join("runs", f"{cfg['task']}-p{cfg['p']}-{config_hash(cfg)}")
        plan = None
    cfg["threads"] = args.threads
    if args.threads is None and args.resume is not None and isinstance(old.get("threads"), int):
        cfg["threads"] = old["threads"]  # BLAS rounding depends on the thread count: resume with the same
    warning = validate(cfg)
    if plan is None:
        plan = plan_new_run(cfg, out, args.force)
    if cfg["gpu"]:
        use_backend("cupy")
    need, have = estimate_bytes(cfg), available_bytes()
    if need > have:
        raise UsageError(f"p = {cfg['p']}, d = {cfg['d']} needs about {need / 2 ** 30:.1f} GiB, but only "
                         f"{have / 2 ** 30:.1f} GiB is available")
    return cfg, out, args, warning, plan


def check_disk(cfg, out, analysis):
    """UsageError unless the filesystem of `out` has room for what the run will still write there
    (estimate_disk_bytes, less what the directory already holds)."""
    records = records_bytes(cfg, model_size(cfg)[1] * 4) if analysis else 0
    need = estimate_disk_bytes(cfg, records) - rundir.dir_bytes(out)
    free = rundir.free_bytes(out)
    if need > free:
        raise UsageError(f"the run needs about {format_bytes(need)} more on disk at {out} (checkpoints, the "
                         f"{'MA window, ' if cfg['filter'] == 'ma' else ''}parameter copies), but only "
                         f"{format_bytes(free)} is free")


# ---------------------------------------------------- the process: memory, progress line, threads, signals
def keep_freed_memory():
    """Ask glibc's malloc to serve large arrays from its heap and keep what is freed (no-op elsewhere).

    A training step allocates and frees the same (N, C) and (N, 4d) arrays every epoch. Above 32 MB
    glibc maps each one fresh from the kernel and returns it on free, so every step pays the page
    faults again: ~2.5 ms per 38 MB array at the paper's size, 10-15 % of a step. Raising the mmap and
    trim thresholds lets freed blocks be reused. The process keeps its peak memory, which a training
    run reaches every step anyway.
    """
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: allocate up to 1 GiB from the heap
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of freed heap
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to do
        pass


def make_progress(total, stream=None):
    """A progress line on stderr: rewritten in place on a terminal, one line every few seconds otherwise.

    Returns update(epoch, loss, acc, force=False); acc is (train_acc, valid_acc) per task at the last
    logged epoch, or None before the first.
    """
    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    every = 0.2 if tty else 5.0
    clock = {"start": time.time(), "last": 0.0, "first_epoch": None}

    def update(epoch, loss, acc, force=False):
        now = time.time()
        if clock["first_epoch"] is None:
            clock["first_epoch"] = epoch  # a resumed run measures its speed from where it resumed
        if force and clock.get("shown") == epoch:  # the final line is already there
            stream.write("\n" if tty else "")
            return
        if not force and now - clock["last"] < every:
            return
        clock["last"], clock["shown"] = now, epoch
        rate = (epoch - clock["first_epoch"]) / max(now - clock["start"], 1e-9)
        eta = (total - epoch) / rate if rate > 0 else float("inf")
        shown = "" if acc is None else (f"  train acc {acc[0].mean():.3f}  valid acc min {acc[1].min():.3f} "
                                        f"mean {acc[1].mean():.3f}")
        line = f"epoch {epoch}/{total}  loss {loss:.4f}{shown}  {rate:.2f} ep/s  ETA {format_seconds(eta)}"
        if tty:
            stream.write("\r" + line.ljust(100) + ("\n" if force else ""))
        else:
            stream.write(line + "\n")
        stream.flush()

    return update


def format_seconds(s):
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def blas_threads(n):
    """(context that caps the BLAS threads at n, the count in effect inside it); n None: all cores.

    OpenBLAS splits its sums differently for different thread counts, so results differ in the last
    bits between, say, 1 and 2 threads: the count is recorded in config.json and a resumed run uses
    it again. threadpoolctl is imported here, not at module level, so the library works without it.
    """
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        if n is not None:
            raise UsageError("--threads needs threadpoolctl (pip install threadpoolctl)")
        return contextlib.nullcontext(), None
    if n is None:
        counts = [pool["num_threads"] for pool in threadpool_info() if pool.get("user_api") == "blas"]
        return contextlib.nullcontext(), (counts[0] if counts else None)
    return threadpool_limits(limits=int(n), user_api="blas"), int(n)


def install_signal_handlers(flag):
    """First SIGINT/SIGTERM: ask the loop to checkpoint and stop. A second SIGINT (Ctrl-C again):
    leave at once. A second SIGTERM changes nothing: the kernel's parent-death signal comes once per
    re-parenting, so a trainer whose multi-threaded parent (the experiment runner) dies gets SIGTERM
    two or more times in a row, and must still checkpoint (SIGKILL is the way to leave at once).

    Leaving at once is safe because every file is written by atomic rename. Returns a function
    that puts the previous handlers back.
    """
    def handler(signum, frame):
        if flag["signal"] is None:
            flag["signal"] = signum
        elif signum == signal.SIGINT:
            os._exit(128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    return lambda: [signal.signal(sig, h) for sig, h in previous.items()]


def analysis_hooks(cfg, records, enabled):
    """The training records' hooks (training_hooks); none with --no-analysis. Made either way: making
    them also readies the records a checkpoint brought with it (an older checkpoint carries them
    inside), which are still written out."""
    hooks = training_hooks(cfg, records)
    return hooks if enabled else []


def fail(message, code=2, nl=""):
    print(f"{nl}miiii.py: error: {message}", file=sys.stderr)
    return code


def main(argv=None):
    """The command line: plan (reading only), take the run directory's lock, then train under it."""
    try:
        cfg, out, args, warning, plan = parse_command(argv)
    except (UsageError, rundir.RunError) as e:
        return fail(e)
    if plan == "done":  # nothing will be written: no lock needed
        return say_complete(out, cfg)
    made = {"dirs": new_directories(out), "lock": not os.path.lexists(os.path.join(out, rundir.LOCK))}

    def undo():  # a run that did not start leaves the file system as it found it
        if made["dirs"]:
            shutil.rmtree(out, ignore_errors=True)
            for folder in made["dirs"][1:]:  # parents made for it, unless another run is in them now
                try:
                    os.rmdir(folder)
                except OSError:
                    break
        elif made["lock"] and os.path.exists(os.path.join(out, rundir.LOCK)):
            os.remove(os.path.join(out, rundir.LOCK))

    try:
        lock = rundir.lock_run(out)
    except rundir.RunLocked as e:  # another process's directory: nothing to undo
        return fail(e)
    except (OSError, rundir.LockUnsupported) as e:
        undo()
        return fail(f"{'--resume' if args.resume else '--out'} {out} is not writable "
                    f"({getattr(e, 'strerror', None) or e})")
    with lock:  # held until the run has ended, however it ends
        return train_locked(argv, undo)


def new_directories(path):
    """The directories that making `path` would create, innermost first ([] when it exists)."""
    made, path = [], os.path.abspath(path)
    while not os.path.lexists(path):
        made.append(path)
        path = os.path.dirname(path)
    return made


def say_complete(out, cfg):
    print(f"{out} is complete ({cfg['epochs']} epochs): nothing to do; redo it with --force, or "
          f"train longer with python miiii.py --resume {out} --epochs N", file=sys.stderr)
    return 0


def kept_checkpoint(out, last):
    """What an error line says the run can go on from, true when printed: `last`, the epoch of the
    last checkpoint written (or resumed from), if a checkpoint file is there."""
    if last["epoch"] is not None and rundir.has_checkpoint(out):
        return f"the checkpoint of epoch {last['epoch']} is kept in {out}"
    return f"no checkpoint was written in {out} (--resume starts the run over)"


def mark_interrupted(out, cfg):
    """config.json says 'interrupted' once the process stops before the end (not on a full disk)."""
    try:
        rundir.save_json(os.path.join(out, rundir.CONFIG), run_config(cfg, "interrupted"))
    except rundir.WriteError:
        pass


def train_locked(argv, undo):
    """main() once it holds the run directory's lock: load, then write and train."""
    try:
        # planned again: the directory may have changed before this process held its lock
        cfg, out, args, warning, plan = parse_command(argv)
        if plan == "done":
            undo()
            return say_complete(out, cfg)
        check_disk(cfg, out, analysis=not args.no_analysis)
        limit_threads, cfg["threads"] = blas_threads(cfg["threads"])
        state, note = resume_run(out, cfg) if plan in ("resume", "extend") else (None, None)
    except (UsageError, rundir.RunError) as e:
        undo()
        return fail(e)
    except OSError as e:  # removing a stale record, or restoring the previous checkpoint
        return fail(f"cannot write {out}: {e.strerror or e}", 4)
    if warning:
        print(warning, file=sys.stderr)
    try:
        if plan == "new":
            start_run(out, cfg)
        else:
            if plan == "extend":  # before config.json stops saying 'complete'
                rundir.remove_stale(out)
            rundir.remove_temporary(out)
            rundir.save_json(os.path.join(out, rundir.CONFIG), run_config(cfg))  # 'running', an extension's epochs
    except (OSError, rundir.WriteError) as e:
        if plan == "new":
            undo()
        return fail(e, 4)
    state = state or init_state(cfg)
    hooks = analysis_hooks(cfg, state["records"], not args.no_analysis)
    if note:
        print(note, file=sys.stderr)
    if args.resume is not None or plan != "new":
        more = f" to {cfg['epochs']}" if cfg["extended_from"] and state["epoch"] <= cfg["extended_from"][-1] else ""
        print(f"resuming {out} at epoch {state['epoch']}{more}", file=sys.stderr)
    else:
        print(f"run directory: {out}", file=sys.stderr)
    flag, last = {"signal": None}, {"epoch": None if plan == "new" else state["epoch"]}
    nl = "\n" if not args.quiet and sys.stderr.isatty() else ""  # end a progress line rewritten in place

    def checkpoint(s):
        checkpoint_run(out, s, cfg)
        last["epoch"] = s["epoch"]

    restore_handlers = install_signal_handlers(flag)  # kept until the results are on disk
    try:
        timing = {}
        with limit_threads:
            params, metrics = train(cfg, progress=not args.quiet, hooks=hooks, state=state, checkpoint=checkpoint,
                                    checkpoint_every=args.checkpoint_every or 0,
                                    stop=lambda: flag["signal"] is not None, timing=timing)
        # The final state stays as the checkpoint (a finished run can be extended) and writes the final
        # metrics.npz and params.npz; config.json, written last, marks the run complete.
        checkpoint(state)
        rundir.finish_records(out, state["records"])
        rundir.save_json(os.path.join(out, rundir.CONFIG), run_config(cfg, "complete"))
    except Interrupted as e:
        mark_interrupted(out, cfg)
        print(f"{nl}interrupted at epoch {e}: checkpoint written; continue with "
              f"python miiii.py --resume {out}", file=sys.stderr)
        return 128 + flag["signal"]
    except NonFinite as e:
        mark_interrupted(out, cfg)
        return fail(f"{e}; stopped: {kept_checkpoint(out, last)}", 3, nl)
    except rundir.WriteError as e:
        mark_interrupted(out, cfg)
        return fail(f"{e}; {kept_checkpoint(out, last)}: once the cause is fixed, continue with "
                    f"python miiii.py --resume {out}", 4, nl)
    except rundir.RunError as e:  # a record file damaged while the run went on
        mark_interrupted(out, cfg)
        return fail(f"{e}; {kept_checkpoint(out, last)}", 2, nl)
    finally:
        restore_handlers()
    va = metrics["valid_acc"][-1]
    if not args.quiet:
        t = timing
        print(f"time: {t['steps']} steps {t['steps_s']:.1f} s ({t['steps_s'] / max(t['steps'], 1):.3f} s each), "
              f"{t['evaluations']} evaluations {t['evaluation_s']:.1f} s, analysis {t['analysis_s']:.1f} s",
              file=sys.stderr)
    print(f"done: valid acc min {va.min():.3f} mean {va.mean():.3f}; wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
