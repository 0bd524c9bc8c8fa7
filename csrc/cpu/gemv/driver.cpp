// Threads of the gemv family: the positions as rows (the tensors' own rows where they are,
// else gathered), then tasks over blocks of output channels (forward, grad-weight) or
// input channels (grad-input). No reduction crosses tasks, so the result does not depend
// on the thread count.
#include <algorithm>

#include "../runtime/parallel.h"
#include "../runtime/workspace.h"
#include "../simd/kernel_table.h"
#include "gemv.h"

namespace fastconv {
namespace gemv {
namespace {

constexpr int64_t kTaskOutputChannels = 16;  // per forward and grad-weight task
constexpr int64_t kTaskInputChannels = 64;   // per grad-input task

// Whether row m (channels apart) of a tensor in layout l with `plane` positions per image
// is position m.
bool rows_are_positions(Layout l, int64_t plane) { return l == Layout::kNhwc || plane == 1; }

// Whether the input's rows are the output positions' (row m: what output position m reads),
// and whether an output-sized tensor's rows are its positions: then it is read or written
// in place, else through gathered rows.
bool input_in_place(const ConvGeometry& g, Layout l) {
  return g.pointwise_in_place() && rows_are_positions(l, g.H * g.W);
}
bool output_in_place(const ConvGeometry& g, Layout l) { return rows_are_positions(l, g.P * g.Q); }

// The input position output position m = (n*P + p)*Q + q reads, or -1 in the padding.
int64_t input_position(const ConvGeometry& g, int64_t m) {
  const int64_t PQ = g.P * g.Q, n = m / PQ, p = m % PQ / g.Q, q = m % g.Q;
  const int64_t ih = g.in_row(p, 0), iw = g.in_col(q, 0);
  return ih >= 0 && ih < g.H && iw >= 0 && iw < g.W ? (n * g.H + ih) * g.W + iw : -1;
}

// Value c of position pos (= n*plane + i) of a tensor with `channels` channels in layout l.
template <typename T>
T& at_position(T* t, Layout l, int64_t channels, int64_t plane, int64_t pos, int64_t c) {
  return l == Layout::kNhwc ? t[pos * channels + c]
                            : t[(pos / plane * channels + c) * plane + pos % plane];
}

// The rows of the input at the output positions ([N*P*Q][C], zero in the padding): x itself
// where those are its rows, else gathered into `ws`.
template <typename T>
const T* input_rows(const ConvGeometry& g, const T* x, Layout l, const Workspace<T>& ws) {
  if (input_in_place(g, l)) return x;
  const int64_t M = g.N * g.P * g.Q;
  for (int64_t m = 0; m < M; ++m) {
    const int64_t pos = input_position(g, m);
    for (int64_t c = 0; c < g.C; ++c)
      ws.data()[m * g.C + c] = pos < 0 ? T(0) : at_position(x, l, g.C, g.H * g.W, pos, c);
  }
  return ws.data();
}

// The rows of grad_output ([N*P*Q][K]): the tensor itself where those are its rows.
template <typename T>
const T* output_rows(const ConvGeometry& g, const T* gy, Layout l, const Workspace<T>& ws) {
  const int64_t PQ = g.P * g.Q, M = g.N * PQ;
  if (output_in_place(g, l)) return gy;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < g.K; ++k) ws.data()[m * g.K + k] = at_position(gy, l, g.K, PQ, m, k);
  return ws.data();
}

// fn(grp, c0, c1) for every group's blocks of `block` of its `channels` channels, as
// parallel tasks (macs: multiply-adds per channel).
template <typename Fn>
void over_channel_blocks(const ConvGeometry& g, int64_t channels, int64_t block, int64_t macs,
                         const Fn& fn) {
  const int64_t blocks = (channels + block - 1) / block;
  at::parallel_for(0, g.groups * blocks, grain_for(macs * block), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t grp = t / blocks, c0 = t % blocks * block;
      fn(grp, c0, std::min(channels, c0 + block));
    }
  });
}

// Workspace for rows the tensor's own rows cannot be (`in_place`).
template <typename T>
Workspace<T> rows_workspace(Slot slot, bool in_place, int64_t rows, int64_t channels) {
  return Workspace<T>(slot, in_place ? 0 : rows * channels);
}

}  // namespace

template <typename T>
void forward(const ConvGeometry& g, const ForwardArgs<T>& a) {
  const auto& kt = kernels<T>().gemv;
  const int64_t PQ = g.P * g.Q, M = g.N * PQ, Kg = g.K_per_group(), Cg = g.C_per_group();
  const bool x_in_place = input_in_place(g, a.x_layout);
  const bool y_in_place = output_in_place(g, a.y_layout);
  const auto xs = rows_workspace<T>(Slot::kPositions, x_in_place, M, g.C);
  const auto ys = rows_workspace<T>(Slot::kPositions2, y_in_place, M, g.K);
  const T* x = input_rows(g, a.x, a.x_layout, xs);
  T* y = y_in_place ? a.y : ys.data();
  over_channel_blocks(g, Kg, kTaskOutputChannels, M * Cg, [&](int64_t grp, int64_t k0, int64_t k1) {
    kt.forward(M, Cg, x + grp * Cg, g.C, a.w + grp * Kg * Cg, Cg,
               a.bias ? a.bias + grp * Kg : nullptr, y + grp * Kg, g.K, k0, k1);
  });
  if (!y_in_place)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < g.K; ++k)
        at_position(a.y, a.y_layout, g.K, PQ, m, k) = y[m * g.K + k];
}

template <typename T>
void grad_input(const ConvGeometry& g, const GradInputArgs<T>& a) {
  const auto& kt = kernels<T>().gemv;
  const int64_t PQ = g.P * g.Q, HW = g.H * g.W, M = g.N * PQ;
  const int64_t Kg = g.K_per_group(), Cg = g.C_per_group();
  const bool gy_in_place = output_in_place(g, a.gy_layout);
  const bool gx_in_place = input_in_place(g, a.gx_layout);
  const auto gys = rows_workspace<T>(Slot::kPositions, gy_in_place, M, g.K);
  const auto gxs = rows_workspace<T>(Slot::kPositions2, gx_in_place, M, g.C);
  const T* gy = output_rows(g, a.gy, a.gy_layout, gys);
  T* gx = gx_in_place ? a.gx : gxs.data();
  over_channel_blocks(g, Cg, kTaskInputChannels, M * Kg, [&](int64_t grp, int64_t c0, int64_t c1) {
    kt.grad_input(M, Kg, gy + grp * Kg, g.K, a.w + grp * Kg * Cg, Cg, gx + grp * Cg, g.C, c0, c1);
  });
  if (gx_in_place) return;
  // A 1x1 kernel reaches each input position from at most one output position; the rest
  // (skipped by the stride) get zero.
  std::fill_n(a.gx, g.N * g.C * HW, T(0));
  for (int64_t m = 0; m < M; ++m)
    if (const int64_t pos = input_position(g, m); pos >= 0)
      for (int64_t c = 0; c < g.C; ++c)
        at_position(a.gx, a.gx_layout, g.C, HW, pos, c) = gx[m * g.C + c];
}

template <typename T>
void grad_weight(const ConvGeometry& g, const GradWeightArgs<T>& a) {
  const auto& kt = kernels<T>().gemv;
  const int64_t PQ = g.P * g.Q, M = g.N * PQ, Kg = g.K_per_group(), Cg = g.C_per_group();
  const bool x_in_place = input_in_place(g, a.x_layout);
  const bool gy_in_place = output_in_place(g, a.gy_layout);
  const auto xs = rows_workspace<T>(Slot::kPositions, x_in_place, M, g.C);
  const auto gys = rows_workspace<T>(Slot::kPositions2, gy_in_place, M, g.K);
  const T* x = input_rows(g, a.x, a.x_layout, xs);
  const T* gy = output_rows(g, a.gy, a.gy_layout, gys);
  // A 1x1 weight is [K][C/G] in either memory format.
  over_channel_blocks(g, Kg, kTaskOutputChannels, M * Cg, [&](int64_t grp, int64_t k0, int64_t k1) {
    kt.grad_weight(M, Cg, gy + grp * Kg, g.K, x + grp * Cg, g.C, a.gw + grp * Kg * Cg, Cg, k0, k1);
  });
}

FASTCONV_INSTANTIATE_FAMILY_PASSES()

}  // namespace gemv
}  // namespace fastconv
