// Threading helpers shared by the drivers: task sizes and reductions in a fixed order.
//
// Reproducibility: every reduction (grad-weight, grad-bias) is split into chunks whose
// boundaries depend only on the problem, never on the thread count, and the chunks are
// combined in a fixed order, so backward results are bitwise identical run to run and
// across torch.set_num_threads settings.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

namespace fastconv {

// Work per parallel task we aim for: enough to amortise a task's start, few enough tasks
// to balance two to sixteen threads.
constexpr int64_t kTaskMacs = 1 << 16;

inline int64_t grain_for(int64_t macs_per_item) {
  return std::max<int64_t>(1, kTaskMacs / std::max<int64_t>(1, macs_per_item));
}

// How many pieces to cut each of `base` natural tasks into (at most `parts`) so that there
// are four tasks per thread. Only for pieces that no reduction crosses: the result must not
// depend on the thread count.
inline int64_t pieces(int64_t base, int64_t parts) {
  const int64_t want = 4 * at::get_num_threads();
  return base >= want ? 1 : std::min(parts, (want + base - 1) / base);
}

// The fewest blocks, from `blocks` up to below `limit`, whose tasks(blocks) equal tasks
// share evenly among the threads; else `blocks`. 17 equal tasks on 2 threads leave one
// thread idle for a seventeenth of the call. Only for blocks no reduction crosses.
template <typename Tasks>
inline int64_t even_blocks(int64_t blocks, int64_t limit, const Tasks& tasks) {
  const int64_t threads = at::get_num_threads();
  for (int64_t b = blocks; b < std::min(limit, blocks + threads); ++b)
    if (tasks(b) % threads == 0) return b;
  return blocks;
}

// How many fixed slices a reduction over `positions` runs in, each into its own partial of
// `partial_bytes`, the partials added in slice order: at least kSlicePositions positions a
// slice (its partial, written once, stays a small part of its work), at most kMaxSlices
// and `max_slices`, and all the partials within kMaxPartialBytes. Set by the problem alone,
// so the sum's order does not depend on the thread count.
constexpr int64_t kSlicePositions = 2048;
constexpr int64_t kMaxSlices = 16;
constexpr int64_t kMaxPartialBytes = int64_t{16} << 20;
inline int64_t reduction_slices(int64_t positions, int64_t partial_bytes,
                                int64_t max_slices = kMaxSlices) {
  const int64_t by_bytes = kMaxPartialBytes / std::max<int64_t>(partial_bytes, 1);
  return std::clamp<int64_t>(std::min({positions / kSlicePositions, by_bytes, max_slices}), 1,
                             kMaxSlices);
}

// out[i] = sum over chunks c of partial[first(i) + c * chunk_stride], c = 0, 1, ... in
// order, for i < n: the fixed-order sum of per-chunk partials.
template <typename T, typename First>
void sum_chunks_in_order(int64_t n, int64_t chunks, int64_t chunk_stride, const T* partial, T* out,
                         First&& first) {
  at::parallel_for(0, n, grain_for(chunks), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T* p = partial + first(i);
      T s = 0;
      for (int64_t c = 0; c < chunks; ++c) s += p[c * chunk_stride];
      out[i] = s;
    }
  });
}

}  // namespace fastconv
