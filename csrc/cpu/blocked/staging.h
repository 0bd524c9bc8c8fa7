// Staged blocks of the channel-blocked kernels (kernels.h): V channels of one image as a
// zero-bordered [row][col][V] buffer, filled from NCHW planes through V x V register
// transposes or from channels_last memory with one vector load per position.
// Included by the per-ISA translation units after vec.h.
#pragma once

#include <algorithm>

namespace fastconv {
namespace FC_ISA {

// A staged block: Hb x Wb positions of V channels; position (b, j) holds plane element
// (b - top, j - left), zero outside the H x W plane.
struct BlockFrame {
  int64_t Hb, Wb, top, left;
  // Plane columns that land in the buffer: [lo, hi), possibly empty.
  int64_t col_lo() const { return std::max<int64_t>(0, -left); }
  int64_t col_hi(int64_t W) const { return std::min(W, Wb - left); }
};

// The input positions a layer's output rows [p0, p1) read (all of them by default), staged
// with its zero padding: every tap of every such output lands inside.
inline BlockFrame input_frame(const ConvGeometry& g, int64_t p0 = 0, int64_t p1 = -1) {
  if (p1 < 0) p1 = g.P;
  return {(p1 - p0 - 1) * g.stride_h + (g.R - 1) * g.dil_h + 1,
          (g.Q - 1) * g.stride_w + (g.S - 1) * g.dil_w + 1, g.pad_h - p0 * g.stride_h, g.pad_w};
}

// Fills a staged block row by row: zero rows and borders outside the H x W plane, and
// fill(row, ih, lo, hi) for the plane columns [lo, hi) of input row ih (position iw at
// row + (iw + left) * V).
template <typename T, typename Fill>
void stage_rows_of(const BlockFrame& f, int64_t H, int64_t W, T* buf, Fill&& fill) {
  constexpr int V = Vec<T>::size;
  const int64_t lo = f.col_lo(), hi = f.col_hi(W);
  for (int64_t b = 0; b < f.Hb; ++b) {
    T* row = buf + b * f.Wb * V;
    const int64_t ih = b - f.top;
    if (ih < 0 || ih >= H || lo >= hi) {
      std::fill_n(row, f.Wb * V, T(0));
      continue;
    }
    std::fill_n(row, (lo + f.left) * V, T(0));
    std::fill(row + (hi + f.left) * V, row + f.Wb * V, T(0));
    fill(row + f.left * V, ih, lo, hi);
  }
}

// nc NCHW planes (plane stride `plane`) as a staged block, V positions at a time through
// register transposes.
template <typename T>
void stage_block(const T* src, int64_t plane, int nc, int64_t H, int64_t W, const BlockFrame& f,
                 T* buf) {
  constexpr int V = Vec<T>::size;
  stage_rows_of(f, H, W, buf, [&](T* row, int64_t ih, int64_t lo, int64_t hi) {
    for (int64_t iw = lo; iw < hi; iw += V) {
      const int cnt = static_cast<int>(std::min<int64_t>(V, hi - iw));
      vec_t<T> v[V];
      load_transposed(v, cnt, nc, src + ih * W + iw, plane);
#pragma GCC unroll 16
      for (int j = 0; j < V; ++j)
        if (j < cnt) storeu(row + (iw + j) * V, v[j]);
    }
  });
}

// Channels [c0, c0 + nc) of one image of the layer's input as a staged block: from NCHW
// planes through transposes, or from channels_last (NHWC) memory, where a staged position is
// one vector load -- no layout copy of a channels_last input at all.
template <typename T>
void stage_input(const ConvGeometry& g, const T* x, bool nhwc, int64_t c0, int nc,
                 const BlockFrame& f, T* buf) {
  constexpr int V = Vec<T>::size;
  if (!nhwc) return stage_block(x + c0 * g.H * g.W, g.H * g.W, nc, g.H, g.W, f, buf);
  stage_rows_of(f, g.H, g.W, buf, [&](T* row, int64_t ih, int64_t lo, int64_t hi) {
    const T* src = x + ih * g.W * g.C + c0;
    for (int64_t iw = lo; iw < hi; ++iw)
      storeu(row + iw * V, nc == V ? loadu(src + iw * g.C) : loadu_n(src + iw * g.C, nc));
  });
}

// One channels_last position's C values, read in order, as one vector per block of V
// channels: block b's vector at dst + b * stride (lanes past C zero).
template <typename T>
inline void scatter_position(const T* src, int64_t C, int64_t blocks, T* dst, int64_t stride) {
  constexpr int V = Vec<T>::size;
  for (int64_t blk = 0; blk + 1 < blocks; ++blk) storeu(dst + blk * stride, loadu(src + blk * V));
  const int last = static_cast<int>(C - (blocks - 1) * V);
  storeu(dst + (blocks - 1) * stride, load_lanes(src + (blocks - 1) * V, last));
}

// Every channel of one channels_last image as staged blocks [C / V][Hb][Wb][V] (frame f),
// position by position: a position's C values are read in order, one vector per block.
template <typename T>
void stage_nhwc_blocks(const ConvGeometry& g, const T* x, const BlockFrame& f, int64_t blocks,
                       T* buf) {
  constexpr int V = Vec<T>::size;
  const int64_t block = f.Hb * f.Wb * V, lo = f.col_lo(), hi = f.col_hi(g.W);
  for (int64_t blk = 0; blk < blocks; ++blk)  // the zero rows and borders of each block
    stage_rows_of(f, g.H, g.W, buf + blk * block, [](T*, int64_t, int64_t, int64_t) {});
  for (int64_t b = 0; b < f.Hb; ++b) {
    const int64_t ih = b - f.top;
    if (ih < 0 || ih >= g.H) continue;
    const T* src = x + ih * g.W * g.C;
    T* dst = buf + (b * f.Wb + f.left) * V;
    for (int64_t iw = lo; iw < hi; ++iw)
      scatter_position(src + iw * g.C, g.C, blocks, dst + iw * V, block);
  }
}

// `positions` channels_last grad_output positions, every channel, as blocks
// [K / V][positions][V], read position by position.
template <typename T>
void stage_nhwc_grad_output_blocks(const ConvGeometry& g, const T* gy, int64_t positions,
                                   int64_t blocks, T* gyb) {
  constexpr int V = Vec<T>::size;
  for (int64_t pq = 0; pq < positions; ++pq)
    scatter_position(gy + pq * g.K, g.K, blocks, gyb + pq * V, positions * V);
}

// grad_output's channels [c0, c0 + nc) of one image as an unpadded P x Q block (P*Q*V
// values), from NCHW planes or channels_last memory.
template <typename T>
void stage_grad_output(const ConvGeometry& g, const T* gy, bool nhwc, int64_t c0, int nc, T* gyb) {
  constexpr int V = Vec<T>::size;
  if (!nhwc)
    return stage_block(gy + c0 * g.P * g.Q, g.P * g.Q, nc, g.P, g.Q, BlockFrame{g.P, g.Q, 0, 0},
                       gyb);
  for (int64_t pq = 0; pq < g.P * g.Q; ++pq)
    storeu(gyb + pq * V, load_lanes(gy + pq * g.K + c0, nc));
}

// The inverse of stage_block: every element of the nc planes is written, zero where the
// buffer does not cover it. channels_last: dst points at channel c0 of position 0, rows of
// `channels` values (plane unused).
template <typename T>
void unstage_block(const T* buf, const BlockFrame& f, int nc, int64_t H, int64_t W, T* dst,
                   int64_t plane, bool nhwc, int64_t channels) {
  constexpr int V = Vec<T>::size;
  if (nhwc) {
    for (int64_t ih = 0; ih < H; ++ih)
      for (int64_t iw = 0; iw < W; ++iw) {
        const int64_t b = ih + f.top, j = iw + f.left;
        const bool covered = b >= 0 && b < f.Hb && j >= 0 && j < f.Wb;
        store_lanes(dst + (ih * W + iw) * channels,
                    covered ? loadu(buf + (b * f.Wb + j) * V) : vec_t<T>{}, nc);
      }
    return;
  }
  const int64_t lo = std::min(f.col_lo(), W), hi = std::max(lo, f.col_hi(W));
  for (int64_t ih = 0; ih < H; ++ih) {
    const int64_t b = ih + f.top;
    const bool covered = b >= 0 && b < f.Hb;
    for (int c = 0; c < nc; ++c) {
      T* d = dst + c * plane + ih * W;
      if (!covered) {
        std::fill_n(d, W, T(0));
        continue;
      }
      std::fill_n(d, lo, T(0));
      std::fill(d + hi, d + W, T(0));
    }
    if (!covered) continue;
    for (int64_t iw = lo; iw < hi; iw += V) {
      const int cnt = static_cast<int>(std::min<int64_t>(V, hi - iw));
      const T* src = buf + (b * f.Wb + iw + f.left) * V;
      vec_t<T> v[V];
#pragma GCC unroll 16
      for (int j = 0; j < V; ++j) v[j] = j < cnt ? loadu(src + j * V) : vec_t<T>{};
      store_transposed(v, cnt, nc, dst + ih * W + iw, plane);
    }
  }
}

// The V channels [c0, c0 + nc) of a [C][taps] array as [taps][V] vectors (zero lanes past
// nc).
template <typename T>
void block_taps(const T* w, int64_t taps, int64_t c0, int nc, T* out) {
  constexpr int V = Vec<T>::size;
  for (int64_t t = 0; t < taps; ++t)
    for (int c = 0; c < V; ++c) out[t * V + c] = c < nc ? w[(c0 + c) * taps + t] : T(0);
}

}  // namespace FC_ISA
}  // namespace fastconv
