// Threads of the blocked family: tasks over (image, block of vec channels).
#include "blocked.h"

#include <algorithm>

#include "../flipped_weight.h"
#include "../runtime/parallel.h"
#include "../runtime/workspace.h"
#include "../simd/kernel_table.h"

namespace fastconv {
namespace blocked {

template <typename T>
void forward(const ConvGeometry& g, const ForwardArgs<T>& a) {
  const auto& kt = kernels<T>();
  const int64_t V = kt.vec, blocks = (g.C + V - 1) / V;
  const bool nhwc = a.y_layout == Layout::kNhwc;  // x's too
  at::parallel_for(
      0, g.N * blocks, grain_for(V * g.P * g.Q * g.R * g.S), [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
          kt.blocked.forward(g, a.x + (i / blocks) * g.C * g.H * g.W, a.w, a.bias,
                             a.y + (i / blocks) * g.K * g.P * g.Q, nhwc, (i % blocks) * V);
      });
}

template <typename T>
void grad_input(const ConvGeometry& g, const GradInputArgs<T>& a) {
  if (g.unit_stride()) return grad_input_as_forward(g, a, &forward<T>);
  const auto& kt = kernels<T>();
  const int64_t V = kt.vec, blocks = (g.C + V - 1) / V;
  at::parallel_for(0, g.N * blocks, grain_for(V * g.P * g.Q * g.R * g.S),
                   [&](int64_t b, int64_t e) {
                     for (int64_t i = b; i < e; ++i)
                       kt.blocked.grad_input(g, a.gy + (i / blocks) * g.K * g.P * g.Q, a.w,
                                             a.gx + (i / blocks) * g.C * g.H * g.W,
                                             a.gx_layout == Layout::kNhwc, (i % blocks) * V);
                   });
}

// One partial per (image, block), summed over images in order: reproducible bits.
template <typename T>
void grad_weight(const ConvGeometry& g, const GradWeightArgs<T>& a) {
  const auto& kt = kernels<T>();
  const int64_t V = kt.vec, blocks = (g.C + V - 1) / V, RS = g.R * g.S;
  const bool nhwc = a.gy_layout == Layout::kNhwc;
  const Workspace<T> partial(Slot::kPartials, g.N * blocks * RS * V);
  at::parallel_for(0, g.N * blocks, grain_for(V * g.P * g.Q * RS), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      kt.blocked.grad_weight(g, a.x + (i / blocks) * g.C * g.H * g.W,
                             a.gy + (i / blocks) * g.K * g.P * g.Q, partial.data() + i * RS * V,
                             nhwc, (i % blocks) * V);
  });
  // gw[c][rs] = sum over images n of partial[n][c / V][rs][c % V].
  sum_chunks_in_order(g.C * RS, g.N, blocks * RS * V, partial.data(), a.gw, [&](int64_t i) {
    const int64_t c = i / RS, rs = i % RS;
    return ((c / V) * RS + rs) * V + c % V;
  });
}

FASTCONV_INSTANTIATE_FAMILY_PASSES()

}  // namespace blocked
}  // namespace fastconv
