// Staged input rows of the row kernels (forward.h, grad_weight.h, grad_input.h).
//
// The input rows a block of output rows needs are copied once into a small buffer,
// zero-extended left and right and split into column runs, so that every tap of every
// output column reads a contiguous run: no bounds checks, no gathers, any stride or
// dilation, and the copy costs one pass over the rows against R*S FMAs per output.
// Rows outside the image all read one shared zero row.
//
// At stride_w == 1, forward tiles and grad-weight vectors whose columns lie inside the
// image read x in place (in_place, row_for); stage() then copies only the columns the
// others read: kEdgeCols and the kernel's halo either side.
// Included by the per-ISA translation units after vec.h.
#pragma once

#include <algorithm>
#include <type_traits>

#include "../runtime/workspace.h"

namespace fastconv {
namespace FC_ISA {

constexpr int64_t kStageRows = 32;  // output rows per staged block

// How a staged row lays out the padded input columns (c = iw + pad_w) that output columns
// [0, q_cols) read: `runs` runs of `len` values, run j holding the padded columns
// base[j] + i*stride_w for i < len, and tap s of output column q at run offset
// tap_off[s] + q. Two layouts, the smaller is taken:
//   phases: one run per column phase c % stride_w that some tap reads (base = the phase);
//     taps of one phase share a run. Small whenever the taps' windows overlap.
//   taps: one run per tap (base = s * dil_w). Small when they do not: a huge dilation or
//     stride would make a phase run span the whole padded row, or every phase of it.
// Either way a row holds at most S * (q_cols + halo / stride_w) values: bounded by the
// output and weight sizes, never by the stride or dilation themselves.
struct ColumnRuns {
  int64_t runs = 0, len = 0;
  bool phases = true;
  // Per tap: run * len + first index. base: per run. Both in the kTaps workspace.
  const int64_t* tap_off = nullptr;
  const int64_t* base = nullptr;

  int64_t row_stride() const { return runs * len; }
  // One run starting at padded column 0: at stride 1, the padded row itself.
  bool contiguous() const { return phases && runs == 1 && base[0] == 0; }
};

// Lays out the runs for g and output columns [0, q_cols) into `buf` (2 * S + 1 values).
inline ColumnRuns column_runs(const ConvGeometry& g, int64_t q_cols, int64_t* buf) {
  const int64_t S = g.S, sw = g.stride_w, dw = g.dil_w;
  int64_t* tap_off = buf;
  int64_t* base = buf + S;
  // Phases read, in increasing order (tap columns s*dw are increasing, their phases not).
  int64_t nph = 0;
  for (int64_t s = 0; s < S; ++s) {
    const int64_t ph = (s * dw) % sw;
    int64_t i = 0;
    while (i < nph && base[i] < ph) ++i;
    if (i < nph && base[i] == ph) continue;
    for (int64_t j = nph; j > i; --j) base[j] = base[j - 1];
    base[i] = ph;
    ++nph;
  }
  const int64_t phase_len = q_cols + ((S - 1) * dw) / sw;
  ColumnRuns c;
  c.tap_off = tap_off;
  c.base = base;
  if (nph * phase_len <= S * q_cols) {
    c.runs = nph, c.len = phase_len;
    for (int64_t s = 0; s < S; ++s) {
      const int64_t ph = (s * dw) % sw;
      const int64_t run = std::lower_bound(base, base + nph, ph) - base;
      tap_off[s] = run * phase_len + (s * dw) / sw;
    }
    return c;
  }
  c.phases = false, c.runs = S, c.len = q_cols;
  for (int64_t s = 0; s < S; ++s) base[s] = s * dw, tap_off[s] = s * q_cols;
  return c;
}

// Padded input row x (width W, padding pad_w) as the runs of `cr`: dst[j*len + i] = padded
// column base[j] + i*stride_w, zero outside the row. Columns of the first run [cut_lo,
// cut_hi) are left unwritten (the in-place tiles read them from x).
template <typename T>
void stage_row(const ConvGeometry& g, const ColumnRuns& cr, const T* src, T* dst, int64_t cut_lo,
               int64_t cut_hi) {
  constexpr int V = Vec<T>::size;
  const int64_t sw = g.stride_w, W = g.W, pw = g.pad_w, L = cr.len;
  if (sw == 1) {
    for (int64_t j = 0; j < cr.runs; ++j) {
      // Run columns [i0, i1): x where it has them, zero elsewhere. Our own vector copy:
      // glibc's memmove is slower on these rows shifted by pad_w.
      T* d = dst + j * L;
      const int64_t shift = cr.base[j] - pw;  // input column of run index 0
      auto fill = [&](int64_t i0, int64_t i1) {
        const int64_t lo = std::clamp(-shift, i0, i1), hi = std::clamp(W - shift, lo, i1);
        zero_fill(d + i0, lo - i0);
        copy_strided(d + lo, src + lo + shift, hi - lo, 1);
        zero_fill(d + hi, i1 - hi);
      };
      if (j == 0 && cut_lo < cut_hi) {
        fill(0, cut_lo);
        fill(cut_hi, L);
      } else {
        fill(0, L);
      }
    }
    return;
  }
  std::fill_n(dst, cr.row_stride(), T(0));
  const int64_t iw_end = W;
#if defined(__GNUC__) && !defined(__clang__)
  if (sw == 2 && cr.phases && cr.runs == 2 && pw >= 0) {
    // Pairs (iw = 2m, 2m + 1) go to phase pw % 2 at m + pw / 2 and to the other phase at
    // m + (pw + 1) / 2: one two-vector shuffle per phase per 2V inputs.
    typename IVec<T>::type even, odd;
    for (int l = 0; l < V; ++l) even[l] = 2 * l, odd[l] = 2 * l + 1;
    const int64_t par = pw & 1, e_off = pw / 2, o_off = (pw + 1) / 2;
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
    if (rem > 0 && rem < 2 * V && m + (rem + 1) / 2 + e_off <= L && m + rem / 2 + o_off <= L) {
      const vec_t<T> a = loadu_n(src + 2 * m, static_cast<int>(std::min<int64_t>(rem, V)));
      const vec_t<T> b = rem > V ? loadu_n(src + 2 * m + V, static_cast<int>(rem - V)) : vec_t<T>{};
      storeu_n(d_even + m + e_off, __builtin_shuffle(a, b, even), static_cast<int>((rem + 1) / 2));
      if (rem > 1)
        storeu_n(d_odd + m + o_off, __builtin_shuffle(a, b, odd), static_cast<int>(rem / 2));
      return;
    }
    for (int64_t iw = 2 * m; iw < iw_end; ++iw) {
      const int64_t c = iw + pw;
      if ((c >> 1) < L) dst[(c & 1) * L + (c >> 1)] = src[iw];
    }
    return;
  }
#endif
  for (int64_t j = 0; j < cr.runs; ++j) {  // strided reads, contiguous writes
    T* d = dst + j * L;
    // Run indices whose column lies in the row: base + i*sw - pw in [0, W).
    const Range ir = valid_out_range(cr.base[j] - pw, sw, W, L);
    for (int64_t i = ir.lo; i < ir.hi; ++i) d[i] = src[i * sw + cr.base[j] - pw];
  }
}

// Padded, run-split copy of input rows [ih0, ih1), reused across calls on a thread: rows
// inside the image are staged, rows outside it all read one zero row, so every output row
// sees all R kernel rows and the buffer holds at most H + 1 rows however large the stride,
// padding or dilation.
template <typename T>
struct StagedRows {
  int64_t ih0 = 0, lo = 0, hi = 0;  // staged rows [lo, hi) = [ih0, ih1) within [0, H)
  ColumnRuns cols;
  const T* data = nullptr;
  const T* zero_row = nullptr;
  // In-place reads (edges_only): x's plane, else nullptr; a tile over output columns
  // [q, q + n) reads padded columns [q, q + n + halo).
  const T* plane = nullptr;
  int64_t H = 0, W = 0, pad_w = 0, halo = 0;

  // The widest forward tile (U * V columns); edge tiles are at most this wide.
  static constexpr int64_t kEdgeCols = 4 * Vec<T>::size;

  // q_cols: output columns [0, q_cols) are read, for every tap.
  // buf: rows_elems(...) values, taps: taps_elems(g) (the kStage and kTaps workspaces).
  void stage(const ConvGeometry& g, const T* x, int64_t ih0_, int64_t ih1, int64_t q_cols,
             bool edges_only, T* buf, int64_t* taps) {
    ih0 = ih0_;
    lo = std::clamp<int64_t>(ih0, 0, g.H);
    hi = std::clamp<int64_t>(ih1, lo, g.H);
    cols = column_runs(g, q_cols, taps);
    H = g.H, W = g.W, pad_w = g.pad_w, halo = (g.S - 1) * g.dil_w;
    plane = edges_only && g.stride_w == 1 && cols.contiguous() ? x : nullptr;
    const int64_t rs = cols.row_stride();
    data = buf;
    T* zero = buf + (hi - lo) * rs;
    zero_fill(zero, rs);
    zero_row = zero;
    // Padded columns [0, left) and [right, row_stride) are what tiles not in_place read.
    const int64_t left = plane ? std::min(rs, pad_w + kEdgeCols + halo) : rs;
    const int64_t right = plane ? std::max(left, pad_w + W - kEdgeCols - halo) : rs;
    for (int64_t ih = lo; ih < hi; ++ih)
      stage_row(g, cols, x + ih * g.W, buf + (ih - lo) * rs, left, right);
  }
  // Elements stage() needs in buf, and in taps.
  static int64_t rows_elems(const ConvGeometry& g, int64_t ih0, int64_t ih1, int64_t q_cols) {
    const int64_t n = std::clamp<int64_t>(ih1, 0, g.H) - std::clamp<int64_t>(ih0, 0, g.H);
    const int64_t phase_len = q_cols + ((g.S - 1) * g.dil_w) / g.stride_w;
    const int64_t rs = std::min(std::min(g.S, g.stride_w) * phase_len, g.S * q_cols);
    return (std::max<int64_t>(n, 0) + 1) * rs + 1;
  }
  static int64_t taps_elems(const ConvGeometry& g) { return 2 * g.S + 1; }

  // Staged input row ih; tap s of output column q reads row(ih)[tap_off[s] + q].
  const T* row(int64_t ih) const {
    return ih >= lo && ih < hi ? data + (ih - lo) * cols.row_stride() : zero_row;
  }
  const int64_t* tap_off() const { return cols.tap_off; }

  // Whether a tile over output columns [q, q + n) reads inside the image's columns, so
  // its in-image rows come from x itself.
  bool in_place(int64_t q, int64_t n) const {
    return plane != nullptr && q >= pad_w && q + n + halo <= pad_w + W;
  }
  // Row ih as row() would give it, read in place when the tile is in_place.
  const T* row_for(int64_t ih, bool inside) const {
    return inside && plane != nullptr && ih >= 0 && ih < H ? plane + ih * W - pad_w : row(ih);
  }
};

// The input rows that output rows [b0, b1) read, staged in this thread's kStage and kTaps
// workspaces, edges only (the interior is read in place where the layout allows).
template <typename T>
struct StagedBlock {
  int64_t ih0, ih1;
  Workspace<T> rows;
  Workspace<int64_t> taps;
  StagedRows<T> st;
  StagedBlock(const ConvGeometry& g, const T* x, int64_t b0, int64_t b1, int64_t q_cols)
      : ih0(g.in_row(b0, 0)),
        ih1(g.in_row(b1 - 1, g.R - 1) + 1),
        rows(Slot::kStage, StagedRows<T>::rows_elems(g, ih0, ih1, q_cols)),
        taps(Slot::kTaps, StagedRows<T>::taps_elems(g)) {
    st.stage(g, x, ih0, ih1, q_cols, /*edges_only=*/true, rows.data(), taps.data());
  }
};

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

// The row-reuse kernels are specialised for kernel heights up to 7. Taller kernels with
// stride_h = dil_h = 1 run as ceil(R / 7) bands of kernel rows, each a kernel of its own
// (padding shifted by its first row), where the generic tile's one load per FMA would
// bind them.
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

}  // namespace FC_ISA
}  // namespace fastconv
