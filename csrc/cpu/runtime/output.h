// Output tensors of the CPU kernels.
#pragma once

#include <ATen/core/Tensor.h>

namespace fastconv {

// An uninitialised output tensor. Large ones are fresh mmap'ed memory whose first touch
// faults in every 4 KB page; FASTCONV_HUGEPAGES=1 asks for transparent huge pages instead (as
// NumPy does; THP is often in `madvise` mode). Off by default: it lowers the median fault
// cost of a large output but makes some calls stall far longer, so the mean gets worse
// (docs/measurements.md).
at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options,
                        at::MemoryFormat format = at::MemoryFormat::Contiguous);

}  // namespace fastconv
