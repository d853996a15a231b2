"""A JAX-jit reference for the speed of one miiii training step (optional; needs benchmarks/requirements-jax.txt).

    pip install -r benchmarks/requirements-jax.txt
    python benchmarks/jax_step.py                     # paper and small config, s/step
    python benchmarks/jax_step.py --only paper --steps 10 --threads 1
    python benchmarks/jax_step.py --check             # first: same loss and gradients as miiii?
    python benchmarks/compare_jax.py                  # ours and JAX in the same run, with the ratio

The same math as miiii.py (docs/definitions.md §2-4), written as a plain JAX user would write it: embeddings,
4-head attention over all 3 positions without a mask (heads summed through W_O), dropout after the
attention residual and after the MLP residual, a ReLU MLP d -> 4d -> d, the logits read at the last
position ('=') through W_U (C = all task heads side by side), loss = sum_t m_t CE_t / ln q_t / sum_t m_t,
then GrokFast-EMA (alpha 0.98, lambda 0.5) and AdamW (lr 3e-4, b1 0.9, b2 0.98, eps 1e-8, wd 1/3).
One full-batch step (value_and_grad, filter, optimiser) is one jitted function, float32 throughout.

Differences from miiii.py, on purpose (it is the plain version we compare against):
- the forward runs at all 3 positions (queries, MLP) as a plain implementation does; miiii.py
  computes the query, the MLP and the unembedding at '=' only (exact, docs/definitions.md §2). XLA may or may not
  prune the unused positions itself;
- the log-softmax is JAX's float32 one (miiii.py sums classes in float64 against softmax collapse);
- dropout masks come from jax.random, so with dropout on the two never see the same masks.
Weights and the data split are miiii's (make_task, init_params), so with dropout 0 the two compute
the same loss and gradients up to float32 rounding (--check shows it; at the paper config a few
ReLU inputs sit within rounding of 0 and flip, so the worst W_in entry differs by ~2e-4 of its
gradient's scale -- miiii's float32 gradient is that far from its own float64 computation too).

Threads: --threads N pins the process to N cores before JAX starts (XLA sizes its thread pool
from the cores it may use). Without JAX it prints one line and exits 2.
"""
import argparse
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import miiii  # noqa: E402
from bench_step import CONFIGS  # noqa: E402

HYPER = dict(lr=3e-4, wd=1 / 3, b1=0.9, b2=0.98, eps=1e-8, alpha=0.98, lamb=0.5)


def pin_threads(n):
    """Restrict this process to n of its cores (before JAX starts: XLA counts them once)."""
    if n is None:
        return
    cores = sorted(os.sched_getaffinity(0))
    if n > len(cores):
        raise ValueError(f"--threads {n}: only {len(cores)} cores available")
    os.sched_setaffinity(0, cores[:n])


def load_jax():
    """The jax module, or None when it cannot be imported."""
    try:
        import jax
        import jax.numpy  # noqa: F401
    except Exception:  # ImportError, or a jaxlib that does not load on this machine
        return None
    return jax


def loss_fn(jax, cfg, task):
    """loss(params, x, y, key): the loss of the full 3-position forward
    (docs/definitions.md §3), as a JAX user writes it."""
    jnp = jax.numpy
    classes = [int(q) for q in task["classes"]]
    offsets = np.concatenate([[0], np.cumsum(classes)[:-1]]).tolist()
    mask = np.asarray(task["mask"], dtype=np.float64)
    weights = (mask / np.log(classes) / mask.sum()).astype(np.float32).tolist()  # m_t / ln q_t / sum m
    rate, dh = float(cfg["dropout"]), cfg["d"] // cfg["heads"]

    def dropout(key, h):
        if rate == 0.0:
            return h
        keep = jax.random.bernoulli(key, 1.0 - rate, h.shape)
        return jnp.where(keep, h / (1.0 - rate), 0.0)  # inverted dropout

    def loss(params, x, y, key):
        k1, k2 = jax.random.split(key)
        z0 = params["tok_emb"][x] + params["pos_emb"]  # (N, 3, d)
        q = jnp.einsum("nsd,hde->nhse", z0, params["W_Q"])  # (N, h, 3, dh)
        k = jnp.einsum("nsd,hde->nhse", z0, params["W_K"])
        v = jnp.einsum("nsd,hde->nhse", z0, params["W_V"])
        att = jax.nn.softmax(jnp.einsum("nhse,nhte->nhst", q, k) / math.sqrt(dh), axis=-1)  # no mask
        a = jnp.einsum("nhst,nhte->nhse", att, v)
        z1 = dropout(k1, z0 + jnp.einsum("nhse,hed->nsd", a, params["W_O"]))  # heads summed
        hid = jax.nn.relu(z1 @ params["W_in"])  # (N, 3, 4d)
        z2 = dropout(k2, z1 + hid @ params["W_out"])
        logits = z2[:, -1] @ params["W_U"]  # (N, C): read at '='
        total = 0.0
        for t, (off, q_t) in enumerate(zip(offsets, classes)):  # 29 static slices at p = 113
            logp = jax.nn.log_softmax(logits[:, off:off + q_t], axis=-1)
            total += weights[t] * -jnp.take_along_axis(logp, y[:, t:t + 1], axis=1).mean()
        return total

    return loss


def step_fn(jax, cfg, task, hyper=HYPER):
    """One jitted full-batch step: (params, ema, m, v, t, x, y, key, epoch) -> (same state, loss)."""
    jnp, tree = jax.numpy, jax.tree_util.tree_map
    loss = loss_fn(jax, cfg, task)
    h = hyper

    def step(params, ema, m, v, t, x, y, key, epoch):
        value, g = jax.value_and_grad(loss)(params, x, y, jax.random.fold_in(key, epoch))
        ema = tree(lambda e, g: h["alpha"] * e + (1 - h["alpha"]) * g, ema, g)  # GrokFast-EMA
        g = tree(lambda g, e: g + h["lamb"] * e, g, ema)
        t = t + 1
        m = tree(lambda m, g: h["b1"] * m + (1 - h["b1"]) * g, m, g)
        v = tree(lambda v, g: h["b2"] * v + (1 - h["b2"]) * g * g, v, g)
        bc1, bc2 = 1 - h["b1"] ** t, 1 - h["b2"] ** t
        params = tree(lambda w, m, v: w - h["lr"] * ((m / bc1) / (jnp.sqrt(v / bc2) + h["eps"]) + h["wd"] * w),
                      params, m, v)  # AdamW, decay from the weights before the step
        return params, ema, m, v, t, value

    return jax.jit(step, donate_argnums=(0, 1, 2, 3))


def problem(jax, cfg):
    """miiii's task and initial weights (identical to a miiii run), as JAX arrays."""
    task = miiii.make_task(cfg["task"], cfg["p"], cfg["train_frac"], seed=0)
    host = miiii.init_params(cfg["p"], cfg["d"], cfg["heads"], task["classes"])
    params = {k: jax.numpy.asarray(w) for k, w in host.items()}
    x = jax.numpy.asarray(task["x"][task["train"]].astype(np.int32))
    y = jax.numpy.asarray(task["y"][task["train"]].astype(np.int32))
    return task, host, params, x, y


def time_jax(jax, cfg, steps):
    """Median seconds of one jitted training step, after two warm-up steps (the first compiles)."""
    jnp = jax.numpy
    task, _, params, x, y = problem(jax, cfg)
    zeros = lambda: {k: jnp.zeros_like(w) for k, w in params.items()}  # noqa: E731
    state = (params, zeros(), zeros(), zeros(), jnp.float32(0))
    step, key = step_fn(jax, cfg, task), jax.random.key(0)
    times = []
    for epoch in range(steps + 2):
        t = time.perf_counter()
        *state, loss = step(*state, x, y, key, epoch)
        jax.block_until_ready((state, loss))
        times.append(time.perf_counter() - t)
    if not np.isfinite(float(loss)):
        raise FloatingPointError(f"JAX step gave loss {float(loss)}")
    return float(np.median(times[2:]))


def check_against_ours(jax, cfg):
    """Loss and gradients at the initial weights, dropout off: JAX vs miiii.loss_and_grads.

    Returns (loss ours, loss JAX, worst gradient difference relative to that gradient's largest entry).
    """
    cfg = {**cfg, "dropout": 0.0}
    task, host, params, x, y = problem(jax, cfg)
    ours, grads = miiii.loss_and_grads(host, task["x"][task["train"]], task["y"][task["train"]],
                                       task["classes"], task["mask"])
    theirs, jgrads = jax.value_and_grad(loss_fn(jax, cfg, task))(params, x, y, jax.random.key(0))
    worst = max(float(np.abs(np.asarray(jgrads[k]) - g).max() / np.abs(g).max()) for k, g in grads.items())
    return ours, float(theirs), worst


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per config (median is reported)")
    ap.add_argument("--only", choices=sorted(CONFIGS), help="time one config only")
    ap.add_argument("--threads", type=int, help="pin the process to this many cores")
    ap.add_argument("--check", action="store_true", help="compare loss and gradients with miiii first")
    args = ap.parse_args(argv)
    try:
        pin_threads(args.threads)
    except ValueError as e:
        ap.error(str(e))
    jax = load_jax()
    if jax is None:
        print("jax_step.py: JAX is not installed (pip install -r benchmarks/requirements-jax.txt)", file=sys.stderr)
        return 2
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {len(os.sched_getaffinity(0))} cores")
    for name in ([args.only] if args.only else ["paper", "small"]):
        cfg = CONFIGS[name]
        if args.check:
            ours, theirs, worst = check_against_ours(jax, cfg)
            print(f"{name}: loss at init, dropout 0: ours {ours:.6f}  JAX {theirs:.6f}; "
                  f"largest gradient difference {worst:.1e} of the gradient's scale")
        seconds = time_jax(jax, cfg, args.steps)
        print(f"{name}: JAX jit {seconds:.4f} s/step ({1 / seconds:.2f} steps/s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
