"""The GPU code path without a GPU: miiii and fft_analysis run on tests/fake_cupy.py, a CuPy
stand-in whose arrays refuse to mix with numpy arrays, so a host/device mix-up fails here.

First the stand-in itself is checked (it must refuse what CuPy refuses and allow what CuPy
allows), then the project's GPU path runs on it -- loss and gradients, training with dropout and
both GrokFast filters, evaluation, saving a run, the analysis snapshots -- and is compared with the
numpy backend. Last, every `xp.<name>` the source uses must exist in the stand-in (and in CuPy,
when CuPy is installed).

On a CUDA machine, MIIII_TEST_CUPY=1 runs the project's tests here on the real CuPy instead of the
stand-in (benchmarks/gpu_check.sh does): the `fake_gpu` fixture then hands out `cupy`, and the
comparisons with numpy allow float32 rounding (see the tolerances below). Without the variable the
stand-in is used, and no GPU or CuPy is needed.
"""
import importlib.util
import json
import operator
import os
import re
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for fake_cupy

import fake_cupy  # noqa: E402
import fft_analysis as fa  # noqa: E402
import fourier  # noqa: E402
import miiii  # noqa: E402
import rundir  # noqa: E402

REAL_CUPY = os.environ.get("MIIII_TEST_CUPY", "") == "1"
if REAL_CUPY:
    import cupy as GPU  # asked for: a missing CuPy is an error here, never a silent skip
else:
    GPU = fake_cupy


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(task="miiii", p=11, d=16, heads=2, lr=3e-3, wd=1.0, lamb=2.0, alpha=0.98, dropout=0.0,
            filter="ema", window=5, train_frac=0.5, epochs=24, seed=0, log_every=8)


def on_device(a):
    return isinstance(a, GPU.ndarray)


@pytest.fixture
def fake_gpu(monkeypatch):
    """miiii (and so fft_analysis) on the stand-in backend (real CuPy with MIIII_TEST_CUPY=1) for
    one test; numpy again after it."""
    monkeypatch.setattr(miiii, "xp", GPU)
    monkeypatch.setattr(miiii, "_layouts", {})  # head layouts hold backend arrays: start clean
    return GPU


# Tolerances of device-vs-numpy comparisons. The stand-in runs numpy's own arithmetic, so those are
# tight. A real GPU sums float32 products in another order (cuBLAS vs OpenBLAS): each entry moves by
# ~sqrt(K) * 6e-8 relative, a ReLU input within rounding of 0 can flip, a head whose two largest
# logits tie within rounding can change its answer, and AdamW turns a gradient entry near 0 into a
# full +-lr step whatever its size. Hence on CuPy: rtol 1e-4 on values, gradients against their
# own scale, weights by their overall (Frobenius) difference, accuracies within one sample.
RTOL = 1e-4 if REAL_CUPY else 1e-6


def assert_grad_close(got, expected, name):
    if REAL_CUPY:
        atol = 1e-4 * float(np.abs(expected).max())
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=atol, err_msg=name)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7, err_msg=name)


def assert_weights_close(got, expected, name):
    if REAL_CUPY:
        assert np.linalg.norm(got - expected) <= 1e-3 * np.linalg.norm(expected), name
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=name)


def assert_acc_close(got, expected, n_samples):
    """Equal on the stand-in; on a real GPU one sample per task may change its answer."""
    np.testing.assert_allclose(got, expected, atol=1.01 / n_samples if REAL_CUPY else 1e-12)


def assert_mostly_equal(got, expected, name):
    """Counts and flags derived by thresholds: equal on the stand-in; on a real GPU a value sitting
    at its threshold may flip, so 1 % of the entries (at least one) may differ."""
    got, expected = np.asarray(got), np.asarray(expected)
    if not REAL_CUPY:
        np.testing.assert_array_equal(got, expected, err_msg=name)
        return
    assert got.shape == expected.shape, name
    differ = ~np.isclose(got.astype(np.float64), expected.astype(np.float64), rtol=1e-3, atol=1e-6)
    assert differ.sum() <= max(1, 0.01 * differ.size), name


def assert_tree_close(got, expected, where="analysis"):
    """JSON-like results: equal on the stand-in; floats to 1e-3 and counts within 1 on a real GPU."""
    if not REAL_CUPY:
        assert got == expected
        return
    if isinstance(expected, dict):
        assert sorted(got) == sorted(expected), where
        for k in expected:
            assert_tree_close(got[k], expected[k], f"{where}.{k}")
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), where
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_tree_close(g, e, f"{where}[{i}]")
    elif isinstance(expected, bool) or not isinstance(expected, (int, float)):
        assert got == expected, where
    elif isinstance(expected, int):
        assert abs(got - expected) <= 1, where
    else:
        assert got == pytest.approx(expected, rel=1e-3, abs=1e-6, nan_ok=True), where


# ============================================================================ the stand-in itself
def test_fake_arrays_refuse_numpy_operands():
    xp = fake_cupy
    a, h = xp.asarray(np.arange(6.0).reshape(2, 3)), np.ones((2, 3))
    mixes = [
        lambda: a + h, lambda: h + a, lambda: a * h[0], lambda: h - a,  # operators, both sides
        lambda: a @ h.T, lambda: h.T @ a,
        lambda: np.add(a, h), lambda: xp.exp(h), lambda: xp.maximum(a, h),
        lambda: xp.exp(a, out=h),  # a host output buffer
        lambda: a + np.array(2.0),  # CuPy refuses 0-d numpy arrays in arithmetic too
        lambda: xp.stack([a, h]), lambda: xp.concatenate([a, h]), lambda: np.concatenate([a, h]),
        lambda: xp.where(h > 0, a, 0), lambda: xp.einsum("ij,ij->i", a, h),
        lambda: a[np.array([0, 1])],  # stricter than CuPy, which copies the index over silently
        lambda: a.__setitem__(0, np.zeros(3)),
        lambda: np.maximum.reduceat(a, [0, 2], axis=1),  # ufunc methods are numpy-only
    ]
    for i, mix in enumerate(mixes):
        with pytest.raises(TypeError):
            mix()
            pytest.fail(f"mix {i} did not raise")
    b = a.copy()
    with pytest.raises(TypeError):
        b += h  # in place
    with pytest.raises(ValueError):
        xp.repeat(a, xp.asarray([1, 2]), axis=0)  # CuPy wants host repeat counts


def test_fake_arrays_refuse_implicit_conversion():
    a = fake_cupy.asarray(np.arange(3.0))
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(a)
    for convert in (np.array, np.asanyarray, lambda v: np.testing.assert_allclose(v, np.arange(3.0)),
                    lambda v: np.zeros(3) + np.asarray(v)):
        with pytest.raises(TypeError):
            convert(a)
    with pytest.raises(TypeError):
        operator.index(a[0])  # no __index__ in CuPy: a device scalar cannot index host containers
    with pytest.raises(TypeError):
        json.dumps({"x": a[0]})


def test_fake_arrays_allow_scalars_and_explicit_transfers():
    xp = fake_cupy
    host = np.arange(6.0).reshape(2, 3)
    a = xp.asarray(host)
    host[0, 0] = 99.0
    assert float(a[0, 0]) == 0.0  # asarray copied: host and device do not share memory
    for r in (a + 1, 2.0 * a, np.float32(3) * a, a > np.array(0.5), a ** 0.5, -a, abs(a), a[0], a[:, 1:],
              a[xp.asarray([1, 0])], a.T, a.reshape(3, 2), a.astype(np.float32), a.sum(), a.max(axis=1),
              a.argmax(axis=-1), a.mean(), a @ a.T, xp.einsum("ij,kj->ik", a, a), np.exp(a), np.sum(a),
              xp.stack([a, a]), xp.where(a > 1, a, 0), xp.repeat(a, [1, 2], axis=0), xp.fft.rfft2(a).real,
              xp.arange(3), xp.random.default_rng(3).random((2, 3), dtype=np.float32)):
        assert on_device(r), type(r)
    assert a.sum().shape == ()  # reductions give 0-d device arrays, not numpy scalars
    assert xp.random.default_rng(3).random((2, 3), dtype=np.float32).dtype == np.float32
    scalars = (float(a.sum()), int(a[1, 2]), bool(a[0, 1]), a[1, 1].item(), f"{a[1, 0]:.1f}")
    assert scalars == (15.0, 5, True, 4.0, "3.0")  # one-element arrays convert explicitly
    assert a.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    for back in (xp.asnumpy(a), a.get()):
        assert type(back) is np.ndarray
        np.testing.assert_array_equal(back, np.arange(6.0).reshape(2, 3))
    back = a.get()
    back[0, 0] = -1.0
    assert float(a[0, 0]) == 0.0  # get() copied too
    b = a  # in-place operations keep the array and its storage
    a += 1
    xp.exp(a, out=a)
    a[0] -= xp.asarray([1.0, 1.0, 1.0])
    assert b is a
    np.testing.assert_allclose(a.get(), np.exp(np.arange(6.0).reshape(2, 3) + 1) - [[1], [0]])
    assert xp.__name__ != "numpy" and xp.get_array_module(a) is xp and xp.get_array_module(host) is np
    assert xp.float64 is np.float64 and xp.float32 is np.float32


# ============================================================================ the project on it
def tiny_problem(task, p, d=16, heads=2, seed=0):
    data = miiii.make_task(task, p, 0.5, seed)
    params = miiii.init_params(p, d, heads, data["classes"], seed)
    idx = data["train"]
    return data, params, data["x"][idx], data["y"][idx]


@pytest.mark.parametrize("task, p", [("nanda", 7), ("miiii", 11), ("masked", 13), ("divisible", 11)])
def test_loss_and_grads_on_the_device_match_numpy(fake_gpu, task, p):
    data, params, x, y = tiny_problem(task, p)
    miiii.xp = np  # the numpy reference on the same inputs (the fixture restores numpy afterwards)
    loss_np, grads_np = miiii.loss_and_grads(params, x, y, data["classes"], data["mask"])
    miiii.xp = fake_gpu
    dev = {name: miiii.to_device(w) for name, w in params.items()}
    loss, grads = miiii.loss_and_grads(dev, miiii.to_device(x), miiii.to_device(y), data["classes"],
                                       miiii.to_device(data["mask"]))
    assert type(loss) is float
    assert loss == pytest.approx(loss_np, rel=RTOL)
    for name in miiii.PARAM_NAMES:
        assert on_device(grads[name]), name
        g = miiii.to_host(grads[name])
        assert g.dtype == np.float32 and g.shape == params[name].shape
        assert_grad_close(g, grads_np[name], name)


def test_dropout_draws_on_the_device(fake_gpu):
    data, params, x, y = tiny_problem("miiii", 11)
    rng = miiii.dropout_rng(0, 3)
    assert not isinstance(rng, np.random.Generator)  # the backend's generator, not numpy's
    dev = {name: miiii.to_device(w) for name, w in params.items()}
    loss, grads = miiii.loss_and_grads(dev, miiii.to_device(x), miiii.to_device(y), data["classes"],
                                       miiii.to_device(data["mask"]), dropout=0.3, rng=rng)
    assert np.isfinite(loss)
    assert all(on_device(g) and np.isfinite(miiii.to_host(g)).all() for g in grads.values())


def test_evaluate_on_the_device_matches_numpy(fake_gpu):
    data, params, _, _ = tiny_problem("miiii", 11)
    sets = (data["train"], data["valid"])
    miiii.xp = np
    expected = miiii.evaluate(params, data["x"], data["y"], data["classes"], sets)
    miiii.xp = fake_gpu
    dev = {name: miiii.to_device(w) for name, w in params.items()}
    got = miiii.evaluate(dev, miiii.to_device(data["x"]), miiii.to_device(data["y"]), data["classes"],
                         tuple(miiii.to_device(s) for s in sets))
    for (gl, ga), (el, ea), idx in zip(got, expected, sets):
        assert type(gl) is np.ndarray and type(ga) is np.ndarray  # host results
        np.testing.assert_allclose(gl, el, rtol=RTOL)
        assert_acc_close(ga, ea, len(idx))


def check_host_results(params, metrics, cfg):
    for name in miiii.PARAM_NAMES:
        assert type(params[name]) is np.ndarray and params[name].dtype == np.float32, name
    for key, value in metrics.items():
        assert type(value) is np.ndarray, key
    assert metrics["epochs"][-1] == cfg["epochs"]
    assert np.isfinite(metrics["step_loss"]).all() and np.isfinite(metrics["valid_loss"]).all()


def test_training_without_dropout_matches_numpy(fake_gpu):
    miiii.xp = np
    expected_params, expected = miiii.train(TINY, progress=False)
    miiii.xp = fake_gpu
    params, metrics = miiii.train(TINY, progress=False)
    check_host_results(params, metrics, TINY)
    # same arithmetic, except the head reductions (reduceat on numpy, a padded gather on the device)
    np.testing.assert_allclose(metrics["step_loss"], expected["step_loss"], rtol=1e-4 if REAL_CUPY else 1e-5)
    n_valid = len(miiii.make_task(TINY["task"], TINY["p"], TINY["train_frac"], TINY["seed"])["valid"])
    assert_acc_close(metrics["valid_acc"], expected["valid_acc"], n_valid)
    for name in miiii.PARAM_NAMES:
        assert_weights_close(params[name], expected_params[name], name)


@pytest.mark.parametrize("filt", ["ema", "ma", "none"])
def test_training_with_dropout_and_hooks_runs_on_the_device(fake_gpu, filt):
    cfg = {**TINY, "dropout": 0.1, "filter": filt}
    seen = {"log": 0, "grads": 0, "snapshot": 0}

    def log(epoch, params, metrics):  # hooks see the backend's arrays, as fft_analysis will
        assert all(on_device(w) for w in params.values())
        seen["log"] += 1

    def grads(epoch, g):
        assert all(on_device(v) for v in g.values())
        seen["grads"] += 1

    def snapshot(epoch, params):
        seen["snapshot"] += 1

    hooks = [{"log": log, "grads": grads, "snapshot": snapshot, "snapshot_epochs": {0, 5, cfg["epochs"]}}]
    params, metrics = miiii.train(cfg, progress=False, hooks=hooks)
    check_host_results(params, metrics, cfg)
    assert seen == {"log": len(metrics["epochs"]), "grads": len(metrics["epochs"]) - 1, "snapshot": 3}


def test_progress_line_on_the_device(fake_gpu, capfd):
    cfg = {**TINY, "epochs": 3, "dropout": 0.1}
    miiii.train(cfg, progress=True)
    assert "epoch 3/3" in capfd.readouterr().err


def test_a_run_trained_on_the_device_saves_and_loads_with_numpy(fake_gpu, tmp_path):
    cfg = {**miiii.DEFAULTS, **TINY, "dropout": 0.1, "gpu": True}
    params, metrics = miiii.train(cfg, progress=False)
    out = str(tmp_path / "run")
    miiii.write_run(out, cfg, params, metrics)
    with np.load(os.path.join(out, "params.npz"), allow_pickle=False) as f:
        for name in miiii.PARAM_NAMES:
            np.testing.assert_array_equal(f[name], params[name])
    with np.load(os.path.join(out, "metrics.npz"), allow_pickle=False) as f:
        np.testing.assert_array_equal(f["valid_acc"], metrics["valid_acc"])
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["backend"] == "cupy"


def test_checkpoint_on_the_device_resumes_bit_identically(fake_gpu, tmp_path):
    cfg = {**miiii.DEFAULTS, **TINY, "dropout": 0.1, "filter": "ma", "gpu": True}
    path = str(tmp_path / rundir.CHECKPOINT)

    def checkpoint(state):  # keep the first one, at epoch 10
        if not os.path.exists(path):
            miiii.save_checkpoint(path, state, cfg)

    params, metrics = miiii.train(cfg, progress=False, checkpoint=checkpoint, checkpoint_every=10)
    state = miiii.load_checkpoint(path, cfg)
    assert state["epoch"] == 10
    assert all(on_device(w) for w in state["params"].values())  # device arrays come back on the device
    assert all(on_device(w) for w in state["adam"]["m"].values())
    assert type(state["step_loss"]) is np.ndarray  # host arrays stay on the host
    resumed, resumed_metrics = miiii.train(cfg, progress=False, state=state)
    for name in miiii.PARAM_NAMES:
        np.testing.assert_array_equal(resumed[name], params[name], err_msg=name)
    np.testing.assert_array_equal(resumed_metrics["step_loss"], metrics["step_loss"])


def test_command_line_with_gpu_flag_on_the_device(monkeypatch, tmp_path):
    """`miiii.py --gpu` end to end, with the stand-in installed as `cupy` (or the real one)."""
    if not REAL_CUPY:
        monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setattr(miiii, "xp", np)  # use_backend("cupy") rebinds it; monkeypatch puts numpy back
    monkeypatch.setattr(miiii, "_layouts", {})
    out = str(tmp_path / "run")
    argv = ["--task", "nanda", "--p", "11", "--d", "16", "--heads", "2", "--epochs", "20", "--log-every", "5",
            "--checkpoint-every", "5", "--gpu", "--quiet", "--out", out]
    assert miiii.main(argv) == 0
    assert miiii.xp is GPU
    with np.load(os.path.join(out, "params.npz"), allow_pickle=False) as f:
        assert f["W_U"].shape == (16, 11)
    with open(os.path.join(out, "config.json")) as f:
        config = json.load(f)
    assert config["backend"] == "cupy"
    if "status" in config:  # runs now keep their final state as the checkpoint (to be extended)
        assert config["status"] == "complete"
    else:
        assert not os.path.exists(os.path.join(out, rundir.CHECKPOINT))
    assert os.path.exists(os.path.join(out, "omega.npz"))
    assert fa.main([out, "--gpu"]) == 0
    with open(os.path.join(out, "analysis.json")) as f:
        assert json.load(f)["p"] == 11


# ============================================================================ the analysis on it
def trained_params(cfg):
    """A short numpy-backend run: parameters with some structure to analyse."""
    return miiii.train(cfg, progress=False)[0]


def test_analysis_snapshots_on_the_device_match_numpy(fake_gpu):
    cfg = {**TINY, "task": "nanda", "epochs": 40}
    miiii.xp = np
    params = trained_params(cfg)
    p = cfg["p"]
    expected = (fa.neuron_grids(params, p), miiii.omega_snapshot(params, p), fa.attention_patterns(params, p))
    miiii.xp = fake_gpu
    grids, omega, att = fa.neuron_grids(params, p), miiii.omega_snapshot(params, p), fa.attention_patterns(params, p)
    assert type(grids) is np.ndarray and type(att) is np.ndarray
    tol = 10 if REAL_CUPY else 1  # float32 of another summation order on a real GPU
    np.testing.assert_allclose(grids, expected[0], rtol=1e-5 * tol, atol=1e-6 * tol)
    np.testing.assert_allclose(att, expected[2], rtol=1e-5 * tol, atol=1e-7 * tol)
    assert on_device(fa.neuron_grids(params, p, host=False))
    for key, value in omega.items():
        assert not on_device(value), key  # host values, ready for np.savez / json
        assert_mostly_equal(value, expected[1][key], key)
    power = fourier.neuron_power(fa.neuron_grids(params, p, host=False))  # the device path of the spectrum
    assert on_device(power)
    np.testing.assert_allclose(miiii.to_host(power), fourier.neuron_power(expected[0]), rtol=1e-4 * tol,
                               atol=1e-6 * tol)


def test_training_hooks_and_records_on_the_device(fake_gpu, tmp_path):
    cfg = {**TINY, "task": "nanda", "epochs": 40, "dropout": 0.1}
    state = {}
    params, metrics = miiii.train(cfg, progress=False, hooks=miiii.training_hooks(cfg, state))
    assert state["omega"] and state["grad_norms"]
    for snap in state["omega"].values():
        assert not any(on_device(v) for v in snap.values())
    for norms in state["grad_norms"].values():
        assert all(type(v) is float for v in norms.values())
    out = str(tmp_path / "run")
    rundir.finish_records(out, state)
    miiii.write_run(out, {**miiii.DEFAULTS, **cfg}, params, metrics)
    with np.load(os.path.join(out, "omega.npz"), allow_pickle=False) as f:
        np.testing.assert_array_equal(f["epochs"], sorted(state["omega"]))
    with np.load(os.path.join(out, "grad_norms.npz"), allow_pickle=False) as f:
        assert np.isfinite(f["W_U"]).all()
    on_fake = fa.analyse_run(out)  # the command line's --gpu path: analysis of a saved run
    miiii.xp = np
    assert_tree_close(on_fake, fa.analyse_run(out))
    json.dumps(on_fake)


# ============================================================================ the benchmark on it
def bench_step():
    """benchmarks/bench_step.py as a module (it is a script, not a package), loaded once."""
    if "bench_step" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_step", os.path.join(ROOT, "benchmarks", "bench_step.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["bench_step"] = module
    return sys.modules["bench_step"]


BENCH_TINY = dict(task="miiii", p=11, d=16, heads=2, train_frac=0.5, dropout=0.1)


def test_benchmark_records_the_products_the_step_runs():
    """The recorder sees every matrix product without changing the step's numbers."""
    bench = bench_step()
    records = bench.record_products(BENCH_TINY)
    _, params, x, y = bench.setup(BENCH_TINY)
    task = miiii.make_task("miiii", 11, 0.5, 0)
    loss, grads = miiii.loss_and_grads(params, x, y, task["classes"], task["mask"], dropout=0.1,
                                       rng=miiii.dropout_rng(0, 1))
    bench.Recorder.log = []
    wrapped = {k: v.view(bench.Recorder) for k, v in params.items()}
    loss_r, grads_r = miiii.loss_and_grads(wrapped, x.view(bench.Recorder), y.view(bench.Recorder),
                                           task["classes"], task["mask"], dropout=0.1, rng=miiii.dropout_rng(0, 1))
    assert loss_r == loss
    for name in miiii.PARAM_NAMES:
        np.testing.assert_array_equal(np.asarray(grads_r[name]), grads[name], err_msg=name)
    n, d, C = len(task["train"]), 16, sum(task["classes"])
    shapes = {(r["a"][0], r["b"][0]) for r in records}
    for a, b in [((n, d), (d, 4 * d)), ((n, 4 * d), (4 * d, d)), ((n, d), (d, C))]:  # the forward's big three
        assert (a, b) in shapes, (a, b)
    mlp_and_unembed = 3 * (2 * n * d * 4 * d * 2 + 2 * n * d * C)  # forward and two backward products each
    assert sum(bench.product_flops(r) for r in records) >= mlp_and_unembed


def test_benchmark_replays_the_products_on_the_device(fake_gpu):
    """bench_step.py --gpu replays the recorded products on the backend, layouts kept."""
    bench = bench_step()
    miiii.xp = np  # the recorder is a numpy type (bench_step switches the same way)
    records = bench.record_products(BENCH_TINY)
    miiii.xp = fake_gpu
    timed = bench.time_products(records, fake_gpu, lambda: fake_gpu.cuda.Device().synchronize(), reps=1)
    seconds, flops = bench.product_totals(timed)
    assert seconds > 0 and flops == sum(bench.product_flops(r) for r in records)
    rng = np.random.default_rng(0)
    for r in records:
        for shape, strides, label in (r["a"], r["b"]):
            a = bench.operand(fake_gpu, shape, strides, label, np.float32, rng)
            assert on_device(a) and a.shape == shape
    assert {label for r in records for _, _, label in (r["a"], r["b"])} >= {"C", "T"}  # w.T stays a view


# ============================================================================ names the code uses
SOURCES = [os.path.join(ROOT, name)
           for name in ("miiii.py", "grokfast.py", "fourier.py", "fft_analysis.py", "figures.py")]
XP_NAME = re.compile(r"\bxp((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def xp_names():
    """Every `xp.a.b` chain in the project's source (comments and docstrings included)."""
    names = set()
    for path in SOURCES:
        if os.path.exists(path):
            with open(path) as f:
                names |= {m.group(1)[1:] for m in XP_NAME.finditer(f.read())}
    return sorted(names)


def missing_names(module):
    missing = []
    for name in xp_names():
        obj = module
        for part in name.split("."):
            if not hasattr(obj, part):
                missing.append(name)
                break
            obj = getattr(obj, part)
    return missing


def test_the_scan_finds_the_names_used():
    names = xp_names()
    for expected in ("asnumpy", "asarray", "concatenate", "random.default_rng", "float64", "__name__"):
        assert expected in names
    assert "fft.rfft2" in names  # fourier.neuron_power on the device


def test_fake_cupy_has_every_xp_name():
    assert missing_names(fake_cupy) == []


def test_cupy_has_every_xp_name():
    cupy = pytest.importorskip("cupy")
    assert missing_names(cupy) == []
