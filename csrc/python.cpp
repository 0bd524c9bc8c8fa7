// The extension module: importing it registers the ops; it also exposes a lean eager entry
// point and build facts to the Python layer.
#include <torch/extension.h>

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
#ifdef FASTCONV_WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
}
