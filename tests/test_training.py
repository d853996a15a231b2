"""End-to-end training: a tiny configuration really groks, and its unregularised twin does not.

The configuration is the README's CI-sized one (T_nanda, p = 41, d = 64): with weight decay 1,
GrokFast-EMA lambda 2, dropout 0.1 and lr 3e-3 it reached >= 0.99 valid accuracy at epochs 525,
700 and 400 for seeds 0, 1 and 2 on a 2-core CPU (~10 s each); 1000 epochs leave a margin.
With dropout, weight decay and GrokFast all off it memorises the training half and stays at
0.41-0.45 valid accuracy after 1000 epochs (seeds 0 and 1); the test asserts < 0.8.
"""
import numpy as np
import pytest

import miiii

GROKS = dict(task="nanda", p=41, d=64, heads=4, lr=3e-3, wd=1.0, lamb=2.0, alpha=0.98,
             dropout=0.1, filter="ema", train_frac=0.5, epochs=1000, log_every=25)


@pytest.fixture(scope="module")
def grokked():
    return miiii.train({**GROKS, "seed": 0}, progress=False)


def test_tiny_config_groks(grokked):
    params, metrics = grokked
    assert metrics["epochs"][-1] == GROKS["epochs"]
    assert metrics["train_acc"][-1].min() >= 0.99
    assert metrics["valid_acc"][-1].min() >= 0.99
    # grokking, not instant generalisation: early on the model is near chance on held-out pairs
    early = np.searchsorted(metrics["epochs"], 50)
    assert metrics["valid_acc"][early].max() < 0.5


def test_training_is_deterministic(grokked):
    params, metrics = grokked
    short = {**GROKS, "epochs": 30, "seed": 0}
    a, ma = miiii.train(short, progress=False)
    b, mb = miiii.train(short, progress=False)
    for name in miiii.PARAM_NAMES:
        np.testing.assert_array_equal(a[name], b[name])
    np.testing.assert_array_equal(ma["step_loss"], mb["step_loss"])
    # the long run shares its first 30 step losses with the short one (same masks, same split)
    np.testing.assert_array_equal(metrics["step_loss"][:30], ma["step_loss"])


@pytest.mark.parametrize("seed", [0, 1])
def test_without_regularisation_it_only_memorises(seed):
    cfg = {**GROKS, "seed": seed, "dropout": 0.0, "wd": 0.0, "filter": "none"}
    _, metrics = miiii.train(cfg, progress=False)
    assert metrics["train_acc"][-1].min() >= 0.99  # it fits the training half ...
    assert metrics["valid_acc"].max() < 0.8  # ... but never generalises within the same budget


def test_loss_goes_down_and_is_logged_every_epoch(grokked):
    _, metrics = grokked
    step_loss = metrics["step_loss"]
    assert step_loss.shape == (GROKS["epochs"],)
    assert np.all(np.isfinite(step_loss))
    assert step_loss[-50:].mean() < 0.1 * step_loss[:10].mean()


def test_train_refuses_an_unknown_key_and_a_bad_value():
    with pytest.raises(miiii.UsageError, match=r"unknown config key 'learning_rate' \(valid: task, p, d, "):
        miiii.train({"task": "nanda", "p": 5, "d": 8, "epochs": 1, "learning_rate": 1e-2}, progress=False)
    with pytest.raises(miiii.UsageError, match="--lr must be a positive number"):
        miiii.train({"task": "nanda", "p": 5, "d": 8, "epochs": 1, "lr": -1.0}, progress=False)
