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

// One group's channels_last weight [K][RS][C] (src) to the flipped, transposed [C][K][RS]
// of grad-input as a forward (dst, rows K*RS apart), output channels [k0, k1): the taps of
// one output channel and V input channels are V-lane vectors in reversed tap order, each
// block transposed into V runs of taps. Element by element, every value read was a line of
// its own, C apart: 30 % of a 512x7^2 3x3 layer's grad-input at batch 8.
template <typename T>
void layout_flip_taps(const T* src, T* dst, int64_t K, int64_t C, int64_t RS, int64_t k0,
                      int64_t k1) {
  constexpr int V = Vec<T>::size;
  vec_t<T> v[V];
  for (int64_t k = k0; k < k1; ++k)
    for (int64_t c = 0; c < C; c += V) {
      const int nc = static_cast<int>(std::min<int64_t>(V, C - c));
      for (int64_t t = 0; t < RS; t += V) {
        const int cnt = static_cast<int>(std::min<int64_t>(V, RS - t));
        for (int j = 0; j < V; ++j)
          v[j] = j < cnt ? load_lanes(src + (k * RS + RS - 1 - (t + j)) * C + c, nc) : vec_t<T>{};
        store_transposed<T>(v, cnt, nc, dst + (c * K + k) * RS + t, K * RS);
      }
    }
}

// The same from a contiguous weight [K][C][RS] with RS at most V, input channels [c0, c1):
// each (k, c)'s taps are one lane-masked vector, reversed in-register and stored as the run
// (c, k) of dst, so dst is written front to back. Element by element the index arithmetic
// cost more than the moves (10 % of a 512x7^2 3x3 layer's NCHW grad-input at batch 8).
template <typename T>
void layout_flip_runs(const T* src, T* dst, int64_t K, int64_t C, int64_t RS, int64_t c0,
                      int64_t c1) {
  constexpr int V = Vec<T>::size;
  typename IVec<T>::type reverse;
  for (int l = 0; l < V; ++l) reverse[l] = l < RS ? static_cast<int>(RS) - 1 - l : l;
  const int n = static_cast<int>(RS);
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t k = 0; k < K; ++k)
      store_lanes(dst + (c * K + k) * RS,
                  __builtin_shuffle(load_lanes(src + (k * C + c) * RS, n), reverse), n);
}

}  // namespace FC_ISA
}  // namespace fastconv
