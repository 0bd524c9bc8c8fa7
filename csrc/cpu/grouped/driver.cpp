// Threads of the grouped family: the weight packed once per call, then tasks over blocks of
// positions (forward), rows of images (grad-input) or slabs of output rows and channel
// vectors (grad-weight, every tap, partials added in a fixed order). The kernels read
// channels_last activations; every pass stages NCHW ones band by band in its tasks.
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

// NCHW activations: a task takes bands of an image's output rows and a few channel vectors
// (whole groups: C/groups = K/groups divides the vector), stages the rows a band reads as
// NHWC in its own buffers, runs the channels_last kernels on them as a one-image layer of
// its own, and (forward) writes its outputs back transposed. The transposes stay in cache;
// as whole-tensor layout copies they went through memory twice, 41 % of a 256x28^2
// 32-group forward at batch 8 (docs/measurements.md).
constexpr int64_t kNchwBandPositions = 256;
constexpr int64_t kNchwChunkVectors = 4;

// Channel vectors of one group (groups wider than a vector span two or three), and of a
// chunk: kNchwChunkVectors, less to end on a group (three-vector groups: 3).
inline int64_t group_vectors(const ConvGeometry& g, int64_t V) {
  return g.C_per_group() > V ? g.C_per_group() / V : 1;
}
inline int64_t chunk_vectors(const ConvGeometry& g, int64_t V) {
  const int64_t unit = group_vectors(g, V);
  return std::max(unit, kNchwChunkVectors / unit * unit);
}

struct NchwBands {
  int64_t rows, per_image, count;  // output rows a band; bands an image; in the batch
};
inline NchwBands nchw_bands(const ConvGeometry& g) {
  const int64_t rows =
      g.Q > 0 ? std::clamp<int64_t>((kNchwBandPositions + g.Q - 1) / g.Q, 1, g.P) : g.P;
  const int64_t per_image = rows > 0 ? (g.P + rows - 1) / rows : 0;
  return {rows, per_image, g.N * per_image};
}

// Channel vectors [v0, v1) of a task, at most `size` (chunk_vectors) from v0 and none past
// `last`: channels [c0, c0 + nc) of `channels` (whole groups where v0 starts one).
struct Chunk {
  int64_t v0, v1, c0, nc;
};
inline Chunk chunk_at(int64_t v0, int64_t size, int64_t last, int64_t V, int64_t channels) {
  const int64_t v1 = std::min(last, v0 + size);
  return {v0, v1, v0 * V, std::min(channels, v1 * V) - v0 * V};
}

// Output rows [p0, p0 + g.P) of image n reading input rows [ih0, ih0 + g.H), nc channels,
// as a layer of its own (g).
struct Band {
  ConvGeometry g;
  int64_t n, p0, ih0;
};
inline Band band_rows(const ConvGeometry& g, int64_t n, int64_t nc, int64_t p0, int64_t p1,
                      int64_t ih0, int64_t ih1) {
  Band bd{g, n, p0, ih0};
  bd.g.N = 1, bd.g.C = bd.g.K = nc, bd.g.groups = nc / g.C_per_group();
  bd.g.H = ih1 - ih0, bd.g.P = p1 - p0, bd.g.pad_h = g.pad_h - p0 * g.stride_h + ih0;
  return bd;
}
// Band b of nchw_bands: its output rows and the input rows they read.
inline Band band_of(const ConvGeometry& g, const NchwBands& nb, int64_t b, int64_t nc) {
  const int64_t p0 = b % nb.per_image * nb.rows, p1 = std::min(g.P, p0 + nb.rows);
  const int64_t ih0 = std::clamp<int64_t>(g.in_row(p0, 0), 0, g.H);
  const int64_t ih1 = std::clamp<int64_t>(g.in_row(p1 - 1, g.R - 1) + 1, ih0, g.H);
  return band_rows(g, b / nb.per_image, nc, p0, p1, ih0, ih1);
}
// Input rows [h0, h1) of image n (a strided grad-input's band) and the output rows that
// reach them: p * stride_h = h + pad_h - r * dil_h.
inline Band band_reaching(const ConvGeometry& g, int64_t n, int64_t nc, int64_t h0, int64_t h1) {
  const int64_t p0 =
      std::clamp<int64_t>(ceil_div(h0 + g.pad_h - (g.R - 1) * g.dil_h, g.stride_h), 0, g.P);
  const int64_t p1 = std::clamp<int64_t>(floor_div(h1 - 1 + g.pad_h, g.stride_h) + 1, p0, g.P);
  return band_rows(g, n, nc, p0, p1, h0, h1);
}

// Where the band's rows of channels c0.. start in an NCHW tensor, its planes' size and the
// values each plane gives: its input rows (x, grad_input) or its output rows (y,
// grad_output).
enum class Rows { kInput, kOutput };
struct PlaneRun {
  int64_t offset, plane, count;
};
inline PlaneRun plane_run(const ConvGeometry& g, const Band& bd, Rows r, int64_t c0) {
  if (r == Rows::kInput)
    return {(bd.n * g.C + c0) * g.H * g.W + bd.ih0 * g.W, g.H * g.W, bd.g.H * g.W};
  return {(bd.n * g.K + c0) * g.P * g.Q + bd.p0 * g.Q, g.P * g.Q, bd.g.P * g.Q};
}
// Those rows to NHWC `rows` (count x nc values), and back.
template <typename T>
void stage(const ConvGeometry& g, const Band& bd, Rows r, const T* src, int64_t c0, T* rows) {
  const PlaneRun pr = plane_run(g, bd, r, c0);
  kernels<T>().layout.to_nhwc(src + pr.offset, rows, bd.g.C, pr.plane, 0, pr.count);
}
template <typename T>
void unstage(const ConvGeometry& g, const Band& bd, Rows r, const T* rows, int64_t c0, T* dst) {
  const PlaneRun pr = plane_run(g, bd, r, c0);
  kernels<T>().layout.to_nchw(rows, dst + pr.offset, bd.g.C, pr.plane, 0, pr.count);
}

template <typename T>
void forward_nchw(const ConvGeometry& g, const ForwardArgs<T>& a, const T* wp) {
  const auto& kt = kernels<T>();
  const int64_t V = kt.vec, vecs = (g.K + V - 1) / V, panel = g.R * g.S * g.C_per_group() * V;
  const NchwBands nb = nchw_bands(g);
  const int64_t cv = chunk_vectors(g, V), chunks = (vecs + cv - 1) / cv;
  const int64_t tasks = nb.count * chunks;
  at::parallel_for(
      0, tasks, grain_for(g.macs() / std::max<int64_t>(tasks, 1)), [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          const Chunk ch = chunk_at(t % chunks * cv, cv, vecs, V, g.K);
          const Band bd = band_of(g, nb, t / chunks, ch.nc);
          const int64_t ny = bd.g.P * g.Q;
          const Workspace<T> in(Slot::kStage, bd.g.H * g.W * ch.nc), out(Slot::kTile, ny * ch.nc);
          stage(g, bd, Rows::kInput, a.x, ch.c0, in.data());
          kt.grouped.forward_tile(bd.g, in.data(), wp + ch.v0 * panel,
                                  a.bias ? a.bias + ch.c0 : nullptr, out.data(), 0, ch.v1 - ch.v0,
                                  0, ny);
          unstage(g, bd, Rows::kOutput, out.data(), ch.c0, a.y);
        }
      });
}

// A strided grad-input on NCHW activations: a task takes a band of an image's input rows
// and a chunk of channel vectors, stages the rows of grad_output that reach them, runs the
// kernel on them as a layer of its own and writes its rows back transposed.
template <typename T>
void grad_input_nchw(const ConvGeometry& g, const GradInputArgs<T>& a, const T* wp) {
  const auto& kt = kernels<T>();
  const int64_t V = kt.vec, vecs = (g.C + V - 1) / V, panel = g.R * g.S * g.C_per_group() * V;
  const int64_t rows = std::clamp<int64_t>((kNchwBandPositions + g.W - 1) / g.W, 1, g.H);
  const int64_t per_image = (g.H + rows - 1) / rows;
  const int64_t cv = chunk_vectors(g, V), chunks = (vecs + cv - 1) / cv;
  const int64_t tasks = g.N * per_image * chunks;
  at::parallel_for(0, tasks, grain_for(g.macs() / std::max<int64_t>(tasks, 1)),
                   [&](int64_t b, int64_t e) {
                     for (int64_t t = b; t < e; ++t) {
                       const Chunk ch = chunk_at(t % chunks * cv, cv, vecs, V, g.C);
                       const int64_t n = t / chunks / per_image, h0 = t / chunks % per_image * rows;
                       const Band bd = band_reaching(g, n, ch.nc, h0, std::min(g.H, h0 + rows));
                       // (Not kStage2: the kernel keeps its taps there.)
                       const Workspace<T> gys(Slot::kStage, bd.g.P * g.Q * ch.nc),
                           gxs(Slot::kTile, bd.g.H * g.W * ch.nc);
                       stage(g, bd, Rows::kOutput, a.gy, ch.c0, gys.data());
                       kt.grouped.grad_input_tile(bd.g, gys.data(), wp + ch.v0 * panel, gxs.data(),
                                                  0, ch.v1 - ch.v0, 0, 0, bd.g.H);
                       unstage(g, bd, Rows::kInput, gxs.data(), ch.c0, a.gx);
                     }
                   });
}

}  // namespace

template <typename T>
void forward(const ConvGeometry& g, const ForwardArgs<T>& a) {
  const auto& kt = kernels<T>();
  const Workspace<T> wp = pack(g, a.w, a.w_layout, false);
  if (a.x_layout == Layout::kNchw) return forward_nchw(g, a, wp.data());
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
  if (a.gx_layout == Layout::kNchw) return grad_input_nchw(g, a, wp.data());
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

// The grad-weight runs in fixed slabs of output row bands (reduction_slices; NCHW
// activations: nchw_bands, staged band by band a few vectors at a time), each into its own
// partial [tap][c'][K], added in slab order. A task takes every channel vector of its bands
// where there are enough slabs, so the positions' lines are read once: a task per vector
// read one line of every position, 2 KB apart on a 512-channel layer.
template <typename T>
void grad_weight(const ConvGeometry& g, const GradWeightArgs<T>& a) {
  const auto& kt = kernels<T>();
  const bool nchw = a.x_layout == Layout::kNchw;
  const NchwBands nb = nchw_bands(g);
  const int64_t RS = g.R * g.S, gw = g.C_per_group(), V = kt.vec, vecs = (g.K + V - 1) / V;
  const int64_t part = RS * gw * g.K, bands = nchw ? nb.count : grouped_wgrad_bands(g).count;
  const int64_t slabs = reduction_slices(g.N * g.P * g.Q, part * int64_t{sizeof(T)}, bands);
  const Workspace<T> acc(Slot::kPartials, slabs * part);  // [slab][tap][c'][k]
  // One slab (a small map, in cache anyway): a task per group's vectors, as many as balance
  // best. Tasks start on a group, whose NCHW channels they stage whole.
  const int64_t unit = group_vectors(g, V), units = vecs / unit, cv = chunk_vectors(g, V);
  const int64_t split = slabs > 1 ? pieces(slabs, units) : units;
  at::parallel_for(0, slabs * split, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t sl = t / split, piece = t % split;
      const int64_t v0 = piece * units / split * unit, v1 = (piece + 1) * units / split * unit;
      const int64_t b0 = sl * bands / slabs, b1 = (sl + 1) * bands / slabs;
      T* out = acc.data() + sl * part;
      for (int64_t row = 0; row < RS * gw; ++row)
        std::fill(out + row * g.K + v0 * V, out + row * g.K + std::min(g.K, v1 * V), T(0));
      if (!nchw) {
        kt.grouped.grad_weight_tile(g, a.x, a.gy, out, g.K, v0, v1, b0, b1);
        continue;
      }
      for (int64_t c = v0; c < v1; c += cv) {
        const Chunk ch = chunk_at(c, cv, v1, V, g.K);
        for (int64_t bb = b0; bb < b1; ++bb) {
          const Band bd = band_of(g, nb, bb, ch.nc);
          const Workspace<T> in(Slot::kStage, bd.g.H * g.W * ch.nc),
              gys(Slot::kStage2, bd.g.P * g.Q * ch.nc);
          stage(g, bd, Rows::kInput, a.x, ch.c0, in.data());
          stage(g, bd, Rows::kOutput, a.gy, ch.c0, gys.data());
          kt.grouped.grad_weight_tile(bd.g, in.data(), gys.data(), out + ch.c0, g.K, 0,
                                      ch.v1 - ch.v0, 0, grouped_wgrad_bands(bd.g).count);
        }
      }
    }
  });
  // gw in the activations' order ([K][R][S][C/groups] for channels_last ones), the slabs
  // added in order; loops rather than sum_chunks_in_order, whose per-value index divisions
  // had doubled a 400x7^2 layer's time.
  at::parallel_for(0, g.K, grain_for(RS * gw * slabs), [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k)
      for (int64_t t = 0; t < RS; ++t)
        for (int64_t c = 0; c < gw; ++c) {
          const T* p = acc.data() + (t * gw + c) * g.K + k;
          T sum = p[0];
          for (int64_t sl = 1; sl < slabs; ++sl) sum += p[sl * part];
          a.gw[nchw ? (k * gw + c) * RS + t : (k * RS + t) * gw + c] = sum;
        }
  });
}

FASTCONV_INSTANTIATE_FAMILY_PASSES()

}  // namespace grouped
}  // namespace fastconv
