"""fft_analysis: what a trained miiii run computes, read off in the Fourier basis.

    python fft_analysis.py RUN_DIR [RUN_DIR ...]    # a report per run; writes RUN_DIR/analysis.json
                                                    # and progress.npz (a run not finished yet: the
                                                    # report only); --gpu: the forward passes on CuPy

A run's analysis: load a run directory (rundir.py), evaluate its saved weights with miiii (the
neurons on every input, the attention patterns, the logits) and apply the Fourier rules of
fourier.py to them and to the records kept during training (Omega snapshots, the talk's neuron-0
spectra, gradient norms, parameter copies: miiii.training_hooks); then Nanda et al.'s progress
measures and their phases, the grokking epochs, analysis.json and a printed report. figures.py
draws from the same functions. Every rule, ours and the authors' side by side, and every file
written: docs/analysis.md (tested in tests/test_fft_analysis.py, tests/test_talk_rules.py and
tests/test_progress.py).
"""
import math
import os
import sys

import numpy as np

import fourier
import miiii
import rundir

GROK_ACC = 0.99  # validation accuracy that counts as "solved" for the grokking order
GROK_ACC_LOW = 0.95  # the level the authors read by eye (GrokFast and others use it too)
MEMO_DROP = 0.1  # memorisation starts when the training loss is 10 % below chance (or its first value)
CIRCUIT_GAP = 0.1  # the excluded loss has risen when it is 0.1 above its minimum (chance = 1)
CIRCUIT_FLOOR = 0.02  # ... and its floor before that ends at the last epoch within 0.02 of the minimum
CLEANUP_FRACTION = 0.5  # clean-up starts when the restricted loss is half its value at circuit formation
PHASES = ("memorisation", "circuit_formation", "cleanup")
PROGRESS_WAVES_SHOWN = 16  # key waves listed per task in analysis.json (all are in progress.npz)


# ============================================================================ the model's numbers
def neuron_grids(params, p, batch=16384, host=True):
    """MLP activations at '=' over all inputs, dropout off: (4d, p, p) float32, grid[j, x0, x1].

    Runs miiii.hidden on the current backend, `batch` inputs at a time; only the result moves to
    the host (host=False keeps it on the backend).
    """
    params = miiii.device_params(params)
    x = miiii.to_device(miiii.all_pairs(p))  # (N, 3)
    hid = miiii.xp.concatenate([miiii.hidden(params, x[i:i + batch])  # (N, 4d)
                                for i in range(0, p * p, batch)], axis=0)
    grids = hid.reshape(p, p, -1).transpose(2, 1, 0)  # (N, 4d) -> (x1, x0, 4d) -> (4d, x0, x1)
    grids = miiii.xp.ascontiguousarray(grids, dtype=np.float32)  # each neuron's grid contiguous, for the FFT
    return miiii.to_host(grids) if host else grids


def attention_patterns(params, p):
    """(h, 3, p, p): per head, the weights from '=' to x0, x1 and '=' over the grid [x0, x1]."""
    _, cache = miiii.forward(miiii.device_params(params), miiii.to_device(miiii.all_pairs(p)))
    att = cache["att"]  # (N, 3, h): the softmax over the three key positions
    return miiii.to_host(att.reshape(p, p, 3, -1).transpose(3, 2, 1, 0))  # (x1, x0, 3, h) -> (h, 3, x0, x1)


def sum_squared_weights(params):
    """Nanda et al.'s weight norm: the sum of the squares of every parameter (all nine), float64."""
    return float(sum((np.asarray(params[name], dtype=np.float64) ** 2).sum() for name in miiii.PARAM_NAMES))


def all_logits(params, p, batch=16384):
    """(p*p, C) float64 host logits for every input in sample order, dropout off."""
    params = miiii.device_params(params)
    x = miiii.to_device(miiii.all_pairs(p))  # (N, 3)
    parts = [miiii.to_host(miiii.forward(params, x[i:i + batch])[0]) for i in range(0, p * p, batch)]
    return np.concatenate(parts, axis=0).astype(np.float64)  # (N, C)


def head_nll(logits, y, classes):
    """(M, T) float64 host array: each sample's cross-entropy / ln q per head (chance = 1.0).

    logits (M, C) and y (M, T) (or (M,) for one head). Computed by miiii's own loss in float64, so
    the progress curves and the logged metrics share one formula: a confident answer keeps its tiny
    loss (log1p of the other classes' mass) instead of rounding to 0.
    """
    logits = miiii.to_device(np.asarray(logits, dtype=np.float64))
    y = miiii.to_device(np.asarray(y).reshape(len(logits), -1))
    _, cache = miiii.cross_entropy_forward(logits, y, classes)
    return miiii.to_host(cache["nll"]) / np.log(np.asarray(classes, dtype=np.float64))


def head_loss(logits, y):
    """Mean cross-entropy / ln q of one head's logits (M, q) against targets y (M,): chance = 1.0."""
    return float(head_nll(logits, y, [logits.shape[1]]).mean())


# ============================================================================ progress measures
def restricted_and_excluded(logits, y, p, waves, train):
    """(restricted loss on all inputs, excluded loss on the training inputs) of one head (docs/analysis.md).

    logits (N, q) and y (N,) in sample order, train the training sample indices.
    """
    restricted = head_loss(fourier.restrict_logits(logits, p, waves, keep=True), y)
    excluded = fourier.restrict_logits(logits, p, waves, keep=False)[train]  # (n_train, q)
    return restricted, head_loss(excluded, y[train])


def first_epoch(epochs, condition, start=None):
    """The first epoch >= start (all when None) at which condition (S,) bool holds, or None."""
    ok = np.asarray(condition) & (True if start is None else np.asarray(epochs) >= start)
    return int(np.asarray(epochs)[np.argmax(ok)]) if ok.any() else None


def phase_starts(epochs, train_loss, restricted_loss, excluded_loss):
    """Starts of memorisation, circuit formation and clean-up for one task (docs/analysis.md), or None.

    All arrays (S,) at the recorded epochs, losses in the ln q normalisation (chance = 1).
    """
    epochs = np.asarray(epochs)
    train_loss, restricted_loss, excluded_loss = (np.asarray(a) for a in (train_loss, restricted_loss, excluded_loss))
    # below chance, not just below a start that may lie above it (a fresh model's loss is often > 1)
    memo = first_epoch(epochs, train_loss <= (1 - MEMO_DROP) * min(train_loss[0], 1.0))
    if memo is None:
        return [None, None, None]
    after = epochs >= memo
    low = np.min(excluded_loss[after])  # the excluded loss's floor
    lowest = first_epoch(epochs, (excluded_loss == low) & after)
    rise = first_epoch(epochs, excluded_loss >= low + CIRCUIT_GAP, lowest)
    if rise is None:
        return [memo, None, None]
    floor = (excluded_loss <= low + CIRCUIT_FLOOR) & (epochs >= lowest) & (epochs < rise)  # (S,)
    circuit = int(epochs[np.flatnonzero(floor)[-1]])  # the floor's last epoch
    at_circuit = restricted_loss[np.flatnonzero(epochs == circuit)[0]]
    cleanup = first_epoch(epochs, restricted_loss <= CLEANUP_FRACTION * at_circuit, circuit)
    return [memo, circuit, cleanup]


def progress_measures(run):
    """Nanda et al.'s progress measures at every recorded epoch of a loaded run (docs/analysis.md).

    run: a load_run dict with "progress_params" ({epoch: params}). Key waves come from the FINAL
    parameters (params.npz) and are used at every epoch. Returns progress.npz's arrays.
    """
    config, p = run["config"], int(run["config"]["p"])
    task = miiii.make_task(config["task"], p, config.get("train_frac", 0.5), config.get("seed", 0))
    classes, y = task["classes"], task["y"]  # (T,), (N, T)
    offsets = np.concatenate([[0], np.cumsum(classes)]).astype(int)  # head t: columns offsets[t]:offsets[t+1]
    final = all_logits(run["params"], p)  # (N, C)
    keys = [fourier.key_waves(final[:, offsets[t]:offsets[t + 1]], p) for t in range(len(classes))]
    snaps = rundir.by_epoch(run["progress_params"])
    epochs = np.array(sorted(snaps), dtype=np.int64)  # (S,)
    S, T = len(epochs), len(classes)
    out = {name: np.zeros((S, T)) for name in ("train_loss", "valid_loss", "restricted_loss", "excluded_loss")}
    out["sum_sq_weights"] = np.zeros(S)
    for i, e in enumerate(epochs.tolist()):
        logits = all_logits(snaps[e], p)  # (N, C)
        out["sum_sq_weights"][i] = sum_squared_weights(snaps[e])
        nll = head_nll(logits, y, classes)  # (N, T), every head at once
        out["train_loss"][i] = nll[task["train"]].mean(axis=0)
        out["valid_loss"][i] = nll[task["valid"]].mean(axis=0) if len(task["valid"]) else np.nan
        for t in range(T):  # each head has its own key waves
            head, yt = logits[:, offsets[t]:offsets[t + 1]], y[:, t]  # (N, q), (N,)
            out["restricted_loss"][i, t], out["excluded_loss"][i, t] = restricted_and_excluded(
                head, yt, p, keys[t][0], task["train"])
    out.update({
        "epochs": epochs, "moduli": np.array(task["moduli"], dtype=np.int64),
        "key_waves": np.array([[t, k0, k1] for t in range(T) for k0, k1 in keys[t][0].tolist()],
                              dtype=np.int64).reshape(-1, 3),  # (K, 3): task, k0, k1
        "key_share": np.concatenate([keys[t][1] for t in range(T)]).astype(np.float64),  # (K,)
        "key_energy": np.array(fourier.KEY_ENERGY),
    })
    out["phases"] = progress_phases(out)  # (T, 3)
    return out


def progress_phases(pm):
    """(T, 3) int64 phase starts (memorisation, circuit formation, clean-up; -1: not found) of every
    task, from the curves of progress measures pm (progress.npz's arrays). Recomputed by readers, so
    a progress.npz written under other rules is read under these."""
    return np.array([[-1 if e is None else e for e in phase_starts(
        pm["epochs"], pm["train_loss"][:, t], pm["restricted_loss"][:, t], pm["excluded_loss"][:, t])]
        for t in range(np.asarray(pm["train_loss"]).shape[1])], dtype=np.int64).reshape(-1, 3)


def task_phases(pm, t):
    """Task t's phase starts as {PHASES name: epoch, or None where not found} (pm: progress.npz's arrays)."""
    return dict(zip(PHASES, [None if e < 0 else int(e) for e in np.asarray(pm["phases"])[t].tolist()]))


def progress_summary(pm, labels, p, shown=PROGRESS_WAVES_SHOWN):
    """analysis.json's "progress": per task the key waves, their energy share, the phase starts and
    the final restricted / excluded losses (the full arrays are in progress.npz)."""
    tasks = {}
    for t, label in enumerate(labels):
        rows = pm["key_waves"][:, 0] == t
        waves = [fourier.signed_wave(k0, k1, p) for k0, k1 in pm["key_waves"][rows, 1:].tolist()]
        diagonal = sorted(k0 for k0, k1 in waves if k0 == k1)  # waves of x0 + x1: Nanda's key frequencies k
        tasks[label] = {
            "n_key_waves": len(waves), "key_waves": waves[:shown],
            "key_freqs_sum": diagonal if len(diagonal) == len(waves) else None,
            "key_share": float(pm["key_share"][rows].sum()),
            "phases": task_phases(pm, t),
            "final_restricted_loss": float(pm["restricted_loss"][-1, t]),
            "final_excluded_loss": float(pm["excluded_loss"][-1, t]),
            "final_train_loss": float(pm["train_loss"][-1, t]),
        }
    return {"recorded_epochs": len(pm["epochs"]), "key_energy": float(pm["key_energy"]),
            "sum_sq_weights_first": float(pm["sum_sq_weights"][0]),
            "sum_sq_weights_final": float(pm["sum_sq_weights"][-1]), "tasks": tasks}


# ============================================================================ a run's analysis
def load_run(run_dir, progress_params=True):
    """rundir.load_run with miiii's parameter names, and progress.npz's phases under today's rules."""
    return rundir.load_run(run_dir, miiii.PARAM_NAMES, progress_params, phases=progress_phases)


def load_records(run_dir, progress_params=True):
    """rundir.load_records with miiii's parameter names, and progress.npz's phases under today's rules."""
    return rundir.load_records(run_dir, miiii.PARAM_NAMES, progress_params, phases=progress_phases)


def task_labels(config):
    """One name per task head: 'mod q' (or 'div q' for the divisibility variant)."""
    kind = "div" if config["task"] == "divisible" else "mod"
    return [f"{kind} {q}" for q in config["moduli"]]


def grokking_epochs(epochs, valid_acc, level=GROK_ACC):
    """Per task, the first logged epoch FROM WHICH valid accuracy stays >= level to the end, or None.

    epochs (L,), valid_acc (L, T) -> (T,) list. A task below the level at its last log gets None.
    """
    below = np.asarray(valid_acc) < level  # (L, T)
    L = below.shape[0]
    last_below = np.where(below.any(axis=0), L - 1 - below[::-1].argmax(axis=0), -1)  # (T,), -1: never below
    return [int(epochs[i + 1]) if i + 1 < L else None for i in last_below.tolist()]


def grokking_order(labels, grok):
    """Task labels in the order they grokked (ties keep task order); tasks that did not are left out."""
    return [labels[i] for _, i in sorted((e, i) for i, e in enumerate(grok) if e is not None)]


def finite_or_none(v):
    return v if math.isfinite(v) else None  # JSON has no NaN


def table1_counts(run, p):
    """{epoch: fourier.omega_split} model-level active counts at the Table-1 epochs the records hold.

    From omega.npz, else recomputed from the saved parameters params_<E>.npz.
    """
    counts = {}
    if "omega" in run:
        om = run["omega"]
        for i in np.flatnonzero(np.isin(om["epochs"], fourier.TABLE1_EPOCHS)):  # at most 5 snapshots
            counts[int(om["epochs"][i])] = fourier.omega_split(om["active"][i], p)
    for e, snap in run.get("snapshots", {}).items():
        if e in fourier.TABLE1_EPOCHS and e not in counts:
            counts[e] = fourier.omega_split(miiii.omega_snapshot(snap, p)["active"], p)
    return counts


def missing_records(run, last_epoch):
    """One phrase per training record an old (or --no-analysis) run directory lacks."""
    lacking = []
    if "omega_talk" not in run and last_epoch >= 1:  # a 0-epoch run has no column to record
        lacking.append("omega_talk.npz (the talk's Omega rule)")
    if "omega" not in run:
        lacking.append("omega.npz (Omega counts through training)")
    table1 = [e for e in fourier.TABLE1_EPOCHS if e <= last_epoch]
    if table1 and "omega" not in run and not set(table1) <= set(run.get("snapshots", {})):
        lacking.append("params_<epoch>.npz (Table-1 counts)")
    if "grad_norms" not in run:
        lacking.append("grad_norms.npz (gradient norms)")
    return lacking


def analyse_run(run_dir, arrays=None, progress=True, run=None):
    """The analysis.json contents of one run directory (plain Python values).

    With parameter copies for the progress measures in the run (and progress=True), they are
    computed; `arrays`, a dict, then receives progress.npz's arrays (the command line writes them).
    `run`: the directory as load_run read it, when the caller has it already.
    """
    run = load_run(run_dir, progress_params=progress) if run is None else run
    config, metrics, params = run["config"], run["metrics"], run["params"]
    p = int(config["p"])
    labels = task_labels(config)
    va = metrics["valid_acc"]  # (L, T)
    if va.shape[1] != len(labels):
        raise rundir.RunError(f"{run_dir}: metrics.npz has {va.shape[1]} tasks, config.json {len(labels)}")
    last = int(metrics["epochs"][-1])
    embedding, svd = fourier.embedding_fourier(params["tok_emb"]), fourier.embedding_svd(params["tok_emb"])
    keys_authors, _ = fourier.key_frequencies_authors(params["tok_emb"])
    cos37, cos_dims = fourier.positional_cosine(params["pos_emb"])
    table1 = table1_counts(run, p)  # {epoch: {"mixing", "axis", "all"}}
    final = miiii.omega_snapshot(params, p)
    final_split = fourier.omega_split(final["active"], p)
    talk = None
    if "omega_talk" in run:
        t = fourier.talk_omega(run["omega_talk"]["epochs"], run["omega_talk"]["spectra"], last)
        talk = fourier.talk_summary(t, last) if t is not None else None
    grok99 = grokking_epochs(metrics["epochs"], va, GROK_ACC)
    grok95 = grokking_epochs(metrics["epochs"], va, GROK_ACC_LOW)
    extended = config.get("extended_from", [])
    progress_json = None
    if "progress_params" in run:
        pm = progress_measures(run)
        progress_json = progress_summary(pm, labels, p)
        if arrays is not None:
            arrays.update(pm)
    return {
        "run_dir": os.path.abspath(run_dir),
        "task": config["task"], "p": p, "d": int(params["tok_emb"].shape[1]),
        "epochs": last,
        "extended_from": list(extended) if isinstance(extended, list) else [extended],
        "tasks": labels,
        "final_valid_acc": dict(zip(labels, va[-1].astype(float).tolist())),
        "final_train_acc": dict(zip(labels, metrics["train_acc"][-1].astype(float).tolist())),
        "mean_final_valid_acc": float(va[-1].mean()),
        "pos_corr": finite_or_none(fourier.positional_correlation(params["pos_emb"])),
        "pos_cos37": finite_or_none(cos37),
        "pos_cos_dims": cos_dims,
        "key_freqs": embedding["key_freqs"],
        "key_freqs_authors": keys_authors,
        "svd_n50": svd["n50"], "svd_n90": svd["n90"], "svd_rank": int(len(svd["singular_values"])),
        "active_freqs": {str(e): table1[e]["mixing"] for e in sorted(table1)},  # ours: mixing frequencies
        "active_freqs_all": {str(e): table1[e]["all"] for e in sorted(table1)},
        "active_freqs_axis": {str(e): table1[e]["axis"] for e in sorted(table1)},
        "active_freqs_final": final_split["mixing"],
        "active_freqs_all_final": final_split["all"],
        "active_freqs_axis_final": final_split["axis"],
        "live_neurons_final": final["live"],
        "omega_talk": talk,
        "grok_epoch_99": dict(zip(labels, grok99)),
        "grok_epoch_95": dict(zip(labels, grok95)),
        "grok_order_99": grokking_order(labels, grok99),
        "grok_order_95": grokking_order(labels, grok95),
        "grok_level": GROK_ACC,
        "grok_epoch": dict(zip(labels, grok99)),  # alias of grok_epoch_99, for older readers
        "grok_order": grokking_order(labels, grok99),
        "missing": missing_records(run, last),
        "progress": progress_json,
    }


def progress_report(progress, max_tasks=8):
    """The report's lines on the progress measures (analysis.json "progress"), at most max_tasks tasks."""
    if progress is None:
        return ["  progress measures: no progress_params.npz in this run"]
    lines = [f"  progress measures (Nanda et al. 2023) at {progress['recorded_epochs']} recorded epochs; key waves: "
             f"the fewest (k0, k1) explaining {progress['key_energy']:.0%} of the final logit energy; "
             f"sum of squared weights {progress['sum_sq_weights_first']:.4g} -> {progress['sum_sq_weights_final']:.4g}"]
    for label, t in list(progress["tasks"].items())[:max_tasks]:
        waves = " ".join(f"({k0},{k1})" for k0, k1 in t["key_waves"])
        more = f" +{t['n_key_waves'] - len(t['key_waves'])} more" if t["n_key_waves"] > len(t["key_waves"]) else ""
        nanda = f"; k = {', '.join(map(str, t['key_freqs_sum']))} (waves of x0 + x1)" if t["key_freqs_sum"] else ""
        ph = t["phases"]
        lines.append(f"    {label}: {t['n_key_waves']} key waves ({t['key_share']:.0%}) {waves}{more}{nanda}")
        lines.append(f"      phases start: memorisation {ph['memorisation']}, circuit formation "
                     f"{ph['circuit_formation']}, clean-up {ph['cleanup']}; final loss restricted "
                     f"{t['final_restricted_loss']:.3g}, excluded {t['final_excluded_loss']:.3g}, "
                     f"train {t['final_train_loss']:.3g}")
    if len(progress["tasks"]) > max_tasks:
        lines.append(f"    ... {len(progress['tasks']) - max_tasks} more tasks in analysis.json")
    return lines


def format_counts(by_epoch):
    return "  ".join(f"{e}: {n}" for e, n in by_epoch.items()) or "none recorded"


def report(analysis):
    """A short human-readable report of analyse_run's dict."""
    a = analysis
    acc = a["final_valid_acc"]
    ext = f" (extended from {', '.join(map(str, a['extended_from']))})" if a.get("extended_from") else ""
    dims = (f"first {fourier.POS_COS_DIMS} dims" if a["pos_cos_dims"] >= fourier.POS_COS_DIMS
            else f"all {a['pos_cos_dims']} dims, as d < {fourier.POS_COS_DIMS}")
    num = lambda v: "undefined (constant row)" if v is None else f"{v:.3f}"  # noqa: E731
    ks = lambda keys: "k = " + ", ".join(map(str, keys)) if keys else "none"  # noqa: E731
    lines = [
        f"run {a['run_dir']}",
        f"  task {a['task']}, p = {a['p']}, d = {a['d']}, {a['epochs']} epochs{ext}",
        f"  final valid accuracy: mean {a['mean_final_valid_acc']:.3f}, min {min(acc.values()):.3f}",
        "    " + "  ".join(f"{name} {v:.3f}" for name, v in acc.items()),
        f"  positional embeddings x0 vs x1: Pearson r (ours, all {a['d']} dims) {num(a['pos_corr'])}; "
        f"cosine (authors', {dims}) {num(a['pos_cos37'])}; talk: 0.95 T_nanda, -0.64 T_miiii",
        f"  embedding key frequencies (ours, share > mean+2std): {ks(a['key_freqs'])}",
        f"  embedding key frequencies (authors', |rfft| norm > mean+1std, k = 0 is the constant): "
        f"{ks(a['key_freqs_authors'])} ({len(a['key_freqs_authors'])}; talk: T_nanda 5, T_miiii 11, T_basis 0)",
        f"  embedding SVD: {a['svd_n50']} components reach 50 %, {a['svd_n90']} reach 90 % "
        f"(of {a['svd_rank']})",
        "  Omega count, ours (mixing frequencies active in the model), by epoch: "
        + format_counts(a["active_freqs"]) + f"; final {a['active_freqs_final']}",
        "    all frequencies: " + format_counts(a["active_freqs_all"]) + f"; final {a['active_freqs_all_final']}"
        + "   axis: " + format_counts(a["active_freqs_axis"]) + f"; final {a['active_freqs_axis_final']}"
        + f"   ({a['live_neurons_final']} live neurons)",
    ]
    t = a.get("omega_talk")
    if t is None:
        lines.append("  Omega count, the talk's rule: not recorded in this run")
    else:
        lines.append(f"  Omega count, the talk's rule (neuron 0, {t['bins']} bins x {t['columns']} log-spaced "
                     f"columns, > mean+1std), count -> printed floor(count^0.75):")
        lines.append("    at Table-1 epochs (nearest column): " + ("  ".join(
            f"{e}: {v['count']} -> {v['printed']} (column {v['column']}, epoch {v['epoch']})"
            for e, v in t["table1"].items()) or "none reached"))
        lines.append("    at the talk's columns (0-based): " + "  ".join(
            f"{i}: {v['count']} -> {v['printed']} (epoch {v['epoch']})" for i, v in t["talk_columns"].items())
            + "   talk: 0, 0, 10, 18, 10")
        if t["approximated_columns"]:
            lines.append(f"    {t['approximated_columns']} of {t['columns']} columns approximated (extended run: "
                         f"the nearest recorded epoch was used)")
    for level, key in ((GROK_ACC, "99"), (GROK_ACC_LOW, "95")):
        grok = a[f"grok_epoch_{key}"]
        reached = [f"{name} @ {grok[name]}" for name in a[f"grok_order_{key}"]]
        lines.append(f"  grokking order (valid acc stays >= {level} to the end): " + (", ".join(reached) or "none"))
        missing = [name for name, e in grok.items() if e is None]
        if missing:
            lines.append(f"    not reached: {', '.join(missing)}")
    lines += progress_report(a.get("progress"))
    if a.get("missing"):
        lines.append(f"  missing (a run made before these records, or with --no-analysis): {'; '.join(a['missing'])}")
    return "\n".join(lines)


# ============================================================================ command line
def main(argv=None):
    ap = miiii.OneLineParser(prog="fft_analysis.py", description="Report the Fourier analysis of finished "
                             "miiii runs and write analysis.json into each run directory.")
    ap.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories written by miiii.py")
    ap.add_argument("--gpu", action="store_true", help="compute on a CUDA GPU with CuPy")
    try:
        args = ap.parse_args(argv)
        if args.gpu:
            miiii.use_backend("cupy")
    except miiii.UsageError as e:
        print(f"fft_analysis.py: error: {e}", file=sys.stderr)
        return 2
    status = 0
    for run_dir in args.run_dirs:  # a bad directory is reported and skipped; the others still run
        try:
            run = load_run(run_dir)
            progress = {}
            analysis = analyse_run(run_dir, arrays=progress, run=run)
            late = rundir.unfinished(run)
            if late:  # another process may be writing it: report only, write nothing into it
                print(f"fft_analysis.py: {late}; report only (analysis.json is written once the run is "
                      f"complete)", file=sys.stderr)
            else:
                if progress:
                    rundir.save_npz(os.path.join(run_dir, rundir.PROGRESS), progress)
                rundir.save_json(os.path.join(run_dir, rundir.ANALYSIS), analysis)
        except (rundir.RunError, rundir.WriteError) as e:
            print(f"fft_analysis.py: error: {e}", file=sys.stderr)
            status = 2
            continue
        print(report(analysis))
    return status


if __name__ == "__main__":
    sys.exit(main())
