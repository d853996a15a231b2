"""rundir: the run directory's format, owned in one place (stdlib and numpy only, nothing of the model).

A run directory, as miiii.py writes it (docs/run-directory.md says what each file holds):

  config.json              every setting and `status`: "running", "interrupted" once stopped early,
                           "complete" written last, after every other result
  lock                     the pid of the process training it (lock_run); never removed
  checkpoint.npz           the state to continue from (weights, AdamW moments, filter state, epoch,
                           metrics so far, step losses, which record epochs are on disk)
  checkpoint.prev.npz      the checkpoint before it: the fall-back when the latest is damaged
  metrics.npz, params.npz  as far as the run has come: rewritten at each checkpoint, final at the end
  records/<a>-<b>.npz      the small records (Omega snapshots, talk spectra, gradient norms) of epochs
                           a..b: one segment per checkpoint, written once
  params_<E>.npz           the parameters at each Table-1 epoch E, written once
  progress_params/<E>.npz  the parameters at each progress epoch E, written once (older runs: all of
                           them in one progress_params.npz, still read)
  omega.npz, omega_talk.npz, grad_norms.npz
                           the segments combined, written at the end of a run
  analysis.json, progress.npz   written by fft_analysis.py

Every file is written to a temporary name beside it and renamed into place (atomic_write), so a kill
at any instant leaves the old file or the new one, and zip entries carry a fixed timestamp, so equal
arrays give equal bytes. Reading errors are RunError, one line naming the file.

Records. The analysis hooks keep what they measure in a dict `records` (carried in the training
state): per kind an {epoch: value} dict of what is not on disk yet -- "omega", "omega_talk",
"grad_norms" (a dict of named scalars and arrays, or one array, per epoch) and the parameter copies
"snapshots" and "progress" ({name: array} per epoch) -- and "constants" ({kind: {name: array}}, arrays
of a record's file that do not depend on the epoch). flush_records writes what is pending and keeps
only the epochs, in records["on_disk"]; so a checkpoint carries no record, and a resumed run compares
the files with those epochs (resume_records).

One writer per run directory: a training process holds an exclusive OS lock (fcntl.flock) on the
file `lock` for its whole life. The kernel drops the lock when the process ends, however it ends
(a SIGKILL included), so a dead run never leaves a stale lock behind. Readers take no lock.
POSIX only (fcntl): elsewhere lock_run and lock_holder raise LockUnsupported.
"""
import errno
import json
import os
import re
import shutil
import tempfile
import zipfile

import numpy as np

LOCK = "lock"  # the lock file; it holds the pid of the process that holds the lock (for messages)
CONFIG = "config.json"
CHECKPOINT = "checkpoint.npz"
PREVIOUS = "checkpoint.prev.npz"
METRICS = "metrics.npz"
PARAMS = "params.npz"
SEGMENTS = "records"  # the folder of record segments
SERIES = {"omega": "omega.npz", "omega_talk": "omega_talk.npz", "grad_norms": "grad_norms.npz"}
ONE_ARRAY = {"omega_talk": "spectra"}  # records whose value per epoch is one array: its name in the file
CONSTANTS = {"omega": ("freqs",)}  # arrays of a record's file with no epoch axis
COPIES = {"snapshots": "params_{}.npz", "progress": os.path.join("progress_params", "{}.npz")}
PROGRESS_PARAMS = "progress_params.npz"  # older runs: every progress copy in one file, "<epoch>/<name>"
PROGRESS = "progress.npz"  # the progress measures fft_analysis.py computes from the copies
ANALYSIS = "analysis.json"
OMEGA_KEYS = ("epochs", "freqs", "counts", "live", "share", "active", "n_active")
PROGRESS_KEYS = ("epochs", "moduli", "train_loss", "valid_loss", "restricted_loss", "excluded_loss",
                 "sum_sq_weights", "key_waves", "key_share", "key_energy", "phases")
DERIVED = (ANALYSIS, PROGRESS, *SERIES.values())  # outputs computed from a whole run: stale once it grows
SEGMENT_NAME = re.compile(r"(\d+)-(\d+)\.npz$")
COPY_NAME = {"snapshots": re.compile(r"params_(\d+)\.npz$"), "progress": re.compile(r"(\d+)\.npz$")}


class RunError(Exception):
    """A run directory, or a file in it, that is missing, damaged or of another kind: one line naming it."""


class WriteError(Exception):
    """A file could not be written (no space, a vanished directory, a read-only mount): one line."""


class RunLocked(Exception):
    """Another process holds the run directory's lock; the message names it."""


class LockUnsupported(Exception):
    """This platform has no fcntl.flock."""


# ============================================================================ writing and reading files
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path, write, keep_old_as=None):
    """Write a file via `write(fileobj)` to a temporary name beside it, then rename it into place.

    keep_old_as: rename the file being replaced to this name first (two renames, each atomic: a kill
    between them leaves the old file under the new name and the new one as a temporary file).
    Any OSError becomes WriteError naming the file and the reason; the old file, if any, is untouched.
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it visible
        if keep_old_as is not None and os.path.exists(path):
            os.replace(path, keep_old_as)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            try:
                os.remove(tmp)
            except OSError:
                pass  # the directory itself may be gone
        if isinstance(e, OSError):
            raise WriteError(f"cannot write {path}: {e.strerror or e}") from None
        raise


def save_json(path, obj):
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


def write_npz(f, arrays):
    """np.savez_compressed with a fixed timestamp in every zip entry: equal arrays, equal file bytes.

    Deflate level 1: metrics (accuracies repeat) and analysis records (counts, mostly zero) shrink
    5-50x, weights ~10 %, at ~0.1 s per 10 MB.
    """
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True) as zf:
        for name, a in arrays.items():
            a = np.asanyarray(a)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, a, allow_pickle=False)


def save_npz(path, arrays, keep_old_as=None):
    atomic_write(path, lambda f: write_npz(f, arrays), keep_old_as)


def damaged(path, e):
    return RunError(f"{path}: damaged or not a miiii file ({type(e).__name__}: {str(e)[:80]})")


def load_json(path):
    """The JSON object in a file, or RunError naming the file and why in one line."""
    try:
        with open(path) as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except (OSError, ValueError) as e:
        raise damaged(path, e) from None
    if not isinstance(obj, dict):
        raise RunError(f"{path}: damaged or not a miiii file (not a JSON object)")
    return obj


def load_npz(path, keys=()):
    """Every array of an .npz file as a dict, read eagerly so a damaged file fails here; RunError
    naming the file and why in one line, also when one of `keys` is not in it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except Exception as e:  # zipfile.BadZipFile, ValueError, EOFError, OSError, ...: all mean damaged
        raise damaged(path, e) from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise RunError(f"{path}: not a miiii file of this kind (no {missing[0]!r} in it)")
    return arrays


# ============================================================================ checkpoints
def pack_tree(tree, arrays, to_host=np.asarray):
    """Nested dicts/lists of arrays and scalars -> a JSON skeleton; arrays go into `arrays` (host).

    Non-numpy arrays (CuPy) are copied with to_host and marked, so unpack_tree puts them back.
    """
    if isinstance(tree, dict):
        return {"dict": {str(k): pack_tree(v, arrays, to_host) for k, v in tree.items()}}
    if isinstance(tree, (list, tuple)):
        return {"list": [pack_tree(v, arrays, to_host) for v in tree]}
    if hasattr(tree, "shape") and hasattr(tree, "dtype") and not isinstance(tree, np.generic):
        key = f"a{len(arrays)}"
        arrays[key] = tree if type(tree) is np.ndarray else to_host(tree)
        return {"array": key, "device": type(tree) is not np.ndarray}
    if isinstance(tree, np.generic):
        tree = tree.item()
    return {"value": tree}


def unpack_tree(skeleton, arrays, to_device=np.asarray):
    """The inverse of pack_tree: arrays marked as device arrays go through to_device."""
    if "dict" in skeleton:
        return {k: unpack_tree(v, arrays, to_device) for k, v in skeleton["dict"].items()}
    if "list" in skeleton:
        return [unpack_tree(v, arrays, to_device) for v in skeleton["list"]]
    if "array" in skeleton:
        a = arrays[skeleton["array"]]
        return to_device(a) if skeleton["device"] else a
    return skeleton["value"]


def write_checkpoint(path, state, meta, to_host=np.asarray, keep_old_as=None):
    """One checkpoint file: `meta` (a JSON-able dict) with the state's skeleton, and its arrays."""
    arrays = {}
    skeleton = pack_tree(state, arrays, to_host)
    save_npz(path, {"__meta__": np.array(json.dumps({**meta, "state": skeleton})), **arrays}, keep_old_as)


def read_checkpoint(path, to_device=np.asarray):
    """(meta, state) of one checkpoint file; RunError naming the file when it cannot be used."""
    arrays = load_npz(path, keys=("__meta__",))
    try:
        meta = json.loads(str(arrays.pop("__meta__")))
        state = unpack_tree(meta.pop("state"), arrays, to_device)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise RunError(f"{path}: damaged checkpoint ({type(e).__name__}: {str(e)[:80]})") from None
    return meta, state


def has_checkpoint(run_dir):
    return any(os.path.exists(os.path.join(run_dir, name)) for name in (CHECKPOINT, PREVIOUS))


def save_checkpoint(run_dir, state, meta, to_host=np.asarray):
    """The run's new checkpoint.npz; the one it replaces becomes checkpoint.prev.npz."""
    write_checkpoint(os.path.join(run_dir, CHECKPOINT), state, meta, to_host,
                     keep_old_as=os.path.join(run_dir, PREVIOUS))


def load_checkpoint(run_dir, to_device=np.asarray):
    """(meta, state, path, note) of the checkpoint to continue run_dir from: the latest, else (missing
    or damaged) the previous one, with `note`, one line, saying so (None when the latest was used).
    RunError in one line when neither can be read. Whether it is a checkpoint of the right run is
    the caller's to check (a checkpoint of another config is not damaged: it is not fallen back from).
    """
    latest, previous = os.path.join(run_dir, CHECKPOINT), os.path.join(run_dir, PREVIOUS)
    try:
        return (*read_checkpoint(latest, to_device), latest, None)
    except RunError as e:
        if not os.path.exists(previous):
            raise
        try:
            meta, state = read_checkpoint(previous, to_device)
        except RunError as e2:
            raise RunError(f"{e}; {e2}") from None
        return meta, state, previous, f"{e}: continuing from {previous}"


# ============================================================================ records
def by_epoch(records):
    """{epoch: value} with int keys (a checkpoint's JSON skeleton stores them as strings)."""
    return {int(e): v for e, v in records.items()}


def series_arrays(kind, rows, constants=None):
    """A small record's file arrays from {epoch: value}: epochs (S,) int64, the constants, then each
    field of the values stacked along a first axis of S (integers as int64)."""
    rows = by_epoch(rows)
    epochs = sorted(rows)
    values = [rows[e] if isinstance(rows[e], dict) else {ONE_ARRAY[kind]: rows[e]} for e in epochs]
    out = {"epochs": np.array(epochs, dtype=np.int64), **(constants or {})}
    for name in values[0]:
        a = np.stack([np.asarray(v[name]) for v in values])  # (S, ...)
        out[name] = a.astype(np.int64) if a.dtype.kind in "iu" else a
    return out


def segment_path(run_dir, first, last):
    return os.path.join(run_dir, SEGMENTS, f"{first}-{last}.npz")


def copy_path(run_dir, kind, epoch):
    return os.path.join(run_dir, COPIES[kind].format(int(epoch)))


def flush_records(run_dir, records, keep=False):
    """Write the records taken since the last flush to files of their own, and keep only their epochs
    (in records["on_disk"]) unless `keep`. The small ones go into one segment, records/<first>-<last>.npz;
    each parameter copy into its file. An epoch already on disk is not written again (a run extended
    from its last epoch records it twice). Every file is written once, by atomic rename."""
    on_disk = records.setdefault("on_disk", {})
    pending = {}
    for kind in (*SERIES, *COPIES):
        done = set(np.asarray(on_disk.get(kind, []), dtype=np.int64).tolist())
        new = {e: v for e, v in by_epoch(records.get(kind, {})).items() if e not in done}
        if new:
            pending[kind] = new
    segment = {}
    for kind in SERIES:
        if kind in pending:
            arrays = series_arrays(kind, pending[kind], records.get("constants", {}).get(kind))
            segment.update({f"{kind}/{name}": a for name, a in arrays.items()})
    if segment:
        epochs = [e for kind in SERIES for e in pending.get(kind, ())]
        save_npz(segment_path(run_dir, min(epochs), max(epochs)), segment)
    for kind in COPIES:
        for epoch, params in sorted(pending.get(kind, {}).items()):
            save_npz(copy_path(run_dir, kind, epoch), params)
    records["on_disk"] = {kind: np.union1d(np.asarray(on_disk.get(kind, []), dtype=np.int64),
                                           np.array(sorted(pending.get(kind, ())), dtype=np.int64))
                          for kind in (*SERIES, *COPIES) if kind in on_disk or kind in pending}  # one order
    for kind in (*SERIES, *COPIES):
        if kind in records and not keep:
            records[kind] = {}


def read_segments(run_dir):
    """[(path, {kind: arrays})] of every segment in records/, in order; RunError for a damaged one."""
    folder = os.path.join(run_dir, SEGMENTS)
    if not os.path.isdir(folder):
        return []
    found = sorted((m for m in map(SEGMENT_NAME.match, os.listdir(folder)) if m),
                   key=lambda m: (int(m.group(1)), int(m.group(2))))
    segments = []
    for m in found:
        path = os.path.join(folder, m.group(0))
        kinds = {}
        for key, a in load_npz(path).items():
            kind, _, name = key.partition("/")
            if kind not in SERIES or not name:
                raise RunError(f"{path}: damaged, unexpected entry {key!r}")
            kinds.setdefault(kind, {})[name] = a
        for kind, arrays in kinds.items():
            rows = len(arrays.get("epochs", ()))
            if "epochs" not in arrays or any(len(a) != rows for name, a in arrays.items()
                                             if name not in CONSTANTS.get(kind, ())):
                raise RunError(f"{path}: damaged, the {kind} arrays are not one row per epoch")
        segments.append((path, kinds))
    return segments


def combine_segments(segments):
    """{kind: the file's arrays} from segments: rows in epoch order, constants from the first."""
    combined = {}
    for kind in SERIES:
        parts = [(path, kinds[kind]) for path, kinds in segments if kind in kinds]
        if not parts:
            continue
        epochs = np.concatenate([arrays["epochs"] for _, arrays in parts])
        order = np.argsort(epochs, kind="stable")
        if len(np.unique(epochs)) != len(epochs):
            paths = ", ".join(path for path, _ in parts)
            raise RunError(f"{os.path.dirname(parts[0][0])}: an epoch of {kind} is in two segments ({paths})")
        out = {}
        for name, first in parts[0][1].items():
            out[name] = first if name in CONSTANTS.get(kind, ()) else \
                np.concatenate([arrays[name] for _, arrays in parts])[order]
        combined[kind] = out
    return combined


def finish_records(run_dir, records):
    """The end of a run: flush what is pending (`records` keep it: an in-process caller may read
    them still), write omega.npz, omega_talk.npz and grad_norms.npz from every segment, and drop an
    older run's progress_params.npz once its copies are all files of their own."""
    flush_records(run_dir, records, keep=True)
    for kind, arrays in combine_segments(read_segments(run_dir)).items():
        save_npz(os.path.join(run_dir, SERIES[kind]), arrays)
    old = os.path.join(run_dir, PROGRESS_PARAMS)
    if os.path.exists(old):
        try:
            with zipfile.ZipFile(old) as z:
                epochs = {int(name.partition("/")[0]) for name in z.namelist()}
        except (OSError, zipfile.BadZipFile, ValueError):
            return  # unreadable: left alone, the readers name it
        if epochs <= set(np.asarray(records["on_disk"].get("progress", []), dtype=np.int64).tolist()):
            os.remove(old)


def resume_records(run_dir, records):
    """Check the record files against the epochs a checkpoint says are on disk, before a run resumes
    from it. A segment with epochs the checkpoint does not know was written after it (the run went
    on, then fell back to this checkpoint, or began from an older one that carried its records
    inside): it is removed, and its records are taken again. RunError (one line) for a damaged
    segment or a missing record file; nothing is removed then."""
    on_disk = {kind: set(np.asarray(e, dtype=np.int64).tolist()) for kind, e in records.get("on_disk", {}).items()}
    kept, stale = {}, []
    for path, kinds in read_segments(run_dir):
        epochs = {kind: set(arrays["epochs"].tolist()) for kind, arrays in kinds.items()}
        if all(e <= on_disk.get(kind, set()) for kind, e in epochs.items()):
            for kind, e in epochs.items():
                kept.setdefault(kind, set()).update(e)
        else:
            stale.append(path)
    for kind in SERIES:
        lost = sorted(on_disk.get(kind, set()) - kept.get(kind, set()))
        if lost:
            raise RunError(f"{os.path.join(run_dir, SEGMENTS)}: the {kind} records of epoch {lost[0]} are "
                           f"missing ({len(lost)} epochs in all)")
    for kind in COPIES:
        for epoch in sorted(on_disk.get(kind, ())):
            if not os.path.exists(copy_path(run_dir, kind, epoch)):
                raise RunError(f"{copy_path(run_dir, kind, epoch)}: missing")
    for path in stale:
        os.remove(path)


def forget_lost_copies(run_dir):
    """Rewrite run_dir's checkpoint so that it lists only the parameter copies that are on disk, for a
    run carried to another machine without them (experiments/campaign.py carries a run's checkpoint and
    records; its copies, ~4 MB each, stay behind). The state to continue from is not touched, so the
    run goes on bit-identically and writes its later copies as usual. Returns {kind: [epochs lost]}."""
    path = os.path.join(run_dir, CHECKPOINT)
    meta, state = read_checkpoint(path)
    on_disk = state.get("records", {}).get("on_disk", {})
    lost = {}
    for kind in COPIES:
        epochs = np.asarray(on_disk.get(kind, []), dtype=np.int64)
        present = np.array([os.path.exists(copy_path(run_dir, kind, e)) for e in epochs], dtype=bool)
        if not present.all():
            lost[kind] = epochs[~present].tolist()
            on_disk[kind] = epochs[present]
    if lost:
        write_checkpoint(path, state, meta)
    return lost


def load_copies(run_dir, kind, names):
    """{epoch: params} of one kind of parameter copy in run_dir (older runs' progress_params.npz
    included); RunError when a copy lacks one of `names`."""
    copies = {}
    old = os.path.join(run_dir, PROGRESS_PARAMS)
    if kind == "progress" and os.path.exists(old):
        for key, a in load_npz(old).items():
            epoch, _, name = key.partition("/")
            if not epoch.isdigit() or name not in names:
                raise RunError(f"{old}: damaged, unexpected entry {key!r}")
            copies.setdefault(int(epoch), {})[name] = a
        for epoch, params in copies.items():
            if len(params) != len(names):
                raise RunError(f"{old}: damaged, epoch {epoch} lacks a parameter")
    folder = os.path.dirname(copy_path(run_dir, kind, 0))
    if os.path.isdir(folder):
        for m in map(COPY_NAME[kind].match, os.listdir(folder)):
            if m:
                copies[int(m.group(1))] = load_npz(os.path.join(folder, m.group(0)), names)
    return dict(sorted(copies.items()))


def load_records(run_dir, names, progress_params=True, phases=None):
    """The training records in run_dir, as arrays: omega, omega_talk, grad_norms (the combined
    files, or, when there is none of them, an unfinished run's segments), snapshots ({epoch: params}), progress
    (progress.npz, its phases recomputed by `phases(arrays)` if given) and, unless
    progress_params=False (they can be hundreds of MB), progress_params ({epoch: params}).
    `names`: the parameter names every copy must hold."""
    records = {}
    if not os.path.isdir(run_dir):
        return records
    required = {"omega": OMEGA_KEYS, "omega_talk": ("epochs", "spectra"), "grad_norms": ("epochs", *names)}
    for kind, name in SERIES.items():
        if os.path.exists(os.path.join(run_dir, name)):
            records[kind] = load_npz(os.path.join(run_dir, name), required[kind])
    if not records:  # no combined file: an unfinished run, read from its segments
        for kind, arrays in combine_segments(read_segments(run_dir)).items():
            missing = [k for k in required[kind] if k not in arrays]
            if missing:
                raise RunError(f"{os.path.join(run_dir, SEGMENTS)}: its {kind} records lack {missing[0]!r}")
            records[kind] = arrays
    snapshots = load_copies(run_dir, "snapshots", names)
    if snapshots:
        records["snapshots"] = snapshots
    path = os.path.join(run_dir, PROGRESS)
    if os.path.exists(path):
        pm = load_npz(path, PROGRESS_KEYS)
        shape = (len(pm["epochs"]), len(pm["moduli"]))
        if any(np.shape(pm[k]) != shape for k in ("train_loss", "valid_loss", "restricted_loss", "excluded_loss")):
            raise RunError(f"{path} is damaged: its losses are not (epochs, tasks)")
        if phases is not None:
            pm["phases"] = phases(pm)
        records["progress"] = pm
    if progress_params:
        copies = load_copies(run_dir, "progress", names)
        if copies:
            records["progress_params"] = copies
    return records


def load_run(run_dir, names, progress_params=True, phases=None):
    """Everything in a run directory: dir, config, metrics, params and the records of load_records.
    Works on an unfinished run too (metrics.npz and params.npz are as far as its last checkpoint;
    see unfinished). RunError (one line) for a bad directory."""
    if not os.path.isdir(run_dir):
        raise RunError(f"{run_dir}: no such run directory")
    config = load_json(os.path.join(run_dir, CONFIG))
    for key in ("task", "p", "moduli", "classes"):
        if key not in config:
            raise RunError(f"{os.path.join(run_dir, CONFIG)} is damaged: no '{key}'")
    p = config["p"]
    if not isinstance(p, int) or isinstance(p, bool) or p < 2:
        raise RunError(f"{os.path.join(run_dir, CONFIG)} is damaged: p = {p!r}")
    if config.get("status", "complete") != "complete" and not os.path.exists(os.path.join(run_dir, METRICS)):
        raise RunError(f"{os.path.join(run_dir, METRICS)}: missing (the run is {config['status']} and has not "
                       f"written a checkpoint in today's layout yet: python miiii.py --resume {run_dir})")
    run = {"dir": run_dir, "config": config,
           "metrics": load_npz(os.path.join(run_dir, METRICS), ("epochs", "valid_acc", "train_acc")),
           "params": load_npz(os.path.join(run_dir, PARAMS), names)}
    if run["params"]["tok_emb"].shape[0] != p + 1 or run["metrics"]["valid_acc"].ndim != 2:
        raise RunError(f"{run_dir}: params.npz or metrics.npz does not match config.json (p = {p})")
    if len(run["metrics"]["epochs"]) == 0:
        raise RunError(f"{os.path.join(run_dir, METRICS)}: no epoch logged yet (the run stopped at epoch 0)")
    run.update(load_records(run_dir, names, progress_params, phases))
    return run


def unfinished(run):
    """None for a complete run, else one phrase: its status and the epoch its files have reached."""
    status = run["config"].get("status", "complete")  # runs made before config.json had a status
    if status == "complete":
        return None
    metrics = run["metrics"]
    reached = len(metrics["step_loss"]) if "step_loss" in metrics else int(metrics["epochs"][-1])
    return f"{run['dir']} is unfinished ({status}): up to epoch {reached} of {run['config'].get('epochs')}"


# ============================================================================ the directory
def run_status(out, required):
    """What a directory holds, and its config.json when it is a run (has every key of `required`):

    'absent' (missing, or empty but for a lock file), 'complete' (config.json says so; it is
    written last, after every result), 'interrupted' (a checkpoint to continue from), 'started' (a
    config.json and nothing to continue from) or 'foreign' (anything else). Runs made before
    config.json had a status are complete when params.npz and metrics.npz are there and no
    checkpoint is.
    """
    if not os.path.isdir(out) or not [name for name in os.listdir(out) if name != LOCK]:
        return "absent", None
    try:
        config = load_json(os.path.join(out, CONFIG))
    except RunError:
        return "foreign", None
    if any(k not in config for k in required):
        return "foreign", None
    has = lambda name: os.path.exists(os.path.join(out, name))  # noqa: E731
    legacy_done = "status" not in config and has(PARAMS) and has(METRICS) and not has_checkpoint(out)
    if config.get("status") == "complete" or legacy_done:
        return "complete", config
    return ("interrupted" if has_checkpoint(out) else "started"), config


def clear_run(out):
    """Remove the results and records of an earlier run from `out` (the lock file stays: removing
    it would let a second writer lock a new file)."""
    for name in os.listdir(out):
        path = os.path.join(out, name)
        if name in (SEGMENTS, os.path.dirname(COPIES["progress"])) and os.path.isdir(path):
            shutil.rmtree(path)
        elif name.endswith(".npz") or name == ANALYSIS or name.endswith(".tmp"):
            os.remove(path)


def remove_stale(out, names=DERIVED):
    """Remove the outputs computed from a whole run (analysis.json, progress.npz, the combined
    records), when the run is about to grow: they would describe the shorter run."""
    for name in names:
        if os.path.exists(os.path.join(out, name)):
            os.remove(os.path.join(out, name))


def remove_temporary(out):
    """Temporary files of writes cut short by a hard exit (they only ever exist under .tmp names)."""
    for folder in (out, os.path.join(out, SEGMENTS), os.path.dirname(copy_path(out, "progress", 0))):
        if os.path.isdir(folder):
            for name in os.listdir(folder):
                if name.endswith(".tmp"):
                    os.remove(os.path.join(folder, name))


def dir_bytes(path):
    """Bytes of the files under path (0 when it does not exist)."""
    return sum(os.path.getsize(os.path.join(folder, name)) for folder, _, names in os.walk(path) for name in names)


def free_bytes(path):
    """Free bytes on the filesystem where `path` is or would be made (its nearest existing ancestor)."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    return shutil.disk_usage(existing).free


# ============================================================================ one writer
def _flock():
    try:
        import fcntl
    except ImportError:  # Windows
        raise LockUnsupported("run-directory locks need fcntl (POSIX)") from None
    return fcntl


def _holder_text(path):
    try:
        with open(path) as f:
            pid = f.read().strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"


def lock_run(run_dir):
    """Take the run directory's lock (creating the directory if needed) and keep it until the
    returned file object is closed or the process ends. RunLocked if another process holds it."""
    fcntl = _flock()
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, LOCK)
    f = open(path, "a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        f.close()
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunLocked(f"{run_dir} is in use by {_holder_text(path)} (one writer per run directory)") from None
        raise
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def lock_holder(run_dir):
    """None when no process holds run_dir's lock, else a phrase naming the holder ('process 1234').

    A probe: it takes the lock for an instant if it is free. The answer may be stale by the time it
    is read (a run may start or end just after); use lock_run to act on it."""
    fcntl = _flock()
    path = os.path.join(run_dir, LOCK)
    try:
        f = open(path, "r")
    except OSError:
        return None  # no lock file: nobody has ever trained here with locking
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return _holder_text(path)
            raise
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return None


# ============================================================================ for the experiments
WALL = "wall.json"  # the experiment runner's wall time, one entry per piece of training (a JSON list)


def read_config(run_dir):
    """The run's config.json, or None when it is missing or unreadable (for listings that read on)."""
    try:
        return load_json(os.path.join(run_dir, CONFIG))
    except RunError:
        return None


def load_wall(run_dir):
    """The entries of the run's wall.json ([] when there is none); RunError when it is damaged."""
    path = os.path.join(run_dir, WALL)
    if not os.path.exists(path):
        return []
    try:
        with open(path) as f:
            entries = json.load(f)
    except (OSError, ValueError) as e:
        raise damaged(path, e) from None
    if not isinstance(entries, list):
        raise RunError(f"{path}: damaged or not a miiii file (not a JSON list)")
    return entries


def save_wall(run_dir, entries):
    atomic_write(os.path.join(run_dir, WALL), lambda f: f.write(json.dumps(entries, indent=1).encode()))


def _read_checkpoint_lazily(run_dir, read):
    """read(npz, state skeleton) on the run's checkpoint.npz opened lazily: only the zip members `read`
    asks for are decompressed. RunError naming the file when it is missing or damaged."""
    path = os.path.join(run_dir, CHECKPOINT)
    try:
        with np.load(path, allow_pickle=False) as z:
            return read(z, json.loads(str(z["__meta__"]))["state"]["dict"])
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except Exception as e:  # zipfile.BadZipFile, ValueError, KeyError, ...: all mean damaged
        raise damaged(path, e) from None


def checkpoint_epoch(run_dir):
    """The epoch a run's latest checkpoint has reached, from its JSON skeleton alone (no array is read)."""
    return _read_checkpoint_lazily(run_dir, lambda z, state: int(state["epoch"]["value"]))


def checkpoint_metrics(run_dir):
    """(epoch, metrics) of a run's latest checkpoint, the metrics cut to the epochs logged; only the
    metric arrays are decompressed, not the weights (for watching a run in training)."""
    def read(z, state):
        n_logged = state["n_logged"]["value"]
        metrics = {k: z[v["array"]][:n_logged] for k, v in state["metrics"]["dict"].items()}
        return int(state["epoch"]["value"]), metrics
    return _read_checkpoint_lazily(run_dir, read)


def read_files(run_dir, names):
    """{name: bytes} of the files of `names` that the run directory holds (a run's outputs, to send or copy)."""
    files = {}
    for name in names:
        path = os.path.join(run_dir, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                files[name] = f.read()
    return files


def write_files(run_dir, files):
    """Write {name: bytes} into run_dir, each file atomically, config.json last (it says whether the run
    is complete, so it must not arrive before the files it vouches for)."""
    os.makedirs(run_dir, exist_ok=True)
    for name in sorted(files, key=lambda name: name == CONFIG):
        atomic_write(os.path.join(run_dir, name), lambda f: f.write(files[name]))
