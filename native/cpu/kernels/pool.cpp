// Max pooling (§3.4: overlapping windows, 3x3 stride 2 in the paper; native/cuda/kernels/pool.cuh is
// the CUDA engine's). Planes are n c, x [plane, h, w]; argmax = ih w + iw within the plane.
#include <atomic>
#include <cstring>
#include <limits>

#include "../kernels.h"
#include "common.h"

#if ALEXNET_X86
#include <immintrin.h>
#endif

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
  for (int64_t kw = 0; kw < KW; ++kw) {
    int64_t lo, hi;
    validRange(kw - g.padW, sw, W, OW, &lo, &hi);
    for (int64_t ih = 0; ih < g.h; ++ih) {
      float* vr = v + (ih * KW + kw) * OWp;
      const float* src = xp + ih * W + kw - g.padW;
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

#if ALEXNET_X86
/**
 * Whether the AVX-512 path below applies: windows of 2 or 3 columns at stride 2 with no column
 * padding, every window inside the row (the paper's 3x3/2 pools of 55, 27 and 13 columns, and 2x2/2).
 */
bool stride2Rows(const PoolGeometry& g) {
  return activeIsa() == Isa::Avx512 && g.strideW == 2 && (g.kw == 2 || g.kw == 3) && g.padW == 0 && g.outW > 0 &&
         (g.outW - 1) * 2 + g.kw <= g.w;
}

/**
 * One plane by 16 outputs of a row at a time, straight from x: the even and odd columns of 32 loaded
 * floats are the window's first two columns, those of the 32 floats two further on its third
 * (vpermt2ps). The cells are taken in the window's row-major order with the compare of
 * poolPlaneBody, so values and argmax are the same bit for bit: a larger value, or a NaN over a
 * number, replaces; a NaN stays.
 */
ALEXNET_TARGET_AVX512 void poolPlaneStride2(const float* xp, float* yp, int32_t* ap, const PoolGeometry& g) {
  const int64_t W = g.w, OW = g.outW, KW = g.kw;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  auto rowMask = [W](int64_t start) -> __mmask16 { return lanes16(W - start); };  // lanes of a load at `start` inside the row
  for (int64_t oh = 0; oh < g.outH; ++oh) {
    const int64_t h0 = oh * g.strideH - g.padH;
    const int64_t ha = std::max<int64_t>(h0, 0), hb = std::min<int64_t>(h0 + g.kh, g.h);
    for (int64_t ow0 = 0; ow0 < OW; ow0 += 16) {
      const __mmask16 out = lanes16(OW - ow0);
      const int64_t c0 = 2 * ow0;
      __m512 best = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
      __m512i idx = _mm512_set1_epi32(-1);
      bool first = true;
      for (int64_t ih = ha; ih < hb; ++ih) {
        const float* r = xp + ih * W;
        const __m512 a = _mm512_maskz_loadu_ps(rowMask(c0), r + c0), b = _mm512_maskz_loadu_ps(rowMask(c0 + 16), r + c0 + 16);
        __m512 cand[3];
        cand[0] = _mm512_permutex2var_ps(a, even, b);
        cand[1] = _mm512_permutex2var_ps(a, odd, b);
        if (KW == 3) {
          const __m512 a2 = _mm512_maskz_loadu_ps(rowMask(c0 + 2), r + c0 + 2), b2 = _mm512_maskz_loadu_ps(rowMask(c0 + 18), r + c0 + 18);
          cand[2] = _mm512_permutex2var_ps(a2, even, b2);
        }
        const __m512i base = _mm512_add_epi32(_mm512_set1_epi32((int32_t)(ih * W + c0)), even);
        for (int64_t kw = 0; kw < KW; ++kw) {
          const __m512 x = cand[kw];
          const __m512i at = _mm512_add_epi32(base, _mm512_set1_epi32((int32_t)kw));
          if (first) {
            best = x;
            idx = at;
            first = false;
            continue;
          }
          const __mmask16 take = _mm512_cmp_ps_mask(x, best, _CMP_NLE_UQ) & _mm512_cmp_ps_mask(best, best, _CMP_ORD_Q);
          best = _mm512_mask_mov_ps(best, take, x);
          idx = _mm512_mask_mov_epi32(idx, take, at);
        }
      }
      _mm512_mask_storeu_ps(yp + oh * OW + ow0, out, best);
      _mm512_mask_storeu_epi32(ap + oh * OW + ow0, out, idx);
    }
  }
}
#endif

}  // namespace

void maxPoolForward(ThreadPool& pool, const float* x, float* y, int32_t* argmax, const PoolGeometry& g) {
  const int64_t planes = g.n * g.c, inPlane = g.h * g.w, outPlane = g.outH * g.outW;
  if (planes == 0 || outPlane == 0) return;
#if ALEXNET_X86
  if (stride2Rows(g)) {
    pool.parallelFor(planes, 4, [&](int64_t b, int64_t e) {
      for (int64_t pl = b; pl < e; ++pl) poolPlaneStride2(x + pl * inPlane, y + pl * outPlane, argmax + pl * outPlane, g);
    });
    return;
  }
#endif
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
