// Shapes shared by the CPU and (future) CUDA engines. Plain structs of 64-bit sizes so that products
// of sizes never overflow; the engines validate them once at the API boundary (geometry.h has the
// checks, so both engines say the same thing about a bad call).
#pragma once
#include <stdint.h>

namespace alexnet {

/** x [n, c, h, w]; w [k, c / groups, r, s]; y [n, k, outH, outW]. Group g: channels [g c/G, (g+1) c/G). */
struct ConvGeometry {
  int64_t n, c, h, w;
  int64_t k, r, s;
  int64_t strideH, strideW;
  int64_t padH, padW;
  int64_t groups;
  int64_t outH, outW;

  int64_t cg() const { return c / groups; }        // input channels per group
  int64_t kg() const { return k / groups; }        // output channels per group
  int64_t plane() const { return outH * outW; }    // output positions per sample
  int64_t colRows() const { return cg() * r * s; } // rows of one group's im2col matrix
  int64_t xSize() const { return n * c * h * w; }
  int64_t ySize() const { return n * k * outH * outW; }
  int64_t wSize() const { return k * cg() * r * s; }
  /** Multiply-adds x 2 of the forward pass (also of each backward pass). */
  double flops() const { return 2.0 * (double)n * (double)k * (double)plane() * (double)colRows(); }
};

/** x [n, c, h, w] -> y [n, c, outH, outW]; padding cells count as -Infinity. */
struct PoolGeometry {
  int64_t n, c, h, w;
  int64_t kh, kw;
  int64_t strideH, strideW;
  int64_t padH, padW;
  int64_t outH, outW;

  int64_t xSize() const { return n * c * h * w; }
  int64_t ySize() const { return n * c * outH * outW; }
};

/** §3.3: scale = k + alpha * sum of squares over `size` neighbouring channels; y = x scale^-beta. */
struct LrnParams {
  int64_t size;
  double alpha, beta, k;
};

}  // namespace alexnet
