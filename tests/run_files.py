"""What the run-directory tests compare: a run directory's files, and checkpoints array by array."""
import io
import json
import os
import signal
from pathlib import Path

import numpy as np

import miiii
import rundir

# Not compared between runs: the lock file (a pid), the previous checkpoint and the record segments
# (where a run stopped and when it checkpointed decide them; their contents are compared as the
# combined omega.npz, omega_talk.npz and grad_norms.npz).
NOT_COMPARED = {rundir.LOCK, rundir.PREVIOUS}


def files(folder):
    """{relative path: bytes} of the files of a run directory, records/ and NOT_COMPARED left out."""
    folder = Path(folder)
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*"))
            if f.is_file() and f.name not in NOT_COMPARED and f.parent.name != rundir.SEGMENTS}


def tree(folder, skip=()):
    """{relative path: bytes or 'dir'} of everything under folder but `skip` (to show nothing changed)."""
    return {str(f.relative_to(folder)): (f.read_bytes() if f.is_file() else "dir")
            for f in sorted(Path(folder).rglob("*")) if f.name not in skip}


def stat_tree(folder):
    """{relative path: (bytes, mtime in ns)} of every file under folder: changed, or touched."""
    return {str(f.relative_to(folder)): (f.read_bytes(), f.stat().st_mtime_ns)
            for f in sorted(Path(folder).rglob("*")) if f.is_file()}


def checkpoint_content(blob):
    """A checkpoint's arrays and its JSON skeleton without the analysis hooks' wall-clock timing."""
    with np.load(io.BytesIO(blob)) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("__meta__")))
    meta["state"]["dict"].get("records", {}).get("dict", {}).pop("timing", None)
    return meta, arrays


def same_checkpoint(a, b):
    (meta_a, arrays_a), (meta_b, arrays_b) = checkpoint_content(a), checkpoint_content(b)
    return meta_a == meta_b and sorted(arrays_a) == sorted(arrays_b) and \
        all(np.array_equal(arrays_a[k], arrays_b[k]) for k in arrays_a)


def assert_same_files(got, want, ignore_tmp=False):
    """Byte equality of two {name: bytes} dicts, reporting names rather than bytes.

    The final checkpoint (kept so a finished run can be extended) holds the seconds the snapshots
    took; it is compared on everything else, array by array.
    """
    if ignore_tmp:
        got = {k: v for k, v in got.items() if not k.endswith(".tmp")}
    assert sorted(got) == sorted(want), f"file sets differ: {sorted(got)} vs {sorted(want)}"
    differ = [name for name in want if got[name] != want[name]
              and not (name == rundir.CHECKPOINT and same_checkpoint(got[name], want[name]))]
    assert differ == [], f"files differ from the uninterrupted run: {differ}"


def cli_args(cfg, *extra):
    """Command-line flags for the config (every result key) plus extra flags."""
    args = []
    for k in miiii.RESULT_KEYS:
        if k == "gpu":
            continue
        args += ["--" + k.replace("_", "-"), str(cfg[k])]
    return args + [str(a) for a in extra]


def main_stopped_at(argv, epoch, monkeypatch):
    """miiii.main(argv) in-process with a real SIGTERM arriving during the step of `epoch`: the run
    checkpoints at epoch + 1 and returns 143 (asserted)."""
    real = miiii.dropout_rng

    def rng(seed, e):  # called once per step, with the step's epoch
        if e == epoch:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(seed, e)

    monkeypatch.setattr(miiii, "dropout_rng", rng)
    rc = miiii.main([str(a) for a in argv])
    monkeypatch.undo()
    assert rc == 128 + signal.SIGTERM
    return rc


def damage(path):
    """1,000 zero bytes written over the middle of a file (its size unchanged)."""
    data = bytearray(Path(path).read_bytes())
    middle = len(data) // 2
    data[middle - 500: middle + 500] = bytes(1000)
    Path(path).write_bytes(bytes(data))
