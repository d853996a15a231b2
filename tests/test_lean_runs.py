"""Run directories that can be trusted with days of compute: checkpoints with a fall-back, records
written once to files of their own, a run that can be read while it runs, an extension that removes
what it makes stale, and the disk a run needs checked before it starts.

One small T_miiii config (p 23, d 32, 260 epochs: 8 tasks, the Table-1 copy at epoch 256) with a
checkpoint every 50 epochs, run in-process through miiii.main; a SIGTERM during a chosen step stops
it (main_stopped_at), exactly as a user's Ctrl-C would.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fft_analysis as fa
import fourier
import miiii
import rundir
from run_files import assert_same_files, cli_args, damage, files, main_stopped_at, tree

ROOT = Path(__file__).resolve().parents[1]
CFG = {**miiii.DEFAULTS, "task": "miiii", "p": 23, "d": 32, "heads": 2, "epochs": 260}
FLAGS = cli_args(CFG, "--quiet", "--threads", "1", "--checkpoint-every", "50")


def run_cli(script, *args):
    return subprocess.run([sys.executable, script, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "MPLBACKEND": "Agg"})


def config_json(run):
    return json.loads((Path(run) / "config.json").read_text())


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """(directory, files) of the uninterrupted run."""
    out = tmp_path_factory.mktemp("lean-clean") / "run"
    assert miiii.main(FLAGS + ["--out", str(out)]) == 0
    return out, files(out)


@pytest.fixture
def stopped(tmp_path, monkeypatch, capsys):
    """The run stopped during the step of epoch 137: checkpoints at 50, 100 (now the previous one)
    and 138 (the latest), the records of epochs 100..137 in a segment of their own."""
    out = tmp_path / "run"
    main_stopped_at(FLAGS + ["--out", out], 137, monkeypatch)
    capsys.readouterr()
    return out


# ============================================================================ the fall-back
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous(clean, stopped, capsys):
    latest, previous = stopped / rundir.CHECKPOINT, stopped / rundir.PREVIOUS
    assert miiii.load_checkpoint(str(latest), CFG)["epoch"] == 138
    assert miiii.load_checkpoint(str(previous), CFG)["epoch"] == 100
    segments = sorted(os.listdir(stopped / rundir.SEGMENTS))
    assert "100-137.npz" in segments  # records taken after the previous checkpoint: they go, and come again
    damage(latest)
    assert miiii.main(["--resume", str(stopped), "--quiet", "--checkpoint-every", "50"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and err[2].startswith("done: ") and "Traceback" not in "\n".join(err)
    assert err[0].startswith(f"{latest}: damaged or not a miiii file (") and err[0].endswith(
        f"continuing from {previous}")
    assert err[1] == f"resuming {stopped} at epoch 100"
    assert_same_files(files(stopped), clean[1])  # bit-identical to the uninterrupted run
    # checkpointing where the clean run did, it wrote the same segments, byte for byte
    seg, clean_seg = stopped / rundir.SEGMENTS, clean[0] / rundir.SEGMENTS
    assert sorted(os.listdir(seg)) == sorted(os.listdir(clean_seg))
    assert all((seg / n).read_bytes() == (clean_seg / n).read_bytes() for n in os.listdir(seg))


def test_both_checkpoints_damaged_is_one_line_and_changes_nothing(stopped, capsys):
    latest, previous = stopped / rundir.CHECKPOINT, stopped / rundir.PREVIOUS
    damage(latest)
    damage(previous)
    before = tree(stopped, skip={rundir.LOCK})  # the lock file names the last process that took it
    assert miiii.main(["--resume", str(stopped), "--quiet"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"miiii.py: error: {latest}: damaged") and str(previous) in err[0]
    assert tree(stopped, skip={rundir.LOCK}) == before


def test_a_checkpoint_cut_short_between_its_renames_resumes_from_the_previous(clean, stopped, capsys):
    """A kill between 'latest -> previous' and 'new -> latest' leaves no checkpoint.npz."""
    os.remove(stopped / rundir.CHECKPOINT)
    assert miiii.main(["--resume", str(stopped), "--quiet"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{stopped / rundir.CHECKPOINT}: missing: continuing from {stopped / rundir.PREVIOUS}"
    assert_same_files(files(stopped), clean[1])


# ============================================================================ damaged records
def test_a_damaged_record_file_is_one_line_everywhere(stopped, capsys):
    """A damaged segment: resuming refuses in one line and changes nothing; the readers name it."""
    segment = stopped / rundir.SEGMENTS / "0-49.npz"
    damage(segment)
    before = tree(stopped, skip={rundir.LOCK})
    assert miiii.main(["--resume", str(stopped), "--quiet"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"miiii.py: error: {segment}: damaged or not a miiii file " + err[0].split("not a miiii file ")[1]]
    assert tree(stopped, skip={rundir.LOCK}) == before
    for script, args in (("fft_analysis.py", [stopped]), ("figures.py", ["--miiii", stopped, "--out", stopped.parent])):
        done = run_cli(script, *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.splitlines() == [f"{script}: error: {segment}: damaged or not a miiii file "
                                            + done.stderr.split("not a miiii file ")[1].strip()]


def test_a_record_damaged_while_the_run_goes_on_ends_it_in_one_line(tmp_path, monkeypatch, capsys):
    """The end of the run combines the segments: a damaged one is named, the final checkpoint kept."""
    out, real = tmp_path / "run", miiii.checkpoint_run

    def checkpoint(run, state, cfg):
        real(run, state, cfg)
        if state["epoch"] == 100:
            damage(Path(run) / rundir.SEGMENTS / "0-49.npz")

    monkeypatch.setattr(miiii, "checkpoint_run", checkpoint)
    assert miiii.main(FLAGS + ["--out", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0] == f"run directory: {out}" and "Traceback" not in err[1]
    assert err[1].startswith(f"miiii.py: error: {out / rundir.SEGMENTS / '0-49.npz'}: damaged")
    assert err[1].endswith(f"the checkpoint of epoch 260 is kept in {out}")
    assert miiii.load_checkpoint(str(out / rundir.CHECKPOINT), CFG)["epoch"] == 260
    assert config_json(out)["status"] == "interrupted"


def test_a_damaged_copy_is_one_line_in_the_analysis(clean, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(clean[0], run)
    copy = run / "progress_params" / "130.npz"
    damage(copy)
    done = run_cli("fft_analysis.py", run)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1 and str(copy) in done.stderr and "damaged" in done.stderr


def test_a_record_file_lost_before_a_resume_is_named(stopped, capsys):
    copy = stopped / "progress_params" / "65.npz"
    os.remove(copy)
    assert miiii.main(["--resume", str(stopped), "--quiet"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"miiii.py: error: {copy}: missing"]


# ============================================================================ sizes
def count_writes(monkeypatch):
    """[(path, bytes)] of every file renamed into place from a temporary name (every write of rundir)."""
    writes, real = [], os.replace

    def replace(src, dst, *args, **kwargs):
        if str(src).endswith(".tmp"):
            writes.append((os.path.relpath(dst, os.path.dirname(os.path.dirname(dst))) if
                           Path(dst).parent.name in (rundir.SEGMENTS, "progress_params") else Path(dst).name,
                           os.path.getsize(src)))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return writes


@pytest.mark.parametrize("extra", [{}, {"filter": "ma", "window": 7}], ids=["ema", "ma"])
def test_checkpoints_hold_what_changes_and_records_are_written_once(extra, tmp_path, monkeypatch):
    """Bound, EMA: a checkpoint <= 5 x params.npz. It holds four weight-sized arrays (weights, AdamW's
    m and v, the EMA; each compresses about as the weights do, ~10 %), and the metrics so far (at most
    metrics.npz), 8 bytes per step loss, its JSON skeleton and omega's frequency table: together less
    than one more params.npz here (measured 4.2x). MA: the window is state, 7 more weight copies and
    their running sum: <= (window + 5) x params.npz. No checkpoint holds a record, so the bound does
    not grow with the run. Each record file is written once, and a parameter copy is the size of
    params.npz (float32 weights, +1 % for its zip entries)."""
    cfg = {**CFG, **extra}
    out = tmp_path / "run"
    writes = count_writes(monkeypatch)
    assert miiii.main(cli_args(cfg, "--quiet", "--threads", "1", "--checkpoint-every", "50", "--out", out)) == 0
    monkeypatch.undo()
    params = os.path.getsize(out / "params.npz")
    checkpoints = [size for path, size in writes if path == rundir.CHECKPOINT]
    assert len(checkpoints) == 6  # epochs 50, 100, 150, 200, 250 and the final one
    assert max(checkpoints) <= (5 if not extra else cfg["window"] + 5) * params
    meta, state = rundir.read_checkpoint(str(out / rundir.CHECKPOINT))
    assert not any(state["records"][kind] for kind in ("omega", "omega_talk", "grad_norms", "snapshots", "progress"))
    np.testing.assert_array_equal(state["records"]["on_disk"]["progress"], fourier.progress_epochs(260))
    records = [path for path, _ in writes if "/" in path or path.startswith("params_")]
    assert len(records) == len(set(records)) and "params_256.npz" in records  # each written once
    assert len([p for p in records if p.startswith("progress_params/")]) == len(fourier.progress_epochs(260))
    assert len([p for p in records if p.startswith("records/")]) == 6  # one segment per checkpoint
    assert all(size <= 1.01 * params for path, size in writes if path.startswith(("progress_params/", "params_")))
    # what else is written: config.json (start, end), and at each checkpoint metrics.npz and params.npz
    names = [path for path, _ in writes if path not in records]
    others = {path: names.count(path) for path in names}
    assert others == {"config.json": 2, "metrics.npz": 6, "params.npz": 6, rundir.CHECKPOINT: 6,
                      "omega.npz": 1, "omega_talk.npz": 1, "grad_norms.npz": 1}
    # the up-front estimate covers the directory it made
    weights = miiii.model_size(cfg)[1] * 4
    estimate = miiii.estimate_disk_bytes(cfg, miiii.records_bytes(cfg, weights))
    assert rundir.dir_bytes(out) <= estimate <= 3 * rundir.dir_bytes(out)


def test_the_disk_estimate_counts_the_ma_window():
    ema, ma = CFG, {**CFG, "filter": "ma", "window": 100}
    weights = miiii.model_size(CFG)[1] * 4
    # three checkpoints at a time (writing one, the latest, the previous), each with 101 more copies
    assert miiii.estimate_disk_bytes(ma) - miiii.estimate_disk_bytes(ema) == 3 * 100 * weights


def test_a_run_that_will_not_fit_on_the_disk_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(rundir, "free_bytes", lambda path: 10 ** 5)
    out = tmp_path / "new" / "run"
    assert miiii.main(FLAGS + ["--out", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"miiii.py: error: the run needs about ") and "0.1 MiB is free" in err[0]
    assert not (tmp_path / "new").exists()  # the lock's directory is removed again
    empty = tmp_path / "empty"
    empty.mkdir()
    assert miiii.main(FLAGS + ["--out", str(empty)]) == 2
    assert os.listdir(empty) == []  # nor does a lock file stay behind


# ============================================================================ reading a run that is not finished
def test_an_interrupted_run_can_be_read(stopped, tmp_path):
    assert config_json(stopped)["status"] == "interrupted"
    metrics = rundir.load_npz(str(stopped / "metrics.npz"))
    assert len(metrics["step_loss"]) == 138 and metrics["epochs"][-1] <= 138
    np.testing.assert_array_equal(metrics["epochs"], miiii.log_epochs(260, 0)[:len(metrics["epochs"])])
    assert miiii.log_epochs(260, 0)[len(metrics["epochs"])] > 138  # every epoch logged so far, no more
    state = miiii.load_checkpoint(str(stopped / rundir.CHECKPOINT), CFG)
    with np.load(stopped / "params.npz") as saved:
        assert all(np.array_equal(saved[k], state["params"][k]) for k in miiii.PARAM_NAMES)
    before = tree(stopped)
    done = run_cli("fft_analysis.py", stopped)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [f"fft_analysis.py: {stopped} is unfinished (interrupted): up to epoch 138 "
                                        f"of 260; report only (analysis.json is written once the run is complete)"]
    assert "Omega count, ours" in done.stdout and "progress measures" in done.stdout
    assert tree(stopped) == before  # nothing written into a run that is not finished
    figs = tmp_path / "figs"
    done = run_cli("figures.py", "--miiii", stopped, "--out", figs)
    assert done.returncode == 0, done.stderr
    assert f"figures.py: --miiii {stopped} is unfinished (interrupted): up to epoch 138 of 260" in done.stderr
    for stem in ("fig05_task_accuracy", "fig10_active_frequencies", "extra_gradient_norms"):  # from the segments
        assert (figs / f"{stem}.png").exists(), done.stderr
    assert tree(stopped) == before


# ============================================================================ extending a finished run
def test_extending_removes_what_the_longer_run_makes_stale(clean, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    shutil.copytree(clean[0], run)
    assert fa.main([str(run)]) == 0 and (run / "analysis.json").exists() and (run / "progress.npz").exists()
    main_stopped_at(["--resume", run, "--epochs", 400, "--quiet"], 330, monkeypatch)
    capsys.readouterr()
    for name in ("analysis.json", "progress.npz", "omega.npz", "omega_talk.npz", "grad_norms.npz"):
        assert not (run / name).exists(), name  # they described the 260-epoch run
    assert config_json(run)["epochs"] == 400 and config_json(run)["status"] == "interrupted"
    assert miiii.main(["--resume", str(run), "--quiet"]) == 0
    with np.load(run / "omega.npz") as om:
        old, new = fourier.snapshot_epochs(260), fourier.snapshot_epochs(400)
        np.testing.assert_array_equal(om["epochs"], np.union1d(old, new[new > 260]))
    assert fa.main([str(run)]) == 0
    assert rundir.load_json(str(run / "analysis.json"))["epochs"] == 400


def test_rundir_imports_nothing_of_the_project():
    """rundir.py is the bottom of the import graph: stdlib and numpy only."""
    code = "import sys, rundir; print(sorted(m for m in ('miiii', 'fft_analysis', 'figures', 'grokfast') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
