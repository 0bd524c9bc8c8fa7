#!/usr/bin/env bash
# One command for a lent GPU machine (torch preinstalled, no network): build against the
# installed torch, run the CUDA tests, compute-sanitizer on a small forward+backward, and the
# GPU benchmark. Everything lands in $OUT (default: benchmarks/results/gpu-run).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu-run}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
{
  nvidia-smi || true
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  start=$(date +%s)
  MAX_JOBS=${MAX_JOBS:-16} FASTCONV_CUDA=1 $PY -m pip install --no-build-isolation --no-deps -e . \
    || { echo "BUILD FAILED"; exit 1; }
  echo "build seconds: $(( $(date +%s) - start ))"
} 2>&1 | tee "$OUT/build.log"
$PY -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_build.py 2>&1 | tee "$OUT/tests.log"
if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck; do
    compute-sanitizer --tool $tool --error-exitcode 1 $PY -c "
import torch, fastconv
x = torch.randn(2, 8, 20, 20, device='cuda', requires_grad=True)
for w in (torch.randn(8, 1, 3, 3, device='cuda'), torch.randn(16, 4, 3, 3, device='cuda')):
    w.requires_grad_()
    fastconv.conv2d(x, w, None, 1, 1, 1, 8 // w.shape[1]).sum().backward()
torch.cuda.synchronize(); print('ok')" > "$OUT/sanitizer-$tool.log" 2>&1
    echo "compute-sanitizer $tool: exit $?" | tee -a "$OUT/tests.log"
  done
fi
for dt in float32 tf32 bfloat16; do
  $PY -m benchmarks.bench --device cuda --dtype "$dt" --min-run-time 0.1 \
    --json "$OUT/results-$dt.json" --plot "$OUT/speedup-$dt.png" 2>&1 | tee "$OUT/bench-$dt.log"
done
