// Flat ranges over a batch (positions or rows, image after image) cut at image boundaries:
// the drivers' tasks and the kernels' position walks both take them so. `static`: each
// translation unit, every ISA's build included, keeps its own copy (no inline function
// compiled with AVX-512 flags may stand in for another unit's).
#pragma once

#include <algorithm>
#include <cstdint>

namespace fastconv {

// Items [b, e) of the batch (`per_image` per image, flat over images) in runs inside one
// image: fn(image, first item in it, length, offset of the run from b).
template <typename Fn>
static inline void for_each_image_run(int64_t per_image, int64_t b, int64_t e, Fn&& fn) {
  for (int64_t i = b; i < e;) {
    const int64_t n = i / per_image, len = std::min(e - i, (n + 1) * per_image - i);
    fn(n, i % per_image, len, i - b);
    i += len;
  }
}

}  // namespace fastconv
