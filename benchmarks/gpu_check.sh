#!/usr/bin/env bash
# The GPU checks of miiii on a machine with CuPy and a CUDA GPU, in about 8 minutes:
#   1. tests/test_backend.py on the real CuPy (MIIII_TEST_CUPY=1) instead of the stand-in
#   2. bench_step.py --gpu: 200 timed steps of the paper config (and of the small one)
#   3. the first 10 epochs' loss on CPU and GPU, dropout 0, paper config: equal to float32 rounding
#   4. the full paper configuration for the time left, stopped by SIGTERM (miiii checkpoints), epochs/s
#
#   bash benchmarks/gpu_check.sh                 # from anywhere; logs in $OUT/gpu_check or runs/gpu_check
#   GPU_CHECK_SECONDS=300 GPU_CHECK_STEPS=50 bash benchmarks/gpu_check.sh   # shorter
#
# Without nvidia-smi or a CuPy that sees a device it prints one line and exits 2 at once.
# Exit code: 0 when every check passed, 1 when one failed. PYTHON picks the interpreter.
set -u
set -o pipefail  # a step's status is its command's, not tee's

cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python}
BUDGET=${GPU_CHECK_SECONDS:-470}  # the whole script, seconds; step 4 gets what the others leave
STEPS=${GPU_CHECK_STEPS:-200}     # timed steps per config in step 2
START=$SECONDS

if ! command -v nvidia-smi >/dev/null 2>&1 ||
   ! timeout 60 "$PY" -c "import cupy, sys; sys.exit(cupy.cuda.runtime.getDeviceCount() < 1)" >/dev/null 2>&1; then
    echo "gpu_check.sh: no CUDA GPU usable from CuPy here (nvidia-smi, import cupy, getDeviceCount); nothing run" >&2
    exit 2
fi

LOG=${OUT:+$OUT/gpu_check}
LOG=${LOG:-runs/gpu_check}
RUN_DIR=runs/gpu_check/paper-run  # the long run's directory: checkpoints are large, kept out of $OUT
mkdir -p "$LOG" runs/gpu_check || exit 2
FAILED=0
SUMMARY=()

left() { echo $((BUDGET - (SECONDS - START))); }
cap() { local l; l=$(left); [ "$l" -lt "$1" ] && echo $((l > 10 ? l : 10)) || echo "$1"; }  # a step's limit, within the budget
header() { printf '\n=== %s  (%ss of %ss left)\n' "$1" "$(left)" "$BUDGET"; }
verdict() {  # verdict NAME STATUS: record a step's result (non-zero status = failed)
    if [ "$2" -eq 0 ]; then SUMMARY+=("PASS  $1"); else SUMMARY+=("FAIL  $1 (exit $2)"); FAILED=1; fi
}

header "0. machine"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$PY" -c "import cupy, numpy; print('cupy', cupy.__version__, '| numpy', numpy.__version__,
                                      '| CUDA runtime', cupy.cuda.runtime.runtimeGetVersion())"
    echo "CUPY_TF32=${CUPY_TF32:-unset} (TF32 matmuls would break the float32 comparisons of steps 1 and 3)"
    nproc
} 2>&1 | tee "$LOG/0_machine.log"

header "1. tests/test_backend.py on the real CuPy"
MIIII_TEST_CUPY=1 timeout -k 10 "$(cap 150)" "$PY" -m pytest -q -p no:cacheprovider tests/test_backend.py 2>&1 |
    tee "$LOG/1_tests.log" | tail -25
verdict "tests/test_backend.py on CuPy" $?

header "2. bench_step.py --gpu, $STEPS steps per config"
timeout -k 10 "$(cap 150)" "$PY" benchmarks/bench_step.py --gpu --steps "$STEPS" --reps 20 --detail 2>&1 | tee "$LOG/2_bench.log"
verdict "bench_step.py --gpu" $?

header "3. loss of the first 10 epochs, CPU vs GPU, dropout 0 (paper config)"
# Why rtol 1e-4: cuBLAS and OpenBLAS sum the float32 products in different orders, so logits differ
# by ~sqrt(K) * 6e-8 ~ 1e-6 relative (K = 256..1024); the loss itself is summed in float64 on both.
# Over 10 AdamW steps a gradient entry near 0 may change sign between the two and take a full +-lr
# step instead of ~0, which moves the loss by ~lr * (a few entries) ~ 1e-6..1e-5 relative. 1e-4
# leaves a 10x margin; a wrong term in a gradient shifts the loss after a few steps by far more.
timeout -k 10 "$(cap 120)" "$PY" - <<'EOF' 2>&1 | tee "$LOG/3_cpu_vs_gpu.log"
import sys
import time

import numpy as np

import miiii

cfg = {**miiii.DEFAULTS, "dropout": 0.0, "epochs": 10, "log_every": 10}
runs = {}
for backend in ("numpy", "cupy"):
    miiii.use_backend(backend)
    t = time.perf_counter()
    params, metrics = miiii.train(cfg, progress=False)
    runs[backend] = params, metrics
    print(f"{backend}: 10 epochs in {time.perf_counter() - t:.1f} s (with evaluation at epochs 0, 1, 2, 4, 8, 10)")
(p_cpu, m_cpu), (p_gpu, m_gpu) = runs["numpy"], runs["cupy"]
rel = np.abs(m_gpu["step_loss"] - m_cpu["step_loss"]) / np.abs(m_cpu["step_loss"])
print("epoch  loss CPU      loss GPU      rel diff")
for e, (a, b, r) in enumerate(zip(m_cpu["step_loss"], m_gpu["step_loss"], rel)):
    print(f"{e:>5}  {a:.8f}  {b:.8f}  {r:.1e}")
weights = max(np.linalg.norm(p_gpu[k] - p_cpu[k]) / np.linalg.norm(p_cpu[k]) for k in p_cpu)
acc = np.abs(m_gpu["valid_acc"] - m_cpu["valid_acc"]).max()
print(f"largest: loss rel diff {rel.max():.1e} (limit 1e-4), weights rel diff {weights:.1e}, "
      f"valid acc diff {acc:.4f}")
sys.exit(0 if rel.max() <= 1e-4 else 1)
EOF
verdict "CPU vs GPU loss, 10 epochs, rtol 1e-4" $?

header "4. the full paper configuration for the time left, --gpu"
RUN_SECONDS=$(($(left) - 40))  # kept back: checkpoint on SIGTERM (-k 30 after it), this summary
if [ "$RUN_SECONDS" -lt 60 ]; then
    echo "only ${RUN_SECONDS}s left: skipped"
    SUMMARY+=("SKIP  paper run (no time left)")
else
    rm -rf "$RUN_DIR"
    echo "python miiii.py --gpu --out $RUN_DIR (all paper defaults), stopped by SIGTERM after ${RUN_SECONDS}s"
    RUN_START=$SECONDS
    timeout -s TERM -k 30 "$RUN_SECONDS" "$PY" miiii.py --gpu --out "$RUN_DIR" --checkpoint-every 1000 \
        >"$LOG/4_paper_run.log" 2>&1
    status=$?
    elapsed=$((SECONDS - RUN_START))
    tail -4 "$LOG/4_paper_run.log"
    # 124/143: stopped by our SIGTERM, as planned (miiii writes a checkpoint and exits 143); 0: it finished
    "$PY" - "$RUN_DIR/checkpoint.npz" "$elapsed" "$LOG/4_paper_run.log" <<'EOF' 2>&1 | tee -a "$LOG/4_paper_run.log"
import json
import re
import sys

import numpy as np

path, elapsed, log = sys.argv[1], float(sys.argv[2]), sys.argv[3]
with np.load(path, allow_pickle=False) as f:
    epoch = json.loads(f["__meta__"].item())["state"]["dict"]["epoch"]["value"]
rates = re.findall(r"([\d.]+) ep/s", open(log).read())
shown = f", {rates[-1]} ep/s on the last progress line (training only)" if rates else ""
print(f"checkpoint at epoch {epoch}: {epoch / elapsed:.2f} epochs/s over {elapsed:.0f} s wall (start-up, "
      f"evaluation and analysis snapshots included){shown}; 65,536 epochs would take "
      f"{65536 / max(epoch, 1) * elapsed / 3600:.2f} h at this rate")
EOF
    ckpt=$?
    case $status in 0 | 124 | 143) verdict "paper run, stopped with a checkpoint" "$ckpt" ;;
                    *) verdict "paper run (miiii.py exited $status)" 1 ;; esac
fi

header "summary  (logs in $LOG, $((SECONDS - START))s in all)"
printf '%s\n' "${SUMMARY[@]}" | tee "$LOG/summary.txt"
exit $FAILED
