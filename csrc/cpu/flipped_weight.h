// Grad-input of a stride-1 layer as a forward pass: every family runs it on its own forward
// kernels with the flipped, transposed weight (conv_geometry.h, dgrad_as_forward).
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <type_traits>

#include "family.h"
#include "runtime/parallel.h"
#include "runtime/workspace.h"
#include "simd/kernel_table.h"

namespace fastconv {

// w'[g][c][k][R-1-r][S-1-s] = w[g][k][c][r][s], the weight of dgrad_as_forward(g), in the
// calling thread's kFlippedWeight workspace; w contiguous or (w_cl) channels_last.
template <typename T>
Workspace<T> flip_transpose_weight(const ConvGeometry& g, const T* w, bool w_cl = false) {
  const int64_t Kg = g.K_per_group(), Cg = g.C_per_group(), RS = g.R * g.S;
  Workspace<T> buf(Slot::kFlippedWeight, g.weight_numel());
  T* out = buf.data();
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    // fn(grp, i0, i1) for items [i0, i1) of group grp, `per` items a group, in tasks cut
    // at group boundaries.
    const auto by_group = [&](int64_t per, int64_t item_work, auto&& fn) {
      at::parallel_for(0, g.groups * per, grain_for(item_work), [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e;) {
          const int64_t grp = i / per, i1 = std::min(e, (grp + 1) * per);
          fn(grp, i - grp * per, i1 - grp * per);
          i = i1;
        }
      });
    };
    const auto& kt = kernels<T>();
    const int64_t group = Kg * Cg * RS;
    // A 1x1 weight (both layouts [K][C/G]) is a plain transpose per group: vector blocks
    // through register transposes. The loop below reads one value per output channel, C/G
    // apart: for a 2048x512 weight 0.9 ms, five times the GEMM it feeds at batch 1.
    if (RS == 1) {
      const int64_t V = kt.vec, chunks = (Cg + V - 1) / V;
      by_group(chunks, V * Kg, [&](int64_t grp, int64_t i0, int64_t i1) {
        kt.layout.to_nhwc(w + grp * group, out + grp * group, Kg, Cg, i0 * V, std::min(Cg, i1 * V));
      });
      return buf;
    }
    // A channels_last one: taps of vectors of input channels through register transposes.
    if (w_cl) {
      by_group(Kg, Cg * RS, [&](int64_t grp, int64_t k0, int64_t k1) {
        kt.layout.flip_taps(w + grp * group, out + grp * group, Kg, Cg, RS, k0, k1);
      });
      return buf;
    }
    // A contiguous one whose taps fit a vector: each (k, c)'s run reversed in a register.
    if (RS <= kt.vec) {
      by_group(Cg, Kg * RS, [&](int64_t grp, int64_t c0, int64_t c1) {
        kt.layout.flip_runs(w + grp * group, out + grp * group, Kg, Cg, RS, c0, c1);
      });
      return buf;
    }
  }
  at::parallel_for(0, g.groups * Cg, grain_for(Kg * RS), [&](int64_t b, int64_t e) {
    for (int64_t gc = b; gc < e; ++gc) {
      const int64_t grp = gc / Cg, c = gc % Cg;
      for (int64_t k = 0; k < Kg; ++k)
        for (int64_t rs = 0; rs < RS; ++rs)
          out[(gc * Kg + k) * RS + (RS - 1 - rs)] = w_cl ? w[((grp * Kg + k) * RS + rs) * Cg + c]
                                                         : w[((grp * Kg + k) * Cg + c) * RS + rs];
    }
  });
  return buf;
}

// Grad-input of a stride-1 layer: forward(dgrad_as_forward(g), args) on grad_output with
// the flipped weight.
template <typename T, typename Forward>
void grad_input_as_forward(const ConvGeometry& g, const GradInputArgs<T>& a, Forward&& forward) {
  const Workspace<T> wf = flip_transpose_weight(g, a.w, a.w_layout == Layout::kNhwc);
  forward(dgrad_as_forward(g),
          ForwardArgs<T>{a.gy, wf.data(), nullptr, a.gx, a.gy_layout, a.gx_layout, Layout::kNchw});
}

}  // namespace fastconv
