"""The run-directory lock (rundir.lock_run / lock_holder) between real processes."""
import os
import signal
import subprocess
import sys
import time

import pytest

import rundir

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
