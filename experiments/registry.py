"""registry: every run behind RESULTS.md, as data: run name -> (group, miiii.py flags).

The groups (`reproduce.py --only GROUP`): sweep (the search for a CPU-scale T_miiii), claims (the
T_miiii-scale runs of the claims table), nanda (its T_nanda runs), filters and filters-miiii (the
GrokFast filters compared on T_nanda and on T_miiii; each includes its ema and none baselines),
bandpass-strength (the band-pass filter at lambda 1 and 0.5), paper (the paper's configuration at
65,536 epochs, made by experiments/campaign.sh) and paper16k (its first 16,384 epochs, one run).
Nothing here touches a file: the runner (runner.py) makes the runs, the report (report.py) reads them.
"""
import os
import shlex

RUNS = os.path.join("results", "runs")  # where the run directories live, relative to the repository root

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


REGISTRY = all_runs()  # the data: built once from the blocks above
GROUPS = sorted({group for group, _ in REGISTRY.values()})


def select(only=None):
    """The runs of the groups named in `only` (comma-separated; None: all), filter baselines included."""
    chosen = set(only.split(",")) if only else None
    return {k: v for k, v in REGISTRY.items()
            if chosen is None or v[0] in chosen or any(k in FILTER_BASELINES[g] for g in chosen & set(FILTER_BASELINES))}


def wanted_epochs(flags):
    return int(flags[flags.index("--epochs") + 1])


def flags_of(name, threads=1):
    """The run's plain command from scratch (what the report documents; the runner may extend instead)."""
    flags = REGISTRY[name][1]
    return shlex.join(["python", "miiii.py", *flags, "--out", os.path.join(RUNS, name), "--threads", str(threads)])
