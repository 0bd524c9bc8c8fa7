// The single-threaded CPU kernels, compiled once per instruction set (AVX-512, AVX2, and a
// portable baseline) and picked at run time. The driver (conv2d.cpp) owns threading, layout
// and dtype; these functions only see raw pointers into contiguous NCHW tensors.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../conv_geometry.h"

namespace fastconv {

// Whether kernels for `isa` ("avx512", "avx2", "base") may be picked. FASTCONV_CPU_ISA=avx2
// or base caps the run-time choice (never raises it past what the CPU has), so the narrower
// builds are tested on a machine with AVX-512. Read once (conv2d.cpp).
bool cpu_isa_allowed(const char* isa);

// At least `bytes` of page-aligned memory, released with std::free; throws std::bad_alloc.
// Page alignment, not 64 bytes: where a buffer sits relative to the cache sets must not
// depend on the heap's history (one Winograd layer ran 3.5 or 6.2 ms depending on what the
// process had allocated before). Shared by the driver's and the kernels' scratch.
void* page_aligned_alloc(size_t bytes);

template <typename T>
struct KernelTable {
  const char* isa;

  // --- direct family: one input channel per group (images, depthwise) -----------------
  // y[p, :] = bias + correlation of one input plane x with one R x S kernel w, for output
  // rows [p0, p1); accumulate adds to y instead of starting from bias.
  void (*direct_fwd_rows)(const ConvGeometry& g, const T* x, const T* w, T bias, T* y, int64_t p0,
                          int64_t p1, bool accumulate);
  // gx += transposed correlation of one grad_output plane with w (any stride).
  void (*direct_dgrad_plane)(const ConvGeometry& g, const T* gy, const T* w, T* gx);
  // acc[r*S + s] += sum over output rows [p0, p1) of gy * shifted x, in a fixed order.
  void (*direct_wgrad_rows)(const ConvGeometry& g, const T* x, const T* gy, int64_t p0, int64_t p1,
                            T* acc);

  // --- blocked family: depthwise layers (groups == C == K), one SIMD vector of channels -----
  int block;  // channels per call (the vector width)
  // Channels [c0, c0 + block) of one image; x/y/gy/gx point at the image, w at the whole
  // [C][R*S] weight, bias at [C] or null. x may be channels_last (x_nhwc); the rest NCHW.
  void (*blocked_fwd)(const ConvGeometry& g, const T* x, bool x_nhwc, const T* w, const T* bias,
                      T* y, int64_t c0);
  // Grad-input of any stride (the driver runs stride 1 as blocked_fwd).
  void (*blocked_dgrad)(const ConvGeometry& g, const T* gy, const T* w, T* gx, int64_t c0);
  // This image's grad-weight for the block: partial[r*S + s][block].
  void (*blocked_wgrad)(const ConvGeometry& g, const T* x, bool x_nhwc, const T* gy, T* partial,
                        int64_t c0);

  // --- dense family: implicit GEMM on packed tiles ---------------------------------------
  // Output channels [k0, k1) (k0 a multiple of MR) of group grp x positions [j0, j1) of the
  // whole batch (j = n*P*Q + p*Q + q; a tile may span images): y = bias + W * im2col(x).
  // The weight is read in place (packing it cost more than it saved, measured).
  void (*dense_fwd_tile)(const ConvGeometry& g, const T* x, const T* w_group, const T* bias_group,
                         T* y, int64_t grp, int64_t k0, int64_t k1, int64_t j0, int64_t j1);
  // gw[k0:k1, j0:j1] (row stride C/G*R*S, group grp) += sum over images [n0, n1) of
  // grad_output * im2col(x)^T, in a fixed order.
  void (*dense_wgrad_tile)(const ConvGeometry& g, const T* x, const T* gy, T* gw_group, int64_t grp,
                           int64_t k0, int64_t k1, int64_t j0, int64_t j1, int64_t n0, int64_t n1);
  // gx[images n0:n1, channels c0:c1 of group grp] = col2im(W^T * gy): the strided
  // grad-input.
  void (*dense_dgrad_tile)(const ConvGeometry& g, const T* gy, const T* w, T* gx, int64_t grp,
                           int64_t c0, int64_t c1, int64_t n0, int64_t n1);

  // --- Winograd F(2x2, 3x3): dense 3x3 stride-1 layers, groups 1 ---------------------------
  // Buffers hold 16 planes, one per transformed position xi; each plane is padded by
  // kWinoPad elements (see below), e.g. the packed weight has planes of
  // round_up(K, MR) * C + kWinoPad values.
  // Transformed weight of output channels [m0, m1) into the [16][round_up(K, MR)][C]
  // matrix (rows past K are never read).
  void (*winograd_pack_weight)(const ConvGeometry& g, const T* w, T* packed, int64_t m0,
                               int64_t m1);
  // Output tiles [t0, t1) of the whole batch (2x2 each, image by image, row by row).
  void (*winograd_fwd_tile)(const ConvGeometry& g, const T* x, const T* packed_u, const T* bias,
                            T* y, int64_t t0, int64_t t1);
  // Grad-weight: du[16][C * K + kWinoPad] = transformed products over every tile for input
  // channels [c0, c1); then gw (K x C x 3 x 3) for input channels [c0, c1) from the finished du.
  void (*winograd_wgrad_block)(const ConvGeometry& g, const T* x, const T* gy, int64_t c0,
                               int64_t c1, T* du);
  void (*winograd_wgrad_finish)(const ConvGeometry& g, const T* du, T* gw, int64_t c0, int64_t c1);

  // --- reductions ------------------------------------------------------------------------
  T (*sum)(const T* a, int64_t n);
};

// Register-tile shape of the dense micro-kernel, per ISA (see dense.h).
constexpr int kDenseMR = 6;
// Padding of each of the 16 planes of a Winograd buffer: planes a power of two apart (32 KB
// for 256 channels x 32 tiles) put all 16 accesses of one tile in one cache set; ResNet-18's
// 256x14^2 layer ran 4.0 or 6.2 ms depending on where the buffers landed.
constexpr int64_t kWinoPad = 16;

template <typename T>
const KernelTable<T>& kernels();  // the best table this CPU can run

namespace avx512 {
template <typename T>
const KernelTable<T>* table();  // nullptr where not compiled
}
namespace avx2 {
template <typename T>
const KernelTable<T>* table();
}
namespace base {
template <typename T>
const KernelTable<T>* table();
}

}  // namespace fastconv
