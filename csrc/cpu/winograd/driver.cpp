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

// [N, C, A, B] (full) <-> [da*db*N, C, ceil(A/d), ceil(B/d)] (split): phase (a, b) of image n
// at batch index (a*db + b)*N + n (conv_geometry.h, dilated_phases), both in `layout`.
// kSplit writes the split tensor (zero past A and B), else the full one.
template <typename T, bool kSplit>
void phase_copy(const ConvGeometry& g, int64_t C, int64_t A, int64_t B, Layout layout, const T* src,
                T* dst) {
  const int64_t d = g.dil_h, da = phase_rows(g), db = phase_cols(g), N = g.N;
  const int64_t A2 = (A + d - 1) / d, B2 = (B + d - 1) / d;
  const bool nhwc = layout == Layout::kNhwc;
  // Element (n, c, h, w) of the full tensor and (m, c, i, j) of the split one.
  const auto full_at = [&](int64_t n, int64_t c, int64_t h, int64_t w) {
    return nhwc ? ((n * A + h) * B + w) * C + c : ((n * C + c) * A + h) * B + w;
  };
  const auto split_at = [&](int64_t m, int64_t c, int64_t i, int64_t j) {
    return nhwc ? ((m * A2 + i) * B2 + j) * C + c : ((m * C + c) * A2 + i) * B2 + j;
  };
  // Element (n, c, h, w) <-> (m, c, i, j); the inner loop runs along contiguous memory.
  const auto copy = [&](int64_t n, int64_t c, int64_t a, int64_t b, int64_t i, int64_t j) {
    const int64_t m = (a * db + b) * N + n, h = i * d + a, w = j * d + b;
    const bool inside = h < A && w < B;
    if (kSplit)
      dst[split_at(m, c, i, j)] = inside ? src[full_at(n, c, h, w)] : T(0);
    else if (inside)
      dst[full_at(n, c, h, w)] = src[split_at(m, c, i, j)];
  };
  if (nhwc) {
    at::parallel_for(0, N * A2, grain_for(B2 * da * db * C), [&](int64_t b0, int64_t e) {
      for (int64_t ni = b0; ni < e; ++ni)
        for (int64_t a = 0; a < da; ++a)
          for (int64_t b = 0; b < db; ++b)
            for (int64_t j = 0; j < B2; ++j)
              for (int64_t c = 0; c < C; ++c) copy(ni / A2, c, a, b, ni % A2, j);
    });
    return;
  }
  // NCHW: rows of one phase are a strided run of a full row (every d-th value).
  at::parallel_for(0, N * C, grain_for(A2 * B2 * da * db), [&](int64_t b0, int64_t e) {
    for (int64_t nc = b0; nc < e; ++nc)
      for (int64_t a = 0; a < da; ++a)
        for (int64_t b = 0; b < db; ++b) {
          const int64_t m = (a * db + b) * N + nc / C, c = nc % C;
          const int64_t cols = (B - b + d - 1) / d;  // columns of this phase inside B
          for (int64_t i = 0; i < A2; ++i) {
            T* sp = (kSplit ? dst : const_cast<T*>(src)) + split_at(m, c, i, 0);
            const int64_t h = i * d + a;
            if (h >= A) {
              if (kSplit) std::fill_n(sp, B2, T(0));
              continue;
            }
            T* fp = (kSplit ? const_cast<T*>(src) : dst) + full_at(nc / C, c, h, b);
            if (kSplit) {
              for (int64_t j = 0; j < cols; ++j) sp[j] = fp[j * d];
              std::fill(sp + cols, sp + B2, T(0));
            } else {
              for (int64_t j = 0; j < cols; ++j) fp[j * d] = sp[j];
            }
          }
        }
  });
}

template <typename T>
void forward_tiles(const ConvGeometry& g, const T* x, const T* w, bool w_cl, const T* bias, T* y,
                   Layout layout) {
  const auto& kt = kernels<T>();
  const int64_t nr = 2 * kt.vec, tiles = g.N * ((g.P + 1) / 2) * ((g.Q + 1) / 2);
  const int64_t threads = at::get_num_threads();
  if (layout == Layout::kNhwc) {
    const int64_t lanes = kt.dense.nhwc_lanes(g.K), KP = (g.K + lanes - 1) / lanes;
    const Workspace<T> panels(Slot::kWeightPanels, 16 * KP * lanes * g.C);
    at::parallel_for(0, KP, 1, [&](int64_t b, int64_t e) {
      kt.winograd.nhwc_pack_weight(g, w, w_cl, panels.data(), b, e);
    });
    // Chunks of whole micro-tiles (MR tiles), at most 42 of them (a 252-tile chunk's
    // transformed input and products stay in L2), at least one chunk per thread.
    const int64_t units = (tiles + kDenseMR - 1) / kDenseMR;
    const int64_t chunks = std::min(units, std::max(threads, (units + 41) / 42));
    at::parallel_for(0, chunks, grain_for(g.macs() / chunks), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        kt.winograd.nhwc_forward_tiles(g, x, panels.data(), bias, y, i * units / chunks * kDenseMR,
                                       std::min(tiles, (i + 1) * units / chunks * kDenseMR));
    });
    return;
  }
  const int64_t Kp = (g.K + kDenseMR - 1) / kDenseMR * kDenseMR, k_panels = Kp / kDenseMR;
  const Workspace<T> packed(Slot::kWeight, 16 * (Kp * g.C + kWinoPad));
  at::parallel_for(0, k_panels, grain_for(16 * kDenseMR * g.C), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      kt.winograd.pack_weight(g, w, w_cl, packed.data(), i * kDenseMR,
                              std::min(g.K, (i + 1) * kDenseMR));
  });
  // Chunks of whole NR-column panels of tiles (across tile rows and images), split evenly,
  // at most 8 panels and at least one chunk per thread. Every chunk streams the whole
  // transformed weight (16*K*C values) while its per-xi working set stays in L2, so chunks
  // are as large as balance allows.
  const int64_t panels = (tiles + nr - 1) / nr;
  const int64_t chunks = std::min(panels, std::max<int64_t>(threads, (panels + 7) / 8));
  at::parallel_for(0, chunks, grain_for(g.macs() / chunks), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      kt.winograd.forward_tiles(g, x, packed.data(), bias, y, i * panels / chunks * nr,
                                std::min(tiles, (i + 1) * panels / chunks * nr));
  });
}

template <typename T>
void grad_weight_tiles(const ConvGeometry& g, const T* x, const T* gy, T* gw, Layout layout) {
  const auto& kt = kernels<T>();
  // Every block stores its channels' rows of du on its first chunk: no zero fill.
  const Workspace<T> du(Slot::kGradTransform, 16 * (g.C * g.K + kWinoPad));
  const int64_t threads = at::get_num_threads();
  if (layout == Layout::kNhwc) {  // blocks of whole panels of the input channels
    const int64_t nr = kt.dense.nhwc_lanes(g.C), c_panels = (g.C + nr - 1) / nr;
    const int64_t blocks = std::min(c_panels, threads);
    at::parallel_for(0, blocks, grain_for(g.macs() / blocks), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        kt.winograd.nhwc_grad_weight_block(g, x, gy, i * c_panels / blocks * nr,
                                           std::min(g.C, (i + 1) * c_panels / blocks * nr),
                                           du.data());
    });
    at::parallel_for(0, g.K, grain_for(g.C * 64), [&](int64_t b, int64_t e) {
      kt.winograd.nhwc_grad_weight_finish(g, du.data(), gw, b, e);
    });
    return;
  }
  const int64_t c_panels = (g.C + kDenseMR - 1) / kDenseMR;
  const int64_t blocks = std::min(c_panels, threads);
  at::parallel_for(0, blocks, grain_for(g.macs() / blocks), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      kt.winograd.grad_weight_block(g, x, gy, i * c_panels / blocks * kDenseMR,
                                    std::min(g.C, (i + 1) * c_panels / blocks * kDenseMR),
                                    du.data());
  });
  at::parallel_for(0, g.C, grain_for(g.K * 64), [&](int64_t b, int64_t e) {
    kt.winograd.grad_weight_finish(g, du.data(), gw, b, e);
  });
}

}  // namespace

template <typename T>
void forward(const ConvGeometry& g, const ForwardArgs<T>& a) {
  const Layout l = a.y_layout;  // x's too: the family takes every activation in one layout
  const bool w_cl = a.w_layout == Layout::kNhwc;
  if (!has_dilated_phases(g)) return forward_tiles(g, a.x, a.w, w_cl, a.bias, a.y, l);
  const ConvGeometry pg = dilated_phases(g);
  const Workspace<T> xs(Slot::kPhaseIn, pg.input_numel()), ys(Slot::kPhaseOut, pg.output_numel());
  phase_copy<T, true>(g, g.C, g.H, g.W, l, a.x, xs.data());
  forward_tiles(pg, xs.data(), a.w, w_cl, a.bias, ys.data(), l);
  phase_copy<T, false>(g, g.K, g.P, g.Q, l, ys.data(), a.y);
}

// Stride 1: a Winograd forward with the flipped weight (of the phases, when dilated: the
// flipped 3x3 weight of a dilated "same" layer is again one).
template <typename T>
void grad_input(const ConvGeometry& g, const GradInputArgs<T>& a) {
  grad_input_as_forward(g, a, &forward<T>);
}

template <typename T>
void grad_weight(const ConvGeometry& g, const GradWeightArgs<T>& a) {
  const Layout l = a.gy_layout;
  if (!has_dilated_phases(g)) return grad_weight_tiles(g, a.x, a.gy, a.gw, l);
  const ConvGeometry pg = dilated_phases(g);
  const Workspace<T> xs(Slot::kPhaseIn, pg.input_numel()), gys(Slot::kPhaseIn2, pg.output_numel());
  phase_copy<T, true>(g, g.C, g.H, g.W, l, a.x, xs.data());
  phase_copy<T, true>(g, g.K, g.P, g.Q, l, a.gy, gys.data());
  grad_weight_tiles(pg, xs.data(), gys.data(), a.gw, l);
}

FASTCONV_INSTANTIATE_FAMILY_PASSES()

}  // namespace winograd
}  // namespace fastconv
