// CPU driver: dtype and layout handling, the choice of kernel family, and the threading
// (at::parallel_for, so torch.set_num_threads governs it). The arithmetic lives in the
// per-ISA kernel tables (direct.h, dense.h).
//
// Reproducibility: every reduction (grad-weight, grad-bias) is split into chunks whose
// boundaries depend only on the problem, never on the thread count, and the chunks are
// combined in a fixed order, so backward results are bitwise identical run to run and
// across torch.set_num_threads settings.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "../ops.h"
#include "algorithm.h"
#include "dense_bf16.h"
#include "fft.h"
#include "kernel_table.h"

namespace fastconv {

bool cpu_isa_allowed(const char* isa) {
  auto rank = [](const std::string& s) { return s == "base" ? 0 : s == "avx2" ? 1 : 2; };
  static const int cap = [&] {
    const char* env = std::getenv("FASTCONV_CPU_ISA");
    return env ? rank(env) : 2;
  }();
  return rank(isa) <= cap;
}

void* page_aligned_alloc(size_t bytes) {
  void* p = std::aligned_alloc(4096, (std::max<size_t>(bytes, 1) + 4095) / 4096 * 4096);
  if (!p) throw std::bad_alloc();
  return p;
}

// The best kernels this CPU runs (and cpu_isa_allowed permits).
template <typename T>
const KernelTable<T>& kernels() {
  static const KernelTable<T>* best = [] {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (cpu_isa_allowed("avx512") && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        avx512::table<T>())
      return avx512::table<T>();
    if (cpu_isa_allowed("avx2") && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma") && avx2::table<T>())
      return avx2::table<T>();
#endif
    return base::table<T>();
  }();
  return *best;
}
template const KernelTable<float>& kernels<float>();
template const KernelTable<double>& kernels<double>();

namespace {

// Work per parallel task we aim for: enough to amortise a task's start, few enough tasks
// to balance two to sixteen threads.
constexpr int64_t kTaskMacs = 1 << 16;

int64_t grain_for(int64_t macs_per_item) {
  return std::max<int64_t>(1, kTaskMacs / std::max<int64_t>(1, macs_per_item));
}

// Geometry of grad-input as a stride-1 forward pass: correlate grad_output with the
// flipped kernel; padding becomes dil*(R-1) - pad (negative values crop).
ConvGeometry dgrad_as_forward(const ConvGeometry& g) {
  ConvGeometry t = g;
  t.C = g.K;
  t.H = g.P;
  t.W = g.Q;
  t.K = g.C;
  t.P = g.H;
  t.Q = g.W;
  t.pad_h = g.dil_h * (g.R - 1) - g.pad_h;
  t.pad_w = g.dil_w * (g.S - 1) - g.pad_w;
  return t;
}

// Scratch memory of one call, reused across calls on the calling thread (up to 64 MB per
// slot; larger requests get a one-off buffer). A packed or flipped weight allocated afresh
// each call (9 MB for a 512x512x3x3 layer) lands in new mmap'ed pages whose first-touch
// faults cost more than the packing itself: ResNet-18 conv5 forward 12 ms -> 8 ms.
// Contents are not initialised. Slots are buffers alive at the same time.
enum ScratchSlot { kPackedWeight = 0, kFlippedWeight = 1, kWinogradGrad = 2, kScratchSlots = 3 };

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
template <typename T>
std::unique_ptr<T[], FreeDeleter> page_aligned(size_t count) {
  return std::unique_ptr<T[], FreeDeleter>(static_cast<T*>(page_aligned_alloc(count * sizeof(T))));
}

template <typename T>
class Scratch {
 public:
  Scratch(ScratchSlot slot, int64_t n) {
    const size_t count = static_cast<size_t>(std::max<int64_t>(n, 1));
    if (count * sizeof(T) > (size_t{64} << 20)) {
      owned_ = page_aligned<T>(count);
      data_ = owned_.get();
      return;
    }
    static thread_local std::unique_ptr<T[], FreeDeleter> cached[kScratchSlots];
    static thread_local size_t cached_count[kScratchSlots] = {};
    if (cached_count[slot] < count) {
      cached[slot] = page_aligned<T>(count);
      cached_count[slot] = count;
    }
    data_ = cached[slot].get();
  }
  T* data() const { return data_; }

 private:
  std::unique_ptr<T[], FreeDeleter> owned_;
  T* data_ = nullptr;
};

// w'[g][c][k][R-1-r][S-1-s] = w[g][k][c][r][s]: the weight of dgrad_as_forward.
template <typename T>
Scratch<T> flip_transpose_weight(const ConvGeometry& g, const T* w) {
  const int64_t Kg = g.K_per_group(), Cg = g.C_per_group(), RS = g.R * g.S;
  Scratch<T> buf(kFlippedWeight, g.weight_numel());
  T* out = buf.data();
  at::parallel_for(0, g.groups * Cg, grain_for(Kg * RS), [&](int64_t b, int64_t e) {
    for (int64_t gc = b; gc < e; ++gc) {
      const int64_t grp = gc / Cg, c = gc % Cg;
      for (int64_t k = 0; k < Kg; ++k)
        for (int64_t rs = 0; rs < RS; ++rs)
          out[(gc * Kg + k) * RS + (RS - 1 - rs)] = w[((grp * Kg + k) * Cg + c) * RS + rs];
    }
  });
  return buf;
}

// ---- direct family ----------------------------------------------------------------------
// One plane-by-plane correlation per (output channel, input channel of its group): the
// one-channel-per-group layers, and grouped layers with few channels per group (ResNeXt's
// 4), where an implicit GEMM would pack an im2col slice for only a handful of rows.

template <typename T>
void direct_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const auto& kt = kernels<T>();
  const int64_t rows = g.N * g.K * g.P, HW = g.H * g.W, PQ = g.P * g.Q, Cg = g.C_per_group();
  const int64_t RS = g.R * g.S;
  at::parallel_for(0, rows, grain_for(g.Q * RS * Cg), [&](int64_t b, int64_t e) {
    while (b < e) {
      const int64_t plane = b / g.P, p0 = b % g.P, p1 = std::min(g.P, p0 + (e - b));
      const int64_t n = plane / g.K, k = plane % g.K, c0 = (k / g.K_per_group()) * Cg;
      for (int64_t c = 0; c < Cg; ++c)
        kt.direct_fwd_rows(g, x + (n * g.C + c0 + c) * HW, w + (k * Cg + c) * RS,
                           bias ? bias[k] : T(0), y + plane * PQ, p0, p1, c > 0);
      b += p1 - p0;
    }
  });
}

// grad_input of the direct family: stride 1 is a forward pass with the flipped, transposed
// weight (dgrad_as_forward); strided layers scatter each grad_output plane into the input
// planes it came from. Tasks own whole rows or planes of grad_input, so no two threads
// write the same element.
template <typename T>
void direct_dgrad(const ConvGeometry& g, const T* gy, const T* w, T* gx) {
  if (g.stride_h == 1 && g.stride_w == 1) {
    const Scratch<T> wf = flip_transpose_weight(g, w);
    direct_forward(dgrad_as_forward(g), gy, wf.data(), static_cast<const T*>(nullptr), gx);
    return;
  }
  const auto& kt = kernels<T>();
  const int64_t Kg = g.K_per_group(), Cg = g.C_per_group(), RS = g.R * g.S;
  const int64_t HW = g.H * g.W, PQ = g.P * g.Q;
  at::parallel_for(0, g.N * g.C, grain_for(Kg * PQ * RS), [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) {
      const int64_t n = plane / g.C, c = plane % g.C, k0 = (c / Cg) * Kg;
      std::fill_n(gx + plane * HW, HW, T(0));
      for (int64_t k = k0; k < k0 + Kg; ++k)
        kt.direct_dgrad_plane(g, gy + (n * g.K + k) * PQ, w + (k * Cg + c % Cg) * RS,
                              gx + plane * HW);
    }
  });
}

// Row chunk of the grad-weight reduction: fixed by the problem size alone.
// At least 4 kernel heights of rows, so that most input rows of a chunk take the
// row-reuse kernel (whose rows need all R grad_output partners in the chunk).
int64_t wgrad_chunk_rows(const ConvGeometry& g) {
  const int64_t by_size = (int64_t{1} << 14) / std::max<int64_t>(1, g.Q);
  return std::max<int64_t>({1, by_size, 4 * g.R});
}

// gw[k][j] = sum over chunks c of partial[k][c][j] (j < width), in chunk order.
template <typename T>
void sum_chunks(int64_t K, int64_t chunks, int64_t width, const T* partial, T* gw) {
  at::parallel_for(0, K, 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k)
      for (int64_t j = 0; j < width; ++j) {
        T s = 0;
        for (int64_t ci = 0; ci < chunks; ++ci) s += partial[(k * chunks + ci) * width + j];
        gw[k * width + j] = s;
      }
  });
}

template <typename T>
void direct_wgrad(const ConvGeometry& g, const T* x, const T* gy, T* gw) {
  const auto& kt = kernels<T>();
  const int64_t RS = g.R * g.S, HW = g.H * g.W, PQ = g.P * g.Q, Cg = g.C_per_group();
  const int64_t chunk = wgrad_chunk_rows(g), per_plane = (g.P + chunk - 1) / chunk;
  const int64_t chunks = g.N * per_plane;  // per output channel
  // partial[k][chunk][c][RS], each written by exactly one task, then summed in chunk order.
  std::vector<T> partial(static_cast<size_t>(g.K * chunks * Cg * RS), T(0));
  at::parallel_for(0, g.K * chunks, grain_for(chunk * g.Q * RS * Cg), [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      const int64_t k = item / chunks, ci = item % chunks, c0 = (k / g.K_per_group()) * Cg;
      const int64_t n = ci / per_plane, p0 = (ci % per_plane) * chunk;
      for (int64_t c = 0; c < Cg; ++c)
        kt.direct_wgrad_rows(g, x + (n * g.C + c0 + c) * HW, gy + (n * g.K + k) * PQ, p0,
                             std::min(g.P, p0 + chunk), partial.data() + (item * Cg + c) * RS);
    }
  });
  sum_chunks(g.K, chunks, Cg * RS, partial.data(), gw);
}

// Both gradients of a one-to-one layer (every output channel reads its own input channel:
// single-channel images, depthwise on the row kernels) at stride 1, in one pass. A task
// takes a chunk of rows of one plane -- the grad-weight chunks of direct_wgrad, so the sums
// are the same and do not depend on the thread count -- and computes grad-input on those
// rows, then grad-weight over the same grad_output rows while they are still in cache:
// grad_output is read from memory once instead of twice, with one parallel region fewer. Measured,
// one 3x3 filter, 2 threads, against the two passes: 256^2 33 -> 27 us; at 1024^2 (310 us) and
// 2048^2 the same within noise, as the row kernels, not memory, bound them.
template <typename T>
bool direct_backward_fused(const ConvGeometry& g, const T* x, const T* gy, const T* w, T* gx,
                           T* gw) {
  if (g.C_per_group() != 1 || g.K_per_group() != 1 || g.stride_h != 1 || g.stride_w != 1)
    return false;
  const auto& kt = kernels<T>();
  const ConvGeometry gd = dgrad_as_forward(g);
  const Scratch<T> wf = flip_transpose_weight(g, w);
  const int64_t RS = g.R * g.S, HW = g.H * g.W, PQ = g.P * g.Q;
  const int64_t chunk = wgrad_chunk_rows(g), per_plane = (g.P + chunk - 1) / chunk;
  const int64_t chunks = g.N * per_plane;  // per channel
  std::vector<T> partial(static_cast<size_t>(g.K * chunks * RS), T(0));
  at::parallel_for(0, g.K * chunks, grain_for(2 * chunk * g.Q * RS), [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      const int64_t k = item / chunks, ci = item % chunks, n = ci / per_plane;
      const int64_t p0 = (ci % per_plane) * chunk, p1 = std::min(g.P, p0 + chunk);
      // grad_input rows in proportion to the chunk (the same rows when H == P).
      const int64_t h0 = p0 * g.H / g.P, h1 = p1 == g.P ? g.H : p1 * g.H / g.P;
      const int64_t plane = n * g.C + k;
      if (h0 < h1)
        kt.direct_fwd_rows(gd, gy + plane * PQ, wf.data() + k * RS, T(0), gx + plane * HW, h0, h1,
                           false);
      kt.direct_wgrad_rows(g, x + plane * HW, gy + plane * PQ, p0, p1, partial.data() + item * RS);
    }
  });
  sum_chunks(g.K, chunks, RS, partial.data(), gw);
  return true;
}

// ---- Winograd family (dense 3x3 stride 1) -------------------------------------------------

template <typename T>
void winograd_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const auto& kt = kernels<T>();
  const int64_t Kp = (g.K + kDenseMR - 1) / kDenseMR * kDenseMR, k_panels = Kp / kDenseMR;
  const Scratch<T> packed(kPackedWeight, 16 * (Kp * g.C + kWinoPad));
  at::parallel_for(0, k_panels, grain_for(16 * kDenseMR * g.C), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      kt.winograd_pack_weight(g, w, packed.data(), i * kDenseMR, std::min(g.K, (i + 1) * kDenseMR));
  });
  // Chunks of whole NR-column panels of tiles (across tile rows and images), split evenly,
  // at most 8 panels and at least one chunk per thread. Every chunk streams the whole
  // transformed weight (16*K*C values: 4 MB at 256 channels) while its per-xi working set
  // stays in L2, so chunks are as large as balance allows: with one 32-tile panel per chunk,
  // 256x14^2 re-read 4 MB seven times and ran 4 or 6 ms depending on what else had used L3.
  const int64_t nr = 2 * kt.block, tiles = g.N * ((g.P + 1) / 2) * ((g.Q + 1) / 2);
  const int64_t panels = (tiles + nr - 1) / nr;
  const int64_t chunks =
      std::min(panels, std::max<int64_t>(at::get_num_threads(), (panels + 7) / 8));
  at::parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      kt.winograd_fwd_tile(g, x, packed.data(), bias, y, i * panels / chunks * nr,
                           std::min(tiles, (i + 1) * panels / chunks * nr));
  });
}

template <typename T>
void winograd_wgrad(const ConvGeometry& g, const T* x, const T* gy, T* gw) {
  const auto& kt = kernels<T>();
  // Every block stores its channels' rows of du on its first chunk: no zero fill.
  const Scratch<T> du(kWinogradGrad, 16 * (g.C * g.K + kWinoPad));
  const int64_t c_panels = (g.C + kDenseMR - 1) / kDenseMR;
  const int64_t blocks = std::min<int64_t>(c_panels, at::get_num_threads());
  at::parallel_for(0, blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      kt.winograd_wgrad_block(g, x, gy, i * c_panels / blocks * kDenseMR,
                              std::min(g.C, (i + 1) * c_panels / blocks * kDenseMR), du.data());
  });
  at::parallel_for(0, g.C, grain_for(g.K * 64),
                   [&](int64_t b, int64_t e) { kt.winograd_wgrad_finish(g, du.data(), gw, b, e); });
}

// A dilated "same" 3x3 layer (dilation d, padding d, stride 1) is d*d independent
// undilated layers with padding 1: output phase (a, b) -- rows a mod d, columns b mod d --
// reads only input phase (a, b). The phases go into the batch dimension, so one Winograd
// call covers them all; grad-weight sums over the enlarged batch as it must.
struct PhaseSplit {
  bool on = false;
  int64_t d = 1;
  ConvGeometry pg{};  // the geometry the kernels see

  PhaseSplit(const ConvGeometry& g, CpuFamily family) {
    on = family == CpuFamily::kWinograd && g.dil_h > 1;
    if (!on) return;
    d = g.dil_h;
    pg = g;
    pg.N = g.N * d * d;
    pg.H = pg.P = (g.H + d - 1) / d;
    pg.W = pg.Q = (g.W + d - 1) / d;
    pg.pad_h = pg.pad_w = 1;
    pg.dil_h = pg.dil_w = 1;
  }
  // [N, C, A, B] -> [d*d*N, C, ceil(A/d), ceil(B/d)], zero past A and B.
  Tensor split(const Tensor& t) const {
    const int64_t N = t.size(0), C = t.size(1), A = t.size(2), B = t.size(3);
    const int64_t A2 = (A + d - 1) / d, B2 = (B + d - 1) / d;
    return at::constant_pad_nd(t, {0, B2 * d - B, 0, A2 * d - A}, 0)
        .view({N, C, A2, d, B2, d})
        .permute({3, 5, 0, 1, 2, 4})
        .reshape({d * d * N, C, A2, B2})
        .contiguous();  // reshape keeps a strided view where it can (size-1 dims)
  }
  // The inverse, cropped to A x B.
  Tensor merge(const Tensor& t, int64_t A, int64_t B) const {
    const int64_t N = t.size(0) / (d * d), C = t.size(1), A2 = t.size(2), B2 = t.size(3);
    return t.view({d, d, N, C, A2, B2})
        .permute({2, 3, 4, 0, 5, 1})
        .reshape({N, C, A2 * d, B2 * d})
        .narrow(2, 0, A)
        .narrow(3, 0, B)
        .contiguous();
  }
};

// ---- blocked family (depthwise) ---------------------------------------------------------

template <typename T>
void blocked_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y,
                     bool x_nhwc = false) {
  const auto& kt = kernels<T>();
  const int64_t blocks = (g.C + kt.block - 1) / kt.block;
  at::parallel_for(0, g.N * blocks, grain_for(kt.block * g.P * g.Q * g.R * g.S),
                   [&](int64_t b, int64_t e) {
                     for (int64_t i = b; i < e; ++i)
                       kt.blocked_fwd(g, x + (i / blocks) * g.C * g.H * g.W, x_nhwc, w, bias,
                                      y + (i / blocks) * g.K * g.P * g.Q, (i % blocks) * kt.block);
                   });
}

template <typename T>
void blocked_dgrad(const ConvGeometry& g, const T* gy, const T* w, T* gx) {
  if (g.stride_h == 1 && g.stride_w == 1) {
    const Scratch<T> wf = flip_transpose_weight(g, w);
    blocked_forward(dgrad_as_forward(g), gy, wf.data(), static_cast<const T*>(nullptr), gx);
    return;
  }
  const auto& kt = kernels<T>();
  const int64_t blocks = (g.C + kt.block - 1) / kt.block;
  at::parallel_for(
      0, g.N * blocks, grain_for(kt.block * g.P * g.Q * g.R * g.S), [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
          kt.blocked_dgrad(g, gy + (i / blocks) * g.K * g.P * g.Q, w,
                           gx + (i / blocks) * g.C * g.H * g.W, (i % blocks) * kt.block);
      });
}

// One partial per (image, block), summed over images in order: reproducible bits.
template <typename T>
void blocked_wgrad(const ConvGeometry& g, const T* x, const T* gy, T* gw, bool x_nhwc = false) {
  const auto& kt = kernels<T>();
  const int64_t V = kt.block, blocks = (g.C + V - 1) / V, RS = g.R * g.S;
  std::vector<T> partial(static_cast<size_t>(g.N * blocks * RS * V));
  at::parallel_for(0, g.N * blocks, grain_for(V * g.P * g.Q * RS), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      kt.blocked_wgrad(g, x + (i / blocks) * g.C * g.H * g.W, x_nhwc,
                       gy + (i / blocks) * g.K * g.P * g.Q, partial.data() + i * RS * V,
                       (i % blocks) * V);
  });
  at::parallel_for(0, g.C, grain_for(g.N * RS), [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c)
      for (int64_t rs = 0; rs < RS; ++rs) {
        T s = 0;
        for (int64_t n = 0; n < g.N; ++n)
          s += partial[((n * blocks + c / V) * RS + rs) * V + c % V];
        gw[c * RS + rs] = s;
      }
  });
}

// ---- dense family -----------------------------------------------------------------------

template <typename T>
void dense_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const auto& kt = kernels<T>();
  const int64_t PQ = g.P * g.Q, Kg = g.K_per_group(), CRS = g.C_per_group() * g.R * g.S;
  // Tiles: (block of positions, group, block of output channels). A tile packs its slice of
  // im2col once for all its output channels, so output channels are split only when there
  // are too few tiles to keep every thread busy (no reduction crosses tiles, so this never
  // changes the result). Positions run over the whole batch: maps smaller than a tile share
  // one across images; larger maps are cut at image boundaries.
  // Spanning tiles are whole NR-column panels, split evenly, up to four per thread. Output
  // channels are split only below two tiles per thread: such a split packs the same im2col
  // slice once per channel block, which measured costlier than thinner position tiles.
  const int64_t pq_tile = 256, per_image = (PQ + pq_tile - 1) / pq_tile;
  const bool span = PQ < pq_tile;
  const int64_t nr = 2 * kt.block, panels = (g.N * PQ + nr - 1) / nr;
  const int64_t threads = at::get_num_threads();
  const int64_t pos_tiles =
      span ? std::max((g.N * PQ + pq_tile - 1) / pq_tile, std::min(panels, 4 * threads))
           : g.N * per_image;
  const int64_t base = g.groups * pos_tiles;
  const int64_t k_split = base >= 2 * threads ? 1
                                              : std::min((2 * threads + base - 1) / base,
                                                         (Kg + kDenseMR - 1) / kDenseMR);
  const int64_t k_tile = ((Kg + k_split - 1) / k_split + kDenseMR - 1) / kDenseMR * kDenseMR;
  const int64_t k_tiles = (Kg + k_tile - 1) / k_tile;
  const int64_t tiles = g.groups * k_tiles * pos_tiles;
  at::parallel_for(0, tiles, grain_for(std::min(k_tile, Kg) * pq_tile * CRS),
                   [&](int64_t b, int64_t e) {
                     for (int64_t t = b; t < e; ++t) {
                       const int64_t pt = t % pos_tiles, kt_i = (t / pos_tiles) % k_tiles;
                       const int64_t grp = t / (pos_tiles * k_tiles), k0 = kt_i * k_tile;
                       int64_t j0 = pt * panels / pos_tiles * nr;
                       int64_t j1 = std::min(g.N * PQ, (pt + 1) * panels / pos_tiles * nr);
                       if (!span) {
                         const int64_t n = pt / per_image, q = pt % per_image;
                         j0 = n * PQ + q * pq_tile;
                         j1 = n * PQ + std::min(PQ, (q + 1) * pq_tile);
                       }
                       kt.dense_fwd_tile(g, x, w + grp * Kg * CRS, bias ? bias + grp * Kg : nullptr,
                                         y, grp, k0, std::min(Kg, k0 + k_tile), j0, j1);
                     }
                   });
}

template <typename T>
void dense_wgrad(const ConvGeometry& g, const T* x, const T* gy, T* gw) {
  const auto& kt = kernels<T>();
  const int64_t Kg = g.K_per_group(), CRS = g.C_per_group() * g.R * g.S, PQ = g.P * g.Q;
  const int64_t k_tile = 128, j_tile = 22 * kDenseMR;
  const int64_t k_tiles = (Kg + k_tile - 1) / k_tile, j_tiles = (CRS + j_tile - 1) / j_tile;
  const int64_t tiles = g.groups * k_tiles * j_tiles;
  // Few weight tiles (small weights, e.g. a stem): also split the sum over images into a
  // fixed number of slices with their own partial weights, added in slice order -- as long
  // as each slice keeps a deep reduction (>= 512 positions). All of it depends on the
  // problem alone, so the result does not depend on the thread count.
  const int64_t slices =
      tiles >= 16 ? 1 : std::clamp<int64_t>(g.N * PQ / 512, 1, std::min<int64_t>(g.N, 8));
  const int64_t per_slice = (g.N + slices - 1) / slices;
  std::vector<T> partial(static_cast<size_t>(slices > 1 ? slices * g.weight_numel() : 0), T(0));
  T* out = slices > 1 ? partial.data() : gw;
  if (slices == 1) std::fill_n(gw, g.weight_numel(), T(0));
  const int64_t items = tiles * slices;
  at::parallel_for(
      0, items, grain_for(k_tile * j_tile * PQ * per_slice), [&](int64_t b, int64_t e) {
        for (int64_t it = b; it < e; ++it) {
          const int64_t sl = it / tiles, t = it % tiles;
          const int64_t jt = t % j_tiles, kt_i = (t / j_tiles) % k_tiles,
                        grp = t / (j_tiles * k_tiles);
          const int64_t k0 = kt_i * k_tile, j0 = jt * j_tile;
          kt.dense_wgrad_tile(g, x, gy, out + sl * g.weight_numel() + grp * Kg * CRS, grp, k0,
                              std::min(Kg, k0 + k_tile), j0, std::min(CRS, j0 + j_tile),
                              sl * per_slice, std::min(g.N, (sl + 1) * per_slice));
        }
      });
  if (slices > 1) {
    const int64_t numel = g.weight_numel();
    at::parallel_for(0, numel, 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        T s = 0;
        for (int64_t sl = 0; sl < slices; ++sl) s += partial[sl * numel + i];
        gw[i] = s;
      }
    });
  }
}

template <typename T>
void dense_dgrad(const ConvGeometry& g, const T* gy, const T* w, T* gx) {
  if (g.stride_h == 1 && g.stride_w == 1) {
    const Scratch<T> wf = flip_transpose_weight(g, w);
    dense_forward(dgrad_as_forward(g), gy, wf.data(), static_cast<const T*>(nullptr), gx);
    return;
  }
  const auto& kt = kernels<T>();
  const int64_t Cg = g.C_per_group();
  // Tasks own disjoint input channels (zeroed by the task), so col2im never races. A task
  // transposes its slice of the weight once and runs it over a chunk of images: the chunks are as
  // large as keeping every thread busy allows.
  const int64_t c_tile = std::max<int64_t>(1, std::min<int64_t>(Cg, 8));
  const int64_t c_tiles = (Cg + c_tile - 1) / c_tile, slabs = g.groups * c_tiles;
  const int64_t chunks = std::min(g.N, (4 * at::get_num_threads() + slabs - 1) / slabs);
  at::parallel_for(0, slabs * chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t ch = t % chunks, ct = (t / chunks) % c_tiles, grp = t / (chunks * c_tiles);
      kt.dense_dgrad_tile(g, gy, w, gx, grp, ct * c_tile, std::min(Cg, (ct + 1) * c_tile),
                          ch * g.N / chunks, (ch + 1) * g.N / chunks);
    }
  });
}

template <typename T>
void bias_grad(const ConvGeometry& g, const T* gy, T* gb) {
  const auto& kt = kernels<T>();
  const int64_t PQ = g.P * g.Q;
  at::parallel_for(0, g.K, grain_for(g.N * PQ), [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      T s = 0;
      for (int64_t n = 0; n < g.N; ++n) s += kt.sum(gy + (n * g.K + k) * PQ, PQ);
      gb[k] = s;
    }
  });
}

// ---- dtype and layout -------------------------------------------------------------------

// Kernels run in float32 or float64; half-precision inputs compute in float32 and round
// once at the end (float32 accumulation, as torch's CPU convolution does).
at::ScalarType compute_type(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

// Contiguous NCHW in the compute dtype; free (no dispatch) when it already is.
Tensor as_compute(const Tensor& t) {
  const auto ct = compute_type(t.scalar_type());
  if (t.scalar_type() == ct && t.is_contiguous()) return t;
  return t.to(ct).contiguous();
}

// A channels_last input the blocked (depthwise) kernels read in place: their staged blocks
// are channel-innermost anyway, so converting to NCHW would be a wasted transpose.
bool reads_nhwc(CpuFamily family, const Tensor& t) {
  return family == CpuFamily::kBlocked && t.scalar_type() == compute_type(t.scalar_type()) &&
         t.dim() == 4 && !t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast);
}

Tensor to_dtype(const Tensor& t, at::ScalarType type) {
  return t.scalar_type() == type ? t : t.to(type);
}

// An output tensor. Large ones are fresh mmap'ed memory whose first touch faults in every
// 4 KB page; FASTCONV_HUGEPAGES=1 asks for transparent huge pages instead (as NumPy does;
// THP is often in `madvise` mode). Off by default: measured here it halves the median
// fault cost of a 33 MB output but about one call in five then stalls for ~40 ms, so the
// mean gets worse (4K 3x3 forward: mean 5.4 ms with, 3.6-4.3 ms without).
Tensor empty_output(IntArrayRef sizes, const at::TensorOptions& options) {
  Tensor t = at::empty(sizes, options);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  static const bool enabled = [] {
    const char* v = std::getenv("FASTCONV_HUGEPAGES");
    return v != nullptr && std::string(v) == "1";
  }();
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const auto begin = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t lo = (begin + kHuge - 1) & ~(kHuge - 1), hi = (begin + t.nbytes()) & ~(kHuge - 1);
  if (enabled && hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
#endif
  return t;
}

void check_cpu(const Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "fastconv: ", name, " is on ", t.device(),
              " but the CPU kernel was selected; move all tensors to one device");
}

// bfloat16 dense layers: the bf16 operands go straight into vdpbf16ps (no float32 copy
// of input and weight), float32 accumulation, one rounding.
Tensor dense_forward_bf16(const ConvGeometry& g, const Tensor& input, const Tensor& weight,
                          const OptTensor& bias) {
  const Tensor x = input.contiguous(), w = weight.contiguous();
  const bool has_bias = bias.has_value() && bias->defined();
  const Tensor b = has_bias ? bias->to(at::kFloat).contiguous() : Tensor();
  Tensor y = empty_output({g.N, g.K, g.P, g.Q}, x.options().dtype(at::kFloat));
  const auto raw = [](const Tensor& t) {
    return reinterpret_cast<const uint16_t*>(t.const_data_ptr<at::BFloat16>());
  };
  if (g.N > 0)
    dense_forward_bf16(g, raw(x), raw(w), has_bias ? b.const_data_ptr<float>() : nullptr,
                       y.mutable_data_ptr<float>());
  return y.to(at::kBFloat16);
}

// The kernel family's pass, for the non-FFT families (fft.cpp has its own entry points).
// x_nhwc: x is channels_last (only the blocked family reads that layout).
template <typename T>
void forward(CpuFamily f, const ConvGeometry& g, const T* x, const T* w, const T* b, T* y,
             bool x_nhwc) {
  if (f == CpuFamily::kWinograd) return winograd_forward(g, x, w, b, y);
  if (f == CpuFamily::kBlocked) return blocked_forward(g, x, w, b, y, x_nhwc);
  if (f == CpuFamily::kRows) return direct_forward(g, x, w, b, y);
  dense_forward(g, x, w, b, y);
}
template <typename T>
void grad_input(CpuFamily f, const ConvGeometry& g, const T* gy, const T* w, T* gx) {
  if (f == CpuFamily::kWinograd) {  // stride 1: a Winograd forward with the flipped weight
    const Scratch<T> wf = flip_transpose_weight(g, w);
    return winograd_forward(dgrad_as_forward(g), gy, wf.data(), static_cast<const T*>(nullptr), gx);
  }
  if (f == CpuFamily::kBlocked) return blocked_dgrad(g, gy, w, gx);
  if (f == CpuFamily::kRows) return direct_dgrad(g, gy, w, gx);
  dense_dgrad(g, gy, w, gx);
}
template <typename T>
void grad_weight(CpuFamily f, const ConvGeometry& g, const T* x, const T* gy, T* gw, bool x_nhwc) {
  if (f == CpuFamily::kWinograd) return winograd_wgrad(g, x, gy, gw);
  if (f == CpuFamily::kBlocked) return blocked_wgrad(g, x, gy, gw, x_nhwc);
  if (f == CpuFamily::kRows) return direct_wgrad(g, x, gy, gw);
  dense_wgrad(g, x, gy, gw);
}

}  // namespace

Tensor conv2d_fwd_cpu(const Tensor& input, const Tensor& weight, const OptTensor& bias,
                      IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation,
                      int64_t groups) {
  const ConvGeometry g = check_conv2d_args(input, weight, bias, stride, padding, dilation, groups);
  check_cpu(input, "input");
  const CpuFamily family = cpu_family(g, input.scalar_type());
  if (family == CpuFamily::kDenseBf16) return dense_forward_bf16(g, input, weight, bias);
  const bool x_nhwc = reads_nhwc(family, input);
  const Tensor x = x_nhwc ? input : as_compute(input), w = as_compute(weight);
  const bool has_bias = bias.has_value() && bias->defined();
  const Tensor b = has_bias ? as_compute(*bias) : Tensor();
  const PhaseSplit ps(g, family);
  const ConvGeometry& gk = ps.on ? ps.pg : g;  // what the kernels see
  const Tensor xk = ps.on ? ps.split(x) : x;
  Tensor y = empty_output({gk.N, gk.K, gk.P, gk.Q}, x.options());
  if (g.N > 0 && family == CpuFamily::kFft) {
    fft_forward(g, x, w, has_bias ? OptTensor(b) : std::nullopt, y);
  } else if (g.N > 0) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fastconv_conv2d_cpu", [&] {
      forward(family, gk, xk.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(),
              has_bias ? b.const_data_ptr<scalar_t>() : nullptr, y.mutable_data_ptr<scalar_t>(),
              x_nhwc);
    });
  }
  if (ps.on) y = ps.merge(y, g.P, g.Q);
  return to_dtype(y, input.scalar_type());
}

Grads conv2d_bwd_cpu(const Tensor& grad_output, const Tensor& input, const Tensor& weight,
                     IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation, int64_t groups,
                     std::array<bool, 3> output_mask) {
  const ConvGeometry g =
      check_conv2d_backward_args(grad_output, input, weight, stride, padding, dilation, groups);
  check_cpu(input, "input");
  // Stride-1 grad-input of a bf16 dense layer is a bf16 forward pass (flipped, transposed
  // weight) and takes the vdpbf16ps kernel too.
  CpuFamily family = cpu_family(g, grad_output.scalar_type());
  Tensor gx_bf16;
  if (family == CpuFamily::kDenseBf16 && output_mask[0] && g.stride_h == 1 && g.stride_w == 1) {
    const Tensor w = weight.contiguous();
    const Scratch<at::BFloat16> wf = flip_transpose_weight(g, w.const_data_ptr<at::BFloat16>());
    const Tensor wt = at::from_blob(const_cast<at::BFloat16*>(wf.data()),
                                    {g.C, g.K_per_group(), g.R, g.S}, w.options());
    gx_bf16 = dense_forward_bf16(dgrad_as_forward(g), grad_output, wt, std::nullopt);
    output_mask[0] = false;
    if (!output_mask[1] && !output_mask[2]) return {gx_bf16, std::nullopt, std::nullopt};
  }
  if (family == CpuFamily::kDenseBf16) family = CpuFamily::kDense;  // the rest in float32
  const Tensor gy = as_compute(grad_output);
  Tensor gx, gw, gb;
  if (output_mask[0]) gx = empty_output({g.N, g.C, g.H, g.W}, gy.options());
  if (output_mask[1]) gw = at::empty(weight.sizes(), gy.options());
  if (output_mask[2]) gb = at::empty({g.K}, gy.options());
  if (g.N == 0) {
    if (gw.defined()) gw.zero_();
    if (gb.defined()) gb.zero_();
  } else {
    const bool x_nhwc = output_mask[1] && reads_nhwc(family, input);
    const Tensor x = !output_mask[1] ? Tensor() : x_nhwc ? input : as_compute(input);
    const Tensor w = output_mask[0] ? as_compute(weight) : Tensor();
    const bool fft = family == CpuFamily::kFft;
    if (fft && gx.defined()) fft_grad_input(g, gy, w, gx);
    if (fft && gw.defined()) fft_grad_weight(g, x, gy, gw);
    const PhaseSplit ps(g, family);
    const ConvGeometry& gk = ps.on ? ps.pg : g;  // what the kernels see
    const Tensor gyk = ps.on ? ps.split(gy) : gy, xk = ps.on && x.defined() ? ps.split(x) : x;
    Tensor gxk = ps.on && gx.defined() ? at::empty({gk.N, gk.C, gk.H, gk.W}, gy.options()) : gx;
    AT_DISPATCH_FLOATING_TYPES(gy.scalar_type(), "fastconv_conv2d_backward_cpu", [&] {
      const scalar_t* gyp = gyk.const_data_ptr<scalar_t>();
      // Both gradients of a one-to-one stride-1 layer come from one pass.
      const bool fused = family == CpuFamily::kRows && gx.defined() && gw.defined() &&
                         direct_backward_fused(
                             gk, xk.const_data_ptr<scalar_t>(), gyp, w.const_data_ptr<scalar_t>(),
                             gxk.mutable_data_ptr<scalar_t>(), gw.mutable_data_ptr<scalar_t>());
      if (gx.defined() && !fft && !fused)
        grad_input(family, gk, gyp, w.const_data_ptr<scalar_t>(), gxk.mutable_data_ptr<scalar_t>());
      if (gw.defined() && !fft && !fused)
        grad_weight(family, gk, xk.const_data_ptr<scalar_t>(), gyp, gw.mutable_data_ptr<scalar_t>(),
                    x_nhwc);
      if (gb.defined())
        bias_grad(g, gy.const_data_ptr<scalar_t>(), gb.mutable_data_ptr<scalar_t>());
    });
    if (ps.on && gx.defined()) gx = ps.merge(gxk, g.H, g.W);
  }
  const auto out = [&](const Tensor& t) {
    return t.defined() ? OptTensor(to_dtype(t, input.scalar_type())) : std::nullopt;
  };
  return {gx_bf16.defined() ? OptTensor(gx_bf16) : out(gx), out(gw), out(gb)};
}

TORCH_LIBRARY_IMPL(fastconv, CPU, m) {
  m.impl("conv2d", &conv2d_fwd_cpu);
  m.impl("conv2d_backward", &conv2d_bwd_cpu);
}

}  // namespace fastconv
