"""Time full training steps of miiii and compare their FLOP rate with this machine's matmul rate.

    python benchmarks/bench_step.py                     # paper config and a small one, CPU
    python benchmarks/bench_step.py --threads 1,2       # each config with 1, then 2 BLAS threads
    python benchmarks/bench_step.py --steps 10 --only paper --detail   # one row per matrix product
    python benchmarks/bench_step.py --gpu               # the same on CuPy
    python benchmarks/bench_step.py --only paper --parts   # the non-matmul time of each part of the step

A step is what one training epoch does: forward and backward on every training sample (dropout
on), GrokFast-EMA, AdamW; the median of --steps timed steps is reported.

Columns:
  s/step, steps/s    the median step
  GFLOP/step         the step's *useful* FLOPs, 2 per multiply-add of the matrix products it needs
                     (step_flops); scatter-adds are counted at their useful cost, not at the one-hot
                     matmul the code runs them as; elementwise work (softmax, loss, dropout,
                     optimiser) is not counted
  GFLOP/s, of peak   useful FLOPs / s/step, and that rate over the large-sgemm rate (4096^3 float32)
  mm s, mm GFLOP     the matrix products the step *actually runs* (one-hot scatters at full cost),
                     each timed alone at its real shapes, memory layout (a transposed operand stays a
                     transposed view) and dtype, median of --reps calls; the sum over one step
  mm GFLOP/s         the rate the step's own shapes reach (mm GFLOP / mm s)
  not mm             the share of the step that is not matrix products: 1 - mm s / (s/step)
                     (on a GPU each replayed product waits for the device alone, so launch latency
                     counts in mm s; negative values mean the timings were noisy or latency-bound)

The products are not listed by hand: one step runs once on a numpy subclass that records every
matmul / dot (shapes, layout, dtype, and the source line that called it), so the list follows
miiii.py as it changes. --detail prints that list. With --gpu the list is recorded on the host
(the shapes are the same) and replayed on the device.
"""
import argparse
import contextlib
import linecache
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import numpy as np  # noqa: E402

import grokfast  # noqa: E402
import miiii  # noqa: E402

CONFIGS = {
    "paper": dict(task="miiii", p=113, d=256, heads=4, train_frac=0.5, dropout=0.1),
    "small": dict(task="nanda", p=59, d=128, heads=4, train_frac=0.5, dropout=0.1),
}


def step_flops(n, p, d, heads, C):
    """Useful FLOPs of one training step on n samples (2 per multiply-add)."""
    V = p + 1
    tables = 2 * (2 * V) * d * d * 2 + 3 * 2 * d * d  # key/value tables of x0, x1 tokens; '=' rows
    attention = 2 * n * 3 * d + 2 * n * d * d  # scores + weighted values at '=', then W_O
    mlp = 2 * n * d * 4 * d * 2  # W_in and W_out
    unembed = 2 * n * d * C
    forward = tables + attention + mlp + unembed
    # backward: two products per matmul (input grad and weight grad), plus the scatter-adds of the
    # per-sample value/score grads into the token tables (n d adds per input position)
    backward = 2 * (tables + 2 * n * d * d + mlp + unembed) + 2 * 2 * n * 3 * d + 2 * n * d
    return forward + backward


# ============================================================================ backend helpers
def backend(gpu):
    """(xp, sync): the array module miiii now uses and a function that waits for it."""
    xp = miiii.use_backend("cupy" if gpu else "numpy")
    sync = (lambda: xp.cuda.Device().synchronize()) if gpu else (lambda: None)
    return xp, sync


def thread_limit(n):
    """A context limiting the host BLAS (and OpenMP) pools to n threads; n None: leave them be."""
    if n is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits  # listed in requirements.txt
    return threadpool_limits(limits=n)


def matmul_rate(xp, sync, size=4096, reps=3):
    """GFLOP/s of a large square float32 matmul on this backend."""
    a = xp.asarray(np.random.default_rng(0).standard_normal((size, size), dtype=np.float32))
    a @ a
    sync()
    t = time.perf_counter()
    for _ in range(reps):
        a @ a
    sync()
    return 2 * size ** 3 * reps / (time.perf_counter() - t) / 1e9


# ============================================================================ the step
def setup(cfg):
    """Task, fresh parameters and training inputs of a config, on the current backend."""
    task = miiii.make_task(cfg["task"], cfg["p"], cfg["train_frac"], seed=0)
    host = miiii.init_params(cfg["p"], cfg["d"], cfg["heads"], task["classes"])
    params = {k: miiii.to_device(v) for k, v in host.items()}
    x = miiii.to_device(task["x"][task["train"]])
    y = miiii.to_device(task["y"][task["train"]])
    return task, params, x, y


def time_steps(cfg, steps, sync, before_step=None):
    """Median seconds of one training step (after one warm-up step) and its useful FLOPs.
    before_step(): called before each timed step."""
    task, params, x, y = setup(cfg)
    classes, mask = task["classes"], task["mask"]  # host mask, as miiii.train passes it
    miiii.keep_freed_memory()  # as miiii.train does
    opt, ema = grokfast.adamw_init(params), grokfast.ema_init(params)

    def step(epoch):
        loss, grads = miiii.loss_and_grads(params, x, y, classes, mask, dropout=cfg["dropout"],
                                           rng=miiii.dropout_rng(0, epoch))
        grokfast.ema_filter(grads, ema, alpha=0.98, lamb=0.5)
        grokfast.adamw_step(params, grads, opt, lr=3e-4, wd=1 / 3)

    step(0)  # warm-up: caches, allocator, kernels
    sync()
    times = []
    for epoch in range(1, steps + 1):
        if before_step is not None:
            before_step()
        t = time.perf_counter()
        step(epoch)
        sync()
        times.append(time.perf_counter() - t)
    flops = step_flops(len(task["train"]), cfg["p"], cfg["d"], cfg["heads"], sum(classes))
    return float(np.median(times)), flops


# ============================================================================ the step's parts
# Which functions make up each part of the step; a part's time is what its functions take (each
# timed around its call, nested calls counted once, in the outermost), its matrix products those
# the recorder saw called from its functions.
PARTS = {
    "loss": ("cross_entropy_forward", "cross_entropy_backward"),
    "unembed": ("unembed_forward", "unembed_backward"),
    "mlp": ("mlp_forward", "mlp_backward"),
    "dropout": ("dropout_forward", "dropout_backward"),
    "attention": ("embedding_forward", "embedding_backward", "attention_forward", "attention_backward"),
    "optimiser": ("ema_filter", "adamw_step"),
}
PART_OF = {fn: part for part, fns in PARTS.items() for fn in fns}


def timed_parts(cfg, steps, sync):
    """The median step, and per part the median over the timed steps of the seconds spent in it,
    from timing wrappers around miiii's and grokfast's layer functions (module attributes, so the
    calls inside miiii.forward see them)."""
    spent, depth = [], [0]  # one {part: seconds} per timed step

    def wrap(module, name):
        fn = getattr(module, name)

        def timed(*args, **kwargs):
            depth[0] += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0 and spent:
                    sync()
                    spent[-1][PART_OF[name]] += time.perf_counter() - start
        return fn, timed

    originals = {}
    for name in PART_OF:
        module = grokfast if hasattr(grokfast, name) else miiii
        originals[(module, name)], wrapped = wrap(module, name)
        setattr(module, name, wrapped)
    try:
        seconds, _ = time_steps(cfg, steps, sync, before_step=lambda: spent.append(dict.fromkeys(PARTS, 0.0)))
    finally:
        for (module, name), fn in originals.items():
            setattr(module, name, fn)
    return seconds, {part: float(np.median([s[part] for s in spent])) for part in PARTS}


def print_parts(per_step, records, seconds):
    """One row per part: its time, the matrix products in it (replayed alone), the rest."""
    mm = {part: 0.0 for part in PARTS}
    for r in records:
        part = r.get("part")
        if part is not None and np.isfinite(r["seconds"]):
            mm[part] += r["seconds"]
    print(f"  {'part':<10} {'s/step':>8} {'mm s':>8} {'not mm s':>9} {'of step':>8}")
    for part in PARTS:
        rest = per_step[part] - mm[part]
        print(f"  {part:<10} {per_step[part]:>8.4f} {mm[part]:>8.4f} {rest:>9.4f} {rest / seconds:>8.0%}")
    other = seconds - sum(per_step.values())
    print(f"  {'other':<10} {other:>8.4f} {'':>8} {other:>9.4f} {other / seconds:>8.0%}  (the glue between "
          "the parts: residual adds; medians need not add up)")


# ============================================================================ the step's products
PRODUCTS = {np.matmul: "matmul", np.dot: "dot"}  # what the recorder times; others are only noted
OTHER_PRODUCTS = (np.einsum, np.tensordot, np.inner, np.vdot, np.kron)


def layout(a):
    """(strides in elements, label): 'C' row-major, 'T' a transposed view of a row-major array
    (as `w.T` is), 'strided' anything else (e.g. a slice whose rows are not adjacent)."""
    strides = tuple(s // a.itemsize for s in a.strides)
    if a.ndim < 2 or a.flags.c_contiguous:
        return strides, "C"
    if np.swapaxes(a, -1, -2).flags.c_contiguous:
        return strides, "T"
    return strides, "strided"


def caller():
    """'function:line  source' of the first frame outside numpy and this file: where a product is."""
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        if path != __file__ and os.sep + "numpy" + os.sep not in path:
            line = linecache.getline(path, frame.f_lineno).strip()
            return f"{frame.f_code.co_name}:{frame.f_lineno}  {line}"
        frame = frame.f_back
    return "?"


class Recorder(np.ndarray):
    """A numpy array that notes every matrix product it takes part in, then computes as numpy does.

    Every result of a ufunc or numpy function that touches one is a Recorder again, so all arrays
    derived from the parameters and inputs are watched. A class because numpy's dispatch protocol
    (__array_ufunc__ / __array_function__) is defined on array types.
    """
    log = []

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        args = plain(inputs)
        if ufunc is np.matmul and method == "__call__":
            note("matmul", args)
        if out is not None:
            kwargs["out"] = plain(out)
        result = getattr(ufunc, method)(*args, **kwargs)
        if out is not None:  # in place: hand back the caller's own (Recorder) outputs
            return out[0] if len(out) == 1 else out
        return watched(result)

    def __array_function__(self, func, types, args, kwargs):
        args, kwargs = plain(args), plain(kwargs)
        if func in PRODUCTS:
            note(PRODUCTS[func], args)
        elif func in OTHER_PRODUCTS:
            note(func.__name__, args)
        return watched(func(*args, **kwargs))


def plain(x):
    """Recorders -> plain ndarrays (recursing into tuples, lists and dicts)."""
    if isinstance(x, Recorder):
        return x.view(np.ndarray)
    if isinstance(x, (list, tuple)):
        return type(x)(plain(v) for v in x)
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    return x


def watched(x):
    if isinstance(x, np.ndarray) and not isinstance(x, Recorder):
        return x.view(Recorder)
    if isinstance(x, (list, tuple)):
        return type(x)(watched(v) for v in x)
    return x


def part_of_caller():
    """The PARTS function a product is called from (walking out through helpers such as
    mlp_hidden or a row block's function), or None."""
    frame = sys._getframe(3)
    while frame is not None and frame.f_code.co_name not in PART_OF:
        frame = frame.f_back
    return None if frame is None else frame.f_code.co_name


def note(op, args):
    """Append one product to Recorder.log; products that are not replayed keep only op and place."""
    if op not in PRODUCTS.values():  # einsum and the like: flagged in the --detail list
        Recorder.log.append({"op": op, "where": caller(), "dtype": np.float32,
                             "a": ((), (), "-"), "b": ((), (), "-")})
        return
    a, b = np.asarray(args[0]), np.asarray(args[1])
    Recorder.log.append({"op": op, "where": caller(), "part": PART_OF.get(part_of_caller()),
                         "dtype": np.result_type(a, b),
                         "a": (a.shape, *layout(a)), "b": (b.shape, *layout(b))})


def product_flops(rec):
    """2 per multiply-add: 2 * (size of the result) * (the contracted length); 0 if not replayed."""
    sa, sb = rec["a"][0], rec["b"][0]
    if rec["op"] == "matmul":  # batch dims broadcast; a 1-D operand is a row (a) or a column (b)
        rows = sa[-2:-1] if len(sa) > 1 else ()
        cols = sb[-1:] if len(sb) > 1 else ()
        out = np.broadcast_shapes(sa[:-2], sb[:-2]) + rows + cols
    elif rec["op"] == "dot":  # np.dot: every axis of a but the last, every axis of b but its second-last
        out = sa[:-1] + (sb[:-2] + sb[-1:] if len(sb) > 1 else ())
    else:
        return 0
    return 2 * int(np.prod(out, dtype=np.int64)) * int(sa[-1])


def record_products(cfg):
    """Run one training step's loss_and_grads on Recorder arrays; the list of products it took.

    Runs on the numpy backend (the recorder is a numpy type); the shapes are the same on CuPy.
    """
    task, params, x, y = setup(cfg)
    Recorder.log = []
    miiii.loss_and_grads({k: v.view(Recorder) for k, v in params.items()}, x.view(Recorder),
                         y.view(Recorder), task["classes"], task["mask"], dropout=cfg["dropout"],
                         rng=miiii.dropout_rng(0, 1))
    return Recorder.log


def operand(xp, shape, strides, label, dtype, rng):
    """A random array of `shape` with the recorded strides (a transposed view stays one, a slice
    keeps its row stride), so BLAS sees the same layout as in the step."""
    tricks = getattr(getattr(xp, "lib", None), "stride_tricks", None)
    if tricks is None or any(s < 0 for s in strides):  # not seen so far; contiguous is the fallback
        if label == "T":
            return xp.swapaxes(xp.asarray(rng.standard_normal(shape[:-2] + shape[:-3:-1]).astype(dtype)), -1, -2)
        return xp.asarray(rng.standard_normal(shape).astype(dtype))
    size = 1 + sum((n - 1) * s for n, s in zip(shape, strides))
    buffer = xp.asarray(rng.standard_normal(size).astype(dtype))
    itemsize = np.dtype(dtype).itemsize
    return tricks.as_strided(buffer, shape=shape, strides=tuple(s * itemsize for s in strides))


def time_products(records, xp, sync, reps):
    """Median seconds of each recorded product, replayed alone with fresh operands (same key, same run)."""
    rng = np.random.default_rng(0)
    cache = {}
    for rec in records:
        key = (rec["op"], rec["a"], rec["b"], str(rec["dtype"]))  # same shapes and layout: timed once
        if key not in cache:
            cache[key] = time_product(rec, xp, sync, reps, rng)
        rec["seconds"] = cache[key]
        rec["flops"] = product_flops(rec)
    return records


def time_product(rec, xp, sync, reps, rng):
    if rec["op"] not in PRODUCTS.values():
        return float("nan")  # einsum and the like: noted, not replayed
    f = xp.matmul if rec["op"] == "matmul" else xp.dot
    a = operand(xp, *rec["a"], rec["dtype"], rng)
    b = operand(xp, *rec["b"], rec["dtype"], rng)
    f(a, b)  # warm-up
    sync()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f(a, b)
        sync()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def product_totals(records):
    """(seconds, FLOPs) of all replayed products of one step."""
    timed = [r for r in records if np.isfinite(r["seconds"])]
    return sum(r["seconds"] for r in timed), sum(r["flops"] for r in timed)


def print_products(records):
    print(f"  {'op':<6} {'a (layout)':<22} {'b (layout)':<22} {'GFLOP':>7} {'ms':>8} {'GFLOP/s':>8}  where")
    for r in records:
        shape = lambda s: f"{'x'.join(map(str, s[0]))} {s[2]}"  # noqa: E731
        rate = r["flops"] / r["seconds"] / 1e9 if r["seconds"] > 0 else float("nan")
        print(f"  {r['op']:<6} {shape(r['a']):<22} {shape(r['b']):<22} {r['flops'] / 1e9:>7.3f} "
              f"{r['seconds'] * 1e3:>8.3f} {rate:>8.1f}  {r['where'][:70]}")
    other = sorted({r["op"] for r in records if not np.isfinite(r["seconds"])})
    if other:
        print(f"  not replayed (timed within 'not mm'): {', '.join(other)}")


# ============================================================================ command line
HEADER = (f"{'config':<7} {'thr':>3} {'n_train':>7} {'s/step':>8} {'steps/s':>7} {'GFLOP/step':>10} "
          f"{'GFLOP/s':>8} {'of peak':>7} {'peak':>7} {'mm s':>7} {'mm GFLOP':>8} {'mm GF/s':>8} {'not mm':>6}")


def bench_row(name, threads, args, xp, sync):
    """Time one config at one thread count; print its table row (and its products with --detail)."""
    cfg = CONFIGS[name]
    with thread_limit(threads):
        peak = matmul_rate(xp, sync)
        seconds, flops = time_steps(cfg, args.steps, sync)
        if args.gpu:
            miiii.use_backend("numpy")  # the recorder is a numpy type; the shapes do not depend on it
        records = record_products(cfg)
        if args.gpu:
            miiii.use_backend("cupy")
        records = time_products(records, xp, sync, args.reps)
    mm_s, mm_flops = product_totals(records)
    n_train = int(round(cfg["train_frac"] * cfg["p"] ** 2))
    achieved = flops / seconds / 1e9
    thr = "-" if threads is None else str(threads)
    print(f"{name:<7} {thr:>3} {n_train:>7} {seconds:>8.4f} {1 / seconds:>7.2f} {flops / 1e9:>10.2f} "
          f"{achieved:>8.1f} {achieved / peak:>7.0%} {peak:>7.1f} {mm_s:>7.4f} {mm_flops / 1e9:>8.2f} "
          f"{mm_flops / mm_s / 1e9:>8.1f} {1 - mm_s / seconds:>6.0%}", flush=True)
    if args.detail:
        print_products(records)
    if args.parts:
        with thread_limit(threads):
            part_seconds, per_step = timed_parts(cfg, args.steps, sync)
        print_parts(per_step, records, part_seconds)
    return {"seconds": seconds, "flops": flops, "peak": peak, "mm_seconds": mm_s, "mm_flops": mm_flops}


def thread_counts(text):
    """'1,2' -> [1, 2]; None -> [None] (the libraries' default)."""
    if text is None:
        return [None]
    counts = [int(t) for t in text.split(",")]
    if any(n < 1 for n in counts):
        raise ValueError
    return counts


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per config (median is reported)")
    ap.add_argument("--reps", type=int, default=5, help="timed calls per matrix product (median)")
    ap.add_argument("--only", choices=sorted(CONFIGS), help="time one config only")
    ap.add_argument("--threads", type=str, help="host BLAS threads, or a list: --threads 1,2 "
                    "(default: the libraries' own choice)")
    ap.add_argument("--detail", action="store_true", help="print every matrix product of the step")
    ap.add_argument("--parts", action="store_true", help="the time of each part of the step (loss, "
                    "attention, MLP, dropout, optimiser), and the share of it that is not matrix products")
    ap.add_argument("--gpu", action="store_true", help="run on CuPy")
    args = ap.parse_args(argv)
    try:
        args.threads = thread_counts(args.threads)
    except ValueError:
        ap.error(f"--threads wants positive integers separated by commas, got {args.threads!r}")
    if args.steps < 1 or args.reps < 1:
        ap.error("--steps and --reps must be >= 1")
    return args


def main(argv=None):
    args = parse(argv)
    try:
        xp, sync = backend(args.gpu)
    except miiii.UsageError as e:
        print(f"bench_step.py: error: {e}", file=sys.stderr)
        return 2
    print(f"backend {xp.__name__}, {os.cpu_count()} CPU cores; peak = float32 matmul 4096^3, GFLOP/s")
    print(HEADER)
    for name in ([args.only] if args.only else ["paper", "small"]):
        for threads in args.threads:
            bench_row(name, threads, args, xp, sync)
    return 0


if __name__ == "__main__":
    sys.exit(main())
