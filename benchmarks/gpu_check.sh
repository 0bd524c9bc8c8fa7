#!/usr/bin/env bash
# One command for a lent GPU machine (torch preinstalled, no network): build against the
# installed torch, run the CUDA tests, compute-sanitizer on a small forward+backward, and the
# GPU benchmark. Everything lands in $OUT (default: benchmarks/results/gpu-run).
#
# Every step runs under `timeout`, cut to what is left of a budget for the whole script
# (GPU_CHECK_BUDGET_S, default 450 s), so one hang cannot eat the machine's lease; steps
# are ordered by value (build, tests, sanitizer, benchmarks) and skipped once it is spent.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu-run}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-450}

# step LIMIT CMD...: CMD under timeout for LIMIT seconds or what is left of the budget.
step() {
  local limit=$1
  shift
  local left=$((BUDGET - ($(date +%s) - START) - 15))
  if ((left < 20)); then
    echo "SKIPPED, time budget spent: $*"
    return 124
  fi
  ((left < limit)) && limit=$left
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  ((rc == 124 || rc == 137)) && echo "TIMED OUT after ${limit}s: $*"
  return $rc
}

{
  nvidia-smi || true
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  start=$(date +%s)
  step 300 env MAX_JOBS="${MAX_JOBS:-16}" FASTCONV_CUDA=1 $PY -m pip install \
    --no-build-isolation --no-deps -e . || { echo "BUILD FAILED"; exit 1; }
  echo "build seconds: $(($(date +%s) - start))"
} 2>&1 | tee "$OUT/build.log"
[ "${PIPESTATUS[0]}" = 0 ] || exit 1

step 200 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_build.py 2>&1 \
  | tee "$OUT/tests.log"

if command -v compute-sanitizer >/dev/null; then
  # Small shapes through every tuned kernel: depthwise fwd/dgrad/wgrad (float32, multiplier
  # 2, a chunked 31x31 kernel), TF32 and fp16 implicit GEMM fwd/dgrad, and the reference tier.
  cat >"$OUT/sanitize.py" <<'EOF'
import os, torch, fastconv
def run(x, w, groups, pad, stride=1, dil=1):
    x = x.detach().requires_grad_(); w = w.detach().requires_grad_()
    fastconv.conv2d(x, w, None, stride, pad, dil, groups).float().sum().backward()
d = dict(device='cuda')
x = torch.randn(2, 8, 20, 20, **d)
run(x, torch.randn(8, 1, 3, 3, **d), 8, 1)
run(x, torch.randn(16, 1, 5, 5, **d), 8, 2)
run(x[:1, :2], torch.randn(2, 1, 31, 31, **d), 2, 30, 2, 2)
run(x, torch.randn(16, 4, 3, 3, **d), 2, 1)
run(x.half(), torch.randn(12, 8, 3, 3, **d).half(), 1, 1, 2)
os.environ['FASTCONV_CUDA_KERNELS'] = 'reference'
run(x, torch.randn(16, 4, 3, 3, **d), 2, 1)
torch.cuda.synchronize(); print('ok')
EOF
  for tool in memcheck racecheck; do
    step 75 compute-sanitizer --tool $tool --error-exitcode 1 $PY "$OUT/sanitize.py" \
      >"$OUT/sanitizer-$tool.log" 2>&1
    echo "compute-sanitizer $tool: exit $?" | tee -a "$OUT/tests.log"
  done
fi

# The convolution suites only: the models suite would not fit the budget.
for dt in float32 tf32 bfloat16; do
  step 120 $PY -m benchmarks --device cuda --dtype "$dt" --min-run-time 0.1 \
    --suite textbook,filter,depthwise,dense,sweep \
    --json "$OUT/results-$dt.json" --plot "$OUT/speedup-$dt.png" 2>&1 | tee "$OUT/bench-$dt.log"
done
echo "gpu_check seconds: $(($(date +%s) - START))" | tee -a "$OUT/tests.log"
