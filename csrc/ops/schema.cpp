// The op schemas, the argument checks every backend shares, and typed calls of the ops
// through the dispatcher.
#include "ops.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace fastconv {
namespace {

void check_pair(IntArrayRef v, const char* name, int64_t min_value, const char* expected) {
  TORCH_CHECK(v.size() == 2, "fastconv: ", name, " must have 2 elements (height, width), got ",
              v.size());
  TORCH_CHECK(v[0] >= min_value && v[1] >= min_value, "fastconv: ", name, " must be ", expected,
              ", got ", v);
}

bool is_floating(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

}  // namespace

ConvGeometry check_conv2d_args(const Tensor& input, const Tensor& weight, const OptTensor& bias,
                               IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation,
                               int64_t groups) {
  TORCH_CHECK(input.defined() && weight.defined(), "fastconv: input and weight must be tensors");
  TORCH_CHECK(input.dim() == 4, "fastconv: expected input of shape (N, C, H, W) (4-D), got ",
              input.dim(), "-D input of size ", input.sizes());
  TORCH_CHECK(weight.dim() == 4,
              "fastconv: expected weight of shape (out_channels, in_channels/groups, kH, kW) "
              "(4-D), got ",
              weight.dim(), "-D weight of size ", weight.sizes());
  TORCH_CHECK(is_floating(input.scalar_type()),
              "fastconv: input must be a floating-point tensor (float32, float64, float16 or "
              "bfloat16), got ",
              input.scalar_type());
  TORCH_CHECK(weight.scalar_type() == input.scalar_type(),
              "fastconv: weight dtype must match input dtype: input is ", input.scalar_type(),
              ", weight is ", weight.scalar_type());
  TORCH_CHECK(weight.device() == input.device(),
              "fastconv: weight must be on the same device as input: input is on ", input.device(),
              ", weight is on ", weight.device());
  check_pair(stride, "stride", 1, "positive");
  check_pair(padding, "padding", 0, "non-negative");
  check_pair(dilation, "dilation", 1, "positive");
  TORCH_CHECK(groups > 0, "fastconv: groups must be positive, got ", groups);

  ConvGeometry g{};
  g.N = input.size(0);
  g.C = input.size(1);
  g.H = input.size(2);
  g.W = input.size(3);
  g.K = weight.size(0);
  g.R = weight.size(2);
  g.S = weight.size(3);
  g.stride_h = stride[0];
  g.stride_w = stride[1];
  g.pad_h = padding[0];
  g.pad_w = padding[1];
  g.dil_h = dilation[0];
  g.dil_w = dilation[1];
  g.groups = groups;

  TORCH_CHECK(g.C > 0 && g.H > 0 && g.W > 0,
              "fastconv: input must have non-zero channels, height and width, got input of "
              "size ",
              input.sizes());
  TORCH_CHECK(g.K > 0 && g.R > 0 && g.S > 0 && weight.size(1) > 0,
              "fastconv: weight must have non-zero sizes, got weight of size ", weight.sizes());
  TORCH_CHECK(g.C % groups == 0, "fastconv: in_channels (", g.C, ") must be divisible by groups (",
              groups, ")");
  TORCH_CHECK(g.K % groups == 0, "fastconv: out_channels (weight.size(0) = ", g.K,
              ") must be divisible by groups (", groups, ")");
  TORCH_CHECK(weight.size(1) == g.C / groups,
              "fastconv: expected weight.size(1) == in_channels / groups = ", g.C, " / ", groups,
              " = ", g.C / groups, ", got weight of size ", weight.sizes(), " for input of size ",
              input.sizes());
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == g.K, "fastconv: expected bias of shape (", g.K,
                ",), got ", bias->sizes());
    TORCH_CHECK(bias->scalar_type() == input.scalar_type(),
                "fastconv: bias dtype must match input dtype: input is ", input.scalar_type(),
                ", bias is ", bias->scalar_type());
    TORCH_CHECK(bias->device() == input.device(),
                "fastconv: bias must be on the same device as input: input is on ", input.device(),
                ", bias is on ", bias->device());
  }
  g.P = conv_out_size(g.H, g.R, g.pad_h, g.stride_h, g.dil_h);
  g.Q = conv_out_size(g.W, g.S, g.pad_w, g.stride_w, g.dil_w);
  TORCH_CHECK(g.P > 0 && g.Q > 0, "fastconv: padded input size (", g.H + 2 * g.pad_h, " x ",
              g.W + 2 * g.pad_w, ") is smaller than the dilated kernel size (",
              g.dil_h * (g.R - 1) + 1, " x ", g.dil_w * (g.S - 1) + 1,
              "): the kernel cannot be larger than the padded input");
  return g;
}

ConvGeometry check_conv2d_backward_args(const Tensor& grad_output, const Tensor& input,
                                        const Tensor& weight, IntArrayRef stride,
                                        IntArrayRef padding, IntArrayRef dilation, int64_t groups) {
  const ConvGeometry g =
      check_conv2d_args(input, weight, std::nullopt, stride, padding, dilation, groups);
  TORCH_CHECK(grad_output.defined(), "fastconv: grad_output must be a tensor");
  TORCH_CHECK(grad_output.dim() == 4 && grad_output.size(0) == g.N && grad_output.size(1) == g.K &&
                  grad_output.size(2) == g.P && grad_output.size(3) == g.Q,
              "fastconv: expected grad_output of size [", g.N, ", ", g.K, ", ", g.P, ", ", g.Q,
              "], got ", grad_output.sizes());
  TORCH_CHECK(grad_output.scalar_type() == input.scalar_type(),
              "fastconv: grad_output dtype must match input dtype: input is ", input.scalar_type(),
              ", grad_output is ", grad_output.scalar_type());
  TORCH_CHECK(grad_output.device() == input.device(),
              "fastconv: grad_output must be on the same device as input: input is on ",
              input.device(), ", grad_output is on ", grad_output.device());
  return g;
}

at::MemoryFormat conv_memory_format(const Tensor& input, const Tensor& weight) {
  constexpr auto kCL = at::MemoryFormat::ChannelsLast;
  if (input.is_cuda() && input.scalar_type() == at::kDouble) return at::MemoryFormat::Contiguous;
  return input.suggest_memory_format() == kCL || weight.suggest_memory_format() == kCL
             ? kCL
             : at::MemoryFormat::Contiguous;
}

Tensor in_conv_format(const Tensor& t, at::MemoryFormat format) {
  if (format != at::MemoryFormat::ChannelsLast) return t.is_contiguous() ? t : t.contiguous();
  if (!t.is_contiguous(format)) return t.contiguous(format);
  const int64_t C = t.size(1), H = t.size(2), W = t.size(3);
  const std::array<int64_t, 4> strides{C * H * W, 1, W * C, C};
  return t.strides() == IntArrayRef(strides) ? t : t.as_strided(t.sizes(), strides);
}

Tensor call_conv2d(const Tensor& input, const Tensor& weight, const OptTensor& bias,
                   IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation, int64_t groups) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastconv::conv2d", "")
                       .typed<Tensor(const Tensor&, const Tensor&, const OptTensor&, IntArrayRef,
                                     IntArrayRef, IntArrayRef, int64_t)>();
  return op.call(input, weight, bias, stride, padding, dilation, groups);
}

Grads call_conv2d_backward(const Tensor& grad_output, const Tensor& input, const Tensor& weight,
                           IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation,
                           int64_t groups, std::array<bool, 3> mask) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastconv::conv2d_backward", "")
                       .typed<Grads(const Tensor&, const Tensor&, const Tensor&, IntArrayRef,
                                    IntArrayRef, IntArrayRef, int64_t, std::array<bool, 3>)>();
  return op.call(grad_output, input, weight, stride, padding, dilation, groups, mask);
}

TORCH_LIBRARY(fastconv, m) {
  m.def(
      "conv2d(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, "
      "int[2] dilation, int groups) -> Tensor");
  m.def(
      "conv2d_backward(Tensor grad_output, Tensor input, Tensor weight, int[2] stride, "
      "int[2] padding, int[2] dilation, int groups, bool[3] output_mask) "
      "-> (Tensor?, Tensor?, Tensor?)");
}

}  // namespace fastconv
