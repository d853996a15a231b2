"""rundir: the run directory's format, owned in one place.

One writer per run directory: a training process holds an exclusive OS lock (fcntl.flock) on the
file `lock` inside it for its whole life. The kernel drops the lock when the process ends, however
it ends (a SIGKILL included), so a dead run never leaves a stale lock behind. Readers take no lock.
POSIX only (fcntl): elsewhere lock_run and lock_holder raise LockUnsupported.
"""
import errno
import os

LOCK = "lock"  # the lock file; it holds the pid of the process that holds the lock (for messages)


class RunLocked(Exception):
    """Another process holds the run directory's lock; the message names it."""


class LockUnsupported(Exception):
    """This platform has no fcntl.flock."""


def _flock():
    try:
        import fcntl
    except ImportError:  # Windows
        raise LockUnsupported("run-directory locks need fcntl (POSIX)") from None
    return fcntl


def _holder_text(path):
    try:
        with open(path) as f:
            pid = f.read().strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"


def lock_run(run_dir):
    """Take the run directory's lock (creating the directory if needed) and keep it until the
    returned file object is closed or the process ends. RunLocked if another process holds it."""
    fcntl = _flock()
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, LOCK)
    f = open(path, "a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        f.close()
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunLocked(f"{run_dir} is in use by {_holder_text(path)} (one writer per run directory)") from None
        raise
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def lock_holder(run_dir):
    """None when no process holds run_dir's lock, else a phrase naming the holder ('process 1234').

    A probe: it takes the lock for an instant if it is free. The answer may be stale by the time it
    is read (a run may start or end just after); use lock_run to act on it."""
    fcntl = _flock()
    path = os.path.join(run_dir, LOCK)
    try:
        f = open(path, "r")
    except OSError:
        return None  # no lock file: nobody has ever trained here with locking
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return _holder_text(path)
            raise
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return None
