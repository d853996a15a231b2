"""Reproduce the talk with this code: run (or reuse) every run behind RESULTS.md, then write it.

    python experiments/reproduce.py                 # run what is missing (2 at a time, 1 BLAS thread each), then report
    python experiments/reproduce.py --report        # only collect and write RESULTS.md + docs/results/ (< 1 min)
    python experiments/reproduce.py --commands      # print each missing run's plain `python miiii.py ...` command
    python experiments/reproduce.py --only sweep    # run one group (sweep, claims, nanda, filters)

Every run is a plain `python miiii.py ... --out results/runs/<name>` into its own directory, so a user
with a cluster can hand the printed commands to the scheduler they already use (a SLURM array, GNU
parallel) and then run `--report`. A finished run is never redone (miiii.py itself leaves a complete
run directory alone), an interrupted one continues from its checkpoint. The small outputs of each run
(config.json, metrics.npz, the analysis records, analysis.json; params only where a figure needs
them) are committed; checkpoints and the rest are ignored by git (see .gitignore).
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = os.path.join("results", "runs")

# ---------------------------------------------------------------------------- the runs
# name -> (group, flags). Flags are miiii.py's; --out, --threads and --quiet are added by the runner.
SWEEP_BASE = ["--task", "miiii", "--d", "128", "--lr", "3e-3", "--wd", "1", "--lamb", "2"]


def sweep_runs():
    """The documented search for a CPU-scale T_miiii that groks on every task (issue 11, section 1)."""
    runs = {
        # p, train fraction: more pairs per class for the large primes
        "sweep-p61-f0.7": SWEEP_BASE + ["--p", "61", "--train-frac", "0.7", "--epochs", "6000"],
        "sweep-p47-f0.7": SWEEP_BASE + ["--p", "47", "--train-frac", "0.7", "--epochs", "10000"],
        "sweep-p37-f0.8": SWEEP_BASE + ["--p", "37", "--train-frac", "0.8", "--epochs", "6000"],
        "sweep-p61-f0.6": SWEEP_BASE + ["--p", "61", "--train-frac", "0.6", "--epochs", "8000"],
        "sweep-p79-f0.5": SWEEP_BASE + ["--p", "79", "--train-frac", "0.5", "--epochs", "8000"],
        # towards the paper's settings (d 256, lr 3e-4, wd 1/3, lambda 0.5, train 0.5)
        "sweep-p61-f0.7-d256": SWEEP_BASE[:2] + ["--d", "256", "--lr", "1e-3", "--wd", "1", "--lamb", "2",
                                                 "--p", "61", "--train-frac", "0.7", "--epochs", "6000"],
        "sweep-p61-f0.7-paperhp": ["--task", "miiii", "--d", "256", "--lr", "3e-4", "--wd", str(1 / 3),
                                   "--lamb", "0.5", "--p", "61", "--train-frac", "0.7", "--epochs", "8000"],
    }
    return {name: ("sweep", flags + ["--no-analysis"]) for name, flags in runs.items()}


# The CPU-scale T_miiii of the claims: the sweep's cheapest configuration that groks on every task
# within 30 minutes (see RESULTS.md, "The sweep"); 6,000 epochs leave it ~1.5x its grokking epoch.
MIIII = ["--p", "61", "--d", "128", "--lr", "3e-3", "--wd", "1", "--lamb", "2", "--train-frac", "0.7"]
MIIII_EPOCHS = 6000
# The README's T_nanda demo (groks at ~1,000 epochs) and Nanda et al.'s setting scaled to a CPU:
# train fraction 0.3, lr 1e-3, wd 1, no GrokFast, no dropout (their model has none).
NANDA = ["--task", "nanda", "--p", "59", "--d", "128", "--lr", "1e-3", "--wd", "1", "--lamb", "2"]
NANDA_PAPER = ["--task", "nanda", "--p", "59", "--d", "128", "--lr", "1e-3", "--wd", "1", "--filter", "none",
               "--dropout", "0", "--train-frac", "0.3"]
SEEDS = (0, 1, 2)


def claim_runs():
    """Every run behind a row of RESULTS.md's claims table (issue 11, section 2): >= 3 seeds each."""
    runs = {}
    for s in SEEDS:
        seed = ["--seed", str(s)]
        runs[f"miiii-s{s}"] = ("claims", ["--task", "miiii", *MIIII, "--epochs", str(MIIII_EPOCHS), *seed])
        # without GrokFast: twice the epochs, so "did not converge" is not just "too short"
        runs[f"miiii-nofilter-s{s}"] = ("claims", ["--task", "miiii", *MIIII, "--filter", "none",
                                                   "--epochs", str(2 * MIIII_EPOCHS), *seed])
        runs[f"miiii-nodropout-s{s}"] = ("claims", ["--task", "miiii", *MIIII, "--dropout", "0",
                                                    "--epochs", str(MIIII_EPOCHS), *seed])
        runs[f"masked-s{s}"] = ("claims", ["--task", "masked", *MIIII, "--epochs", str(MIIII_EPOCHS), *seed])
        runs[f"basis-s{s}"] = ("claims", ["--task", "basis", *MIIII, "--epochs", str(MIIII_EPOCHS), *seed])
        runs[f"nanda-s{s}"] = ("nanda", [*NANDA, "--epochs", "3000", *seed])
        runs[f"nanda-nofilter-s{s}"] = ("nanda", [*NANDA, "--filter", "none", "--epochs", "20000", *seed])
        runs[f"nanda-paper-s{s}"] = ("nanda", [*NANDA_PAPER, "--epochs", "20000", *seed])
    return runs


def all_runs():
    runs = {}
    runs.update(sweep_runs())
    runs.update(claim_runs())
    return runs


# ---------------------------------------------------------------------------- running
def wanted_epochs(flags):
    return int(flags[flags.index("--epochs") + 1])


def run_config(name):
    """The run's config.json, or None."""
    try:
        with open(os.path.join(ROOT, RUNS, name, "config.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def command(name, flags, threads=1):
    """The run's command; a finished shorter run of it is extended (--resume --epochs) instead."""
    out = os.path.join(RUNS, name)
    config = run_config(name)
    if config and config.get("status") == "complete" and config.get("epochs", 0) < wanted_epochs(flags):
        keep = ["--no-analysis"] if "--no-analysis" in flags else []
        return [sys.executable, "miiii.py", "--resume", out, "--epochs", str(wanted_epochs(flags)), *keep,
                "--threads", str(threads), "--quiet"]
    return [sys.executable, "miiii.py", *flags, "--out", out, "--threads", str(threads), "--quiet"]


def is_complete(name, flags):
    """A run directory whose config.json says complete (miiii.py writes that last) at the wanted length."""
    config = run_config(name)
    return bool(config) and config.get("status") == "complete" and config.get("epochs") == wanted_epochs(flags)


def record_wall_time(name, seconds, threads, jobs):
    """Append this invocation's wall time to the run's wall.json (an extension adds a second entry)."""
    path = os.path.join(ROOT, RUNS, name, "wall.json")
    try:
        with open(path) as f:
            entries = json.load(f)
    except (OSError, ValueError):
        entries = []
    config = run_config(name) or {}
    entries.append({"seconds": round(seconds, 1), "epochs": config.get("epochs"), "threads": threads,
                    "runs_side_by_side": jobs, "machine": f"{os.cpu_count()} cores",
                    "date": time.strftime("%Y-%m-%d")})
    with open(path, "w") as f:
        json.dump(entries, f, indent=1)


def run_all(runs, jobs, threads):
    """Run the missing runs, `jobs` at a time; returns {name: (exit code, seconds)}."""
    pending = [(name, flags) for name, (_, flags) in runs.items() if not is_complete(name, flags)]
    running, done = {}, {}
    os.makedirs(os.path.join(ROOT, "results", "logs"), exist_ok=True)
    while pending or running:
        while pending and len(running) < jobs:
            name, flags = pending.pop(0)
            log = open(os.path.join(ROOT, "results", "logs", f"{name}.log"), "a")
            proc = subprocess.Popen(command(name, flags, threads), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            running[name] = (proc, time.time(), log)
            print(f"started {name}", flush=True)
        time.sleep(2)
        for name, (proc, start, log) in list(running.items()):
            if proc.poll() is not None:
                log.close()
                done[name] = (proc.returncode, time.time() - start)
                record_wall_time(name, time.time() - start, threads, jobs)
                print(f"finished {name}: exit {proc.returncode}, {(time.time() - start) / 60:.1f} min", flush=True)
                del running[name]
    return done


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--commands", action="store_true", help="print the missing runs' commands and exit")
    ap.add_argument("--report", action="store_true", help="only collect results and write RESULTS.md")
    ap.add_argument("--only", help="run one group: sweep, claims, nanda, filters")
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads per run (default 1)")
    args = ap.parse_args(argv)
    runs = {k: v for k, v in all_runs().items() if args.only is None or v[0] == args.only}
    if args.commands:
        for name, (_, flags) in runs.items():
            if not is_complete(name, flags):
                print(shlex.join(["python", *command(name, flags, args.threads)[1:]]))
        return 0
    if not args.report:
        run_all(runs, args.jobs, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
