// Copies between the two memory formats of 4-D activations and weights (NCHW and
// channels_last), on the layout kernels (kernels.h).
#pragma once

#include <ATen/core/Tensor.h>

namespace fastconv {

// t in `format`: t itself where it already is, a copy on the layout kernels where t is a
// float or double tensor contiguous in the other format, else t.contiguous(format). The
// copy shows in the profiler as "fastconv::layout_copy".
at::Tensor to_memory_format(const at::Tensor& t, at::MemoryFormat format);

}  // namespace fastconv
