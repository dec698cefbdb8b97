// Max pooling (§3.4: overlapping windows, 3x3 stride 2 in the paper; native/cuda/kernels/pool.cuh is
// the CUDA engine's). Planes are n c, x [plane, h, w]; argmax = ih w + iw within the plane.
#include <atomic>
#include <cstring>
#include <limits>

#include "../kernels.h"
#include "common.h"

namespace alexnet {

namespace {

/**
 * One plane, one output row at a time: for each window cell (row-major, so ties keep the first) the
 * whole row of outputs is compared at once, which vectorises (stride-2 loads for the paper's 3x3 s2).
 * best/idx: scratch of outW. NaN wins (and stays), as in PyTorch.
 */
ALEXNET_INLINE void poolPlaneBody(const float* xp, float* yp, int32_t* ap, const PoolGeometry& g, float* best,
                                  int32_t* idx, float* v) {
  const int64_t W = g.w, OW = g.outW, sw = g.strideW, KW = g.kw;
  const int64_t OWp = (OW + 15) / 16 * 16;  // whole vectors, no scalar remainder
  // De-interleave the plane first: v[(ih KW + kw) OWp + ow] = x[ih, ow sw + kw - padW]. Written well
  // before the compares read it (a wide load right after narrow stores would stall store forwarding).
  for (int64_t ih = 0; ih < g.h; ++ih) {
    const float* xr = xp + ih * W;
    for (int64_t kw = 0; kw < KW; ++kw) {
      int64_t lo, hi;
      validRange(kw - g.padW, sw, W, OW, &lo, &hi);
      float* vr = v + (ih * KW + kw) * OWp;
      const float* src = xr + kw - g.padW;
      for (int64_t ow = lo; ow < hi; ++ow) vr[ow] = src[ow * sw];
    }
  }
  for (int64_t oh = 0; oh < g.outH; ++oh) {
    const int64_t h0 = oh * g.strideH - g.padH;
    const int64_t ha = std::max<int64_t>(h0, 0), hb = std::min<int64_t>(h0 + g.kh, g.h);
    for (int64_t ow = 0; ow < OWp; ++ow) { best[ow] = -std::numeric_limits<float>::infinity(); idx[ow] = -1; }
    for (int64_t ih = ha; ih < hb; ++ih) {
      for (int64_t kw = 0; kw < KW; ++kw) {
        int64_t lo, hi;
        validRange(kw - g.padW, sw, W, OW, &lo, &hi);
        const int32_t base = (int32_t)(ih * W + kw - g.padW);
        const float* vr = v + (ih * KW + kw) * OWp;
        const int32_t l32 = (int32_t)lo, h32 = (int32_t)hi, s32 = (int32_t)sw;
        for (int32_t ow = 0; ow < (int32_t)OWp; ++ow) {
          const float x = vr[ow], b = best[ow];
          const int32_t cur = idx[ow];
          const bool take = (ow >= l32) & (ow < h32) & ((cur < 0) | (x > b) | ((x != x) & (b == b)));
          best[ow] = take ? x : b;
          idx[ow] = take ? base + ow * s32 : cur;
        }
      }
    }
    std::memcpy(yp + oh * OW, best, (size_t)OW * sizeof(float));
    std::memcpy(ap + oh * OW, idx, (size_t)OW * sizeof(int32_t));
  }
}

}  // namespace

void maxPoolForward(ThreadPool& pool, const float* x, float* y, int32_t* argmax, const PoolGeometry& g) {
  const int64_t planes = g.n * g.c, inPlane = g.h * g.w, outPlane = g.outH * g.outW;
  if (planes == 0 || outPlane == 0) return;
  pool.parallelFor(planes, 4, [&](int64_t b, int64_t e) {
    const size_t owp = (size_t)(g.outW + 15) / 16 * 16, vn = owp * (size_t)(g.h * g.kw);
    float* v = scratch(Scratch::Pool, vn + 2 * owp);
    float* best = v + vn;
    int32_t* idx = reinterpret_cast<int32_t*>(best + owp);
    std::memset(v, 0, vn * sizeof(float));
    for (int64_t pl = b; pl < e; ++pl)
      dispatchIsa<poolPlaneBody>(x + pl * inPlane, y + pl * outPlane, argmax + pl * outPlane, g, best, idx, v);
  });
}

int64_t maxPoolBackward(ThreadPool& pool, const float* dy, const int32_t* argmax, float* dx, const PoolGeometry& g) {
  const int64_t planes = g.n * g.c, inPlane = g.h * g.w, outPlane = g.outH * g.outW;
  if (planes == 0 || inPlane == 0) return 0;
  std::atomic<int64_t> bad{0};
  pool.parallelFor(planes, 4, [&](int64_t b, int64_t e) {
    int64_t myBad = 0;
    for (int64_t pl = b; pl < e; ++pl) {
      float* xp = dx + pl * inPlane;
      std::memset(xp, 0, (size_t)inPlane * sizeof(float));
      const float* dp = dy + pl * outPlane;
      const int32_t* ap = argmax + pl * outPlane;
      for (int64_t o = 0; o < outPlane; ++o) {
        const int32_t a = ap[o];
        if (a >= 0 && a < inPlane) xp[a] += dp[o];
        else if (a != -1) ++myBad;
      }
    }
    bad += myBad;
  });
  return bad.load();
}

}  // namespace alexnet
