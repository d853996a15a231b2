"""runner: the engine that makes the registry's runs on a Dask cluster, one task per run.

How a run travels:
  client  run_missing() leaves out a run that is complete in the results directory (its config.json
          says so, at the wanted length) and one whose run directory is locked (rundir.lock_holder:
          another process is training it, said in one line), and submits one task per other run,
          with the resources it needs declared to Dask ({"cores": T}; {"GPU": 1} for a --gpu run).
  worker  train_run(spec) starts one `python miiii.py ... --out WORK/<name> --threads T --quiet`
          subprocess (never in the worker's own thread: miiii.py installs signal handlers and a
          global backend), publishes the epoch it has reached (read from its checkpoint) as a Dask
          event, keeps wall.json, runs fft_analysis.py on the finished run, and returns the run's
          small outputs (what is committed of a run) as bytes.
  client  writes them under RESULTS/<name>/, each file atomically, config.json last.

WORK, where run directories and their checkpoints live, is results/runs of the worker's checkout
(on one machine: the results directory itself, as before) or --work-dir. Dask reschedules the task
of a lost worker; the next worker resumes from the checkpoint when it can reach it (the same machine,
or a WORK shared between machines), else it trains the run from the start (the same result).

A trainer dies with its worker: on Linux the kernel sends it SIGTERM when the thread that started it
ends (prctl PR_SET_PDEATHSIG), on which miiii.py stops (at a checkpoint, see die_with_parent), so a
SIGKILLed worker leaves no trainer holding the run directory. Other systems have no such signal:
there a trainer whose worker was killed trains on alone until it ends (the run directory's lock
keeps a second one out). Ctrl-C of the client cancels the tasks, which stop their trainers (SIGTERM:
a checkpoint) on the cluster too; Dask cannot stop a running task itself.
"""
import functools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import CancelledError

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import miiii  # noqa: E402
import rundir  # noqa: E402
from registry import RUNS, wanted_epochs  # noqa: E402

# What a finished run sends back: what is committed of every run (config.json last: it says "complete");
# params.npz too for the runs whose params .gitignore keeps (the figures need them).
SMALL_OUTPUTS = (rundir.METRICS, *rundir.SERIES.values(), rundir.PROGRESS, rundir.ANALYSIS, rundir.WALL, rundir.CONFIG)
PROGRESS_TOPIC = "miiii-progress"  # the Dask event topic of train_run's progress
POLL_S = 5.0  # how often a task looks at its trainer (progress from the checkpoint)
# The local cluster's housekeeping, slowed: its tasks are hours-long trainers, so nothing is lost, and
# the defaults (a 10 ms statistical profiler of every thread, a 20 ms event-loop tick, a 0.5 s system
# and a 0.1 s memory monitor) took 6.5-7.5 % of a core with two runs in flight, these 0.5 % (an
# in-process cluster watching two 60 s subprocesses, 40 s of process time each; the campaign's runner,
# watching its two trainers, went from 5.3 % to 0.9 %; 2-core AMD EPYC, 2026-12-03).
QUIET_LOCAL_CLUSTER = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s",
                       "distributed.admin.system-monitor.interval": "5s",
                       "distributed.worker.memory.monitor-interval": "5s", "distributed.scheduler.work-stealing": False}
HEARTBEAT_S = 60.0  # how often a running piece's wall time is written, where pieces are kept
LOCK_WAIT_S = 60.0  # how long a task waits for a run directory's lock: a killed predecessor's last checkpoint
PROGRESS_LINE_S = 60.0  # how often the client prints the runs' progress
STOP_WAIT_S = 120.0  # how long Ctrl-C waits for the trainers' last checkpoints
CONNECT_TIMEOUT = "10s"  # how long the client tries to reach a --scheduler
NEEDS_DASK = "pip install -e .[sweep], or pip install -r experiments/requirements-sweep.txt"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def say(line):
    """The runner's lines: on stdout, at once (a campaign's runner.log is read while it runs)."""
    print(line, flush=True)


class RunnerError(Exception):
    """A condition reported in one line: no Dask, no scheduler, no worker able to run the runs."""


# ---------------------------------------------------------------------------- a run directory
def is_complete(run_dir, flags):
    """A run directory whose config.json says complete (miiii.py writes that last) at the wanted length."""
    config = rundir.read_config(run_dir)
    return bool(config) and config.get("status") == "complete" and config.get("epochs") == wanted_epochs(flags)


def command(flags, out, threads=1, config=None):
    """The run's command, run from the repository root; a finished shorter run of it (config: the
    config.json in `out`) is extended (--resume --epochs) instead."""
    if config and config.get("status") == "complete" and config.get("epochs", 0) < wanted_epochs(flags):
        keep = ["--no-analysis"] if "--no-analysis" in flags else []
        return [sys.executable, "miiii.py", "--resume", out, "--epochs", str(wanted_epochs(flags)), *keep,
                "--threads", str(threads), "--quiet"]
    return [sys.executable, "miiii.py", *flags, "--out", out, "--threads", str(threads), "--quiet"]


def checkpoint_epoch(run_dir):
    """The epoch a run in training has reached (its checkpoint's), or None before its first checkpoint.
    The checkpoint is replaced by rename: old or new, never torn."""
    try:
        return rundir.checkpoint_epoch(run_dir)
    except rundir.RunError:
        return None


def machine():
    """'N cores' and, where Linux says it, the CPU's model name, family and model, and its widest vector
    instructions (a virtual machine's model name alone, 'AMD EPYC', names several generations)."""
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if not line.strip():
                    break  # the first processor is enough
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = info.get("flags", "").split()
    detail = [f"family {info['cpu family']} model {info.get('model')}"] if "cpu family" in info else []
    detail += ["AVX-512"] if "avx512f" in flags else ["AVX2"] if "avx2" in flags else []
    model = info.get("model name", "")
    return f"{os.cpu_count()} cores" + (f", {model}" if model else "") + (f" ({', '.join(detail)})" if detail else "")


@functools.lru_cache(maxsize=None)
def code_commit():
    """The commit of the code this runner starts trainers from, kept per piece in wall.json (config.json
    names the commit of the last piece only)."""
    return miiii.code_commit()


def record_wall_time(run_dir, seconds, threads, side_by_side, piece=None, finished=True):
    """Write this piece's wall time into the run's wall.json (an extension or a resumed piece adds an
    entry); side_by_side: the most runs its worker ran at once meanwhile, this one included.
    `piece`: the index of the entry to update (a running piece is rewritten every HEARTBEAT_S with
    finished false, so a piece cut short by the end of a session keeps the time it had); returns it."""
    try:
        entries = rundir.load_wall(run_dir)
    except rundir.RunError:
        entries = []
    entry = {"seconds": round(seconds, 1), "epochs": (rundir.read_config(run_dir) or {}).get("epochs"),
             "threads": threads, "runs_side_by_side": side_by_side, "machine": machine(),
             "date": time.strftime("%Y-%m-%d"), "code_commit": code_commit()}
    if not finished:
        entry["finished"] = False
    if piece is None or piece >= len(entries):
        entries.append(entry)
        piece = len(entries) - 1
    else:
        entries[piece] = entry
    if os.path.isdir(run_dir):
        rundir.save_wall(run_dir, entries)
    return piece


def kept_params(gitignore=os.path.join(ROOT, ".gitignore")):
    """The runs whose params.npz is committed: the exceptions .gitignore makes for them."""
    prefix, suffix = "!" + RUNS.replace(os.sep, "/") + "/", "/params.npz"
    with open(gitignore) as f:
        lines = [line.strip() for line in f]
    return {line[len(prefix):-len(suffix)] for line in lines if line.startswith(prefix) and line.endswith(suffix)}


def small_outputs(run_dir, with_params):
    """{file name: bytes} of a finished run's small outputs, config.json last."""
    return rundir.read_files(run_dir, ((rundir.PARAMS,) if with_params else ()) + SMALL_OUTPUTS)


# ---------------------------------------------------------------------------- on the worker
def die_with_parent():
    """A Popen preexec_fn that has the kernel send the child SIGTERM when the thread that started it
    ends (Linux prctl PR_SET_PDEATHSIG); None elsewhere, where there is no such signal.

    As a many-threaded worker dies, the kernel hands the child to each of its other threads in turn and
    signals it each time, so a trainer gets SIGTERM more than once: miiii.py checkpoints on the first and
    ignores the rest (only a second SIGINT makes it leave at once). A stop the runner asks for (Ctrl-C of
    the client) is one SIGTERM."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: between fork and exec, only the call
    parent = os.getpid()

    def preexec():
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # the parent died before prctl took hold: no signal will come
            os._exit(143)

    return preexec


def this_worker():
    """The Dask worker running this task, or None (a direct call, as in the tests)."""
    try:
        from distributed import get_worker
        return get_worker()
    except (ImportError, ValueError):
        return None


def publish(worker, spec, **event):
    """Tell the client how the run is doing: a Dask event under PROGRESS_TOPIC."""
    if worker is not None:
        worker.log_event(PROGRESS_TOPIC, {"token": spec["token"], "run": spec["name"], **event})


def given_up(worker, key):
    """Has the client cancelled this task, or gone? (Dask cannot stop a running task; the task stops its trainer.)"""
    if worker is None:
        return False
    task = worker.state.tasks.get(key)
    return task is None or task.state == "cancelled"


def lock_free(run_dir, wait_s):
    """None once no process holds run_dir's lock (waiting up to wait_s), else who holds it."""
    deadline = time.time() + wait_s
    holder = rundir.lock_holder(run_dir)
    while holder is not None and time.time() < deadline:
        time.sleep(0.5)
        holder = rundir.lock_holder(run_dir)
    return holder


def train(spec, out, run_dir, log):
    """Run miiii.py on `out` until it exits, publishing its epoch and (spec heartbeat) keeping wall.json;
    returns (exit code, seconds)."""
    worker, threads, epochs = this_worker(), spec["threads"], wanted_epochs(spec["flags"])
    key = worker.get_current_task() if worker else None
    cmd = command(spec["flags"], out, threads, rundir.read_config(run_dir))
    start = beat = time.time()
    piece, side_by_side, stopping = None, 1, False
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent())
    try:
        epoch = checkpoint_epoch(run_dir) or 0
        publish(worker, spec, kind="started", epoch=epoch, epochs=epochs, pid=proc.pid, worker_pid=os.getpid(),
                on=worker.address if worker else None)
        while True:
            try:
                rc = proc.wait(timeout=spec["poll_s"])
                break
            except subprocess.TimeoutExpired:
                pass
            try:  # watching is best effort: a failed look at the run must not end the task and orphan its trainer
                if not stopping and given_up(worker, key):
                    proc.terminate()  # SIGTERM, once: the trainer checkpoints and stops
                    stopping = True
                side_by_side = max(side_by_side, worker.state.executing_count if worker else 1)
                now = checkpoint_epoch(run_dir)
                if now is not None and now != epoch:
                    epoch = now
                    publish(worker, spec, kind="progress", epoch=epoch, epochs=epochs)
                if spec["heartbeat"] and time.time() - beat >= HEARTBEAT_S:
                    piece = record_wall_time(run_dir, time.time() - start, threads, side_by_side, piece,
                                             finished=False)
                    beat = time.time()
            except Exception as e:  # e.g. CPython 3.11's "AST constructor recursion depth mismatch" from
                # numpy's header parsing in two threads at once: look again at the next poll
                print(f"runner: watching the run failed once ({type(e).__name__}: {e}); the run goes on",
                      file=log, flush=True)
    finally:
        if proc.poll() is None:  # the task is leaving while its trainer runs: stop it at a checkpoint
            proc.terminate()
            try:
                proc.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
    seconds = time.time() - start
    publish(worker, spec, kind="ended", rc=rc, pid=proc.pid)
    if rc == 0 or spec["heartbeat"]:  # an interrupted piece counts only where pieces are kept
        record_wall_time(run_dir, seconds, threads, side_by_side, piece, finished=rc == 0)
    return rc, seconds


def train_run(spec):
    """The task: make one run in this worker's run directory and return its small outputs.

    spec: name, flags, threads, work_dir (None: RUNS of this checkout), heartbeat, with_params, token,
    poll_s, lock_wait_s. Returns {"name", "status": "complete" | "failed" | "locked", "rc", "seconds",
    "files": {file name: bytes}, "out", "host", "log"} ("holder" when locked). A run already complete
    here at the wanted length is not trained again (its results had not come back)."""
    name, flags = spec["name"], spec["flags"]
    out = os.path.join(spec["work_dir"] or RUNS, name)  # a relative one is in this checkout (the trainer's cwd)
    run_dir = os.path.join(ROOT, out)
    logs = os.path.join(os.path.dirname(os.path.dirname(run_dir)), "logs")
    result = {"name": name, "out": run_dir, "host": socket.gethostname(), "rc": None, "seconds": 0.0, "files": {},
              "log": os.path.join(logs, f"{name}.log")}
    holder = lock_free(run_dir, spec["lock_wait_s"])
    if holder is not None:
        return {**result, "status": "locked", "holder": holder}
    os.makedirs(logs, exist_ok=True)
    trained = not is_complete(run_dir, flags)
    with open(result["log"], "a") as log:
        if trained:
            result["rc"], result["seconds"] = train(spec, out, run_dir, log)
            if result["rc"] != 0:
                holder = rundir.lock_holder(run_dir)  # another trainer came first (miiii.py refused)
                return {**result, "status": "locked" if holder else "failed", "holder": holder}
        if "--no-analysis" not in flags and (trained or not os.path.exists(os.path.join(run_dir, rundir.ANALYSIS))):
            log.flush()
            subprocess.run([sys.executable, "fft_analysis.py", out], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log,
                           check=False, preexec_fn=die_with_parent())
    return {**result, "status": "complete", "rc": 0, "files": small_outputs(run_dir, spec["with_params"])}


def worker_root():
    """This worker's checkout (what check_workers asks each worker: can it import this module at all)."""
    return ROOT


# ---------------------------------------------------------------------------- on the client
def connect(scheduler=None, jobs=None, threads=1, log=say, dashboard=":8787"):
    """A Dask client on the cluster at `scheduler`, else on a local cluster running `jobs` runs at a time
    with `threads` BLAS threads each (default: as many runs as the cores allow), its dashboard at
    `dashboard` (another port when that one is taken). RunnerError if it cannot."""
    try:
        import distributed
    except ImportError:
        raise RunnerError(f"running needs Dask distributed ({NEEDS_DASK}); --report and --commands do not") from None
    if scheduler:
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError, TypeError) as e:
            raise RunnerError(f"cannot reach the Dask scheduler at {scheduler}: {str(e).splitlines()[0]}") from None
    else:
        import logging
        import warnings
        import dask
        dask.config.set(QUIET_LOCAL_CLUSTER)
        jobs = jobs or max(1, (os.cpu_count() or 1) // threads)
        # one worker of `jobs` slots and jobs x threads cores: runs at a time x threads per run = cores, as before;
        # threads, not processes: the work is in the trainers, and a run's count of its worker's runs is the machine's
        with warnings.catch_warnings():  # "port in use, hosting the dashboard elsewhere": the link below says where
            warnings.simplefilter("ignore", UserWarning)
            client = distributed.Client(n_workers=1, threads_per_worker=jobs, processes=False, dashboard_address=dashboard,
                                        resources={"cores": jobs * threads}, silence_logs=logging.CRITICAL)
    try:
        import bokeh  # noqa: F401
        extra = ""
    except ImportError:
        extra = " (the page needs bokeh: pip install bokeh)"
    log(f"dask dashboard: {client.dashboard_link}{extra}")
    return client


def resources(flags, threads):
    """What one run needs of a worker, declared to Dask."""
    return {"cores": threads, **({"GPU": 1} if "--gpu" in flags else {})}


def check_workers(client, needs, log=say):
    """RunnerError when the cluster's workers cannot run these tasks: one cannot import this module (not
    started with experiments/ on its PYTHONPATH) or none declares a resource a run needs."""
    try:
        client.run(worker_root)
    except Exception as e:  # whatever the worker raised in unpickling the call
        raise RunnerError(f"a Dask worker cannot run the runs ({type(e).__name__}: {str(e).splitlines()[0]}); start "
                          "workers in a checkout of this repository with PYTHONPATH=$PWD/experiments "
                          "(docs/experiments.md)") from None
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    if not workers:
        log("no Dask worker yet: the runs wait for one")
        return
    for need in needs:
        for key, amount in need.items():
            if not any(w.get("resources", {}).get(key, 0) >= amount for w in workers):
                raise RunnerError(f"no Dask worker declares {key}={amount:g} that a run needs (start workers "
                                  f"with --resources {key}=N)")


def write_back(results_dir, result):
    """Write a finished run's files under results_dir/<name>/, each atomically, config.json last; returns
    that directory, or None when it is the run directory itself (this machine's WORK is results_dir)."""
    dest = os.path.join(results_dir, result["name"])
    if result["host"] == socket.gethostname() and os.path.isdir(dest) and os.path.samefile(dest, result["out"]):
        return None
    rundir.write_files(dest, result["files"])
    return dest


def locked_line(name, holder):
    return f"skipped {name}: {holder} is training it (its run directory is locked)"


def outcome(name, future, results_dir, log):
    """What became of a finished task, said in one line; its results are written back."""
    try:
        result = future.result()
    except (Exception, CancelledError) as e:  # the task raised, Dask gave up on it (KilledWorker), or lost it
        log(f"failed {name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        return {"status": "failed", "rc": None, "seconds": 0.0}
    finally:
        future.release()
    if result["status"] == "locked":
        log(locked_line(name, result["holder"]))
    elif result["status"] == "failed":
        log(f"finished {name}: exit {result['rc']}, {result['seconds'] / 60:.1f} min (see {result['log']} on "
            f"{result['host']})")
    else:
        write_back(results_dir, result)
        log(f"finished {name}: exit 0, {result['seconds'] / 60:.1f} min")
    return {k: result.get(k) for k in ("status", "rc", "seconds", "holder")}


def run_missing(runs, client, results_dir, work_dir=None, threads=1, heartbeat=False, with_params=None, log=say,
                poll_s=POLL_S, lock_wait_s=LOCK_WAIT_S):
    """Make every run of `runs` ({name: (group, flags)}) that is not complete in results_dir, on the
    cluster of `client`; returns {name: {"status": present | locked | complete | failed, ...}}.

    work_dir: the workers' run directories (None: results/runs of each worker's checkout); heartbeat:
    keep each piece's wall time while it runs (runs that outlast a session); with_params: the runs
    whose params.npz comes back too (None: those .gitignore keeps)."""
    with_params = kept_params() if with_params is None else set(with_params)
    token = uuid.uuid4().hex
    outcomes, pending = {}, {}
    for name, (_, flags) in runs.items():
        here = {os.path.join(results_dir, name), os.path.join(ROOT, work_dir or RUNS, name)}
        holder = next((h for h in map(rundir.lock_holder, sorted(here)) if h is not None), None)
        if is_complete(os.path.join(results_dir, name), flags):
            outcomes[name] = {"status": "present"}
        elif holder is not None:
            log(locked_line(name, holder))
            outcomes[name] = {"status": "locked", "holder": holder}
        else:
            pending[name] = {"name": name, "flags": flags, "threads": threads, "work_dir": work_dir,
                             "heartbeat": heartbeat, "with_params": name in with_params, "token": token,
                             "poll_s": poll_s, "lock_wait_s": lock_wait_s}
    present = sum(o["status"] == "present" for o in outcomes.values())
    log(f"{len(pending)} runs to make, {present} present")
    if not pending:
        return outcomes
    check_workers(client, [resources(spec["flags"], threads) for spec in pending.values()], log)
    # in the registry's order (Dask runs the higher priority first; left alone it may take a later one)
    futures = {client.submit(train_run, spec, key=f"{name}-{token[:8]}", pure=False, priority=len(pending) - i,
                             resources=resources(spec["flags"], threads)): name
               for i, (name, spec) in enumerate(pending.items())}
    try:
        follow(client, futures, token, outcomes, results_dir, log, poll_s)
    except KeyboardInterrupt:
        stop(client, futures, token, log)
        raise
    return outcomes


def our_events(client, token):
    """The progress events of this invocation's tasks, oldest first."""
    return [e for _, e in client.get_events(PROGRESS_TOPIC) if isinstance(e, dict) and e.get("token") == token]


def follow(client, futures, token, outcomes, results_dir, log, poll_s):
    """Until every task is done: say which run started where, each run's progress every PROGRESS_LINE_S,
    and what became of it (its results written back)."""
    announced, latest, shown, last_line = set(), {}, {}, time.time()
    while futures:
        time.sleep(min(poll_s, 2.0))
        for event in our_events(client, token):
            if event["kind"] == "started" and (event["run"], event["pid"]) not in announced:
                announced.add((event["run"], event["pid"]))
                log(f"started {event['run']} on {event['on']} at epoch {event['epoch']:,} of "
                    f"{event['epochs']:,}")
            latest[event["run"]] = event
        for future in [f for f in futures if f.done()]:
            name = futures.pop(future)
            outcomes[name] = outcome(name, future, results_dir, log)
        if time.time() - last_line >= PROGRESS_LINE_S:
            moved = {r: e for r, e in latest.items() if r in futures.values() and shown.get(r) != e["epoch"]}
            if moved:
                log("progress: " + ", ".join(f"{r} {e['epoch']:,}/{e['epochs']:,}" for r, e in moved.items()))
                shown.update({r: e["epoch"] for r, e in moved.items()})
            last_line = time.time()


def stop(client, futures, token, log, wait_s=STOP_WAIT_S):
    """Ctrl-C: cancel the tasks, whose trainers then checkpoint and stop, and wait up to wait_s for them."""
    log(f"interrupted: stopping {len(futures)} runs at their checkpoints (Ctrl-C again: leave at once)")
    client.cancel(list(futures))
    deadline = time.time() + wait_s
    while time.time() < deadline:
        events = our_events(client, token)
        started = {(e["run"], e["pid"]) for e in events if e["kind"] == "started"}
        if started <= {(e["run"], e["pid"]) for e in events if e["kind"] == "ended"}:
            return
        time.sleep(0.5)


# ---------------------------------------------------------------------------- what it costs
def flag_value(flags, flag):
    """A flag's value in a run's flags, else miiii.py's default (as a string)."""
    return flags[flags.index(flag) + 1] if flag in flags else str(miiii.DEFAULTS[flag[2:].replace("-", "_")])


def machine_hours(runs, results_dir):
    """(hours, runs missing, runs without an estimate): roughly how long the runs of `runs` that are not
    complete in results_dir take a machine. Per epoch: what the complete runs of the same task, p and d
    (else the same p and d) took by their wall.json, each piece's seconds x its threads / the machine's
    cores (a one-thread run beside another on two cores used half the machine)."""
    per_epoch = {}
    for name, (_, flags) in runs.items():
        d = os.path.join(results_dir, name)
        config = rundir.read_config(d)
        try:
            wall = rundir.load_wall(d)
        except rundir.RunError:
            continue
        if not is_complete(d, flags) or not wall:
            continue
        seconds = sum(w["seconds"] * w["threads"] / int(w["machine"].split()[0]) for w in wall)
        shape = tuple(flag_value(flags, f) for f in ("--task", "--p", "--d"))
        for key in (shape, shape[1:]):
            per_epoch.setdefault(key, []).append(seconds / config["epochs"])
    hours, missing, unknown = 0.0, 0, 0
    for name, (_, flags) in runs.items():
        if is_complete(os.path.join(results_dir, name), flags):
            continue
        missing += 1
        shape = tuple(flag_value(flags, f) for f in ("--task", "--p", "--d"))
        measured = per_epoch.get(shape) or per_epoch.get(shape[1:])
        if measured:
            hours += float(np.mean(measured)) * wanted_epochs(flags) / 3600
        else:
            unknown += 1
    return hours, missing, unknown
