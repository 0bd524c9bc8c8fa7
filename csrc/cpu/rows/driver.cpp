// Threads of the rows family: one plane-by-plane correlation per (output channel, input
// channel of its group), tasks over output rows. Used for one-channel-per-group layers and
// grouped layers with few channels per group, where an implicit GEMM would pack an im2col
// slice for only a handful of output rows.
#include "rows.h"

#include <algorithm>

#include "../runtime/parallel.h"
#include "../runtime/workspace.h"
#include "../simd/kernel_table.h"
#include "../flipped_weight.h"

namespace fastconv {
namespace rows {

template <typename T>
void forward(const ConvGeometry& g, const ForwardArgs<T>& a) {
  const auto& kt = kernels<T>().rows;
  const int64_t rows = g.N * g.K * g.P, HW = g.H * g.W, PQ = g.P * g.Q, Cg = g.C_per_group();
  const int64_t RS = g.R * g.S;
  at::parallel_for(0, rows, grain_for(g.Q * RS * Cg), [&](int64_t b, int64_t e) {
    while (b < e) {
      const int64_t plane = b / g.P, p0 = b % g.P, p1 = std::min(g.P, p0 + (e - b));
      const int64_t n = plane / g.K, k = plane % g.K, c0 = (k / g.K_per_group()) * Cg;
      for (int64_t c = 0; c < Cg; ++c)
        kt.forward(g, a.x + (n * g.C + c0 + c) * HW, a.w + (k * Cg + c) * RS,
                   a.bias ? a.bias[k] : T(0), a.y + plane * PQ, p0, p1, c > 0);
      b += p1 - p0;
    }
  });
}

// Stride 1 is a forward pass with the flipped, transposed weight; strided layers scatter
// each grad_output plane into the input planes it came from. Tasks own whole rows or planes
// of grad_input, so no two threads write the same element.
template <typename T>
void grad_input(const ConvGeometry& g, const GradInputArgs<T>& a) {
  if (g.unit_stride()) return grad_input_as_forward(g, a, &forward<T>);
  const auto& kt = kernels<T>().rows;
  const int64_t Kg = g.K_per_group(), Cg = g.C_per_group(), RS = g.R * g.S;
  const int64_t HW = g.H * g.W, PQ = g.P * g.Q;
  at::parallel_for(0, g.N * g.C, grain_for(Kg * PQ * RS), [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) {
      const int64_t n = plane / g.C, c = plane % g.C, k0 = (c / Cg) * Kg;
      std::fill_n(a.gx + plane * HW, HW, T(0));
      for (int64_t k = k0; k < k0 + Kg; ++k)
        kt.grad_input_plane(g, a.gy + (n * g.K + k) * PQ, a.w + (k * Cg + c % Cg) * RS,
                            a.gx + plane * HW);
    }
  });
}

namespace {

// Row chunk of the grad-weight reduction: fixed by the problem size alone. At least 4
// kernel heights of rows, so that most input rows of a chunk take the row-reuse kernel
// (whose rows need all R grad_output partners in the chunk).
int64_t wgrad_chunk_rows(const ConvGeometry& g) {
  const int64_t by_size = (int64_t{1} << 14) / std::max<int64_t>(1, g.Q);
  return std::max<int64_t>({1, by_size, 4 * g.R});
}

// gw[k][c][rs] = sum over chunks of partial[k][chunk][c][rs], in chunk order.
template <typename T>
void sum_wgrad_chunks(const ConvGeometry& g, int64_t chunks, const T* partial, T* gw) {
  const int64_t width = g.C_per_group() * g.R * g.S;
  sum_chunks_in_order(g.K * width, chunks, width, partial, gw,
                      [&](int64_t i) { return (i / width) * chunks * width + i % width; });
}

}  // namespace

template <typename T>
void grad_weight(const ConvGeometry& g, const GradWeightArgs<T>& a) {
  const auto& kt = kernels<T>().rows;
  const int64_t RS = g.R * g.S, HW = g.H * g.W, PQ = g.P * g.Q, Cg = g.C_per_group();
  const int64_t chunk = wgrad_chunk_rows(g), per_plane = (g.P + chunk - 1) / chunk;
  const int64_t chunks = g.N * per_plane;  // per output channel
  // partial[k][chunk][c][RS], each written by exactly one task, then summed in chunk order.
  const int64_t n_partial = g.K * chunks * Cg * RS;
  const Workspace<T> partial(Slot::kPartials, n_partial);
  std::fill_n(partial.data(), n_partial, T(0));
  at::parallel_for(0, g.K * chunks, grain_for(chunk * g.Q * RS * Cg), [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      const int64_t k = item / chunks, ci = item % chunks, c0 = (k / g.K_per_group()) * Cg;
      const int64_t n = ci / per_plane, p0 = (ci % per_plane) * chunk;
      for (int64_t c = 0; c < Cg; ++c)
        kt.grad_weight(g, a.x + (n * g.C + c0 + c) * HW, a.gy + (n * g.K + k) * PQ, p0,
                       std::min(g.P, p0 + chunk), partial.data() + (item * Cg + c) * RS);
    }
  });
  sum_wgrad_chunks(g, chunks, partial.data(), a.gw);
}

// Both gradients of a one-to-one layer (every output channel reads its own input channel:
// single-channel images, depthwise on the row kernels) at stride 1, in one pass. A task
// takes a chunk of rows of one plane -- grad_weight's chunks, so the sums are the same and
// do not depend on the thread count -- and computes grad-input on those rows, then
// grad-weight over the same grad_output rows while they are still in cache: grad_output is
// read from memory once instead of twice, with one parallel region fewer.
template <typename T>
bool backward_fused(const ConvGeometry& g, const GradInputArgs<T>& di,
                    const GradWeightArgs<T>& dw) {
  if (g.C_per_group() != 1 || g.K_per_group() != 1 || !g.unit_stride()) return false;
  const auto& kt = kernels<T>().rows;
  const ConvGeometry gd = dgrad_as_forward(g);
  const Workspace<T> wf = flip_transpose_weight(g, di.w);
  const int64_t RS = g.R * g.S, HW = g.H * g.W, PQ = g.P * g.Q;
  const int64_t chunk = wgrad_chunk_rows(g), per_plane = (g.P + chunk - 1) / chunk;
  const int64_t chunks = g.N * per_plane;  // per channel
  const Workspace<T> partial(Slot::kPartials, g.K * chunks * RS);
  std::fill_n(partial.data(), g.K * chunks * RS, T(0));
  at::parallel_for(0, g.K * chunks, grain_for(2 * chunk * g.Q * RS), [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      const int64_t k = item / chunks, ci = item % chunks, n = ci / per_plane;
      const int64_t p0 = (ci % per_plane) * chunk, p1 = std::min(g.P, p0 + chunk);
      // grad_input rows in proportion to the chunk (the same rows when H == P).
      const int64_t h0 = p0 * g.H / g.P, h1 = p1 == g.P ? g.H : p1 * g.H / g.P;
      const int64_t plane = n * g.C + k;
      if (h0 < h1)
        kt.forward(gd, di.gy + plane * PQ, wf.data() + k * RS, T(0), di.gx + plane * HW, h0, h1,
                   false);
      kt.grad_weight(g, dw.x + plane * HW, dw.gy + plane * PQ, p0, p1, partial.data() + item * RS);
    }
  });
  sum_wgrad_chunks(g, chunks, partial.data(), dw.gw);
  return true;
}

FASTCONV_INSTANTIATE_FAMILY_PASSES()
template bool backward_fused<float>(const ConvGeometry&, const GradInputArgs<float>&,
                                    const GradWeightArgs<float>&);
template bool backward_fused<double>(const ConvGeometry&, const GradInputArgs<double>&,
                                     const GradWeightArgs<double>&);

}  // namespace rows
}  // namespace fastconv
