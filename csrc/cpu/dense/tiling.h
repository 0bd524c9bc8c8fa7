// How a dense forward pass is cut into tasks: shared by the float/double kernels
// (driver.cpp) and the bfloat16 kernel (dense_bf16/), so both tile the same way.
//
// Tiles are (block of positions, group, block of output channels). A tile packs its slice of
// im2col once for all its output channels, so output channels are split only when there
// are too few tiles to keep every thread busy (no reduction crosses tiles, so this never
// changes the result). Positions run over the whole batch: maps smaller than a tile share
// one across images (whole NR-column panels, split evenly, up to four per thread); larger
// maps are cut at image boundaries. Output channels are split only below two tiles per
// thread: such a split packs the same im2col slice once per channel block, which costs
// more than thinner position tiles.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../../conv_geometry.h"
#include "table.h"

namespace fastconv {
namespace dense {

// Positions per tile of a map at least this large; smaller maps span images.
constexpr int64_t kPositionTile = 256;

struct ForwardTiles {
  int64_t PQ, pos_tiles, per_image, panels, nr, k_tile, k_tiles, count;
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
      *j0 = n * PQ + q * kPositionTile;
      *j1 = n * PQ + std::min(PQ, (q + 1) * kPositionTile);
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
  t.panels = (g.N * t.PQ + nr - 1) / nr;
  t.pos_tiles = t.span ? std::max((g.N * t.PQ + kPositionTile - 1) / kPositionTile,
                                  std::min(t.panels, 4 * threads))
                       : g.N * t.per_image;
  const int64_t base = g.groups * t.pos_tiles;
  const int64_t k_split = base >= 2 * threads ? 1
                                              : std::min((2 * threads + base - 1) / base,
                                                         (Kg + kDenseMR - 1) / kDenseMR);
  t.k_tile = ((Kg + k_split - 1) / k_split + kDenseMR - 1) / kDenseMR * kDenseMR;
  t.k_tiles = (Kg + t.k_tile - 1) / t.k_tile;
  t.count = g.groups * t.k_tiles * t.pos_tiles;
  return t;
}

}  // namespace dense
}  // namespace fastconv
