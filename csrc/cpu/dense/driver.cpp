// Threads of the dense family: forward tiles from tiling.h; grad-weight over weight tiles
// (and, for small weights, fixed slices of the batch); strided grad-input over input
// channels. Stride-1 grad-input is the forward pass on the flipped weight.
#include "dense.h"

#include <algorithm>

#include "../flipped_weight.h"
#include "../runtime/parallel.h"
#include "../runtime/workspace.h"
#include "../simd/kernel_table.h"
#include "tiling.h"

namespace fastconv {
namespace dense {
namespace {

// Positions per slice of a kernel-row grad-weight (at most 16 slices): enough that a
// slice's partial weight, written once, is a small part of its work.
constexpr int64_t kWgradRowsSlicePositions = 512;

// Output channels per task of a channels_last grad-weight whose tasks take blocks of them
// (grad_weight_nhwc): 128 positions of their grad_output rows, copied, are 128 KB.
constexpr int64_t kWgradKBlock = 256;

// The weight as the channels_last kernels read it, in panels of nr channels: by_k (forward)
// [grp][K/G / nr][C/G * R*S][nr] with lanes over output channels (register transposes of
// its rows, in the weight's own order), else (grad-input) [grp][R*S][C/G / nr][K/G][nr]
// with lanes over input channels; zero past the end. w_cl: a channels_last weight.
template <typename T>
Workspace<T> pack_nhwc_weight(const ConvGeometry& g, const T* w, bool w_cl, int64_t nr, bool by_k) {
  const auto& kt = kernels<T>().dense;
  const int64_t Kg = g.K_per_group(), Cg = g.C_per_group(), RS = g.R * g.S;
  const int64_t group = ((by_k ? Kg : Cg) + nr - 1) / nr * nr * (by_k ? Cg : Kg) * RS;
  Workspace<T> packed(Slot::kWeight, g.groups * group);
  T* dst = packed.data();
  if (by_k) {  // tasks of whole panels
    const int64_t KP = (Kg + nr - 1) / nr;
    at::parallel_for(0, g.groups * KP, grain_for(nr * Cg * RS), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t grp = i / KP, kp = i % KP;
        kt.nhwc_pack_panels(w + (grp * Kg + kp * nr) * Cg * RS, Cg * RS, std::min(nr, Kg - kp * nr),
                            Cg * RS, dst + grp * group + kp * nr * Cg * RS, Kg);
      }
    });
    return packed;
  }
  at::parallel_for(0, g.K, grain_for(Cg * RS), [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e;) {
      const int64_t grp = k / Kg, k1 = std::min(e, (grp + 1) * Kg);
      kt.nhwc_pack_grad_input_weight(g, w, w_cl, dst + grp * group, grp, k % Kg, k1 - grp * Kg);
      k = k1;
    }
  });
  return packed;
}

// dst[k][r][s][c] = w[k][c][r][s]: the order in which a kernel-row tap's S*C values follow
// each other (the weights of few-channel first layers, which take such taps, are small).
template <typename T>
void weight_to_channels_last(const ConvGeometry& g, const T* w, T* dst) {
  const int64_t RS = g.R * g.S, Cg = g.C_per_group();
  for (int64_t k = 0; k < g.K; ++k)
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t t = 0; t < RS; ++t) dst[(k * RS + t) * Cg + c] = w[(k * Cg + c) * RS + t];
}

// The channels_last forward's tasks over w (as wk says): `blocks` blocks of positions (by
// default of at most kNhwcPositions), all of one size (whole micro-tiles), so that equal
// shares of tasks are equal shares of the work. Groups run inside a block, so a block's
// input rows come from memory once for all its groups (group by group, each group's pass
// over the batch read every line of x again: 72x112^2 in 3 groups, stride 2, batch 8,
// 9.3 -> 7.8 ms).
template <typename T>
void run_forward_nhwc(const ConvGeometry& g, const T* x, const T* w, NhwcWeight wk, const T* bias,
                      T* y, int64_t blocks = 0) {
  const auto& kt = kernels<T>();
  const int64_t Kg = g.K_per_group(), nr = kt.dense.nhwc_lanes(Kg), KP = (Kg + nr - 1) / nr;
  const int64_t group =
      nhwc_raw_rows(wk) ? Kg * g.C_per_group() * g.R * g.S : g.R * g.S * KP * g.C_per_group() * nr;
  const int64_t positions = g.N * g.P * g.Q, units = (positions + kDenseMR - 1) / kDenseMR;
  if (blocks == 0) {
    blocks = (positions + kNhwcPositions - 1) / kNhwcPositions;
    blocks = even_blocks(blocks, units + 1,
                         [&](int64_t b) { return g.groups * b * pieces(g.groups * b, KP); });
  }
  const int64_t split = pieces(g.groups * blocks, KP);
  at::parallel_for(
      0, g.groups * blocks * split, grain_for(g.macs() / (g.groups * blocks * split)),
      [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          const int64_t piece = t % split, grp = (t / split) % g.groups;
          const int64_t blk = t / (split * g.groups);
          const int64_t j0 = blk * units / blocks * kDenseMR;
          const int64_t j1 = std::min(positions, (blk + 1) * units / blocks * kDenseMR);
          kt.dense.nhwc_forward_tile(g, x, w + grp * group, wk, bias ? bias + grp * Kg : nullptr, y,
                                     grp, piece * KP / split, (piece + 1) * KP / split, j0, j1);
        }
      });
}

// Blocks of positions for a channels_last forward whose tasks pack the slices of their
// panels from the weight's own rows as they reach them (into L2), or 0 where the weight is
// packed whole first: few positions, and panels enough for every thread. Packing the whole
// weight writes it out and reads it back; on small maps at batch 1 the weight is most of
// the data, and on this project's VM the packing's stores stalled in some processes
// (docs/benchmarks.md, "Noise").
template <typename T>
int64_t raw_row_blocks(const ConvGeometry& g) {
  const int64_t Kg = g.K_per_group(), nr = kernels<T>().dense.nhwc_lanes(Kg);
  const int64_t KP = (Kg + nr - 1) / nr, positions = g.N * g.P * g.Q;
  const int64_t threads = at::get_num_threads(), panels = g.groups * KP;
  int64_t blocks = (positions + kNhwcRawRowsPositions - 1) / kNhwcRawRowsPositions;
  // A 1x1 layer with too few panels for the threads (128 to 192 output channels at batch 1)
  // splits its positions further: each block packs the weight once more, in L2, which costs
  // less than writing the packed weight out and reading it back. (A 3x3 one's weight is 9
  // times deeper for the same work per panel: there the repacking loses.)
  const int64_t units = (positions + kDenseMR - 1) / kDenseMR;
  if (g.R * g.S == 1)
    while (panels * blocks < 2 * threads && blocks < std::min(units, kNhwcRawRowsMaxBlocks))
      ++blocks;
  if (blocks > kNhwcRawRowsMaxBlocks || panels * blocks < 2 * threads) return 0;
  // As few blocks as share the tasks evenly (5 panels on 2 threads: 2 blocks).
  while (panels * blocks % threads != 0 && panels * blocks < 4 * threads && blocks < units)
    ++blocks;
  return blocks;
}

template <typename T>
void forward_nhwc(const ConvGeometry& g, const ForwardArgs<T>& a) {
  // Kernel-row taps read the weight as [tap][c] panels.
  const bool reorder = nhwc_taps(g).rows && a.w_layout != Layout::kNhwc;
  const bool w_cl = reorder || a.w_layout == Layout::kNhwc;
  // Rows of a contiguous weight ([c][tap], as NCHW callers promoted to these kernels pass
  // it) are read in slices of every tap.
  if (const int64_t blocks = reorder ? 0 : raw_row_blocks<T>(g))
    return run_forward_nhwc(
        g, a.x, a.w,
        w_cl || g.R * g.S == 1 ? NhwcWeight::kRawRows : NhwcWeight::kRawRowsChannelMajor, a.bias,
        a.y, blocks);
  const Workspace<T> w_cl_copy(Slot::kWeightTaps, reorder ? g.weight_numel() : 0);
  if (reorder) weight_to_channels_last(g, a.w, w_cl_copy.data());
  const int64_t nr = kernels<T>().dense.nhwc_lanes(g.K_per_group());
  const Workspace<T> packed = pack_nhwc_weight(g, reorder ? w_cl_copy.data() : a.w, w_cl, nr, true);
  run_forward_nhwc(g, a.x, packed.data(), w_cl ? NhwcWeight::kPanelsTapMajor : NhwcWeight::kPanels,
                   a.bias, a.y);
}

template <typename T>
void grad_input_nhwc(const ConvGeometry& g, const GradInputArgs<T>& a) {
  // Grouped stride-1 layers: the forward on the flipped weight (small for grouped layers),
  // whose tasks run flat over the batch's positions; the row tasks by image left 7^2 and
  // 14^2 maps' last micro-tiles mostly empty (912x7^2, 38 groups, batch 8: 0.54x -> 0.85x
  // torch). Ungrouped weights are large, and transposing them each call lost.
  if (g.groups > 1 && g.unit_stride() && !g.pointwise_in_place())
    return grad_input_as_forward(g, a, &forward_nhwc<T>);
  const auto& kt = kernels<T>();
  const int64_t Cg = g.C_per_group(), nr = kt.dense.nhwc_lanes(Cg), CP = (Cg + nr - 1) / nr;
  const int64_t group = g.R * g.S * CP * g.K_per_group() * nr;  // one group's panels
  // A 1x1 layer that reads x in place: grad_input is the GEMM gy * W, and the grad-input
  // panels [C/G / NR][K/G][NR] are the forward's panels of that GEMM (K/G values deep,
  // lanes over C/G), so it runs on the forward's tasks, flat over positions rather than by
  // image rows (7 or 14 columns leave most of a row's last micro-tile empty). Those panels'
  // rows are runs of the weight's own rows, which the tasks copy slice by slice where the
  // forward would pack raw rows, on up to one block of positions (14^2 maps at batch 1;
  // with two or more, each block's copy of the weight cost more than packing it once).
  // A strided 1x1 layer without padding: gx is zero off the strided grid, and on it the
  // stride-1 GEMM gy * W, which runs flat over the batch's positions into a scratch, then
  // spread. (By row phases below, a 28^2 map's phase of 14 positions filled micro-tiles of
  // 6 + 6 + 2 rows: 512x28^2 -> 1024 s2 at batch 8 took 13.5 ms against the forward's 9.4.)
  if (g.pointwise_unpadded() && !g.unit_stride() && g.groups == 1) {
    ConvGeometry grid = g;
    grid.H = g.P, grid.W = g.Q, grid.stride_h = grid.stride_w = 1;
    const Workspace<T> z(Slot::kSpread, g.N * g.P * g.Q * g.C);
    grad_input_nhwc(grid,
                    GradInputArgs<T>{a.gy, a.w, z.data(), a.gy_layout, a.gx_layout, a.w_layout});
    at::parallel_for(0, g.N * g.H, grain_for(g.W * g.C), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t n = i / g.H, h = i % g.H, p = h / g.stride_h;
        T* row = a.gx + i * g.W * g.C;
        std::fill_n(row, g.W * g.C, T(0));
        if (h % g.stride_h != 0 || p >= g.P) continue;
        const T* src = z.data() + (n * g.P + p) * g.Q * g.C;
        for (int64_t q = 0; q < g.Q; ++q)
          std::copy_n(src + q * g.C, g.C, row + q * g.stride_w * g.C);
      }
    });
    return;
  }
  const ConvGeometry as_forward = dgrad_as_forward(g);
  if (g.pointwise_in_place() && g.N * g.H * g.W <= kNhwcRawRowsPositions)
    if (const int64_t blocks = raw_row_blocks<T>(as_forward))
      return run_forward_nhwc(as_forward, a.gy, a.w, NhwcWeight::kRawColumns,
                              static_cast<const T*>(nullptr), a.gx, blocks);
  const Workspace<T> packed = pack_nhwc_weight(g, a.w, a.w_layout == Layout::kNhwc, nr, false);
  if (g.pointwise_in_place())
    return run_forward_nhwc(as_forward, a.gy, packed.data(), NhwcWeight::kPanels,
                            static_cast<const T*>(nullptr), a.gx);
  // Tasks: (image, group, block of rows), rows split until there are enough tasks.
  const int64_t base = g.N * g.groups * CP;
  const int64_t split =
      even_blocks(pieces(base, g.H), g.H + 1, [&](int64_t s) { return base * s; });
  at::parallel_for(
      0, base * split, grain_for(g.macs() / (base * split)), [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          const int64_t piece = t % split, cp = (t / split) % CP,
                        grp = (t / (split * CP)) % g.groups;
          const int64_t n = t / (split * CP * g.groups);
          kt.dense.nhwc_grad_input_tile(g, a.gy, packed.data() + grp * group, a.gx, grp, cp, cp + 1,
                                        n, piece * g.H / split, (piece + 1) * g.H / split);
        }
      });
}

// Kernel-row taps' grad-weight: fixed slices of the positions (set by the problem alone,
// so the sum's order does not depend on the thread count), each over every tap into its own
// partial [R*S*C][K], added in slice order into gw's [K][R][S][C].
template <typename T>
void grad_weight_nhwc_rows(const ConvGeometry& g, const GradWeightArgs<T>& a) {
  const auto& kt = kernels<T>();
  const int64_t positions = g.N * g.P * g.Q, numel = g.weight_numel(), RSC = numel / g.K;
  const int64_t slices = std::clamp<int64_t>(positions / kWgradRowsSlicePositions, 1, 16);
  const Workspace<T> partial(Slot::kPartials, slices * numel);
  at::parallel_for(0, slices, 1, [&](int64_t b, int64_t e) {
    for (int64_t sl = b; sl < e; ++sl)
      kt.dense.nhwc_grad_weight_rows_tile(g, a.x, a.gy, partial.data() + sl * numel,
                                          sl * positions / slices, (sl + 1) * positions / slices);
  });
  sum_chunks_in_order(numel, slices, numel, partial.data(), a.gw,
                      [&](int64_t i) { return i % RSC * g.K + i / RSC; });
}

// The tap-by-tap grad-weight over many positions runs in fixed slices of them
// (reduction_slices), each into its own partial weight, added in slice order; a task takes
// every input-channel panel of its chunks of positions, so x's rows are read whole. A task
// per panel instead reads a strip of each row, C apart, and on 56x56 maps at batch 8 those
// reads miss to memory (docs/measurements.md).
template <typename T>
void grad_weight_nhwc(const ConvGeometry& g, const GradWeightArgs<T>& a) {
  const auto& kt = kernels<T>();
  if (nhwc_wgrad_taps(g).rows) return grad_weight_nhwc_rows(g, a);
  const int64_t Kg = g.K_per_group(), taps = g.R * g.S, nr = kt.dense.nhwc_lanes(g.C_per_group());
  const int64_t CP = (g.C_per_group() + nr - 1) / nr, KB = (Kg + kDenseMR - 1) / kDenseMR;
  const int64_t positions = g.N * g.P * g.Q, numel = g.weight_numel();
  const int64_t slices = reduction_slices(positions, numel * int64_t{sizeof(T)});
  // Few positions (one slice): a task per panel; the map's strips stay in cache, and every
  // task reads all of grad_output. Where grad_output's rows are the longer ones and a page
  // or more apart, that read is the pass's cost (each position on its own page, once per
  // panel): the tasks take blocks of kWgradKBlock output channels and every panel instead,
  // copying their block of grad_output's rows once per chunk (nhwc.h), and read x once per
  // block. Batch 8, 1024x14^2 -> 2048 1x1: 57.9 -> 34.7 ms (docs/measurements.md).
  const bool by_k =
      slices == 1 && g.K >= g.C && g.K * int64_t(sizeof(T)) >= kNhwcWgradPackMinRowBytes;
  // Several slices: a task takes every panel, so x's rows are read whole; where there are
  // too few slices for the threads and x's rows are the longer ones, the tasks split the
  // panels rather than the output channels (each output-channel piece read all of x again:
  // batch 8, 832x28^2 -> 128 1x1 10.5 -> 8.9 ms).
  const int64_t parts = by_k          ? 1
                        : slices == 1 ? CP
                        : g.K < g.C   ? std::min(CP, pieces(slices * g.groups * taps, CP))
                                      : 1;
  // Output-channel pieces no reduction crosses, as many as share the tasks evenly (3 slices
  // in 3 pieces had left 5 tasks on one thread and 4 on the other).
  const int64_t base = slices * g.groups * taps * parts;
  const int64_t blocks = by_k ? std::min(KB, (Kg + kWgradKBlock - 1) / kWgradKBlock) : 1;
  const int64_t split =
      even_blocks(std::max(pieces(base, KB), blocks), KB + 1, [&](int64_t s) { return base * s; });
  const Workspace<T> partial(Slot::kPartials, slices > 1 ? slices * numel : 0);
  T* out = slices > 1 ? partial.data() : a.gw;
  at::parallel_for(
      0, base * split, grain_for(g.macs() / (base * split)), [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          const int64_t piece = t % split, part = (t / split) % parts;
          const int64_t tap = (t / (split * parts)) % taps, rest = t / (split * parts * taps);
          const int64_t grp = rest % g.groups, sl = rest / g.groups;
          const int64_t k0 = piece * KB / split * kDenseMR;
          const int64_t k1 = std::min(Kg, (piece + 1) * KB / split * kDenseMR);
          if (k0 < k1)
            kt.dense.nhwc_grad_weight_tile(g, a.x, a.gy, out + sl * numel, grp, tap,
                                           part * CP / parts, (part + 1) * CP / parts, k0, k1,
                                           sl * positions / slices, (sl + 1) * positions / slices);
        }
      });
  if (slices > 1)
    sum_chunks_in_order(numel, slices, numel, partial.data(), a.gw, [](int64_t i) { return i; });
}

}  // namespace

template <typename T>
void forward(const ConvGeometry& g, const ForwardArgs<T>& a) {
  if (a.y_layout == Layout::kNhwc) return forward_nhwc(g, a);
  const auto& kt = kernels<T>();
  const int64_t Kg = g.K_per_group(), CRS = g.C_per_group() * g.R * g.S;
  const ForwardTiles tiles = forward_tiles(g, 2 * kt.vec, at::get_num_threads());
  at::parallel_for(0, tiles.count, grain_for(std::min(tiles.k_tile, Kg) * kPositionTile * CRS),
                   [&](int64_t b, int64_t e) {
                     for (int64_t t = b; t < e; ++t) {
                       int64_t grp, k0, k1, j0, j1;
                       tiles.at(t, Kg, g.N, &grp, &k0, &k1, &j0, &j1);
                       kt.dense.forward_tile(g, a.x, a.w + grp * Kg * CRS,
                                             a.bias ? a.bias + grp * Kg : nullptr, a.y, grp, k0, k1,
                                             j0, j1);
                     }
                   });
}

template <typename T>
void grad_weight(const ConvGeometry& g, const GradWeightArgs<T>& a) {
  if (a.gy_layout == Layout::kNhwc) return grad_weight_nhwc(g, a);
  const auto& kt = kernels<T>().dense;
  const int64_t Kg = g.K_per_group(), CRS = g.C_per_group() * g.R * g.S, PQ = g.P * g.Q;
  const int64_t k_tile = 128, j_tile = 22 * kDenseMR, nr = 2 * kernels<T>().vec;
  const int64_t k_tiles = (Kg + k_tile - 1) / k_tile, j_tiles = (CRS + j_tile - 1) / j_tile;
  const int64_t tiles = g.groups * k_tiles * j_tiles;
  // Tiles of even sizes (whole micro-tiles), so that tasks are equal shares of the work: 576
  // rows in tiles of 132 had left a last one of 48, and 8 images in 3 slices one of 2.
  const int64_t j_units = (CRS + kDenseMR - 1) / kDenseMR, k_units = (Kg + nr - 1) / nr;
  // Few weight tiles (small weights, e.g. a stem): also split the sum over images into a
  // fixed number of slices with their own partial weights, added in slice order -- as long
  // as each slice keeps a deep reduction (>= 512 positions), and the largest such number
  // that divides the batch (equal slices). All of it depends on the problem alone, so the
  // result does not depend on the thread count.
  int64_t slices =
      tiles >= 16 ? 1 : std::clamp<int64_t>(g.N * PQ / 512, 1, std::min<int64_t>(g.N, 8));
  while (g.N % slices) --slices;
  const int64_t per_slice = (g.N + slices - 1) / slices, numel = g.weight_numel();
  const Workspace<T> partial(Slot::kPartials, slices > 1 ? slices * numel : 0);
  T* out = slices > 1 ? partial.data() : a.gw;
  at::parallel_for(
      0, tiles * slices, grain_for(k_tile * j_tile * PQ * per_slice), [&](int64_t b, int64_t e) {
        for (int64_t it = b; it < e; ++it) {
          const int64_t sl = it / tiles, t = it % tiles;
          const int64_t jt = t % j_tiles, kt_i = (t / j_tiles) % k_tiles,
                        grp = t / (j_tiles * k_tiles);
          const int64_t k0 = kt_i * k_units / k_tiles * nr;
          const int64_t k1 = std::min(Kg, (kt_i + 1) * k_units / k_tiles * nr);
          const int64_t j0 = jt * j_units / j_tiles * kDenseMR;
          const int64_t j1 = std::min(CRS, (jt + 1) * j_units / j_tiles * kDenseMR);
          kt.grad_weight_tile(g, a.x, a.gy, out + sl * numel + grp * Kg * CRS, grp, k0, k1, j0, j1,
                              sl * per_slice, std::min(g.N, (sl + 1) * per_slice));
        }
      });
  if (slices > 1)
    sum_chunks_in_order(numel, slices, numel, partial.data(), a.gw, [](int64_t i) { return i; });
}

namespace {

// A strided 1x1 layer without padding: gx is zero off the strided grid, and on it the
// forward of a stride-1 1x1 layer on gy with the transposed weight. That forward runs on
// the GEMM tiles into a scratch [N][C][P][Q], spread over gx plane by plane. (The col2im
// tasks below run 8-row GEMMs, 6 + 2 rows of micro-tiles, and scatter every value with
// stride: 256x56^2 -> 512, stride 2, batch 8 ran at a third of the forward's speed.)
template <typename T>
void strided_pointwise_grad_input(const ConvGeometry& g, const GradInputArgs<T>& a) {
  ConvGeometry on_grid = dgrad_as_forward(g);
  on_grid.H = on_grid.P = g.P;
  on_grid.W = on_grid.Q = g.Q;
  on_grid.stride_h = on_grid.stride_w = 1;
  const Workspace<T> wf = flip_transpose_weight(g, a.w, a.w_layout == Layout::kNhwc);
  const Workspace<T> z(Slot::kSpread, on_grid.output_numel());
  forward(on_grid, ForwardArgs<T>{a.gy, wf.data(), nullptr, z.data()});
  const int64_t PQ = g.P * g.Q;
  at::parallel_for(0, g.N * g.C, grain_for(g.H * g.W), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T* plane = a.gx + i * g.H * g.W;
      std::fill_n(plane, g.H * g.W, T(0));
      for (int64_t p = 0; p < g.P; ++p) {
        T* row = plane + p * g.stride_h * g.W;
        const T* src = z.data() + i * PQ + p * g.Q;
        for (int64_t q = 0; q < g.Q; ++q) row[q * g.stride_w] = src[q];
      }
    }
  });
}

}  // namespace

template <typename T>
void grad_input(const ConvGeometry& g, const GradInputArgs<T>& a) {
  if (a.gx_layout == Layout::kNhwc) return grad_input_nhwc(g, a);
  if (g.unit_stride()) return grad_input_as_forward(g, a, &forward<T>);
  if (g.pointwise_unpadded()) return strided_pointwise_grad_input(g, a);
  const auto& kt = kernels<T>().dense;
  const int64_t Cg = g.C_per_group();
  // Tasks own disjoint input channels (zeroed by the task), so col2im never races. A task
  // transposes its slice of the weight once and runs it over a chunk of images: the chunks
  // are as large as keeping every thread busy allows.
  const int64_t c_tile = std::max<int64_t>(1, std::min<int64_t>(Cg, 8));
  const int64_t c_tiles = (Cg + c_tile - 1) / c_tile, slabs = g.groups * c_tiles;
  const int64_t chunks = std::min(g.N, (4 * at::get_num_threads() + slabs - 1) / slabs);
  at::parallel_for(0, slabs * chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t ch = t % chunks, ct = (t / chunks) % c_tiles, grp = t / (chunks * c_tiles);
      kt.grad_input_tile(g, a.gy, a.w, a.gx, grp, ct * c_tile, std::min(Cg, (ct + 1) * c_tile),
                         ch * g.N / chunks, (ch + 1) * g.N / chunks);
    }
  });
}

FASTCONV_INSTANTIATE_FAMILY_PASSES()

}  // namespace dense
}  // namespace fastconv
