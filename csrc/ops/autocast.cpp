// Autocast: under torch.autocast the op runs in the autocast dtype, as F.conv2d does
// (convolution is on autocast's lower-precision list for both CPU and CUDA). Inputs are
// cast once, then the call goes on below the autocast key.
#include <ATen/autocast_mode.h>
#include <torch/library.h>

#include "ops.h"

namespace fastconv {
namespace {

template <c10::DeviceType device, c10::DispatchKey key>
Tensor conv2d_autocast(const Tensor& input, const Tensor& weight, const OptTensor& bias,
                       IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation,
                       int64_t groups) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(key);
  const auto dtype = at::autocast::get_autocast_dtype(device);
  return call_conv2d(at::autocast::cached_cast(dtype, input, device),
                     at::autocast::cached_cast(dtype, weight, device),
                     at::autocast::cached_cast(dtype, bias, device), stride, padding, dilation,
                     groups);
}

}  // namespace

TORCH_LIBRARY_IMPL(fastconv, AutocastCPU, m) {
  m.impl("conv2d", &conv2d_autocast<c10::DeviceType::CPU, c10::DispatchKey::AutocastCPU>);
}
TORCH_LIBRARY_IMPL(fastconv, AutocastCUDA, m) {
  m.impl("conv2d", &conv2d_autocast<c10::DeviceType::CUDA, c10::DispatchKey::AutocastCUDA>);
}

}  // namespace fastconv
