// Strided grad-input of the row kernels: one grad_output plane scattered back into the input
// plane it came from. (Stride 1 is forward.h on grad_output with the flipped kernel.)
//
//   Dgrad: gx[ih, iw] += sum_{p, q, r, s: ih = p*sh - ph + r*dh, iw = q*sw - pw + s*dw}
//          w[r, s] * gy[p, q]
//
// The scatter goes into a run-split copy of the padded plane (staging.h's ColumnRuns), so
// every tap is a contiguous axpy over a grad_output row for any stride, then the runs are
// gathered back into gx.
// Included by the per-ISA translation units after vec.h.
#pragma once

#include <algorithm>

#include "../runtime/workspace.h"
#include "staging.h"

namespace fastconv {
namespace FC_ISA {

// gx += transposed correlation of one grad_output plane with w (any stride).
template <typename T>
void rows_grad_input_plane(const ConvGeometry& g, const T* gy, const T* w, T* gx) {
  constexpr int V = Vec<T>::size;
  Workspace<int64_t> taps(Slot::kTaps, 2 * g.S + 1);
  const ColumnRuns cr = column_runs(g, g.Q, taps.data());
  const int64_t L = cr.len, row_stride = cr.row_stride();
  Workspace<T> plane(Slot::kStage, g.H * row_stride);
  T* tmp = plane.data();
  std::fill_n(tmp, g.H * row_stride, T(0));
  for (int64_t p = 0; p < g.P; ++p) {
    const T* gyr = gy + p * g.Q;
    const Range rr = valid_out_range(g.in_row(p, 0), g.dil_h, g.H, g.R);
    for (int64_t r = rr.lo; r < rr.hi; ++r) {
      T* trow = tmp + g.in_row(p, r) * row_stride;
      for (int64_t s = 0; s < g.S; ++s) {
        T* __restrict d = trow + cr.tap_off[s];
        const vec_t<T> wv = splat(w[r * g.S + s]);
        // Whole vectors, then the ragged end lane-masked: a row narrower than a vector
        // (a 14x14 map at stride 2) is one masked FMA per tap, not one scalar FMA per column.
        int64_t q = 0;
        for (; q + V <= g.Q; q += V) storeu(d + q, loadu(d + q) + wv * loadu(gyr + q));
        if (q < g.Q) {
          const int n = static_cast<int>(g.Q - q);
          storeu_n(d + q, loadu_n(d + q, n) + wv * loadu_n(gyr + q, n), n);
        }
      }
    }
  }
  for (int64_t ih = 0; ih < g.H; ++ih) {
    const T* trow = tmp + ih * row_stride;
    T* gxr = gx + ih * g.W;
    for (int64_t j = 0; j < cr.runs; ++j) {
      const T* t = trow + j * L;
      const int64_t off = cr.base[j] - g.pad_w;  // input column of run index 0
      const Range ir = valid_out_range(off, g.stride_w, g.W, L);
      for (int64_t i = ir.lo; i < ir.hi; ++i) gxr[i * g.stride_w + off] += t[i];
    }
  }
}

}  // namespace FC_ISA
}  // namespace fastconv
