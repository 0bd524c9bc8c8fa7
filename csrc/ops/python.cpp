// The extension module: importing it registers the ops; it also exposes a lean eager entry
// point and build facts to the Python layer.
#include <torch/extension.h>

#include "../cpu/dense_bf16/dense_bf16.h"
#include "../cpu/runtime/output.h"
#include "../cpu/runtime/workspace.h"
#include "../cpu/select.h"
#include "../cpu/simd/kernel_table.h"
#include "ops.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastconv kernels (ops are registered under torch.ops.fastconv)";
  // The eager fast path: the op through the C++ dispatcher without torch.ops' Python-side
  // argument handling.
  m.def("conv2d", &fastconv::call_conv2d, "fastconv::conv2d through the dispatcher",
        pybind11::arg("input"), pybind11::arg("weight"), pybind11::arg("bias"),
        pybind11::arg("stride"), pybind11::arg("padding"), pybind11::arg("dilation"),
        pybind11::arg("groups"), pybind11::call_guard<pybind11::gil_scoped_release>());
  m.def(
      "cpu_isa", [] { return std::string(fastconv::kernels<float>().isa); },
      "the SIMD instruction set the CPU kernels dispatched to");
  m.def("set_cpu_algorithm", &fastconv::set_cpu_algorithm,
        "'auto', 'plain' (or 'direct'), or a family name: rows, blocked, dense, winograd, fft, "
        "grouped, gemv");
  m.def("cpu_algorithm", &fastconv::cpu_algorithm);
  m.def("cpu_has_bf16_kernel", &fastconv::dense_bf16::available,
        "whether bfloat16 dense layers run on the AVX-512 BF16 kernel on this CPU");
  m.def(
      "cpu_families",
      [](const at::Tensor& input, const at::Tensor& weight, std::vector<int64_t> stride,
         std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups) {
        const fastconv::ConvGeometry g = fastconv::check_conv2d_args(
            input, weight, std::nullopt, stride, padding, dilation, groups);
        const bool cl =
            fastconv::conv_memory_format(input, weight) == at::MemoryFormat::ChannelsLast;
        const fastconv::CpuPlan p = fastconv::select_cpu_plan(g, input.scalar_type(), cl);
        return std::make_tuple(std::string(fastconv::family_name(p.forward)),
                               std::string(fastconv::family_name(p.grad_input)),
                               std::string(fastconv::family_name(p.grad_weight)));
      },
      "the CPU kernel families (forward, grad_input, grad_weight) a call with these arguments "
      "runs");
  m.def(
      "output_pool_stats",
      [] {
        const fastconv::OutputPoolStats s = fastconv::output_pool_stats();
        return std::make_tuple(s.held_bytes, s.reused);
      },
      "(bytes of freed large CPU outputs kept for reuse, outputs that reused one)");
  m.def("workspace_slot_clashes", &fastconv::workspace_slot_clashes,
        "how many times a CPU workspace slot was asked for while its thread held it (a "
        "kernel sharing its driver's slot; each time a buffer allocated for one call)");
#ifdef FASTCONV_WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
}
