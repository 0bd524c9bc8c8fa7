// Threads of the dense_bf16 family: the weight packed into k-pair panels across threads,
// then dense/tiling.h's forward tiles, the same tiling as the float kernels.
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <c10/util/Exception.h>

#include <algorithm>

#include "../dense/tiling.h"
#include "../flipped_weight.h"
#include "../runtime/isa.h"
#include "../runtime/parallel.h"
#include "../runtime/workspace.h"
#include "dense_bf16.h"

namespace fastconv {
namespace dense_bf16 {

bool available() { return built() && cpu_has_avx512_bf16(); }

at::Tensor forward(const ConvGeometry& g, const at::Tensor& input, const at::Tensor& weight,
                   const std::optional<at::Tensor>& bias) {
  TORCH_CHECK(available(), "fastconv: the bfloat16 dense kernel is not built for this CPU");
  const at::Tensor x = input.contiguous(), w = weight.contiguous();
  const bool has_bias = bias.has_value() && bias->defined();
  const at::Tensor b = has_bias ? bias->to(at::kFloat).contiguous() : at::Tensor();
  at::Tensor y = at::empty({g.N, g.K, g.P, g.Q}, x.options().dtype(at::kFloat));
  if (g.N == 0) return y.to(at::kBFloat16);
  const auto raw = [](const at::Tensor& t) {
    return reinterpret_cast<const uint16_t*>(t.const_data_ptr<at::BFloat16>());
  };
  const uint16_t* wp = raw(w);
  const int64_t Kg = g.K_per_group(), CRS = g.C_per_group() * g.R * g.S;
  const int64_t pairs = (CRS + 1) / 2, rows = (Kg + kMR - 1) / kMR * kMR;
  // Weights as 32-bit pairs in MR-row panels: panels[m / MR][pair][m % MR]; rows past Kg
  // are zero.
  const Workspace<uint32_t> packed_ws(Slot::kWeight, g.groups * rows * pairs);
  uint32_t* const packed = packed_ws.data();
  at::parallel_for(0, g.groups * rows, grain_for(pairs), [&](int64_t b0, int64_t e) {
    for (int64_t gm = b0; gm < e; ++gm) {
      const int64_t grp = gm / rows, m = gm % rows;
      uint32_t* panel = packed + grp * rows * pairs + (m / kMR) * pairs * kMR + m % kMR;
      const uint16_t* wr = wp + (grp * Kg + m) * CRS;
      for (int64_t p = 0; p < pairs; ++p) {
        const uint32_t lo = m < Kg ? wr[2 * p] : 0;
        const uint32_t hi = m < Kg && 2 * p + 1 < CRS ? wr[2 * p + 1] : 0;
        panel[p * kMR] = lo | (hi << 16);
      }
    }
  });
  const dense::ForwardTiles tiles = dense::forward_tiles(g, kNR, at::get_num_threads());
  const float* bp = has_bias ? b.const_data_ptr<float>() : nullptr;
  float* yp = y.mutable_data_ptr<float>();
  const uint16_t* xp = raw(x);
  at::parallel_for(0, tiles.count,
                   grain_for(std::min(tiles.k_tile, Kg) * dense::kPositionTile * CRS),
                   [&](int64_t b0, int64_t e) {
                     for (int64_t t = b0; t < e; ++t) {
                       int64_t grp, k0, k1, j0, j1;
                       tiles.at(t, Kg, g.N, &grp, &k0, &k1, &j0, &j1);
                       forward_tile(g, xp, packed + grp * rows * pairs,
                                    bp ? bp + grp * Kg : nullptr, yp, grp, k0, k1, j0, j1);
                     }
                   });
  return y.to(at::kBFloat16);
}

at::Tensor grad_input(const ConvGeometry& g, const at::Tensor& grad_output,
                      const at::Tensor& weight) {
  const at::Tensor w = weight.contiguous();
  const Workspace<at::BFloat16> wf = flip_transpose_weight(g, w.const_data_ptr<at::BFloat16>());
  const at::Tensor wt = at::from_blob(wf.data(), {g.C, g.K_per_group(), g.R, g.S}, w.options());
  return forward(dgrad_as_forward(g), grad_output, wt, std::nullopt);
}

}  // namespace dense_bf16
}  // namespace fastconv
