// Output tensors of the CPU kernels.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>

namespace fastconv {

// An uninitialised output tensor. Outputs of 1 MB and more reuse the blocks of earlier
// ones that were freed (up to FASTCONV_OUTPUT_POOL_MB in all, default 256, 0 for none):
// glibc unmaps or trims such blocks when they are freed, and a fresh one faults in and
// zeroes every 4 KB page on first touch, which took longer than the layer itself
// (MobileNet-V2's 16->96 1x1 on 112x112 at batch 8: 16 ms, 3.2 ms in reused memory;
// docs/measurements.md).
// FASTCONV_HUGEPAGES=1 asks for transparent huge pages on fresh blocks (as NumPy does; THP
// is often in `madvise` mode). Off by default: it lowers the median fault cost but makes
// some calls stall far longer.
at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options,
                        at::MemoryFormat format = at::MemoryFormat::Contiguous);

struct OutputPoolStats {
  size_t held_bytes;  // freed output blocks kept for reuse
  int64_t reused;     // outputs that took a kept block
};
OutputPoolStats output_pool_stats();

}  // namespace fastconv
