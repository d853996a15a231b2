"""The run-directory lock (rundir.lock_run / lock_holder) between real processes, and the training
command under it: one writer per run directory."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import miiii
import rundir
from run_files import assert_same_files, cli_args, files, stat_tree

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOLD = ("import sys, time; sys.path.insert(0, {root!r}); import rundir; f = rundir.lock_run({d!r}); "
        "print('held', flush=True); time.sleep(60)")


def hold(d):
    """A separate process that takes d's lock and sleeps; returns it once it holds the lock."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD.format(root=ROOT, d=str(d))], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_free_directory_has_no_holder(tmp_path):
    assert rundir.lock_holder(tmp_path) is None
    f = rundir.lock_run(tmp_path)
    f.close()
    assert rundir.lock_holder(tmp_path) is None  # released on close, and the probe leaves it free
    rundir.lock_run(tmp_path).close()


def test_second_process_is_refused_and_named(tmp_path):
    proc = hold(tmp_path)
    try:
        assert rundir.lock_holder(tmp_path) == f"process {proc.pid}"
        with pytest.raises(rundir.RunLocked, match=f"in use by process {proc.pid}"):
            rundir.lock_run(tmp_path)
    finally:
        proc.kill()
        proc.wait()


def test_sigkilled_holder_leaves_no_stale_lock(tmp_path):
    proc = hold(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 5
    while rundir.lock_holder(tmp_path) is not None and time.time() < deadline:
        time.sleep(0.05)
    assert rundir.lock_holder(tmp_path) is None
    rundir.lock_run(tmp_path).close()


# ============================================================================ the training command under the lock
# Real `python miiii.py` processes on one --out. The first is frozen (SIGSTOP) while the others try
# the directory, so "changes nothing" is checked against a directory nobody else is writing; then
# it goes on (SIGCONT) and must end with the files of a clean run.
CFG = {**miiii.DEFAULTS, "task": "nanda", "p": 23, "d": 32, "heads": 2, "epochs": 300}
FLAGS = cli_args(CFG, "--quiet", "--checkpoint-every", "5")
CHILD_ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def start(out, *extra):
    return subprocess.Popen([sys.executable, "miiii.py", *FLAGS, "--out", str(out), *extra], cwd=ROOT,
                            env=CHILD_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(*args, script="miiii.py"):
    return subprocess.run([sys.executable, script, *map(str, args)], cwd=ROOT, env=CHILD_ENV,
                          capture_output=True, text=True, timeout=300)


def wait_until(condition, proc, what, timeout=120.0):
    end = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the training ended ({proc.returncode}) before {what}: {proc.communicate()[1]!r}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"no {what} within {timeout} s")
        time.sleep(0.005)


def is_stopped(pid):
    """The process is stopped (SIGSTOP has taken hold): state T in /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


def holds_lock(out, proc):
    """The training holds the lock: the lock file names it (written once flock succeeded)."""
    try:
        return (out / rundir.LOCK).read_text().strip() == str(proc.pid)
    except OSError:
        return False


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("lock-clean") / "run"
    done = run(*FLAGS, "--out", out)
    assert done.returncode == 0, done.stderr
    return files(out)


def test_a_second_writer_is_refused_and_changes_nothing(clean, tmp_path):
    """Started 0.5 s after the first: the same command, --resume, an extension and --force (another
    seed) each exit 2 with one line naming the first process; no file is changed or touched. A
    reader (fft_analysis.py) reads the running run meanwhile, says it is unfinished, writes nothing."""
    out = tmp_path / "run"
    first = start(out)
    began = time.monotonic()
    try:
        wait_until(lambda: holds_lock(out, first) and rundir.has_checkpoint(out), first, "its first checkpoint")
        time.sleep(max(0.0, 0.5 - (time.monotonic() - began)))
        os.kill(first.pid, signal.SIGSTOP)
        wait_until(lambda: is_stopped(first.pid), first, "the stop to take hold")  # kill() does not wait for it
        before = stat_tree(out)
        for extra in (FLAGS + ["--out", out], ["--resume", out, "--quiet"],
                      ["--resume", out, "--epochs", "400", "--quiet"],
                      cli_args({**CFG, "seed": 3}, "--quiet", "--force", "--out", out)):
            second = run(*extra)
            assert second.returncode == 2, (extra, second.stderr)
            assert second.stderr.splitlines() == [f"miiii.py: error: {out} is in use by process {first.pid} "
                                                  f"(one writer per run directory)"], second.stderr
            assert stat_tree(out) == before, extra
        read = run(out, script="fft_analysis.py")
        assert read.returncode == 0, read.stderr
        assert read.stderr.splitlines()[-1].startswith(f"fft_analysis.py: {out} is unfinished (running): up to epoch ")
        assert "report only" in read.stderr and f"run {os.path.abspath(out)}" in read.stdout
        assert stat_tree(out) == before
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert_same_files(files(out), clean)


def test_a_killed_holder_leaves_no_lock_and_the_run_goes_on(clean, tmp_path):
    """SIGKILL: no stale lock, config.json still says 'running' (nothing could be written); the same
    command then continues from the checkpoint and ends with the files of a clean run."""
    out = tmp_path / "run"
    first = start(out)
    wait_until(lambda: holds_lock(out, first) and os.path.exists(out / rundir.PREVIOUS), first, "two checkpoints")
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    assert rundir.lock_holder(out) is None
    assert json.loads((out / "config.json").read_text())["status"] == "running"
    again = run(*FLAGS, "--out", out)
    assert again.returncode == 0, again.stderr
    assert again.stderr.splitlines()[0].startswith(f"resuming {out} at epoch ")
    assert_same_files(files(out), clean)


def test_force_keeps_the_lock_file(tmp_path):
    """--force removes results, never the lock file: a new lock file would let a second writer in."""
    out = tmp_path / "run"
    small = cli_args({**CFG, "epochs": 5}, "--quiet", "--out", out)
    assert run(*small).returncode == 0
    inode = os.stat(out / rundir.LOCK).st_ino
    assert run(*small, "--force").returncode == 0
    assert os.stat(out / rundir.LOCK).st_ino == inode
