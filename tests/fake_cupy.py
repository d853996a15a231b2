"""fake_cupy: a CPU stand-in for CuPy that fails where CuPy fails on host/device mix-ups.

The tests swap it in for `miiii.xp`, so code written for `xp` runs as if on a GPU: every array
made through this module lives on the pretend "device" (a numpy array wrapped in
`fake_cupy.ndarray`, which is *not* a numpy.ndarray subclass, just as cupy.ndarray is not), and
the only ways across are explicit: `asarray` / `array` (host -> device, a copy) and `asnumpy` /
`.get()` (device -> host, a copy).

What it imitates (CuPy's documented behaviour, checked against its docs and source):
* `np.asarray(a)`, `np.array(a)`, `np.testing.assert_allclose(a, ...)` raise TypeError:
  `__array__` refuses ("Implicit conversion to a NumPy array is not allowed...",
  cupy/_core/core.pyx). (`np.savez(f, a=a)` works, in CuPy too: it dispatches to cupy.savez.)
* `float(a)`, `int(a)`, `complex(a)`, `bool(a)` on a one-element array, `a.item()`, `a.tolist()`,
  `repr(a)` and f-strings copy to the host and are allowed, as in CuPy. `operator.index(a)` is
  not (CuPy defines no `__index__`): a device scalar cannot index a Python list or a range.
* Arithmetic and numpy ufuncs (`a + b`, `np.exp(a)`, `out=`) accept device arrays, Python
  scalars and numpy scalars (np.float32(2)); a numpy.ndarray operand raises TypeError, as CuPy's
  kernels do ("Unsupported type <class 'numpy.ndarray'>"). Like CuPy, a 0-d numpy array is
  refused too, except in comparisons (CuPy turns it into a scalar there). Only plain ufunc calls
  work: `np.add.reduceat(a, ...)`, `.reduce`, `.outer`, `.at` on device arrays raise TypeError
  (CuPy's `__array_ufunc__` returns NotImplemented for them).
* numpy functions called on device arrays (`np.sum(a)`, `np.concatenate([a, b])`) dispatch to
  this module through `__array_function__` and return device arrays, as CuPy does (NEP 18); a
  numpy.ndarray among their arguments raises TypeError.
* Results of operations are device arrays, never numpy scalars: `a.sum()` is a 0-d array.
* `asarray(host)` copies (CuPy copies to the device), so host and device never share memory.
* `repeat(a, repeats)` wants host repeats (an int or a list); a device array raises, as in CuPy.
* `random.default_rng(seed)` gives a generator whose draws are device arrays, from a different
  bit generator than numpy's (CuPy uses XORWOW): the same seed gives different numbers.

Where it is stricter than CuPy (each is a silent host->device copy in CuPy, so a mix-up anyway):
* indexing a device array with a numpy array (`a[np_idx]`) or assigning one into it
  (`a[...] = np_vals`) raises TypeError; CuPy copies the numpy array over (or, for basic
  slices, raises ValueError);
* module functions refuse numpy arrays even where a CuPy function would happen to accept one.

Where it is more lenient: any numpy function name exists here (CuPy lacks some). The test
tests/test_backend.py::test_cupy_has_every_xp_name checks the names the project uses against a
real CuPy when one is installed. Submodules: `random` (default_rng and Generator only), `fft`,
`linalg`, and a `cuda` stub (Device().mem_info, a pretend 16 GiB card; runtime.getDeviceCount()
is 1), so `sys.modules["cupy"] = fake_cupy` lets miiii.use_backend("cupy") and `--gpu` run too.
"""
import sys as _sys
import types as _types

import numpy as _np
import numpy.lib.mixins as _mixins

_COMPARISONS = {"equal", "not_equal", "less", "less_equal", "greater", "greater_equal"}
_SCALARS = (bool, int, float, complex, _np.generic)


def _mixed(where, x):
    return TypeError(f"fake_cupy: {where} got a {type(x).__module__}.{type(x).__name__} (host) "
                     f"among device arrays; move it with asarray() / to_device() first")


def _unwrap(x, where):
    """Device arrays -> their numpy storage (recursing into lists, tuples and dicts); numpy arrays raise."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, _np.ndarray):
        raise _mixed(where, x)
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, where) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v, where) for k, v in x.items()}
    return x


def _wrap(r):
    """numpy results -> device arrays (numpy scalars become 0-d arrays, as CuPy returns)."""
    if isinstance(r, (_np.ndarray, _np.generic)):
        return ndarray(_np.asarray(r))
    if isinstance(r, (list, tuple)):
        return type(r)(_wrap(v) for v in r)
    return r


def _device_function(func, where):
    """`func` (a numpy function or method) made to take and return device arrays only."""
    def call(*args, **kwargs):
        return _wrap(func(*_unwrap(args, where), **_unwrap(kwargs, where)))
    call.__name__ = call.__qualname__ = where
    return call


class ndarray(_mixins.NDArrayOperatorsMixin):
    """A "device" array: numpy storage that refuses to mix with numpy arrays (see module doc).

    Operators come from NDArrayOperatorsMixin, which routes them through __array_ufunc__.
    Make one with asarray(); ndarray(a) wraps the numpy array `a` without a copy.
    """
    __slots__ = ("_a",)

    def __init__(self, a):
        self._a = a

    # ---------------------------------------------------------------- crossing to the host
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def get(self, stream=None, order="C", out=None):
        """The explicit device -> host copy."""
        return _np.array(self._a, order=order, copy=True)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __complex__(self):
        return complex(self._a)

    def __bool__(self):
        return bool(self._a)

    def __repr__(self):
        return repr(self._a)

    def __str__(self):
        return str(self._a)

    def __format__(self, spec):
        return format(self._a, spec)

    # ---------------------------------------------------------------- numpy protocols
    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        where = f"ufunc {ufunc.__name__}"
        if method != "__call__":
            raise TypeError(f"fake_cupy: {where}.{method} is not supported on device arrays "
                            f"(CuPy's __array_ufunc__ only handles plain calls)")
        kwargs, args = _unwrap(kwargs, where), []  # where=, dtype=, casting=: a host `where=` mask raises
        for x in inputs:
            if isinstance(x, _np.ndarray) and x.ndim == 0 and ufunc.__name__ in _COMPARISONS:
                x = x.item()  # CuPy's one exception: 0-d numpy arrays in comparisons
            if isinstance(x, ndarray):
                args.append(x._a)
            elif isinstance(x, _SCALARS):
                args.append(x)
            else:
                raise _mixed(where, x)
        if out is not None:
            for o in out:
                if not isinstance(o, ndarray):
                    raise _mixed(where + " out=", o)
            kwargs["out"] = tuple(o._a for o in out)
        result = ufunc(*args, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out  # the very arrays passed in: in place
        return _wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        namespace = _SUBMODULES.get(func.__module__)
        if namespace is None:
            return NotImplemented  # numpy then raises TypeError, as for CuPy
        return getattr(namespace, func.__name__)(*args, **kwargs)

    # ---------------------------------------------------------------- container
    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(row) for row in self._a)

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key, "indexing")])

    def __setitem__(self, key, value):
        self._a[_unwrap(key, "indexing")] = _unwrap(value, "item assignment")

    # ---------------------------------------------------------------- attributes and methods
    @property
    def shape(self):
        return self._a.shape

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    def repeat(self, repeats, axis=None):
        return repeat(self, repeats, axis)

    def __getattr__(self, name):
        # only called for names not defined above: delegate to numpy, except protocol names
        # (__array_interface__ would let numpy read the storage) and raw memory access
        if name.startswith("__") or name in ("_a", "ctypes", "data"):
            raise AttributeError(name)
        attr = getattr(self._a, name)
        return _device_function(attr, f"ndarray.{name}") if callable(attr) else _wrap(attr)


# -------------------------------------------------------------------- transfers
def asarray(a, dtype=None, order=None):
    """Host -> device (a copy); a device array is returned as is (cast if `dtype` says so)."""
    if isinstance(a, ndarray):
        return a if dtype is None else a.astype(dtype, copy=False)
    return ndarray(_np.array(a, dtype=dtype, order=order or "K", copy=True))


def array(obj, dtype=None, copy=True, order="K", ndmin=0):
    """Host -> device (always a copy); device -> device (a copy unless copy=False allows reuse)."""
    if isinstance(obj, ndarray):
        return ndarray(_np.array(obj._a, dtype=dtype, copy=copy, order=order, ndmin=ndmin))
    return ndarray(_np.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asnumpy(a, stream=None, order="C", out=None):
    """Device -> host (a copy); anything else goes through numpy.asarray, as in CuPy."""
    if isinstance(a, ndarray):
        return a.get(order=order)
    return _np.asarray(a, order=order)


def get_array_module(*args):
    return _sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else _np


def repeat(a, repeats, axis=None):
    """CuPy wants the repeat counts on the host (an int or a sequence of ints)."""
    if isinstance(repeats, ndarray):
        raise ValueError("fake_cupy: a device array cannot be specified as `repeats` (CuPy needs host ints)")
    return _wrap(_np.repeat(_unwrap(a, "repeat"), repeats, axis))


# -------------------------------------------------------------------- submodules
class _Namespace:
    """fake_cupy.fft / fake_cupy.linalg: that numpy submodule's functions, for device arrays only."""

    def __init__(self, module, name):
        self._module, self.__name__ = module, name

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        func = _device_function(getattr(self._module, name), f"{self.__name__}.{name}")
        setattr(self, name, func)
        return func


class Generator:
    """cupy.random.Generator stand-in: numpy's Philox bits (CuPy: XORWOW), device arrays out."""

    def __init__(self, seed=None):
        if isinstance(seed, ndarray):
            raise TypeError("fake_cupy: the seed must be host data (an int or a list of ints)")
        self._rng = _np.random.Generator(_np.random.Philox(seed))

    def random(self, size=None, dtype=_np.float64, out=None):
        return _wrap(self._rng.random(size, dtype=dtype))

    def standard_normal(self, size=None, dtype=_np.float64, out=None):
        return _wrap(self._rng.standard_normal(size, dtype=dtype))

    def integers(self, low, high=None, size=None, dtype=_np.int64, endpoint=False):
        return _wrap(self._rng.integers(low, high, size, dtype=dtype, endpoint=endpoint))


def _default_rng(seed=None):
    return seed if isinstance(seed, Generator) else Generator(seed)


class _Device:
    """cupy.cuda.Device stand-in: a pretend card with 16 GiB free, nothing to wait for."""
    mem_info = (16 * 2 ** 30, 16 * 2 ** 30)  # (free, total) bytes

    def __init__(self, device=None):
        pass

    def synchronize(self):
        pass


# cupy.cuda: enough for miiii.use_backend (device count) and memory / timing code
cuda = _types.SimpleNamespace(Device=_Device, runtime=_types.SimpleNamespace(getDeviceCount=lambda: 1))
random = _types.SimpleNamespace(default_rng=_default_rng, Generator=Generator)
fft = _Namespace(_np.fft, "fake_cupy.fft")
linalg = _Namespace(_np.linalg, "fake_cupy.linalg")


_functions = {}  # wrapped numpy functions by name (not in globals(): `any`, `sum` would shadow builtins)


def __getattr__(name):
    """Any other numpy name: dtypes and constants as they are (CuPy shares numpy's), functions
    wrapped to take and return device arrays."""
    if name.startswith("__"):
        raise AttributeError(name)
    if name not in _functions:
        obj = getattr(_np, name)
        if isinstance(obj, _types.ModuleType):
            raise AttributeError(f"fake_cupy has no submodule {name!r}")
        if isinstance(obj, type) or not callable(obj):
            return obj
        _functions[name] = _device_function(obj, name)
    return _functions[name]


# where __array_function__ finds this module's version of a numpy function, by numpy module name
_SUBMODULES = {"numpy": _sys.modules[__name__], "numpy.fft": fft, "numpy.linalg": linalg}
