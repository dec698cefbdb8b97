// Max pooling (§3.4: overlapping windows, 3x3 stride 2 in the paper). Planes are n c, x [plane, h, w].
#pragma once
#include "common.cuh"

namespace alexnet {
namespace cuda {

/**
 * One thread per output: y = window max, argmax = ih w + iw; ties to the first in row-major order.
 * A window holding NaN outputs NaN with the first NaN as argmax (NaN propagates, as in PyTorch).
 */
__global__ void __launch_bounds__(kThreads, kMinBlocks) maxPoolForwardKernel(const float* x, float* y, int* argmax, PoolShape g) {
  const long long total = (long long)g.n * g.c * g.outH * g.outW;  // below 2^31 (one buffer)
  ALEXNET_GRID_STRIDE(o, total) {
    int rest, ox, oy, plane;
    g.divOutW.divmod((int)o, rest, ox);
    g.divOutH.divmod(rest, plane, oy);
    const float* xp = x + (long long)plane * g.h * g.w;
    float best = -INFINITY;
    int bi = -1;
    for (int ky = 0; ky < g.kh; ++ky) {
      const int iy = oy * g.strideH - g.padH + ky;
      if (iy < 0 || iy >= g.h) continue;
      for (int kx = 0; kx < g.kw; ++kx) {
        const int ix = ox * g.strideW - g.padW + kx;
        if (ix < 0 || ix >= g.w) continue;
        const float v = xp[iy * g.w + ix];
        if (bi < 0 || v > best || (v != v && best == best)) { best = v; bi = iy * g.w + ix; }
      }
    }
    y[o] = best;
    argmax[o] = bi;
  }
}

/**
 * One thread per input element: dx = sum of dy over the windows that contain it and chose it.
 * A gather instead of the scatter dx[argmax] += dy, so overlapping windows need no atomics and
 * the sum order is fixed.
 */
__global__ void __launch_bounds__(kThreads, kMinBlocks) maxPoolBackwardKernel(const float* dy, const int* argmax, float* dx, PoolShape g) {
  const long long total = (long long)g.n * g.c * g.h * g.w;  // below 2^31 (one buffer)
  ALEXNET_GRID_STRIDE(e, total) {
    int rest, ix, iy, plane;
    g.divW.divmod((int)e, rest, ix);
    g.divH.divmod(rest, plane, iy);
    const int self = iy * g.w + ix;
    const int ny = iy + g.padH - g.kh + 1, nx = ix + g.padW - g.kw + 1;
    const int oy0 = ny <= 0 ? 0 : (ny + g.strideH - 1) / g.strideH;
    const int ox0 = nx <= 0 ? 0 : (nx + g.strideW - 1) / g.strideW;
    const int oy1 = imin(g.outH - 1, (iy + g.padH) / g.strideH);
    const int ox1 = imin(g.outW - 1, (ix + g.padW) / g.strideW);
    const long long ob = (long long)plane * g.outH * g.outW;
    float s = 0.f;
    for (int oy = oy0; oy <= oy1; ++oy)
      for (int ox = ox0; ox <= ox1; ++ox) {
        const long long o = ob + oy * g.outW + ox;
        if (argmax[o] == self) s += dy[o];
      }
    dx[e] = s;
  }
}

}  // namespace cuda
}  // namespace alexnet
