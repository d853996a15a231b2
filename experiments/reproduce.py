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
RUNS = os.path.join("results", "runs")  # relative to ROOT; --runs-dir makes it an absolute path elsewhere
LOGS = os.path.join(ROOT, "results", "logs")

# ---------------------------------------------------------------------------- the runs
# name -> (group, flags). Flags are miiii.py's; --out, --threads and --quiet are added by the runner.
SWEEP_BASE = ["--task", "miiii", "--d", "128", "--lr", "3e-3", "--wd", "1", "--lamb", "2"]


def sweep_runs():
    """The documented search for a CPU-scale T_miiii that groks on every task (issue 11, section 1)."""
    runs = {
        # p, train fraction: more pairs per class for the large primes
        "sweep-p61-f0.7": SWEEP_BASE + ["--p", "61", "--train-frac", "0.7", "--epochs", "12000"],
        "sweep-p61-f0.8": SWEEP_BASE + ["--p", "61", "--train-frac", "0.8", "--epochs", "8000"],
        "sweep-p47-f0.7": SWEEP_BASE + ["--p", "47", "--train-frac", "0.7", "--epochs", "10000"],
        "sweep-p37-f0.8": SWEEP_BASE + ["--p", "37", "--train-frac", "0.8", "--epochs", "6000"],
        "sweep-p61-f0.6": SWEEP_BASE + ["--p", "61", "--train-frac", "0.6", "--epochs", "8000"],
        "sweep-p79-f0.5": SWEEP_BASE + ["--p", "79", "--train-frac", "0.5", "--epochs", "8000"],
        # towards the paper's settings (d 256, lr 3e-4, wd 1/3, lambda 0.5, train 0.5)
        "sweep-p61-f0.7-d256": SWEEP_BASE[:2] + ["--d", "256", "--lr", "1e-3", "--wd", "1", "--lamb", "2",
                                                 "--p", "61", "--train-frac", "0.7", "--epochs", "6000"],
        "sweep-p61-f0.7-paperhp": ["--task", "miiii", "--d", "256", "--lr", "3e-4", "--wd", str(1 / 3),
                                   "--lamb", "0.5", "--p", "61", "--train-frac", "0.7", "--epochs", "5000"],
    }
    return {name: ("sweep", flags + ["--no-analysis"]) for name, flags in runs.items()}


# The CPU-scale T_miiii of the claims: the sweep's cheapest configuration that groks on every task
# within 30 minutes (see RESULTS.md, "The sweep"); 6,000 epochs leave it ~1.5x its grokking epoch.
MIIII = ["--p", "61", "--d", "128", "--lr", "3e-3", "--wd", "1", "--lamb", "2", "--train-frac", "0.8"]
MIIII_EPOCHS = 6000
# The README's T_nanda demo (groks at ~1,000 epochs) and Nanda et al.'s setting scaled to a CPU:
# train fraction 0.3, lr 1e-3, wd 1, no GrokFast, no dropout (their model has none). 25,000 epochs:
# at 15,000 two of three seeds were still in clean-up (Nanda et al. trained 40,000 at p = 113).
NANDA = ["--task", "nanda", "--p", "59", "--d", "128", "--lr", "1e-3", "--wd", "1", "--lamb", "2"]
NANDA_PAPER = ["--task", "nanda", "--p", "59", "--d", "128", "--lr", "1e-3", "--wd", "1", "--filter", "none",
               "--dropout", "0", "--train-frac", "0.3"]
SEEDS = (0, 1, 2)


def claim_runs():
    """Every run behind a row of RESULTS.md's claims table (issue 11, section 2): >= 3 seeds each."""
    runs = {}
    for s in SEEDS:  # the T_miiii-scale runs first, seed by seed; the cheap T_nanda runs after them
        seed = ["--seed", str(s)]
        runs[f"miiii-s{s}"] = ("claims", ["--task", "miiii", *MIIII, "--epochs", str(MIIII_EPOCHS), *seed])
        # without GrokFast: twice the epochs, so "did not converge" is not just "too short"
        runs[f"miiii-nofilter-s{s}"] = ("claims", ["--task", "miiii", *MIIII, "--filter", "none",
                                                   "--epochs", str(2 * MIIII_EPOCHS), *seed])
        runs[f"miiii-nodropout-s{s}"] = ("claims", ["--task", "miiii", *MIIII, "--dropout", "0",
                                                    "--epochs", str(MIIII_EPOCHS), *seed])
        runs[f"masked-s{s}"] = ("claims", ["--task", "masked", *MIIII, "--epochs", str(MIIII_EPOCHS), *seed])
        if s < 2:  # a control about the embeddings (no periodicity), not about training speed: two seeds
            runs[f"basis-s{s}"] = ("claims", ["--task", "basis", *MIIII, "--epochs", "3000", *seed])
    for s in SEEDS:
        seed = ["--seed", str(s)]
        runs[f"nanda-s{s}"] = ("nanda", [*NANDA, "--epochs", "3000", *seed])
        runs[f"nanda-nofilter-s{s}"] = ("nanda", [*NANDA, "--filter", "none", "--epochs", "10000", *seed])
        runs[f"nanda-paper-s{s}"] = ("nanda", [*NANDA_PAPER, "--epochs", "25000", *seed])
    return runs


# GrokFast filters compared on T_nanda (issue 12): ema and none are the claim runs above (nanda-s*,
# nanda-nofilter-s*); these add MA, the normalised mixture and the two dynamic variants.
FILTER_VARIANTS = {
    "ma": ["--filter", "ma", "--window", "100"],
    "norm": ["--filter", "norm"],
    "bandpass": ["--filter", "bandpass", "--alpha-fast", "0.9"],
    "gap": ["--lamb-schedule", "gap"],
    # a control for bandpass: g + lambda (f - s) + lambda s = g + lambda f, i.e. EMA at bandpass's fast alpha
    "ema0.9": ["--alpha", "0.9"],
}


# A filter comparison needs its baselines: `--only filters` also runs T_nanda's ema and none runs
# (group nanda), `--only filters-miiii` T_miiii's (group claims), so each is one self-contained command.
FILTER_BASELINES = {"filters": [f"nanda{k}-s{s}" for k in ("", "-nofilter") for s in SEEDS],
                    "filters-miiii": [f"miiii{k}-s{s}" for k in ("", "-nofilter") for s in SEEDS]}


def select(only=None):
    """The runs of the groups named in `only` (comma-separated; None: all), filter baselines included."""
    chosen = set(only.split(",")) if only else None
    return {k: v for k, v in all_runs().items()
            if chosen is None or v[0] in chosen or any(k in FILTER_BASELINES[g] for g in chosen & set(FILTER_BASELINES))}


def filter_runs():
    runs = {f"nanda-{kind}-s{s}": ("filters", [*NANDA, *flags, "--epochs", "4000", "--seed", str(s)])
            for s in SEEDS for kind, flags in FILTER_VARIANTS.items()}
    # the same on the CPU-scale T_miiii (ema and none are the claim runs miiii-s*, miiii-nofilter-s*)
    runs.update({f"miiii-{kind}-s{s}": ("filters-miiii", ["--task", "miiii", *MIIII, *flags, "--epochs",
                                                           str(MIIII_EPOCHS), "--seed", str(s)])
                 for s in SEEDS for kind, flags in FILTER_VARIANTS.items()})
    # band-pass on T_miiii failed at lambda 2: is it the strength? seed 0 at lambda 1 and 0.5
    runs.update({f"miiii-bandpass-lamb{lamb}-s0": ("bandpass-strength", ["--task", "miiii", *MIIII[:-4], "--lamb", lamb,
                                                                         *MIIII[-2:], *FILTER_VARIANTS["bandpass"],
                                                                         "--epochs", str(MIIII_EPOCHS), "--seed", "0"])
                 for lamb in ("1", "0.5")})
    # softmax collapse (Prieto et al.) rises without weight decay: the default run beside one with wd 0
    runs["nanda-wd0-s0"] = ("filters", [*NANDA[:-4], "--wd", "0", "--lamb", "2", "--epochs", "3000", "--seed", "0"])
    return runs


# The paper's configuration (every default of miiii.py: p 113, d 256, lr 3e-4, wd 1/3, lambda 0.5,
# train 0.5) at its own length, 65,536 epochs: ~0.39 s per step with one BLAS thread on the 2-core CPU,
# ~7 h a run with two side by side. Tiers in the order they decide claims: tier 1 (GrokFast or not),
# tier 2 (a second seed, no dropout), tier 3 (a third seed, the mask, T_nanda and T_basis at p = 113,
# 16,384 epochs for the last two). Made from a frozen copy of the code with --runs-dir outside the
# working tree (experiments/campaign.sh), then copied in with --sync.
PAPER_EPOCHS = 65536
PAPER_TIERS = {
    "paper-miiii-s0": (1, ["--task", "miiii", "--seed", "0"]),
    "paper-miiii-nofilter-s0": (1, ["--task", "miiii", "--filter", "none", "--seed", "0"]),
    "paper-miiii-s1": (2, ["--task", "miiii", "--seed", "1"]),
    "paper-miiii-nodropout-s0": (2, ["--task", "miiii", "--dropout", "0", "--seed", "0"]),
    "paper-nanda-s0": (3, ["--task", "nanda", "--epochs", "16384", "--seed", "0"]),
    "paper-basis-s0": (3, ["--task", "basis", "--epochs", "16384", "--seed", "0"]),
    "paper-miiii-s2": (3, ["--task", "miiii", "--seed", "2"]),
    "paper-masked-s0": (3, ["--task", "masked", "--seed", "0"]),
}


def paper_runs():
    runs = {name: ("paper", flags if "--epochs" in flags else [*flags, "--epochs", str(PAPER_EPOCHS)])
            for name, (_, flags) in PAPER_TIERS.items()}
    # the first look at the paper's configuration (both cores, 68 min): its first quarter
    runs["paper16k-miiii-s0"] = ("paper16k", ["--task", "miiii", "--epochs", "16384", "--seed", "0"])
    return runs


def all_runs():
    runs = {}
    runs.update(sweep_runs())
    runs.update(claim_runs())
    runs.update(filter_runs())
    runs.update(paper_runs())
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


def record_wall_time(name, seconds, threads, jobs, piece=None, finished=True):
    """Write this invocation's wall time into the run's wall.json (an extension or a resumed piece adds an
    entry); jobs: the most training processes (miiii.py, this run included) seen on the machine meanwhile.
    `piece`: the index of the entry to update (a running piece is rewritten every minute with
    finished false, so a piece cut short by the end of a session keeps the time it had); returns it."""
    path = os.path.join(ROOT, RUNS, name, "wall.json")
    try:
        with open(path) as f:
            entries = json.load(f)
    except (OSError, ValueError):
        entries = []
    config = run_config(name) or {}
    entry = {"seconds": round(seconds, 1), "epochs": config.get("epochs"), "threads": threads,
             "runs_side_by_side": jobs, "machine": machine(), "date": time.strftime("%Y-%m-%d")}
    if not finished:
        entry["finished"] = False
    if piece is None or piece >= len(entries):
        entries.append(entry)
        piece = len(entries) - 1
    else:
        entries[piece] = entry
    if os.path.isdir(os.path.dirname(path)):
        with open(path + ".tmp", "w") as f:
            json.dump(entries, f, indent=1)
        os.replace(path + ".tmp", path)
    return piece


def machine():
    """'N cores' and, where Linux says it, the CPU's model name."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{os.cpu_count()} cores" + (f", {model}" if model else "")


def training_processes():
    """The argument lists of every miiii.py process on this machine, read from /proc (Linux; [] elsewhere)."""
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()) if os.path.isdir("/proc") else ():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(os.path.basename(a) == "miiii.py" for a in args):
            found.append(args)
    return found


def busy_elsewhere(processes=None):
    """Names of runs a miiii.py process started by someone else (another reproduce.py, a user) is
    training right now; such runs are waited for, not started twice."""
    busy = set()
    for args in training_processes() if processes is None else processes:
        for flag in ("--out", "--resume"):
            if flag in args and args.index(flag) + 1 < len(args):
                path = os.path.normpath(args[args.index(flag) + 1])
                if os.path.dirname(path) == os.path.normpath(RUNS):
                    busy.add(os.path.basename(path))
    return busy


def run_all(runs, jobs, threads, heartbeat=False):
    """Run the missing runs, `jobs` at a time (counting runs others are training); returns
    {name: (exit code, seconds)}. heartbeat: keep each piece's wall time in wall.json while it runs
    (for runs that outlast a session, whose pieces end when the session does)."""
    pending = [(name, flags) for name, (_, flags) in runs.items() if not is_complete(name, flags)]
    running, done = {}, {}
    os.makedirs(LOGS, exist_ok=True)
    while pending or running:
        processes = training_processes()
        for name in running:  # the most training processes seen beside each run (wall.json's load)
            running[name][3][0] = max(running[name][3][0], len(processes))
        elsewhere = busy_elsewhere(processes) - set(running)
        startable = [(n, f) for n, f in pending if n not in elsewhere]
        while startable and len(running) + len(elsewhere) < jobs:
            name, flags = startable.pop(0)
            pending.remove((name, flags))
            if is_complete(name, flags):  # finished elsewhere meanwhile
                continue
            log = open(os.path.join(LOGS, f"{name}.log"), "a")
            proc = subprocess.Popen(command(name, flags, threads), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            running[name] = (proc, time.time(), log, [len(running) + 1 + len(elsewhere), None, time.time()])
            print(f"started {name}", flush=True)
        if not running and not startable and pending:
            time.sleep(5)  # only runs that others are training are left: wait for them
            continue
        time.sleep(2)
        for name, (proc, start, log, load) in list(running.items()):
            if proc.poll() is None and heartbeat and time.time() - load[2] >= 60:
                load[1] = record_wall_time(name, time.time() - start, threads, load[0], load[1], finished=False)
                load[2] = time.time()
            if proc.poll() is not None:
                log.close()
                done[name] = (proc.returncode, time.time() - start)
                if proc.returncode == 0 or heartbeat:  # an interrupted piece counts only where pieces are kept
                    record_wall_time(name, time.time() - start, threads, load[0], load[1],
                                     finished=proc.returncode == 0)
                print(f"finished {name}: exit {proc.returncode}, {(time.time() - start) / 60:.1f} min", flush=True)
                del running[name]
    return done


# ---------------------------------------------------------------------------- collecting
def load(name):
    """What the report needs of one finished run (config, metrics, analysis.json, records, wall time),
    or None when the run is not there or not complete."""
    sys.path.insert(0, ROOT)
    import numpy as np
    import fft_analysis as fa
    config = run_config(name)
    d = os.path.join(ROOT, RUNS, name)
    if not config or not os.path.exists(os.path.join(d, "metrics.npz")):
        return None
    # a run being extended still holds the metrics of the length it finished: reported as such
    partial = config.get("status") != "complete"
    with np.load(os.path.join(d, "metrics.npz")) as z:
        metrics = {k: z[k] for k in z.files}
    run = {"name": name, "dir": d, "config": config, "metrics": metrics, "partial": partial}
    for key in ("analysis", "wall"):
        path = os.path.join(d, f"{key}.json")
        if os.path.exists(path):
            with open(path) as f:
                run[key] = json.load(f)
    run.update(fa.load_records(d, progress_params=False))  # the parameter copies are large and not needed
    return run


def grok(run, level):
    """Per task, the first logged epoch from which valid accuracy stays >= level (None: never)."""
    import fft_analysis as fa
    return fa.grokking_epochs(run["metrics"]["epochs"], run["metrics"]["valid_acc"], level)


def all_tasks(epochs, tasks=None):
    """The epoch by which every task (or those listed) has grokked, or None."""
    chosen = [e for i, e in enumerate(epochs) if tasks is None or i in tasks]
    return None if any(e is None for e in chosen) else max(chosen)


def minutes(run):
    wall = run.get("wall") or []
    return sum(w["seconds"] for w in wall) / 60 if wall else None


def mean_sd(values, fmt="{:.0f}"):
    """'mean ± sd (n)' of the values that exist, and how many did not."""
    import numpy as np
    got = [v for v in values if v is not None]
    if not got:
        return f"not reached ({len(values)} of {len(values)})"
    text = fmt.format(np.mean(got))
    if len(got) > 1:
        text += " ± " + fmt.format(np.std(got, ddof=1))
    missing = len(values) - len(got)
    return text + (f" (n = {len(got)}; not reached in {missing})" if missing else f" (n = {len(got)})")


def fmt_epoch(e):
    return "-" if e is None else f"{e:,}"


def flags_of(name, threads=1):
    """The run's plain command from scratch (what the table documents; reproduce.py may extend instead)."""
    flags = all_runs()[name][1]
    return shlex.join(["python", "miiii.py", *flags, "--out", os.path.join(RUNS, name), "--threads", str(threads)])


# ---------------------------------------------------------------------------- the sweep table
def sweep_section(runs):
    lines = ["## 1. The sweep: a CPU-scale T_miiii that groks on every task", "",
             "Each row is one run (seed 0, T_miiii, dropout 0.1, GrokFast-EMA alpha 0.98, 4 heads), one BLAS "
             "thread, two runs side by side on the 2-core machine (so minutes are those of a loaded machine). "
             "\"all >= x\": the epoch from which every task's validation accuracy stays >= x to the end of "
             "the run. Per-task epochs (>= 0.95 / >= 0.99) are listed under the table. A run stopped "
             "unfinished (to give the claims the machine) reports what it had logged: its metrics.npz holds "
             "the epochs it finished (for an unfinished extension, the shorter run it extended).", "",
             "| run | p | d | lr | wd | lambda | train frac | epochs | minutes | all >= 0.95 | all >= 0.99 | "
             "final valid acc min / mean |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    details = []
    for name, run in runs.items():
        c = run["config"]
        g95, g99 = grok(run, 0.95), grok(run, 0.99)
        va = run["metrics"]["valid_acc"][-1]
        mins = minutes(run)
        done = int(run["metrics"]["epochs"][-1])
        length = f"{done:,}" + (f" (of {c['epochs']:,} planned: stopped unfinished)" if run["partial"] else "")
        lines.append(f"| `{name}` | {c['p']} | {c['d']} | {c['lr']:g} | {c['wd']:.3g} | {c['lamb']:g} | "
                     f"{c['train_frac']:g} | {length} | {'-' if mins is None else f'{mins:.1f}'} | "
                     f"{fmt_epoch(all_tasks(g95))} | {fmt_epoch(all_tasks(g99))} | {va.min():.3f} / {va.mean():.3f} |")
        per_task = ", ".join(f"{q}: {fmt_epoch(a)}/{fmt_epoch(b)}" for q, a, b in zip(c["moduli"], g95, g99))
        details.append(f"- `{name}` ({flags_of(name)}): {per_task}")
    grokked = [n for n, r in runs.items() if all_tasks(grok(r, 0.99)) is not None]
    findings = ["", "**What the sweep found.** Every task >= 0.99 (staying) in: "
                + (", ".join(f"`{n}` (by {all_tasks(grok(runs[n], 0.99)):,}, {minutes(runs[n]) or 0:.1f} min)"
                             for n in grokked) or "none") + ". "
                "The large primes are the bottleneck: with fewer training pairs per class (p = 37, or p = 61 at "
                "train fraction 0.6-0.7, ~31-44 pairs per class for q = 59) they hover at 0.97-0.99 or stall. "
                "The claims below use p = 61, d 128, lr 3e-3, wd 1, lambda 2, train fraction 0.8 (50 pairs per "
                "class for q = 59), 6,000 epochs; the README's quick demo is the same for 5,000 epochs (5 min "
                "with both cores). Towards the paper's settings (d 256, lr 3e-4, wd 1/3, lambda 0.5): "
                + " ".join(paper_side(runs, n, what) for n, what in (
                    ("sweep-p61-f0.7-d256", "width d = 256 at lr 1e-3, wd 1, lambda 2"),
                    ("sweep-p61-f0.7-paperhp", "the paper's d, lr, wd and lambda at p = 61, train fraction 0.7")))
                + " So a configuration close to the paper's that groks on every task within 30 minutes on this "
                "CPU was " + ("found." if any(n in grokked for n in ("sweep-p61-f0.7-d256", "sweep-p61-f0.7-paperhp"))
                              else "**not found**."), ""]
    return lines + findings + ["Epochs to >= 0.95 / >= 0.99 per task (q: epoch/epoch; - never):", ""] + details + [""]


def paper_side(runs, name, what):
    """One sentence on a sweep point towards the paper's settings."""
    r = runs.get(name)
    what = what[0].upper() + what[1:]
    if r is None:
        return f"{what} (`{name}`) was not run."
    va = r["metrics"]["valid_acc"]
    done = int(r["metrics"]["epochs"][-1])
    return (f"{what} (`{name}`): after {done:,} epochs ({minutes(r) or 0:.0f} min) mean valid acc "
            f"{va[-1].mean():.2f}, min {va[-1].min():.2f}" + (" (stopped unfinished)." if r["partial"] else "."))


# ---------------------------------------------------------------------------- the claims
def by_seed(runs, prefix):
    return [runs[f"{prefix}-s{s}"] for s in SEEDS if runs.get(f"{prefix}-s{s}") is not None]


def task_index(run, primes):
    return [run["config"]["moduli"].index(q) for q in primes if q in run["config"]["moduli"]]


def claims_section(runs):
    """The claims table: our number, the source's, the command, a verdict with one line of why."""
    import numpy as np
    import fft_analysis as fa
    rows, verdicts = [], []
    miiii, nofilter, nodrop = by_seed(runs, "miiii"), by_seed(runs, "miiii-nofilter"), by_seed(runs, "miiii-nodropout")
    masked, basis = by_seed(runs, "masked"), by_seed(runs, "basis")
    nanda, nanda_nofilter, nanda_paper = by_seed(runs, "nanda"), by_seed(runs, "nanda-nofilter"), by_seed(runs, "nanda-paper")

    def row(claim, source, ours, command_name, verdict, why):
        cmd = f"`{flags_of(command_name)}`" if command_name in all_runs() else "-"
        rows.append(f"| {claim} | {source} | {ours} | {cmd} | **{verdict}**: {why} |")
        verdicts.append((verdict, claim))

    # 1. groks on all tasks
    if miiii:
        ends = [all_tasks(grok(r, 0.99)) for r in miiii]
        ends95 = [all_tasks(grok(r, 0.95)) for r in miiii]
        n_all = sum(e is not None for e in ends)
        verdict = "reproduced" if n_all == len(miiii) else ("partly" if all(e is not None for e in ends95) else
                                                            "not reproduced")
        row("T_miiii groks on all tasks with GrokFast", "all 29 at p = 113",
            f"all tasks >= 0.99 in {n_all} of {len(miiii)} seeds, by epoch {mean_sd(ends)}; >= 0.95 by "
            f"{mean_sd(ends95)}", "miiii-s0", verdict,
            f"p = {miiii[0]['config']['p']}: {len(miiii[0]['config']['moduli'])} tasks; final min valid acc "
            + ", ".join(f"{r['metrics']['valid_acc'][-1].min():.3f}" for r in miiii))
    # 2. without GrokFast
    if nofilter:
        ends95 = [all_tasks(grok(r, 0.95)) for r in nofilter]
        final_mean = [float(r["metrics"]["valid_acc"][-1].mean()) for r in nofilter]
        final_min = [float(r["metrics"]["valid_acc"][-1].min()) for r in nofilter]
        mean95 = [first_at(r["metrics"]["epochs"], r["metrics"]["valid_acc"].mean(axis=1), 0.95) for r in nofilter]
        mean95_gf = [first_at(r["metrics"]["epochs"], r["metrics"]["valid_acc"].mean(axis=1), 0.95) for r in miiii]
        converged = sum(m >= 0.95 for m in final_mean)
        verdict = "reproduced" if converged == 0 else ("not reproduced" if converged == len(nofilter) else "partly")
        slower = ""
        if all(e is not None for e in mean95 + mean95_gf) and mean95_gf:
            slower = f"; mean valid acc reached 0.95 {np.mean(mean95) / np.mean(mean95_gf):.1f}x later than with GrokFast"
        row("without GrokFast (lambda 0) it does not converge", "\"did not converge\"",
            f"filter none, {nofilter[0]['config']['epochs']:,} epochs (2x the GrokFast runs): mean valid acc >= 0.95 "
            f"first at {mean_sd(mean95)} (GrokFast: {mean_sd(mean95_gf)}); final mean valid acc "
            + ", ".join(f"{m:.3f}" for m in final_mean) + ", min " + ", ".join(f"{m:.3f}" for m in final_min)
            + f"; every task staying >= 0.95 in {sum(e is not None for e in ends95)} of {len(nofilter)} seeds",
            "miiii-nofilter-s0", verdict,
            ("it converges without the filter at this scale, only later" + slower) if converged
            else "no seed's mean validation accuracy reached 0.95")
    # 3. order 2, 3, 5, 7
    if miiii:
        small = (2, 3, 5, 7)
        per = {q: [grok(r, 0.95)[r["config"]["moduli"].index(q)] for r in miiii] for q in small}
        rest = [min((e for i, e in enumerate(grok(r, 0.95)) if r["config"]["moduli"][i] > 7 and e is not None),
                    default=None) for r in miiii]
        in_order = [all(per[a][k] is not None and per[b][k] is not None and per[a][k] <= per[b][k]
                        for a, b in zip(small, small[1:])) for k in range(len(miiii))]
        first = [per[7][k] is not None and rest[k] is not None and per[7][k] <= rest[k] for k in range(len(miiii))]
        verdict = "reproduced" if all(in_order) and all(first) else ("partly" if any(in_order) or any(first)
                                                                     else "not reproduced")
        row("q = 2, 3, 5, 7 generalise first, in that order", "~340, 470, 8.7k, 12.2k steps; q = 11 ~19k; rest "
            "24k-42k (p = 113)", "; ".join(f"q {q}: {mean_sd(per[q])}" for q in small)
            + f"; first of the others: {mean_sd(rest)} (epochs to >= 0.95)", "miiii-s0", verdict,
            f"in order 2 <= 3 <= 5 <= 7 in {sum(in_order)} of {len(miiii)} seeds; q = 7 before every larger "
            f"prime in {sum(first)} of {len(miiii)}")
    # 4. without dropout
    if nodrop:
        solved = [[q for q, e in zip(r["config"]["moduli"], grok(r, 0.95)) if e is not None] for r in nodrop]
        only23 = [set(sv) <= {2, 3} for sv in solved]
        verdict = "reproduced" if all(only23) else ("partly" if any(only23) else "not reproduced")
        row("without dropout only q = 2, 3 generalise", "paper",
            "tasks >= 0.95 at the end, per seed: " + "; ".join(
                (", ".join(map(str, sv)) if len(sv) <= 8 else f"{len(sv)} of {len(r['config']['moduli'])} tasks")
                for sv, r in zip(solved, nodrop)), "miiii-nodropout-s0", verdict,
            f"only 2 and 3 in {sum(only23)} of {len(nodrop)} seeds; final mean valid acc "
            + ", ".join(f"{r['metrics']['valid_acc'][-1].mean():.3f}" for r in nodrop))
    # 5. T_masked
    if masked and miiii:
        unmasked = [i for i, q in enumerate(masked[0]["config"]["moduli"]) if q > 7]
        m_end = [all_tasks(grok(r, 0.95), unmasked) for r in masked]
        u_end = [all_tasks(grok(r, 0.95), unmasked) for r in miiii]
        firsts = []
        for r in masked:
            g = grok(r, 0.95)
            order = sorted((g[i], r["config"]["moduli"][i]) for i in unmasked if g[i] is not None)
            firsts.append([q for _, q in order[:4]])
        ratio = (np.mean([e for e in m_end if e]) / np.mean([e for e in u_end if e])
                 if any(m_end) and any(u_end) else None)
        first_ok = [set(f) == {11, 13, 17, 19} for f in firsts]
        delayed_ok = ratio is not None and ratio <= 1.25
        verdict = "reproduced" if delayed_ok and all(first_ok) else ("partly" if delayed_ok or any(first_ok)
                                                                    else "not reproduced")
        row("T_masked: the other tasks not notably delayed; q in {11, 13, 17, 19} first", "paper",
            f"all unmasked tasks >= 0.95 by {mean_sd(m_end)} (T_miiii, same tasks: {mean_sd(u_end)}"
            + (f"; ratio {ratio:.2f}" if ratio else "") + "); first four unmasked per seed: "
            + "; ".join(", ".join(map(str, f)) for f in firsts), "masked-s0", verdict,
            f"not delayed (ratio <= 1.25): {'yes' if delayed_ok else 'no'}; {{11, 13, 17, 19}} first in "
            f"{sum(first_ok)} of {len(masked)} seeds")
    # 6-8. embeddings
    def a(r, key):
        return (r.get("analysis") or {}).get(key)
    if basis and all(r.get("analysis") for r in basis):
        counts = [len(a(r, "key_freqs_authors") or []) for r in basis if a(r, "key_freqs_authors") is not None]
        ours = [len(a(r, "key_freqs") or []) for r in basis if a(r, "key_freqs") is not None]
        mixing = [a(r, "active_freqs_final") for r in basis]
        verdict = "reproduced" if counts and max(counts) == 0 else "not reproduced"
        row("T_basis: no periodicity", "0 significant embedding bins (authors' rule)",
            f"authors' rule: {mean_sd(counts, '{:.1f}')} bins; ours (mean + 2 std): {mean_sd(ours, '{:.1f}')}; "
            f"mixing frequencies active at the end: {mean_sd(mixing, '{:.1f}')}", "basis-s0", verdict,
            "mean + 1 std over p//2 + 1 norms passes ~16 % of bins of pure noise, so a count of 0 needs more "
            "than the absence of structure" if counts and max(counts) > 0 else "no bin passes")
    if nanda and miiii and all(r.get("analysis") for r in nanda + miiii):
        cos_n = [a(r, "pos_cos37") for r in nanda]
        cos_m = [a(r, "pos_cos37") for r in miiii]
        r_n, r_m = [a(r, "pos_corr") for r in nanda], [a(r, "pos_corr") for r in miiii]
        ok = all(v is not None for v in cos_n + cos_m)
        close = ok and abs(np.mean(cos_n) - 0.95) <= 0.15 and abs(np.mean(cos_m) + 0.64) <= 0.15
        ordered = ok and np.mean(cos_n) > np.mean(cos_m)
        row("positional similarity T_nanda vs T_miiii", "0.95 vs -0.64 (authors' cosine, first 37 dims)",
            f"cosine-37: T_nanda {mean_sd(cos_n, '{:.2f}')}, T_miiii {mean_sd(cos_m, '{:.2f}')}; our Pearson "
            f"(all dims): {mean_sd(r_n, '{:.2f}')} vs {mean_sd(r_m, '{:.2f}')}", "nanda-s0",
            "reproduced" if close else ("partly" if ordered else "not reproduced"),
            "within 0.15 of both" if close else ("T_nanda's positions more alike than T_miiii's, as in the talk, "
                                                "but not the talk's values" if ordered else "not the talk's pattern"))
        kn = [len(a(r, "key_freqs_authors") or []) for r in nanda]
        km = [len(a(r, "key_freqs_authors") or []) for r in miiii]
        kb = [len(a(r, "key_freqs_authors") or []) for r in basis]
        on, om = [len(a(r, "key_freqs") or []) for r in nanda], [len(a(r, "key_freqs") or []) for r in miiii]
        close = abs(np.mean(kn) - 5) <= 2 and np.mean(km) > np.mean(kn) and (not kb or np.mean(kb) < np.mean(kn))
        row("token-embedding frequencies", "T_nanda 5, T_miiii 11, T_basis 0 (authors' rule)",
            f"authors' rule: T_nanda {mean_sd(kn, '{:.1f}')}, T_miiii {mean_sd(km, '{:.1f}')}, T_basis "
            f"{mean_sd(kb, '{:.1f}')}; ours: T_nanda {mean_sd(on, '{:.1f}')}, T_miiii {mean_sd(om, '{:.1f}')}",
            "nanda-s0", "partly" if close else "not reproduced",
            "T_miiii uses more frequencies than T_nanda" if np.mean(km) > np.mean(kn) else
            "T_miiii does not use more frequencies than T_nanda")
    # 9. the Omega spike, by our rule and by the talk's
    if miiii and all(r.get("omega") is not None and r.get("analysis") for r in miiii):
        peaks, finals, peak_at, talk_cols = [], [], [], []
        for r in miiii:
            mixing = mixing_series(r["omega"], r["config"]["p"])
            i = int(np.argmax(mixing))
            peaks.append(int(mixing[i]))
            finals.append(int(mixing[-1]))
            peak_at.append(int(r["omega"]["epochs"][i]))
            shown = ((a(r, "omega_talk") or {}).get("talk_columns") or {})
            talk_cols.append([shown[k]["count"] for k in sorted(shown, key=int)])
        grok_end = [all_tasks(grok(r, 0.95)) for r in miiii]
        ours_fell = [f <= 0.8 * p for f, p in zip(finals, peaks)]
        talk_shape = [len(c) == 5 and c[0] == 0 and c[1] == 0 and max(c[2:4]) > 0 and c[4] < max(c[2:4])
                      for c in talk_cols]
        n_ok = all(ours_fell) + all(talk_shape)
        verdict = {2: "reproduced", 1: "partly", 0: "not reproduced"}[n_ok]
        printed = "; ".join(", ".join(str(fa_printed(c)) for c in cs) for cs in talk_cols)
        row("the Omega spike: active frequencies rise during generalisation and fall after",
            "Table 1: 0, 0, 10, 18, 10 (epochs 256 .. 65,536; the talk's rule, printed)",
            f"ours (mixing frequencies active in the model): peak {mean_sd(peaks, '{:.1f}')} at epoch "
            f"{mean_sd(peak_at)}, {mean_sd(finals, '{:.1f}')} at the end (all tasks >= 0.95 at "
            f"{mean_sd(grok_end)}); the talk's rule at its columns 81 .. 161, counts per seed: "
            + "; ".join(", ".join(map(str, c)) for c in talk_cols) + f" (printed: {printed})",
            "miiii-s0", verdict,
            f"our count falls to <= 80 % of its peak in {sum(ours_fell)} of {len(peaks)} seeds; the talk's rule "
            f"gives 0, 0, rise, fall in {sum(talk_shape)} of {len(talk_cols)} (its zeros come from normalising each "
            "bin over time, see SPEC); Table 1 per seed below")
    # 10. Nanda et al.'s T_nanda
    if nanda_paper:
        mem = [first_at(r["metrics"]["epochs"], r["metrics"]["train_acc"][:, 0], 0.99) for r in nanda_paper]
        gen = [grok(r, 0.99)[0] for r in nanda_paper]
        kf = [len(a(r, "key_freqs_authors") or []) for r in nanda_paper]
        ko = [len(a(r, "key_freqs") or []) for r in nanda_paper]
        tasks = [((a(r, "progress") or {}).get("tasks") or {}) for r in nanda_paper]
        phases = [fa.task_phases(r["progress"], 0) if "progress" in r else {} for r in nanda_paper]  # today's rules
        waves = [len(next(iter(t.values()))["key_freqs_sum"] or []) if t else None for t in tasks]
        have = all(phases)
        in_order = [in_nanda_order(ph, g) for ph, g in zip(phases, gen)] if have else [False]
        row("T_nanda at Nanda et al.'s setting scaled to CPU (frac 0.3, lr 1e-3, wd 1, no GrokFast): "
            "memorisation / circuit formation / clean-up", "~1.4k / 9.4k / 14k epochs at p = 113, 5 key frequencies",
            f"p = {nanda_paper[0]['config']['p']}: train acc >= 0.99 (memorised) at {mean_sd(mem)}; valid acc "
            f">= 0.99 (clean-up done) at {mean_sd(gen)}; key frequencies: authors' rule {mean_sd(kf, '{:.1f}')}, "
            f"ours {mean_sd(ko, '{:.1f}')}"
            + (f"; progress-measure phase starts: memorisation {mean_sd([ph.get('memorisation') for ph in phases])}, "
               f"circuit formation {mean_sd([ph.get('circuit_formation') for ph in phases])}, clean-up "
               f"{mean_sd([ph.get('cleanup') for ph in phases])}; key frequencies (x0 + x1 waves holding 90 % "
               f"of the logit energy): {mean_sd(waves, '{:.1f}')}" if have else ""),
            "nanda-paper-s0", "reproduced" if all(in_order) else "partly" if any(g is not None for g in gen) or have
            else "not reproduced",
            (f"the phase rules find memorisation in {sum(ph.get('memorisation') is not None for ph in phases)}, "
             f"circuit formation in "
             f"{sum(ph.get('circuit_formation') is not None for ph in phases)} and clean-up in "
             f"{sum(ph.get('cleanup') is not None for ph in phases)} of {len(phases)} seeds, in that order and "
             f"before validation accuracy stays >= 0.99 in {sum(in_order)}; "
             if have else "no progress-measure records; ")
            + f"{sum(g is not None for g in gen)} of {len(gen)} seeds generalised (>= 0.99) within "
            f"{nanda_paper[0]['config']['epochs']:,} epochs at p = {nanda_paper[0]['config']['p']} (Nanda et al.: "
            "~14k at p = 113, with about 3.7x our training pairs, 3,830 against 1,044)"
            + ("; the timings differ from the paper's, the sequence is the same" if all(in_order) else ""))
    # 11. GrokFast speed-up
    if nanda and nanda_nofilter:
        with_gf = [grok(r, 0.99)[0] for r in nanda]
        without = [grok(r, 0.99)[0] for r in nanda_nofilter]
        ok = [w for w in with_gf if w] and [w for w in without if w]
        speedup = np.mean([w for w in without if w]) / np.mean([w for w in with_gf if w]) if ok else None
        row("GrokFast-EMA speeds up grokking against no filter", "up to ~50x (GrokFast paper, their task and optimiser)",
            f"T_nanda p = 59, epochs to >= 0.99: GrokFast-EMA (lambda 2) {mean_sd(with_gf)}, no filter "
            f"{mean_sd(without)}" + (f"; speed-up {speedup:.1f}x" if speedup else ""), "nanda-nofilter-s0",
            "partly" if speedup and speedup > 1.5 else "not reproduced",
            "faster, but far from 50x; GrokFast's 50x used Adam with coupled L2, not AdamW with decoupled decay"
            if speedup and speedup > 1.5 else "no clear speed-up at this scale")
    head = ["## 2. The talk's claims, side by side", "",
            "Each row: our number (mean ± sd over seeds 0, 1, 2 unless said), the source's, the command of "
            "seed 0 (the others differ only in `--seed`), and a verdict with the rule that gave it. Grokking "
            "epochs are the first logged epoch from which validation accuracy stays at or above the level.", "",
            "| claim | talk / paper | ours | command (seed 0) | verdict |", "|---|---|---|---|---|"]
    return head + rows + [""], verdicts


def summary(verdicts):
    """Three lines: which claims reproduced, partly, not (from the verdicts of the claims table)."""
    lines = ["**In three lines** (from the verdicts below):", ""]
    for verdict in ("reproduced", "partly", "not reproduced"):
        claims = [c for v, c in verdicts if v == verdict]
        lines.append(f"- **{verdict.capitalize()}** ({len(claims)}): " + ("; ".join(claims) if claims else "none") + ".")
    return lines


def fa_printed(count):
    import fft_analysis as fa
    return fa.talk_printed(int(count))


def first_at(epochs, values, level):
    """First logged epoch with value >= level (not necessarily staying), or None."""
    import numpy as np
    import fft_analysis as fa
    return fa.first_epoch(epochs, np.asarray(values) >= level)


def mixing_series(omega, p):
    """Our Omega count (mixing frequencies active in the model) at each snapshot of omega.npz."""
    import fft_analysis as fa
    return (omega["active"] & fa.interaction_mask(int(p))[None, :]).sum(axis=1)


def filters_section(runs):
    """The GrokFast filters compared (issue 12): epochs to 0.95 / 0.99 on every task, wall time."""
    import numpy as np
    lines = ["## 4. GrokFast filters compared", "",
             "Epochs from which validation accuracy stays >= 0.95 / >= 0.99 on every task, mean ± sd over seeds "
             "0-2, and minutes per run (one BLAS thread, two runs side by side as a rule; each run's wall.json says how many "
             "shared the machine, and some of the `ema` and `none` runs shared it with three or were paused for "
             "timing, so compare minutes only within a load). Fairness: all use AdamW with "
             "decoupled weight decay; GrokFast's ~50x headline was measured with Adam and coupled L2 weight "
             "decay, where the EMA also filters the decay term, so no 50x is expected here. `bandpass` and "
             "`gap` are the two dynamic variants (README, *Gradient filters*); `ema0.9` is plain EMA at alpha 0.9, "
             "which is the band-pass filter with the slow component added back (g + lambda (f - s) + lambda s = "
             "g + lambda f): a control that tells removing the slow component from amplifying the faster one. The epoch from which accuracy "
             "*stays* >= 0.99 on every task moves with one late dip of one task (T_miiii: 17 tasks, 744 validation "
             "pairs each), so read the 0.95 and 0.99 columns together; figure `filters_compared` below shows the "
             "curves. One command per task makes every run of its table: `python experiments/reproduce.py --only "
             "filters` (T_nanda) and `--only filters-miiii` (T_miiii).", ""]
    for task, prefix, nofilter in (("T_nanda (p = 59, d 128, lr 1e-3, wd 1, lambda 2, dropout 0.1; `none` ran "
                                    "10,000 epochs, `ema` 3,000, the others 4,000)", "nanda", "nanda-nofilter"),
                                   ("T_miiii (p = 61, d 128, lr 3e-3, wd 1, lambda 2, train 0.8; `none` ran "
                                    "12,000 epochs, the others 6,000)", "miiii", "miiii-nofilter")):
        kinds = {"none": nofilter, "ema": prefix, **{k: f"{prefix}-{k}" for k in FILTER_VARIANTS}}
        made, reached = {k: by_seed(runs, v) for k, v in kinds.items()}, {}
        lines += [f"**{task}**", "", "| filter | epochs to >= 0.95 | epochs to >= 0.99 | final valid acc min / mean "
                  "(mean over seeds) | minutes | command (seed 0) |", "|---|---|---|---|---|---|"]
        for kind, rs in made.items():
            if not rs:
                lines.append(f"| `{kind}` | not run | | | | `{flags_of(kinds[kind] + '-s0')}` |")
                continue
            e95 = [all_tasks(grok(r, 0.95)) for r in rs]
            e99 = [all_tasks(grok(r, 0.99)) for r in rs]
            mins = [minutes(r) for r in rs]
            lo = np.mean([r["metrics"]["valid_acc"][-1].min() for r in rs])
            mean = np.mean([r["metrics"]["valid_acc"][-1].mean() for r in rs])
            lines.append(f"| `{kind}` | {mean_sd(e95)} | {mean_sd(e99)} | {lo:.3f} / {mean:.3f} | "
                         f"{mean_sd(mins, '{:.1f}')} | `{flags_of(kinds[kind] + '-s0')}` |")
            reached[kind] = {level: ([e for e in es if e is not None], len(es)) for level, es in ((0.95, e95), (0.99, e99))}
        lines += [""] + [speed_line({k: v[level] for k, v in reached.items()}, level) for level in (0.95, 0.99)] + [""]
    strength = [(lamb, runs.get(name)) for lamb, name in (("2", "miiii-bandpass-s0"), ("1", "miiii-bandpass-lamb1-s0"),
                                                        ("0.5", "miiii-bandpass-lamb0.5-s0"))]
    if all(r is not None for _, r in strength):
        like_none = (runs.get("miiii-nofilter-s0") is not None and all_tasks(grok(runs["miiii-nofilter-s0"], 0.95)) is None
                     and all(all_tasks(grok(r, 0.95)) is None for _, r in strength))
        fast, slow = by_seed(runs, "miiii-ema0.9"), by_seed(runs, "miiii")
        fast_fails = (len(fast) == len(SEEDS) and all(all_tasks(grok(r, 0.95)) is None for r in fast)
                      and len(slow) == len(SEEDS) and all(all_tasks(grok(r, 0.95)) is not None for r in slow))
        parts = [f"lambda {lamb}: every task >= 0.95 from {fmt_epoch(all_tasks(grok(r, 0.95)))}, >= 0.99 from "
                 f"{fmt_epoch(all_tasks(grok(r, 0.99)))}, final valid acc min {r['metrics']['valid_acc'][-1].min():.3f} "
                 f"/ mean {r['metrics']['valid_acc'][-1].mean():.3f}" for lamb, r in strength]
        lines += ["Band-pass strength on T_miiii (seed 0, 6,000 epochs; `-` = not reached): " + "; ".join(parts)
                  + f". Same seed, `ema` at lambda 2: >= 0.95 from {fmt_epoch(all_tasks(grok(runs['miiii-s0'], 0.95)))}"
                  + (f"; `none` ({runs['miiii-nofilter-s0']['config']['epochs']:,} epochs): >= 0.95 from "
                     f"{fmt_epoch(all_tasks(grok(runs['miiii-nofilter-s0'], 0.95)))}" if runs.get("miiii-nofilter-s0") else "")
                  + "." + (" Read with `ema0.9`, which amplifies the steady component as `ema` does and also the "
                           "faster band (periods of ~10 to a few hundred steps) that the band-pass filter amplifies, "
                           "and which fails on T_miiii in every seed: T_miiii needs the steady component amplified "
                           "(`none` fails) and the faster band left alone (`ema0.9` and `bandpass` fail), while on "
                           "T_nanda the faster band speeds grokking up (`bandpass` and `ema0.9` in the T_nanda table above)."
                           if like_none and fast_fails else ""),
                  ""] if runs.get("miiii-s0") else []
    return lines


def speed_line(reached, level=0.99):
    """One line: each filter's speed against `ema` (mean epochs to >= level on every task), and which
    did not get there in every seed (a variant that is not faster is reported as such).
    reached: {filter: (epochs of the seeds that got there, number of seeds)}."""
    import numpy as np
    base = reached.get("ema", ([], 0))[0]
    if not base:
        return f"`ema` did not reach >= {level} on every task in any seed: no speed ratios."
    parts = [f"`ema` itself got there in {len(base)} of {reached['ema'][1]} seeds"]
    for kind, (got, n) in reached.items():
        if kind == "ema":
            continue
        if not got:
            parts.append(f"`{kind}` never ({n} of {n} seeds short)")
            continue
        ratio = np.mean(base) / np.mean(got)
        word = "faster" if ratio > 1.1 else "slower" if ratio < 1 / 1.1 else "about as fast"
        parts.append(f"`{kind}` {ratio:.2f}x, {word}" + (f", {n - len(got)} of {n} seeds short" if len(got) < n else ""))
    return (f"Speed to >= {level} against `ema` (its mean epochs to >= {level} on every task over the mean of "
            "each filter's, seeds that got there; within 10 % counts as about as fast): " + "; ".join(parts) + ".")


PROGRESS_GROUPS = (  # (label, run prefix, tasks shown: moduli, None = every task)
    ("T_nanda p = 59, GrokFast-EMA", "nanda", None),
    ("T_nanda p = 59, no filter", "nanda-nofilter", None),
    ("T_nanda p = 59, Nanda et al.'s setting (train 0.3, no GrokFast, no dropout)", "nanda-paper", None),
    ("T_miiii p = 61, GrokFast-EMA", "miiii", (2, 3, 5, 7, 59)),
    ("T_masked p = 61 (q = 2, 3, 5, 7 not trained)", "masked", (11, 59)),
)


def in_nanda_order(phases, grokked):
    """Nanda et al.'s sequence: memorisation <= circuit formation <= clean-up <= the epoch from which
    validation accuracy stays >= 0.99; False when any of them is missing. phases: fa.task_phases."""
    epochs = [*phases.values(), grokked]
    return None not in epochs and epochs == sorted(epochs)


def progress_section(runs):
    """Nanda et al.'s progress measures (issue 12): the phase starts per task beside the grokking epoch."""
    import fft_analysis as fa
    lines = ["## 6. Progress measures (Nanda et al. 2023)", "",
             "Phase starts found by the rules of the README (*Progress measures*) on the restricted, excluded and "
             "training losses at the ~63 recorded epochs of each run, mean ± sd over the seeds that have the "
             "records (runs made before the progress hook have none), beside the logged epoch from which the "
             "task's validation accuracy stays >= 0.99. Key waves: the fewest 2D waves holding 90 % of the final "
             "logits' energy (T_nanda: (k, k) waves when it has grokked). Figures `progress_*` below.", "",
             "| runs | task | memorisation | circuit formation | clean-up | stays >= 0.99 | key waves |",
             "|---|---|---|---|---|---|---|"]
    every, spans = [], {}  # every: (phases, epoch of staying >= 0.99) of each task of each run
    for label, prefix, shown in PROGRESS_GROUPS:
        rs = [r for r in by_seed(runs, prefix) if "progress" in r]
        if not rs:
            continue
        moduli = [int(q) for q in rs[0]["progress"]["moduli"]]
        seeds = ", ".join(r["name"].rsplit("-s", 1)[1] for r in rs)
        phases = [[fa.task_phases(r["progress"], t) for t in range(len(moduli))] for r in rs]  # [run][task]
        g99 = [grok(r, 0.99) for r in rs]  # [run][task]
        for q in (moduli if shown is None else [q for q in shown if q in moduli]):
            t = moduli.index(q)
            keys = [int((r["progress"]["key_waves"][:, 0] == t).sum()) for r in rs]
            lines.append(f"| {label} (seeds {seeds}) | mod {q} | " + " | ".join(
                mean_sd([ph[t][name] for ph in phases]) for name in fa.PHASES)
                + f" | {mean_sd([g[t] for g in g99])} | {mean_sd(keys, '{:.1f}')} |")
        every += [(ph, g) for ph_run, g_run in zip(phases, g99) for ph, g in zip(ph_run, g_run)]
        if prefix.startswith("nanda"):
            spans[label] = [ph["cleanup"] - ph["circuit_formation"] for ph_run in phases for ph in ph_run
                            if ph["cleanup"] is not None and ph["circuit_formation"] is not None]
    complete = [(ph, g) for ph, g in every if g is not None and None not in ph.values()]
    order_ok = sum(in_nanda_order(ph, g) for ph, g in complete)
    lines += ["", f"Over every task of every run in this table ({len(every)} run-tasks): circuit formation "
              f"found in {sum(ph['circuit_formation'] is not None for ph, _ in every)}, clean-up in "
              f"{sum(ph['cleanup'] is not None for ph, _ in every)}; of the {len(complete)} that grokked "
              f"and have all three starts, {order_ok} have them in Nanda et al.'s order, memorisation <= circuit "
              "formation <= clean-up <= the epoch from which validation accuracy stays >= 0.99. Epochs from the "
              "start of circuit formation to the start of clean-up on T_nanda: "
              + "; ".join(f"{k}: {mean_sd(v)}" for k, v in spans.items())
              + " (Nanda et al., p = 113: ~8,000).", ""]
    return lines


def collapse_section(runs):
    """Softmax collapse (Prieto et al. 2025) on the default T_nanda run and one without weight decay."""
    import numpy as np
    pair = [r for r in (runs.get("nanda-s0"), runs.get("nanda-wd0-s0")) if r is not None]
    if not pair or not all("collapse_grad" in r["metrics"] for r in pair):
        return []
    lines = ["## 5. Softmax collapse", "",
             "Share of training targets whose naive float32 softmax gradient `p_t - 1` would be exactly 0 "
             "(`collapse_grad` in metrics.npz), at the end of the run, with the final validation accuracy "
             "(figure `softmax_collapse` below):", ""]
    for r in pair:
        m = r["metrics"]
        lines.append(f"- `{r['name']}` (wd {r['config']['wd']:g}): {m['collapse_grad'][-1].mean():.3f} of the "
                     f"targets collapsed (max {np.max(m['collapse_grad']):.3f} during training); final valid acc "
                     f"{m['valid_acc'][-1].mean():.3f}.")
    lines += ["", "Without weight decay the logits grow until a float32 softmax would have stopped learning "
              "from every training target; this code's loss (the target's gradient from the other classes' "
              "mass) keeps a gradient there, and the run grokked. Prieto et al. 2025 report that a naive float32 "
              "implementation stalls at that point; that was not run here.", ""]
    return lines


def table1_section(runs):
    """Table 1 of each T_miiii seed, as figures.table1_markdown writes it."""
    import figures
    lines = ["### Table 1, per seed", ""]
    for r in by_seed(runs, "miiii") + by_seed(runs, "masked"):
        if r.get("analysis"):
            lines += [f"`{r['name']}`:", "", figures.table1_markdown(r["analysis"], r["name"]).strip(), ""]
    return lines


# ---------------------------------------------------------------------------- figures
def draw_figures(runs, out):
    """docs/results/: the sweep curves, seed 0's tasks and Omega, and the filter comparisons."""
    import numpy as np
    import figures
    from matplotlib.figure import Figure
    os.makedirs(out, exist_ok=True)
    written = []

    def save(fig, stem):
        figures.save(fig, out, stem, ["png"], dpi=90)
        written.append(stem)

    sweep = {k: r for k, r in runs.items() if k.startswith("sweep-")}
    if sweep:
        fig = Figure(figsize=(8, 4.5), layout="constrained")
        ax = fig.subplots()
        for name, r in sweep.items():
            ep, va = r["metrics"]["epochs"], r["metrics"]["valid_acc"]
            keep = ep > 0
            ax.plot(ep[keep], va[keep].min(axis=1), label=name.replace("sweep-", ""), linewidth=1.2)
        ax.set_xscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("min over tasks of validation accuracy")
        ax.axhline(0.99, color="grey", linestyle=":", linewidth=0.8)
        ax.legend(fontsize=7, frameon=False)
        ax.set_title("The sweep: the slowest task's validation accuracy (T_miiii, seed 0)")
        save(fig, "sweep_min_valid_acc")
    for name, stem, config in (("miiii-s0", "miiii", ""), ("paper16k-miiii-s0", "paper", " (paper config)")):
        r = runs.get(name)
        if r is None:
            continue
        task, moduli = f"T_miiii p = {r['config']['p']}{config}", r["config"]["moduli"]
        save(figures.fig_task_accuracy(r["metrics"], moduli, task=task), f"{stem}_task_accuracy")
        if r.get("omega") is not None:
            save(figures.fig_omega_and_accuracy(r["omega"], r["metrics"], moduli, task=task,
                                                talk=figures.talk_omega(r)), f"{stem}_omega_and_accuracy")
    pair = [r for r in (runs.get("nanda-s0"), runs.get("nanda-wd0-s0")) if r is not None]
    if pair and all("collapse_grad" in r["metrics"] for r in pair):
        fig = Figure(figsize=(8, 4.5), layout="constrained")
        ax = fig.subplots()
        for i, r in enumerate(pair):
            ep = r["metrics"]["epochs"]
            keep = ep > 0
            label = f"wd {r['config']['wd']:g}"
            ax.plot(ep[keep], r["metrics"]["collapse_grad"][keep, 0], color=f"C{i}", label=f"{label}: share of "
                    "targets with a zero naive float32 gradient")
            ax.plot(ep[keep], r["metrics"]["train_loss"][keep, 0], color=f"C{i}", linestyle=":",
                    label=f"{label}: training loss / ln p")
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_ylim(0, 1.5)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7, frameon=False)
        ax.set_title("Softmax collapse (Prieto et al. 2025), T_nanda p = 59, with and without weight decay")
        save(fig, "softmax_collapse")
    for name, task, moduli in (("nanda-paper-s1", "T_nanda", None), ("nanda-s0", "T_nanda", None),
                               ("miiii-s1", "T_miiii", (2, 7))):
        r = runs.get(name)
        if r is None or "progress" not in r:
            continue
        qs = [int(q) for q in r["progress"]["moduli"]]
        for q in (moduli or qs[:1]):
            t = qs.index(q)
            save(figures.fig_progress_measures(r["progress"], r["metrics"], f"{name}: {task}", t),
                 f"progress_{name.replace('-', '_')}" + (f"_q{q}" if moduli else ""))
    kinds = {"none": "{}-nofilter", "ema": "{}", **{k: "{}-" + k for k in FILTER_VARIANTS}}
    if any(by_seed(runs, f"{prefix}-{k}") for prefix in ("nanda", "miiii") for k in FILTER_VARIANTS):
        fig = Figure(figsize=(10, 4.5), layout="constrained")
        axes = fig.subplots(1, 2, sharey=True)
        for ax, (prefix, title) in zip(axes, (("nanda", "T_nanda p = 59"), ("miiii", "T_miiii p = 61"))):
            for i, (kind, pattern) in enumerate(kinds.items()):
                for j, r in enumerate(by_seed(runs, pattern.format(prefix))):
                    ep, va = r["metrics"]["epochs"], r["metrics"]["valid_acc"]
                    keep = (ep > 0) & (ep <= 6000)  # `none` ran longer; the others' common span
                    ax.plot(ep[keep], va[keep].min(axis=1), color=f"C{i}", linewidth=0.9, alpha=0.8,
                            label=kind if j == 0 else None)
            ax.set_xscale("log")
            ax.set_xlabel("epoch")
            ax.axhline(0.99, color="grey", linestyle=":", linewidth=0.8)
            ax.set_title(f"{title}, seeds 0-2", fontsize=10)
        axes[0].set_ylabel("min over tasks of validation accuracy")
        axes[1].legend(fontsize=8, frameon=False, loc="upper left")
        fig.suptitle("GrokFast filters compared: " + ", ".join(kinds), fontsize=10)
        save(fig, "filters_compared")
    for prefix, title in (("miiii", "T_miiii"), ("nanda", "T_nanda")):
        groups = {k: by_seed(runs, k) for k in (prefix, f"{prefix}-nofilter", f"{prefix}-nodropout", f"{prefix}-paper")}
        groups = {k: v for k, v in groups.items() if v}
        if len(groups) < 2:
            continue
        fig = Figure(figsize=(8, 4.5), layout="constrained")
        ax = fig.subplots()
        for i, (k, rs) in enumerate(groups.items()):
            for j, r in enumerate(rs):
                ep, va = r["metrics"]["epochs"], r["metrics"]["valid_acc"]
                keep = ep > 0
                ax.plot(ep[keep], va[keep].mean(axis=1), color=f"C{i}", linewidth=1, alpha=0.8,
                        label=k if j == 0 else None)
        ax.set_xscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean validation accuracy over tasks")
        ax.legend(fontsize=8, frameon=False)
        ax.set_title(f"{title}: with GrokFast-EMA, without a filter, without dropout (seeds 0-2)")
        save(fig, f"{prefix}_filters")
    return written


def write_results(path=os.path.join(ROOT, "RESULTS.md")):
    runs = {name: load(name) for name in all_runs()}
    runs = {k: v for k, v in runs.items() if v is not None and (k.startswith("sweep-") or not v["partial"])}
    # the paper-scale campaign (group paper) runs for days outside the working tree: its own section
    missing = [name for name, (group, _) in all_runs().items() if name not in runs and group != "paper"]
    written = draw_figures(runs, os.path.join(ROOT, "docs", "results"))
    sweep = {k: v for k, v in runs.items() if k.startswith("sweep-")}
    lines = ["# RESULTS: the talk's claims, measured with this code", "",
             "Regenerate with `python experiments/reproduce.py` (runs what is missing, two at a time with one "
             "BLAS thread each, then writes this file and `docs/results/`); `--report` only redraws from the "
             "committed run directories in `results/runs/` (config.json, metrics.npz, the analysis records, "
             "analysis.json, wall.json), `--commands` prints the runs' plain `python miiii.py` commands. "
             "Machine: 2-core AMD EPYC (AVX-512), NumPy with OpenBLAS, no GPU (none was lent to the sessions "
             "that made these runs). Every row of the claims table is at CPU scale; the paper's configuration "
             + (f"ran on the CPU for its first {runs['paper16k-miiii-s0']['config']['epochs']:,} of 65,536 epochs "
                "(section 3)." if "paper16k-miiii-s0" in runs else "was not run (section 3)."), ""]
    if missing:
        lines += [f"Runs not (yet) made, so their rows are absent: {', '.join(missing)}.", ""]
    claims, verdicts = claims_section(runs)
    lines += summary(verdicts) + [""]
    lines += sweep_section(sweep) if sweep else []
    lines += claims + table1_section(runs)
    lines += paper_section(runs)
    lines += filters_section(runs) + collapse_section(runs) + progress_section(runs) + ["## Figures", ""]
    lines += [f"![{stem}](docs/results/{stem}.png)" for stem in written] + [""]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def paper_section(runs):
    """Section 3: the paper's configuration, as far as it ran on this CPU."""
    import numpy as np
    import figures
    r = runs.get("paper16k-miiii-s0")
    if r is None:
        return ["## 3. The paper-scale run", "", PAPER_SCALE, ""]
    cfg, m = r["config"], r["metrics"]
    moduli, E = cfg["moduli"], int(cfg["epochs"])
    va = m["valid_acc"][-1]
    g95, g99 = grok(r, 0.95), grok(r, 0.99)
    solved = [(q, e) for q, e in zip(moduli, g99) if e is not None]
    lines = [f"## 3. The paper-scale run: the paper's configuration on the CPU, {E:,} of 65,536 epochs", "",
             f"`{flags_of('paper16k-miiii-s0', threads=2)}`: p = {cfg['p']} "
             f"({len(moduli)} tasks), d = {cfg['d']}, lr {cfg['lr']:g}, wd {cfg['wd']:.4g}, lambda {cfg['lamb']:g}, "
             f"dropout {cfg['dropout']:g}, train fraction {cfg['train_frac']:g}; "
             + (f"{minutes(r):.0f} minutes with both cores. " if minutes(r) else "") + "No GPU was lent, so the talk's "
             f"65,536 epochs were not reached; `python miiii.py --resume {os.path.join(RUNS, 'paper16k-miiii-s0')} "
             "--epochs 65536` continues this run where its checkpoint is (checkpoints stay out of git), bit-identical "
             "to a 65,536-epoch run.", "",
             f"After {E:,} epochs: validation accuracy min {va.min():.3f} / mean {va.mean():.3f} over the tasks; "
             f"{sum(e is not None for e in g95)} of {len(moduli)} tasks stay >= 0.95 and {len(solved)} stay >= 0.99 "
             "to the end" + (" (" + ", ".join(f"q = {q} from {e:,}" for q, e in solved) + ")" if solved else "")
             + ("; >= 0.95, by epoch: " + ", ".join(f"q = {q} from {e:,}" for q, e in sorted(
                 ((q, e) for q, e in zip(moduli, g95) if e is not None), key=lambda qe: qe[1])) if any(g95) else "")
             + f"; training accuracy min {m['train_acc'][-1].min():.3f} / mean {m['train_acc'][-1].mean():.3f}. "
             "Figures `paper_task_accuracy` and `paper_omega_and_accuracy` below.", ""]
    if r.get("analysis"):
        lines += ["Table 1 of this run. The talk's rule spreads its 168 columns over the run's own length, so "
                  f"at {E:,} epochs its columns are not the talk's epochs; the per-epoch rows are comparable.", "",
                  figures.table1_markdown(r["analysis"], "this run").strip(), ""]
    return lines


PAPER_SCALE = ("No GPU was available to the session that made these runs (the device draw lent none), and the "
               "paper's configuration takes ~0.25 s per step on this CPU (about 5 hours for 65,536 epochs, "
               "more under load), so it was not run; every claim above is tested at CPU scale only. "
               "`bash benchmarks/gpu_check.sh` and `python miiii.py --task miiii --gpu` are ready for a GPU.")


def analyse(names):
    """analysis.json for each finished run (fft_analysis.py needs params.npz, which stays local), and
    for any other finished run that lacks one (made by another invocation, or by hand)."""
    names = set(names) | {n for n, (group, flags) in all_runs().items() if group != "sweep"
                          and is_complete(n, flags) and not os.path.exists(os.path.join(ROOT, RUNS, n, "analysis.json"))}
    if names:
        subprocess.run([sys.executable, "fft_analysis.py", *[os.path.join(RUNS, n) for n in sorted(names)]], cwd=ROOT,
                       stdout=subprocess.DEVNULL, check=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--commands", action="store_true", help="print the missing runs' commands and exit")
    ap.add_argument("--report", action="store_true", help="only collect results and write RESULTS.md")
    ap.add_argument("--only", help="run these groups (comma-separated): "
                    + ", ".join(sorted({group for group, _ in all_runs().values()}))
                    + " (the two filter groups include their ema and none baselines)")
    ap.add_argument("--names", help="comma-separated run names (default: every run of the groups chosen)")
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads per run (default 1)")
    ap.add_argument("--runs-dir", help="make the runs in this directory instead of results/runs (a long "
                    "campaign outside the working tree; logs go to a 'logs' folder beside it); no report")
    args = ap.parse_args(argv)
    global RUNS, LOGS
    if args.runs_dir:
        RUNS = os.path.abspath(args.runs_dir)
        LOGS = os.path.join(os.path.dirname(RUNS), "logs")
    groups = sorted({group for group, _ in all_runs().values()})
    bad = [g for g in (args.only or "").split(",") if args.only and g not in groups]
    if bad:
        print(f"reproduce.py: error: no group named {bad[0]!r} (groups: {', '.join(groups)})", file=sys.stderr)
        return 2
    runs = select(args.only)
    if args.names:
        unknown = [k for k in args.names.split(",") if k not in runs]
        if unknown:
            print(f"reproduce.py: error: no run named {unknown[0]!r} (see --commands)", file=sys.stderr)
            return 2
        runs = {k: runs[k] for k in args.names.split(",")}
    if args.commands:
        for name, (_, flags) in runs.items():
            if not is_complete(name, flags):
                print(shlex.join(["python", *command(name, flags, args.threads)[1:]]))
        return 0
    done = {}
    if not args.report:
        done = run_all(runs, args.jobs, args.threads, heartbeat=bool(args.runs_dir))
        analyse([name for name, (rc, _) in done.items() if rc == 0 and not name.startswith("sweep-")])
    if args.runs_dir:
        return 0 if all(rc == 0 for rc, _ in done.values()) else 1
    print(f"wrote {write_results()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
