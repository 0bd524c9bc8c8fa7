// ConvGeometry: the sizes of one 2-D cross-correlation and the index math shared by the
// CPU and CUDA kernels. Plain data, __host__ __device__, every size int64_t so that
// products such as N*K*P*Q never overflow on large tensors.
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

// Output length of one spatial dimension; <= 0 means the kernel does not fit.
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
  // Input channel seen by output channel k in the one-channel-per-group family.
  FC_HD int64_t channel_of(int64_t k) const { return k / K_per_group(); }
  FC_HD bool one_channel_per_group() const { return C_per_group() == 1; }

  FC_HD int64_t in_row(int64_t p, int64_t r) const { return p * stride_h - pad_h + r * dil_h; }
  FC_HD int64_t in_col(int64_t q, int64_t s) const { return q * stride_w - pad_w + s * dil_w; }

  FC_HD int64_t input_numel() const { return N * C * H * W; }
  FC_HD int64_t output_numel() const { return N * K * P * Q; }
  FC_HD int64_t weight_numel() const { return K * C_per_group() * R * S; }
  // Multiply-accumulates of one forward pass; FLOPs are twice this.
  FC_HD int64_t macs() const { return N * K * P * Q * C_per_group() * R * S; }
};

}  // namespace fastconv
