// Tensor-core implicit GEMM for dense layers (C/groups > 1) with nvcuda::wmma: float16 and
// bfloat16 inputs as m16n16k16, float32 inputs as TF32 m16n16k8 (only when torch allows
// TF32 for convolutions, as F.conv2d does), always float32 accumulation. The im2col matrix
// is never stored: each block gathers its A tile straight into shared memory, with zeros
// for padding and for every tail (M, N and K need not be multiples of the tile).
//
//   Fprop: M = N·P·Q, N = K/groups, K = C/groups·R·S      (one GEMM per group, grid.z)
//     A[(n, p, q)][(c, r, s)] = x[n, g·Cg + c, p·sh - ph + r·dh, q·sw - pw + s·dw]
//     B[(c, r, s)][k]         = w[g·Kg + k, c, r, s]
//   Dgrad: M = N·H·W, N = C/groups, K = K/groups·R·S
//     A[(n, h, w)][(k, r, s)] = gy[n, g·Kg + k, (h + ph - r·dh)/sh, (w + pw - s·dw)/sw]
//                               (zero unless both divisions are exact and in range)
//     B[(k, r, s)][c]         = w[g·Kg + k, c, r, s]
//   Wgrad: M = K/groups, N = C/groups·R·S, K = N·P·Q       (split-K, see below)
//     A[k][(n, p, q)]         = gy[n, g·Kg + k, p, q]
//     B[(n, p, q)][(c, r, s)] = x[n, g·Cg + c, p·sh - ph + r·dh, q·sw - pw + s·dw]
//
// Block tile BM x BN x BK = 64 x 64 x 32 with 4 warps, each owning a 32 x 32 corner as
// 2 x 2 wmma accumulators. A is stored row-major (m, k) and B column-major (k, n), each
// row padded by 16 bytes against bank conflicts; the accumulators go through shared memory
// column-major so the epilogue writes consecutive output positions (NCHW rows) per warp.
// One tile stage, no double buffering: simple first, tuned later against the benchmark.
//
// Wgrad's reduction (N·P·Q) is long and its output small, so K is split into contiguous
// ranges of whole BK tiles, one per block; each block writes its float32 partial tile to a
// workspace and a second kernel adds the splits in a fixed order: deterministic, no
// atomics. Fprop and dgrad run the same kernel with one split.
#include <ATen/Context.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <string>
#include <type_traits>

#include "common.cuh"

namespace fastconv {
namespace {

namespace wmma = nvcuda::wmma;

constexpr int kBM = 64, kBN = 64, kBK = 32;
constexpr int kWarpTile = 32;  // each warp: 32 x 32 of the block tile
constexpr int kWarpsM = kBM / kWarpTile, kWarpsN = kBN / kWarpTile;
constexpr int kThreads = 32 * kWarpsM * kWarpsN;  // 128
constexpr int kFrag = 16;                         // wmma M and N
constexpr int kLdc = kBM + 4;                     // float accumulators, column-major
constexpr int64_t kMaxGridYZ = 65535;

// Storage type in global and shared memory, the wmma operand type and its K step, and the
// conversions, per input dtype. torch builds with __CUDA_NO_HALF_CONVERSIONS__, hence the
// explicit intrinsics.
template <typename T>
struct Mma;
template <>
struct Mma<at::Half> {
  using S = __half;
  using Op = __half;
  static constexpr int kK = 16;
  static __device__ S zero() { return __float2half(0.f); }
  static __device__ S prep(S v) { return v; }
  static __device__ float to_float(S v) { return __half2float(v); }
  static __device__ S from_float(float v) { return __float2half_rn(v); }
};
template <>
struct Mma<at::BFloat16> {
  using S = __nv_bfloat16;
  using Op = __nv_bfloat16;
  static constexpr int kK = 16;
  static __device__ S zero() { return __float2bfloat16(0.f); }
  static __device__ S prep(S v) { return v; }
  static __device__ float to_float(S v) { return __bfloat162float(v); }
  static __device__ S from_float(float v) { return __float2bfloat16_rn(v); }
};
template <>
struct Mma<float> {
  using S = float;
  static constexpr int kK = 8;
  static __device__ S zero() { return 0.f; }
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  using Op = wmma::precision::tf32;
  // Round to nearest; the tensor core would otherwise just drop the low 13 mantissa bits.
  static __device__ S prep(S v) { return wmma::__float_to_tf32(v); }
#else  // TF32 wmma does not exist before sm_80 (and the kernel body is compiled out there)
  using Op = float;
  static __device__ S prep(S v) { return v; }
#endif
  static __device__ float to_float(S v) { return v; }
  static __device__ S from_float(float v) { return v; }
};

// Shared-memory row length of the A and B tiles: BK plus 16 bytes of padding, which keeps
// every fragment pointer 32-byte aligned (16 rows x 80 or 144 bytes) and ldm a multiple
// of 16 bytes, as load_matrix_sync requires.
template <typename S>
constexpr int lds() {
  return kBK + 16 / int(sizeof(S));
}

enum class Pass { kFprop, kDgrad, kWgrad };

struct IgemmParams {
  int64_t M, Ngemm, Kgemm, groups;
  int64_t tiles_m, tiles_n;
  int64_t splits, k_per_split;  // split-K: splits ranges of k_per_split (a multiple of BK)
  // Source of A (x for fprop, grad_output otherwise): channels per image and per group,
  // plane size.
  int64_t src_c, src_cg, src_h, src_w;
  // Fprop/dgrad: destination (and GEMM row) planes: channels per image and per group, plane
  // size. Wgrad: the input x, which B gathers from.
  int64_t dst_c, dst_cg, dst_h, dst_w;
  int64_t R, S, pad_h, pad_w, stride_h, stride_w, dil_h, dil_w;
  int64_t w_cg;  // weight.size(1) = C/groups
  int64_t w_kg;  // K/groups
};

// a_src feeds A, b_src feeds B (the weight, or x for wgrad). Fprop/dgrad write T to dst
// (with bias for fprop); wgrad writes float partials to ws[split][g·M + m][n].
template <typename T, Pass kPass>
__global__ void __launch_bounds__(kThreads)
    igemm_kernel(IgemmParams prm, const typename Mma<T>::S* __restrict__ a_src,
                 const typename Mma<T>::S* __restrict__ b_src,
                 const typename Mma<T>::S* __restrict__ bias, typename Mma<T>::S* __restrict__ dst,
                 float* __restrict__ ws) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  using Tr = Mma<T>;
  using S = typename Tr::S;
  using Op = typename Tr::Op;
  constexpr int kLd = lds<S>();
  constexpr int kK = Tr::kK;
  __shared__ __align__(128) S As[kBM * kLd];
  __shared__ __align__(128) S Bs[kBN * kLd];
  __shared__ __align__(128) float Cs[kBN * kLdc];

  const int tid = threadIdx.x, warp = tid / 32;
  const int warp_m = warp % kWarpsM, warp_n = warp / kWarpsM;
  // Loader roles: A row a_row, columns a_k0 + 2i; B column (GEMM n) b_j0 + 4i, row b_k.
  constexpr int kAKStep = kThreads / kBM;  // 2
  constexpr int kBJStep = kThreads / kBK;  // 4
  const int a_row = tid % kBM, a_k0 = tid / kBM;
  const int b_k = tid % kBK, b_j0 = tid / kBK;
  const int RS = int(prm.R * prm.S), Sk = int(prm.S);
  const int64_t src_plane = prm.src_h * prm.src_w;

  for (int64_t g = blockIdx.z; g < prm.groups; g += gridDim.z) {
    for (int64_t jt = blockIdx.y; jt < prm.tiles_n; jt += gridDim.y) {
      for (int64_t t = blockIdx.x; t < prm.tiles_m * prm.splits; t += gridDim.x) {
        const int64_t mt = t % prm.tiles_m, split = t / prm.tiles_m;
        const int64_t m0 = mt * kBM, j0 = jt * kBN;
        const int64_t k_begin = split * prm.k_per_split;
        const int64_t k_end = min(prm.Kgemm, k_begin + prm.k_per_split);
        // This thread's GEMM row: its output position and where its gather starts (fprop,
        // dgrad), or its output channel (wgrad).
        const int64_t m = m0 + a_row;
        const bool row_ok = m < prm.M;
        const int64_t mm = row_ok ? m : 0;
        const int64_t ow = mm % prm.dst_w, oh = (mm / prm.dst_w) % prm.dst_h;
        const int64_t n = mm / (prm.dst_w * prm.dst_h);
        const S* src_ng = kPass == Pass::kWgrad
                              ? a_src + (g * prm.src_cg + mm) * src_plane
                              : a_src + (n * prm.src_c + g * prm.src_cg) * src_plane;

        wmma::fragment<wmma::accumulator, kFrag, kFrag, kK, float> acc[2][2];
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
          for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);

        for (int64_t k0 = k_begin; k0 < k_end; k0 += kBK) {
          __syncthreads();  // every warp is done with the previous tiles
#pragma unroll 4
          for (int i = 0; i < kBK / kAKStep; ++i) {
            const int kl = a_k0 + kAKStep * i;
            const int64_t kk = k0 + kl;
            S v = Tr::zero();
            if (row_ok && kk < prm.Kgemm) {
              if constexpr (kPass == Pass::kWgrad) {
                const int64_t img = kk / src_plane;
                v = src_ng[img * prm.src_c * src_plane + (kk - img * src_plane)];
              } else {
                const int ki = int(kk);  // < Kgemm, which fits int (kgemm_fits)
                const int ch = ki / RS, rs = ki - ch * RS;
                const int r = rs / Sk, s = rs - r * Sk;
                if constexpr (kPass == Pass::kFprop) {
                  const int64_t ih = oh * prm.stride_h - prm.pad_h + r * prm.dil_h;
                  const int64_t iw = ow * prm.stride_w - prm.pad_w + s * prm.dil_w;
                  if (ih >= 0 && ih < prm.src_h && iw >= 0 && iw < prm.src_w)
                    v = src_ng[(ch * prm.src_h + ih) * prm.src_w + iw];
                } else {
                  const int64_t ph = oh + prm.pad_h - r * prm.dil_h;
                  const int64_t pw = ow + prm.pad_w - s * prm.dil_w;
                  if (ph >= 0 && pw >= 0 && ph % prm.stride_h == 0 && pw % prm.stride_w == 0) {
                    const int64_t p = ph / prm.stride_h, q = pw / prm.stride_w;
                    if (p < prm.src_h && q < prm.src_w)
                      v = src_ng[(ch * prm.src_h + p) * prm.src_w + q];
                  }
                }
              }
            }
            As[a_row * kLd + kl] = Tr::prep(v);
          }
          {
            const int64_t kk = k0 + b_k;
            // Wgrad: this thread's B row is one output position (img, bp, bq) of grad_output.
            int64_t img = 0, bp = 0, bq = 0;
            if constexpr (kPass == Pass::kWgrad) {
              img = kk / src_plane;
              const int64_t pq = kk - img * src_plane;
              bp = pq / prm.src_w;
              bq = pq - bp * prm.src_w;
            }
#pragma unroll 4
            for (int i = 0; i < kBN / kBJStep; ++i) {
              const int jl = b_j0 + kBJStep * i;
              const int64_t j = j0 + jl;
              S v = Tr::zero();
              if (j < prm.Ngemm && kk < prm.Kgemm) {
                if constexpr (kPass == Pass::kFprop) {
                  v = b_src[(g * prm.w_kg + j) * prm.Kgemm + kk];
                } else if constexpr (kPass == Pass::kDgrad) {
                  const int kout = int(kk) / RS, rs = int(kk) - kout * RS;
                  v = b_src[((g * prm.w_kg + kout) * prm.w_cg + j) * RS + rs];
                } else {
                  const int ji = int(j);  // < Ngemm = C/groups·R·S, checked to fit int
                  const int c = ji / RS, rs = ji - c * RS;
                  const int r = rs / Sk, s = rs - r * Sk;
                  const int64_t ih = bp * prm.stride_h - prm.pad_h + r * prm.dil_h;
                  const int64_t iw = bq * prm.stride_w - prm.pad_w + s * prm.dil_w;
                  if (ih >= 0 && ih < prm.dst_h && iw >= 0 && iw < prm.dst_w)
                    v = b_src[((img * prm.dst_c + g * prm.dst_cg + c) * prm.dst_h + ih) *
                                  prm.dst_w +
                              iw];
                }
              }
              Bs[jl * kLd + b_k] = Tr::prep(v);
            }
          }
          __syncthreads();
#pragma unroll
          for (int ks = 0; ks < kBK; ks += kK) {
            wmma::fragment<wmma::matrix_a, kFrag, kFrag, kK, Op, wmma::row_major> a[2];
            wmma::fragment<wmma::matrix_b, kFrag, kFrag, kK, Op, wmma::col_major> b[2];
#pragma unroll
            for (int i = 0; i < 2; ++i)
              wmma::load_matrix_sync(a[i], As + (warp_m * kWarpTile + i * kFrag) * kLd + ks, kLd);
#pragma unroll
            for (int j = 0; j < 2; ++j)
              wmma::load_matrix_sync(b[j], Bs + (warp_n * kWarpTile + j * kFrag) * kLd + ks, kLd);
#pragma unroll
            for (int i = 0; i < 2; ++i)
#pragma unroll
              for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
          }
        }
        // Cs[j * kLdc + m]: column-major, so consecutive threads below read consecutive m.
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
          for (int j = 0; j < 2; ++j)
            wmma::store_matrix_sync(
                Cs + (warp_n * kWarpTile + j * kFrag) * kLdc + warp_m * kWarpTile + i * kFrag,
                acc[i][j], kLdc, wmma::mem_col_major);
        __syncthreads();
        for (int e = tid; e < kBM * kBN; e += kThreads) {
          const int ml = e % kBM, jl = e / kBM;
          const int64_t om = m0 + ml, j = j0 + jl;
          if (om < prm.M && j < prm.Ngemm) {
            const float v = Cs[jl * kLdc + ml];
            if constexpr (kPass == Pass::kWgrad) {
              const int64_t count = prm.groups * prm.M * prm.Ngemm;
              ws[split * count + (g * prm.M + om) * prm.Ngemm + j] = v;
            } else {
              const int64_t pq = om % (prm.dst_h * prm.dst_w), on = om / (prm.dst_h * prm.dst_w);
              const int64_t ch = g * prm.dst_cg + j;
              const float b = bias != nullptr ? Tr::to_float(bias[ch]) : 0.f;
              dst[(on * prm.dst_c + ch) * prm.dst_h * prm.dst_w + pq] = Tr::from_float(v + b);
            }
          }
        }
        __syncthreads();  // Cs is free for the next tile
      }
    }
  }
#else
  __trap();  // never launched: the host checks the compute capability first
#endif
}

// Wgrad: dst[e] = sum over splits of ws[split][e], splits in order.
template <typename T>
__global__ void igemm_split_sum_kernel(int64_t count, int64_t splits, const float* __restrict__ ws,
                                       typename Mma<T>::S* __restrict__ dst) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count;
       e += int64_t(gridDim.x) * blockDim.x) {
    float s = 0.f;
    for (int64_t sp = 0; sp < splits; ++sp) s += ws[sp * count + e];
    dst[e] = Mma<T>::from_float(s);
  }
#endif
}

// torch.backends.cudnn.allow_tf32 (what F.conv2d honours for float32) is read through
// Context::allowTF32CuDNN, whose parameter changed across torch versions: none, a string
// op name, then std::optional<at::Float32Op>. Deduce it from the member's type so one
// source builds against all of them; ask for the convolution flag where the API has one
// (the no-argument form may throw when conv and rnn flags differ).
template <typename C>
bool tf32_query(bool (C::*f)() const, const C& c) {
  return (c.*f)();
}
template <typename C>
bool tf32_query(bool (C::*f)(const std::string&) const, const C& c) {
  return (c.*f)(std::string("conv"));
}
template <typename C>
bool tf32_query(bool (C::*f)(std::string) const, const C& c) {
  return (c.*f)(std::string("conv"));
}
template <typename C, typename E>
bool tf32_query(bool (C::*f)(std::optional<E>) const, const C& c) {
  return (c.*f)(E::CONV);
}

bool allow_tf32_conv() {
  const at::Context& ctx = at::globalContext();
  return tf32_query(&at::Context::allowTF32CuDNN, ctx);
}

// wmma with bfloat16 and TF32 needs sm_80; cached per device (the attribute never changes).
bool has_ampere_mma(int device) {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> major[kMaxDevices] = {};  // 0 = not asked yet
  if (device < 0 || device >= kMaxDevices) return false;
  int v = major[device].load(std::memory_order_relaxed);
  if (v == 0) {
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrComputeCapabilityMajor, device));
    major[device].store(v, std::memory_order_relaxed);
  }
  return v >= 8;
}

bool tensor_cores_apply(const at::Tensor& t) {
  const auto dt = t.scalar_type();
  const bool dtype_ok =
      dt == at::kHalf || dt == at::kBFloat16 || (dt == at::kFloat && allow_tf32_conv());
  return dtype_ok && has_ampere_mma(t.get_device());
}

// Wgrad: enough blocks to fill a large GPU. The split depends on the shape only, so the
// bits do not change from one GPU model to another.
constexpr int64_t kWgradTargetBlocks = 1024;

template <Pass kPass>
void launch(IgemmParams prm, const at::Tensor& a_src, const at::Tensor& b_src,
            const at::Tensor& bias, at::Tensor& dst) {
  prm.tiles_m = (prm.M + kBM - 1) / kBM;
  prm.tiles_n = (prm.Ngemm + kBN - 1) / kBN;
  const int64_t k_tiles = (prm.Kgemm + kBK - 1) / kBK;
  int64_t splits = 1;
  if (kPass == Pass::kWgrad) {
    const int64_t blocks = prm.tiles_m * prm.tiles_n * prm.groups;
    splits = std::max<int64_t>(1, std::min(k_tiles, (kWgradTargetBlocks + blocks - 1) / blocks));
  }
  const int64_t tiles_per_split = (k_tiles + splits - 1) / splits;
  prm.k_per_split = tiles_per_split * kBK;
  prm.splits = (k_tiles + tiles_per_split - 1) / tiles_per_split;  // none of them empty
  const int64_t count = dst.numel();
  at::Tensor ws;
  if (kPass == Pass::kWgrad) ws = at::empty({prm.splits * count}, dst.options().dtype(at::kFloat));
  const dim3 grid(unsigned(std::min<int64_t>(prm.tiles_m * prm.splits, 0x7fffffffLL)),
                  unsigned(std::min(prm.tiles_n, kMaxGridYZ)),
                  unsigned(std::min(prm.groups, kMaxGridYZ)));
  auto stream = c10::cuda::getCurrentCUDAStream();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    using S = typename Mma<T>::S;
    const S* bp = bias.defined() ? reinterpret_cast<const S*>(bias.const_data_ptr<T>()) : nullptr;
    S* out = reinterpret_cast<S*>(dst.mutable_data_ptr<T>());
    igemm_kernel<T, kPass>
        <<<grid, kThreads, 0, stream>>>(prm, reinterpret_cast<const S*>(a_src.const_data_ptr<T>()),
                                        reinterpret_cast<const S*>(b_src.const_data_ptr<T>()), bp,
                                        out, ws.defined() ? ws.mutable_data_ptr<float>() : nullptr);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if (kPass == Pass::kWgrad) {
      const int64_t blocks = std::min<int64_t>((count + kThreads - 1) / kThreads, 65535LL * 8);
      igemm_split_sum_kernel<T><<<unsigned(blocks), kThreads, 0, stream>>>(
          count, prm.splits, ws.const_data_ptr<float>(), out);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  };
  switch (a_src.scalar_type()) {
    case at::kHalf:
      run(at::Half());
      break;
    case at::kBFloat16:
      run(at::BFloat16());
      break;
    case at::kFloat:
      run(float());
      break;
    default:
      TORCH_CHECK(false, "fastconv: implicit GEMM got unsupported dtype ", a_src.scalar_type());
  }
}

// The gathers decompose GEMM indices over (channel, r·S + s) as int.
bool fits_int(int64_t v) { return v <= 0x7fffffffLL; }

// The GEMM of one pass (see the top of the file) from the geometry: A gathers from the
// input planes for fprop and from grad_output's otherwise; the other operand's planes are
// the destination (fprop, dgrad) or the input B gathers from (wgrad).
IgemmParams conv_params(const ConvGeometry& g, Pass pass) {
  IgemmParams prm{};
  prm.groups = g.groups;
  prm.R = g.R;
  prm.S = g.S;
  prm.pad_h = g.pad_h;
  prm.pad_w = g.pad_w;
  prm.stride_h = g.stride_h;
  prm.stride_w = g.stride_w;
  prm.dil_h = g.dil_h;
  prm.dil_w = g.dil_w;
  prm.w_cg = g.C_per_group();
  prm.w_kg = g.K_per_group();
  const bool fprop = pass == Pass::kFprop;
  // (channels, channels per group, height, width) of the input and output planes
  const int64_t in[4] = {g.C, g.C_per_group(), g.H, g.W};
  const int64_t out[4] = {g.K, g.K_per_group(), g.P, g.Q};
  const int64_t* src = fprop ? in : out;
  const int64_t* dst = fprop ? out : in;
  prm.src_c = src[0], prm.src_cg = src[1], prm.src_h = src[2], prm.src_w = src[3];
  prm.dst_c = dst[0], prm.dst_cg = dst[1], prm.dst_h = dst[2], prm.dst_w = dst[3];
  const int64_t RS = g.R * g.S;
  switch (pass) {
    case Pass::kFprop:  // M = N·P·Q, N = K/groups, K = C/groups·R·S
      prm.M = g.N * g.P * g.Q, prm.Ngemm = g.K_per_group(), prm.Kgemm = g.C_per_group() * RS;
      break;
    case Pass::kDgrad:  // M = N·H·W, N = C/groups, K = K/groups·R·S
      prm.M = g.N * g.H * g.W, prm.Ngemm = g.C_per_group(), prm.Kgemm = g.K_per_group() * RS;
      break;
    case Pass::kWgrad:  // M = K/groups, N = C/groups·R·S, K = N·P·Q
      prm.M = g.K_per_group(), prm.Ngemm = g.C_per_group() * RS, prm.Kgemm = g.N * g.P * g.Q;
      break;
  }
  return prm;
}

}  // namespace

bool igemm_fwd_cuda(const ConvGeometry& g, const at::Tensor& x, const at::Tensor& w,
                    const at::Tensor& bias, at::Tensor& y) {
  if (g.one_channel_per_group() || !tensor_cores_apply(x)) return false;
  const IgemmParams prm = conv_params(g, Pass::kFprop);
  if (!fits_int(prm.Kgemm)) return false;
  launch<Pass::kFprop>(prm, x, w, bias, y);
  return true;
}

bool igemm_dgrad_cuda(const ConvGeometry& g, const at::Tensor& gy, const at::Tensor& w,
                      at::Tensor& gx) {
  if (g.one_channel_per_group() || !tensor_cores_apply(gy)) return false;
  const IgemmParams prm = conv_params(g, Pass::kDgrad);
  if (!fits_int(prm.Kgemm)) return false;
  launch<Pass::kDgrad>(prm, gy, w, at::Tensor(), gx);
  return true;
}

bool igemm_wgrad_cuda(const ConvGeometry& g, const at::Tensor& x, const at::Tensor& gy,
                      at::Tensor& gw) {
  if (g.one_channel_per_group() || !tensor_cores_apply(x)) return false;
  const IgemmParams prm = conv_params(g, Pass::kWgrad);
  if (!fits_int(prm.Ngemm) || prm.Kgemm == 0) return false;  // N = 0: the reference writes 0
  launch<Pass::kWgrad>(prm, gy, x, at::Tensor(), gw);
  return true;
}

}  // namespace fastconv
