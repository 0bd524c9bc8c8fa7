// NCHW <-> NHWC, vector by vector: a block of V channels x V positions goes through one
// register transpose, so every load and store moves a whole vector (a lane-masked one at
// the ragged ends) where an element-wise permuted copy moves one value at a time.
#pragma once

#include <algorithm>
#include <cstdint>

namespace fastconv {
namespace FC_ISA {

template <typename T>
void layout_to_nhwc(const T* src, T* dst, int64_t C, int64_t HW, int64_t p0, int64_t p1) {
  constexpr int V = Vec<T>::size;
  vec_t<T> v[V];
  for (int64_t p = p0; p < p1; p += V) {
    const int cnt = static_cast<int>(std::min<int64_t>(V, p1 - p));
    for (int64_t c = 0; c < C; c += V) {
      const int nc = static_cast<int>(std::min<int64_t>(V, C - c));
      load_transposed<T>(v, cnt, nc, src + c * HW + p, HW);
      for (int j = 0; j < cnt; ++j) store_lanes(dst + (p + j) * C + c, v[j], nc);
    }
  }
}

template <typename T>
void layout_to_nchw(const T* src, T* dst, int64_t C, int64_t HW, int64_t p0, int64_t p1) {
  constexpr int V = Vec<T>::size;
  vec_t<T> v[V];
  for (int64_t p = p0; p < p1; p += V) {
    const int cnt = static_cast<int>(std::min<int64_t>(V, p1 - p));
    for (int64_t c = 0; c < C; c += V) {
      const int nc = static_cast<int>(std::min<int64_t>(V, C - c));
      for (int j = 0; j < V; ++j)
        v[j] = j < cnt ? load_lanes(src + (p + j) * C + c, nc) : vec_t<T>{};
      store_transposed<T>(v, cnt, nc, dst + c * HW + p, HW);
    }
  }
}

}  // namespace FC_ISA
}  // namespace fastconv
