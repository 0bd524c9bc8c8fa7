// CUDA backend: the op entry points, the dispatch between tiers, and the reference tier.
//
// Reference tier: direct kernels that are correct for every geometry and dtype (float64,
// float32, float16, bfloat16 with float32 accumulation), the baseline the tuned tier must
// match. Geometry and index math come from conv_geometry.h; every index is 64-bit.
//
// Tuned tier (tuned.cuh), chosen per call where it applies, else the reference runs:
//   one channel per group (groups == C): direct.cu for fprop, stride-1 dgrad and wgrad;
//   dense (C/groups > 1) in float16/bfloat16, or float32 with TF32 allowed for
//   convolutions: implicit_gemm.cu (tensor cores) for fprop, dgrad and wgrad.
// Everything else (float64 and plain float32 dense layers, strided depthwise dgrad, bias
// grad) stays on the reference tier. FASTCONV_CUDA_KERNELS=reference forces
// the reference tier for every call (read on each call, so tests can flip it).
//
//   Fprop: one thread per output element, sum over (c, r, s) of its group.
//   Dgrad: one thread per input element, gathering the outputs whose window covers it.
//   Wgrad / bias grad: one block per weight element (per output channel for bias); each
//   thread sums a fixed stride of (n, p, q), then a fixed-shape tree reduction in shared
//   memory -- no atomics, so results are bitwise reproducible run to run.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cstdlib>
#include <cstring>

#include "../ops/ops.h"
#include "common.cuh"

namespace fastconv {
namespace {

constexpr int kThreads = 256;

int64_t blocks_for(int64_t n) {
  const int64_t max_blocks = 65535LL * 8;
  return std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, max_blocks));
}

template <typename T>
__global__ void conv2d_fwd_kernel(ConvGeometry g, const T* __restrict__ x, const T* __restrict__ w,
                                  const T* __restrict__ bias, T* __restrict__ y) {
  using A = typename Acc<T>::type;
  const int64_t total = g.output_numel(), Cg = g.C_per_group();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t q = i % g.Q, p = (i / g.Q) % g.P, k = (i / (g.Q * g.P)) % g.K;
    const int64_t n = i / (g.Q * g.P * g.K), c0 = (k / g.K_per_group()) * Cg;
    A acc = bias ? A(bias[k]) : A(0);
    for (int64_t c = 0; c < Cg; ++c) {
      const T* xc = x + (n * g.C + c0 + c) * g.H * g.W;
      const T* wc = w + (k * Cg + c) * g.R * g.S;
      for (int64_t r = 0; r < g.R; ++r) {
        const int64_t ih = g.in_row(p, r);
        if (ih < 0 || ih >= g.H) continue;
        for (int64_t s = 0; s < g.S; ++s) {
          const int64_t iw = g.in_col(q, s);
          if (iw >= 0 && iw < g.W) acc += A(wc[r * g.S + s]) * A(xc[ih * g.W + iw]);
        }
      }
    }
    y[i] = T(acc);
  }
}

template <typename T>
__global__ void conv2d_dgrad_kernel(ConvGeometry g, const T* __restrict__ gy,
                                    const T* __restrict__ w, T* __restrict__ gx) {
  using A = typename Acc<T>::type;
  const int64_t total = g.input_numel(), Cg = g.C_per_group(), Kg = g.K_per_group();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t iw = i % g.W, ih = (i / g.W) % g.H, c = (i / (g.W * g.H)) % g.C;
    const int64_t n = i / (g.W * g.H * g.C), grp = c / Cg;
    A acc = 0;
    for (int64_t k = grp * Kg; k < (grp + 1) * Kg; ++k) {
      const T* gyk = gy + (n * g.K + k) * g.P * g.Q;
      const T* wk = w + (k * Cg + c % Cg) * g.R * g.S;
      for (int64_t r = 0; r < g.R; ++r) {
        const int64_t ph = ih + g.pad_h - r * g.dil_h;
        if (ph < 0 || ph % g.stride_h) continue;
        const int64_t p = ph / g.stride_h;
        if (p >= g.P) continue;
        for (int64_t s = 0; s < g.S; ++s) {
          const int64_t qw = iw + g.pad_w - s * g.dil_w;
          if (qw < 0 || qw % g.stride_w) continue;
          const int64_t q = qw / g.stride_w;
          if (q < g.Q) acc += A(wk[r * g.S + s]) * A(gyk[p * g.Q + q]);
        }
      }
    }
    gx[i] = T(acc);
  }
}

template <typename A>
__device__ A block_sum(A v) {
  __shared__ A buf[kThreads];
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) buf[threadIdx.x] += buf[threadIdx.x + half];
    __syncthreads();
  }
  return buf[0];
}

template <typename T>
__global__ void conv2d_wgrad_kernel(ConvGeometry g, const T* __restrict__ x,
                                    const T* __restrict__ gy, T* __restrict__ gw) {
  using A = typename Acc<T>::type;
  const int64_t Cg = g.C_per_group(), RS = g.R * g.S, PQ = g.P * g.Q;
  const int64_t e = blockIdx.x;  // weight element (k, c, r, s)
  const int64_t s = e % g.S, r = (e / g.S) % g.R, c = (e / RS) % Cg, k = e / (RS * Cg);
  const int64_t cin = (k / g.K_per_group()) * Cg + c;
  A acc = 0;
  for (int64_t j = threadIdx.x; j < g.N * PQ; j += kThreads) {
    const int64_t n = j / PQ, p = (j % PQ) / g.Q, q = j % g.Q;
    const int64_t ih = g.in_row(p, r), iw = g.in_col(q, s);
    if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
      acc +=
          A(gy[(n * g.K + k) * PQ + p * g.Q + q]) * A(x[((n * g.C + cin) * g.H + ih) * g.W + iw]);
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) gw[e] = T(acc);
}

template <typename T>
__global__ void conv2d_bgrad_kernel(ConvGeometry g, const T* __restrict__ gy, T* __restrict__ gb) {
  using A = typename Acc<T>::type;
  const int64_t k = blockIdx.x, PQ = g.P * g.Q;
  A acc = 0;
  for (int64_t j = threadIdx.x; j < g.N * PQ; j += kThreads)
    acc += A(gy[((j / PQ) * g.K + k) * PQ + j % PQ]);
  acc = block_sum(acc);
  if (threadIdx.x == 0) gb[k] = T(acc);
}

// FASTCONV_CUDA_KERNELS: unset, empty or "tuned" = tuned where it applies; "reference" =
// reference tier only. getenv costs far less than a launch, so it is read on every call.
bool use_tuned_kernels() {
  const char* v = std::getenv("FASTCONV_CUDA_KERNELS");
  if (v == nullptr || *v == '\0' || std::strcmp(v, "tuned") == 0) return true;
  TORCH_CHECK(std::strcmp(v, "reference") == 0,
              "fastconv: FASTCONV_CUDA_KERNELS must be 'tuned' or 'reference' (or unset), got '", v,
              "'");
  return false;
}

}  // namespace

Tensor conv2d_fwd_cuda(const Tensor& input, const Tensor& weight, const OptTensor& bias,
                       IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation,
                       int64_t groups) {
  const ConvGeometry g = check_conv2d_args(input, weight, bias, stride, padding, dilation, groups);
  const c10::cuda::CUDAGuard guard(input.device());
  const Tensor x = input.contiguous(), w = weight.contiguous();
  const bool has_bias = bias.has_value() && bias->defined();
  const Tensor b = has_bias ? bias->contiguous() : Tensor();
  const at::MemoryFormat format = conv_memory_format(input, weight);
  Tensor y = at::empty({g.N, g.K, g.P, g.Q}, x.options());
  if (y.numel() == 0) return in_conv_format(y, format);
  if (use_tuned_kernels()) {
    if (g.one_channel_per_group() ? direct_fwd_cuda(g, x, w, b, y) : igemm_fwd_cuda(g, x, w, b, y))
      return in_conv_format(y, format);
  }
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "fastconv_fwd_cuda", [&] {
        conv2d_fwd_kernel<scalar_t><<<blocks_for(y.numel()), kThreads, 0, stream>>>(
            g, x.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(),
            has_bias ? b.const_data_ptr<scalar_t>() : nullptr, y.mutable_data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return in_conv_format(y, format);
}

Grads conv2d_bwd_cuda(const Tensor& grad_output, const Tensor& input, const Tensor& weight,
                      IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation, int64_t groups,
                      std::array<bool, 3> output_mask) {
  const ConvGeometry g =
      check_conv2d_backward_args(grad_output, input, weight, stride, padding, dilation, groups);
  const c10::cuda::CUDAGuard guard(input.device());
  const Tensor gy = grad_output.contiguous();
  OptTensor gx, gw, gb;
  const bool tuned = use_tuned_kernels();
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, gy.scalar_type(), "fastconv_bwd_cuda", [&] {
        const scalar_t* gyp = gy.const_data_ptr<scalar_t>();
        if (output_mask[0]) {
          const Tensor w = weight.contiguous();
          gx = at::empty({g.N, g.C, g.H, g.W}, gy.options());
          const bool done = tuned && gx->numel() > 0 &&
                            (g.one_channel_per_group() ? direct_dgrad_cuda(g, gy, w, *gx)
                                                       : igemm_dgrad_cuda(g, gy, w, *gx));
          if (gx->numel() > 0 && !done) {
            conv2d_dgrad_kernel<scalar_t><<<blocks_for(gx->numel()), kThreads, 0, stream>>>(
                g, gyp, w.const_data_ptr<scalar_t>(), gx->mutable_data_ptr<scalar_t>());
            C10_CUDA_KERNEL_LAUNCH_CHECK();
          }
        }
        if (output_mask[1]) {
          const Tensor x = input.contiguous();
          gw = at::empty(weight.sizes(), gy.options());
          const bool done = tuned && (g.one_channel_per_group() ? direct_wgrad_cuda(g, x, gy, *gw)
                                                                : igemm_wgrad_cuda(g, x, gy, *gw));
          if (!done) {
            conv2d_wgrad_kernel<scalar_t><<<g.weight_numel(), kThreads, 0, stream>>>(
                g, x.const_data_ptr<scalar_t>(), gyp, gw->mutable_data_ptr<scalar_t>());
            C10_CUDA_KERNEL_LAUNCH_CHECK();
          }
        }
        if (output_mask[2]) {
          gb = at::empty({g.K}, gy.options());
          conv2d_bgrad_kernel<scalar_t>
              <<<g.K, kThreads, 0, stream>>>(g, gyp, gb->mutable_data_ptr<scalar_t>());
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        }
      });
  // The kernels write contiguous NCHW; results in F.conv2d's memory format.
  const at::MemoryFormat format = conv_memory_format(input, weight);
  if (gx) gx = in_conv_format(*gx, format);
  if (gw) gw = in_conv_format(*gw, format);
  return {gx, gw, gb};
}

TORCH_LIBRARY_IMPL(fastconv, CUDA, m) {
  m.impl("conv2d", &conv2d_fwd_cuda);
  m.impl("conv2d_backward", &conv2d_bwd_cuda);
}

}  // namespace fastconv
