// FFT path of the direct family. With the kernel stored circularly at tap positions
// ((r - pad_h) mod L1, (s - pad_w) mod L2) of an L1 x L2 grid ("wc"), all three passes are
// one product of spectra and need no shifts of the large operands:
//
//   forward      y[p, q]  = sum wc[m] x[p + m]          Y  = X  . conj(Wc)
//   grad-input   gx[h, w] = sum wc[m] gy[h - m]         GX = GY . Wc
//   grad-weight  c[t]     = sum_p gy[p] x[t + p]        C  = sum_n X . conj(GY),
//                gw[r, s] = c[r - pad_h, s - pad_w]     (a roll of the small result)
//
// (indices mod L1 x L2, x and gy zero-extended to the grid). Wrap-around never mixes real
// data as long as L1 >= H + pad_h, L1 >= P and L1 >= R (the same for columns): the
// negative indices of the top padding then land in the zero extension.
//
// The transforms are torch's (at::fft_rfft2, MKL or pocketfft), which the project rules
// allow: they are not convolutions. Channel multipliers broadcast the input spectrum; sums
// over images and multipliers run in a fixed order, so results are reproducible.
//
// Error: like any FFT convolution, the error is relative to the largest terms, not to each
// output: about eps * log2(L1 * L2) * max|x| * sum|w| (docs/design.md, "The fft family").
#include "fft.h"

#include <ATen/ops/add.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/fft_fft.h>
#include <ATen/ops/fft_irfft2.h>
#include <ATen/ops/fft_rfft.h>
#include <ATen/ops/fft_rfft2.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/roll.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

namespace fastconv {
namespace fft {
namespace {

using at::IntArrayRef;
using at::Tensor;
using OptTensor = std::optional<Tensor>;

// Smallest n' >= n with no prime factor above 5: FFT libraries are fastest there
// (docs/measurements.md).
int64_t smooth_size(int64_t n) {
  for (int64_t m = std::max<int64_t>(n, 1);; ++m) {
    int64_t r = m;
    for (int64_t f : {2, 3, 5})
      while (r % f == 0) r /= f;
    if (r == 1) return m;
  }
}

struct Grid {
  int64_t L1, L2;
  int64_t F() const { return L2 / 2 + 1; }  // columns of a real-to-complex spectrum
};

Grid grid_for(const ConvGeometry& g) {
  return {smooth_size(std::max({g.H + g.pad_h, g.P, g.R})),
          smooth_size(std::max({g.W + g.pad_w, g.Q, g.S}))};
}

// Images per batch of transforms: keeps the complex workspace near 64 MB.
int64_t images_per_batch(const ConvGeometry& g, const Grid& grid, int64_t elem_bytes) {
  const int64_t per_image = (g.C + 2 * g.K) * grid.L1 * grid.F() * 2 * elem_bytes;
  return std::clamp<int64_t>((int64_t{64} << 20) / std::max<int64_t>(1, per_image), 1, g.N);
}

// Spectrum of the circularly stored kernel, [K, L1, F]: row transforms of its R non-zero
// rows only, then column transforms (a plain rfft2 would transform L1 rows, mostly zero).
Tensor kernel_spectrum(const ConvGeometry& g, const Grid& grid, const Tensor& w) {
  Tensor rows = at::constant_pad_nd(w.reshape({g.K, g.R, g.S}), {0, grid.L2 - g.S}, 0);
  rows = at::fft_rfft(at::roll(rows, {-g.pad_w}, {2}));  // [K, R, F]
  std::vector<int64_t> at_row(static_cast<size_t>(g.R));
  for (int64_t r = 0; r < g.R; ++r) at_row[r] = ((r - g.pad_h) % grid.L1 + grid.L1) % grid.L1;
  const Tensor index = at::tensor(at_row, at::TensorOptions().dtype(at::kLong));
  Tensor placed = at::zeros({g.K, grid.L1, grid.F()}, rows.options());
  placed.index_copy_(1, index, rows);
  return at::fft_fft(placed, std::nullopt, 1);
}

}  // namespace

bool applies(const ConvGeometry& g) {
  return g.one_channel_per_group() && g.stride_h == 1 && g.stride_w == 1 && g.dil_h == 1 &&
         g.dil_w == 1 && g.N > 0 && g.P > 0 && g.Q > 0;
}

int64_t grid_points(const ConvGeometry& g) {
  const Grid grid = grid_for(g);
  return grid.L1 * grid.L2;
}

namespace {

void forward_t(const ConvGeometry& g, const Tensor& x, const Tensor& w, const OptTensor& bias,
               Tensor& y) {
  const Grid grid = grid_for(g);
  const int64_t m = g.K_per_group(), F = grid.F();
  const Tensor wf = kernel_spectrum(g, grid, w).conj().view({1, g.C, m, grid.L1, F});
  const int64_t nb = images_per_batch(g, grid, x.element_size());
  for (int64_t n0 = 0; n0 < g.N; n0 += nb) {
    const int64_t cnt = std::min(nb, g.N - n0);
    const Tensor xf = at::fft_rfft2(x.narrow(0, n0, cnt), IntArrayRef{grid.L1, grid.L2});
    const Tensor yf = at::mul(xf.unsqueeze(2), wf).view({cnt, g.K, grid.L1, F});
    const Tensor c = at::fft_irfft2(yf, IntArrayRef{grid.L1, grid.L2});
    y.narrow(0, n0, cnt).copy_(c.narrow(2, 0, g.P).narrow(3, 0, g.Q));
  }
  if (bias.has_value() && bias->defined()) y.add_(bias->view({1, g.K, 1, 1}));
}

void grad_input_t(const ConvGeometry& g, const Tensor& gy, const Tensor& w, Tensor& gx) {
  const Grid grid = grid_for(g);
  const int64_t m = g.K_per_group(), F = grid.F();
  const Tensor wf = kernel_spectrum(g, grid, w).view({1, g.C, m, grid.L1, F});
  const int64_t nb = images_per_batch(g, grid, gy.element_size());
  for (int64_t n0 = 0; n0 < g.N; n0 += nb) {
    const int64_t cnt = std::min(nb, g.N - n0);
    const Tensor gyf = at::fft_rfft2(gy.narrow(0, n0, cnt), IntArrayRef{grid.L1, grid.L2});
    const Tensor prod = at::mul(gyf.view({cnt, g.C, m, grid.L1, F}), wf);
    Tensor gxf = prod.select(2, 0);
    for (int64_t j = 1; j < m; ++j) gxf = at::add(gxf, prod.select(2, j));  // fixed order
    const Tensor c = at::fft_irfft2(gxf, IntArrayRef{grid.L1, grid.L2});
    gx.narrow(0, n0, cnt).copy_(c.narrow(2, 0, g.H).narrow(3, 0, g.W));
  }
}

void grad_weight_t(const ConvGeometry& g, const Tensor& x, const Tensor& gy, Tensor& gw) {
  const Grid grid = grid_for(g);
  const int64_t m = g.K_per_group(), F = grid.F();
  const int64_t nb = images_per_batch(g, grid, x.element_size());
  Tensor acc;
  for (int64_t n0 = 0; n0 < g.N; n0 += nb) {
    const int64_t cnt = std::min(nb, g.N - n0);
    const Tensor xf = at::fft_rfft2(x.narrow(0, n0, cnt), IntArrayRef{grid.L1, grid.L2});
    const Tensor gyf = at::fft_rfft2(gy.narrow(0, n0, cnt), IntArrayRef{grid.L1, grid.L2});
    const Tensor prod = at::mul(xf.unsqueeze(2), gyf.conj().view({cnt, g.C, m, grid.L1, F}));
    for (int64_t i = 0; i < cnt; ++i) {  // images in order: reproducible sums
      const Tensor term = prod.select(0, i).reshape({g.K, grid.L1, F});
      acc = acc.defined() ? at::add(acc, term) : term;
    }
  }
  Tensor c = at::fft_irfft2(acc, IntArrayRef{grid.L1, grid.L2});
  c = at::roll(c, {g.pad_h, g.pad_w}, {1, 2});
  gw.view({g.K, g.R, g.S}).copy_(c.narrow(1, 0, g.R).narrow(2, 0, g.S));
}

// The raw buffers of the family interface as tensors (no copies).
template <typename T>
Tensor view(const T* p, IntArrayRef sizes) {
  return at::from_blob(const_cast<T*>(p), sizes,
                       at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
}

}  // namespace

template <typename T>
void forward(const ConvGeometry& g, const ForwardArgs<T>& a) {
  Tensor y = view(a.y, {g.N, g.K, g.P, g.Q});
  forward_t(g, view(a.x, {g.N, g.C, g.H, g.W}), view(a.w, {g.K, 1, g.R, g.S}),
            a.bias ? OptTensor(view(a.bias, {g.K})) : std::nullopt, y);
}
template <typename T>
void grad_input(const ConvGeometry& g, const GradInputArgs<T>& a) {
  Tensor gx = view(a.gx, {g.N, g.C, g.H, g.W});
  grad_input_t(g, view(a.gy, {g.N, g.K, g.P, g.Q}), view(a.w, {g.K, 1, g.R, g.S}), gx);
}
template <typename T>
void grad_weight(const ConvGeometry& g, const GradWeightArgs<T>& a) {
  Tensor gw = view(a.gw, {g.K, 1, g.R, g.S});
  grad_weight_t(g, view(a.x, {g.N, g.C, g.H, g.W}), view(a.gy, {g.N, g.K, g.P, g.Q}), gw);
}

FASTCONV_INSTANTIATE_FAMILY_PASSES()

}  // namespace fft
}  // namespace fastconv
