// The dense family: implicit GEMM on packed tiles for layers with several channels per
// group (kernels.h). driver.cpp cuts the GEMMs into tasks.
#pragma once

#include "../family.h"

namespace fastconv {
namespace dense {

template <typename T>
void forward(const ConvGeometry& g, const ForwardArgs<T>& a);
template <typename T>
void grad_input(const ConvGeometry& g, const GradInputArgs<T>& a);
template <typename T>
void grad_weight(const ConvGeometry& g, const GradWeightArgs<T>& a);

}  // namespace dense
}  // namespace fastconv
