// Direct kernels for the one-input-channel-per-group family: the textbook's single-channel
// images, per-channel filtering and depthwise layers (with any channel multiplier).
//
//   Fprop: y[p, q] = b + sum_{r, s} w[r, s] * x[p*sh - ph + r*dh, q*sw - pw + s*dw]
//   GEMM view: M = P*Q, N = 1, K = R*S -- far too thin for a GEMM, so we stay direct.
//
// Staging: the input rows a block of output rows needs are copied once into a small
// buffer, zero-extended left and right and split into stride_w phases
// (padded column c = iw + pw lives in phase c % sw at index c / sw). Then every tap of
// every output column reads a contiguous run: no bounds checks, no gathers, any stride or
// dilation, and the copy costs one pass over the rows against R*S FMAs per output.
// Rows above and below the image are skipped, not copied.
//
// Fprop keeps kTileVecs SIMD vectors of output columns in registers while the R x S window
// streams through: one load and one FMA per vector per tap.
// Dgrad with stride 1 is this same kernel on grad_output with the flipped kernel (the
// driver builds that geometry); strided dgrad scatters into a phase-split plane.
// Wgrad: gw[r, s] = sum_{p, q} gy[p, q] * x[ih, iw], vector dot products on staged rows.
// Included by the per-ISA translation units after vec.h.
#pragma once

#include <algorithm>
#include <memory>

namespace fastconv {
namespace FC_ISA {

constexpr int kTileVecs = 4;        // output vectors per register tile
constexpr int64_t kStageRows = 32;  // output rows per staged block

// Horizontally padded, phase-split copy of input rows [ih0, ih1).
template <typename T>
struct StagedRows {
  int64_t ih0 = 0, L = 0, row_stride = 0;
  std::unique_ptr<T[]> data;

  // Phase length: covers output columns [0, q_cols) for every tap.
  void stage(const ConvGeometry& g, const T* x, int64_t ih0_, int64_t ih1, int64_t q_cols) {
    ih0 = ih0_;
    L = q_cols + ((g.S - 1) * g.dil_w) / g.stride_w;
    row_stride = g.stride_w * L;
    const int64_t rows = std::max<int64_t>(0, ih1 - ih0), n = rows * row_stride;
    data.reset(new T[n > 0 ? n : 1]);
    std::fill_n(data.get(), n, T(0));
    const int64_t cmax = row_stride;  // padded columns past this are never read
    for (int64_t ih = ih0; ih < ih1; ++ih) {
      const T* src = x + ih * g.W;
      T* dst = data.get() + (ih - ih0) * row_stride;
      const int64_t iw_end = std::min(g.W, cmax - g.pad_w);
      const int64_t iw_begin = std::max<int64_t>(0, -g.pad_w);
      if (g.stride_w == 1) {
        for (int64_t iw = iw_begin; iw < iw_end; ++iw) dst[iw + g.pad_w] = src[iw];
      } else {  // phase by phase: strided reads, contiguous writes, no division per element
        for (int64_t ph = 0; ph < g.stride_w; ++ph) {
          T* d = dst + ph * L;
          for (int64_t i = 0; i < L; ++i) {
            const int64_t iw = i * g.stride_w + ph - g.pad_w;
            if (iw >= iw_begin && iw < iw_end) d[i] = src[iw];
          }
        }
      }
    }
  }
  // The run that tap s of output column 0 reads in input row ih.
  const T* tap(const ConvGeometry& g, int64_t ih, int64_t s) const {
    const int64_t c = s * g.dil_w;
    return data.get() + (ih - ih0) * row_stride + (c % g.stride_w) * L + c / g.stride_w;
  }
};

// Input rows touched by output rows [p0, p1), clipped to the image.
inline Range input_rows(const ConvGeometry& g, int64_t p0, int64_t p1) {
  const int64_t lo = std::max<int64_t>(0, g.in_row(p0, 0));
  const int64_t hi = std::min<int64_t>(g.H, g.in_row(p1 - 1, g.R - 1) + 1);
  return {lo, std::max(lo, hi)};
}

template <typename T, int U>
static inline void direct_fwd_tile(const ConvGeometry& g, const StagedRows<T>& st, const T* w,
                                   Range rr, int64_t p, int64_t q, T* out) {
  constexpr int V = Vec<T>::size;
  vec_t<T> acc[U];
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u) acc[u] = loadu(out + u * V);
  for (int64_t r = rr.lo; r < rr.hi; ++r) {
    const int64_t ih = g.in_row(p, r);
    const T* wr = w + r * g.S;
    for (int64_t s = 0; s < g.S; ++s) {
      const vec_t<T> wv = splat(wr[s]);
      const T* xs = st.tap(g, ih, s) + q;
#pragma GCC unroll 8
      for (int u = 0; u < U; ++u) acc[u] += wv * loadu(xs + u * V);
    }
  }
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u) storeu(out + u * V, acc[u]);
}

template <typename T>
void direct_fwd_rows(const ConvGeometry& g, const T* x, const T* w, T bias, T* y, int64_t p0,
                     int64_t p1, bool accumulate) {
  constexpr int V = Vec<T>::size;
  const int64_t Qr = (g.Q + V - 1) / V * V;  // whole vectors; the tail goes through `row`
  std::unique_ptr<T[]> row(new T[Qr]);
  StagedRows<T> st;
  for (int64_t b0 = p0; b0 < p1; b0 += kStageRows) {
    const int64_t b1 = std::min(p1, b0 + kStageRows);
    const Range ir = input_rows(g, b0, b1);
    st.stage(g, x, ir.lo, ir.hi, Qr);
    for (int64_t p = b0; p < b1; ++p) {
      T* yr = y + p * g.Q;
      // Kernel rows that land inside the image for this output row.
      const Range rr = valid_out_range(g.in_row(p, 0), g.dil_h, g.H, g.R);
      for (int64_t q = 0; q < g.Q; ++q) row[q] = accumulate ? yr[q] : bias;
      int64_t q = 0;
      for (; q + kTileVecs * V <= Qr; q += kTileVecs * V)
        direct_fwd_tile<T, kTileVecs>(g, st, w, rr, p, q, row.get() + q);
      for (; q < Qr; q += V) direct_fwd_tile<T, 1>(g, st, w, rr, p, q, row.get() + q);
      std::copy_n(row.get(), g.Q, yr);
    }
  }
}

template <typename T>
void direct_dgrad_plane(const ConvGeometry& g, const T* gy, const T* w, T* gx) {
  // Scatter into a phase-split copy of the padded plane (contiguous axpys for any stride),
  // then gather it back into gx.
  const int64_t L = g.Q + ((g.S - 1) * g.dil_w) / g.stride_w, row_stride = g.stride_w * L;
  std::unique_ptr<T[]> tmp(new T[g.H * row_stride]);
  std::fill_n(tmp.get(), g.H * row_stride, T(0));
  for (int64_t p = 0; p < g.P; ++p) {
    const T* gyr = gy + p * g.Q;
    const Range rr = valid_out_range(g.in_row(p, 0), g.dil_h, g.H, g.R);
    for (int64_t r = rr.lo; r < rr.hi; ++r) {
      T* trow = tmp.get() + g.in_row(p, r) * row_stride;
      for (int64_t s = 0; s < g.S; ++s) {
        const int64_t c = s * g.dil_w;
        T* __restrict d = trow + (c % g.stride_w) * L + c / g.stride_w;
        const T wv = w[r * g.S + s];
        for (int64_t q = 0; q < g.Q; ++q) d[q] += wv * gyr[q];
      }
    }
  }
  for (int64_t ih = 0; ih < g.H; ++ih) {
    const T* trow = tmp.get() + ih * row_stride;
    T* gxr = gx + ih * g.W;
    for (int64_t ph = 0; ph < g.stride_w; ++ph) {
      const T* t = trow + ph * L;
      for (int64_t i = 0; i < L; ++i) {
        const int64_t iw = i * g.stride_w + ph - g.pad_w;
        if (iw >= 0 && iw < g.W) gxr[iw] += t[i];
      }
    }
  }
}

template <typename T>
void direct_wgrad_rows(const ConvGeometry& g, const T* x, const T* gy, int64_t p0, int64_t p1,
                       T* acc) {
  constexpr int V = Vec<T>::size;
  const int64_t Qv = g.Q / V * V;
  StagedRows<T> st;
  for (int64_t b0 = p0; b0 < p1; b0 += kStageRows) {
    const int64_t b1 = std::min(p1, b0 + kStageRows);
    const Range ir = input_rows(g, b0, b1);
    st.stage(g, x, ir.lo, ir.hi, g.Q);
    for (int64_t r = 0; r < g.R; ++r) {
      for (int64_t s = 0; s < g.S; ++s) {
        vec_t<T> va{}, vb{};
        T tail = 0;
        for (int64_t p = b0; p < b1; ++p) {
          const int64_t ih = g.in_row(p, r);
          if (ih < 0 || ih >= g.H) continue;
          const T* xs = st.tap(g, ih, s);
          const T* gyr = gy + p * g.Q;
          int64_t q = 0;
          for (; q + 2 * V <= Qv; q += 2 * V) {
            va += loadu(xs + q) * loadu(gyr + q);
            vb += loadu(xs + q + V) * loadu(gyr + q + V);
          }
          for (; q < Qv; q += V) va += loadu(xs + q) * loadu(gyr + q);
          for (; q < g.Q; ++q) tail += xs[q] * gyr[q];
        }
        acc[r * g.S + s] += hsum<T>(va + vb) + tail;
      }
    }
  }
}

}  // namespace FC_ISA
}  // namespace fastconv
