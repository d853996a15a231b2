"""rundir's readers and writers for the experiments: config.json or None, wall.json, a checkpoint's
epoch and metrics without its weights, and a run's files copied with config.json last."""
import os
import sys

import numpy as np
import pytest

import miiii
import rundir
from run_files import cli_args, main_stopped_at

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments"))
import campaign  # noqa: E402

TINY = {**miiii.DEFAULTS, "task": "nanda", "p": 11, "d": 8, "heads": 2, "epochs": 40, "log_every": 10}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished TINY run of 40 epochs and the same run stopped by SIGTERM in the step of epoch 25."""
    base = tmp_path_factory.mktemp("runs")
    assert miiii.main(cli_args(TINY, "--no-analysis", "--quiet", "--out", base / "finished")) == 0
    mp = pytest.MonkeyPatch()
    main_stopped_at(cli_args(TINY, "--no-analysis", "--quiet", "--out", base / "stopped"), 25, mp)
    mp.undo()
    return base


def synthetic_checkpoint(run_dir):
    """A checkpoint with a state shaped as miiii's: 3 metric rows allocated, 2 logged, weights (4, 5)."""
    state = {"epoch": 7, "n_logged": 2, "params": {"w": np.ones((4, 5))},
             "metrics": {"epochs": np.array([0, 5, 0]), "valid_acc": np.array([[0.1], [0.2], [0.0]])}}
    rundir.save_checkpoint(str(run_dir), state, {"config_hash": "x"})


# ============================================================================ checkpoints
def test_checkpoint_epoch_and_metrics_of_a_synthetic_checkpoint(tmp_path):
    synthetic_checkpoint(tmp_path)
    assert rundir.checkpoint_epoch(tmp_path) == 7
    epoch, metrics = rundir.checkpoint_metrics(tmp_path)
    assert epoch == 7 and sorted(metrics) == ["epochs", "valid_acc"]
    assert metrics["epochs"].tolist() == [0, 5]
    assert metrics["valid_acc"].tolist() == [[0.1], [0.2]]


def test_checkpoint_readers_decompress_no_weight(tmp_path, monkeypatch):
    synthetic_checkpoint(tmp_path)
    shapes, real = [], np.lib.npyio.NpzFile.__getitem__

    def getitem(self, key):  # every member read, by its shape
        a = real(self, key)
        shapes.append(a.shape)
        return a

    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", getitem)
    rundir.checkpoint_epoch(tmp_path)
    assert shapes == [()]  # the JSON skeleton alone
    shapes.clear()
    rundir.checkpoint_metrics(tmp_path)
    assert sorted(shapes) == [(), (3,), (3, 1)]  # the skeleton and the two metric arrays, not (4, 5)


def test_checkpoint_readers_agree_with_the_run_they_read(runs):
    for name, epoch in (("finished", 40), ("stopped", 26)):  # SIGTERM in the step of 25: checkpoint at 26
        run = runs / name
        assert rundir.checkpoint_epoch(run) == epoch
        got_epoch, metrics = rundir.checkpoint_metrics(run)
        written = rundir.load_npz(os.path.join(run, rundir.METRICS))  # written at the same checkpoint
        assert got_epoch == epoch and sorted(metrics) == sorted(set(written) - {"step_loss"})
        assert all(np.array_equal(metrics[k], written[k]) for k in metrics)
    # logged by then: 0, the powers of two and every 10th epoch (miiii.log_epochs)
    assert rundir.checkpoint_metrics(runs / "stopped")[1]["epochs"].tolist() == [0, 1, 2, 4, 8, 10, 16, 20]


def test_checkpoint_readers_fail_in_one_line(tmp_path):
    with pytest.raises(rundir.RunError, match="checkpoint.npz: missing"):
        rundir.checkpoint_epoch(tmp_path)
    synthetic_checkpoint(tmp_path)
    (tmp_path / rundir.CHECKPOINT).write_bytes(b"not a zip file at all")
    with pytest.raises(rundir.RunError, match="damaged"):
        rundir.checkpoint_metrics(tmp_path)


def test_the_campaign_reads_a_stopped_run_from_its_checkpoint(runs):
    progress = campaign.run_progress(str(runs / "stopped"))
    assert (progress["status"], progress["epoch"]) == ("interrupted", 26)
    assert progress["metrics"]["valid_acc"].shape == (8, 1) and progress["pieces"] == 0
    progress = campaign.run_progress(str(runs / "finished"))
    assert (progress["status"], progress["epoch"]) == ("complete", 40)


# ============================================================================ config.json, wall.json
def test_read_config_is_none_for_a_missing_or_unreadable_one(tmp_path):
    assert rundir.read_config(tmp_path) is None
    for text in ("{", "[1, 2]"):
        (tmp_path / rundir.CONFIG).write_text(text)
        assert rundir.read_config(tmp_path) is None
    (tmp_path / rundir.CONFIG).write_text('{"task": "nanda", "p": 11}')
    assert rundir.read_config(tmp_path) == {"task": "nanda", "p": 11}


def test_wall_json_round_trip_and_format(tmp_path):
    assert rundir.load_wall(tmp_path) == []
    entries = [{"seconds": 1.5, "threads": 1}, {"seconds": 2.0, "threads": 2, "finished": False}]
    rundir.save_wall(tmp_path, entries)
    assert rundir.load_wall(tmp_path) == entries
    assert (tmp_path / rundir.WALL).read_text().startswith('[\n {\n  "seconds": 1.5,\n  "threads": 1\n },\n {')
    for text in ("[{", '{"seconds": 1}'):
        (tmp_path / rundir.WALL).write_text(text)
        with pytest.raises(rundir.RunError, match="wall.json: damaged"):
            rundir.load_wall(tmp_path)


# ============================================================================ copying a run's files
def test_files_are_copied_with_config_last(tmp_path, monkeypatch):
    src, dst = tmp_path / "src", tmp_path / "dst" / "run"
    src.mkdir()
    for name, data in ((rundir.CONFIG, b"{}"), (rundir.METRICS, b"m"), (rundir.WALL, b"[]")):
        (src / name).write_bytes(data)
    files = rundir.read_files(src, (rundir.CONFIG, rundir.METRICS, rundir.ANALYSIS, rundir.WALL))
    assert files == {rundir.CONFIG: b"{}", rundir.METRICS: b"m", rundir.WALL: b"[]"}  # no analysis.json there
    order, real = [], rundir.atomic_write
    monkeypatch.setattr(rundir, "atomic_write", lambda path, write: (order.append(os.path.basename(path)),
                                                                     real(path, write)))
    rundir.write_files(dst, files)
    assert order == [rundir.METRICS, rundir.WALL, rundir.CONFIG]
    assert {f.name: f.read_bytes() for f in dst.iterdir()} == files


def test_a_damaged_metrics_file_is_a_run_error_for_the_campaign(runs, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for name, data in rundir.read_files(runs / "finished", (rundir.CONFIG, rundir.METRICS)).items():
        (run / name).write_bytes(data)
    (run / rundir.METRICS).write_bytes((run / rundir.METRICS).read_bytes()[:100])  # cut short
    progress = campaign.run_progress(str(run))
    assert progress["status"] == "complete (unreadable)" and progress["epoch"] is None
    assert "metrics.npz: damaged" in capsys.readouterr().err
