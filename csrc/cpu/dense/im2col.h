// Walking the positions of the implicit im2col matrix (dense kernels, the bfloat16 kernel):
// row segments, and one im2col row at a time; runs of whole images are image_runs.h's.
// Included by the per-ISA translation units after vec.h.
#pragma once

#include <algorithm>

#include "../runtime/image_runs.h"

namespace fastconv {
namespace FC_ISA {

// Walks output positions [pq0, pq0 + len) row segment by row segment:
// fn(p, q_begin, q_end, offset of q_begin within the run).
template <typename Fn>
static inline void for_each_row_segment(const ConvGeometry& g, int64_t pq0, int64_t len, Fn&& fn) {
  int64_t p = pq0 / g.Q, q = pq0 % g.Q, j = 0;
  while (j < len) {
    const int64_t seg = std::min(g.Q - q, len - j);
    fn(p, q, q + seg, j);
    j += seg;
    q = 0;
    ++p;
  }
}

// One im2col row (tap c, r, s over output positions [pq0, pq0 + len)) into dst[0, len).
template <typename T>
static void im2col_row(const ConvGeometry& g, const T* xc, int64_t r, int64_t s, int64_t pq0,
                       int64_t len, T* dst) {
  const int64_t off = s * g.dil_w - g.pad_w;
  const Range qv = valid_out_range(off, g.stride_w, g.W, g.Q);
  for_each_row_segment(g, pq0, len, [&](int64_t p, int64_t qa, int64_t qb, int64_t j) {
    T* d = dst + (j - qa);
    const int64_t ih = g.in_row(p, r);
    if (ih < 0 || ih >= g.H) {
      zero_fill(d + qa, qb - qa);
      return;
    }
    const T* xr = xc + ih * g.W + off;
    const int64_t lo = std::max(qa, std::min(qv.lo, qb)), hi = std::max(lo, std::min(qv.hi, qb));
    zero_fill(d + qa, lo - qa);
    copy_strided(d + lo, xr + lo * g.stride_w, hi - lo, g.stride_w);
    zero_fill(d + hi, qb - hi);
  });
}

}  // namespace FC_ISA
}  // namespace fastconv
