// The CPU op entry points: operands into the compute dtype and a layout the chosen family
// reads, the family of each pass from the selector (select.cpp), the family's driver, and
// the result back in the caller's dtype. Threads come from at::parallel_for inside the
// drivers, so torch.set_num_threads governs them.
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "../ops/ops.h"
#include "blocked/blocked.h"
#include "dense/dense.h"
#include "dense_bf16/dense_bf16.h"
#include "fft/fft.h"
#include "rows/rows.h"
#include "runtime/output.h"
#include "runtime/parallel.h"
#include "select.h"
#include "simd/kernel_table.h"
#include "winograd/winograd.h"

namespace fastconv {
namespace {

// Kernels run in float32 or float64; half-precision inputs compute in float32 and round
// once at the end (float32 accumulation, as torch's CPU convolution does).
at::ScalarType compute_type(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

Layout layout_of(const Tensor& t) {
  return t.dim() == 4 && !t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast)
             ? Layout::kNhwc
             : Layout::kNchw;
}

// The layout a family reads its input x in, given the caller's: the blocked family reads a
// channels_last x in place (its staged blocks are channel-innermost anyway); every other
// operand of every family is NCHW.
Layout input_layout(CpuFamily f, const Tensor& x) {
  return f == CpuFamily::kBlocked && x.scalar_type() == compute_type(x.scalar_type())
             ? layout_of(x)
             : Layout::kNchw;
}

// t contiguous in `layout` and the compute dtype; free (no dispatch) when it already is.
Tensor as_compute(const Tensor& t, Layout layout = Layout::kNchw) {
  const auto ct = compute_type(t.scalar_type());
  const auto format =
      layout == Layout::kNhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  if (t.scalar_type() == ct && t.is_contiguous(format)) return t;
  return t.to(ct).contiguous(format);
}

Tensor to_dtype(const Tensor& t, at::ScalarType type) {
  return t.scalar_type() == type ? t : t.to(type);
}

// One pass (its arguments say which) on family f.
template <typename Args>
void run(CpuFamily f, const ConvGeometry& g, const Args& a) {
  switch (f) {
    case CpuFamily::kRows:
      return rows::run(g, a);
    case CpuFamily::kBlocked:
      return blocked::run(g, a);
    case CpuFamily::kWinograd:
      return winograd::run(g, a);
    case CpuFamily::kFft:
      return fft::run(g, a);
    case CpuFamily::kDense:
    case CpuFamily::kDenseBf16:  // the passes the bf16 kernel leaves to float32
      return dense::run(g, a);
  }
}

// gb[k] = sum over images and positions of gy[n, k], in a fixed order.
template <typename T>
void grad_bias(const ConvGeometry& g, const T* gy, T* gb) {
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

template <typename T>
const T* ptr(const Tensor& t) {
  return t.defined() ? t.const_data_ptr<T>() : nullptr;
}
template <typename T>
T* mut(Tensor& t) {
  return t.defined() ? t.mutable_data_ptr<T>() : nullptr;
}

}  // namespace

Tensor conv2d_fwd_cpu(const Tensor& input, const Tensor& weight, const OptTensor& bias,
                      IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation,
                      int64_t groups) {
  const ConvGeometry g = check_conv2d_args(input, weight, bias, stride, padding, dilation, groups);
  const CpuPlan plan = select_cpu_plan(g, input.scalar_type());
  if (plan.forward == CpuFamily::kDenseBf16) return dense_bf16::forward(g, input, weight, bias);
  const Layout xl = input_layout(plan.forward, input);
  const Tensor x = as_compute(input, xl), w = as_compute(weight);
  const Tensor b = bias.has_value() && bias->defined() ? as_compute(*bias) : Tensor();
  Tensor y = empty_output({g.N, g.K, g.P, g.Q}, x.options());
  if (g.N > 0)
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fastconv_conv2d_cpu", [&] {
      run(plan.forward, g,
          ForwardArgs<scalar_t>{ptr<scalar_t>(x), ptr<scalar_t>(w), ptr<scalar_t>(b),
                                mut<scalar_t>(y), xl, Layout::kNchw});
    });
  return to_dtype(y, input.scalar_type());
}

Grads conv2d_bwd_cpu(const Tensor& grad_output, const Tensor& input, const Tensor& weight,
                     IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation, int64_t groups,
                     std::array<bool, 3> output_mask) {
  const ConvGeometry g =
      check_conv2d_backward_args(grad_output, input, weight, stride, padding, dilation, groups);
  const CpuPlan plan = select_cpu_plan(g, grad_output.scalar_type());
  Tensor gx_bf16;
  if (output_mask[0] && plan.grad_input == CpuFamily::kDenseBf16) {
    gx_bf16 = dense_bf16::grad_input(g, grad_output, weight);
    output_mask[0] = false;
  }
  const auto dtype = input.scalar_type();
  const auto out = [&](const Tensor& t) {
    return t.defined() ? OptTensor(to_dtype(t, dtype)) : std::nullopt;
  };
  if (!output_mask[0] && !output_mask[1] && !output_mask[2])
    return {out(gx_bf16), std::nullopt, std::nullopt};
  const Tensor gy = as_compute(grad_output);
  Tensor gx, gw, gb;
  if (output_mask[0]) gx = empty_output({g.N, g.C, g.H, g.W}, gy.options());
  if (output_mask[1]) gw = at::empty(weight.sizes(), gy.options());
  if (output_mask[2]) gb = at::empty({g.K}, gy.options());
  if (g.N == 0) {
    if (gw.defined()) gw.zero_();
    if (gb.defined()) gb.zero_();
    return {gx_bf16.defined() ? out(gx_bf16) : out(gx), out(gw), out(gb)};
  }
  const Layout xl = output_mask[1] ? input_layout(plan.grad_weight, input) : Layout::kNchw;
  const Tensor x = output_mask[1] ? as_compute(input, xl) : Tensor();
  const Tensor w = output_mask[0] ? as_compute(weight) : Tensor();
  AT_DISPATCH_FLOATING_TYPES(gy.scalar_type(), "fastconv_conv2d_backward_cpu", [&] {
    const GradInputArgs<scalar_t> di{ptr<scalar_t>(gy), ptr<scalar_t>(w), mut<scalar_t>(gx)};
    const GradWeightArgs<scalar_t> dw{ptr<scalar_t>(x), ptr<scalar_t>(gy), mut<scalar_t>(gw), xl,
                                      Layout::kNchw};
    const bool fused =
        plan.fused_backward && gx.defined() && gw.defined() && rows::backward_fused(g, di, dw);
    if (gx.defined() && !fused) run(plan.grad_input, g, di);
    if (gw.defined() && !fused) run(plan.grad_weight, g, dw);
    if (gb.defined()) grad_bias(g, ptr<scalar_t>(gy), mut<scalar_t>(gb));
  });
  return {gx_bf16.defined() ? out(gx_bf16) : out(gx), out(gw), out(gb)};
}

TORCH_LIBRARY_IMPL(fastconv, CPU, m) {
  m.impl("conv2d", &conv2d_fwd_cpu);
  m.impl("conv2d_backward", &conv2d_bwd_cpu);
}

}  // namespace fastconv
