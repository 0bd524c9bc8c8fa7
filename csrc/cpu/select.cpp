// Every threshold of the family choice and the whole cost model, each with its reason. The
// measurements behind the numbers are in docs/measurements.md.
#include "select.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <iterator>
#include <cmath>

#include "blocked/blocked.h"
#include "dense/table.h"
#include "dense_bf16/dense_bf16.h"
#include "fft/fft.h"
#include "gemv/gemv.h"
#include "grouped/grouped.h"
#include "simd/kernel_table.h"
#include "winograd/winograd.h"

namespace fastconv {
namespace {

enum class Forced { kAuto, kPlain, kRows, kBlocked, kDense, kWinograd, kFft, kGrouped, kGemv };
std::atomic<int> g_forced{static_cast<int>(Forced::kAuto)};
Forced forced() { return static_cast<Forced>(g_forced.load()); }

// --- thresholds -----------------------------------------------------------------------
// Winograd needs layers deep enough that the 16 GEMMs, not the transforms, dominate...
constexpr int64_t kWinogradMinChannels = 16;
// ...and enough 2x2 tiles to pay for the transformed weight (16*K*C values, built every
// call; the GEMMs cost that times the tiles): break-even is about 64 tiles.
constexpr int64_t kWinogradMinTiles = 64;
// Grouped layers with at most this many channels per group run plane by plane on the row
// kernels rather than as an implicit GEMM that packs an im2col slice for a handful of
// output rows; only at stride 1, where their grad-input is a forward pass (strided, the
// row kernels' scattered grad-input loses).
constexpr int64_t kRowsMaxGroupChannels = 8;
// Channels_last groups of whole vectors of channels (16 in float32: RegNet-X-400MF's) run
// as a GEMM per group from this few positions in the batch down (14^2 maps at batch 1): the
// grouped kernel's broadcasts then have too few positions per weight vector loaded, and the
// dense kernels' panels of 16 output channels are full anyway. NCHW callers keep the family
// (its staged bands beat the dense passes there; docs/measurements.md).
constexpr int64_t kGroupedBroadcastMinPositions = 256;
// ...where a group fills the dense kernels' panels of 16 float32 lanes: AVX2's whole-vector
// groups of 8 stay on the family, as a GEMM per group of 8 would idle half of each panel (or
// run NCHW kernels through layout copies; RegNet-Y-400MF's 440x7^2 in 55 groups at batch 1
// ran at 0.23x torch).
constexpr int64_t kDensePanelBytes = 64;
// Ungrouped 1x1 layers with at most this many output positions in the batch
// (squeeze-excitation layers on pooled maps) run as matrix-vector products that read the
// weight once in place: an implicit GEMM packs the weight or a position panel and fills one
// row of its micro-tile. (Grouped ones stay with the families that fill lanes across groups.)
constexpr int64_t kGemvMaxPositions = 16;
// The blocked family stages each (image, vector of channels) as one zero-bordered block;
// it runs only where that block is at most this many times the input and output planes
// (plus a small constant), so huge paddings and dilations never make it allocate more than
// the tensors themselves.
constexpr int64_t kBlockedMaxFrameRatio = 4;
constexpr int64_t kBlockedFrameSlack = 4096;

// --- cost model (single-thread nanoseconds, fitted on Zen 4) --------------------------
// Row kernels: about 25 G multiply-adds/s; channel-blocked kernels: about 50 G/s.
constexpr double kRowsNsPerMac = 0.04;
constexpr double kBlockedNsPerMac = 0.02;
// A real 2-D FFT of n points costs about 0.3 ns * n * log2(n) (MKL), one per input plane,
// one per output plane and one per kernel, plus about 150 us of fixed costs per call
// (transform plans, dispatch).
constexpr double kFftNsPerPointLog = 0.3;
constexpr double kFftCallNs = 1.5e5;
// Against the blocked kernels the FFT must win by half again: on many small planes its
// time varies widely and often exceeds the model.
constexpr double kFftMarginOverBlocked = 1.5;

double fft_cost_ns(const ConvGeometry& g) {
  const double n = double(fft::grid_points(g));
  const double transforms = double(g.N * g.C + g.N * g.K + g.K);
  return kFftCallNs + transforms * kFftNsPerPointLog * n * std::log2(n);
}

bool blocked_frame_fits(const ConvGeometry& g) {
  return blocked::staged_positions(g) <=
         kBlockedMaxFrameRatio * (g.H * g.W + g.P * g.Q) + kBlockedFrameSlack;
}

int vector_lanes(at::ScalarType dtype) {
  return dtype == at::kDouble ? kernels<double>().vec : kernels<float>().vec;
}

// Several channels per group.
CpuFamily dense_family(const ConvGeometry& g, at::ScalarType dtype, bool channels_last) {
  const Forced a = forced();
  // bfloat16 dense layers on CPUs with AVX-512 BF16 go straight into vdpbf16ps.
  if (dtype == at::kBFloat16 && dense_bf16::available()) return CpuFamily::kDenseBf16;
  const bool gemv = gemv::applies(g);
  if (a == Forced::kGemv && gemv) return CpuFamily::kGemv;
  if (a == Forced::kRows) return CpuFamily::kRows;
  if (a == Forced::kDense || a == Forced::kPlain) return CpuFamily::kDense;
  if (gemv && g.groups == 1 && g.N * g.P * g.Q <= kGemvMaxPositions) return CpuFamily::kGemv;
  // Grouped layers with 2-16 channels per group: groups per vector make every lane of every
  // FMA useful, where a GEMM per group fills C/groups of its lanes (and the row kernels,
  // plane by plane, lost to them from 4 per group on, both layouts).
  const int vec = vector_lanes(dtype);
  const bool few_for_broadcasts =
      channels_last && g.C_per_group() >= vec &&
      g.C_per_group() * int64_t(c10::elementSize(dtype)) >= kDensePanelBytes &&
      g.N * g.P * g.Q < kGroupedBroadcastMinPositions;
  if (grouped::applies(g, vec) && (a == Forced::kGrouped || !few_for_broadcasts))
    return CpuFamily::kGrouped;
  const bool winograd = winograd::applies(g);
  if (winograd && a == Forced::kWinograd) return CpuFamily::kWinograd;
  if (winograd && g.C >= kWinogradMinChannels && g.K >= kWinogradMinChannels &&
      winograd::output_tiles(g) >= kWinogradMinTiles)
    return CpuFamily::kWinograd;
  if (g.groups > 1 && g.C_per_group() <= kRowsMaxGroupChannels && g.unit_stride())
    return CpuFamily::kRows;
  return CpuFamily::kDense;
}

// One input channel per group.
CpuFamily one_channel_family(const ConvGeometry& g) {
  const Forced a = forced();
  const bool depthwise = g.groups == g.C && g.K == g.C;  // channel multiplier 1
  const bool fft = fft::applies(g);
  const bool can_block = depthwise && blocked_frame_fits(g);
  if (a == Forced::kPlain || a == Forced::kRows) return CpuFamily::kRows;
  if (a == Forced::kDense) return CpuFamily::kDense;
  if (a == Forced::kGemv && gemv::applies(g)) return CpuFamily::kGemv;
  if (a == Forced::kFft && fft) return CpuFamily::kFft;
  if (a == Forced::kBlocked && can_block) return CpuFamily::kBlocked;
  // Depthwise layers run channel-blocked once they have a vector's worth of channels:
  // every FMA is full whatever the map's width.
  const bool blocked = can_block && g.C >= kernels<float>().vec;
  const double direct_ns = double(g.macs()) * (blocked ? kBlockedNsPerMac : kRowsNsPerMac);
  if (fft && fft_cost_ns(g) * (blocked ? kFftMarginOverBlocked : 1.0) < direct_ns)
    return CpuFamily::kFft;
  return blocked ? CpuFamily::kBlocked : CpuFamily::kRows;
}

}  // namespace

const char* family_name(CpuFamily f) {
  switch (f) {
    case CpuFamily::kRows:
      return "rows";
    case CpuFamily::kBlocked:
      return "blocked";
    case CpuFamily::kDense:
      return "dense";
    case CpuFamily::kDenseBf16:
      return "dense_bf16";
    case CpuFamily::kGrouped:
      return "grouped";
    case CpuFamily::kWinograd:
      return "winograd";
    case CpuFamily::kFft:
      return "fft";
    case CpuFamily::kGemv:
      return "gemv";
  }
  return "?";
}

namespace {
// Indexed by Forced: one name per value, in its order.
constexpr const char* kForcedNames[] = {"auto",     "plain", "rows",    "blocked", "dense",
                                        "winograd", "fft",   "grouped", "gemv"};
static_assert(std::size(kForcedNames) == static_cast<size_t>(Forced::kGemv) + 1,
              "a name for every Forced value");
}  // namespace

void set_cpu_algorithm(const std::string& name) {
  const std::string n = name == "direct" ? "plain" : name;
  for (int i = 0; i < static_cast<int>(std::size(kForcedNames)); ++i)
    if (n == kForcedNames[i]) return g_forced.store(i);
  TORCH_CHECK_VALUE(false,
                    "fastconv: algorithm must be one of 'auto', 'plain' (or 'direct'), 'rows', "
                    "'blocked', 'dense', 'winograd', 'fft', 'grouped', 'gemv'; got '",
                    name, "'");
}

std::string cpu_algorithm() { return kForcedNames[g_forced.load()]; }

namespace {

enum class Pass { kForward, kGradInput, kGradWeight };

// Whether a pass of family f reads and writes channels_last activations in place. The
// dense kernels' NR-lane panels run over output channels (forward), input channels
// (grad-input) or a tap's input channels (grad-weight); with fewer than kNhwcMinLanes of
// them most lanes would idle, and NCHW kernels with layout copies are faster. So are they
// where the gathered runs (a tap's channels, or a kernel row's S*C values:
// dense/table.h's nhwc_taps and nhwc_wgrad_taps) are shorter than kNhwcMinRun values, for
// the forward and for a kernel-row grad-weight (whose lanes run over output channels).
constexpr int64_t kNhwcMinLanes = 16;
constexpr int64_t kNhwcMinRun = 8;
NhwcSupport nhwc_support(CpuFamily f, const ConvGeometry& g, Pass pass) {
  switch (f) {
    case CpuFamily::kBlocked:   // channel-innermost blocks either way (blocked/staging.h)
    case CpuFamily::kWinograd:  // transforms vectors of channels (winograd/nhwc.h)
    case CpuFamily::kGemv:      // positions as rows, gathered where they are not (gemv/)
      return NhwcSupport::kAll;
    case CpuFamily::kGrouped:  // channels_last kernels; NCHW bands staged (grouped/driver)
      return NhwcSupport::kAll;
    case CpuFamily::kDense: {  // gathers contiguous runs of every tap (dense/nhwc.h)
      const NhwcTaps v = nhwc_taps(g);
      bool nhwc = false;
      switch (pass) {
        case Pass::kForward:
          nhwc = g.K_per_group() >= kNhwcMinLanes && v.depth >= kNhwcMinRun;
          break;
        case Pass::kGradInput:  // tap by tap, lanes over C/G
          nhwc = g.C_per_group() >= kNhwcMinLanes;
          break;
        case Pass::kGradWeight: {
          const NhwcTaps wv = nhwc_wgrad_taps(g);
          nhwc = wv.depth >= (wv.rows ? kNhwcMinRun : kNhwcMinLanes);
          break;
        }
      }
      return nhwc ? NhwcSupport::kAll : NhwcSupport::kNone;
    }
    default:
      return NhwcSupport::kNone;
  }
}

// NCHW callers' dense passes run on the channels_last kernels, through layout copies of
// their activations in and out, where the multiply-adds per copied value (the layer's
// intensity) make the copies cheap: their register tiles fill every lane (positions x
// output channels, where the NCHW tiles waste lanes on a map's ragged rows) and read the
// input in place instead of packing im2col slices. The grad passes gain from this
// intensity on; the forward only with kernels larger than 1x1 (a 1x1 NCHW forward is
// already a plain GEMM), except on maps smaller than kNchwPointwiseMinPlane in a batch:
// there each image's GEMM fills 49 of 64 columns (7^2 maps), where the channels_last one
// runs over the whole batch's positions. Measured in docs/measurements.md.
constexpr double kNhwcForNchwMinIntensity = 128;
constexpr int64_t kNchwPointwiseMinPlane = 64;
// Stride-1 1x1 grad passes of NCHW callers stay NCHW from this many positions per map on
// (28^2 maps and up: 256x56^2 -> 256 at batch 8 ran its grad-input 2.3 times as fast);
// below, on 14^2 maps, the copies still pay at batch 1 (docs/measurements.md).
constexpr int64_t kNchwPointwiseGradMinPlane = 256;
// Grouped layers (17+ channels per group) run their per-group GEMMs on few positions up to
// this many in the batch (7^2 maps at batch 8, 14^2 at batch 1), where the NCHW tiles of
// 24-64 output channels by a ragged 7- or 14-column row idle most lanes: the copies pay
// from far lower intensities there. The grad passes only at stride 1 (strided ones lost).
constexpr int64_t kGroupedNhwcForNchwMaxPositions = 512;
// NCHW callers' Winograd passes run on the channels_last transforms, through layout copies,
// on maps of up to kWinogradNhwcForNchwMaxPlane positions with kWinogradNhwcForNchwMinChannels
// or more channels in and out: there the transforms' vectors of channels beat the NCHW
// transforms' gathers of 4x4 patches by far more than the copies cost (DenseNet's 128 -> 32
// on 14^2 at batch 8: forward 0.89 -> 0.43 ms). On 56^2 maps and larger at batch 8 the
// copies leave the caches and the grad passes lost; with 16 channels, the grad-weight.
constexpr int64_t kWinogradNhwcForNchwMaxPlane = 32 * 32;
constexpr int64_t kWinogradNhwcForNchwMinChannels = 32;
void promote_to_nhwc(const ConvGeometry& g, CpuFamily f, Pass pass, NhwcSupport& s) {
  if (f == CpuFamily::kWinograd && s == NhwcSupport::kAll &&
      g.H * g.W <= kWinogradNhwcForNchwMaxPlane &&
      std::min(g.C, g.K) >= kWinogradNhwcForNchwMinChannels)
    s = NhwcSupport::kOnly;
  if (f != CpuFamily::kDense || s != NhwcSupport::kAll) return;
  // A strided 1x1 grad-input runs as a stride-1 forward spread over the grid, in place
  // (dense/driver.cpp): the copies only cost (12 zoo layers: geomean 1.23x -> 1.33x).
  if (pass == Pass::kGradInput && g.pointwise_unpadded() && !g.unit_stride()) return;
  // A stride-1 1x1 layer's grad passes are plain GEMMs in NCHW too (the grad-input is the
  // forward of a 1x1 layer): on maps of kNchwPointwiseGradMinPlane positions and more, the
  // copies of gy and x or gx cost more than the channels_last tiles gain.
  if (pass != Pass::kForward && g.pointwise_unpadded() && g.unit_stride() &&
      g.P * g.Q >= kNchwPointwiseGradMinPlane)
    return;
  if (pass == Pass::kForward && g.R * g.S == 1) {
    if (g.N > 1 && g.P * g.Q < kNchwPointwiseMinPlane) s = NhwcSupport::kOnly;
    return;
  }
  const bool grouped = g.groups > 1 && g.N * g.P * g.Q <= kGroupedNhwcForNchwMaxPositions &&
                       (pass == Pass::kForward || g.unit_stride());
  const double copied = double(g.N) * double(g.C * g.H * g.W + g.K * g.P * g.Q);
  if (grouped || double(g.macs()) >= kNhwcForNchwMinIntensity * copied) s = NhwcSupport::kOnly;
}

}  // namespace

CpuPlan select_cpu_plan(const ConvGeometry& g, at::ScalarType dtype, bool channels_last) {
  const CpuFamily f =
      g.one_channel_per_group() ? one_channel_family(g) : dense_family(g, dtype, channels_last);
  CpuPlan p{f, f, f, {}, {}, {}, f == CpuFamily::kRows};
  if (f == CpuFamily::kDenseBf16) {  // stride-1 grad-input is a bf16 forward; the rest float32
    p.grad_input = g.unit_stride() ? f : CpuFamily::kDense;
    p.grad_weight = CpuFamily::kDense;
  }
  if (f == CpuFamily::kGrouped && channels_last && !g.unit_stride() &&
      forced() != Forced::kGrouped && g.C_per_group() > vector_lanes(dtype)) {
    // Strided channels_last groups of two or three vectors (16 or 24 float32 channels on
    // AVX2): a GEMM per group fills the dense kernels' panels and beats the grouped forward
    // and grad-input; the grouped grad-weight stays (docs/measurements.md).
    p.forward = p.grad_input = CpuFamily::kDense;
  }
  p.forward_nhwc = nhwc_support(p.forward, g, Pass::kForward);
  p.grad_input_nhwc = nhwc_support(p.grad_input, g, Pass::kGradInput);
  p.grad_weight_nhwc = nhwc_support(p.grad_weight, g, Pass::kGradWeight);
  if (!channels_last) {
    promote_to_nhwc(g, p.forward, Pass::kForward, p.forward_nhwc);
    promote_to_nhwc(g, p.grad_input, Pass::kGradInput, p.grad_input_nhwc);
    promote_to_nhwc(g, p.grad_weight, Pass::kGradWeight, p.grad_weight_nhwc);
  }
  return p;
}

}  // namespace fastconv
