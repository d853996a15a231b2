"""miiii's NumPy step against the JAX-jit reference (jax_step.py), timed in the same run.

    python benchmarks/compare_jax.py                      # paper and small config
    python benchmarks/compare_jax.py --threads 1 --only paper --steps 10
    python benchmarks/compare_jax.py --check --rounds 3   # same loss and gradients first; best of 3

One invocation times both, back to back per config (ours, then JAX, --rounds times; each timing
the median of --steps steps; the best round of each side is kept), so they see the same machine
state. Each timing runs in a fresh child process: in one process XLA's and OpenBLAS's thread pools
sit side by side and their idle spinning slows the other on a small machine. --threads N pins
each child to N cores (XLA sizes its pool from them) and limits the BLAS pools to N threads.
A ratio ours/JAX below 1 means miiii's step is faster. Needs JAX
(benchmarks/requirements-jax.txt); without it, one line and exit 2.
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_step  # noqa: E402
import jax_step  # noqa: E402


def child_seconds(side, name, args):
    """s/step of `side` ('ours' or 'jax') on config `name`, measured in a fresh process."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", side, "--only", name, "--steps", str(args.steps)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{side} on {name} failed (exit {done.returncode}): {last}")
    return float(done.stdout.split()[-1])


def run_child(side, name, args):
    """The child's work: time one side on one config, print its s/step."""
    cfg = bench_step.CONFIGS[name]
    if side == "ours":
        with bench_step.thread_limit(args.threads):
            print(bench_step.time_steps(cfg, args.steps, lambda: None)[0])
    else:
        print(jax_step.time_jax(jax_step.load_jax(), cfg, args.steps))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per config and round (median)")
    ap.add_argument("--rounds", type=int, default=1, help="alternate ours / JAX this many times")
    ap.add_argument("--only", choices=sorted(bench_step.CONFIGS), help="one config only")
    ap.add_argument("--threads", type=int, help="cores per child and BLAS threads (default: all)")
    ap.add_argument("--check", action="store_true", help="compare loss and gradients at init first")
    ap.add_argument("--child", choices=["ours", "jax"], help=argparse.SUPPRESS)  # internal
    args = ap.parse_args(argv)
    try:
        jax_step.pin_threads(args.threads)
    except ValueError as e:
        ap.error(str(e))
    names = [args.only] if args.only else ["paper", "small"]
    if args.child:
        return run_child(args.child, names[0], args)
    jax = jax_step.load_jax()
    if jax is None:
        print("compare_jax.py: JAX is not installed (pip install -r benchmarks/requirements-jax.txt)",
              file=sys.stderr)
        return 2
    cores = len(os.sched_getaffinity(0))
    print(f"numpy (miiii) vs jax {jax.__version__} jit on cpu, {cores} cores, BLAS threads "
          f"{args.threads or 'default'}; s/step: best of {args.rounds} medians of {args.steps} steps")
    print(f"{'config':<7} {'ours s/step':>11} {'JAX s/step':>11} {'ours/JAX':>9}")
    for name in names:
        if args.check:
            ours, theirs, worst = jax_step.check_against_ours(jax, bench_step.CONFIGS[name])
            print(f"  {name}: loss at init, dropout 0: ours {ours:.6f} JAX {theirs:.6f}; "
                  f"largest gradient difference {worst:.1e} of scale")
        rounds = [(child_seconds("ours", name, args), child_seconds("jax", name, args))
                  for _ in range(args.rounds)]  # alternating, so drift in the machine hits both
        ours, theirs = min(r[0] for r in rounds), min(r[1] for r in rounds)
        print(f"{name:<7} {ours:>11.4f} {theirs:>11.4f} {ours / theirs:>9.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
