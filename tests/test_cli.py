"""The command line, run as a user would: `python miiii.py ...` in a subprocess.

Outputs must be readable with plain numpy/json; bad input must exit 2 with exactly one line on
stderr, no traceback, and nothing written.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import miiii

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--task", "--p", "--d", "--heads", "--lr", "--wd", "--dropout", "--lamb", "--alpha", "--filter",
         "--window", "--train-frac", "--epochs", "--seed", "--out", "--force", "--gpu", "--log-every"]


def expected_param_shapes(p, d, h, C):
    """The parameters' names and shapes in a checkpoint (docs/definitions.md §2)."""
    return {"tok_emb": (p + 1, d), "pos_emb": (3, d), "W_Q": (h, d, d // h), "W_K": (h, d, d // h),
            "W_V": (h, d, d // h), "W_O": (h, d // h, d), "W_in": (d, 4 * d), "W_out": (4 * d, d),
            "W_U": (d, C)}


NANDA = ["--task", "nanda", "--p", "11", "--d", "8", "--heads", "2", "--epochs", "20", "--quiet"]


def run_cli(*args):
    return subprocess.run([sys.executable, "miiii.py", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def snapshot(folder):
    """{relative path: bytes or 'dir'} of everything under folder."""
    return {str(f.relative_to(folder)): (f.read_bytes() if f.is_file() else "dir")
            for f in sorted(Path(folder).rglob("*"))}


@pytest.fixture(scope="module")
def nanda_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "nanda-run"
    result = run_cli(*NANDA, "--out", out)
    assert result.returncode == 0, result.stderr
    return out, result


# ------------------------------------------------------------------ help and real runs

def test_help_mentions_every_flag():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for flag in FLAGS:
        assert flag in result.stdout, f"--help does not mention {flag}"
    assert result.stdout.startswith("usage: miiii.py [-h]")  # named as it was invoked


def test_usage_names_the_installed_command(monkeypatch):
    """The console script `miiii` (sys.argv[0] = .../bin/miiii) says `usage: miiii`, not miiii.py.

    tests/test_packaging.py runs the real installed script; this is the in-process check.
    """
    monkeypatch.setattr(sys, "argv", ["/some/venv/bin/miiii", "--help"])
    assert miiii.build_parser().format_usage().startswith("usage: miiii [-h]")


def test_tiny_nanda_run_writes_readable_outputs(nanda_run):
    out, result = nanda_run
    assert "Traceback" not in result.stderr
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "metrics.npz", "params.npz"} <= names
    assert "checkpoint.npz" in names  # a finished run keeps its final state, so it can be extended
    assert json.loads((out / "config.json").read_text())["status"] == "complete"
    assert not [n for n in names if n.endswith(".tmp")]  # no temporary file left behind

    with open(out / "config.json") as f:
        config = json.load(f)
    settings = {"task": "nanda", "p": 11, "d": 8, "heads": 2, "epochs": 20, "lr": 3e-4, "wd": 1 / 3,
                "dropout": 0.1, "lamb": 0.5, "alpha": 0.98, "filter": "ema", "window": 100,
                "train_frac": 0.5, "seed": 0}  # the flags given, and the documented defaults
    for key, value in settings.items():
        assert config[key] == pytest.approx(value), key  # approx: floats went through JSON
    assert config["moduli"] == [11]
    assert config["split_seed"] == 0

    with np.load(out / "metrics.npz") as m:
        epochs = m["epochs"]
        assert epochs[0] == 0 and epochs[-1] == 20 and np.all(np.diff(epochs) > 0)
        for key in ("train_loss", "valid_loss", "train_acc", "valid_acc"):
            assert m[key].shape == (len(epochs), 1), key
            assert np.isfinite(m[key]).all(), key
        for key in ("train_acc", "valid_acc"):
            assert ((m[key] >= 0) & (m[key] <= 1)).all(), key

    with np.load(out / "params.npz") as params:
        shapes = {k: params[k].shape for k in params.files}
        assert shapes == expected_param_shapes(11, 8, 2, 11)
        assert all(params[k].dtype == np.float32 and np.isfinite(params[k]).all() for k in params.files)
        saved = {k: params[k] for k in params.files}

    # the last logged metrics belong to the saved (final) parameters
    task = miiii.make_task("nanda", 11, 0.5, seed=0)
    (tl, ta), (vl, va) = miiii.evaluate(saved, task["x"], task["y"], task["classes"],
                                        (task["train"], task["valid"]))
    with np.load(out / "metrics.npz") as m:
        np.testing.assert_allclose(m["train_loss"][-1], tl, rtol=1e-6)
        np.testing.assert_allclose(m["valid_loss"][-1], vl, rtol=1e-6)
        np.testing.assert_array_equal(m["train_acc"][-1], ta)
        np.testing.assert_array_equal(m["valid_acc"][-1], va)


def test_tiny_miiii_run(tmp_path):
    out = tmp_path / "deep" / "miiii-run"  # parent folders are created
    result = run_cli("--task", "miiii", "--p", "7", "--d", "8", "--heads", "2", "--epochs", "7",
                     "--log-every", "3", "--filter", "ma", "--window", "2", "--quiet", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    with open(out / "config.json") as f:
        config = json.load(f)
    assert config["moduli"] == [2, 3, 5] and config["filter"] == "ma" and config["window"] == 2
    with np.load(out / "metrics.npz") as m:
        # 7 is not a multiple of 3 (nor a power of two): the last epoch is logged all the same
        assert m["epochs"][0] == 0 and m["epochs"][-1] == 7 and np.all(np.diff(m["epochs"]) > 0)
        assert {3, 6} <= set(m["epochs"].tolist())  # --log-every 3
        for key in ("train_loss", "valid_loss", "train_acc", "valid_acc"):
            assert m[key].shape == (len(m["epochs"]), 3), key
    with np.load(out / "params.npz") as params:
        assert {k: params[k].shape for k in params.files} == expected_param_shapes(7, 8, 2, 10)


def test_same_config_rerun_into_existing_run_is_allowed(nanda_run, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(nanda_run[0], out)
    result = run_cli(*NANDA, "--out", out)
    assert result.returncode == 0, result.stderr
    assert (out / "params.npz").is_file()


def test_force_overwrites_a_different_run(nanda_run, tmp_path):
    out = tmp_path / "other"
    shutil.copytree(nanda_run[0], out)
    result = run_cli(*NANDA, "--seed", "1", "--out", out, "--force")
    assert result.returncode == 0, result.stderr
    with open(out / "config.json") as f:
        assert json.load(f)["seed"] == 1


# ------------------------------------------------------------------ bad input

TINY = ["--task", "miiii", "--p", "7", "--d", "8", "--heads", "2", "--epochs", "1", "--quiet"]
BAD = {  # later flags override the TINY ones (argparse: last wins)
    "unknown task": ["--task", "foo"],
    "p too small for miiii": ["--p", "2"],
    "train-frac 0": ["--train-frac", "0"],
    "train-frac 1.2": ["--train-frac", "1.2"],
    "d not divisible by heads": ["--d", "10", "--heads", "3"],
    "negative epochs": ["--epochs", "-1"],
    "dropout 1": ["--dropout", "1.0"],
    "unknown filter": ["--filter", "foo"],
    "not an int": ["--p", "seven"],
    "unknown flag": ["--bogus"],
}


def assert_usage_error(result):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("flags", BAD.values(), ids=BAD.keys())
def test_bad_input_exits_2_and_writes_nothing(tmp_path, flags):
    out = tmp_path / "run"
    before = snapshot(tmp_path)
    result = run_cli(*TINY, *flags, "--out", out)
    assert_usage_error(result)
    assert not out.exists()
    assert snapshot(tmp_path) == before


def test_out_holding_a_different_run_is_refused(nanda_run, tmp_path):
    out = tmp_path / "other"
    shutil.copytree(nanda_run[0], out)
    before = snapshot(tmp_path)
    result = run_cli(*NANDA, "--seed", "1", "--out", out)  # a different config, no --force
    assert_usage_error(result)
    assert snapshot(tmp_path) == before  # the old run untouched


def test_out_holding_foreign_files_is_refused(tmp_path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    before = snapshot(tmp_path)
    assert_usage_error(run_cli(*TINY, "--out", out))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("text", ["[1, 2]", "{\"task\": ", "null"])
def test_out_holding_a_foreign_config_json_is_refused(tmp_path, text):
    """A config.json that is not a run's (a list, torn, null) is another run's directory, not a crash."""
    out = tmp_path / "other"
    out.mkdir()
    (out / "config.json").write_text(text)
    before = snapshot(tmp_path)
    assert_usage_error(run_cli(*TINY, "--out", out))
    assert snapshot(tmp_path) == before


def test_out_that_is_a_file_is_refused(tmp_path):
    out = tmp_path / "afile"
    out.write_text("not a directory")
    before = snapshot(tmp_path)
    assert_usage_error(run_cli(*TINY, "--out", out))
    assert snapshot(tmp_path) == before
    assert_usage_error(run_cli(*TINY, "--out", out, "--force"))  # --force does not replace a file
    assert snapshot(tmp_path) == before


def cupy_with_gpu():
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def test_gpu_without_cupy_is_a_usage_error(tmp_path):
    if cupy_with_gpu():
        pytest.skip("CuPy and a GPU are present: --gpu is valid here")
    out = tmp_path / "run"
    before = snapshot(tmp_path)
    assert_usage_error(run_cli(*TINY, "--gpu", "--out", out))
    assert not out.exists()
    assert snapshot(tmp_path) == before
