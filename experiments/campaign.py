"""The paper-scale campaign's progress, and its finished runs copied into results/runs/.

    python experiments/campaign.py [DIR]           # the progress table of DIR/runs (default ../miiii-campaign)
    python experiments/campaign.py [DIR] --sync    # also write results/paper_progress.md and copy every
                                                   # finished run's small outputs into results/runs/<name>/
    python experiments/campaign.py [DIR] --carry   # --sync, and carry every unfinished run's state into
                                                   # results/campaign_state/ (to commit: see below)
    python experiments/campaign.py [DIR] --restore # put carried runs back where DIR lacks them
                                                   # (campaign.sh does this before it starts the runner)

Carrying. A campaign outlasts the machine it runs on when the machine is not kept between working
sessions. `--carry` copies what each unfinished run needs to go on -- its latest checkpoint, config,
wall time, record segments (~18 MB a run at the paper's size) -- into results/campaign_state/<name>/,
with state.json naming the frozen code's commit; committed, it travels with the repository. On a new
machine `bash experiments/campaign.sh` freezes the code at that commit and `--restore` puts each
carried run back, so it continues bit-identically from the carried epoch (what the lost machine
trained after the carry is trained again). The parameter copies (progress_params/, params_<E>.npz,
~4 MB each) are not carried: the restored checkpoint is rewritten to forget them
(rundir.forget_lost_copies), and the run's carried.json says which epochs were lost, so its progress
measures are computed from the copies that remain.

`bash experiments/campaign.sh [DIR]` starts the campaign or resumes what stopped. A run that is still
training is read without disturbing it: from metrics.npz where its code writes one at each checkpoint,
else from the metrics inside its checkpoint (only the metric arrays are decompressed).
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [p for p in (HERE, ROOT) if p not in sys.path]
import fft_analysis  # noqa: E402
import rundir  # noqa: E402
from registry import PAPER_TIERS, RUNS, paper_runs, wanted_epochs  # noqa: E402
from runner import SMALL_OUTPUTS, machine  # noqa: E402 (what is committed of a finished run, as of every run)

DEFAULT_DIR = os.path.join(os.path.dirname(ROOT), "miiii-campaign")
# the runs whose params.npz is copied too: the figures need them
WITH_PARAMS = ("paper-miiii-s0", "paper-nanda-s0")
PROGRESS_TABLE = os.path.join("results", "paper_progress.md")
STATE_DIR = os.path.join("results", "campaign_state")  # the carried runs (see the docstring)
STATE = "state.json"  # in STATE_DIR: the frozen code's commit, when and where the state was carried, the runs
CARRIED = "carried.json"  # in a restored run: {"restores": one entry per restore (the epoch, the copies lost)}


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
        acc = "-" if r["metrics"] is None or not len(r["metrics"]["epochs"]) else accuracy_cell(r)
        reached = "-" if r["epoch"] is None else f"{r['epoch']:,}"
        rows.append(f"| `{name}` | {PAPER_TIERS[name][0]} | {r['status']} | {reached} / {planned:,} | {acc} | "
                    f"{r['seconds'] / 3600:.2f} h in {r['pieces']} piece(s) | "
                    f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(r['updated']))} |")
    return rows


def accuracy_cell(r):
    """valid acc min / mean at the last log, and the tasks staying >= 0.95 by then in the order they got there:
    a running campaign shows already which tasks came first."""
    va = r["metrics"]["valid_acc"]  # (L, T)
    grok = fft_analysis.grokking_epochs(r["metrics"]["epochs"], va, 0.95)
    order = fft_analysis.grokking_order(r["config"]["moduli"], grok)
    listed = f": q = {', '.join(map(str, order))}" if 0 < len(order) < va.shape[1] else ""
    return f"{va[-1].min():.3f} / {va[-1].mean():.3f} ({len(order)} of {va.shape[1]}{listed})"


def progress_table(runs_dir):
    return ["| run | tier | status | epoch reached / planned | valid acc min / mean (tasks staying >= 0.95, in the "
            "order they got there) | wall time so "
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
        files = SMALL_OUTPUTS + (CARRIED,) + ((rundir.PARAMS,) if name in WITH_PARAMS else ())
        rundir.write_files(os.path.join(ROOT, RUNS, name), rundir.read_files(src, files))
        copied.append(name)
    return copied


def utc_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def frozen_commit(campaign_dir):
    """The commit of the campaign's frozen code, DIR/code ('' where there is none)."""
    return subprocess.run(["git", "-C", os.path.join(campaign_dir, "code"), "rev-parse", "HEAD"],
                          capture_output=True, text=True).stdout.strip()


def carry(campaign_dir, state_dir=None):
    """Copy each unfinished campaign run's checkpoint, config, wall time, carried.json and record
    segments into state_dir/<name>/ (replacing what is there; runs no longer unfinished are dropped),
    then state.json. A run in training is read as it is: its checkpoint is replaced by rename, so the
    bytes read are one whole checkpoint. Returns {name: epoch carried}."""
    state_dir = state_dir or os.path.join(ROOT, STATE_DIR)
    runs_dir = os.path.join(campaign_dir, "runs")
    carried = {}
    os.makedirs(state_dir, exist_ok=True)
    for name in paper_runs():
        src, dst = os.path.join(runs_dir, name), os.path.join(state_dir, name)
        if rundir.run_status(src, ())[0] != "interrupted" or not os.path.exists(os.path.join(src, rundir.CHECKPOINT)):
            continue  # nothing to go on from (a checkpoint.prev.npz alone is not carried)
        tmp = dst + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        # the checkpoint first, the segments after: each segment it knows was written before it, and one
        # written after it is removed when the run resumes (rundir.resume_records)
        rundir.write_files(tmp, rundir.read_files(src, (rundir.CHECKPOINT,)))
        folder = os.path.join(src, rundir.SEGMENTS)
        segments = [os.path.join(rundir.SEGMENTS, f) for f in sorted(os.listdir(folder))
                    if rundir.SEGMENT_NAME.match(f)] if os.path.isdir(folder) else []
        rundir.write_files(tmp, rundir.read_files(src, (*segments, rundir.WALL, CARRIED, rundir.CONFIG)))
        epoch = rundir.checkpoint_epoch(tmp)
        shutil.rmtree(dst, ignore_errors=True)
        os.replace(tmp, dst)
        carried[name] = epoch
    for name in os.listdir(state_dir):
        if name not in carried and os.path.isdir(os.path.join(state_dir, name)):
            shutil.rmtree(os.path.join(state_dir, name))
    rundir.save_json(os.path.join(state_dir, STATE), {
        "code_commit": frozen_commit(campaign_dir), "carried": utc_now(),
        "machine": machine(), "runs": carried})
    return carried


def restore(campaign_dir, state_dir=None):
    """Put each carried run back into campaign_dir/runs/ where that directory lacks it (a machine that
    was not kept), with its checkpoint rewritten to forget the parameter copies left behind, and an
    entry in its carried.json. A run the campaign has already is left alone, and so is a campaign whose
    frozen code is not the carried one (another campaign: campaign.sh --fresh). Returns the names restored."""
    state_dir = state_dir or os.path.join(ROOT, STATE_DIR)
    state = rundir.load_json(os.path.join(state_dir, STATE)) if os.path.exists(os.path.join(state_dir, STATE)) else {}
    if state and state.get("code_commit") != frozen_commit(campaign_dir):
        print(f"campaign.py: {campaign_dir}/code is not at the carried commit {state.get('code_commit')}: "
              f"a campaign of its own, nothing restored into it", file=sys.stderr)
        return []
    restored = []
    for name, epoch in state.get("runs", {}).items():
        dst = os.path.join(campaign_dir, "runs", name)
        if os.path.exists(dst):
            continue
        src, tmp = os.path.join(state_dir, name), os.path.join(campaign_dir, "runs", f".{name}.restoring")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        lost = rundir.forget_lost_copies(tmp)
        entries = restores(tmp)
        entries.append({"restored": utc_now(), "machine": machine(),
                        "epoch": epoch, "carried": state.get("carried"), "carried_from": state.get("machine"),
                        "code_commit": state.get("code_commit"), "copies_lost": lost})
        rundir.save_json(os.path.join(tmp, CARRIED), {"restores": entries})
        os.replace(tmp, dst)  # whole or not at all: a kill before this leaves only the .restoring folder
        restored.append(name)
    return restored


def restores(run_dir):
    """The entries of a run's carried.json, one per restore ([] for a run never carried)."""
    path = os.path.join(run_dir, CARRIED)
    return rundir.load_json(path)["restores"] if os.path.exists(path) else []


def carried_lines(runs_dir):
    """One line per restore of a campaign run (from its carried.json), for the progress table."""
    lines = []
    for name in paper_runs():
        for e in restores(os.path.join(runs_dir, name)):
            lost = ", ".join(f"{kind} of {len(epochs)} epochs ({epochs[0]:,}..{epochs[-1]:,})"
                             for kind, epochs in e.get("copies_lost", {}).items() if epochs) or "none"
            lines.append(f"- `{name}`: carried at epoch {e['epoch']:,} ({e.get('carried')}, {e.get('carried_from')}), "
                         f"restored {e['restored']} on {e.get('machine')}; parameter copies lost: {lost}.")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", nargs="?", default=os.environ.get("MIIII_CAMPAIGN", DEFAULT_DIR),
                    help=f"the campaign directory (default: $MIIII_CAMPAIGN, else {DEFAULT_DIR})")
    ap.add_argument("--sync", action="store_true", help=f"write {PROGRESS_TABLE} and copy finished runs in")
    ap.add_argument("--carry", action="store_true", help=f"--sync, and carry the unfinished runs into {STATE_DIR}")
    ap.add_argument("--restore", action="store_true", help=f"put the runs of {STATE_DIR} back where DIR lacks them")
    args = ap.parse_args(argv)
    try:
        return campaign(args)
    except (rundir.RunError, rundir.WriteError, OSError) as e:  # a damaged file, a full disk: one line
        print(f"campaign.py: error: {e}", file=sys.stderr)
        return 1


def campaign(args):
    runs_dir = os.path.join(args.dir, "runs")
    if args.restore:
        os.makedirs(runs_dir, exist_ok=True)
        restored = restore(args.dir)
        print(f"restored {', '.join(restored)} from {STATE_DIR}" if restored else f"nothing to restore from {STATE_DIR}")
        return 0
    if not os.path.isdir(runs_dir):
        print(f"campaign.py: error: {runs_dir}: no campaign there (start one with bash experiments/campaign.sh)",
              file=sys.stderr)
        return 2
    table = progress_table(runs_dir)
    print("\n".join(table))
    if args.sync or args.carry:
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
        restored = carried_lines(runs_dir)
        if restored:
            lines += ["Runs carried from one machine to the next (experiments/campaign.py --carry, --restore):", "",
                      *restored, ""]
        rundir.atomic_write(os.path.join(ROOT, PROGRESS_TABLE), lambda f: f.write("\n".join(lines).encode()))
        print(f"wrote {PROGRESS_TABLE}" + (f"; copied {', '.join(copied)}" if copied else "; no run finished yet"))
    if args.carry:
        carried = carry(args.dir)
        print(f"carried {', '.join(f'{n} at {e:,}' for n, e in carried.items()) or 'no run'} into {STATE_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
