// ConvGeometry: the sizes of one 2-D cross-correlation, the index math shared by the CPU
// and CUDA kernels, and every geometry derived from it (output size, grad-input as a
// forward pass, the phase split of dilated layers). Plain data, __host__ __device__, every
// size int64_t so that products such as N*K*P*Q never overflow on large tensors.
//
//   y[n, k, p, q] = b[k] + sum_{c, r, s} w[k, c, r, s] * x[n, g*C/G + c, ih, iw]
//   ih = p*stride_h - pad_h + r*dil_h,   iw = q*stride_w - pad_w + s*dil_w
//
// with x taken as zero outside [0, H) x [0, W) (cutlass letters: N C H W in, K R S weight,
// P Q out).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define FC_HD __host__ __device__ __forceinline__
#else
#define FC_HD inline
#endif

namespace fastconv {

// Output length of one spatial dimension; 0 means the kernel does not fit. The same
// formula as fastconv/shapes.py (the fake kernels and the benchmarks).
FC_HD int64_t conv_out_size(int64_t in, int64_t kernel, int64_t pad, int64_t stride, int64_t dil) {
  const int64_t span = dil * (kernel - 1) + 1;
  const int64_t padded = in + 2 * pad;
  return padded < span ? 0 : (padded - span) / stride + 1;
}

// Floor and ceiling division that are right for negative numerators too.
FC_HD int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (q * b != a && ((a < 0) != (b < 0))) ? q - 1 : q;
}
FC_HD int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

// The output range [lo, hi) of q whose input column q*stride + offset lies in [0, in).
// Splits a row into its interior (no bounds checks) and its borders.
struct Range {
  int64_t lo, hi;
};
FC_HD Range valid_out_range(int64_t offset, int64_t stride, int64_t in, int64_t out) {
  int64_t lo = ceil_div(-offset, stride);
  int64_t hi = floor_div(in - 1 - offset, stride) + 1;
  lo = lo < 0 ? 0 : lo;
  hi = hi > out ? out : hi;
  return {lo, hi < lo ? lo : hi};
}

struct ConvGeometry {
  int64_t N, C, H, W;  // input
  int64_t K, R, S;     // weight: K x C/groups x R x S
  int64_t P, Q;        // output
  int64_t pad_h, pad_w, stride_h, stride_w, dil_h, dil_w;
  int64_t groups;

  FC_HD int64_t C_per_group() const { return C / groups; }
  FC_HD int64_t K_per_group() const { return K / groups; }
  FC_HD bool one_channel_per_group() const { return C_per_group() == 1; }
  FC_HD bool unit_stride() const { return stride_h == 1 && stride_w == 1; }

  // A 1x1 layer without padding, any stride: output position (p, q) reads input position
  // (p*stride_h, q*stride_w), and its grad-input is zero off that grid.
  FC_HD bool pointwise_unpadded() const { return R == 1 && S == 1 && pad_h == 0 && pad_w == 0; }
  // Such a layer whose output position m reads input position m (stride 1, or a size-1
  // map): its input's rows are its GEMM operand as they are.
  FC_HD bool pointwise_in_place() const { return pointwise_unpadded() && P == H && Q == W; }

  FC_HD int64_t in_row(int64_t p, int64_t r) const { return p * stride_h - pad_h + r * dil_h; }
  FC_HD int64_t in_col(int64_t q, int64_t s) const { return q * stride_w - pad_w + s * dil_w; }

  // Output columns every tap of which lies inside the input's width (they read no padding).
  FC_HD Range interior_cols() const {
    return valid_out_range(-pad_w, stride_w, W - (S - 1) * dil_w, Q);
  }

  FC_HD int64_t input_numel() const { return N * C * H * W; }
  FC_HD int64_t output_numel() const { return N * K * P * Q; }
  FC_HD int64_t weight_numel() const { return K * C_per_group() * R * S; }
  // Multiply-accumulates of one forward pass; FLOPs are twice this.
  FC_HD int64_t macs() const { return N * K * P * Q * C_per_group() * R * S; }

  // The taps of a strided grad-input that reach input row h at the columns phase + m *
  // stride_w (columns of one phase share their taps: w + pad_w - s*dil_w must be a multiple
  // of stride_w, h + pad_h - r*dil_h one of stride_h). taps[2i] = r*S + s, taps[2i + 1] =
  // the grad_output row it reads; returns how many (at most R*S).
  FC_HD int64_t dgrad_taps(int64_t h, int64_t phase, int64_t* taps) const {
    int64_t n = 0;
    for (int64_t r = 0; r < R; ++r) {
      const int64_t hr = h + pad_h - r * dil_h;
      if (hr < 0 || hr % stride_h || hr / stride_h >= P) continue;
      for (int64_t s = 0; s < S; ++s) {
        const int64_t ws = phase + pad_w - s * dil_w;
        if (((ws % stride_w) + stride_w) % stride_w) continue;
        taps[2 * n] = r * S + s, taps[2 * n + 1] = hr / stride_h;
        ++n;
      }
    }
    return n;
  }

  // P and Q from the other fields.
  FC_HD void set_output_size() {
    P = conv_out_size(H, R, pad_h, stride_h, dil_h);
    Q = conv_out_size(W, S, pad_w, stride_w, dil_w);
  }
};

// Grad-input of a stride-1 layer as a forward pass: correlate grad_output with the
// flipped, transposed weight (w'[g][c][k][R-1-r][S-1-s] = w[g][k][c][r][s]); the padding
// becomes dil*(R-1) - pad (negative values crop).
FC_HD ConvGeometry dgrad_as_forward(const ConvGeometry& g) {
  ConvGeometry t = g;
  t.C = g.K;
  t.H = g.P;
  t.W = g.Q;
  t.K = g.C;
  t.P = g.H;
  t.Q = g.W;
  t.pad_h = g.dil_h * (g.R - 1) - g.pad_h;
  t.pad_w = g.dil_w * (g.S - 1) - g.pad_w;
  return t;
}

// A dilated "same" layer (dilation d in both directions, padding d, stride 1, a 3x3
// kernel, so P = H and Q = W) is d*d independent undilated layers with padding 1: output
// phase (a, b) -- rows a mod d, columns b mod d -- reads only input phase (a, b). The
// phases that hold an output (a < min(d, P), b < min(d, Q)) go into the batch dimension,
// [N, C, H, W] -> [da*db*N, C, ceil(H/d), ceil(W/d)] with phase (a, b) of image n at batch
// index (a*db + b)*N + n, so one call covers them all, and the split tensors stay within
// four times the input's and output's sizes however large d is.
FC_HD bool has_dilated_phases(const ConvGeometry& g) {
  const int64_t d = g.dil_h;
  return d >= 2 && g.dil_w == d && g.pad_h == d && g.pad_w == d && g.unit_stride() && g.R == 3 &&
         g.S == 3;
}
FC_HD int64_t phase_rows(const ConvGeometry& g) { return g.dil_h < g.P ? g.dil_h : g.P; }
FC_HD int64_t phase_cols(const ConvGeometry& g) { return g.dil_w < g.Q ? g.dil_w : g.Q; }
FC_HD ConvGeometry dilated_phases(const ConvGeometry& g) {
  const int64_t d = g.dil_h;
  ConvGeometry t = g;
  t.N = g.N * phase_rows(g) * phase_cols(g);
  t.H = t.P = (g.H + d - 1) / d;
  t.W = t.Q = (g.W + d - 1) / d;
  t.pad_h = t.pad_w = 1;
  t.dil_h = t.dil_w = 1;
  return t;
}

}  // namespace fastconv
