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
__global__ void __launch_bounds__(kThreads, kMinBlocks) convBackwardDataDirectKernel(const float* dy, const float* w, float* dx,
                                                                                      ConvShape g) {
  const long long total = (long long)g.n * g.c * g.h * g.w;  // below 2^31 (one buffer): int index math
  const int cg = g.c / g.groups, kg = g.k / g.groups, rs = g.r * g.s;
  ALEXNET_GRID_STRIDE(e, total) {
    int q, ix, iy, cin, i, grp, ci;
    g.divW.divmod((int)e, q, ix);
    g.divH.divmod(q, q, iy);
    g.divC.divmod(q, i, cin);
    g.divCg.divmod(cin, grp, ci);
    float acc = 0.f;
    // The taps that reach (iy, ix): ky = iy + padH - oy strideH, i.e. ky of the residue of iy + padH,
    // stepping by the stride while oy steps down by one: two divisions per element, none per tap.
    const int ty0 = iy + g.padH, tx0 = ix + g.padW;
    const int ky0 = ty0 % g.strideH, oy0 = ty0 / g.strideH, kx0 = tx0 % g.strideW, ox0 = tx0 / g.strideW;
    for (int ky = ky0, oy = oy0; ky < g.r && oy >= 0; ky += g.strideH, --oy) {
      if (oy >= g.outH) continue;
      for (int kx = kx0, ox = ox0; kx < g.s && ox >= 0; kx += g.strideW, --ox) {
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
