// The bias gradient: a pass of its own, the same for every family.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>

#include "family.h"
#include "runtime/parallel.h"
#include "simd/kernel_table.h"

namespace fastconv {

// gb[k] = sum over images and positions of gy[n, k], in a fixed order.
template <typename T>
void grad_bias(const ConvGeometry& g, const T* gy, Layout layout, T* gb) {
  const auto& kt = kernels<T>();
  const int64_t PQ = g.P * g.Q;
  if (layout == Layout::kNhwc) {  // a block of channels per task, positions in order
    constexpr int64_t kBlock = 16;
    at::parallel_for(0, (g.K + kBlock - 1) / kBlock, 1, [&](int64_t b, int64_t e) {
      const int64_t k0 = b * kBlock, k1 = std::min(g.K, e * kBlock);
      std::fill(gb + k0, gb + k1, T(0));
      for (int64_t j = 0; j < g.N * PQ; ++j)
        for (int64_t k = k0; k < k1; ++k) gb[k] += gy[j * g.K + k];
    });
    return;
  }
  at::parallel_for(0, g.K, grain_for(g.N * PQ), [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      T s = 0;
      for (int64_t n = 0; n < g.N; ++n) s += kt.sum(gy + (n * g.K + k) * PQ, PQ);
      gb[k] = s;
    }
  });
}

}  // namespace fastconv
