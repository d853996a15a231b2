"""The paper-scale campaign's progress, and its finished runs copied into results/runs/.

    python experiments/campaign.py [DIR]           # the progress table of DIR/runs (default ../miiii-campaign)
    python experiments/campaign.py [DIR] --sync    # also write results/paper_progress.md and copy every
                                                   # finished run's small outputs into results/runs/<name>/

`bash experiments/campaign.sh [DIR]` starts the campaign or resumes what stopped. A run that is still
training is read without disturbing it: from metrics.npz where its code writes one at each checkpoint,
else from the metrics inside its checkpoint (only the metric arrays are decompressed).
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [p for p in (HERE, ROOT) if p not in sys.path]
import rundir  # noqa: E402
from registry import PAPER_TIERS, RUNS, paper_runs, wanted_epochs  # noqa: E402
from runner import SMALL_OUTPUTS  # noqa: E402 (what is committed of a finished run, as of every run)

DEFAULT_DIR = os.path.join(os.path.dirname(ROOT), "miiii-campaign")
# the runs whose params.npz is copied too: the figures need them
WITH_PARAMS = ("paper-miiii-s0", "paper-nanda-s0")
PROGRESS_TABLE = os.path.join("results", "paper_progress.md")


def run_progress(run_dir):
    """What a run has reached: status, epoch, metrics (valid_acc (L, T), epochs (L,)), wall seconds, or None."""
    config = rundir.read_config(run_dir)
    if config is None:
        return None
    status, epoch, metrics = config.get("status", "?"), None, None
    metrics_path = os.path.join(run_dir, rundir.METRICS)
    try:
        if status == "complete" or not os.path.exists(os.path.join(run_dir, rundir.CHECKPOINT)):
            if os.path.exists(metrics_path):
                metrics = rundir.load_npz(metrics_path, ("epochs", "valid_acc", "train_acc"))
                epoch = int(metrics["epochs"][-1])
        else:
            epoch, metrics = rundir.checkpoint_metrics(run_dir)
    except (rundir.RunError, IndexError) as e:  # a damaged file, or no epoch logged: say so, read on
        print(f"campaign.py: {e}", file=sys.stderr)
        status = f"{status} (unreadable)"
    try:
        wall = rundir.load_wall(run_dir)
    except rundir.RunError:
        wall = []
    return {"config": config, "status": status, "epoch": epoch, "metrics": metrics,
            "seconds": sum(w.get("seconds", 0) for w in wall), "pieces": len(wall),
            "updated": max((os.path.getmtime(os.path.join(run_dir, f)) for f in os.listdir(run_dir)), default=0)}


def progress_rows(runs_dir):
    rows = []
    for name, (group, flags) in paper_runs().items():
        if group != "paper":
            continue
        r = run_progress(os.path.join(runs_dir, name)) if os.path.isdir(os.path.join(runs_dir, name)) else None
        planned = wanted_epochs(flags)
        if r is None:
            rows.append(f"| `{name}` | {PAPER_TIERS[name][0]} | not started | 0 / {planned:,} | - | - | - |")
            continue
        va = r["metrics"]["valid_acc"][-1] if r["metrics"] is not None and len(r["metrics"]["epochs"]) else None
        acc = "-" if va is None else f"{va.min():.3f} / {va.mean():.3f} ({int((va >= 0.95).sum())} of {len(va)})"
        reached = "-" if r["epoch"] is None else f"{r['epoch']:,}"
        rows.append(f"| `{name}` | {PAPER_TIERS[name][0]} | {r['status']} | {reached} / {planned:,} | {acc} | "
                    f"{r['seconds'] / 3600:.2f} h in {r['pieces']} piece(s) | "
                    f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(r['updated']))} |")
    return rows


def progress_table(runs_dir):
    return ["| run | tier | status | epoch reached / planned | valid acc min / mean (tasks >= 0.95) | wall time so "
            "far | last written (UTC) |", "|---|---|---|---|---|---|---|"] + progress_rows(runs_dir)


def sync(runs_dir):
    """Copy each finished campaign run's small outputs into results/runs/<name>/ (replacing what is there);
    returns the names copied."""
    copied = []
    for name, (group, flags) in paper_runs().items():
        src = os.path.join(runs_dir, name)
        config = rundir.read_config(src)
        if group != "paper" or not config or config.get("status") != "complete" \
                or config.get("epochs") != wanted_epochs(flags):
            continue
        files = SMALL_OUTPUTS + ((rundir.PARAMS,) if name in WITH_PARAMS else ())
        rundir.write_files(os.path.join(ROOT, RUNS, name), rundir.read_files(src, files))
        copied.append(name)
    return copied


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", nargs="?", default=os.environ.get("MIIII_CAMPAIGN", DEFAULT_DIR),
                    help=f"the campaign directory (default: $MIIII_CAMPAIGN, else {DEFAULT_DIR})")
    ap.add_argument("--sync", action="store_true", help=f"write {PROGRESS_TABLE} and copy finished runs in")
    args = ap.parse_args(argv)
    runs_dir = os.path.join(args.dir, "runs")
    if not os.path.isdir(runs_dir):
        print(f"campaign.py: error: {runs_dir}: no campaign there (start one with bash experiments/campaign.sh)",
              file=sys.stderr)
        return 2
    table = progress_table(runs_dir)
    print("\n".join(table))
    if args.sync:
        copied = sync(runs_dir)
        code = rundir.read_config(os.path.join(runs_dir, next(iter(PAPER_TIERS)))) or {}
        lines = ["# The paper-scale campaign: progress", "",
                 f"Written by `python experiments/campaign.py --sync` at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
                 f" Code: commit `{code.get('code_commit')}` (a frozen clone); every run is the paper's configuration "
                 "(`python miiii.py` defaults) with the flags of its registry entry (experiments/registry.py, "
                 "PAPER_TIERS), one BLAS thread, two side by side under nice -n 19 on the 2-core machine. Wall time "
                 "counts every piece (a piece ends with the session that ran it; `bash experiments/campaign.sh` "
                 "resumes from the checkpoint, bit-identically). Finished runs are copied into results/runs/.", ""]
        lines += table + [""]
        with open(os.path.join(ROOT, PROGRESS_TABLE), "w") as f:
            f.write("\n".join(lines))
        print(f"wrote {PROGRESS_TABLE}" + (f"; copied {', '.join(copied)}" if copied else "; no run finished yet"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
