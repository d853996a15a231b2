"""What a training run costs on disk: checkpoint size, bytes written over the run, files left, peak memory.

    python benchmarks/rundir_cost.py --task miiii --p 61 --d 128 --epochs 50 --out /tmp/r61
    python benchmarks/rundir_cost.py --code /path/to/another/checkout -- --task miiii --p 61 ...

Runs `miiii.main(flags)` in this process (the code of --code, default this checkout) and counts every
file written into place: miiii writes each file to a temporary `*.tmp` name and renames it, so the
size of each `*.tmp` renamed by os.replace is a write. Prints the bytes written per kind of file, the
largest and the last checkpoint, what the run directory holds at the end, and the process's peak
resident memory (ru_maxrss). Sizes are load-independent; no time is reported.
"""
import os
import re
import resource
import sys


def kind(path):
    """A file's kind for the tally: its name with epochs and segment ranges replaced by '*'."""
    return re.sub(r"\d+", "*", os.path.relpath(path, os.path.dirname(os.path.dirname(path)))
                  if os.path.basename(os.path.dirname(path)) in ("records", "progress_params")
                  else os.path.basename(path))


def main(argv):
    code = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    if argv[:1] == ["--code"]:
        code, argv = argv[1], argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    sys.path.insert(0, os.path.abspath(code))
    import miiii

    written, checkpoints = {}, []
    real_replace = os.replace

    def counting_replace(src, dst, *args, **kwargs):
        if str(src).endswith(".tmp"):
            size = os.path.getsize(src)
            k = kind(str(dst))
            written[k] = written.get(k, 0) + size
            if os.path.basename(str(dst)) == "checkpoint.npz":
                checkpoints.append(size)
        return real_replace(src, dst, *args, **kwargs)

    os.replace = counting_replace
    rc = miiii.main(argv)
    os.replace = real_replace
    out = argv[argv.index("--out") + 1]
    left = {}
    for folder, _, names in os.walk(out):
        for name in names:
            path = os.path.join(folder, name)
            left[kind(path)] = left.get(kind(path), 0) + os.path.getsize(path)
    mb = lambda n: f"{n / 1e6:.2f} MB"  # noqa: E731
    print(f"exit {rc}; code {os.path.abspath(code)}")
    print(f"checkpoints written: {len(checkpoints)}, largest {mb(max(checkpoints, default=0))}, "
          f"last {mb(checkpoints[-1] if checkpoints else 0)}")
    print(f"bytes written over the run: {mb(sum(written.values()))}")
    for k, n in sorted(written.items(), key=lambda kv: -kv[1]):
        print(f"  {k:28s} {mb(n)}")
    print(f"run directory at the end: {mb(sum(left.values()))}")
    for k, n in sorted(left.items(), key=lambda kv: -kv[1]):
        print(f"  {k:28s} {mb(n)}")
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
