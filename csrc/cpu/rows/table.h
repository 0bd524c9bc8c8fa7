// The row kernels of one instruction set, as the driver (driver.cpp) calls them: raw
// pointers into contiguous planes, single-threaded.
#pragma once

#include <cstdint>

#include "../../conv_geometry.h"

namespace fastconv {

template <typename T>
struct RowsKernels {
  // y[p, :] = bias + correlation of one input plane x with one R x S kernel w, for output
  // rows [p0, p1); accumulate adds to y instead of starting from bias.
  void (*forward)(const ConvGeometry& g, const T* x, const T* w, T bias, T* y, int64_t p0,
                  int64_t p1, bool accumulate);
  // gx += transposed correlation of one grad_output plane with w (any stride).
  void (*grad_input_plane)(const ConvGeometry& g, const T* gy, const T* w, T* gx);
  // acc[r*S + s] += sum over output rows [p0, p1) of gy * shifted x, in a fixed order.
  void (*grad_weight)(const ConvGeometry& g, const T* x, const T* gy, int64_t p0, int64_t p1,
                      T* acc);
};

}  // namespace fastconv
