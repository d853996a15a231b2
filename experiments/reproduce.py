"""Reproduce the talk with this code: make (or reuse) every run behind RESULTS.md, then write it.

    python experiments/reproduce.py                 # make what is missing on a local Dask cluster, then report
    python experiments/reproduce.py --report        # only collect and write RESULTS.md + docs/results/ (< 1 min)
    python experiments/reproduce.py --commands      # print each missing run's plain `python miiii.py ...` command
    python experiments/reproduce.py --only claims   # one group or more, comma-separated (see below)
    python experiments/reproduce.py --scheduler tcp://HOST:8786   # make them on a running Dask cluster

The groups: sweep, claims, nanda, filters, filters-miiii, bandpass-strength, paper and paper16k
(experiments/registry.py says what each holds; `--help` what each costs). Every run is a plain
`python miiii.py ... --out results/runs/<name>` into its own directory, made by a Dask task
(experiments/runner.py; Dask is optional: pip install -e .[sweep]); the printed commands serve any
other scheduler (a SLURM array, GNU parallel), then `--report`. A finished run is never redone, an
interrupted one continues from its checkpoint, a run another process is training (its run
directory is locked) is left to it. The small outputs of each run (config.json, metrics.npz, the
analysis records, analysis.json, wall.json; params only where a figure needs them) are committed;
checkpoints and the rest are ignored by git (see .gitignore).
"""
import argparse
import os
import shlex
import signal
import sys

import registry
import runner  # first: it puts the repository root on sys.path
import rundir

ROOT = runner.ROOT


def stop_on_sigterm(signum, frame):
    """SIGTERM stops the runner as Ctrl-C does, its runs at their checkpoints: a runner started in the
    background (campaign.sh) ignores SIGINT, and `kill PID` is how it is stopped."""
    raise KeyboardInterrupt


def missing_runs(runs, runs_dir):
    return {name: flags for name, (_, flags) in runs.items() if not runner.is_complete(os.path.join(runs_dir, name), flags)}


def cost_line(runs_dir):
    """What the default (every missing run) costs, for --help."""
    hours, missing, unknown = runner.machine_hours(registry.REGISTRY, runs_dir)
    if not missing:
        return "Every run of the registry is present: the default only writes the report."
    return (f"Without --only or --names it makes every missing run: now {missing} of {len(registry.REGISTRY)}, "
            f"roughly {hours:.0f} machine-hours of a 2-core CPU like the one that measured the committed runs "
            "(their wall.json times per epoch, runs of the same task, p and d)"
            + (f"; {unknown} with nothing alike measured are not counted" if unknown else "") + ".")


def parser(runs_dir):
    counts = {g: sum(group == g for group, _ in registry.REGISTRY.values()) for g in registry.GROUPS}
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=cost_line(runs_dir))
    ap.add_argument("--commands", action="store_true", help="print the missing runs' commands and exit")
    ap.add_argument("--report", action="store_true", help="only collect results and write RESULTS.md")
    ap.add_argument("--only", help="run these groups (comma-separated; the runs in each): "
                    + ", ".join(f"{g} {n}" for g, n in counts.items())
                    + " (the two filter groups also run their ema and none baselines)")
    ap.add_argument("--names", help="comma-separated run names (default: every run of the groups chosen)")
    ap.add_argument("--jobs", type=int, help="local cluster: runs at a time (default: the cores / --threads)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads per run (default 1)")
    ap.add_argument("--scheduler", metavar="ADDRESS", help="make the runs on the running Dask cluster at ADDRESS "
                    "(its workers started in a checkout with --resources cores=N; docs/experiments.md) "
                    "instead of a local one")
    ap.add_argument("--work-dir", help="where the workers keep the run directories and their checkpoints "
                    "(default: results/runs of each worker's checkout); a path all workers share lets a run "
                    "rescheduled to another machine resume instead of restarting")
    ap.add_argument("--runs-dir", help="make the runs in this directory instead of results/runs (a long "
                    "campaign outside the working tree; logs go to a 'logs' folder beside it); no report")
    return ap


def main(argv=None):
    runs_dir = os.path.join(ROOT, registry.RUNS)
    args = parser(runs_dir).parse_args(argv)
    if args.runs_dir:
        runs_dir = os.path.abspath(args.runs_dir)
    bad = [g for g in (args.only or "").split(",") if args.only and g not in registry.GROUPS]
    if bad:
        print(f"reproduce.py: error: no group named {bad[0]!r} (groups: {', '.join(registry.GROUPS)})", file=sys.stderr)
        return 2
    if args.threads < 1 or (args.jobs is not None and args.jobs < 1):
        print("reproduce.py: error: --jobs and --threads must be >= 1", file=sys.stderr)
        return 2
    runs = registry.select(args.only)
    if args.names:
        unknown = [k for k in args.names.split(",") if k not in runs]
        if unknown:
            print(f"reproduce.py: error: no run named {unknown[0]!r} (see --commands)", file=sys.stderr)
            return 2
        runs = {k: runs[k] for k in args.names.split(",")}
    if args.commands:
        todo = missing_runs(runs, runs_dir)
        for name, flags in todo.items():  # --out as the runs are made: relative to the repository root by default
            out = os.path.join(runs_dir if args.runs_dir else registry.RUNS, name)
            print(shlex.join(["python", *runner.command(flags, out, args.threads,
                                                        rundir.read_config(os.path.join(runs_dir, name)))[1:]]))
        if not todo:
            print(f"nothing missing: {len(runs)} runs present")
        return 0
    outcomes = {}
    todo = {} if args.report else missing_runs(runs, runs_dir)
    if todo:
        work_dir = os.path.abspath(args.work_dir) if args.work_dir else (runs_dir if args.runs_dir else None)
        signal.signal(signal.SIGTERM, stop_on_sigterm)
        try:
            with runner.connect(args.scheduler, args.jobs, args.threads) as client:
                outcomes = runner.run_missing({k: runs[k] for k in todo}, client, runs_dir, work_dir, args.threads,
                                              heartbeat=bool(args.runs_dir))
        except runner.RunnerError as e:
            print(f"reproduce.py: error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("reproduce.py: interrupted; the runs stopped at their checkpoints, the same command continues them",
                  file=sys.stderr)
            return 130
    elif not args.report:
        print(f"nothing missing: {len(runs)} runs present")
    if args.runs_dir:
        return 1 if any(o["status"] == "failed" for o in outcomes.values()) else 0
    import report  # matplotlib and the analysis: only for the report
    print(f"wrote {report.write_results()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
