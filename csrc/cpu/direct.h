// Direct kernels for the one-input-channel-per-group family: the textbook's single-channel
// images, per-channel filtering and depthwise layers (with any channel multiplier).
//
//   Fprop: y[p, q] = b + sum_{r, s} w[r, s] * x[p*sh - ph + r*dh, q*sw - pw + s*dw]
//   GEMM view: M = P*Q, N = 1, K = R*S -- far too thin for a GEMM, so we stay direct:
//   a tile of kTileVecs SIMD vectors of output columns lives in registers while the whole
//   R x S window streams through (one load + one FMA per vector per tap). Columns whose
//   window leaves the image (the border) take a bounds-checked scalar path, so no padded
//   copy of the input is ever made.
//   Dgrad with stride 1 is this same kernel on grad_output with the flipped kernel (the
//   driver builds that geometry); strided dgrad scatters row by row.
//   Wgrad: gw[r, s] = sum_{p, q} gy[p, q] * x[ih, iw], a dot product per tap.
// Included by the per-ISA translation units after vec.h.
#pragma once

namespace fastconv {
namespace FC_ISA {

constexpr int kTileVecs = 4;  // output vectors per register tile (4 x 16 floats on AVX-512)

template <typename T>
static T direct_fwd_point(const ConvGeometry& g, const T* x, const T* w, T acc, int64_t p,
                          int64_t q) {
  for (int64_t r = 0; r < g.R; ++r) {
    const int64_t ih = g.in_row(p, r);
    if (ih < 0 || ih >= g.H) continue;
    const T* xr = x + ih * g.W;
    for (int64_t s = 0; s < g.S; ++s) {
      const int64_t iw = g.in_col(q, s);
      if (iw >= 0 && iw < g.W) acc += w[r * g.S + s] * xr[iw];
    }
  }
  return acc;
}

// Stride-1 interior columns [q, q + U*V) of output row p, all taps in bounds horizontally.
template <typename T, int U>
static inline void direct_fwd_tile(const ConvGeometry& g, const T* x, const T* w, int64_t rlo,
                                   int64_t rhi, int64_t p, int64_t q, T* yq, bool accumulate,
                                   T bias) {
  constexpr int V = Vec<T>::size;
  vec_t<T> acc[U];
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u) acc[u] = accumulate ? loadu(yq + u * V) : splat(bias);
  for (int64_t r = rlo; r < rhi; ++r) {
    const T* xr = x + g.in_row(p, r) * g.W + (q - g.pad_w);
    const T* wr = w + r * g.S;
    for (int64_t s = 0; s < g.S; ++s) {
      const vec_t<T> wv = splat(wr[s]);
      const T* xs = xr + s * g.dil_w;
#pragma GCC unroll 8
      for (int u = 0; u < U; ++u) acc[u] += wv * loadu(xs + u * V);
    }
  }
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u) storeu(yq + u * V, acc[u]);
}

template <typename T>
void direct_fwd_rows(const ConvGeometry& g, const T* x, const T* w, T bias, T* y, int64_t p0,
                     int64_t p1, bool accumulate) {
  constexpr int V = Vec<T>::size;
  // Columns whose whole window lies inside the row: q*sw - pw >= 0 and
  // q*sw - pw + (S-1)*dw <= W-1.
  int64_t qlo = ceil_div(g.pad_w, g.stride_w);
  int64_t qhi = floor_div(g.W - 1 + g.pad_w - (g.S - 1) * g.dil_w, g.stride_w) + 1;
  qlo = qlo < 0 ? 0 : (qlo > g.Q ? g.Q : qlo);
  qhi = qhi > g.Q ? g.Q : (qhi < qlo ? qlo : qhi);

  for (int64_t p = p0; p < p1; ++p) {
    T* yr = y + p * g.Q;
    // Kernel rows that land inside the image for this output row.
    const Range rr = valid_out_range(g.in_row(p, 0), g.dil_h, g.H, g.R);
    int64_t q = 0;
    for (; q < qlo; ++q) yr[q] = direct_fwd_point(g, x, w, accumulate ? yr[q] : bias, p, q);
    if (g.stride_w == 1) {
      for (; q + kTileVecs * V <= qhi; q += kTileVecs * V)
        direct_fwd_tile<T, kTileVecs>(g, x, w, rr.lo, rr.hi, p, q, yr + q, accumulate, bias);
      for (; q + V <= qhi; q += V)
        direct_fwd_tile<T, 1>(g, x, w, rr.lo, rr.hi, p, q, yr + q, accumulate, bias);
    } else {
      // Strided interior: accumulate tap by tap into the output row (no bounds checks).
      for (int64_t qq = q; qq < qhi; ++qq) yr[qq] = accumulate ? yr[qq] : bias;
      for (int64_t r = rr.lo; r < rr.hi; ++r) {
        const T* xr = x + g.in_row(p, r) * g.W;
        for (int64_t s = 0; s < g.S; ++s) {
          const T wv = w[r * g.S + s];
          const T* xs = xr + s * g.dil_w - g.pad_w;
          for (int64_t qq = q; qq < qhi; ++qq) yr[qq] += wv * xs[qq * g.stride_w];
        }
      }
      q = qhi;
    }
    for (; q < g.Q; ++q) yr[q] = direct_fwd_point(g, x, w, accumulate ? yr[q] : bias, p, q);
  }
}

template <typename T>
void direct_dgrad_plane(const ConvGeometry& g, const T* gy, const T* w, T* gx) {
  for (int64_t p = 0; p < g.P; ++p) {
    const T* gyr = gy + p * g.Q;
    for (int64_t r = 0; r < g.R; ++r) {
      const int64_t ih = g.in_row(p, r);
      if (ih < 0 || ih >= g.H) continue;
      T* gxr = gx + ih * g.W;
      for (int64_t s = 0; s < g.S; ++s) {
        const T wv = w[r * g.S + s];
        const int64_t off = s * g.dil_w - g.pad_w;
        const Range qr = valid_out_range(off, g.stride_w, g.W, g.Q);
        T* dst = gxr + off;
        for (int64_t q = qr.lo; q < qr.hi; ++q) dst[q * g.stride_w] += wv * gyr[q];
      }
    }
  }
}

template <typename T>
void direct_wgrad_rows(const ConvGeometry& g, const T* x, const T* gy, int64_t p0, int64_t p1,
                       T* acc) {
  for (int64_t r = 0; r < g.R; ++r) {
    for (int64_t s = 0; s < g.S; ++s) {
      const int64_t off = s * g.dil_w - g.pad_w;
      const Range qr = valid_out_range(off, g.stride_w, g.W, g.Q);
      T total = 0;
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t ih = g.in_row(p, r);
        if (ih < 0 || ih >= g.H || qr.hi <= qr.lo) continue;
        const T* xr = x + ih * g.W + off;
        const T* gyr = gy + p * g.Q;
        if (g.stride_w == 1) {
          total += dot(xr + qr.lo, gyr + qr.lo, qr.hi - qr.lo);
        } else {
          T part = 0;
          for (int64_t q = qr.lo; q < qr.hi; ++q) part += xr[q * g.stride_w] * gyr[q];
          total += part;
        }
      }
      acc[r * g.S + s] += total;
    }
  }
}

}  // namespace FC_ISA
}  // namespace fastconv
