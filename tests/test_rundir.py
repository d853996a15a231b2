"""Run directories as a user meets them: re-running a command never destroys a finished run, a
finished run can be trained longer (bit-identically), and a failed write (a full disk) loses nothing
already saved and says so in one line."""
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

import miiii
import rundir

TINY = {**miiii.DEFAULTS, "task": "nanda", "p": 11, "d": 8, "heads": 2, "epochs": 80, "dropout": 0.1,
        "log_every": 10}


def flags(cfg, *extra):
    args = []
    for k in miiii.RESULT_KEYS:
        if k != "gpu":
            args += ["--" + k.replace("_", "-"), str(cfg[k])]
    return args + ["--quiet", *[str(a) for a in extra]]


def files(folder):
    return {f.name: f.read_bytes() for f in sorted(Path(folder).iterdir()) if f.is_file()}


def npz(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def config_json(run):
    return json.loads((Path(run) / "config.json").read_text())


def finished_run(tmp_path, epochs=40, capsys=None):
    """A finished TINY run of `epochs` in tmp_path/run (stderr so far discarded); its files."""
    run = tmp_path / "run"
    assert miiii.main(flags({**TINY, "epochs": epochs}, "--no-analysis", "--out", run)) == 0
    if capsys is not None:
        capsys.readouterr()
    return run, files(run)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """Runs of 40 and 80 epochs from the start (no analysis: params and metrics are what we compare)."""
    base = tmp_path_factory.mktemp("straight")
    for epochs in (40, 80):
        assert miiii.main(flags({**TINY, "epochs": epochs}, "--no-analysis", "--out", base / str(epochs))) == 0
    return base


# ============================================================================ re-running a command
def test_rerunning_a_finished_run_leaves_it_untouched(straight, tmp_path, capsys):
    run = tmp_path / "run"
    cfg = {**TINY, "epochs": 40}
    assert miiii.main(flags(cfg, "--no-analysis", "--out", run)) == 0
    before = {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in run.iterdir()}
    capsys.readouterr()
    assert miiii.main(flags(cfg, "--no-analysis", "--out", run)) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is complete" in err[0] and str(run) in err[0] and "--force" in err[0]
    assert {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in run.iterdir()} == before
    # --resume of a finished run without a larger --epochs: the same, nothing touched
    assert miiii.main(["--resume", str(run), "--quiet"]) == 0
    assert "is complete" in capsys.readouterr().err
    assert {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in run.iterdir()} == before
    # --force redoes it (same config: the same results)
    assert miiii.main(flags(cfg, "--no-analysis", "--out", run, "--force")) == 0
    assert files(run)["params.npz"] == before["params.npz"][0]


def test_rerunning_an_interrupted_run_continues_it(straight, tmp_path, capsys):
    """The same command after an interruption picks up the checkpoint instead of starting over."""
    cfg = {**TINY, "epochs": 40}
    run = tmp_path / "run"
    miiii.start_run(str(run), cfg)
    state = miiii.init_state(cfg)
    with pytest.raises(miiii.Interrupted):
        miiii.train(cfg, progress=False, state=state, checkpoint=lambda s: miiii.checkpoint_run(str(run), s, cfg),
                    stop=lambda: state["epoch"] == 17)
    capsys.readouterr()
    assert miiii.main(flags(cfg, "--no-analysis", "--out", run)) == 0
    assert "resuming" in capsys.readouterr().err
    assert files(run)["params.npz"] == files(straight / "40")["params.npz"]


def test_another_run_in_the_directory_is_refused_with_a_hint(straight, tmp_path, capsys):
    run, before = finished_run(tmp_path, capsys=capsys)
    assert miiii.main(flags({**TINY, "epochs": 80}, "--no-analysis", "--out", run)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--resume {run} --epochs 80" in err[0]
    assert miiii.main(flags({**TINY, "epochs": 40, "seed": 3}, "--no-analysis", "--out", run)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds another run" in err[0] and "--force" in err[0]
    assert files(run) == before


# ============================================================================ training longer
def test_extending_a_finished_run_is_bit_identical(straight, tmp_path, capsys):
    run, _ = finished_run(tmp_path, capsys=capsys)
    assert miiii.main(["--resume", str(run), "--epochs", "80", "--quiet"]) == 0
    assert "resuming" in capsys.readouterr().err
    want = straight / "80"
    assert files(run)["params.npz"] == files(want)["params.npz"]  # bit-identical weights
    cfg = config_json(run)
    assert cfg["epochs"] == 80 and cfg["extended_from"] == [40] and cfg["status"] == "complete"
    assert cfg["config_hash"] == config_json(want)["config_hash"]  # the hash of what it now is
    got, ref = npz(run / "metrics.npz"), npz(want / "metrics.npz")
    np.testing.assert_array_equal(got["step_loss"], ref["step_loss"])
    # the schedule: 40's logged epochs, then those of an 80-epoch run beyond 40
    old = miiii.log_epochs(40, 10)
    new = miiii.log_epochs(80, 10)
    np.testing.assert_array_equal(got["epochs"], np.concatenate([old, new[new > 40]]))
    common = np.isin(ref["epochs"], got["epochs"])
    for key in miiii.METRIC_KEYS:  # the same values where both logged
        np.testing.assert_array_equal(got[key][np.isin(got["epochs"], ref["epochs"])], ref[key][common])


def test_extending_twice_and_an_interrupted_extension(straight, tmp_path, capsys):
    run = tmp_path / "run"
    assert miiii.main(flags({**TINY, "epochs": 20}, "--no-analysis", "--out", run)) == 0
    assert miiii.main(["--resume", str(run), "--epochs", "40", "--quiet", "--no-analysis"]) == 0
    # an extension interrupted before it wrote a checkpoint of its own: config.json says 80, the
    # checkpoint is the final one of epoch 40
    cfg = config_json(run)
    (run / "config.json").write_text(json.dumps({**cfg, "epochs": 80, "extended_from": [20, 40],
                                                 "status": "running"}))
    assert miiii.main(["--resume", str(run), "--quiet", "--no-analysis"]) == 0
    assert config_json(run)["extended_from"] == [20, 40]
    assert files(run)["params.npz"] == files(straight / "80")["params.npz"]


def test_a_run_is_never_shortened(straight, tmp_path, capsys):
    run, before = finished_run(tmp_path, capsys=capsys)
    assert miiii.main(["--resume", str(run), "--epochs", "30", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "only ever extended" in err[0]
    assert files(run) == before


def test_a_run_finished_before_final_states_were_kept_cannot_be_extended(straight, tmp_path, capsys):
    run = tmp_path / "run"
    assert miiii.main(flags({**TINY, "epochs": 40}, "--no-analysis", "--out", run)) == 0
    os.remove(run / rundir.CHECKPOINT)
    assert not (run / rundir.PREVIOUS).exists()  # one checkpoint only: the final one
    cfg = config_json(run)
    del cfg["status"]  # as config.json was written before it had a status
    (run / "config.json").write_text(json.dumps(cfg))
    before = files(run)
    capsys.readouterr()
    assert miiii.main(flags({**TINY, "epochs": 40}, "--no-analysis", "--out", run)) == 0  # complete
    assert "is complete" in capsys.readouterr().err
    assert miiii.main(["--resume", str(run), "--epochs", "80", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be extended" in err[0]
    assert files(run) == before


# ============================================================================ failed writes
def failing_fsync(after):
    """An os.fsync that works `after` times, then fails as a full disk does."""
    real, calls = os.fsync, {"n": 0}

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] > after:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    return fsync


@pytest.mark.parametrize("after", [1, 3, 4, 10, 12, 13])
def test_a_full_disk_loses_nothing_already_saved(after, straight, tmp_path, monkeypatch, capsys):
    """Writes: config.json (1); at each checkpoint (epochs 10, 20, 30) metrics.npz, params.npz, then the
    checkpoint itself (2-4, 5-7, 8-10); at the end the final ones (11-13) and config.json 'complete'
    (14). The disk fills after `after` writes: one line naming the file and why, and the checkpoint
    that is kept (true: it loads, at that epoch), exit 4, the run not marked complete; once there is
    space, --resume ends with the results of a clean run."""
    run = tmp_path / "run"
    cfg = {**TINY, "epochs": 40}
    monkeypatch.setattr(os, "fsync", failing_fsync(after))
    rc = miiii.main(flags(cfg, "--no-analysis", "--checkpoint-every", 10, "--out", run))
    monkeypatch.undo()
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 4 and "Traceback" not in "\n".join(err)
    assert len(err) == 2 and err[0].startswith("run directory:")  # the run's first line, then the error
    assert err[1].startswith("miiii.py: error: cannot write ") and "No space left on device" in err[1]
    assert "--resume" in err[1]
    assert config_json(run)["status"] == "running"  # the disk is full: not even 'interrupted' could be written
    assert not [name for name in os.listdir(run) if name.endswith(".tmp")]
    want = {1: None, 3: None, 4: 10, 10: 30, 12: 30, 13: 40}[after]  # the newest checkpoint that was written
    if want is None:
        assert not (run / rundir.CHECKPOINT).exists()
        assert "no checkpoint was written" in err[1]
    else:
        assert f"the checkpoint of epoch {want} is kept" in err[1]
        assert miiii.load_checkpoint(str(run / rundir.CHECKPOINT), cfg)["epoch"] == want
    assert miiii.main(["--resume", str(run), "--quiet", "--no-analysis"]) == 0
    assert files(run)["params.npz"] == files(straight / "40")["params.npz"]
    assert config_json(run)["status"] == "complete"


def test_a_new_run_that_cannot_write_its_config_leaves_no_directory(tmp_path, monkeypatch, capsys):
    run = tmp_path / "new" / "run"
    monkeypatch.setattr(os, "fsync", failing_fsync(0))
    rc = miiii.main(flags({**TINY, "epochs": 5}, "--no-analysis", "--out", run))
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 4 and len(err) == 1 and "config.json" in err[0] and "No space left" in err[0]
    assert not (tmp_path / "new").exists()  # nor the parent made for it


def test_resume_of_a_directory_that_does_not_exist(tmp_path, capsys):
    assert miiii.main(["--resume", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"miiii.py: error: --resume {tmp_path / 'nope'}: no such run directory"]


# ============================================================================ --threads
def test_threads_are_recorded_and_reused_by_resume(tmp_path, capsys):
    """OpenBLAS rounds differently with 1 and 2 threads, so the count is part of what makes a resume
    bit-identical: it is recorded, and --resume uses it again unless told otherwise."""
    cfg = {**TINY, "task": "miiii", "p": 23, "d": 32, "epochs": 30}
    one = tmp_path / "one"
    assert miiii.main(flags(cfg, "--no-analysis", "--threads", 1, "--out", one)) == 0
    assert config_json(one)["threads"] == 1
    assert config_json(one)["config_hash"] == miiii.config_hash(cfg)  # not part of the hash
    # the same run, interrupted at epoch 13 and resumed without --threads
    run = tmp_path / "run"
    assert miiii.main(flags({**cfg, "epochs": 13}, "--no-analysis", "--threads", 1, "--out", run)) == 0
    assert miiii.main(["--resume", str(run), "--epochs", "30", "--quiet", "--no-analysis"]) == 0
    assert config_json(run)["threads"] == 1
    assert files(run)["params.npz"] == files(one)["params.npz"]
    capsys.readouterr()
    assert miiii.main(flags(cfg, "--threads", 0, "--out", tmp_path / "bad")) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err


# ============================================================================ filters and schedules
@pytest.mark.parametrize("extra", [{"filter": "norm"}, {"filter": "bandpass", "alpha_fast": 0.8},
                                   {"filter": "ma", "window": 7}, {"lamb_schedule": "gap"}])
def test_every_filter_and_schedule_resumes_bit_identically(extra, tmp_path):
    """A run interrupted at epoch 23 and resumed from its checkpoint ends with the weights of the
    uninterrupted run, for each filter and for the loss-gap lambda schedule."""
    cfg = {**TINY, "task": "miiii", "p": 13, "epochs": 40, **extra}
    straight = miiii.train(cfg, progress=False)[0]
    path = str(tmp_path / rundir.CHECKPOINT)
    state = miiii.init_state(cfg)
    with pytest.raises(miiii.Interrupted):
        miiii.train(cfg, progress=False, state=state, checkpoint=lambda s: miiii.save_checkpoint(path, s, cfg),
                    stop=lambda: state["epoch"] == 23)
    resumed = miiii.train(cfg, progress=False, state=miiii.load_checkpoint(path, cfg))[0]
    assert all(np.array_equal(straight[k], resumed[k]) for k in straight)
    baseline = miiii.train({**TINY, "task": "miiii", "p": 13, "epochs": 40}, progress=False)[0]
    assert not all(np.array_equal(straight[k], baseline[k]) for k in straight)  # the option did something


def test_new_settings_keep_older_hashes():
    """alpha_fast and lamb_schedule came later: at their defaults they leave the hash as it was."""
    cfg = dict(miiii.DEFAULTS)
    old_keys = [k for k in miiii.RESULT_KEYS if k not in miiii.LATER_KEYS]
    import hashlib
    blob = json.dumps({k: cfg[k] for k in old_keys}, sort_keys=True)
    assert miiii.config_hash(cfg) == hashlib.sha1(blob.encode()).hexdigest()[:8] == "591a5c35"
    assert miiii.config_hash({**cfg, "lamb_schedule": "gap"}) != miiii.config_hash(cfg)
