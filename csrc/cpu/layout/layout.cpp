#include "layout.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>

#include "../runtime/output.h"
#include "../simd/kernel_table.h"

namespace fastconv {

namespace {
// Positions per task chunk: a multiple of every vector width, and small enough that the
// chunk's rows of all channels stay in L1/L2 while it is transposed.
constexpr int64_t kChunkPositions = 64;
// Values a task moves at least: a task's start costs about as much as copying this many.
constexpr int64_t kTaskValues = 1 << 15;
}  // namespace

at::Tensor to_memory_format(const at::Tensor& t, at::MemoryFormat format) {
  constexpr auto kCL = at::MemoryFormat::ChannelsLast;
  if (t.is_contiguous(format)) return t;
  const auto from = format == kCL ? at::MemoryFormat::Contiguous : kCL;
  const auto type = t.scalar_type();
  if (t.dim() != 4 || !t.is_contiguous(from) || (type != at::kFloat && type != at::kDouble) ||
      (format != kCL && format != at::MemoryFormat::Contiguous))
    return t.contiguous(format);
  RECORD_FUNCTION("fastconv::layout_copy", std::vector<c10::IValue>());
  at::Tensor out = empty_output(t.sizes(), t.options(), format);
  const int64_t N = t.size(0), C = t.size(1), HW = t.size(2) * t.size(3);
  const int64_t chunks = (HW + kChunkPositions - 1) / kChunkPositions;
  const int64_t grain =
      std::max<int64_t>(1, kTaskValues / std::max<int64_t>(1, C * kChunkPositions));
  AT_DISPATCH_FLOATING_TYPES(type, "fastconv_layout_copy", [&] {
    const LayoutKernels<scalar_t>& k = kernels<scalar_t>().layout;
    const auto copy = format == kCL ? k.to_nhwc : k.to_nchw;
    const scalar_t* src = t.const_data_ptr<scalar_t>();
    scalar_t* dst = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, N * chunks, grain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t n = i / chunks, p0 = (i % chunks) * kChunkPositions;
        copy(src + n * C * HW, dst + n * C * HW, C, HW, p0, std::min(HW, p0 + kChunkPositions));
      }
    });
  });
  return out;
}

}  // namespace fastconv
