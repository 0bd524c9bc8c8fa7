// Threads of the Winograd family: the transformed weight across threads, then chunks of
// output tiles; grad-weight in blocks of input channels. Dilated "same" layers run on their
// phase split (conv_geometry.h, dilated_phases): the phases go into the batch dimension, so
// one call covers them all, and grad-weight sums over the enlarged batch as it must.
#include "winograd.h"

#include <algorithm>

#include "../dense/table.h"
#include "../flipped_weight.h"
#include "../runtime/parallel.h"
#include "../runtime/workspace.h"
#include "../simd/kernel_table.h"

namespace fastconv {
namespace winograd {
namespace {

// [N, C, A, B] (full, NCHW) <-> [da*db*N, C, ceil(A/d), ceil(B/d)] (split): phase (a, b) of
// image n at batch index (a*db + b)*N + n (conv_geometry.h, dilated_phases). kSplit writes
// the split tensor (zero past A and B), else the full one.
template <typename T, bool kSplit>
void phase_copy(const ConvGeometry& g, int64_t C, int64_t A, int64_t B, const T* src, T* dst) {
  const int64_t d = g.dil_h, da = phase_rows(g), db = phase_cols(g), N = g.N;
  const int64_t A2 = (A + d - 1) / d, B2 = (B + d - 1) / d;
  at::parallel_for(0, N * C, grain_for(A2 * B2 * da * db), [&](int64_t b0, int64_t e) {
    for (int64_t nc = b0; nc < e; ++nc) {
      const int64_t n = nc / C, c = nc % C;
      for (int64_t a = 0; a < da; ++a)
        for (int64_t b = 0; b < db; ++b) {
          const int64_t split_plane = (((a * db + b) * N + n) * C + c) * A2 * B2;
          for (int64_t i = 0; i < A2; ++i)
            for (int64_t j = 0; j < B2; ++j) {
              const int64_t h = i * d + a, w = j * d + b;
              const bool inside = h < A && w < B;
              const int64_t full = (nc * A + h) * B + w, split = split_plane + i * B2 + j;
              if (kSplit)
                dst[split] = inside ? src[full] : T(0);
              else if (inside)
                dst[full] = src[split];
            }
        }
    }
  });
}

template <typename T>
void forward_tiles(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const auto& kt = kernels<T>();
  const int64_t Kp = (g.K + kDenseMR - 1) / kDenseMR * kDenseMR, k_panels = Kp / kDenseMR;
  const Workspace<T> packed(Slot::kWeight, 16 * (Kp * g.C + kWinoPad));
  at::parallel_for(0, k_panels, grain_for(16 * kDenseMR * g.C), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      kt.winograd.pack_weight(g, w, packed.data(), i * kDenseMR, std::min(g.K, (i + 1) * kDenseMR));
  });
  // Chunks of whole NR-column panels of tiles (across tile rows and images), split evenly,
  // at most 8 panels and at least one chunk per thread. Every chunk streams the whole
  // transformed weight (16*K*C values) while its per-xi working set stays in L2, so chunks
  // are as large as balance allows.
  const int64_t nr = 2 * kt.vec, tiles = g.N * ((g.P + 1) / 2) * ((g.Q + 1) / 2);
  const int64_t panels = (tiles + nr - 1) / nr;
  const int64_t chunks =
      std::min(panels, std::max<int64_t>(at::get_num_threads(), (panels + 7) / 8));
  at::parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      kt.winograd.forward_tiles(g, x, packed.data(), bias, y, i * panels / chunks * nr,
                                std::min(tiles, (i + 1) * panels / chunks * nr));
  });
}

template <typename T>
void grad_weight_tiles(const ConvGeometry& g, const T* x, const T* gy, T* gw) {
  const auto& kt = kernels<T>().winograd;
  // Every block stores its channels' rows of du on its first chunk: no zero fill.
  const Workspace<T> du(Slot::kGradTransform, 16 * (g.C * g.K + kWinoPad));
  const int64_t c_panels = (g.C + kDenseMR - 1) / kDenseMR;
  const int64_t blocks = std::min<int64_t>(c_panels, at::get_num_threads());
  at::parallel_for(0, blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      kt.grad_weight_block(g, x, gy, i * c_panels / blocks * kDenseMR,
                           std::min(g.C, (i + 1) * c_panels / blocks * kDenseMR), du.data());
  });
  at::parallel_for(0, g.C, grain_for(g.K * 64),
                   [&](int64_t b, int64_t e) { kt.grad_weight_finish(g, du.data(), gw, b, e); });
}

}  // namespace

template <typename T>
void forward(const ConvGeometry& g, const ForwardArgs<T>& a) {
  if (!has_dilated_phases(g)) return forward_tiles(g, a.x, a.w, a.bias, a.y);
  const ConvGeometry pg = dilated_phases(g);
  const Workspace<T> xs(Slot::kPhaseIn, pg.input_numel()), ys(Slot::kPhaseOut, pg.output_numel());
  phase_copy<T, true>(g, g.C, g.H, g.W, a.x, xs.data());
  forward_tiles(pg, xs.data(), a.w, a.bias, ys.data());
  phase_copy<T, false>(g, g.K, g.P, g.Q, ys.data(), a.y);
}

// Stride 1: a Winograd forward with the flipped weight (of the phases, when dilated: the
// flipped 3x3 weight of a dilated "same" layer is again one).
template <typename T>
void grad_input(const ConvGeometry& g, const GradInputArgs<T>& a) {
  grad_input_as_forward(g, a, &forward<T>);
}

template <typename T>
void grad_weight(const ConvGeometry& g, const GradWeightArgs<T>& a) {
  if (!has_dilated_phases(g)) return grad_weight_tiles(g, a.x, a.gy, a.gw);
  const ConvGeometry pg = dilated_phases(g);
  const Workspace<T> xs(Slot::kPhaseIn, pg.input_numel()), gys(Slot::kPhaseIn2, pg.output_numel());
  phase_copy<T, true>(g, g.C, g.H, g.W, a.x, xs.data());
  phase_copy<T, true>(g, g.K, g.P, g.Q, a.gy, gys.data());
  grad_weight_tiles(pg, xs.data(), gys.data(), a.gw);
}

FASTCONV_INSTANTIATE_FAMILY_PASSES()

}  // namespace winograd
}  // namespace fastconv
