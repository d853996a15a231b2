"""What a paper-config run spends outside its training steps: evaluations and analysis snapshots.

    python benchmarks/overheads.py                 # T_miiii p 113, d 256; runs of 40 and 500 epochs
    python benchmarks/overheads.py --epochs 40     # one run only

Trains through miiii.train with the CLI's analysis hooks (Omega snapshots, the talk's neuron-0
spectra, gradient norms, Table-1 parameter copies) and reads the seconds train() accounts to
steps, evaluations and hooks; prints each share of the wall time, the cost of one evaluation and
one Omega snapshot, and an estimate for the paper's 65,536 epochs from the counts its schedules
give (log_epochs, snapshot_epochs, talk_epochs) times the measured costs.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

import fourier  # noqa: E402
import miiii  # noqa: E402

PAPER = {"task": "miiii", "p": 113, "d": 256, "heads": 4}


def measure(epochs):
    cfg = {**miiii.DEFAULTS, **PAPER, "epochs": epochs}
    state = miiii.init_state(cfg)
    hooks = miiii.training_hooks(cfg, state["records"])
    timing = {}
    start = time.perf_counter()
    miiii.train(cfg, progress=False, hooks=hooks, state=state, timing=timing)
    timing["wall_s"] = time.perf_counter() - start
    return timing, state["records"]


def costs():
    """Seconds of one Omega snapshot, one talk spectrum and one evaluation at the paper's size."""
    task = miiii.make_task("miiii", 113, 0.5, 0)
    params = {k: miiii.to_device(v) for k, v in miiii.init_params(113, 256, 4, task["classes"]).items()}
    x, y = miiii.to_device(task["x"]), miiii.to_device(task["y"])
    sets = (miiii.to_device(task["train"]), miiii.to_device(task["valid"]))
    out = {}
    for name, f in (("omega_snapshot", lambda: miiii.omega_snapshot(params, 113)),
                    ("talk_spectrum", lambda: miiii.talk_spectrum(params, 113)),
                    ("evaluation", lambda: miiii.evaluate(params, x, y, task["classes"], sets, True))):
        f()
        times = []
        for _ in range(3):
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
        out[name] = float(np.median(times))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, nargs="*", default=[40, 500])
    args = ap.parse_args(argv)
    miiii.keep_freed_memory()
    c = costs()
    print(f"one Omega snapshot {c['omega_snapshot']:.3f} s, one talk spectrum {c['talk_spectrum']:.3f} s, "
          f"one evaluation {c['evaluation']:.3f} s (median of 3, p 113, d 256)")
    step = None
    for epochs in args.epochs:
        t, _ = measure(epochs)
        step = t["steps_s"] / max(t["steps"], 1)
        wall = t["wall_s"]
        print(f"{epochs:>6} epochs: wall {wall:.1f} s; steps {t['steps_s'] / wall:.0%} ({step:.3f} s each), "
              f"{t['evaluations']} evaluations {t['evaluation_s'] / wall:.0%}, analysis {t['analysis_s'] / wall:.0%}")
    E = 65536
    n_eval = len(miiii.log_epochs(E, 0))
    n_omega = len(fourier.snapshot_epochs(E))
    n_talk = len(np.unique(fourier.talk_epochs(E)))
    total = E * step + n_eval * c["evaluation"] + n_omega * c["omega_snapshot"] + n_talk * c["talk_spectrum"]
    print(f" 65536 epochs (estimated): {E * step / total:.1%} steps, {n_eval} evaluations "
          f"{n_eval * c['evaluation'] / total:.1%}, {n_omega} Omega snapshots "
          f"{n_omega * c['omega_snapshot'] / total:.2%}, {n_talk} talk spectra "
          f"{n_talk * c['talk_spectrum'] / total:.2%}; {total / 3600:.1f} h in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
