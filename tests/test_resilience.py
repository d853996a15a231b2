"""Resilience: exact resume from checkpoints, signals, safe writes, numerical guards, bad input.

1. A run resumed from any checkpoint ends with the same bytes (params, metrics and the analysis
   records of fft_analysis) as the same run done in one go: in-process through miiii.train at many
   interruption points, and through the command line (miiii.main in-process, and real processes).
2. SIGTERM / SIGINT sent to a real child: checkpoint, exit 128 + signum, one message; a second
   SIGINT leaves at once without leaving a damaged file behind; repeated SIGTERMs still checkpoint.
3. Torn or garbage files are reported in one line naming the file; atomic writes keep the old file.
4. A NaN / inf loss or gradient stops the run with exit 3, naming the epoch and the parameter,
   and keeps the last good checkpoint.
5. Bad input: exit 2, one line on stderr, no traceback, nothing created.

Configs are tiny (p 11-23, d 8-32) so the whole file stays within a few tens of seconds.
"""
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fourier
import miiii
import rundir
from run_files import assert_same_files, cli_args, files, tree

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = "checkpoint.npz"

# Child processes use one BLAS thread: faster for these tiny matrices on a shared machine, and
# every child (clean run, interrupted run, resumed run) computes with the same settings.
CHILD_ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
             "PYTHONDONTWRITEBYTECODE": "1"}


def config(**kw):
    """A full config dict (every key of DEFAULTS): tiny nanda with dropout and GrokFast-EMA."""
    return {**miiii.DEFAULTS, "task": "nanda", "p": 11, "d": 8, "heads": 2, "epochs": 60, "dropout": 0.1, **kw}


EMA = config()  # filter ema, dropout 0.1
MA = config(task="miiii", p=13, filter="ma", window=7)  # five task heads; the MA ring buffer wraps
PLAIN = config(filter="none", dropout=0.0)
CONFIGS = {"ema": EMA, "ma": MA, "plain": PLAIN}


# ============================================================================ helpers
def progress_copies(epochs):
    return {f"progress_params/{e}.npz" for e in fourier.progress_epochs(epochs).tolist()}


def temp_files(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def write_results(out, cfg, params, metrics, records):
    """What the CLI writes at the end of a run: config, metrics, params and the analysis records."""
    miiii.write_run(str(out), cfg, params, metrics)
    rundir.finish_records(str(out), records)
    return files(out)


def run_with_stops(cfg, out, stops=(), tamper=None):
    """Train cfg in-process with the analysis hooks, stopping at each epoch of `stops` in turn.

    Each stop goes through the command line's path: train() sees stop() turn true, checkpoints the
    run directory (checkpoint_run: the records since the last checkpoint into their own files, then
    the state) and raises Interrupted; the run then continues from the directory only (resume_run),
    never from the state in memory. With no stops this is the uninterrupted reference run (no
    checkpoints: every record is written at the end). `tamper(state)` may change each loaded state
    (to show that the comparison would see a loss). Returns files() of the finished run directory.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = miiii.init_state(cfg)
    for stop_at in stops:
        hooks = miiii.training_hooks(cfg, state["records"])
        current = state
        with pytest.raises(miiii.Interrupted) as info:
            miiii.train(cfg, progress=False, hooks=hooks, state=current,
                        checkpoint=lambda s: miiii.checkpoint_run(str(out), s, cfg),
                        stop=lambda: current["epoch"] == stop_at)
        assert info.value.args == (stop_at,)
        state, note = miiii.resume_run(str(out), cfg)  # the state in memory is dropped
        assert state["epoch"] == stop_at and note is None
        assert not any(state["records"].get(kind) for kind in ("omega", "grad_norms", "progress"))  # on disk
        if tamper is not None:
            tamper(state)
    hooks = miiii.training_hooks(cfg, state["records"])
    params, metrics = miiii.train(cfg, progress=False, hooks=hooks, state=state)
    for name in (CHECKPOINT, rundir.PREVIOUS):
        if os.path.exists(out / name):
            os.remove(out / name)
    return write_results(out, cfg, params, metrics, state["records"])


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """clean(name) -> files of the uninterrupted in-process run of CONFIGS[name] (computed once)."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = run_with_stops(CONFIGS[name], tmp_path_factory.mktemp(f"clean-{name}"))
        return cache[name]

    return get


def run_config_of(run_dir):
    """The result keys of a run directory's config.json (what load_checkpoint is checked against)."""
    with open(os.path.join(run_dir, "config.json")) as f:
        old = json.load(f)
    return {k: old[k] for k in miiii.RESULT_KEYS}


def error_lines(err):
    return [line for line in err.splitlines() if line.strip()]


# ============================================================================ 1. exact resume, in-process
LOGGED_60 = set(miiii.log_epochs(60, 0).tolist())  # 0 1 2 4 8 10 16 20 30 32 40 50 60
SNAPS_60 = set(fourier.snapshot_epochs(60).tolist())  # 0..13 15 16 17 19 21 23 25 27 29 32 35 38 41 45 49 54 59 60

# (epoch at which stop() turns true, what is special about it)
POINTS = {
    0: "before the first step",
    1: "after one step: a logged and snapshot epoch, stopped before its log and snapshot",
    14: "inside the log interval 10..16, neither logged nor a snapshot epoch",
    23: "a snapshot epoch inside the log interval 20..30, stopped before its snapshot",
    24: "right after the snapshot of epoch 23, inside a log interval",
    33: "right after epoch 32 (logged, grad norms recorded, snapshot)",
    59: "a snapshot epoch one step before the end",
    60: "the last epoch, before its evaluation and snapshot",
}


def test_interruption_points_are_what_they_claim():
    assert EMA["epochs"] == 60 and 0 in LOGGED_60 and 60 in LOGGED_60
    assert 14 not in LOGGED_60 | SNAPS_60 and 10 in LOGGED_60 and 16 in LOGGED_60
    assert 23 in SNAPS_60 and 23 not in LOGGED_60 and 24 not in LOGGED_60 | SNAPS_60
    assert 32 in LOGGED_60 & SNAPS_60 and 33 not in LOGGED_60 | SNAPS_60
    assert 59 in SNAPS_60 and 59 not in LOGGED_60


@pytest.mark.parametrize("stop_at", sorted(POINTS), ids=[f"epoch{e}" for e in sorted(POINTS)])
def test_resume_is_bit_identical_ema_dropout(stop_at, clean, tmp_path):
    got = run_with_stops(EMA, tmp_path, stops=[stop_at])
    assert_same_files(got, clean("ema"))
    assert {"params.npz", "metrics.npz", "omega.npz", "grad_norms.npz", "config.json"} <= set(got)


@pytest.mark.parametrize("stop_at", [10, 17, 59])
def test_resume_is_bit_identical_ma_filter(stop_at, clean, tmp_path):
    """The MA ring buffer (window 7, wrapped, partly filled slots) must come back exactly."""
    assert stop_at % MA["window"]  # the buffer's next slot is not slot 0
    assert_same_files(run_with_stops(MA, tmp_path, stops=[stop_at]), clean("ma"))


def test_resume_without_filter_or_dropout(clean, tmp_path):
    assert_same_files(run_with_stops(PLAIN, tmp_path, stops=[14]), clean("plain"))


@pytest.mark.parametrize("name", ["ema", "ma"])
def test_several_interruptions_in_one_run(name, clean, tmp_path):
    """Stopped and resumed four times, each time from the file: still the same bytes."""
    assert_same_files(run_with_stops(CONFIGS[name], tmp_path, stops=[3, 17, 24, 41]), clean(name))


def test_comparison_sees_a_lost_ma_buffer(clean, tmp_path):
    """Control: resuming with an empty MA buffer changes the result, so the tests above would see it."""
    def forget_window(state):
        state["filter"] = miiii.grokfast.init_filter("ma", state["params"], MA["window"])

    got = run_with_stops(MA, tmp_path, stops=[17], tamper=forget_window)
    assert got["params.npz"] != clean("ma")["params.npz"]


def test_resume_from_every_periodic_checkpoint(clean, tmp_path):
    """checkpoint_every=7: each checkpoint taken along the way resumes to the same bytes."""
    saved = tmp_path / "saved"
    saved.mkdir()

    def keep(state):
        miiii.save_checkpoint(str(saved / f"ckpt_{state['epoch']}.npz"), state, EMA)

    state = miiii.init_state(EMA)
    hooks = miiii.training_hooks(EMA, state["records"])
    params, metrics = miiii.train(EMA, progress=False, hooks=hooks, state=state, checkpoint=keep,
                                  checkpoint_every=7)
    # checkpointing along the way does not change the run
    assert_same_files(write_results(tmp_path / "straight", EMA, params, metrics, state["records"]), clean("ema"))
    epochs = sorted(int(f.stem.split("_")[1]) for f in saved.iterdir())
    assert epochs == list(range(7, 61, 7))
    for e in epochs:
        path = str(saved / f"ckpt_{e}.npz")
        state = miiii.load_checkpoint(path, EMA)
        assert state["epoch"] == e
        again = str(tmp_path / "again.npz")  # a checkpoint round-trips to the same bytes
        miiii.save_checkpoint(again, state, EMA)
        assert Path(again).read_bytes() == Path(path).read_bytes()
        hooks = miiii.training_hooks(EMA, state["records"])
        params, metrics = miiii.train(EMA, progress=False, hooks=hooks, state=state)
        assert_same_files(write_results(tmp_path / f"from{e}", EMA, params, metrics, state["records"]),
                          clean("ema"))


# ============================================================================ 1b. exact resume, CLI in-process
CLI_CFG = config(epochs=300)  # reaches the Table-1 epoch 256, so params_256.npz is written too
CLI_FLAGS = cli_args(CLI_CFG, "--quiet")


@pytest.fixture(scope="module")
def cli_clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-clean") / "run"
    assert miiii.main(CLI_FLAGS + ["--out", str(out)]) == 0
    got = files(out)
    assert {"config.json", "params.npz", "metrics.npz", "omega.npz", "grad_norms.npz",
            "params_256.npz", "omega_talk.npz", CHECKPOINT} | progress_copies(300) == set(got)
    assert os.listdir(out / rundir.SEGMENTS)  # the small records, written at the end (one checkpoint)
    return got


class SignalGuard:
    """Our own SIGTERM handler around in-process main(): a stray SIGTERM fails the test, not pytest."""

    def __init__(self):
        self.hits = []

    def __enter__(self):
        self.previous = signal.signal(signal.SIGTERM, self.handler)
        return self

    def handler(self, signum, frame):
        self.hits.append(signum)

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self.previous)


def test_cli_sigterm_in_process_then_resume_from_any_checkpoint(cli_clean, tmp_path, monkeypatch, capsys):
    """main() gets a real SIGTERM during the step of epoch 257 (just after the params_256 snapshot):
    it checkpoints at epoch 258 and returns 143; --resume ends with the same files, analysis included.
    Periodic checkpoints of the same run (epochs 20 and 140) resume to the same files as well."""
    out = tmp_path / "run"
    real_step, real_checkpoint = miiii.loss_and_grads, miiii.checkpoint_run
    calls = {"n": 0}
    kept = tmp_path / "kept"
    kept.mkdir()

    def step(*args, **kwargs):
        if calls["n"] == 257:
            os.kill(os.getpid(), signal.SIGTERM)
        calls["n"] += 1
        return real_step(*args, **kwargs)

    def checkpoint(run, state, cfg):  # the run directory as a kill right after this checkpoint leaves it
        real_checkpoint(run, state, cfg)
        shutil.copytree(run, kept / f"ckpt_{state['epoch']}")

    monkeypatch.setattr(miiii, "loss_and_grads", step)
    monkeypatch.setattr(miiii, "checkpoint_run", checkpoint)
    with SignalGuard() as guard:
        rc = miiii.main(CLI_FLAGS + ["--out", str(out), "--checkpoint-every", "20"])
        assert signal.getsignal(signal.SIGTERM) == guard.handler  # main put the old handler back
    assert guard.hits == [], "SIGTERM reached the handler outside main()"
    err = capsys.readouterr().err
    assert rc == 128 + signal.SIGTERM == 143
    assert "Traceback" not in err
    assert "interrupted at epoch 258" in error_lines(err)[-1]
    assert set(os.listdir(out)) == INTERRUPTED | {"params_256.npz"}
    assert json.loads((out / "config.json").read_text())["status"] == "interrupted"
    cfg = run_config_of(out)
    assert miiii.load_checkpoint(str(out / CHECKPOINT), cfg)["epoch"] == 258
    assert sorted(int(f.stem.split("_")[1]) for f in kept.iterdir()) == list(range(20, 260, 20)) + [258]
    monkeypatch.undo()

    assert miiii.main(["--resume", str(out), "--quiet", "--p", "11"]) == 0  # an agreeing flag is fine
    assert "resuming" in capsys.readouterr().err
    assert_same_files(files(out), cli_clean)

    for e in (20, 140):  # a run directory as a kill after these checkpoints would have left it
        run = kept / f"ckpt_{e}"
        assert json.loads((run / "config.json").read_text())["status"] == "running"
        assert miiii.main(["--resume", str(run), "--quiet"]) == 0
        assert_same_files(files(run), cli_clean)


def test_cli_resume_without_checkpoint_starts_over(cli_clean, tmp_path, capsys):
    """A run killed before its first checkpoint (only config.json) resumes from epoch 0."""
    run = tmp_path / "run"
    miiii.start_run(str(run), CLI_CFG)
    assert miiii.main(["--resume", str(run), "--quiet"]) == 0
    assert "at epoch 0" in capsys.readouterr().err
    assert_same_files(files(run), cli_clean)


# ============================================================================ 2. real signals
SIG_CFG = config(p=23, d=32, epochs=300, dropout=0.1)
SIG_FLAGS = cli_args(SIG_CFG, "--quiet", "--checkpoint-every", "5")
ANALYSIS_FILES = {"omega.npz", "omega_talk.npz", "grad_norms.npz", "params_256.npz"} | progress_copies(300)
# what an interrupted run's directory holds: the checkpoints, the outputs so far, the records so far
INTERRUPTED = {"checkpoint.npz", "checkpoint.prev.npz", "config.json", "lock", "metrics.npz", "params.npz",
               "progress_params", "records"}


def start_child(out, *extra, script=None):
    cmd = [sys.executable, str(script) if script else "miiii.py", *SIG_FLAGS, "--out", str(out), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=CHILD_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def run_child(*args):
    return subprocess.run([sys.executable, "miiii.py", *map(str, args)], cwd=ROOT, env=CHILD_ENV,
                          capture_output=True, text=True, timeout=300)


def wait_for(path, proc, timeout=120.0):
    """Poll until `path` exists; fail clearly if the child ends (or hangs) first."""
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"child exited with {proc.returncode} before {path} appeared; stderr: {err!r}")
        if time.monotonic() > end:
            proc.kill()
            proc.communicate()
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.005)


def finish_child(proc, timeout=120):
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"child still running {timeout} s after the signal; stderr: {err!r}")
    if proc.returncode == 0:
        pytest.fail("the child finished its run before the signal arrived: give it more --epochs")
    return err


def check_loadable(run_dir):
    """Every file of a run directory loads (the temporary files of a hard exit excepted)."""
    cfg = run_config_of(run_dir)
    for folder, _, names in os.walk(run_dir):
        for name in names:
            path = os.path.join(folder, name)
            if name in (CHECKPOINT, rundir.PREVIOUS):
                miiii.load_checkpoint(path, cfg)
            elif name.endswith(".npz"):
                rundir.load_npz(path)
            elif name.endswith(".json"):
                rundir.load_json(path)
            elif name != "lock":
                assert name.endswith(".tmp"), f"unexpected file {name}"
                assert name.startswith("."), f"a temporary file under a real name: {name}"


@pytest.fixture(scope="module")
def sig_clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("sig-clean") / "run"
    result = run_child(*SIG_FLAGS, "--out", out)
    assert result.returncode == 0, result.stderr
    got = files(out)
    assert ANALYSIS_FILES | {"config.json", "params.npz", "metrics.npz", CHECKPOINT} == set(got)
    return got


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_checkpoints_exits_and_resumes_identically(signum, sig_clean, tmp_path):
    out = tmp_path / "run"
    proc = start_child(out)
    wait_for(out / CHECKPOINT, proc)  # the handlers are installed once training runs
    proc.send_signal(signum)
    err = finish_child(proc)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err
    lines = error_lines(err)
    assert len(lines) <= 2, lines  # "run directory: ..." and the message
    match = re.search(r"interrupted at epoch (\d+): checkpoint written; continue with .*--resume", lines[-1])
    assert match, lines
    assert temp_files(out) == []
    assert set(os.listdir(out)) == INTERRUPTED
    assert json.loads((out / "config.json").read_text())["status"] == "interrupted"
    state = miiii.load_checkpoint(str(out / CHECKPOINT), run_config_of(out))
    assert state["epoch"] == int(match.group(1))
    assert 5 <= state["epoch"] < SIG_CFG["epochs"]

    result = run_child("--resume", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert f"at epoch {state['epoch']}" in result.stderr
    assert_same_files(files(out), sig_clean)


def test_two_quick_sigints_exit_130_without_damage(sig_clean, tmp_path):
    out = tmp_path / "run"
    proc = start_child(out)
    wait_for(out / CHECKPOINT, proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    err = finish_child(proc)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    check_loadable(out)
    result = run_child("--resume", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert_same_files(files(out), sig_clean, ignore_tmp=True)


def test_repeated_sigterms_still_checkpoint(sig_clean, tmp_path):
    """SIGTERM three times in a row (a dying multi-threaded parent's death signal comes once per
    re-parenting): the run checkpoints, says so, and resumes to the same bytes."""
    out = tmp_path / "run"
    proc = start_child(out)
    wait_for(out / CHECKPOINT, proc)
    for _ in range(3):  # apart, so that each is handled (signals pending together count once)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.02)
    err = finish_child(proc)
    # 143; or killed by a late SIGTERM once everything was written and main() had put the default back
    assert proc.returncode in (143, -signal.SIGTERM), err
    assert re.search(r"interrupted at epoch \d+: checkpoint written", err), err
    assert json.loads((out / "config.json").read_text())["status"] == "interrupted"
    result = run_child("--resume", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert_same_files(files(out), sig_clean)


STALLING_CHILD = """
import io, os, sys, time
sys.path.insert(0, {root!r})
import miiii
import rundir

real_write, real_install = rundir.write_npz, miiii.install_signal_handlers
calls = {{"n": 0}}
seen = {{}}

def install(flag):  # keep a view of main()'s signal flag
    seen["flag"] = flag
    return real_install(flag)

def stalling_write_npz(f, arrays):
    # the second checkpoint (epoch 10) writes half its bytes, then stalls: a slow disk
    if "__meta__" in arrays:
        calls["n"] += 1
        if calls["n"] == 2:
            buf = io.BytesIO()
            real_write(buf, arrays)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            f.flush()
            open({stalled!r}, "w").close()
            for _ in range(6000):  # 60 s
                if seen["flag"]["signal"] is not None and not os.path.exists({handled!r}):
                    open({handled!r}, "w").close()  # the first signal has been handled
                time.sleep(0.01)
    real_write(f, arrays)

rundir.write_npz = stalling_write_npz
miiii.install_signal_handlers = install
sys.exit(miiii.main(sys.argv[1:]))
"""


def test_second_signal_leaves_at_once_during_a_slow_checkpoint(sig_clean, tmp_path):
    """First SIGINT: the run waits for the checkpoint being written. Second: it leaves at once;
    checkpoint.npz is still the complete one of epoch 5, and the run resumes to the same bytes."""
    stalled, handled = tmp_path / "stalled", tmp_path / "handled"
    script = tmp_path / "stalling_child.py"
    script.write_text(STALLING_CHILD.format(root=str(ROOT), stalled=str(stalled), handled=str(handled)))
    out = tmp_path / "run"
    proc = start_child(out, "--no-analysis", script=script)
    wait_for(stalled, proc)
    proc.send_signal(signal.SIGINT)
    wait_for(handled, proc)  # the child is alive: the first signal did not abandon the checkpoint write
    time.sleep(0.1)
    assert proc.poll() is None, "the first signal must not abandon a checkpoint being written"
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    err = finish_child(proc, timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - start < 10, "the second signal did not exit at once"
    assert "Traceback" not in err
    assert os.path.exists(out / CHECKPOINT)
    assert miiii.load_checkpoint(str(out / CHECKPOINT), run_config_of(out))["epoch"] == 5
    check_loadable(out)  # the half-written checkpoint only exists under its temporary name
    result = run_child("--resume", out, "--quiet", "--no-analysis")
    assert result.returncode == 0, result.stderr
    want = {k: v for k, v in sig_clean.items() if k not in ANALYSIS_FILES | {CHECKPOINT}}  # no records
    got = {k: v for k, v in files(out).items() if k != CHECKPOINT}
    assert_same_files(got, want, ignore_tmp=True)


# ============================================================================ 3. torn files, atomic writes
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run plus a checkpoint of its config, to be damaged by the tests."""
    out = tmp_path_factory.mktemp("finished") / "run"
    cfg = config(epochs=5)
    assert miiii.main(cli_args(cfg, "--quiet", "--no-analysis", "--out", out)) == 0
    miiii.save_checkpoint(str(out / CHECKPOINT), miiii.init_state(cfg), cfg)
    return out, cfg


def damage(path, how):
    data = Path(path).read_bytes()
    Path(path).write_bytes({"half": data[: len(data) // 2], "empty": b"",
                            "garbage": bytes(range(256)) * 4}[how])


def load_any(path, cfg):
    name = os.path.basename(path)
    if name == CHECKPOINT:
        return miiii.load_checkpoint(path, cfg)
    if name.endswith(".json"):
        return rundir.load_json(path)
    return rundir.load_npz(path)


@pytest.mark.parametrize("how", ["half", "empty", "garbage"])
@pytest.mark.parametrize("name", ["params.npz", "metrics.npz", CHECKPOINT, "config.json"])
def test_damaged_file_is_named_in_one_line(name, how, finished, tmp_path):
    src, cfg = finished
    path = str(tmp_path / name)
    shutil.copy(src / name, path)
    load_any(path, cfg)  # intact: loads
    damage(path, how)
    with pytest.raises(rundir.RunError) as info:
        load_any(path, cfg)
    message = str(info.value)
    assert path in message and "\n" not in message
    assert "damaged" in message or "not a miiii file" in message, message


def test_missing_file_is_named(tmp_path):
    for load in (rundir.load_npz, rundir.load_json):
        with pytest.raises(rundir.RunError, match="missing") as info:
            load(str(tmp_path / "nope"))
        assert str(tmp_path / "nope") in str(info.value)


def test_wrong_kind_of_npz_is_not_a_checkpoint(finished, tmp_path):
    src, cfg = finished
    with pytest.raises(rundir.RunError, match="__meta__") as info:
        miiii.load_checkpoint(str(src / "params.npz"), cfg)
    assert str(src / "params.npz") in str(info.value)
    path = str(tmp_path / CHECKPOINT)  # an npz with a __meta__ that is not JSON
    rundir.save_npz(path, {"__meta__": np.array("{not json")})
    with pytest.raises(rundir.RunError, match="damaged checkpoint") as info:
        miiii.load_checkpoint(path, cfg)
    assert path in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("change", [{"p": 13}, {"seed": 1}, {"filter": "ma"}, {"lr": 1e-3}])
def test_checkpoint_of_another_config_is_refused(change, finished):
    src, cfg = finished
    with pytest.raises(rundir.RunError, match="another config") as info:
        miiii.load_checkpoint(str(src / CHECKPOINT), {**cfg, **change})
    assert str(src / CHECKPOINT) in str(info.value)


def interrupted_dir(path, cfg, checkpoint_cfg=None):
    """A run directory as an interrupted run leaves it: config.json and checkpoint.npz."""
    miiii.start_run(str(path), cfg)
    miiii.save_checkpoint(str(Path(path) / CHECKPOINT), miiii.init_state(checkpoint_cfg or cfg),
                          checkpoint_cfg or cfg)
    return Path(path)


@pytest.mark.parametrize("how", ["half", "garbage"])
def test_resume_with_torn_checkpoint_exits_2_in_one_line(how, tmp_path):
    """A real process: exit 2, one stderr line naming the file, no traceback, nothing changed."""
    run = interrupted_dir(tmp_path / "run", config(epochs=5))
    damage(run / CHECKPOINT, how)
    before = tree(tmp_path)
    result = run_child("--resume", run, "--quiet")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("miiii.py: error: ") and str(run / CHECKPOINT) in lines[0]
    assert tree(tmp_path) == before


@pytest.mark.parametrize("how", ["half", "garbage", "list", "keys", "types"])
def test_resume_with_torn_config_exits_2_in_one_line(how, tmp_path, capsys):
    run = interrupted_dir(tmp_path / "run", config(epochs=5))
    if how == "list":
        (run / "config.json").write_text("[1, 2, 3]\n")
    elif how == "keys":
        (run / "config.json").write_text('{"task": "nanda", "p": 11}\n')
    elif how == "types":  # valid JSON, every key, but a value of the wrong type
        (run / "config.json").write_text(json.dumps({**miiii.run_config(config(epochs=5)), "d": "8"}))
    else:
        damage(run / "config.json", how)
    line = expect_usage_error(["--resume", run, "--quiet"], capsys, tmp_path)
    assert str(run / "config.json") in line


def test_resume_with_checkpoint_of_another_config_exits_2(tmp_path, capsys):
    run = interrupted_dir(tmp_path / "run", config(epochs=5), checkpoint_cfg=config(epochs=5, seed=3))
    line = expect_usage_error(["--resume", run, "--quiet"], capsys, tmp_path)
    assert "another config" in line and str(run / CHECKPOINT) in line


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_write_keeps_the_old_file_when_the_writer_fails(error, tmp_path):
    path = tmp_path / "params.npz"
    path.write_bytes(b"the old, complete file")

    def half_then_fail(f):
        f.write(b"new bytes " * 1000)  # half of what it meant to write
        raise error("disk full")

    with pytest.raises(error):
        rundir.atomic_write(str(path), half_then_fail)
    assert path.read_bytes() == b"the old, complete file"
    assert os.listdir(tmp_path) == ["params.npz"]  # no temporary file left


def test_failed_npz_and_checkpoint_writes_keep_the_old_files(finished, tmp_path, monkeypatch):
    src, cfg = finished
    for name in ("params.npz", CHECKPOINT):
        shutil.copy(src / name, tmp_path / name)
    before = files(tmp_path)
    real = rundir.write_npz

    def torn_write_npz(f, arrays):
        buf = io.BytesIO()
        real(buf, arrays)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rundir, "write_npz", torn_write_npz)
    params = rundir.load_npz(str(tmp_path / "params.npz"))
    with pytest.raises(rundir.WriteError, match="params.npz: No space left on device"):
        rundir.save_npz(str(tmp_path / "params.npz"), {k: v + 1 for k, v in params.items()})
    with pytest.raises(rundir.WriteError, match="checkpoint.npz: No space left on device"):
        miiii.save_checkpoint(str(tmp_path / CHECKPOINT), miiii.init_state(cfg), cfg)
    assert files(tmp_path) == before and temp_files(tmp_path) == []
    monkeypatch.undo()
    assert miiii.load_checkpoint(str(tmp_path / CHECKPOINT), cfg)["epoch"] == 0


def test_npz_bytes_do_not_depend_on_the_time(tmp_path):
    arrays = {"a": np.arange(5.0), "b": np.eye(2, dtype=np.float32)}
    rundir.save_npz(str(tmp_path / "one.npz"), arrays)
    time.sleep(2.1)  # zip timestamps have a 2 s resolution
    rundir.save_npz(str(tmp_path / "two.npz"), arrays)
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()


# ============================================================================ 4. numerical guards
NAN_CFG = config(epochs=40)
NAN_FLAGS = cli_args(NAN_CFG, "--quiet", "--checkpoint-every", "5")


def poison(what, value):
    """A loss_and_grads that puts `value` into the loss or one gradient at epoch 7 (its 8th call)."""
    real = miiii.loss_and_grads
    calls = {"n": 0}

    def step(*args, **kwargs):
        loss, grads = real(*args, **kwargs)
        if calls["n"] == 7:
            if what == "loss":
                loss = value
            else:
                grads[what][0, 0] = value
        calls["n"] += 1
        return loss, grads

    return step


@pytest.fixture(scope="module")
def nan_clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("nan-clean") / "run"
    assert miiii.main(NAN_FLAGS + ["--out", str(out)]) == 0
    return files(out)


@pytest.mark.parametrize("what,value,named", [("W_in", float("nan"), "gradient of W_in"),
                                               ("W_U", float("inf"), "gradient of W_U"),
                                               ("loss", float("nan"), "loss")])
def test_non_finite_step_stops_with_exit_3(what, value, named, nan_clean, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    monkeypatch.setattr(miiii, "loss_and_grads", poison(what, value))
    rc = miiii.main(NAN_FLAGS + ["--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 3
    assert "Traceback" not in err
    errors = [line for line in error_lines(err) if "error" in line]
    assert len(errors) == 1, err
    assert f"non-finite {named} at epoch 7" in errors[0], errors[0]
    if what == "loss":
        assert "gradient" not in errors[0]
    assert error_lines(err) == [f"run directory: {out}", errors[0]]
    # metrics.npz and params.npz as of the one checkpoint (epoch 5); nothing of the steps after it
    assert set(os.listdir(out)) == INTERRUPTED - {rundir.PREVIOUS}
    assert len(rundir.load_npz(str(out / "metrics.npz"))["step_loss"]) == 5
    assert f"the checkpoint of epoch 5 is kept in {out}" in errors[0]
    assert miiii.load_checkpoint(str(out / CHECKPOINT), run_config_of(out))["epoch"] == 5
    assert json.loads((out / "config.json").read_text())["status"] == "interrupted"
    monkeypatch.undo()
    # the kept checkpoint is a good one: resuming it gives the clean run
    assert miiii.main(["--resume", str(out), "--quiet"]) == 0
    assert_same_files(files(out), nan_clean)


def test_check_finite_names_first_bad_parameter():
    grads = {name: np.ones((2, 2), dtype=np.float32) for name in miiii.PARAM_NAMES}
    miiii.check_finite(3, 1.0, grads)  # finite: no error
    grads["W_O"][1, 1] = np.nan
    grads["W_U"][0, 0] = np.inf
    with pytest.raises(miiii.NonFinite, match="gradient of W_O at epoch 3"):
        miiii.check_finite(3, 1.0, grads)
    with pytest.raises(miiii.NonFinite, match="loss at epoch 4"):
        miiii.check_finite(4, float("inf"), {name: np.ones(2) for name in miiii.PARAM_NAMES})


# ============================================================================ 5. bad input
def expect_usage_error(argv, capsys, watch):
    """main(argv) in-process: exit 2, exactly one stderr line, nothing under `watch` changed."""
    before = tree(watch)
    rc = miiii.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("miiii.py: error: ")
    assert tree(watch) == before
    return lines[0]


SMALL = config(epochs=5)


@pytest.mark.parametrize("flag,value", [("--p", 13), ("--d", 16), ("--seed", 2),
                                        ("--filter", "ma"), ("--lr", 0.01)])
def test_resume_with_disagreeing_flag(flag, value, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = interrupted_dir(tmp_path / "run", SMALL)
    line = expect_usage_error(["--resume", run, flag, value, "--quiet"], capsys, tmp_path)
    assert flag in line and "disagrees" in line


def test_resume_of_missing_dir(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = expect_usage_error(["--resume", tmp_path / "nowhere"], capsys, tmp_path)
    assert str(tmp_path / "nowhere") in line
    assert not (tmp_path / "nowhere").exists()


def test_resume_of_dir_without_config(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("not a run\n")
    line = expect_usage_error(["--resume", run], capsys, tmp_path)
    assert "config.json" in line and "missing" in line


def test_resume_with_another_out(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = interrupted_dir(tmp_path / "run", SMALL)
    line = expect_usage_error(["--resume", run, "--out", tmp_path / "elsewhere"], capsys, tmp_path)
    assert "--out" in line
    assert not (tmp_path / "elsewhere").exists()


def test_checkpoint_every_negative(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = expect_usage_error(cli_args(SMALL, "--checkpoint-every", "-1", "--out", tmp_path / "run"),
                              capsys, tmp_path)
    assert "--checkpoint-every" in line


def test_out_under_a_regular_file_is_not_writable(tmp_path, capsys, monkeypatch):
    """Works as root too: the nearest existing ancestor is a file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    line = expect_usage_error(cli_args(SMALL, "--out", tmp_path / "afile" / "run"), capsys, tmp_path)
    assert "not writable" in line or "not a directory" in line


@pytest.fixture
def read_only_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        probe = ro / "probe"
        try:
            probe.write_text("x")
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip(f"uid {os.getuid()} writes into a chmod 0o500 directory (root ignores permission "
                        "bits), so an unwritable --out cannot be made here")
        yield ro
    finally:
        os.chmod(ro, 0o700)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_out_in_a_place_nobody_can_write(tmp_path, capsys, monkeypatch):
    """Works as root too: /proc accepts no new directories, whatever the permission bits say."""
    monkeypatch.chdir(tmp_path)
    line = expect_usage_error(cli_args(SMALL, "--out", "/proc/miiii-run"), capsys, tmp_path)
    assert "not writable" in line


def test_unwritable_out(read_only_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = expect_usage_error(cli_args(SMALL, "--out", read_only_dir / "run"), capsys, tmp_path)
    assert "not writable" in line


def test_unwritable_resume_dir(read_only_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.chmod(read_only_dir, 0o700)
    run = interrupted_dir(read_only_dir / "run", SMALL)
    os.chmod(run, 0o500)
    os.chmod(read_only_dir, 0o500)
    try:
        line = expect_usage_error(["--resume", run], capsys, tmp_path)
    finally:
        os.chmod(run, 0o700)
    assert "not writable" in line


def test_p_too_large_for_memory_gives_the_estimate(tmp_path):
    """A real process (if the check failed, training would try to allocate terabytes)."""
    before = tree(tmp_path)
    result = run_child("--p", "5000", "--out", tmp_path / "big")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("miiii.py: error: "), result.stderr
    cfg = {**miiii.DEFAULTS, "p": 5000}
    gib = miiii.estimate_bytes(cfg) / 2 ** 30
    assert gib > 1000
    assert re.search(rf"needs about {gib:.1f} GiB, but only [\d.]+ GiB is available", lines[0]), lines[0]
    assert tree(tmp_path) == before


def test_resume_of_a_complete_run(finished, tmp_path, capsys):
    src, _ = finished
    run = tmp_path / "run"
    shutil.copytree(src, run)
    os.remove(run / CHECKPOINT)
    before = tree(tmp_path)
    assert miiii.main(["--resume", str(run), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "complete" in err and len(err.splitlines()) == 1
    assert tree(tmp_path) == before
