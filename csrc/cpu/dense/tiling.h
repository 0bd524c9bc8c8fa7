// How a dense forward pass is cut into tasks: shared by the float/double kernels
// (driver.cpp) and the bfloat16 kernel (dense_bf16/), so both tile the same way.
//
// Tiles are (block of positions, group, block of output channels). A tile packs its slice of
// im2col once for all its output channels, so output channels are split only when there
// are too few tiles to keep every thread busy, or to share them evenly (no reduction
// crosses tiles, so this never changes the result). Positions run over the whole batch:
// maps smaller than a tile share one across images (whole NR-column panels, split evenly,
// up to four per thread); larger maps are cut at image boundaries into tiles of whole
// panels, all of about one size (784 positions in 256-wide tiles had left a last one of
// 16, and one thread two full tiles against the other's one and that sliver). Output
// channels are split below two tiles per thread, and into as many blocks as share few
// tiles evenly (7 tiles on 2 threads: 14 tasks): such a split packs the same im2col slice
// once per channel block, which costs more than thinner position tiles, but less than a
// thread idle for a seventh of the call.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../../conv_geometry.h"
#include "table.h"

namespace fastconv {
namespace dense {

// Positions per tile of a map at least this large; smaller maps span images.
constexpr int64_t kPositionTile = 256;

// Tiles below this many per thread are shared evenly by splitting output channels.
constexpr int64_t kEvenTilesPerThread = 8;
// The thinnest block of output channels such an even split cuts: its multiply-adds per
// packed im2col value must pay for the packing (14^2 maps at batch 1: 40 to 96 output
// channels lost 5-12 % to the split, 128 and more gained 3-15 %).
constexpr int64_t kMinSplitChannels = 64;

struct ForwardTiles {
  int64_t PQ, pos_tiles, per_image, image_panels, panels, nr, k_tile, k_tiles, count;
  bool span;

  // Tile t: group, output channels [k0, k1) of the group, positions [j0, j1) of the batch.
  void at(int64_t t, int64_t Kg, int64_t N, int64_t* grp, int64_t* k0, int64_t* k1, int64_t* j0,
          int64_t* j1) const {
    const int64_t pt = t % pos_tiles, kt = (t / pos_tiles) % k_tiles;
    *grp = t / (pos_tiles * k_tiles);
    *k0 = kt * k_tile;
    *k1 = std::min(Kg, *k0 + k_tile);
    if (span) {
      *j0 = pt * panels / pos_tiles * nr;
      *j1 = std::min(N * PQ, (pt + 1) * panels / pos_tiles * nr);
    } else {
      const int64_t n = pt / per_image, q = pt % per_image;
      *j0 = n * PQ + std::min(PQ, q * image_panels / per_image * nr);
      *j1 = n * PQ + std::min(PQ, (q + 1) * image_panels / per_image * nr);
    }
  }
};

// nr: columns of the micro-kernel's register tile (positions).
inline ForwardTiles forward_tiles(const ConvGeometry& g, int64_t nr, int64_t threads) {
  ForwardTiles t{};
  const int64_t Kg = g.K_per_group();
  t.PQ = g.P * g.Q;
  t.per_image = (t.PQ + kPositionTile - 1) / kPositionTile;
  t.span = t.PQ < kPositionTile;
  t.nr = nr;
  t.image_panels = (t.PQ + nr - 1) / nr;
  t.panels = (g.N * t.PQ + nr - 1) / nr;
  if (!t.span)  // more, thinner tiles where that shares them evenly
    for (int64_t p = t.per_image; p < std::min(t.per_image + threads, t.image_panels + 1); ++p)
      if (g.N * g.groups * p % threads == 0) {
        if (g.N * g.groups * p < kEvenTilesPerThread * threads) t.per_image = p;
        break;
      }
  t.pos_tiles = t.span ? std::max((g.N * t.PQ + kPositionTile - 1) / kPositionTile,
                                  std::min(t.panels, 4 * threads))
                       : g.N * t.per_image;
  const int64_t base = g.groups * t.pos_tiles, units = (Kg + kDenseMR - 1) / kDenseMR;
  const auto set_split = [&](int64_t k_split) {
    t.k_tile = (units + k_split - 1) / k_split * kDenseMR;
    t.k_tiles = (Kg + t.k_tile - 1) / t.k_tile;
    t.count = base * t.k_tiles;
  };
  set_split(base >= 2 * threads ? 1 : std::min((2 * threads + base - 1) / base, units));
  if (t.count % threads != 0 && t.count < kEvenTilesPerThread * threads) {
    const ForwardTiles uneven = t;
    for (int64_t s = t.k_tiles + 1; s <= t.k_tiles + threads; ++s) {
      set_split(s);
      if (t.count % threads == 0 && t.k_tile >= kMinSplitChannels) return t;
    }
    t = uneven;
  }
  return t;
}

}  // namespace dense
}  // namespace fastconv
