// Tuned direct kernels for the one-channel-per-group family (groups == C: depthwise layers
// with any channel multiplier M = K/C, and single-channel images). Each output plane is a
// 2-D correlation of one input plane with one R x S filter, so there is no channel
// reduction to feed a GEMM (GEMM view: M = N·P·Q, N = 1, K = R·S per channel); the speed
// comes from reusing each input element R·S times out of shared memory instead.
//
//   Fprop: y[n, k] = b[k] + w[k] ⋆ x[n, k/M]
//   Dgrad (stride 1): gx[n, c] = sum_m flip(w[c·M + m]) ⋆ gy[n, c·M + m], padding
//     dil·(R-1) - pad (may be negative: the tile loader zero-fills any out-of-range row)
//   Wgrad: gw[k, r, s] = sum_{n, p, q} gy[n, k, p, q] · x[n, k/M, p·sh - ph + r·dh, q·sw - pw +
//   s·dw]
//
// Tiles: a block of 32 x 8 threads owns a 32-column x (8·rows_per_thread)-row output tile of
// one plane; each thread keeps rows_per_thread outputs of one column in registers (register
// blocking: each kernel tap read from shared memory feeds all of them). The input tile plus
// halo sits in shared memory as the accumulation type; the kernel is split into chunks of at
// most 32 x 32 taps, and fewer where the halo of a large or strided/dilated kernel would
// overflow the 36 KB input buffer, so any R x S fits. All shared memory is static (< 48 KB),
// so no opt-in attribute is needed.
//
// Wgrad: a block owns one (output channel, kernel chunk) and a fixed slice of the (image,
// tile) items; threads are split into groups of gs lanes per tap (gs = 16 for 3x3), partial
// sums are reduced within the block in a fixed order and written to a workspace, then a
// second kernel adds the slices in a fixed order: bitwise reproducible, no atomics.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

#include "common.cuh"

namespace fastconv {
namespace {

constexpr int kTileQ = 32;      // output columns per tile = threads in x (one warp)
constexpr int kThreadRows = 8;  // threads in y
constexpr int kThreads = kTileQ * kThreadRows;
constexpr int kMaxRowsPerThread = 4;  // register blocking along output rows
constexpr int kInputSmemBytes = 36 * 1024;
// Weight chunk (fwd/dgrad: at most 32 x 32 taps) or grad_output tile (wgrad: at most
// 32 x 32 outputs); 1024 doubles either way.
constexpr int kAuxSmemBytes = 8 * 1024;
constexpr int kMaxChunk = 32;
constexpr int kMaxTaps = kMaxChunk * kMaxChunk;
static_assert(kMaxTaps * 8 <= kAuxSmemBytes, "weight chunk must fit");
static_assert(kThreadRows * kMaxRowsPerThread * kTileQ * 8 <= kAuxSmemBytes, "gy tile must fit");
// Wgrad: each thread sums at most this many taps (kMaxTaps / kThreads).
constexpr int kMaxTapsPerThread = kMaxTaps / kThreads;
// Wgrad: enough blocks to fill a large GPU; the split depends on the shape only, so the
// bits do not change from one GPU model to another.
constexpr int64_t kWgradTargetBlocks = 1024;
constexpr int64_t kMaxGridY = 65535;

// One pass of the tiled kernel: `in` planes of Hin x Win produce `out` planes of Pout x
// Qout with in_row = p·stride_h - off_h + r·dil_h (and the same for columns).
struct DirectPlan {
  int64_t Hin, Win, Pout, Qout;
  int64_t off_h, off_w, stride_h, stride_w, dil_h, dil_w;
  int64_t R, S;
  int64_t planes_out;  // N · out_per_n
  int64_t out_per_n, in_per_n, M;
  int64_t tiles_p, tiles_q;
  int rows_per_thread, chunk_r, chunk_s;
};

// Rows and columns of the shared-memory input tile for a chunk of cr x cs taps.
FC_HD int64_t tile_rows(const DirectPlan& d, int64_t cr) {
  return (int64_t(kThreadRows) * d.rows_per_thread - 1) * d.stride_h + (cr - 1) * d.dil_h + 1;
}
FC_HD int64_t tile_cols(const DirectPlan& d, int64_t cs) {
  return (int64_t(kTileQ) - 1) * d.stride_w + (cs - 1) * d.dil_w + 1;
}

// Picks rows_per_thread and the kernel chunk so the input tile fits, preferring the
// choice with the most reuse (multiply-adds per element loaded into shared memory): big
// 8-row-per-thread tiles for ordinary kernels, shorter tiles where a large strided or
// dilated kernel would otherwise be cut into tiny chunks. False if nothing fits (only for
// very large strides), leaving the geometry to the reference tier.
bool plan_tiles(DirectPlan& d, int64_t elem_bytes) {
  // Keeps the products below in range; such strides/dilations never fit anyway.
  if (d.stride_h > 1024 || d.stride_w > 1024 || d.dil_h > (1 << 20) || d.dil_w > (1 << 20))
    return false;
  const int64_t budget = kInputSmemBytes / elem_bytes;
  double best_reuse = 0;
  DirectPlan best = d;
  for (int rb = kMaxRowsPerThread; rb >= 1; rb /= 2) {
    DirectPlan c = d;
    c.rows_per_thread = rb;
    int64_t cr = std::min<int64_t>(d.R, kMaxChunk), cs = std::min<int64_t>(d.S, kMaxChunk);
    while (tile_rows(c, cr) * tile_cols(c, cs) > budget && (cr > 1 || cs > 1)) {
      // Shrink the chunk along the dimension whose tile extent is larger.
      if (cs == 1 || (cr > 1 && tile_rows(c, cr) >= tile_cols(c, cs)))
        --cr;
      else
        --cs;
    }
    const int64_t loaded = tile_rows(c, cr) * tile_cols(c, cs);
    if (loaded > budget) continue;
    const double reuse = double(cr * cs) * (kThreadRows * rb * kTileQ) / double(loaded);
    if (reuse > best_reuse * 1.0001) {  // ties keep the taller tile
      best_reuse = reuse;
      c.chunk_r = int(cr);
      c.chunk_s = int(cs);
      c.tiles_p = (d.Pout + kThreadRows * rb - 1) / (kThreadRows * rb);
      c.tiles_q = (d.Qout + kTileQ - 1) / kTileQ;
      best = c;
    }
  }
  if (best_reuse == 0) return false;
  d = best;
  return true;
}

// Zero-filled copy of the input window [ih0, ih0 + rows) x [iw0, iw0 + cols) of one plane.
template <typename T, typename A>
__device__ void load_tile(A* xs, const T* __restrict__ plane, int64_t H, int64_t W, int64_t ih0,
                          int64_t iw0, int rows, int cols, int tid) {
  for (int e = tid; e < rows * cols; e += kThreads) {
    const int rr = e / cols, cc = e - rr * cols;
    const int64_t ih = ih0 + rr, iw = iw0 + cc;
    xs[e] = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? A(plane[ih * W + iw]) : A(0);
  }
}

// Fprop (kDgrad = false) and stride-1 Dgrad (kDgrad = true: flipped taps, sum over the M
// output channels of each input channel). Grid: x = tiles of a plane, y = planes (strided).
template <typename T, bool kDgrad>
__global__ void __launch_bounds__(kThreads)
    direct_conv_kernel(DirectPlan d, const T* __restrict__ in, const T* __restrict__ w,
                       const T* __restrict__ bias, T* __restrict__ out) {
  using A = typename Acc<T>::type;
  __shared__ A xs[kInputSmemBytes / sizeof(A)];
  __shared__ A ws[kAuxSmemBytes / sizeof(A)];
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * kTileQ + tx;
  const int rb = d.rows_per_thread, tp = kThreadRows * rb;
  const int64_t p0 = (blockIdx.x / d.tiles_q) * tp, q0 = (blockIdx.x % d.tiles_q) * kTileQ;
  const int64_t terms = kDgrad ? d.M : 1;
  for (int64_t o = blockIdx.y; o < d.planes_out; o += gridDim.y) {
    const int64_t n = o / d.out_per_n, ch = o % d.out_per_n;
    A acc[kMaxRowsPerThread];
#pragma unroll
    for (int b = 0; b < kMaxRowsPerThread; ++b) acc[b] = A(0);
    for (int64_t j = 0; j < terms; ++j) {
      const int64_t in_plane = kDgrad ? n * d.in_per_n + ch * d.M + j : n * d.in_per_n + ch / d.M;
      const int64_t w_plane = kDgrad ? ch * d.M + j : ch;
      const T* inp = in + in_plane * d.Hin * d.Win;
      const T* wp = w + w_plane * d.R * d.S;
      for (int64_t r0 = 0; r0 < d.R; r0 += d.chunk_r) {
        const int cr = int(min(int64_t(d.chunk_r), d.R - r0));
        for (int64_t s0 = 0; s0 < d.S; s0 += d.chunk_s) {
          const int cs = int(min(int64_t(d.chunk_s), d.S - s0));
          const int rows = int(tile_rows(d, cr)), cols = int(tile_cols(d, cs));
          __syncthreads();  // every thread is done reading the previous chunk
          load_tile(xs, inp, d.Hin, d.Win, p0 * d.stride_h - d.off_h + r0 * d.dil_h,
                    q0 * d.stride_w - d.off_w + s0 * d.dil_w, rows, cols, tid);
          for (int e = tid; e < cr * cs; e += kThreads) {
            const int64_t r = r0 + e / cs, s = s0 + e % cs;
            ws[e] = A(kDgrad ? wp[(d.R - 1 - r) * d.S + (d.S - 1 - s)] : wp[r * d.S + s]);
          }
          __syncthreads();
          const int row_step = int(d.stride_h) * cols;
          for (int i = 0; i < cr; ++i) {
            for (int jj = 0; jj < cs; ++jj) {
              const A wv = ws[i * cs + jj];
              const A* xp = xs + i * int(d.dil_h) * cols + jj * int(d.dil_w) + tx * int(d.stride_w);
#pragma unroll
              for (int b = 0; b < kMaxRowsPerThread; ++b)
                if (b < rb) acc[b] += wv * xp[(ty + kThreadRows * b) * row_step];
            }
          }
        }
      }
    }
    const A bv = (!kDgrad && bias != nullptr) ? A(bias[ch]) : A(0);
    T* op = out + o * d.Pout * d.Qout;
#pragma unroll
    for (int b = 0; b < kMaxRowsPerThread; ++b) {
      const int64_t p = p0 + ty + kThreadRows * b, q = q0 + tx;
      if (b < rb && p < d.Pout && q < d.Qout) op[p * d.Qout + q] = T(acc[b] + bv);
    }
  }
}

// Wgrad partial sums. Grid: x = K · chunks (one output channel and kernel chunk per
// block), y = splits of the N · tiles items. partial[(split · K + k) · R·S + r·S + s].
template <typename T>
__global__ void __launch_bounds__(kThreads)
    direct_wgrad_kernel(DirectPlan d, int gs, const T* __restrict__ x, const T* __restrict__ gy,
                        typename Acc<T>::type* __restrict__ partial) {
  using A = typename Acc<T>::type;
  __shared__ A xs[kInputSmemBytes / sizeof(A)];
  __shared__ A gys[kAuxSmemBytes / sizeof(A)];
  __shared__ A red[kThreads];
  const int tid = threadIdx.y * kTileQ + threadIdx.x;
  const int rb = d.rows_per_thread, tp = kThreadRows * rb, positions = tp * kTileQ;
  const int64_t chunks_s = (d.S + d.chunk_s - 1) / d.chunk_s;
  const int64_t chunks = ((d.R + d.chunk_r - 1) / d.chunk_r) * chunks_s;
  const int64_t k = blockIdx.x / chunks, chunk = blockIdx.x % chunks;
  const int64_t r0 = (chunk / chunks_s) * d.chunk_r, s0 = (chunk % chunks_s) * d.chunk_s;
  const int cr = int(min(int64_t(d.chunk_r), d.R - r0));
  const int cs = int(min(int64_t(d.chunk_s), d.S - s0));
  const int taps = cr * cs, rows = int(tile_rows(d, cr)), cols = int(tile_cols(d, cs));
  const int slots = kThreads / gs, tap_base = tid / gs, lane = tid % gs;
  const int iters = (taps + slots - 1) / slots;  // <= kMaxTapsPerThread, same for all threads
  const int64_t K = d.out_per_n, N = d.planes_out / d.out_per_n;
  const int64_t tiles = d.tiles_p * d.tiles_q, items = N * tiles;
  const T* gyk = gy + k * d.Pout * d.Qout;
  const T* xk = x + (k / d.M) * d.Hin * d.Win;

  A acc[kMaxTapsPerThread];
#pragma unroll
  for (int i = 0; i < kMaxTapsPerThread; ++i) acc[i] = A(0);
  for (int64_t item = blockIdx.y; item < items; item += gridDim.y) {
    const int64_t n = item / tiles, tile = item % tiles;
    const int64_t p0 = (tile / d.tiles_q) * tp, q0 = (tile % d.tiles_q) * kTileQ;
    __syncthreads();  // every thread is done reading the previous item
    load_tile(xs, xk + n * d.in_per_n * d.Hin * d.Win, d.Hin, d.Win,
              p0 * d.stride_h - d.off_h + r0 * d.dil_h, q0 * d.stride_w - d.off_w + s0 * d.dil_w,
              rows, cols, tid);
    const T* gyn = gyk + n * K * d.Pout * d.Qout;
    for (int e = tid; e < positions; e += kThreads) {
      const int64_t p = p0 + e / kTileQ, q = q0 + e % kTileQ;
      gys[e] = (p < d.Pout && q < d.Qout) ? A(gyn[p * d.Qout + q]) : A(0);
    }
    __syncthreads();
    const int row_step = int(d.stride_h) * cols;
#pragma unroll
    for (int i = 0; i < kMaxTapsPerThread; ++i) {
      const int tap = tap_base + slots * i;
      if (i < iters && tap < taps) {
        const int ti = tap / cs, tj = tap - ti * cs;
        const A* xb = xs + ti * int(d.dil_h) * cols + tj * int(d.dil_w);
        for (int e = lane; e < positions; e += gs) {
          const int pl = e / kTileQ, ql = e % kTileQ;
          acc[i] += gys[e] * xb[pl * row_step + ql * int(d.stride_w)];
        }
      }
    }
  }
  // Fixed-order reduction of each tap's gs lanes (the lanes of a group are consecutive).
  const int64_t RS = d.R * d.S;
  A* out = partial + (int64_t(blockIdx.y) * K + k) * RS;
  for (int i = 0; i < iters; ++i) {
    __syncthreads();
    red[tid] = acc[0];
#pragma unroll
    for (int ii = 1; ii < kMaxTapsPerThread; ++ii)
      if (ii == i) red[tid] = acc[ii];
    __syncthreads();
    const int tap = tap_base + slots * i;
    if (lane == 0 && tap < taps) {
      A s = A(0);
      for (int l = 0; l < gs; ++l) s += red[tid + l];
      out[(r0 + tap / cs) * d.S + s0 + tap % cs] = s;
    }
  }
}

template <typename T>
__global__ void direct_wgrad_reduce_kernel(int64_t count, int64_t splits,
                                           const typename Acc<T>::type* __restrict__ partial,
                                           T* __restrict__ gw) {
  using A = typename Acc<T>::type;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count;
       e += int64_t(gridDim.x) * blockDim.x) {
    A s = A(0);
    for (int64_t sp = 0; sp < splits; ++sp) s += partial[sp * count + e];
    gw[e] = T(s);
  }
}

int64_t acc_bytes(at::ScalarType t) { return t == at::kDouble ? 8 : 4; }

// The plan of a forward pass over t; multiplier: output channels per input channel of the
// layer (the grad-input pass sums that many grad_output planes into each input plane).
DirectPlan plan_for(const ConvGeometry& t, int64_t multiplier) {
  DirectPlan d{};
  d.Hin = t.H;
  d.Win = t.W;
  d.Pout = t.P;
  d.Qout = t.Q;
  d.off_h = t.pad_h;
  d.off_w = t.pad_w;
  d.stride_h = t.stride_h;
  d.stride_w = t.stride_w;
  d.dil_h = t.dil_h;
  d.dil_w = t.dil_w;
  d.R = t.R;
  d.S = t.S;
  d.out_per_n = t.K;
  d.in_per_n = t.C;
  d.M = multiplier;
  d.planes_out = t.N * t.K;
  return d;
}

void launch_conv(const DirectPlan& d, bool dgrad, const at::Tensor& in, const at::Tensor& w,
                 const at::Tensor& bias, at::Tensor& out) {
  const dim3 grid(unsigned(d.tiles_p * d.tiles_q), unsigned(std::min(d.planes_out, kMaxGridY)));
  const dim3 block(kTileQ, kThreadRows);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, in.scalar_type(), "fastconv_direct", [&] {
        const scalar_t* bp = bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr;
        if (dgrad)
          direct_conv_kernel<scalar_t, true><<<grid, block, 0, stream>>>(
              d, in.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(), nullptr,
              out.mutable_data_ptr<scalar_t>());
        else
          direct_conv_kernel<scalar_t, false><<<grid, block, 0, stream>>>(
              d, in.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(), bp,
              out.mutable_data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

// gridDim.x holds the tiles of one plane.
bool grid_fits(const DirectPlan& d) { return d.tiles_p * d.tiles_q <= 0x7fffffffLL; }

}  // namespace

bool direct_fwd_cuda(const ConvGeometry& g, const at::Tensor& x, const at::Tensor& w,
                     const at::Tensor& bias, at::Tensor& y) {
  if (!g.one_channel_per_group()) return false;
  DirectPlan d = plan_for(g, g.K_per_group());
  if (!plan_tiles(d, acc_bytes(x.scalar_type())) || !grid_fits(d)) return false;
  launch_conv(d, false, x, w, bias, y);
  return true;
}

bool direct_dgrad_cuda(const ConvGeometry& g, const at::Tensor& gy, const at::Tensor& w,
                       at::Tensor& gx) {
  if (!g.one_channel_per_group() || !g.unit_stride()) return false;
  // A forward pass over grad_output with the flipped kernel (conv_geometry.h).
  DirectPlan d = plan_for(dgrad_as_forward(g), g.K_per_group());
  if (!plan_tiles(d, acc_bytes(gy.scalar_type())) || !grid_fits(d)) return false;
  launch_conv(d, true, gy, w, at::Tensor(), gx);
  return true;
}

bool direct_wgrad_cuda(const ConvGeometry& g, const at::Tensor& x, const at::Tensor& gy,
                       at::Tensor& gw) {
  if (!g.one_channel_per_group()) return false;
  DirectPlan d = plan_for(g, g.K_per_group());
  if (!plan_tiles(d, acc_bytes(x.scalar_type()))) return false;
  const int64_t chunks = ((g.R + d.chunk_r - 1) / d.chunk_r) * ((g.S + d.chunk_s - 1) / d.chunk_s);
  const int64_t blocks_x = g.K * chunks;
  if (blocks_x > 0x7fffffffLL) return false;
  const int64_t items = g.N * d.tiles_p * d.tiles_q;
  const int64_t splits = std::max<int64_t>(
      1, std::min({(kWgradTargetBlocks + blocks_x - 1) / blocks_x, items, kMaxGridY}));
  // Lanes per tap: the largest power of two (<= 32) that keeps every tap of the largest
  // chunk in one pass of the block's threads; 1 when a chunk has more taps than threads.
  const int64_t taps = int64_t(d.chunk_r) * d.chunk_s;
  int gs = 32;
  while (gs > 1 && taps * gs > kThreads) gs /= 2;
  const int64_t count = g.K * g.R * g.S;
  const auto acc_type = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor partial = at::empty({splits * count}, x.options().dtype(acc_type));
  auto stream = c10::cuda::getCurrentCUDAStream();
  const dim3 block(kTileQ, kThreadRows);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fastconv_wgrad", [&] {
    using A = typename Acc<scalar_t>::type;
    direct_wgrad_kernel<scalar_t><<<dim3(unsigned(blocks_x), unsigned(splits)), block, 0, stream>>>(
        d, gs, x.const_data_ptr<scalar_t>(), gy.const_data_ptr<scalar_t>(),
        partial.mutable_data_ptr<A>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const int64_t blocks = std::min<int64_t>((count + kThreads - 1) / kThreads, 65535LL * 8);
    direct_wgrad_reduce_kernel<scalar_t><<<unsigned(blocks), kThreads, 0, stream>>>(
        count, splits, partial.const_data_ptr<A>(), gw.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return true;
}

}  // namespace fastconv
