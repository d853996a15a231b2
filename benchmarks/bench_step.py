"""Time full training steps of miiii and compare their FLOP rate with this machine's matmul rate.

    python benchmarks/bench_step.py                # paper config and a small one, CPU
    python benchmarks/bench_step.py --gpu          # the same on CuPy
    python benchmarks/bench_step.py --steps 10 --only paper

A step is what one training epoch does: forward and backward on every training sample (dropout
on), GrokFast-EMA, AdamW. "Useful FLOPs" counts 2 per multiply-add of the matrix products the
step needs (see step_flops); elementwise work (softmax, loss, dropout, optimiser) is not counted,
and scatter-adds are counted at their useful cost, not at the one-hot matmul the code runs them as.
The reference rate is a large square float32 matmul measured in the same process.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

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


def time_steps(cfg, steps, sync):
    task = miiii.make_task(cfg["task"], cfg["p"], cfg["train_frac"], seed=0)
    classes = task["classes"]
    params = {k: miiii.to_device(v) for k, v in miiii.init_params(cfg["p"], cfg["d"], cfg["heads"], classes).items()}
    x = miiii.to_device(task["x"][task["train"]])
    y = miiii.to_device(task["y"][task["train"]])
    mask = miiii.to_device(task["mask"])
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
        t = time.perf_counter()
        step(epoch)
        sync()
        times.append(time.perf_counter() - t)
    flops = step_flops(len(task["train"]), cfg["p"], cfg["d"], cfg["heads"], sum(classes))
    return float(np.median(times)), flops


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per config (median is reported)")
    ap.add_argument("--only", choices=sorted(CONFIGS), help="time one config only")
    ap.add_argument("--gpu", action="store_true", help="run on CuPy")
    args = ap.parse_args(argv)
    try:
        xp = miiii.use_backend("cupy" if args.gpu else "numpy")
    except miiii.UsageError as e:
        print(f"bench_step.py: error: {e}", file=sys.stderr)
        return 2
    sync = (lambda: xp.cuda.Device().synchronize()) if args.gpu else (lambda: None)
    rate = matmul_rate(xp, sync)
    print(f"backend {xp.__name__}, {os.cpu_count()} CPU cores; float32 matmul 4096^3: {rate:.1f} GFLOP/s")
    print(f"{'config':<7} {'task':<6} {'p':>4} {'d':>4} {'n_train':>7}  {'s/step':>8} {'steps/s':>8} "
          f"{'GFLOP/step':>10} {'GFLOP/s':>8} {'of matmul':>9}")
    for name in ([args.only] if args.only else ["paper", "small"]):
        cfg = CONFIGS[name]
        seconds, flops = time_steps(cfg, args.steps, sync)
        n_train = int(round(cfg["train_frac"] * cfg["p"] ** 2))
        achieved = flops / seconds / 1e9
        print(f"{name:<7} {cfg['task']:<6} {cfg['p']:>4} {cfg['d']:>4} {n_train:>7}  {seconds:>8.4f} "
              f"{1 / seconds:>8.2f} {flops / 1e9:>10.2f} {achieved:>8.1f} {achieved / rate:>8.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
