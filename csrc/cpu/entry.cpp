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
#include "gemv/gemv.h"
#include "grad_bias.h"
#include "grouped/grouped.h"
#include "layout/layout.h"
#include "rows/rows.h"
#include "runtime/output.h"
#include "select.h"
#include "winograd/winograd.h"

namespace fastconv {
namespace {

// Kernels run in float32 or float64; half-precision inputs compute in float32 and round
// once at the end (float32 accumulation, as torch's CPU convolution does).
at::ScalarType compute_type(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

constexpr auto kCL = at::MemoryFormat::ChannelsLast;

at::MemoryFormat format_of(Layout l) {
  return l == Layout::kNhwc ? kCL : at::MemoryFormat::Contiguous;
}

// t contiguous in `layout` and the compute dtype; free (no dispatch) when it already is.
Tensor as_compute(const Tensor& t, Layout layout = Layout::kNchw) {
  const auto ct = compute_type(t.scalar_type());
  const auto format = format_of(layout);
  if (t.scalar_type() == ct && t.is_contiguous(format)) return t;
  return to_memory_format(t.scalar_type() == ct ? t : t.to(ct), format);
}

// The layout of one pass's activations: NHWC where the results are channels_last and the
// family takes them, else NCHW (inputs converted, results converted back by finish).
Layout pass_layout(NhwcSupport s, bool channels_last) {
  return (channels_last && s == NhwcSupport::kAll) || s == NhwcSupport::kOnly ? Layout::kNhwc
                                                                              : Layout::kNchw;
}

// The weight's layout for a pass: channels_last as it is where the pass runs in NHWC (the
// families pack it into their own order anyway), else contiguous.
Layout weight_layout(Layout pass, const Tensor& w) {
  return pass == Layout::kNhwc && !w.is_contiguous() && w.is_contiguous(kCL) ? Layout::kNhwc
                                                                             : Layout::kNchw;
}

// A result in the caller's dtype and memory format (in_conv_format: a layout copy only
// where the family wrote the other layout).
Tensor finish(const Tensor& t, at::ScalarType type, bool channels_last) {
  const auto format = channels_last ? kCL : at::MemoryFormat::Contiguous;
  const Tensor r = t.dim() == 4 ? in_conv_format(to_memory_format(t, format), format) : t;
  return r.scalar_type() == type ? r : r.to(type);
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
    case CpuFamily::kGrouped:
      return grouped::run(g, a);
    case CpuFamily::kGemv:
      return gemv::run(g, a);
    case CpuFamily::kDense:
    case CpuFamily::kDenseBf16:  // the passes the bf16 kernel leaves to float32
      return dense::run(g, a);
  }
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
  const bool cl = conv_memory_format(input, weight) == kCL;
  const CpuPlan plan = select_cpu_plan(g, input.scalar_type(), cl);
  if (plan.forward == CpuFamily::kDenseBf16)
    return finish(dense_bf16::forward(g, input, weight, bias), input.scalar_type(), cl);
  const Layout l = pass_layout(plan.forward_nhwc, cl), wl = weight_layout(l, weight);
  const Tensor x = as_compute(input, l), w = as_compute(weight, wl);
  const Tensor b = bias.has_value() && bias->defined() ? as_compute(*bias) : Tensor();
  Tensor y = empty_output({g.N, g.K, g.P, g.Q}, x.options(), format_of(l));
  if (g.N > 0)
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fastconv_conv2d_cpu", [&] {
      run(plan.forward, g,
          ForwardArgs<scalar_t>{ptr<scalar_t>(x), ptr<scalar_t>(w), ptr<scalar_t>(b),
                                mut<scalar_t>(y), l, l, wl});
    });
  return finish(y, input.scalar_type(), cl);
}

Grads conv2d_bwd_cpu(const Tensor& grad_output, const Tensor& input, const Tensor& weight,
                     IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation, int64_t groups,
                     std::array<bool, 3> output_mask) {
  const ConvGeometry g =
      check_conv2d_backward_args(grad_output, input, weight, stride, padding, dilation, groups);
  const bool cl = conv_memory_format(input, weight) == kCL;
  const CpuPlan plan = select_cpu_plan(g, grad_output.scalar_type(), cl);
  const auto dtype = input.scalar_type();
  const auto out = [&](const Tensor& t) {
    return t.defined() ? OptTensor(finish(t, dtype, cl)) : std::nullopt;
  };
  Tensor gx_bf16;
  if (output_mask[0] && plan.grad_input == CpuFamily::kDenseBf16) {
    gx_bf16 = dense_bf16::grad_input(g, grad_output, weight);
    output_mask[0] = false;
  }
  if (!output_mask[0] && !output_mask[1] && !output_mask[2])
    return {out(gx_bf16), std::nullopt, std::nullopt};
  const Layout dl = pass_layout(plan.grad_input_nhwc, cl);
  const Layout wl = pass_layout(plan.grad_weight_nhwc, cl);
  // grad_output in each layout a pass reads it in; the bias takes one already made.
  const Layout bl = output_mask[0] ? dl : output_mask[1] ? wl : Layout::kNchw;
  Tensor gy_nchw, gy_nhwc;
  const auto gy_in = [&](Layout l) -> const Tensor& {
    Tensor& t = l == Layout::kNhwc ? gy_nhwc : gy_nchw;
    if (!t.defined()) t = as_compute(grad_output, l);
    return t;
  };
  const auto opts = grad_output.options().dtype(compute_type(dtype));
  Tensor gx, gw, gb;
  if (output_mask[0]) gx = empty_output({g.N, g.C, g.H, g.W}, opts, format_of(dl));
  if (output_mask[1]) gw = at::empty(weight.sizes(), opts.memory_format(format_of(wl)));
  if (output_mask[2]) gb = at::empty({g.K}, opts);
  if (g.N == 0) {
    if (gw.defined()) gw.zero_();
    if (gb.defined()) gb.zero_();
    return {gx_bf16.defined() ? out(gx_bf16) : out(gx), out(gw), out(gb)};
  }
  const Tensor x = output_mask[1] ? as_compute(input, wl) : Tensor();
  const Layout dwl = weight_layout(dl, weight);
  const Tensor w = output_mask[0] ? as_compute(weight, dwl) : Tensor();
  const Tensor gyd = output_mask[0] ? gy_in(dl) : Tensor();
  const Tensor gyw = output_mask[1] ? gy_in(wl) : Tensor();
  const Tensor gyb = output_mask[2] ? gy_in(bl) : Tensor();
  AT_DISPATCH_FLOATING_TYPES(opts.dtype().toScalarType(), "fastconv_conv2d_backward_cpu", [&] {
    const GradInputArgs<scalar_t> di{
        ptr<scalar_t>(gyd), ptr<scalar_t>(w), mut<scalar_t>(gx), dl, dl, dwl};
    const GradWeightArgs<scalar_t> dw{ptr<scalar_t>(x), ptr<scalar_t>(gyw), mut<scalar_t>(gw), wl,
                                      wl};
    const bool fused = plan.fused_backward && gx.defined() && gw.defined() && dl == Layout::kNchw &&
                       wl == Layout::kNchw && rows::backward_fused(g, di, dw);
    if (gx.defined() && !fused) run(plan.grad_input, g, di);
    if (gw.defined() && !fused) run(plan.grad_weight, g, dw);
    if (gb.defined()) grad_bias(g, ptr<scalar_t>(gyb), bl, mut<scalar_t>(gb));
  });
  return {gx_bf16.defined() ? out(gx_bf16) : out(gx), out(gw), out(gb)};
}

TORCH_LIBRARY_IMPL(fastconv, CPU, m) {
  m.impl("conv2d", &conv2d_fwd_cpu);
  m.impl("conv2d_backward", &conv2d_bwd_cpu);
}

}  // namespace fastconv
