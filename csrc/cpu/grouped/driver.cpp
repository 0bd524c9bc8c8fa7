// Threads of the grouped family: the weight packed once per call, then tasks over blocks of
// positions (forward), rows of images (grad-input) or slabs of output rows and channel
// vectors (grad-weight, every tap, partials added in a fixed order). Channels_last only.
#include "grouped.h"

#include <algorithm>

#include "../flipped_weight.h"
#include "../runtime/parallel.h"
#include "../runtime/workspace.h"
#include "../simd/kernel_table.h"

namespace fastconv {
namespace grouped {
namespace {

template <typename T>
Workspace<T> pack(const ConvGeometry& g, const T* w, Layout w_layout, bool dgrad) {
  const auto& kt = kernels<T>();
  const int64_t vecs = (g.K + kt.vec - 1) / kt.vec, panel = g.R * g.S * g.C_per_group() * kt.vec;
  Workspace<T> wp(Slot::kWeight, vecs * panel);
  at::parallel_for(0, vecs, grain_for(panel), [&](int64_t b, int64_t e) {
    kt.grouped.pack_weight(g, w, w_layout == Layout::kNhwc, dgrad, wp.data(), b, e);
  });
  return wp;
}

// Positions per forward task: a few row segments, enough tasks for every thread; whole
// calls of the kernel (kernels.h's kGroupedCols and kGroupedBroadcastCols divide it).
constexpr int64_t kPositions = 96;

}  // namespace

template <typename T>
void forward(const ConvGeometry& g, const ForwardArgs<T>& a) {
  const auto& kt = kernels<T>();
  const Workspace<T> wp = pack(g, a.w, a.w_layout, false);
  const int64_t positions = g.N * g.P * g.Q, vecs = (g.K + kt.vec - 1) / kt.vec;
  const int64_t blocks = (positions + kPositions - 1) / kPositions;
  const int64_t split = pieces(blocks, vecs);  // small maps: channel vectors split too
  at::parallel_for(0, blocks * split, grain_for(g.macs() / (blocks * split)),
                   [&](int64_t b, int64_t e) {
                     for (int64_t t = b; t < e; ++t) {
                       const int64_t blk = t / split, piece = t % split;
                       kt.grouped.forward_tile(g, a.x, wp.data(), a.bias, a.y, piece * vecs / split,
                                               (piece + 1) * vecs / split, blk * kPositions,
                                               std::min(positions, (blk + 1) * kPositions));
                     }
                   });
}

template <typename T>
void grad_input(const ConvGeometry& g, const GradInputArgs<T>& a) {
  // Stride 1: the forward on the flipped weight, whose tasks run flat over positions (image
  // rows of 7 or 14 columns leave most of a row's last call of the kernel empty).
  if (g.unit_stride()) return grad_input_as_forward(g, a, &forward<T>);
  const auto& kt = kernels<T>();
  const Workspace<T> wp = pack(g, a.w, a.w_layout, true);
  const int64_t vecs = (g.C + kt.vec - 1) / kt.vec;
  at::parallel_for(0, g.N * g.H, grain_for(g.W * g.C * g.R * g.S * g.C_per_group()),
                   [&](int64_t b, int64_t e) {
                     for (int64_t i = b; i < e;) {
                       const int64_t n = i / g.H, h0 = i % g.H, h1 = std::min(g.H, h0 + (e - i));
                       kt.grouped.grad_input_tile(g, a.gy, wp.data(), a.gx, 0, vecs, n, h0, h1);
                       i += h1 - h0;
                     }
                   });
}

// The grad-weight runs in fixed slabs of output row bands (reduction_slices), each into its
// own partial [tap][c'][K], added in slab order. A task takes every channel vector of its
// bands where there are enough slabs, so the positions' lines are read once: a task per
// vector read one line of every position, 2 KB apart on a 512-channel layer.
template <typename T>
void grad_weight(const ConvGeometry& g, const GradWeightArgs<T>& a) {
  const auto& kt = kernels<T>();
  const int64_t RS = g.R * g.S, gw = g.C_per_group(), vecs = (g.K + kt.vec - 1) / kt.vec;
  const int64_t part = RS * gw * g.K, bands = grouped_wgrad_bands(g).count;
  const int64_t slabs = reduction_slices(g.N * g.P * g.Q, part * int64_t{sizeof(T)}, bands);
  const Workspace<T> acc(Slot::kPartials, slabs * part);  // [slab][tap][c'][k]
  // One slab (a small map, in cache anyway): a task per vector, as many as balance best.
  const int64_t split = slabs > 1 ? pieces(slabs, vecs) : vecs;
  at::parallel_for(0, slabs * split, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t sl = t / split, piece = t % split;
      kt.grouped.grad_weight_tile(g, a.x, a.gy, acc.data() + sl * part, piece * vecs / split,
                                  (piece + 1) * vecs / split, sl * bands / slabs,
                                  (sl + 1) * bands / slabs);
    }
  });
  // gw in channels_last order [K][R][S][C/groups] (the family runs only channels_last), the
  // slabs added in order; loops rather than sum_chunks_in_order, whose per-value index
  // divisions had doubled a 400x7^2 layer's time.
  at::parallel_for(0, g.K, grain_for(RS * gw * slabs), [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k)
      for (int64_t t = 0; t < RS; ++t)
        for (int64_t c = 0; c < gw; ++c) {
          const T* p = acc.data() + (t * gw + c) * g.K + k;
          T sum = p[0];
          for (int64_t sl = 1; sl < slabs; ++sl) sum += p[sl * part];
          a.gw[(k * RS + t) * gw + c] = sum;
        }
  });
}

FASTCONV_INSTANTIATE_FAMILY_PASSES()

}  // namespace grouped
}  // namespace fastconv
