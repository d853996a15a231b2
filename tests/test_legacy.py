"""Run directories made before the lean layout stay readable, resumable and extendable.

tests/data/legacy-finished and legacy-interrupted were made by the code of commit cc8e527
(tests/data/make_legacy_runs.py): T_miiii at p 11, d 8, 40 epochs, one BLAS thread; every analysis
record inside checkpoint.npz, all progress copies in one progress_params.npz. What came from those
files (the records and metrics before the checkpoint) must come back exactly, on any machine. What
today's code computes after it must equal a run of today's code from the start: bit for bit where
this machine reproduces the legacy run's weights (the same BLAS kernels: checked, not assumed),
else to float32 rounding.
"""
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

import fft_analysis as fa
import fourier
import figures
import miiii
import rundir
from run_files import cli_args, files, tree

DATA = Path(__file__).parent / "data"
FINISHED, INTERRUPTED = DATA / "legacy-finished", DATA / "legacy-interrupted"
CFG = {**miiii.DEFAULTS, "task": "miiii", "p": 11, "d": 8, "heads": 2, "epochs": 40}


@pytest.fixture(scope="module")
def today(tmp_path_factory):
    """Today's code from the start: 40 epochs, 80 epochs, and the 40-epoch run extended to 80."""
    base = tmp_path_factory.mktemp("legacy-today")
    for epochs in (40, 80):
        assert miiii.main(cli_args({**CFG, "epochs": epochs}, "--quiet", "--threads", "1",
                                   "--out", base / str(epochs))) == 0
    shutil.copytree(base / "40", base / "40to80")
    assert miiii.main(["--resume", str(base / "40to80"), "--epochs", "80", "--quiet"]) == 0
    return base


def npz(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def reproduces(today):
    """Does this machine compute the legacy run's weights bit for bit?"""
    return (today / "40" / "params.npz").read_bytes() == (FINISHED / "params.npz").read_bytes()


def assert_same_arrays(got, want, exact):
    assert sorted(got) == sorted(want)
    for k in want:
        if exact:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)
        else:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-6, err_msg=k)


def assert_close_json(got, want, path=""):
    """Equal JSON values, numbers to 1e-6 (the report's floats may differ in the last bits elsewhere)."""
    if isinstance(want, dict):
        assert sorted(got) == sorted(want), path
        for k in want:
            assert_close_json(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close_json(g, w, f"{path}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9), path
    else:
        assert got == want, path


def rows_before(arrays, epoch):
    """The rows of a record file's arrays (first axis: epochs) at epochs before `epoch`."""
    keep = arrays["epochs"] < epoch
    return {k: (a[keep] if a.shape[:1] == arrays["epochs"].shape and k != "freqs" else a) for k, a in arrays.items()}


def test_the_finished_legacy_run_reads_as_it_did(tmp_path):
    before = tree(FINISHED)
    run = fa.load_run(str(FINISHED))
    assert sorted(run["progress_params"]) == fourier.progress_epochs(40).tolist()  # one progress_params.npz
    assert {"omega", "omega_talk", "grad_norms", "progress"} <= set(run)
    committed = rundir.load_json(str(FINISHED / "analysis.json"))
    analysis = json.loads(json.dumps(fa.analyse_run(str(FINISHED))))
    assert_close_json({**analysis, "run_dir": None}, {**committed, "run_dir": None})
    drawn = figures.draw_all(figures.load_runs({"miiii": str(FINISHED)}), str(tmp_path), ["png"],
                             log=lambda line: None, warn=lambda line: None)
    assert str(tmp_path / "fig10_active_frequencies.png") in drawn
    state = miiii.load_checkpoint(str(FINISHED / rundir.CHECKPOINT), CFG)  # an older checkpoint loads
    assert state["epoch"] == 40 and sorted(rundir.by_epoch(state["records"]["progress"])) == fourier.progress_epochs(40).tolist()
    assert tree(FINISHED) == before  # reading writes nothing


def test_the_interrupted_legacy_run_resumes(today, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(INTERRUPTED, run)
    with pytest.raises(rundir.RunError, match=f"--resume {run}"):  # its metrics are in the checkpoint alone
        fa.load_run(str(run))
    assert miiii.main(["--resume", str(run), "--quiet"]) == 0
    assert capsys.readouterr().err.splitlines()[0] == f"resuming {run} at epoch 26"
    # what the legacy checkpoint held comes back exactly: records and metrics before epoch 26
    for name in ("omega.npz", "omega_talk.npz", "grad_norms.npz"):
        assert_same_arrays(rows_before(npz(run / name), 26), rows_before(npz(FINISHED / name), 26), exact=True)
    old_copies = rundir.load_copies(str(FINISHED), "progress", miiii.PARAM_NAMES)
    for e in [e for e in fourier.progress_epochs(40).tolist() if e < 26]:
        assert_same_arrays(npz(run / "progress_params" / f"{e}.npz"), old_copies[e], exact=True)
    got, old = npz(run / "metrics.npz"), npz(FINISHED / "metrics.npz")
    np.testing.assert_array_equal(got["step_loss"][:26], old["step_loss"][:26])
    # and the rest is today's run of 40 epochs (and the legacy run's own end, on this machine)
    exact = reproduces(today)
    want = files(today / "40")
    got = files(run)
    assert sorted(got) == sorted(want)
    for name in want:
        if name.endswith(".npz") and name != rundir.CHECKPOINT:
            assert_same_arrays(npz(run / name), npz(today / "40" / name), exact)
    if exact:
        for name in ("params.npz", "metrics.npz", "omega.npz", "omega_talk.npz", "grad_norms.npz"):
            assert got[name] == (FINISHED / name).read_bytes(), name


def test_the_finished_legacy_run_extends(today, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(FINISHED, run)
    assert miiii.main(["--resume", str(run), "--epochs", "80", "--quiet"]) == 0
    assert capsys.readouterr().err.splitlines()[0] == f"resuming {run} at epoch 40 to 80"
    assert not (run / "analysis.json").exists() and not (run / "progress.npz").exists()  # of the 40-epoch run
    assert not (run / rundir.PROGRESS_PARAMS).exists()  # its copies are now files of their own
    old, new = fourier.progress_epochs(40), fourier.progress_epochs(80)
    assert sorted(int(p.stem) for p in (run / "progress_params").iterdir()) == np.union1d(old, new[new > 40]).tolist()
    for name in ("omega.npz", "omega_talk.npz", "grad_norms.npz"):
        assert_same_arrays(rows_before(npz(run / name), 40), rows_before(npz(FINISHED / name), 40), exact=True)
    # the same as today's 40-epoch run extended to 80: every file (bit for bit on this machine)
    exact = reproduces(today)
    want = files(today / "40to80")
    assert sorted(files(run)) == sorted(want)
    for name in want:
        if name.endswith(".npz") and name != rundir.CHECKPOINT:
            assert_same_arrays(npz(run / name), npz(today / "40to80" / name), exact)
    if exact:  # and the weights of a run of 80 epochs from the start
        assert files(run)["params.npz"] == files(today / "80")["params.npz"]
    assert rundir.load_json(str(run / "config.json"))["extended_from"] == [40]
