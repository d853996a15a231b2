"""Tasks (docs/definitions.md §1), loss weights, parameter initialisation (§2) and argument checks.

Expected targets are literal numbers worked out by hand, not recomputed with the code's formula.
"""
import math

import numpy as np
import pytest

import miiii

PRIMES_BELOW_113 = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73,
                    79, 83, 89, 97, 101, 103, 107, 109]


def sample(task, x0, x1):
    """Row index of the pair (x0, x1): sample i stands for n = x0 + x1 * p."""
    return x0 + x1 * task["p"]


# ------------------------------------------------------------------ targets by hand

@pytest.mark.parametrize("x0, x1, targets", [
    (5, 7, [0, 0, 1, 5, 8]),  # n = 5 + 13*7 = 96 = 2^5 * 3; 96 = 19*5 + 1 = 13*7 + 5 = 8*11 + 8
    (12, 12, [0, 0, 3, 0, 3]),  # n = 168 = 2^3 * 3 * 7; 168 = 33*5 + 3 = 15*11 + 3
    (0, 1, [1, 1, 3, 6, 2]),  # n = 13
    (1, 0, [1, 1, 1, 1, 1]),  # n = 1
    (0, 0, [0, 0, 0, 0, 0]),  # n = 0
    (9, 4, [1, 1, 1, 5, 6]),  # n = 61 (prime): 61 = 12*5 + 1 = 8*7 + 5 = 5*11 + 6
])
def test_miiii_targets_by_hand(x0, x1, targets):
    task = miiii.make_task("miiii", 13)
    assert task["moduli"] == [2, 3, 5, 7, 11]
    i = sample(task, x0, x1)
    assert task["x"][i].tolist() == [x0, x1, 13]
    assert task["y"][i].tolist() == targets


@pytest.mark.parametrize("x0, x1, targets", [
    (5, 7, [1, 1, 0, 0, 0]),  # 96: divisible by 2 and 3
    (12, 12, [1, 1, 0, 1, 0]),  # 168: by 2, 3, 7
    (0, 0, [1, 1, 1, 1, 1]),  # 0 is divisible by every q
    (9, 4, [0, 0, 0, 0, 0]),  # 61 is prime
    (3, 5, [1, 0, 0, 0, 0]),  # 68 = 2^2 * 17: by 2 only
])
def test_divisible_targets_by_hand(x0, x1, targets):
    task = miiii.make_task("divisible", 13)
    assert task["moduli"] == [2, 3, 5, 7, 11] and task["classes"] == [2] * 5
    assert task["y"][sample(task, x0, x1)].tolist() == targets


@pytest.mark.parametrize("x0, x1, target", [(7, 9, 5), (0, 0, 0), (10, 10, 9), (3, 8, 0), (10, 0, 10)])
def test_nanda_targets_by_hand(x0, x1, target):
    task = miiii.make_task("nanda", 11)
    assert task["moduli"] == [11] and task["classes"] == [11]
    assert task["y"][sample(task, x0, x1)].tolist() == [target]


def test_targets_everywhere_match_definitions():
    """Every sample, against the definitions of docs/definitions.md §1 written with Python ints."""
    p = 17
    miiii_task, nanda, div = (miiii.make_task(t, p) for t in ("miiii", "nanda", "divisible"))
    for i in range(p * p):
        x0, x1 = i % p, i // p
        n = x0 + p * x1
        assert miiii_task["y"][i].tolist() == [n % q for q in (2, 3, 5, 7, 11, 13)]
        assert div["y"][i].tolist() == [int(n % q == 0) for q in (2, 3, 5, 7, 11, 13)]
        assert nanda["y"][i].tolist() == [(x0 + x1) % p]


# ------------------------------------------------------------------ shapes and order

@pytest.mark.parametrize("task_name, p, T", [("miiii", 13, 5), ("nanda", 11, 1), ("basis", 13, 5),
                                             ("masked", 13, 5), ("divisible", 13, 5), ("miiii", 3, 1)])
def test_shapes_and_sample_order(task_name, p, T):
    task = miiii.make_task(task_name, p)
    N = p * p
    x, y = task["x"], task["y"]
    assert x.shape == (N, 3) and y.shape == (N, T)
    assert x.dtype == np.int64 and y.dtype == np.int64
    i = np.arange(N)
    np.testing.assert_array_equal(x[:, 0], i % p)  # sample i is n = i
    np.testing.assert_array_equal(x[:, 1], i // p)
    np.testing.assert_array_equal(x[:, 2], p)  # '=' is token p
    assert len(task["moduli"]) == len(task["classes"]) == len(task["mask"]) == T
    assert (y >= 0).all() and (y < np.array(task["classes"])[None, :]).all()


def test_moduli_at_113():
    task = miiii.make_task("miiii", 113)
    assert len(PRIMES_BELOW_113) == 29 and sum(PRIMES_BELOW_113) == 1480  # the literal list itself
    assert task["moduli"] == PRIMES_BELOW_113
    assert task["classes"] == PRIMES_BELOW_113
    assert sum(task["classes"]) == 1480
    assert miiii.primes_below(113) == PRIMES_BELOW_113


@pytest.mark.parametrize("p, primes", [(2, []), (3, [2]), (4, [2, 3]), (12, [2, 3, 5, 7, 11]),
                                       (13, [2, 3, 5, 7, 11]), (14, [2, 3, 5, 7, 11, 13])])
def test_primes_below(p, primes):
    assert miiii.primes_below(p) == primes


# ------------------------------------------------------------------ split

@pytest.mark.parametrize("p, frac, n_train", [(13, 0.3, 51), (13, 0.8, 135), (12, 0.5, 72), (7, 0.1, 5)])
def test_split_disjoint_complete_sized(p, frac, n_train):
    # 169 * 0.3 = 50.7, 169 * 0.8 = 135.2, 144 * 0.5 = 72, 49 * 0.1 = 4.9
    task = miiii.make_task("miiii", p, train_frac=frac, seed=3)
    train, valid = task["train"], task["valid"]
    assert len(train) == n_train and len(valid) == p * p - n_train
    assert len(np.intersect1d(train, valid)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, valid])), np.arange(p * p))
    assert len(np.unique(train)) == len(train)


def test_split_is_seeded():
    a, b, c = (miiii.make_task("miiii", 13, seed=s) for s in (5, 5, 6))
    np.testing.assert_array_equal(a["train"], b["train"])
    np.testing.assert_array_equal(a["valid"], b["valid"])
    assert not np.array_equal(a["train"], c["train"])
    # the split is a random subset, not a block of consecutive samples
    assert not np.array_equal(a["train"], np.arange(len(a["train"])))


def test_split_same_for_every_task_with_same_seed():
    """Tasks differ only in targets: a seed picks the same inputs for training (comparable runs)."""
    tasks = [miiii.make_task(t, 13, seed=2) for t in ("miiii", "masked", "divisible", "nanda", "basis")]
    for t in tasks[1:]:
        np.testing.assert_array_equal(t["train"], tasks[0]["train"])


# ------------------------------------------------------------------ basis and masked

def sorted_rows(y):
    return y[np.lexsort(y.T[::-1])]


def test_basis_permutes_target_rows():
    base = miiii.make_task("miiii", 13, seed=0)
    basis = miiii.make_task("basis", 13, seed=0)
    np.testing.assert_array_equal(basis["x"], base["x"])
    np.testing.assert_array_equal(sorted_rows(basis["y"]), sorted_rows(base["y"]))  # same multiset
    moved = (basis["y"] != base["y"]).any(axis=1).mean()
    assert moved > 0.5  # a real shuffle: most rows moved
    # rows are moved whole: each basis row is some n mod (2, 3, 5, 7, 11) row
    rows = {tuple(r) for r in base["y"].tolist()}
    assert all(tuple(r) in rows for r in basis["y"].tolist())
    other = miiii.make_task("basis", 13, seed=1)
    assert not np.array_equal(other["y"], basis["y"])  # the permutation is seeded
    np.testing.assert_array_equal(miiii.make_task("basis", 13, seed=0)["y"], basis["y"])


@pytest.mark.parametrize("p, mask", [(13, [0, 0, 0, 0, 1]), (23, [0, 0, 0, 0, 1, 1, 1, 1]),
                                     (12, [0, 0, 0, 0, 1])])
def test_masked_mask(p, mask):
    task = miiii.make_task("masked", p)
    assert task["mask"].tolist() == mask
    np.testing.assert_array_equal(task["y"], miiii.make_task("miiii", p)["y"])  # still evaluated
    for t in ("miiii", "divisible", "basis"):
        assert miiii.make_task(t, p)["mask"].tolist() == [1] * len(mask)


# ------------------------------------------------------------------ task weights

def test_task_weights():
    w = miiii.task_weights([2, 3])
    np.testing.assert_allclose(w, [0.5 / math.log(2), 0.5 / math.log(3)], rtol=1e-15)
    w = miiii.task_weights([2, 3, 5, 7, 11], np.array([0, 0, 0, 0, 1.0]))
    np.testing.assert_allclose(w, [0, 0, 0, 0, 1 / math.log(11)], rtol=1e-15)
    w = miiii.task_weights([11, 13], np.array([1.0, 1.0]))
    np.testing.assert_allclose(w, [0.5 / math.log(11), 0.5 / math.log(13)], rtol=1e-15)
    with pytest.raises(miiii.UsageError):
        miiii.task_weights([2, 3], np.zeros(2))


# ------------------------------------------------------------------ parameters

def expected_shapes(p, d, h, C):
    return {"tok_emb": (p + 1, d), "pos_emb": (3, d), "W_Q": (h, d, d // h), "W_K": (h, d, d // h),
            "W_V": (h, d, d // h), "W_O": (h, d // h, d), "W_in": (d, 4 * d), "W_out": (4 * d, d),
            "W_U": (d, C)}


@pytest.mark.parametrize("task_name, p, d, heads", [("miiii", 13, 16, 2), ("nanda", 11, 8, 4),
                                                    ("divisible", 13, 12, 3)])
def test_init_params_shapes_dtype(task_name, p, d, heads):
    task = miiii.make_task(task_name, p)
    C = {"miiii": 28, "nanda": 11, "divisible": 10}[task_name]  # 2+3+5+7+11, 11, 5 heads of 2
    params = miiii.init_params(p, d, heads, task["classes"])
    assert list(params) == list(miiii.PARAM_NAMES)
    assert {k: v.shape for k, v in params.items()} == expected_shapes(p, d, heads, C)
    assert all(v.dtype == np.float32 for v in params.values())


def test_init_params_he_std():
    """std sqrt(2 / fan_in), fan_in = d except 4d for W_out; bounds are 6 sampling s.d. wide."""
    p, d, heads = 31, 32, 4
    params = miiii.init_params(p, d, heads, miiii.make_task("miiii", p)["classes"], seed=0)
    for name, w in params.items():
        fan_in = 4 * d if name == "W_out" else d
        sigma, n = math.sqrt(2 / fan_in), w.size
        assert abs(w.std() / sigma - 1) < 6 / math.sqrt(2 * n), f"{name}: std {w.std():.4f} vs {sigma:.4f}"
        assert abs(w.mean()) < 6 * sigma / math.sqrt(n), f"{name}: mean {w.mean():.4f}"


def test_init_params_seeded():
    classes = [2, 3, 5]
    a, b, c = (miiii.init_params(7, 8, 2, classes, seed=s) for s in (4, 4, 5))
    for name in miiii.PARAM_NAMES:
        np.testing.assert_array_equal(a[name], b[name])
        assert not np.array_equal(a[name], c[name]), name


def test_init_params_rejects_indivisible_heads():
    with pytest.raises(miiii.UsageError):
        miiii.init_params(7, 10, 3, [2, 3, 5])


# ------------------------------------------------------------------ argument checks

@pytest.mark.parametrize("task_name, p, frac", [
    ("foo", 13, 0.5), ("MIIII", 13, 0.5),  # unknown task
    ("miiii", 2, 0.5), ("basis", 2, 0.5), ("divisible", 2, 0.5), ("nanda", 1, 0.5), ("masked", 11, 0.5),
    ("miiii", 13, 0.0), ("miiii", 13, 1.0), ("miiii", 13, 1.5), ("miiii", 13, -0.2),
    ("miiii", 3, 0.01),  # round(0.09) = 0 training samples
    ("miiii", 13.0, 0.5),  # p must be an integer
])
def test_check_task_args_errors(task_name, p, frac):
    with pytest.raises(miiii.UsageError):
        miiii.check_task_args(task_name, p, frac)
    with pytest.raises(miiii.UsageError):
        miiii.make_task(task_name, p, train_frac=frac)


@pytest.mark.parametrize("task_name, p", [("miiii", 3), ("nanda", 2), ("masked", 12), ("divisible", 3),
                                          ("basis", 3), ("nanda", 113)])
def test_check_task_args_smallest_valid(task_name, p):
    assert miiii.check_task_args(task_name, p, 0.5) is None


def test_nanda_non_prime_p_warns():
    warning = miiii.check_task_args("nanda", 12, 0.5)
    assert isinstance(warning, str) and "prime" in warning
    assert miiii.check_task_args("miiii", 12, 0.5) is None  # non-prime p is fine for T_miiii
