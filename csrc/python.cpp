// The extension module: importing it registers the ops; it also exposes a lean eager entry
// point and build facts to the Python layer.
#include <torch/extension.h>

#include "cpu/algorithm.h"
#include "cpu/dense_bf16.h"
#include "cpu/kernel_table.h"
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
  m.def(
      "set_cpu_algorithm",
      [](int a) {
        TORCH_CHECK(a >= 0 && a <= 4, "fastconv: unknown CPU algorithm ", a);
        fastconv::set_cpu_algorithm(static_cast<fastconv::CpuAlgorithm>(a));
      },
      "0: auto (cost model), 1: row-direct only, 2: FFT wherever it applies, 3: channel-blocked "
      "wherever it applies, 4: Winograd wherever it applies");
  m.def("cpu_has_bf16_kernel", &fastconv::dense_bf16_available,
        "whether bfloat16 dense layers run on the AVX-512 BF16 kernel on this CPU");
  m.def("cpu_algorithm", [] { return static_cast<int>(fastconv::cpu_algorithm()); });
  m.def(
      "cpu_algorithm_for",
      [](const at::Tensor& input, const at::Tensor& weight, std::vector<int64_t> stride,
         std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups) {
        const fastconv::ConvGeometry g = fastconv::check_conv2d_args(
            input, weight, std::nullopt, stride, padding, dilation, groups);
        return std::string(fastconv::family_name(fastconv::cpu_family(g, input.scalar_type())));
      },
      "the CPU kernel family a call with these arguments runs: dense, dense-bf16, direct, blocked "
      "or fft");
#ifdef FASTCONV_WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
}
