// Fixed-width SIMD through GCC/Clang vector extensions. Each ISA translation unit
// (kernels_avx512.cpp, kernels_avx2.cpp, kernels_base.cpp) sets FC_ISA and FC_VEC_BYTES
// before including this, so one source gives native zmm / ymm / xmm (or NEON) code.
#pragma once

#if !defined(FC_ISA) || !defined(FC_VEC_BYTES)
#error "define FC_ISA and FC_VEC_BYTES before including vec.h"
#endif

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <type_traits>
#if FC_VEC_BYTES == 64 && defined(__x86_64__)
#include <immintrin.h>
#define FC_MASKED_AVX512 1
#elif FC_VEC_BYTES == 32 && defined(__x86_64__)
#include <immintrin.h>
#define FC_MASKED_AVX2 1
#endif

namespace fastconv {
namespace FC_ISA {

template <typename T>
struct Vec {
  typedef T type __attribute__((vector_size(FC_VEC_BYTES)));
  static constexpr int size = FC_VEC_BYTES / sizeof(T);
};
template <typename T>
using vec_t = typename Vec<T>::type;

// Lane-index vectors for shuffles (same lane count as vec_t<T>).
template <typename T>
struct IVec;
template <>
struct IVec<float> {
  typedef int32_t type __attribute__((vector_size(FC_VEC_BYTES)));
};
template <>
struct IVec<double> {
  typedef int64_t type __attribute__((vector_size(FC_VEC_BYTES)));
};
template <>
struct IVec<uint16_t> {  // bf16 bits
  typedef int16_t type __attribute__((vector_size(FC_VEC_BYTES)));
};

// memcpy is how GCC and Clang spell an unaligned vector load/store (vmovups).
template <typename T>
inline vec_t<T> loadu(const T* p) {
  vec_t<T> v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
template <typename T>
inline void storeu(T* p, vec_t<T> v) {
  __builtin_memcpy(p, &v, sizeof(v));
}
// A load meant to be reused from a register. GCC folds every use of a loaded vector
// into a memory-operand FMA when it can, so a value loaded once for three FMAs became
// three loads (most of them straddling two cache lines): the 3x3 row kernels ran at half
// their FMA rate. The empty asm hides where the value came from.
template <typename T>
inline vec_t<T> loadu_keep(const T* p) {
  vec_t<T> v = loadu(p);
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  asm("" : "+v"(v));
#elif defined(__GNUC__) && defined(__aarch64__)
  asm("" : "+w"(v));
#endif
  return v;
}
// Lanes [0, n) of a vector (0 < n <= size), the rest untouched / zero: masked moves on
// AVX-512, masked loads (and lane-loop stores) on AVX2, lane loops elsewhere. For the
// ragged end of a row without a bounce buffer.
template <typename T>
inline void storeu_n(T* p, vec_t<T> v, int n) {
#if defined(FC_MASKED_AVX512)
  if constexpr (std::is_same_v<T, float>) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1), reinterpret_cast<__m512>(v));
    return;
  } else if constexpr (std::is_same_v<T, double>) {
    _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << n) - 1), reinterpret_cast<__m512d>(v));
    return;
  }
#endif
  for (int l = 0; l < n; ++l) p[l] = v[l];
}
template <typename T>
inline vec_t<T> loadu_n(const T* p, int n) {
#if defined(FC_MASKED_AVX512)
  if constexpr (std::is_same_v<T, float>)
    return reinterpret_cast<vec_t<T>>(
        _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), p));
  else if constexpr (std::is_same_v<T, double>)
    return reinterpret_cast<vec_t<T>>(
        _mm512_maskz_loadu_pd(static_cast<__mmask8>((1u << n) - 1), p));
#endif
#if defined(FC_MASKED_AVX2)
  // A lane loop assembles the vector on the stack, and reading it back as one vector
  // waits for every lane's store (a failed store-to-load forward, 3x the time of the
  // FMAs that use it in the strided im2col of a stem).
  if constexpr (std::is_same_v<T, float>)
    return reinterpret_cast<vec_t<T>>(_mm256_maskload_ps(
        p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))));
  else if constexpr (std::is_same_v<T, double>)
    return reinterpret_cast<vec_t<T>>(_mm256_maskload_pd(
        p, _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3))));
#endif
  vec_t<T> v{};
  for (int l = 0; l < n; ++l) v[l] = p[l];
  return v;
}
// A whole vector or its first cnt lanes (0 < cnt <= size), loaded or stored.
template <typename T>
inline vec_t<T> load_lanes(const T* p, int cnt) {
  return cnt == Vec<T>::size ? loadu(p) : loadu_n(p, cnt);
}
template <typename T>
inline void store_lanes(T* p, vec_t<T> v, int cnt) {
  if (cnt == Vec<T>::size)
    storeu(p, v);
  else
    storeu_n(p, v, cnt);
}
// (Not `vec_t<T>{} + s`: 0 + s cannot be folded away, as -0.0 + 0 is +0.0.)
template <typename T>
inline vec_t<T> splat(T s) {
  return s - vec_t<T>{};
}
// The sum of a vector's lanes as a tree of halves (lo + hi, then again on the half): a few
// shuffles and adds where a lane-by-lane sum is a chain of `size` dependent adds. The order
// is fixed, so the bits are reproducible.
template <typename T, int Bytes>
inline T hsum_halves(const void* lanes) {
  if constexpr (Bytes == sizeof(T)) {
    T s;
    __builtin_memcpy(&s, lanes, sizeof(s));
    return s;
  } else {
    typedef T half_t __attribute__((vector_size(Bytes / 2)));
    half_t lo, hi;
    __builtin_memcpy(&lo, lanes, sizeof(lo));
    __builtin_memcpy(&hi, static_cast<const char*>(lanes) + sizeof(lo), sizeof(hi));
    const half_t s = lo + hi;
    return hsum_halves<T, Bytes / 2>(&s);
  }
}
template <typename T>
inline T hsum(vec_t<T> v) {
  return hsum_halves<T, sizeof(v)>(&v);
}

// Lanes 0, 2, 4, ... of the 2V values a|b (a stride-2 gather of a contiguous run).
template <typename T>
inline vec_t<T> even_lanes(vec_t<T> a, vec_t<T> b) {
  constexpr int V = Vec<T>::size;
#if defined(__GNUC__) && !defined(__clang__)
  typename IVec<T>::type idx;
#pragma GCC unroll 16
  for (int l = 0; l < V; ++l) idx[l] = 2 * l;
  return __builtin_shuffle(a, b, idx);
#else
  vec_t<T> r;
  for (int l = 0; l < V; ++l) r[l] = 2 * l < V ? a[2 * l] : b[2 * l - V];
  return r;
#endif
}

// a0 b0 a1 b1 ... as two vectors (lo: lanes of the first half, hi: the second).
template <typename T>
inline void interleave(vec_t<T> a, vec_t<T> b, vec_t<T>* lo, vec_t<T>* hi) {
  constexpr int V = Vec<T>::size;
#if defined(__GNUC__) && !defined(__clang__)
  typename IVec<T>::type il, ih;
#pragma GCC unroll 16
  for (int l = 0; l < V; ++l) {
    il[l] = (l % 2 ? V : 0) + l / 2;
    ih[l] = (l % 2 ? V : 0) + V / 2 + l / 2;
  }
  *lo = __builtin_shuffle(a, b, il);
  *hi = __builtin_shuffle(a, b, ih);
#else
  for (int l = 0; l < V; ++l) {
    (*lo)[l] = l % 2 ? b[l / 2] : a[l / 2];
    (*hi)[l] = l % 2 ? b[V / 2 + l / 2] : a[V / 2 + l / 2];
  }
#endif
}

// dst[0, n) = src[0, n * stride) every stride-th value, vectorised for stride 1 and 2 (the
// im2col rows of stride-2 layers were a scalar loop that cost a fifth of the GEMM).
// Masked at the ends, so it never reads past src[(n - 1) * stride].
template <typename T>
inline void copy_strided(T* dst, const T* src, int64_t n, int64_t stride) {
  constexpr int V = Vec<T>::size;
  if (stride == 1) {
    int64_t q = 0;
    for (; q + V <= n; q += V) storeu(dst + q, loadu(src + q));
    if (q < n)
      storeu_n(dst + q, loadu_n(src + q, static_cast<int>(n - q)), static_cast<int>(n - q));
    return;
  }
  if (stride == 2) {
    int64_t q = 0;
    // Whole loads but for the last vector: its 2V-th value is the next vector's first.
    for (; q + V < n; q += V)
      storeu(dst + q, even_lanes<T>(loadu(src + 2 * q), loadu(src + 2 * q + V)));
    for (; q < n; q += V) {
      const int64_t last = 2 * (std::min<int64_t>(n, q + V) - q) - 1;  // values to read
      const T* p = src + 2 * q;
      const vec_t<T> a = last >= V ? loadu(p) : loadu_n(p, static_cast<int>(last));
      const vec_t<T> b = last >= 2 * V ? loadu(p + V)
                         : last > V    ? loadu_n(p + V, static_cast<int>(last - V))
                                       : vec_t<T>{};
      const vec_t<T> v = even_lanes<T>(a, b);
      if (q + V <= n)
        storeu(dst + q, v);
      else
        storeu_n(dst + q, v, static_cast<int>(n - q));
    }
    return;
  }
  for (int64_t q = 0; q < n; ++q) dst[q] = src[q * stride];
}

// dst[q * stride] += src[q] for q < n: col2im's scatter, vectorised for stride 1 and 2.
template <typename T>
inline void add_strided(T* dst, const T* src, int64_t n, int64_t stride) {
  constexpr int V = Vec<T>::size;
  if (stride > 2) {
    for (int64_t q = 0; q < n; ++q) dst[q * stride] += src[q];
    return;
  }
  for (int64_t q = 0; q < n; q += V) {
    const int cnt = static_cast<int>(std::min<int64_t>(V, n - q));
    const vec_t<T> v = cnt == V ? loadu(src + q) : loadu_n(src + q, cnt);
    if (stride == 1) {
      T* p = dst + q;
      if (cnt == V)
        storeu(p, loadu(p) + v);
      else
        storeu_n(p, loadu_n(p, cnt) + v, cnt);
      continue;
    }
    // -0.0 in the odd lanes leaves every value there bit-for-bit as it was.
    vec_t<T> lo, hi;
    interleave<T>(v, splat<T>(-0.0), &lo, &hi);
    T* p = dst + 2 * q;
    const int len = 2 * cnt - 1, n_lo = std::min(V, len);
    storeu_n(p, loadu_n(p, n_lo) + lo, n_lo);
    if (len > V) storeu_n(p + V, loadu_n(p + V, len - V) + hi, len - V);
  }
}

template <typename T>
inline void zero_fill(T* dst, int64_t n) {
  constexpr int V = Vec<T>::size;
  int64_t q = 0;
  for (; q + V <= n; q += V) storeu(dst + q, vec_t<T>{});
  if (q < n) storeu_n(dst + q, vec_t<T>{}, static_cast<int>(n - q));
}

// One butterfly stage of a V x V transpose: swaps element (i, l) with (i + D, l - D) for
// every row i without bit D and lane l with it. All log2(V) stages make the transpose.
template <typename T, int D>
inline void transpose_stage(vec_t<T>* v) {
  constexpr int V = Vec<T>::size;
#if defined(__GNUC__) && !defined(__clang__)
  typename IVec<T>::type lo, hi;
#pragma GCC unroll 16
  for (int l = 0; l < V; ++l) {
    lo[l] = (l & D) ? V + l - D : l;
    hi[l] = (l & D) ? V + l : l + D;
  }
#pragma GCC unroll 16
  for (int i = 0; i < V; ++i) {
    if (i & D) continue;
    const vec_t<T> a = v[i], b = v[i + D];
    v[i] = __builtin_shuffle(a, b, lo);
    v[i + D] = __builtin_shuffle(a, b, hi);
  }
#else
  for (int i = 0; i < V; ++i) {
    if (i & D) continue;
    for (int l = 0; l < V; ++l)
      if (l & D) {
        const T t = v[i][l];
        v[i][l] = v[i + D][l - D];
        v[i + D][l - D] = t;
      }
  }
#endif
}

template <typename T>
inline void transpose(vec_t<T>* v) {
  constexpr int V = Vec<T>::size;
  static_assert(V <= 16, "transpose stages cover up to 16 lanes");
  if constexpr (V >= 16) transpose_stage<T, 8>(v);
  if constexpr (V >= 8) transpose_stage<T, 4>(v);
  if constexpr (V >= 4) transpose_stage<T, 2>(v);
  if constexpr (V >= 2) transpose_stage<T, 1>(v);
}

// v[j] = V rows' values at column j (j < cnt, the rest ignored) -> lanes [0, cnt) of
// `dst + c * plane` for rows c < nc (rows: channels, panel rows, ...).
template <typename T>
inline void store_transposed(vec_t<T>* v, int cnt, int nc, T* dst, int64_t plane) {
  constexpr int V = Vec<T>::size;
  transpose<T>(v);
#pragma GCC unroll 16
  for (int c = 0; c < V; ++c) {
    if (c >= nc) break;
    if (cnt == V)
      storeu(dst + c * plane, v[c]);
    else
      storeu_n(dst + c * plane, v[c], cnt);
  }
}

// The inverse: lanes [0, cnt) of rows `src + c * plane` (c < nc; other channels zero) ->
// v[j] = V channels at position j.
template <typename T>
inline void load_transposed(vec_t<T>* v, int cnt, int nc, const T* src, int64_t plane) {
  constexpr int V = Vec<T>::size;
#pragma GCC unroll 16
  for (int c = 0; c < V; ++c)
    v[c] = c >= nc ? vec_t<T>{} : cnt == V ? loadu(src + c * plane) : loadu_n(src + c * plane, cnt);
  transpose<T>(v);
}

// A sum of n contiguous values in a fixed order (reproducible bits).
template <typename T>
inline T sum(const T* a, int64_t n) {
  constexpr int V = Vec<T>::size;
  vec_t<T> acc0{}, acc1{};
  int64_t i = 0;
  for (; i + 2 * V <= n; i += 2 * V) {
    acc0 += loadu(a + i);
    acc1 += loadu(a + i + V);
  }
  for (; i + V <= n; i += V) acc0 += loadu(a + i);
  T s = hsum<T>(acc0 + acc1);
  for (; i < n; ++i) s += a[i];
  return s;
}

}  // namespace FC_ISA
}  // namespace fastconv
