// Autograd for the fastconv ops, registered at the Autograd dispatch key.
//
// Why C++ and not torch.library.register_autograd: a Python autograd kernel runs on every
// call that needs grad, several times F.conv2d's whole call on small images, while a C++
// kernel costs a fraction of it (docs/measurements.md). Registered at the dispatcher, it is the one
// place backward is wired for eager calls, torch.compile, torch.export and opcheck alike.
//
// Backward calls the conv2d_backward op, whose own autograd (below) is expressed through the
// two ops again, so gradients of any order exist:
//   gx = dgrad(gy, w), gw = wgrad(gy, x), gb = sum(gy) are linear in gy and in (w | x), so
//   d/d gy  = conv2d(ggx, w, ggb) + conv2d(x, ggw)
//   d/d x   = dgrad(gy, ggw)       (adjoint of x -> wgrad(gy, x))
//   d/d w   = wgrad(gy, ggx)       (adjoint of w -> dgrad(gy, w))
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "ops.h"

namespace fastconv {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using IntVec = std::vector<int64_t>;

Tensor value_or_undefined(const OptTensor& t) { return t.has_value() ? *t : Tensor(); }

// Autograd outputs must be defined tensors, so Conv2dBackwardFunction returns only the
// grads the mask asked for; this puts them back in their (input, weight, bias) slots.
std::array<Tensor, 3> unpack_by_mask(const std::array<bool, 3>& mask, const variable_list& packed) {
  std::array<Tensor, 3> full;
  for (size_t i = 0, j = 0; i < 3; ++i)
    if (mask[i]) full[i] = packed[j++];
  return full;
}

struct Params {
  IntVec stride, padding, dilation;
  int64_t groups;
  void save(AutogradContext* ctx) const {
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["dilation"] = dilation;
    ctx->saved_data["groups"] = groups;
  }
  static Params load(AutogradContext* ctx) {
    return {ctx->saved_data["stride"].toIntVector(), ctx->saved_data["padding"].toIntVector(),
            ctx->saved_data["dilation"].toIntVector(), ctx->saved_data["groups"].toInt()};
  }
};

class Conv2dFunction : public torch::autograd::Function<Conv2dFunction> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& input, const Tensor& weight,
                        const OptTensor& bias, const Params& prm) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({input, weight});
    ctx->saved_data["has_bias"] = bias.has_value() && bias->defined();
    prm.save(ctx);
    return call_conv2d(input, weight, bias, prm.stride, prm.padding, prm.dilation, prm.groups);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Params prm = Params::load(ctx);
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    const Tensor& gy = grads[0];
    if (!gy.defined()) return {Tensor(), Tensor(), Tensor(), Tensor()};
    const std::array<bool, 3> mask{ctx->needs_input_grad(0), ctx->needs_input_grad(1),
                                   has_bias && ctx->needs_input_grad(2)};
    auto [gx, gw, gb] = call_conv2d_backward(gy, saved[0], saved[1], prm.stride, prm.padding,
                                             prm.dilation, prm.groups, mask);
    return {value_or_undefined(gx), value_or_undefined(gw), value_or_undefined(gb), Tensor()};
  }
};

class Conv2dBackwardFunction : public torch::autograd::Function<Conv2dBackwardFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const Tensor& grad_output, const Tensor& input,
                               const Tensor& weight, const Params& prm, std::array<bool, 3> mask) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({grad_output, input, weight});
    prm.save(ctx);
    auto [gx, gw, gb] = call_conv2d_backward(grad_output, input, weight, prm.stride, prm.padding,
                                             prm.dilation, prm.groups, mask);
    ctx->saved_data["mask"] = std::vector<bool>(mask.begin(), mask.end());
    variable_list out;
    for (const OptTensor& t : {gx, gw, gb})
      if (t.has_value() && t->defined()) out.push_back(*t);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &gy = saved[0], &x = saved[1], &w = saved[2];
    const Params prm = Params::load(ctx);
    const auto saved_mask = ctx->saved_data["mask"].toBoolList();
    const auto expanded =
        unpack_by_mask({saved_mask.get(0), saved_mask.get(1), saved_mask.get(2)}, grads);
    const Tensor &ggx = expanded[0], &ggw = expanded[1], &ggb = expanded[2];
    Tensor d_gy, d_x, d_w;
    if (ctx->needs_input_grad(0)) {
      if (ggx.defined())
        d_gy = call_conv2d(ggx, w, ggb.defined() ? OptTensor(ggb) : std::nullopt, prm.stride,
                           prm.padding, prm.dilation, prm.groups);
      if (ggw.defined()) {
        Tensor t =
            call_conv2d(x, ggw, std::nullopt, prm.stride, prm.padding, prm.dilation, prm.groups);
        d_gy = d_gy.defined() ? d_gy + t : t;
      }
      if (!ggx.defined() && ggb.defined())
        d_gy = ggb.view({1, -1, 1, 1}).expand(gy.sizes()).clone();
    }
    if (ctx->needs_input_grad(1) && ggw.defined())
      d_x = value_or_undefined(std::get<0>(call_conv2d_backward(
          gy, x, ggw, prm.stride, prm.padding, prm.dilation, prm.groups, {true, false, false})));
    if (ctx->needs_input_grad(2) && ggx.defined())
      d_w = value_or_undefined(std::get<1>(call_conv2d_backward(
          gy, ggx, w, prm.stride, prm.padding, prm.dilation, prm.groups, {false, true, false})));
    return {d_gy, d_x, d_w, Tensor(), Tensor()};
  }
};

bool any_requires_grad(const Tensor& a, const Tensor& b, const OptTensor& c = std::nullopt) {
  return at::GradMode::is_enabled() && (a.requires_grad() || b.requires_grad() ||
                                        (c.has_value() && c->defined() && c->requires_grad()));
}

Tensor conv2d_autograd(const Tensor& input, const Tensor& weight, const OptTensor& bias,
                       IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation,
                       int64_t groups) {
  // Inference calls skip the autograd node (and its context and saved tensors) entirely.
  if (!any_requires_grad(input, weight, bias)) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return call_conv2d(input, weight, bias, stride, padding, dilation, groups);
  }
  return Conv2dFunction::apply(input, weight, bias,
                               Params{stride.vec(), padding.vec(), dilation.vec(), groups});
}

Grads conv2d_backward_autograd(const Tensor& grad_output, const Tensor& input, const Tensor& weight,
                               IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation,
                               int64_t groups, std::array<bool, 3> mask) {
  if (!any_requires_grad(grad_output, input, weight)) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return call_conv2d_backward(grad_output, input, weight, stride, padding, dilation, groups,
                                mask);
  }
  auto out = Conv2dBackwardFunction::apply(
      grad_output, input, weight, Params{stride.vec(), padding.vec(), dilation.vec(), groups},
      mask);
  const auto full = unpack_by_mask(mask, out);
  const auto opt = [&](int i) { return mask[i] ? OptTensor(full[i]) : std::nullopt; };
  return {opt(0), opt(1), opt(2)};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastconv, Autograd, m) {
  m.impl("conv2d", &conv2d_autograd);
  m.impl("conv2d_backward", &conv2d_backward_autograd);
}

}  // namespace fastconv
