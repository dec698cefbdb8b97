// Direct convolution kernels for the shapes where the implicit GEMM of gemm.cuh wastes its tiles.
#pragma once
#include "common.cuh"

namespace alexnet {
namespace cuda {

/**
 * Data gradient, one thread per dx element, summing only the taps that exist:
 *   dx[i, ci, iy, ix] = sum_{o in group, ky, kx : iy + padH - ky = oy strideH, ...} dy[i, o, oy, ox] w[o, ci, ky, kx]
 * Used for strided convolutions (conv1's 11x11 stride 4: the GEMM's gather would read 15 zeros out of
 * 16) and for few input channels per group (the GEMM tile's rows would be mostly padding).
 */
__global__ void convBackwardDataDirectKernel(const float* dy, const float* w, float* dx, ConvShape g) {
  const long long total = (long long)g.n * g.c * g.h * g.w;
  const int cg = g.c / g.groups, kg = g.k / g.groups, rs = g.r * g.s;
  ALEXNET_GRID_STRIDE(e, total) {
    const int ix = (int)(e % g.w), iy = (int)((e / g.w) % g.h);
    const int cin = (int)((e / ((long long)g.w * g.h)) % g.c);
    const int i = (int)(e / ((long long)g.w * g.h * g.c));
    const int grp = cin / cg, ci = cin % cg;
    float acc = 0.f;
    for (int ky = 0; ky < g.r; ++ky) {
      const int ty = iy + g.padH - ky;
      if (ty < 0 || ty % g.strideH) continue;
      const int oy = ty / g.strideH;
      if (oy >= g.outH) continue;
      for (int kx = 0; kx < g.s; ++kx) {
        const int tx = ix + g.padW - kx;
        if (tx < 0 || tx % g.strideW) continue;
        const int ox = tx / g.strideW;
        if (ox >= g.outW) continue;
        const float* dyp = dy + ((long long)(i * g.k + grp * kg) * g.outH + oy) * g.outW + ox;
        const float* wp = w + ((long long)(grp * kg) * cg + ci) * rs + ky * g.s + kx;
        for (int o = 0; o < kg; ++o) acc = fmaf(dyp[(long long)o * g.outH * g.outW], wp[(long long)o * cg * rs], acc);
      }
    }
    dx[e] = acc;
  }
}

}  // namespace cuda
}  // namespace alexnet
