// Threads of the blocked family: tasks over (image, block of vec channels), or for large
// channels_last inputs over (image, band of output rows) with every block.
#include "blocked.h"

#include <algorithm>

#include "../flipped_weight.h"
#include "../runtime/image_runs.h"
#include "../runtime/parallel.h"
#include "../runtime/workspace.h"
#include "../simd/kernel_table.h"

namespace fastconv {
namespace blocked {

// Channels_last inputs from this size on take bands of rows: below it the batch's input
// stays in the last-level cache across the blocks' passes, and a block per task (no halo
// rows staged twice) is faster; above it the bands' contiguous reads win (MobileNet-V2's
// 96x112^2 stride-2 layer at batch 8: 0.39x -> 0.66x torch; docs/measurements.md).
constexpr int64_t kNhwcBandMinBytes = int64_t{8} << 20;
// Input rows (all channels) that one band stages: they stay in L2 while every block of
// channels reads them.
constexpr int64_t kNhwcBandBytes = 256 << 10;

// The grad-weight's bands of one image go into at most this many partial sums (fixed by
// the problem, so the bits do not depend on the thread count).
constexpr int64_t kNhwcWgradSlabs = 4;

// Output rows per band of a channels_last pass, or 0 where it runs a block per task.
// Bands stage every block of channels in one pass: x is read row after row, whole
// positions at a time, where a block per task reads one vector of each position, C apart,
// across the whole image.
// The output rows whose input rows (all channels) fit kNhwcBandBytes.
template <typename T>
int64_t nhwc_band_fit(const ConvGeometry& g) {
  const int64_t row = g.W * g.C * int64_t(sizeof(T)) * g.stride_h;
  return std::clamp<int64_t>(kNhwcBandBytes / std::max<int64_t>(row, 1), 1, g.P);
}

template <typename T>
int64_t nhwc_band_rows(const ConvGeometry& g) {
  if (g.input_numel() * int64_t(sizeof(T)) < kNhwcBandMinBytes) return 0;
  return nhwc_band_fit<T>(g);
}

// The forward's bands: nhwc_band_rows, and at stride 1 also smaller inputs, in bands small
// enough for four tasks per thread, where there are that many bands and each stages at most
// half as many halo rows again as it has (else a block per task). A block per task reads x
// one vector per position, C apart, once per block; bands read it once, in order. Strided
// smaller inputs lost with bands (docs/measurements.md).
template <typename T>
int64_t nhwc_forward_band_rows(const ConvGeometry& g) {
  if (const int64_t band = nhwc_band_rows<T>(g)) return band;
  if (!g.unit_stride()) return 0;
  const int64_t want = 4 * at::get_num_threads(), fit = nhwc_band_fit<T>(g);
  const int64_t bands = std::max((g.P + fit - 1) / fit, (want + g.N - 1) / g.N);
  const int64_t band = (g.P + bands - 1) / bands;
  const bool halo_small = band >= 2 * (g.R - 1) * g.dil_h;  // staged rows at most 1.5 x band
  return g.N * ((g.P + band - 1) / band) >= want && halo_small ? band : 0;
}

// Channels_last passes that read their operands in place (the *_nhwc_direct kernels)
// rather than staged: strided layers, whose staging copies about stride^2 input values per
// output computed, and stride-1 layers of at most 3x3 taps on inputs large enough for bands;
// each only where at most one output column in kDirectMinInteriorShare is an edge column,
// which the kernels sum tap by tap (a 5x5 layer on a 7-wide map: two of seven). Forward,
// against the staged passes at batch 8: MobileNet-V2's 144x56^2 stride 2 0.48x -> 0.65x
// torch, 64x112^2 stride 2 0.57x -> 0.89x, 144x56^2 stride 1 0.63x -> 0.98x; 5x5 layers on
// 14^2 maps lost (0.76x -> 0.65x), and 3x3 stride-1 layers on smaller inputs. Grad-weight:
// 48x112^2 stride 2 0.61x -> 0.95x, 72x56^2 stride 2 0.81x -> 1.17x (docs/measurements.md).
// Dilated layers and strides above 2 along the width keep the staged passes (their tiles
// step by a runtime stride; unmeasured in place).
constexpr int64_t kDirectMinInteriorShare = 5;
constexpr int64_t kDirectMaxUnitStrideTaps = 9;
static bool nhwc_in_place(const ConvGeometry& g, size_t elem_size) {
  if (g.dil_w != 1 || g.stride_w > 2) return false;
  const Range cols = g.interior_cols();
  if ((g.Q - (cols.hi - cols.lo)) * kDirectMinInteriorShare > g.Q) return false;
  if (!g.unit_stride()) return true;
  return g.R * g.S <= kDirectMaxUnitStrideTaps &&
         g.input_numel() * int64_t(elem_size) >= kNhwcBandMinBytes;
}

// Strided channels_last grad-inputs written in place (blocked_dgrad_nhwc_direct) on the
// same layers, undilated along the height too (its taps' phases assume it): against the
// staged scatter into a zeroed block, batch 8 (docs/measurements.md).
static bool nhwc_grad_input_in_place(const ConvGeometry& g, size_t elem_size) {
  return g.dil_h == 1 && !g.unit_stride() && nhwc_in_place(g, elem_size);
}

template <typename T>
void forward(const ConvGeometry& g, const ForwardArgs<T>& a) {
  const auto& kt = kernels<T>();
  const int64_t V = kt.vec, blocks = (g.C + V - 1) / V;
  const bool nhwc = a.y_layout == Layout::kNhwc;  // x's too
  if (nhwc && nhwc_in_place(g, sizeof(T))) {      // tasks: runs of output rows
    at::parallel_for(0, g.N * g.P, grain_for(g.C * g.Q * g.R * g.S), [&](int64_t b, int64_t e) {
      for_each_image_run(g.P, b, e, [&](int64_t n, int64_t p0, int64_t rows, int64_t) {
        kt.blocked.forward_nhwc_direct(g, a.x + n * g.C * g.H * g.W, a.w, a.bias,
                                       a.y + n * g.K * g.P * g.Q, p0, p0 + rows);
      });
    });
    return;
  }
  if (const int64_t band = nhwc ? nhwc_forward_band_rows<T>(g) : 0) {  // tasks: (image, band)
    const int64_t bands = (g.P + band - 1) / band;
    at::parallel_for(
        0, g.N * bands, grain_for(g.C * band * g.Q * g.R * g.S), [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) {
            const int64_t n = i / bands, p0 = i % bands * band;
            kt.blocked.forward_nhwc_rows(g, a.x + n * g.C * g.H * g.W, a.w, a.bias,
                                         a.y + n * g.K * g.P * g.Q, p0, std::min(g.P, p0 + band));
          }
        });
    return;
  }
  at::parallel_for(
      0, g.N * blocks, grain_for(V * g.P * g.Q * g.R * g.S), [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
          kt.blocked.forward(g, a.x + (i / blocks) * g.C * g.H * g.W, a.w, a.bias,
                             a.y + (i / blocks) * g.K * g.P * g.Q, nhwc, (i % blocks) * V);
      });
}

template <typename T>
void grad_input(const ConvGeometry& g, const GradInputArgs<T>& a) {
  if (g.unit_stride()) return grad_input_as_forward(g, a, &forward<T>);
  const auto& kt = kernels<T>();
  const int64_t V = kt.vec, blocks = (g.C + V - 1) / V;
  if (a.gx_layout == Layout::kNhwc && nhwc_grad_input_in_place(g, sizeof(T))) {  // runs of rows
    const int64_t macs_per_row = g.C * g.W * g.R * g.S / (g.stride_h * g.stride_w);
    at::parallel_for(0, g.N * g.H, grain_for(macs_per_row), [&](int64_t b, int64_t e) {
      for_each_image_run(g.H, b, e, [&](int64_t n, int64_t h0, int64_t rows, int64_t) {
        kt.blocked.grad_input_nhwc_direct(g, a.gy + n * g.K * g.P * g.Q, a.w,
                                          a.gx + n * g.C * g.H * g.W, h0, h0 + rows);
      });
    });
    return;
  }
  at::parallel_for(0, g.N * blocks, grain_for(V * g.P * g.Q * g.R * g.S),
                   [&](int64_t b, int64_t e) {
                     for (int64_t i = b; i < e; ++i)
                       kt.blocked.grad_input(g, a.gy + (i / blocks) * g.K * g.P * g.Q, a.w,
                                             a.gx + (i / blocks) * g.C * g.H * g.W,
                                             a.gx_layout == Layout::kNhwc, (i % blocks) * V);
                   });
}

// One partial per (image, block), summed over images in order: reproducible bits.
template <typename T>
void grad_weight(const ConvGeometry& g, const GradWeightArgs<T>& a) {
  const auto& kt = kernels<T>();
  const int64_t V = kt.vec, blocks = (g.C + V - 1) / V, RS = g.R * g.S;
  const bool nhwc = a.gy_layout == Layout::kNhwc;
  const auto first = [&](int64_t i) {  // gw[c][rs] sums partial[chunk][c / V][rs][c % V]
    const int64_t c = i / RS, rs = i % RS;
    return ((c / V) * RS + rs) * V + c % V;
  };
  // Tasks (image, slab of output rows): each slab adds into a partial of its own, and the
  // partials are summed in order (slabs fixed by the problem, not by the threads).
  const auto by_slabs = [&](int64_t slabs, auto&& slab) {
    const int64_t part = blocks * RS * V;
    const Workspace<T> partial(Slot::kPartials, g.N * slabs * part);
    at::parallel_for(0, g.N * slabs, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        T* out = partial.data() + i * part;
        std::fill_n(out, part, T(0));
        const int64_t n = i / slabs;
        slab(a.x + n * g.C * g.H * g.W, a.gy + n * g.K * g.P * g.Q, i % slabs, out);
      }
    });
    sum_chunks_in_order(g.C * RS, g.N * slabs, part, partial.data(), a.gw, first);
  };
  if (nhwc && nhwc_in_place(g, sizeof(T))) {
    const int64_t slabs = std::min(g.P, kNhwcWgradSlabs);
    return by_slabs(slabs, [&](const T* x, const T* gy, int64_t sl, T* out) {
      kt.blocked.grad_weight_nhwc_direct(g, x, gy, out, sl * g.P / slabs, (sl + 1) * g.P / slabs);
    });
  }
  if (const int64_t band = nhwc ? nhwc_band_rows<T>(g) : 0) {  // slabs of whole bands
    const int64_t bands = (g.P + band - 1) / band, slabs = std::min(bands, kNhwcWgradSlabs);
    return by_slabs(slabs, [&](const T* x, const T* gy, int64_t sl, T* out) {
      for (int64_t bd = sl * bands / slabs; bd < (sl + 1) * bands / slabs; ++bd)
        kt.blocked.grad_weight_nhwc_rows(g, x, gy, out, bd * band, std::min(g.P, (bd + 1) * band));
    });
  }
  const Workspace<T> partial(Slot::kPartials, g.N * blocks * RS * V);
  at::parallel_for(0, g.N * blocks, grain_for(V * g.P * g.Q * RS), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      kt.blocked.grad_weight(g, a.x + (i / blocks) * g.C * g.H * g.W,
                             a.gy + (i / blocks) * g.K * g.P * g.Q, partial.data() + i * RS * V,
                             nhwc, (i % blocks) * V);
  });
  sum_chunks_in_order(g.C * RS, g.N, blocks * RS * V, partial.data(), a.gw, first);
}

FASTCONV_INSTANTIATE_FAMILY_PASSES()

}  // namespace blocked
}  // namespace fastconv
