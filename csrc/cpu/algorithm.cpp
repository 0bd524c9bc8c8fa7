#include "algorithm.h"

#include <atomic>

#include "dense_bf16.h"
#include "fft.h"
#include "kernel_table.h"

namespace fastconv {
namespace {
std::atomic<int> g_algorithm{static_cast<int>(CpuAlgorithm::kAuto)};
}  // namespace

void set_cpu_algorithm(CpuAlgorithm a) { g_algorithm.store(static_cast<int>(a)); }
CpuAlgorithm cpu_algorithm() { return static_cast<CpuAlgorithm>(g_algorithm.load()); }

CpuFamily cpu_family(const ConvGeometry& g, at::ScalarType dtype) {
  const CpuAlgorithm a = cpu_algorithm();
  // bfloat16 dense layers on CPUs with AVX-512 BF16 go straight into vdpbf16ps.
  if (!g.one_channel_per_group()) {
    if (dtype == at::kBFloat16 && dense_bf16_available()) return CpuFamily::kDenseBf16;
    // Winograd F(2x2, 3x3): 2.25x fewer multiply-adds, for layers deep enough (C, K >= 16)
    // that the 16 GEMMs, not the transforms, dominate, and with enough 2x2 tiles to pay
    // for the transformed weight (16*K*C values, built every call; the GEMMs cost that
    // times the tiles). Measured forward, 2 threads: ResNet-18 at batch 4, 56^2 and 28^2
    // maps 6.2 -> 3.8 and 5.5 -> 3.7 ms, 256x14^2 (196 tiles) 5.6 -> 3.9 ms; 512x7^2 at
    // batch 8 (128 tiles) 11.4 -> 9.5 ms, at batch 4 (64 tiles) 6.4 -> 6.0 ms: break-even.
    // Dilated "same" layers (dilation d, padding d) run as d*d undilated ones, one per
    // phase of rows and columns (conv2d.cpp, PhaseSplit).
    const int64_t d = g.dil_h;
    const bool phases = d >= 2 && g.dil_w == d && g.pad_h == d && g.pad_w == d;
    const bool winograd = g.groups == 1 && g.R == 3 && g.S == 3 && g.stride_h == 1 &&
                          g.stride_w == 1 && ((g.dil_h == 1 && g.dil_w == 1) || phases);
    const int64_t rows = (g.P + d - 1) / d, cols = (g.Q + d - 1) / d;
    const int64_t tiles = g.N * d * d * ((rows + 1) / 2) * ((cols + 1) / 2);
    if (winograd && a == CpuAlgorithm::kWinograd) return CpuFamily::kWinograd;
    if (winograd && a != CpuAlgorithm::kDirect && g.C >= 16 && g.K >= 16 && tiles >= 64)
      return CpuFamily::kWinograd;
    // Few channels per group at stride 1 (ResNeXt's 4): plane-by-plane row kernels rather
    // than an implicit GEMM that packs an im2col slice for a handful of output rows.
    // Measured (2x128x56^2, 32 groups): forward 1.95 -> 1.13 ms, grad-weight 3.9 -> 1.4 ms.
    // Strided, the row kernels' scattered grad-input loses (0.8 -> 1.9 ms).
    if (a != CpuAlgorithm::kDirect && g.groups > 1 && g.C_per_group() <= 8 && g.stride_h == 1 &&
        g.stride_w == 1)
      return CpuFamily::kRows;
    return CpuFamily::kDense;
  }
  const bool depthwise = g.groups == g.C && g.K == g.C;  // channel multiplier 1
  const bool fft = fft_applies(g);
  switch (a) {
    case CpuAlgorithm::kDirect:
      return CpuFamily::kRows;
    case CpuAlgorithm::kFft:
      if (fft) return CpuFamily::kFft;
      break;
    case CpuAlgorithm::kBlocked:
      if (depthwise) return CpuFamily::kBlocked;
      break;
    case CpuAlgorithm::kAuto:
    case CpuAlgorithm::kWinograd:
      break;
  }
  // Depthwise layers run channel-blocked once they have a vector's worth of channels: every
  // FMA is full whatever the map's width. Against the row kernels it wins on every
  // depthwise suite case (2 threads, fp32), 112x112 3x3 maps included (1.1 -> 0.73 ms),
  // most at narrow maps (7x7 outputs: 0.94 -> 0.22 ms).
  const bool blocked = depthwise && g.C >= kernels<float>().block;
  // Cost model in single-thread nanoseconds, fitted on Zen 4: the row kernels run about
  // 25 G multiply-adds/s, the blocked ones about 50 G/s (13x13 to 31x31 kernels). Against
  // the blocked kernels the FFT must win by half again: on many small planes (28^2 to 56^2
  // grids) it measured 1.3-2x slower than its model, and from run to run +-40%.
  const double direct_ns = double(g.macs()) * (blocked ? 0.02 : 0.04);
  if (fft && fft_cost_ns(g) * (blocked ? 1.5 : 1.0) < direct_ns) return CpuFamily::kFft;
  return blocked ? CpuFamily::kBlocked : CpuFamily::kRows;
}

const char* family_name(CpuFamily f) {
  switch (f) {
    case CpuFamily::kDense:
      return "dense";
    case CpuFamily::kDenseBf16:
      return "dense-bf16";
    case CpuFamily::kWinograd:
      return "winograd";
    case CpuFamily::kRows:
      return "direct";
    case CpuFamily::kBlocked:
      return "blocked";
    case CpuFamily::kFft:
      return "fft";
  }
  return "?";
}

}  // namespace fastconv
