// Direct kernels for the one-input-channel-per-group family: the textbook's single-channel
// images, per-channel filtering and depthwise layers (with any channel multiplier).
//
//   Fprop: y[p, q] = b + sum_{r, s} w[r, s] * x[p*sh - ph + r*dh, q*sw - pw + s*dw]
//   GEMM view: M = P*Q, N = 1, K = R*S -- far too thin for a GEMM, so we stay direct.
//
// Staging: the input rows a block of output rows needs are copied once into a small
// buffer, zero-extended left and right and split into stride_w phases
// (padded column c = iw + pw lives in phase c % sw at index c / sw). Then every tap of
// every output column reads a contiguous run: no bounds checks, no gathers, any stride or
// dilation, and the copy costs one pass over the rows against R*S FMAs per output.
// Rows above and below the image are skipped, not copied.
//
// Fprop keeps a tile of rows x SIMD vectors of output columns in registers (shaped by the
// map's width so there are always several independent FMA chains) while the R x S window
// streams through, writing straight into y (bias in the registers, ragged row ends
// lane-masked). With the kernel height a template parameter (R <= 7, vertical stride and
// dilation 1) each staged input row is loaded once per tap column for every output row of
// the tile it feeds; otherwise one load per FMA.
// Dgrad with stride 1 is this same kernel on grad_output with the flipped kernel (the
// driver builds that geometry); strided dgrad scatters into a phase-split plane.
// Wgrad: gw[r, s] = sum_{p, q} gy[p, q] * x[ih, iw] on staged rows, grad_output read in
// place; with the kernel height known, each input vector serves all R grad_output rows.
// Included by the per-ISA translation units after vec.h.
#pragma once

#include <algorithm>
#include <type_traits>
#include <vector>

namespace fastconv {
namespace FC_ISA {

constexpr int64_t kStageRows = 32;  // output rows per staged block

// Padded, phase-split copy of input rows [ih0, ih1); rows outside the image are zero, so
// every output row sees all R kernel rows. The buffer is reused across calls on a thread.
//
// With stride_w == 1, forward tiles and grad-weight vectors whose columns lie inside the
// image read x in place (in_place, row_for): copying every row had been about a third of
// a 3x3 forward's time. stage() with edges_only copies only the columns the others read,
// kEdgeCols and the kernel's halo either side.
template <typename T>
struct StagedRows {
  int64_t ih0 = 0, L = 0, row_stride = 0;
  std::vector<T> data;
  std::vector<int64_t> tap_off;  // per kernel column: phase * L + index (no division later)
  // In-place reads (edges_only): x's plane, else nullptr; a tile over output columns
  // [q, q + n) reads padded columns [q, q + n + halo).
  const T* plane = nullptr;
  int64_t H = 0, W = 0, pad_w = 0, halo = 0;

  // The widest forward tile (U * V columns); edge tiles are at most this wide.
  static constexpr int64_t kEdgeCols = 4 * Vec<T>::size;

  // Phase length: covers output columns [0, q_cols) for every tap.
  void stage(const ConvGeometry& g, const T* x, int64_t ih0_, int64_t ih1, int64_t q_cols,
             bool edges_only = false) {
    constexpr int V = Vec<T>::size;
    ih0 = ih0_;
    L = q_cols + ((g.S - 1) * g.dil_w) / g.stride_w;
    row_stride = g.stride_w * L;
    set_taps(g);
    plane = edges_only && g.stride_w == 1 ? x : nullptr;
    H = g.H, W = g.W, pad_w = g.pad_w, halo = (g.S - 1) * g.dil_w;
    const int64_t rows = std::max<int64_t>(0, ih1 - ih0);
    if (static_cast<int64_t>(data.size()) < rows * row_stride + 1)
      data.resize(static_cast<size_t>(rows * row_stride + 1));
    // Input columns that land inside the buffer: padded column c = iw + pad_w < row_stride.
    const int64_t iw_begin = std::max<int64_t>(0, -g.pad_w);
    const int64_t iw_end = std::max(iw_begin, std::min(g.W, row_stride - g.pad_w));
    // Padded columns [0, left) and [right, row_stride) are what tiles not in_place read.
    const int64_t left = plane ? std::min(row_stride, pad_w + kEdgeCols + halo) : row_stride;
    const int64_t right = plane ? std::max(left, pad_w + W - kEdgeCols - halo) : row_stride;
    for (int64_t ih = ih0; ih < ih1; ++ih) {
      T* dst = data.data() + (ih - ih0) * row_stride;
      if (ih < 0 || ih >= g.H) {
        std::fill_n(dst, row_stride, T(0));
        continue;
      }
      const T* src = x + ih * g.W;
      if (g.stride_w == 1) {
        // Padded columns [c0, c1): x where it has them, zero elsewhere. Our own vector
        // copy: glibc's memmove took half again as long on these rows shifted by pad_w.
        auto fill = [&](int64_t c0, int64_t c1) {
          const int64_t lo = std::clamp(iw_begin + g.pad_w, c0, c1);
          const int64_t hi = std::clamp(iw_end + g.pad_w, lo, c1);
          zero_fill(dst + c0, lo - c0);
          copy_strided(dst + lo, src + lo - g.pad_w, hi - lo, 1);
          zero_fill(dst + hi, c1 - hi);
        };
        fill(0, left);
        fill(right, row_stride);
        continue;
      }
      std::fill_n(dst, row_stride, T(0));
#if defined(__GNUC__) && !defined(__clang__)
      if (g.stride_w == 2 && g.pad_w >= 0) {
        // Pairs (iw = 2m, 2m + 1) go to phase pad_w % 2 at m + pad_w / 2 and to the other
        // phase at m + (pad_w + 1) / 2: one two-vector shuffle per phase per 2V inputs.
        typename IVec<T>::type even, odd;
        for (int l = 0; l < V; ++l) even[l] = 2 * l, odd[l] = 2 * l + 1;
        const int64_t par = g.pad_w & 1, e_off = g.pad_w / 2, o_off = (g.pad_w + 1) / 2;
        T* d_even = dst + par * L;
        T* d_odd = dst + (1 - par) * L;
        int64_t m = 0;
        for (; 2 * m + 2 * V <= iw_end && m + V + o_off <= L; m += V) {
          const vec_t<T> a = loadu(src + 2 * m), b = loadu(src + 2 * m + V);
          storeu(d_even + m + e_off, __builtin_shuffle(a, b, even));
          storeu(d_odd + m + o_off, __builtin_shuffle(a, b, odd));
        }
        // The row's ragged end (all of a narrow row, e.g. 14 wide) with masked moves.
        const int64_t rem = iw_end - 2 * m;
        if (rem > 0 && rem < 2 * V) {
          const vec_t<T> a = loadu_n(src + 2 * m, static_cast<int>(std::min<int64_t>(rem, V)));
          const vec_t<T> b =
              rem > V ? loadu_n(src + 2 * m + V, static_cast<int>(rem - V)) : vec_t<T>{};
          storeu_n(d_even + m + e_off, __builtin_shuffle(a, b, even),
                   static_cast<int>((rem + 1) / 2));
          if (rem > 1)
            storeu_n(d_odd + m + o_off, __builtin_shuffle(a, b, odd), static_cast<int>(rem / 2));
          continue;
        }
        for (int64_t iw = 2 * m; iw < iw_end; ++iw) {
          const int64_t c = iw + g.pad_w;
          dst[(c & 1) * L + (c >> 1)] = src[iw];
        }
        continue;
      }
#endif
      for (int64_t ph = 0; ph < g.stride_w; ++ph) {  // strided reads, contiguous writes
        T* d = dst + ph * L;
        for (int64_t i = 0; i < L; ++i) {
          const int64_t iw = i * g.stride_w + ph - g.pad_w;
          if (iw >= iw_begin && iw < iw_end) d[i] = src[iw];
        }
      }
    }
  }
  // Staged input row ih; tap s of output column q reads row(ih)[tap_off[s] + q].
  const T* row(int64_t ih) const { return data.data() + (ih - ih0) * row_stride; }

  // Whether a tile over output columns [q, q + n) reads inside the image's columns, so
  // its in-image rows come from x itself.
  bool in_place(int64_t q, int64_t n) const {
    return plane != nullptr && q >= pad_w && q + n + halo <= pad_w + W;
  }
  // Row ih as row() would give it, read in place when the tile is in_place.
  const T* row_for(int64_t ih, bool inside) const {
    return inside && plane != nullptr && ih >= 0 && ih < H ? plane + ih * W - pad_w : row(ih);
  }

  void set_taps(const ConvGeometry& g) {
    tap_off.resize(static_cast<size_t>(g.S));
    for (int64_t s = 0; s < g.S; ++s) {
      const int64_t c = s * g.dil_w;
      tap_off[s] = (c % g.stride_w) * L + c / g.stride_w;
    }
  }
};

template <typename T>
StagedRows<T>& thread_staging() {
  static thread_local StagedRows<T> st;
  return st;
}

// Where a forward tile's results go: rows of y (row stride ldo), either overwritten with
// bias + sum or accumulated into (the multiplier sum of grad-input).
template <typename T>
struct OutRows {
  T* y;
  int64_t ldo;
  bool accumulate;
  T bias;
};

// RB output rows x U vectors of columns in registers: RB*U independent FMA chains, enough
// to hide the FMA latency even when a row is a single vector wide (14x14 feature maps).
// R == 0: any kernel height, vertical stride and dilation; one load per FMA.
// R > 0 (stride_h = dil_h = 1, kernel height R): each staged input row is loaded once per
// kernel column and feeds every output row of the tile whose window covers it, so a tile
// makes (RB + R - 1) * U loads for RB * R * U FMAs. The generic tile is bound by its loads
// (most straddle two cache lines); this one by its FMAs.
// Tiles at columns q0, q0 + U*V, ... < q1 of output rows [p, p + RB), `out` at row p,
// column 0; `tail` lanes of each tile's last vector are real columns (V for whole vectors;
// callers pass a ragged tile alone). The column loop is in here, not in the caller: a
// 3x3 tile is 144 FMAs, and the call with its row set-up had cost a fifth of it. Never
// inlined: inlined into the large row driver, GCC kept small tiles' accumulators on the
// stack (a store-forwarding round trip per FMA; 45% of a 7x7-output depthwise layer).
template <typename T, int RB, int U, int R>
__attribute__((noinline)) static void direct_fwd_tiles(const ConvGeometry& g,
                                                       const StagedRows<T>& st, const T* w,
                                                       int64_t p, int64_t q0, int64_t q1, T* out,
                                                       const OutRows<T>& o, int tail) {
  constexpr int V = Vec<T>::size;
  static_assert(U * V <= StagedRows<T>::kEdgeCols, "edge tiles wider than the staged edges");
  const bool ragged = tail < V;
  const int64_t* toff = st.tap_off.data();
  constexpr int I = R > 0 ? RB + R - 1 : 1;  // input rows under a tile (R > 0)
  const T *staged[I], *direct[I];
  if constexpr (R > 0)
#pragma GCC unroll 24
    for (int i = 0; i < I; ++i) {
      staged[i] = st.row(g.in_row(p, 0) + i);
      direct[i] = st.row_for(g.in_row(p, 0) + i, true);
    }
  for (int64_t q = q0; q < q1; q += U * V) {
    T* const o_q = out + q;
    vec_t<T> acc[RB][U];
#pragma GCC unroll 16
    for (int b = 0; b < RB; ++b)
#pragma GCC unroll 8
      for (int u = 0; u < U; ++u) {
        const T* src = o_q + b * o.ldo + u * V;
        acc[b][u] = !o.accumulate            ? splat(o.bias)
                    : (u == U - 1 && ragged) ? loadu_n(src, tail)
                                             : loadu(src);
      }
    const bool inside = st.in_place(q, U * V);
    if constexpr (R == 0) {
      for (int64_t r = 0; r < g.R; ++r) {
        const T* wr = w + r * g.S;
        const T* xr[RB];
#pragma GCC unroll 16
        for (int b = 0; b < RB; ++b) xr[b] = st.row_for(g.in_row(p + b, r), inside) + q;
        for (int64_t s = 0; s < g.S; ++s) {
          const vec_t<T> wv = splat(wr[s]);
#pragma GCC unroll 16
          for (int b = 0; b < RB; ++b) {
            const T* xs = xr[b] + toff[s];
#pragma GCC unroll 8
            for (int u = 0; u < U; ++u) acc[b][u] += wv * loadu(xs + u * V);
          }
        }
      }
    } else {
      const T* xr[I];
#pragma GCC unroll 24
      for (int i = 0; i < I; ++i) xr[i] = (inside ? direct[i] : staged[i]) + q;
      for (int64_t s = 0; s < g.S; ++s) {
        vec_t<T> wv[R];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) wv[r] = splat(w[r * g.S + s]);
#pragma GCC unroll 24
        for (int i = 0; i < I; ++i) {
          vec_t<T> v[U];
#pragma GCC unroll 8
          for (int u = 0; u < U; ++u) v[u] = loadu_keep(xr[i] + toff[s] + u * V);
#pragma GCC unroll 16
          for (int b = 0; b < RB; ++b) {
            if (i - b < 0 || i - b >= R) continue;
#pragma GCC unroll 8
            for (int u = 0; u < U; ++u) acc[b][u] += wv[i - b] * v[u];
          }
        }
      }
    }
#pragma GCC unroll 16
    for (int b = 0; b < RB; ++b)
#pragma GCC unroll 8
      for (int u = 0; u < U; ++u) {
        if (u == U - 1 && ragged)
          storeu_n(o_q + b * o.ldo + u * V, acc[b][u], tail);
        else
          storeu(o_q + b * o.ldo + u * V, acc[b][u]);
      }
  }
}

// Output rows [p, p + RB), written straight into y; a row's last, partial vector is
// loaded and stored lane-masked, so nothing past the row's end is touched.
template <typename T, int RB, int U, int R>
static inline void direct_fwd_rowblock(const ConvGeometry& g, const StagedRows<T>& st, const T* w,
                                       int64_t p, const OutRows<T>& o) {
  constexpr int V = Vec<T>::size;
  T* out = o.y + p * o.ldo;
  const int64_t wide = g.Q / (U * V) * (U * V), whole = g.Q / V * V;
  if (wide > 0) direct_fwd_tiles<T, RB, U, R>(g, st, w, p, 0, wide, out, o, V);
  if (whole > wide) direct_fwd_tiles<T, RB, 1, R>(g, st, w, p, wide, whole, out, o, V);
  if (whole < g.Q)
    direct_fwd_tiles<T, RB, 1, R>(g, st, w, p, whole, whole + V, out, o,
                                  static_cast<int>(g.Q - whole));
}

template <typename T, int RB, int U, int R>
static void direct_fwd_block(const ConvGeometry& g, const StagedRows<T>& st, const T* w, int64_t b0,
                             int64_t b1, const OutRows<T>& o) {
  int64_t p = b0;
  for (; p + RB <= b1; p += RB) direct_fwd_rowblock<T, RB, U, R>(g, st, w, p, o);
  // Leftover rows in halving blocks, so they keep several independent FMA chains.
  if constexpr (RB > 1)
    if (p < b1) direct_fwd_block<T, RB / 2, U, R>(g, st, w, p, b1, o);
}

// Tile shape by map width (in vectors) and register count, then the kernel-height
// specialisation: 32 vector registers (AVX-512) hold 4x4 accumulators + R weights + U
// inputs for R <= 7; 16 registers (AVX2, SSE, NEON) half as many accumulators.
template <typename T, int R>
static void direct_fwd_block_for(const ConvGeometry& g, const StagedRows<T>& st, const T* w,
                                 int64_t b0, int64_t b1, const OutRows<T>& o) {
  const int64_t nvec = (g.Q + Vec<T>::size - 1) / Vec<T>::size;
  constexpr bool many_regs = FC_VEC_BYTES >= 64;
  if (nvec >= 4)
    direct_fwd_block<T, many_regs ? 4 : 2, many_regs ? 4 : 2, R>(g, st, w, b0, b1, o);
  else if (nvec >= 2)
    direct_fwd_block<T, many_regs ? 8 : 4, 2, R>(g, st, w, b0, b1, o);
  else
    direct_fwd_block<T, 8, 1, R>(g, st, w, b0, b1, o);
}

// Calls fn(std::integral_constant<int, R>{}) for R = r when 1 <= r <= 7 and returns true;
// false otherwise. The kernel-height specialisations of forward and grad-weight.
template <typename Fn>
static inline bool with_kernel_height(int64_t r, Fn&& fn) {
  switch (r) {
    case 1:
      return fn(std::integral_constant<int, 1>{}), true;
    case 2:
      return fn(std::integral_constant<int, 2>{}), true;
    case 3:
      return fn(std::integral_constant<int, 3>{}), true;
    case 4:
      return fn(std::integral_constant<int, 4>{}), true;
    case 5:
      return fn(std::integral_constant<int, 5>{}), true;
    case 6:
      return fn(std::integral_constant<int, 6>{}), true;
    case 7:
      return fn(std::integral_constant<int, 7>{}), true;
    default:
      return false;
  }
}

template <typename T>
static void direct_fwd_block_any(const ConvGeometry& g, const StagedRows<T>& st, const T* w,
                                 int64_t b0, int64_t b1, const OutRows<T>& o) {
  const bool done = g.stride_h == 1 && g.dil_h == 1 && with_kernel_height(g.R, [&](auto R) {
                      direct_fwd_block_for<T, decltype(R)::value>(g, st, w, b0, b1, o);
                    });
  if (!done) direct_fwd_block_for<T, 0>(g, st, w, b0, b1, o);
}

// The row-reuse kernels are specialised for kernel heights up to 7. Taller kernels with
// stride_h = dil_h = 1 run as ceil(R / 7) bands of kernel rows, each a kernel of its own
// (padding shifted by its first row): 9x9 on 1080x1920 5.2 -> 2.0 ms forward, where the
// generic tile's one load per FMA had bound it.
constexpr int64_t kMaxReuseRows = 7;

inline int64_t kernel_row_bands(const ConvGeometry& g) {
  return g.stride_h == 1 && g.dil_h == 1 ? (g.R + kMaxReuseRows - 1) / kMaxReuseRows : 1;
}
// Band i of n: kernel rows [r0, r1) as a geometry, r0 returned through *first_row.
inline ConvGeometry kernel_row_band(const ConvGeometry& g, int64_t i, int64_t n,
                                    int64_t* first_row) {
  ConvGeometry band = g;
  const int64_t r0 = i * g.R / n, r1 = (i + 1) * g.R / n;
  band.R = r1 - r0;
  band.pad_h = g.pad_h - r0 * g.dil_h;
  *first_row = r0;
  return band;
}

template <typename T>
void direct_fwd_rows(const ConvGeometry& g, const T* x, const T* w, T bias, T* y, int64_t p0,
                     int64_t p1, bool accumulate) {
  if (const int64_t bands = kernel_row_bands(g); bands > 1) {
    for (int64_t i = 0; i < bands; ++i) {  // later bands add to the first's output
      int64_t r0;
      const ConvGeometry band = kernel_row_band(g, i, bands, &r0);
      direct_fwd_rows(band, x, w + r0 * g.S, bias, y, p0, p1, accumulate || i > 0);
    }
    return;
  }
  constexpr int V = Vec<T>::size;
  const int64_t Qr = (g.Q + V - 1) / V * V;  // staged columns: whole vectors
  StagedRows<T>& st = thread_staging<T>();
  const OutRows<T> o{y, g.Q, accumulate, bias};
  for (int64_t b0 = p0; b0 < p1; b0 += kStageRows) {
    const int64_t b1 = std::min(p1, b0 + kStageRows);
    st.stage(g, x, g.in_row(b0, 0), g.in_row(b1 - 1, g.R - 1) + 1, Qr, /*edges_only=*/true);
    direct_fwd_block_any<T>(g, st, w, b0, b1, o);
  }
}

template <typename T>
void direct_dgrad_plane(const ConvGeometry& g, const T* gy, const T* w, T* gx) {
  constexpr int V = Vec<T>::size;
  // Scatter into a phase-split copy of the padded plane (contiguous axpys for any stride),
  // then gather it back into gx.
  const int64_t L = g.Q + ((g.S - 1) * g.dil_w) / g.stride_w, row_stride = g.stride_w * L;
  static thread_local std::vector<T> plane;  // reused: one allocation per thread, not per plane
  if (static_cast<int64_t>(plane.size()) < g.H * row_stride)
    plane.resize(static_cast<size_t>(g.H * row_stride));
  T* tmp = plane.data();
  std::fill_n(tmp, g.H * row_stride, T(0));
  for (int64_t p = 0; p < g.P; ++p) {
    const T* gyr = gy + p * g.Q;
    const Range rr = valid_out_range(g.in_row(p, 0), g.dil_h, g.H, g.R);
    for (int64_t r = rr.lo; r < rr.hi; ++r) {
      T* trow = tmp + g.in_row(p, r) * row_stride;
      for (int64_t s = 0; s < g.S; ++s) {
        const int64_t c = s * g.dil_w;
        T* __restrict d = trow + (c % g.stride_w) * L + c / g.stride_w;
        const vec_t<T> wv = splat(w[r * g.S + s]);
        // Whole vectors, then the ragged end lane-masked: a 7-wide output row (a 14x14
        // map at stride 2) is one masked FMA per tap instead of seven scalar ones.
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
    for (int64_t ph = 0; ph < g.stride_w; ++ph) {
      const T* t = trow + ph * L;
      for (int64_t i = 0; i < L; ++i) {
        const int64_t iw = i * g.stride_w + ph - g.pad_w;
        if (iw >= 0 && iw < g.W) gxr[iw] += t[i];
      }
    }
  }
}

// The grad_output plane as grad-weight reads it: rows of whole vectors, the last one
// loaded lane-masked (no copy of the plane), and its products masked past Q (not just
// multiplied by zero: 0 * inf is NaN). So narrow maps (Q < V, 7x7 or 14x14) stay vectorised.
template <typename T, typename Mask>
struct GradRows {
  const T* gy;
  int64_t Q, Qr;  // Qr: Q rounded up to whole vectors
  int tail;       // real lanes of the last vector
  Mask last_valid;
  const T* row(int64_t p) const { return gy + p * Q; }
  vec_t<T> last(const T* row) const { return loadu_n(row + Qr - Vec<T>::size, tail); }
};

// KS taps of kernel row r at once, output rows [b0, b1) except those reading input rows
// [skip0, skip1) (left to direct_wgrad_reuse): each grad_output vector is loaded once for KS
// FMAs, two sets of accumulators stay in registers over the whole block.
template <typename T, int KS, typename Mask>
static void direct_wgrad_taps(const ConvGeometry& g, const StagedRows<T>& st,
                              const GradRows<T, Mask>& gr, int64_t b0, int64_t b1, int64_t r,
                              int64_t s0, int64_t skip0, int64_t skip1, T* acc) {
  constexpr int V = Vec<T>::size;
  vec_t<T> a0[KS] = {}, a1[KS] = {};
  const int64_t* toff = st.tap_off.data() + s0;
  for (int64_t p = b0; p < b1; ++p) {
    const int64_t ih = g.in_row(p, r);
    if (ih < 0 || ih >= g.H || (ih >= skip0 && ih < skip1)) continue;
    const T* xs = st.row(ih);
    const T* xp = st.row_for(ih, true);
    const T* gyr = gr.row(p);
    int64_t q = 0;
    for (; q + 2 * V < gr.Qr; q += 2 * V) {
      const T* xr = st.in_place(q, 2 * V) ? xp : xs;
      const vec_t<T> g0 = loadu_keep(gyr + q), g1 = loadu_keep(gyr + q + V);
#pragma GCC unroll 8
      for (int s = 0; s < KS; ++s) {
        a0[s] += g0 * loadu(xr + toff[s] + q);
        a1[s] += g1 * loadu(xr + toff[s] + q + V);
      }
    }
    for (; q + V < gr.Qr; q += V) {
      const T* xr = st.in_place(q, V) ? xp : xs;
      const vec_t<T> g0 = loadu_keep(gyr + q);
#pragma GCC unroll 8
      for (int s = 0; s < KS; ++s) a0[s] += g0 * loadu(xr + toff[s] + q);
    }
    const vec_t<T> gl = gr.last(gyr);
    const T* xr = st.in_place(q, V) ? xp : xs;
#pragma GCC unroll 8
    for (int s = 0; s < KS; ++s) {
      const vec_t<T> prod = gl * loadu(xr + toff[s] + q);
      a1[s] += gr.last_valid ? prod : vec_t<T>{};
    }
  }
#pragma GCC unroll 8
  for (int s = 0; s < KS; ++s) acc[r * g.S + s0 + s] += hsum<T>(a0[s] + a1[s]);
}

// Taps per pass of direct_wgrad_reuse: R * KS accumulators + R grad_output vectors + one
// input vector fit the register file.
template <typename T, int R>
constexpr int kWgradTaps = std::min(8, ((FC_VEC_BYTES >= 64 ? 32 : 16) - R - 2) / R);

// Grad-weight with the kernel height R known (stride_h = dil_h = 1), for input rows
// [i0, i1) whose R grad_output partners (rows ih + pad_h - r) all lie in the block: each
// input vector is loaded once per tap for all R of them -- R + KS loads for R * KS FMAs,
// where direct_wgrad_taps makes KS + 1 loads for KS FMAs.
template <typename T, int R, int KS, typename Mask>
static void direct_wgrad_reuse(const ConvGeometry& g, const StagedRows<T>& st,
                               const GradRows<T, Mask>& gr, int64_t s0, int64_t i0, int64_t i1,
                               T* acc) {
  constexpr int V = Vec<T>::size;
  vec_t<T> a[R][KS] = {};
  const int64_t* toff = st.tap_off.data() + s0;
  for (int64_t ih = i0; ih < i1; ++ih) {
    const T* xs = st.row(ih);
    const T* xp = st.row_for(ih, true);
    const T* gyr[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) gyr[r] = gr.row(ih + g.pad_h - r);
    int64_t q = 0;
    for (; q + V < gr.Qr; q += V) {
      const T* xr = st.in_place(q, V) ? xp : xs;
      vec_t<T> gv[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) gv[r] = loadu_keep(gyr[r] + q);
#pragma GCC unroll 8
      for (int s = 0; s < KS; ++s) {
        const vec_t<T> xv = loadu_keep(xr + toff[s] + q);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) a[r][s] += gv[r] * xv;
      }
    }
    vec_t<T> gv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) gv[r] = gr.last(gyr[r]);
    const T* xr = st.in_place(q, V) ? xp : xs;
#pragma GCC unroll 8
    for (int s = 0; s < KS; ++s) {
      const vec_t<T> xv = loadu(xr + toff[s] + q);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const vec_t<T> prod = gv[r] * xv;
        a[r][s] += gr.last_valid ? prod : vec_t<T>{};
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int s = 0; s < KS; ++s) acc[r * g.S + s0 + s] += hsum<T>(a[r][s]);
}

// Taps [s0, s0 + n) with a compile-time tap count (n <= KS).
template <typename T, int R, int KS, typename Mask>
static void direct_wgrad_reuse_n(int64_t n, const ConvGeometry& g, const StagedRows<T>& st,
                                 const GradRows<T, Mask>& gr, int64_t s0, int64_t i0, int64_t i1,
                                 T* acc) {
  if constexpr (KS >= 1) {
    if (n == KS) return direct_wgrad_reuse<T, R, KS>(g, st, gr, s0, i0, i1, acc);
    direct_wgrad_reuse_n<T, R, KS - 1>(n, g, st, gr, s0, i0, i1, acc);
  }
}

// All taps of kernel rows [0, R) for input rows [i0, i1), kWgradTaps at a time.
template <typename T, int R, typename Mask>
static void direct_wgrad_reuse_all(const ConvGeometry& g, const StagedRows<T>& st,
                                   const GradRows<T, Mask>& gr, int64_t i0, int64_t i1, T* acc) {
  constexpr int KS = kWgradTaps<T, R>;
  for (int64_t s0 = 0; s0 < g.S; s0 += KS)
    direct_wgrad_reuse_n<T, R, KS>(std::min<int64_t>(KS, g.S - s0), g, st, gr, s0, i0, i1, acc);
}

template <typename T>
void direct_wgrad_rows(const ConvGeometry& g, const T* x, const T* gy, int64_t p0, int64_t p1,
                       T* acc) {
  constexpr int V = Vec<T>::size;
  const int64_t Qr = (g.Q + V - 1) / V * V;
  typename IVec<T>::type lane;
  for (int l = 0; l < V; ++l) lane[l] = l;
  const int tail = static_cast<int>(g.Q - (Qr - V));
  const GradRows<T, decltype(lane < tail)> gr{gy, g.Q, Qr, tail, lane < tail};
  StagedRows<T>& st = thread_staging<T>();
  for (int64_t b0 = p0; b0 < p1; b0 += kStageRows) {
    const int64_t b1 = std::min(p1, b0 + kStageRows);
    st.stage(g, x, g.in_row(b0, 0), g.in_row(b1 - 1, g.R - 1) + 1, Qr, /*edges_only=*/true);
    // Per band of kernel rows: input rows whose grad_output partners all lie in this block
    // and inside the image go through the row-reuse kernel; the block's edges through the
    // per-row one. The staged rows serve every band.
    const int64_t bands = kernel_row_bands(g);
    for (int64_t band_i = 0; band_i < bands; ++band_i) {
      int64_t r0;
      const ConvGeometry band = kernel_row_band(g, band_i, bands, &r0);
      T* band_acc = acc + r0 * g.S;
      int64_t i0 = 0, i1 = 0;
      if (band.stride_h == 1 && band.dil_h == 1 && band.R >= 2 && band.R <= kMaxReuseRows) {
        i0 = std::max<int64_t>(0, b0 - band.pad_h + band.R - 1);
        i1 = std::max(i0, std::min(g.H, b1 - band.pad_h));
        with_kernel_height(band.R, [&](auto R) {
          if constexpr (decltype(R)::value >= 2)
            direct_wgrad_reuse_all<T, decltype(R)::value>(band, st, gr, i0, i1, band_acc);
        });
      }
      for (int64_t r = 0; r < band.R; ++r) {
        for (int64_t s0 = 0; s0 < g.S; s0 += 8) {
          switch (std::min<int64_t>(8, g.S - s0)) {
#define FC_TAPS(n)                                                          \
  case n:                                                                   \
    direct_wgrad_taps<T, n>(band, st, gr, b0, b1, r, s0, i0, i1, band_acc); \
    break;
            FC_TAPS(1) FC_TAPS(2) FC_TAPS(3) FC_TAPS(4) FC_TAPS(5) FC_TAPS(6) FC_TAPS(7) FC_TAPS(8)
#undef FC_TAPS
          }
        }
      }
    }
  }
}

}  // namespace FC_ISA
}  // namespace fastconv
