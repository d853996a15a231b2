"""experiments/runner.py on a real Dask cluster: a scheduler and two workers, each a separate process on
localhost (free ports chosen by the OS), started as the recipe of docs/experiments.md starts them, and tiny runs
submitted by the runner. Every process a test starts is stopped by a finalizer, also when it fails.
"""
import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

distributed = pytest.importorskip("distributed", reason="the runner needs Dask: pip install -e .[sweep]")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))

import rundir  # noqa: E402
import runner  # noqa: E402

TINY = ["--task", "nanda", "--p", "7", "--d", "16", "--epochs", "50"]
# the workers: as docs/experiments.md starts them (PYTHONPATH names experiments/), one BLAS thread
ENV = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "experiments"), "OPENBLAS_NUM_THREADS": "1"}
PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


def wait_until(check, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def start_cluster(d, request, n_workers=2):
    """A scheduler and n_workers workers (one slot and cores=1 each, no nanny: a killed worker stays
    dead), each its own process; returns {"client", "workers": [Popen]}."""
    procs = []

    def stop():
        for p in reversed(procs):
            if p.poll() is None:
                p.kill()
            p.wait()

    request.addfinalizer(stop)  # before the first start: a failed start is cleaned up too
    d.mkdir(exist_ok=True)
    spec = d / "scheduler.json"
    log = open(d / "cluster.log", "w")
    request.addfinalizer(log.close)
    procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                   "--port", "0", "--no-dashboard", "--scheduler-file", str(spec)],
                                  cwd=d, env=ENV, stdout=log, stderr=subprocess.STDOUT))
    wait_until(lambda: spec.exists() and spec.stat().st_size > 0, 60, "the scheduler")
    address = json.loads(spec.read_text())["address"]
    for i in range(n_workers):
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                       "--resources", "cores=1", "--no-nanny", "--no-dashboard", "--host",
                                       "127.0.0.1", "--local-directory", str(d / f"worker{i}")],
                                      cwd=d, env=ENV, stdout=log, stderr=subprocess.STDOUT))
    client = distributed.Client(address, timeout="30s")
    request.addfinalizer(client.close)
    client.wait_for_workers(n_workers, timeout=60)
    return {"client": client, "workers": procs[1:]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request):
    return start_cluster(tmp_path_factory.mktemp("cluster"), request)


def direct_run(flags, out):
    """The same run made by miiii.py itself, as the runner's task starts it (--threads 1 --quiet)."""
    return subprocess.Popen([sys.executable, "miiii.py", *flags, "--out", str(out), "--threads", "1", "--quiet"],
                            cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def started_events(client, name=None):
    return [e for _, e in client.get_events(runner.PROGRESS_TOPIC)
            if isinstance(e, dict) and e["kind"] == "started" and name in (None, e["run"])]


def test_four_runs_on_two_workers_come_back_identical_to_direct_runs(cluster, tmp_path):
    runs = {f"tiny-s{s}": ("test", [*TINY, "--seed", str(s)]) for s in range(4)}
    direct = {name: direct_run(flags, tmp_path / "direct" / name) for name, (_, flags) in runs.items()}
    results, work, lines = tmp_path / "results", tmp_path / "work" / "runs", []
    outcomes = runner.run_missing(runs, cluster["client"], str(results), str(work), with_params=runs,
                                  log=lines.append, poll_s=0.2)
    for p in direct.values():
        assert p.wait(timeout=120) == 0
    assert {n: o["status"] for n, o in outcomes.items()} == {n: "complete" for n in runs}, lines
    for name in runs:
        got = sorted(os.listdir(results / name))
        assert got == sorted(["params.npz", *runner.SMALL_OUTPUTS]), got  # no checkpoint comes back
        for f in ("params.npz", "metrics.npz"):
            assert (results / name / f).read_bytes() == (tmp_path / "direct" / name / f).read_bytes(), (name, f)
        assert json.loads((results / name / "config.json").read_text())["status"] == "complete"
        assert json.loads((results / name / "analysis.json").read_text())["epochs"] == 50
        assert (work / name / "checkpoint.npz").exists()  # checkpoints stay where the run was made
    on = {e["on"] for e in started_events(cluster["client"]) if e["run"] in runs}
    assert len(on) == 2, on  # both workers made runs


def test_a_finished_run_is_not_submitted_again(cluster, tmp_path):
    runs = {"once": ("test", [*TINY, "--seed", "7"])}
    results, work = str(tmp_path / "results"), str(tmp_path / "work")
    assert runner.run_missing(runs, cluster["client"], results, work, log=print, poll_s=0.2)["once"]["status"] == "complete"
    before = {f: os.stat(os.path.join(results, "once", f)).st_mtime_ns for f in os.listdir(os.path.join(results, "once"))}
    n_started, lines = len(started_events(cluster["client"], "once")), []
    assert runner.run_missing(runs, cluster["client"], results, work, log=lines.append) == {"once": {"status": "present"}}
    assert lines == ["0 runs to make, 1 present"]
    time.sleep(0.5)  # an event of a task submitted anyway would be in by now
    assert len(started_events(cluster["client"], "once")) == n_started
    assert {f: os.stat(os.path.join(results, "once", f)).st_mtime_ns for f in before} == before


def test_a_cancelled_run_stops_at_a_checkpoint(cluster, tmp_path):
    """What Ctrl-C of the client does: runner.stop cancels the tasks, whose trainers checkpoint and stop."""
    client, work = cluster["client"], tmp_path / "work"
    spec = {"name": "stopped", "flags": ["--task", "nanda", "--p", "7", "--d", "16", "--epochs", "200000",
                                         "--checkpoint-every", "500", "--no-analysis"],
            "threads": 1, "work_dir": str(work), "heartbeat": True, "with_params": False, "token": f"stop-{os.getpid()}",
            "poll_s": 0.2, "lock_wait_s": 0}
    future = client.submit(runner.train_run, spec, resources={"cores": 1}, pure=False)
    wait_until(lambda: (runner.checkpoint_epoch(work / "stopped") or 0) >= 500, 60, "a checkpoint")
    lines = []
    runner.stop(client, {future: "stopped"}, spec["token"], lines.append, wait_s=60)
    ended = [e for e in runner.our_events(client, spec["token"]) if e["kind"] == "ended"]
    assert [e["rc"] for e in ended] == [143], lines  # miiii.py's exit after a checkpoint on SIGTERM
    log = (tmp_path / "logs" / "stopped.log").read_text()
    assert "interrupted at epoch" in log, log
    wall = json.loads((work / "stopped" / "wall.json").read_text())
    assert [w.get("finished") for w in wall] == [False]  # the piece's time is kept


@pytest.fixture
def held_lock(tmp_path, request):
    """A run directory whose lock another process holds (rundir.lock_run), as a trainer would."""
    d = tmp_path / "work" / "busy"
    code = (f"import sys, time; sys.path.insert(0, {ROOT!r}); import rundir; f = rundir.lock_run({str(d)!r}); "
            "print('held', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    request.addfinalizer(lambda: (proc.kill(), proc.wait()))
    assert proc.stdout.readline().strip() == "held"
    return d, proc


def test_a_run_another_process_is_training_is_not_started_again(cluster, tmp_path, held_lock):
    d, holder = held_lock
    runs, lines = {"busy": ("test", [*TINY, "--seed", "3"])}, []
    outcomes = runner.run_missing(runs, cluster["client"], str(tmp_path / "results"), str(d.parent), log=lines.append)
    assert outcomes == {"busy": {"status": "locked", "holder": f"process {holder.pid}"}}
    assert f"skipped busy: process {holder.pid} is training it (its run directory is locked)" in lines
    assert not started_events(cluster["client"], "busy")
    assert not (tmp_path / "results" / "busy").exists() and os.listdir(d) == ["lock"]
    # the task checks again on its worker (the lock may be taken after submission): it starts nothing
    result = runner.train_run(tiny_spec("busy", d.parent, runs["busy"][1], poll_s=0.2))
    assert (result["status"], result["holder"]) == ("locked", f"process {holder.pid}")
    assert os.listdir(d) == ["lock"] and holder.poll() is None


def test_workers_that_cannot_make_the_runs_are_said_in_one_line(cluster, tmp_path, request):
    with pytest.raises(runner.RunnerError, match="no Dask worker declares GPU=1"):  # workers declare cores only
        runner.check_workers(cluster["client"], [{"cores": 1}, {"GPU": 1}])
    spec = tmp_path / "scheduler.json"  # a worker started without experiments/ on its PYTHONPATH
    env = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
                               "0", "--no-dashboard", "--scheduler-file", str(spec)], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    request.addfinalizer(lambda: [(p.kill(), p.wait()) for p in procs])
    wait_until(lambda: spec.exists() and spec.stat().st_size > 0, 60, "the scheduler")
    address = json.loads(spec.read_text())["address"]
    procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                   "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"], cwd=tmp_path, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    with distributed.Client(address, timeout="30s") as client:
        client.wait_for_workers(1, timeout=60)
        with pytest.raises(runner.RunnerError, match="cannot run the runs .*PYTHONPATH=\\$PWD/experiments"):
            runner.check_workers(client, [{"cores": 1}])


def test_an_unreachable_scheduler_is_said_in_one_line(monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(runner, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(runner.RunnerError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}: "):
        runner.connect(f"tcp://127.0.0.1:{port}")


def test_the_default_local_cluster_makes_a_run_where_its_results_go(tmp_path):
    lines, runs = [], tmp_path / "runs"  # one directory for the runs and their results, as by default
    with runner.connect(None, jobs=1, threads=1, log=lines.append, dashboard="127.0.0.1:0") as client:
        assert lines[0].startswith("dask dashboard: http")
        workers = client.scheduler_info()["workers"].values()
        assert [w["resources"] for w in workers] == [{"cores": 1}]
        outcomes = runner.run_missing({"local": ("test", [*TINY, "--no-analysis"])}, client, str(runs), str(runs),
                                      log=lines.append, poll_s=0.2)
    assert outcomes["local"]["status"] == "complete", lines
    assert sorted(os.listdir(runs / "local")) == ["checkpoint.npz", "config.json", "lock", "metrics.npz", "params.npz",
                                                  "wall.json"]
    wall = json.loads((runs / "local" / "wall.json").read_text())
    assert [(w["threads"], w["runs_side_by_side"], w["epochs"]) for w in wall] == [(1, 1, 50)]
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert wall[0]["code_commit"].rstrip("+") == head  # each piece names the code that made it
    # results that are already where they go are not written again
    here = {"name": "local", "out": str(runs / "local"), "host": socket.gethostname(), "files": {"x": b""}}
    assert runner.write_back(str(runs), here) is None and not (runs / "local" / "x").exists()
    assert runner.write_back(str(tmp_path / "elsewhere"), here) == str(tmp_path / "elsewhere" / "local")
    assert (tmp_path / "elsewhere" / "local" / "x").read_bytes() == b""


def reap(pid, seconds):
    """Wait for an adopted child (this process is its subreaper) to end; its exit code, or None."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and subreapers are Linux's")
def test_a_killed_workers_run_is_finished_by_the_other_worker_and_leaves_no_trainer(tmp_path, request):
    c = start_cluster(tmp_path / "cluster", request)
    client, workers = c["client"], c["workers"]
    flags = ["--task", "nanda", "--p", "7", "--d", "16", "--epochs", "6000", "--checkpoint-every", "200",
             "--no-analysis"]
    clean = direct_run(flags, tmp_path / "clean")
    request.addfinalizer(lambda: (clean.kill(), clean.wait()))
    work, results, outcomes, lines = tmp_path / "work" / "runs", tmp_path / "results", {}, []
    job = threading.Thread(target=lambda: outcomes.update(runner.run_missing(
        {"long": ("test", flags)}, client, str(results), str(work), with_params={"long"}, log=lines.append,
        poll_s=0.2)), daemon=True)
    job.start()
    first = wait_until(lambda: started_events(client, "long"), 60, "the run to start")[0]
    wait_until(lambda: (runner.checkpoint_epoch(work / "long") or 0) >= 400, 60, "its checkpoints")
    victim = next(w for w in workers if w.pid == first["worker_pid"])
    # adopt the trainer when its worker dies (this process becomes its parent), to see how it ends
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    assert prctl(PR_SET_CHILD_SUBREAPER, 1) == 0
    code = None
    try:
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        code = reap(first["pid"], 30)
    finally:
        prctl(PR_SET_CHILD_SUBREAPER, 0)
        if code is None:  # still running (the test fails below): stop it
            os.kill(first["pid"], signal.SIGKILL)
            reap(first["pid"], 10)
    # it got SIGTERM from the kernel as its worker died and stopped (miiii.py: 128 + 15; it checkpoints first
    # unless a second SIGTERM comes, as it may when a many-threaded parent dies: see runner.die_with_parent)
    assert code == 143, f"the trainer of the killed worker ended with {code} (None: still running 30 s later)"
    with pytest.raises(ProcessLookupError):  # reaped: no such process is left
        os.kill(first["pid"], 0)
    job.join(timeout=120)
    assert outcomes.get("long", {}).get("status") == "complete", lines
    second = [e for e in started_events(client, "long") if e["pid"] != first["pid"]]
    assert len(second) == 1 and second[0]["worker_pid"] != victim.pid
    assert second[0]["epoch"] >= 400  # resumed from a checkpoint, not from the start
    log = (tmp_path / "work" / "logs" / "long.log").read_text()
    resumed = re.findall(f"resuming {re.escape(str(work / 'long'))} at epoch ([0-9]+)", log)
    assert len(resumed) == 1 and int(resumed[0]) >= 400, log  # the trainer on the other worker says so too
    assert clean.wait(timeout=120) == 0
    assert (results / "long" / "params.npz").read_bytes() == (tmp_path / "clean" / "params.npz").read_bytes()
    assert rundir.lock_holder(work / "long") is None


def tiny_spec(name, work_dir, flags, poll_s=0.05):
    """A task's spec as run_missing makes it, for calling train_run directly."""
    return {"name": name, "flags": flags, "threads": 1, "work_dir": str(work_dir), "heartbeat": False,
            "with_params": False, "token": "t", "poll_s": poll_s, "lock_wait_s": 0.5}


def test_a_failed_look_at_a_run_does_not_end_its_task(tmp_path, monkeypatch):
    """Reading the checkpoint's epoch can raise (CPython 3.11 raises SystemError when numpy parses .npy
    headers in two threads at once): the task says so in the run's log and the run goes on to the end."""
    looks = []

    def flaky(run_dir):
        looks.append(run_dir)
        if len(looks) > 1:
            raise SystemError("AST constructor recursion depth mismatch (before=57, after=54)")
        return None

    monkeypatch.setattr(runner, "checkpoint_epoch", flaky)
    result = runner.train_run(tiny_spec("flaky", tmp_path, [*TINY, "--epochs", "400", "--no-analysis"]))
    assert result["status"] == "complete" and result["rc"] == 0 and len(looks) > 2
    assert json.loads((tmp_path / "flaky" / "config.json").read_text())["status"] == "complete"
    log = open(result["log"]).read()
    assert "runner: watching the run failed once (SystemError: AST constructor recursion" in log


class Leaving(BaseException):
    """Stands for whatever ends a task from outside its watch (not an Exception: nothing catches it)."""


def test_a_task_that_leaves_stops_its_trainer_at_a_checkpoint(tmp_path, monkeypatch):
    polls = []

    def leave_on_the_third_poll(worker, key):
        polls.append(key)
        if len(polls) == 3:
            raise Leaving()
        return False

    monkeypatch.setattr(runner, "given_up", leave_on_the_third_poll)
    with pytest.raises(Leaving):
        runner.train_run(tiny_spec("leaving", tmp_path, [*TINY, "--epochs", "1000000", "--no-analysis"], 0.5))
    run_dir = tmp_path / "leaving"
    assert rundir.lock_holder(str(run_dir)) is None  # the trainer has ended, not left behind
    assert json.loads((run_dir / "config.json").read_text())["status"] == "interrupted"
    assert (run_dir / "checkpoint.npz").exists()


def test_runs_start_in_the_registrys_order(tmp_path):
    lines, runs = [], tmp_path / "runs"
    order = ["first", "second", "third", "fourth"]
    registry = {name: ("test", [*TINY, "--epochs", "20", "--seed", str(i), "--no-analysis"])
                for i, name in enumerate(order)}
    with runner.connect(None, jobs=1, threads=1, log=lines.append, dashboard="127.0.0.1:0") as client:
        outcomes = runner.run_missing(registry, client, str(runs), str(runs), log=lines.append, poll_s=0.1)
    assert all(o["status"] == "complete" for o in outcomes.values()), lines
    started = [line.split()[1] for line in lines if line.startswith("started ")]
    assert started == order, lines


DYING_PARENT = """
import subprocess, sys, threading, time
sys.path.insert(0, {experiments!r})
import runner

def start():
    cmd = [sys.executable, "miiii.py", *{flags!r}, "--out", {out!r}, "--threads", "1", "--quiet"]
    with open({log!r}, "w") as log:
        subprocess.Popen(cmd, cwd={root!r}, stdout=log, stderr=subprocess.STDOUT, preexec_fn=runner.die_with_parent())
    time.sleep(600)

for i in range(6):  # a worker's thread pool: the trainer is re-parented from thread to thread as they die
    threading.Thread(target=start if i == 0 else (lambda: time.sleep(600)), daemon=True).start()
time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_trainer_whose_runner_is_killed_checkpoints_and_says_so(tmp_path):
    """SIGKILL the multi-threaded process that started a trainer: the kernel sends the trainer its
    death signal (SIGTERM) once per re-parenting, more than once; it still checkpoints and stops."""
    out, log = tmp_path / "run", tmp_path / "trainer.log"
    script = tmp_path / "parent.py"
    script.write_text(DYING_PARENT.format(experiments=os.path.join(ROOT, "experiments"), root=ROOT, out=str(out),
                                          log=str(log), flags=[*TINY, "--epochs", "1000000", "--checkpoint-every", "20"]))
    parent = subprocess.Popen([sys.executable, str(script)], env=ENV)
    try:
        wait_until(lambda: (out / rundir.CHECKPOINT).exists(), 60, "the trainer's first checkpoint")
    finally:
        parent.kill()
        parent.wait()
    wait_until(lambda: rundir.lock_holder(str(out)) is None, 60, "the trainer to stop")
    assert json.loads((out / "config.json").read_text())["status"] == "interrupted"
    assert re.search(r"interrupted at epoch \d+: checkpoint written", log.read_text()), log.read_text()


BACKGROUND_RUNNER = """
import signal, sys
sys.path.insert(0, {experiments!r})
signal.signal(signal.SIGINT, signal.SIG_IGN)  # as for a job started with & by a script (campaign.sh)
import registry, reproduce
registry.select = lambda only=None: {{"long": ("test", {flags!r})}}
sys.exit(reproduce.main(["--runs-dir", {runs!r}, "--jobs", "1", "--threads", "1"]))
"""


def test_sigterm_stops_a_background_runner_and_its_runs_at_their_checkpoints(tmp_path):
    runs = tmp_path / "runs"
    script = tmp_path / "runner.py"
    script.write_text(BACKGROUND_RUNNER.format(experiments=os.path.join(ROOT, "experiments"), runs=str(runs),
                                               flags=[*TINY, "--epochs", "1000000", "--no-analysis", "--checkpoint-every", "20"]))
    proc = subprocess.Popen([sys.executable, str(script)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_until(lambda: (runs / "long" / rundir.CHECKPOINT).exists(), 60, "the run's first checkpoint")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "the runs stopped at their checkpoints" in err
    assert rundir.lock_holder(str(runs / "long")) is None
    assert json.loads((runs / "long" / "config.json").read_text())["status"] == "interrupted"
