// Local response normalisation across channels (§3.3), one fused pass each way (native/cuda/kernels/
// lrn.cuh is the CUDA engine's): b_i = a_i / (k + alpha sum_{j near i} a_j^2)^beta. One pass over a
// block of `B` positions of one sample, channel by channel: each channel's squares enter a ring of
// the window's rows as the channel is read, and the channel `half` behind is finished from them (its
// window sum, the power, the output). x is read once, in runs of B contiguous floats (channel planes
// are contiguous in NCHW), and the rings stay in L1. The positions are the vectorised dimension.
#include <cmath>

#include "../kernels.h"
#include "common.h"

#if ALEXNET_X86
#include <immintrin.h>
#endif

namespace alexnet {

namespace {

/** Positions per block: runs of up to 512 floats (2 KiB) per channel plane. */
constexpr int64_t kLrnBlock = 512;

#if ALEXNET_X86
/**
 * s^-0.75 = s^-0.5 s^-0.25 without square roots or a division (they took most of the forward pass):
 * a = rsqrt(s), then q = rsqrt(s a) = s^-0.25, each vrsqrt14ps estimate refined by one Newton step
 * r (3 - v r^2) / 2, to within a few ulp. s = 0 and s = Infinity keep the estimate (Infinity, 0),
 * as 1 / (sqrt(s) sqrt(sqrt(s))) gives; NaN and s < 0 give NaN.
 */
ALEXNET_TARGET_AVX512 inline __m512 rsqrtNewton(__m512 v) {
  const __m512 r = _mm512_rsqrt14_ps(v);
  const __m512 n = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), r), _mm512_fnmadd_ps(_mm512_mul_ps(v, r), r, _mm512_set1_ps(3.0f)));
  // Newton only where v is finite and non-zero (0 -> Infinity and Infinity -> 0 stay exact).
  const __mmask16 finite = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_OQ) & _mm512_cmp_ps_mask(v, _mm512_set1_ps(INFINITY), _CMP_NEQ_OQ);
  return _mm512_mask_mov_ps(r, finite, n);
}

/** s^-0.75 of 16 lanes (see above). */
ALEXNET_TARGET_AVX512 inline __m512 pow075(__m512 v) {
  const __m512 a = rsqrtNewton(v);
  // s a = sqrt(s); at s = Infinity a = 0 and s a is NaN: q there is taken as 0 (s^-0.75 = 0).
  const __m512 r = _mm512_mul_ps(a, rsqrtNewton(_mm512_mul_ps(v, a)));
  return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(v, _mm512_set1_ps(INFINITY), _CMP_EQ_OQ), _mm512_setzero_ps());
}

ALEXNET_TARGET_AVX512 void powNeg075Avx512(const float* s, float* out, int64_t len) {
  for (int64_t p = 0; p < len; p += 16) {
    const __mmask16 m = lanes16(len - p);
    _mm512_mask_storeu_ps(out + p, m, pow075(_mm512_maskz_loadu_ps(m, s + p)));
  }
}

/** sum of rows[0..n) at p (in that order, from 0), as windowSum. */
ALEXNET_TARGET_AVX512 inline __m512 sumRows(const float* const* rows, int n, int64_t p, __mmask16 m) {
  __m512 acc = _mm512_setzero_ps();
  for (int j = 0; j < n; ++j) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, rows[j] + p));
  return acc;
}

/**
 * The forward pass's finish of one channel, fused per vector on AVX-512 for beta = 0.75: the window
 * sum of the ring rows, k + alpha sum, its -0.75 power, times x (the same operations in the same
 * order as lrnFwdBody's loops, without their passes through scratch).
 */
ALEXNET_TARGET_AVX512 void lrnFinishFwd075(const float* const* rows, int n, const float* x, float* y, int64_t len,
                                           float alpha, float k) {
  const __m512 va = _mm512_set1_ps(alpha), vk = _mm512_set1_ps(k);
  for (int64_t p = 0; p < len; p += 16) {
    const __mmask16 m = lanes16(len - p);
    const __m512 s = _mm512_add_ps(vk, _mm512_mul_ps(va, sumRows(rows, n, p, m)));
    _mm512_mask_storeu_ps(y + p, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + p), pow075(s)));
  }
}

/** lrnBwdBody's channel j on AVX-512: scale_j = k + alpha sum of the squares' rows, t_j = dy_j y_j / scale_j. */
ALEXNET_TARGET_AVX512 void lrnScaleT(const float* const* rows, int n, const float* y, const float* dy, float* scale,
                                     float* t, int64_t len, float alpha, float k) {
  const __m512 va = _mm512_set1_ps(alpha), vk = _mm512_set1_ps(k);
  for (int64_t p = 0; p < len; p += 16) {
    const __mmask16 m = lanes16(len - p);
    const __m512 s = _mm512_add_ps(vk, _mm512_mul_ps(va, sumRows(rows, n, p, m)));
    _mm512_mask_storeu_ps(scale + p, m, s);
    const __m512 dyy = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dy + p), _mm512_maskz_loadu_ps(m, y + p));
    _mm512_mask_storeu_ps(t + p, m, _mm512_div_ps(dyy, s));
  }
}

/** lrnBwdBody's channel i on AVX-512, beta = 0.75: dx_i = dy_i scale_i^-0.75 - coef x_i sum of t's rows. */
ALEXNET_TARGET_AVX512 void lrnFinishBwd075(const float* const* rows, int n, const float* scale, const float* x,
                                           const float* dy, float* dx, int64_t len, float coef) {
  const __m512 vc = _mm512_set1_ps(coef);
  for (int64_t p = 0; p < len; p += 16) {
    const __mmask16 m = lanes16(len - p);
    const __m512 acc = sumRows(rows, n, p, m);
    const __m512 a = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dy + p), pow075(_mm512_maskz_loadu_ps(m, scale + p)));
    const __m512 b = _mm512_mul_ps(_mm512_mul_ps(vc, _mm512_maskz_loadu_ps(m, x + p)), acc);
    _mm512_mask_storeu_ps(dx + p, m, _mm512_sub_ps(a, b));
  }
}
#endif

/** s^-beta; beta = 0.75 (the paper's) as 1 / (sqrt(s) sqrt(sqrt(s))), which vectorises. */
ALEXNET_INLINE void powNeg(const float* s, float* out, int64_t len, float beta) {
  if (beta == 0.75f) {
#if ALEXNET_X86
    if (activeIsa() == Isa::Avx512) { powNeg075Avx512(s, out, len); return; }
#endif
    for (int64_t p = 0; p < len; ++p) { float r = std::sqrt(s[p]); out[p] = 1.0f / (r * std::sqrt(r)); }
  } else if (beta == 0.5f) {
    for (int64_t p = 0; p < len; ++p) out[p] = 1.0f / std::sqrt(s[p]);
  } else if (beta == 1.0f) {
    for (int64_t p = 0; p < len; ++p) out[p] = 1.0f / s[p];
  } else {
    for (int64_t p = 0; p < len; ++p) out[p] = (float)std::pow((double)s[p], -(double)beta);
  }
}

/**
 * acc[p] = sum over the channels j with |j - i| <= half (within 0..c-1), in ascending j, of ring row
 * j mod W (rows of B floats, len used).
 */
ALEXNET_INLINE void windowSum(const float* ring, int64_t W, int64_t i, int64_t c, int64_t half, int64_t len, int64_t B,
                              float* acc) {
  const int64_t lo = std::max<int64_t>(0, i - half), hi = std::min<int64_t>(c - 1, i + half);
  for (int64_t p = 0; p < len; ++p) acc[p] = 0.0f;
  for (int64_t j = lo; j <= hi; ++j) {
    const float* q = ring + (j % W) * B;
    for (int64_t p = 0; p < len; ++p) acc[p] += q[p];
  }
}

/** Squares of channel m's block into its ring row. */
ALEXNET_INLINE void squaresInto(const float* x, int64_t m, int64_t hw, int64_t p0, int64_t len, int64_t B, int64_t W,
                                float* sq) {
  const float* xr = x + m * hw + p0;
  float* q = sq + (m % W) * B;
  for (int64_t p = 0; p < len; ++p) q[p] = xr[p] * xr[p];
}

/** scale[p] = k + alpha sum_{|j - i| <= half} x[j][p]^2 (squares from the ring). */
ALEXNET_INLINE void scaleOf(const float* sq, int64_t W, int64_t i, int64_t c, int64_t half, int64_t len, int64_t B,
                            float alpha, float k, float* scale) {
  windowSum(sq, W, i, c, half, len, B, scale);
  for (int64_t p = 0; p < len; ++p) scale[p] = k + alpha * scale[p];
}

/** The fused AVX-512 paths take windows of up to this many channels (the paper's is 5). */
constexpr int64_t kFusedRows = 16;

/** The ring rows of channel i's window (ascending channels, as windowSum adds them) into rows; their count. */
ALEXNET_INLINE int ringRows(const float* ring, int64_t W, int64_t i, int64_t c, int64_t half, int64_t B, const float** rows) {
  const int64_t lo = std::max<int64_t>(0, i - half), hi = std::min<int64_t>(c - 1, i + half);
  int n = 0;
  for (int64_t j = lo; j <= hi; ++j) rows[n++] = ring + (j % W) * B;
  return n;
}

// Scratch: rings of W = min(2 half + 1, c) rows of B floats (lrnBlocks), then rows of B floats.

ALEXNET_INLINE void lrnFwdBody(const float* x, float* y, int64_t c, int64_t hw, int64_t p0, int64_t len, int64_t B,
                               int64_t W, int64_t half, float alpha, float beta, float k, float* scratch) {
  float* sq = scratch;
  float* scl = sq + W * B;
#if ALEXNET_X86
  const bool fused = beta == 0.75f && W <= kFusedRows && activeIsa() == Isa::Avx512;
#endif
  for (int64_t m = 0; m < c + half; ++m) {
    if (m < c) squaresInto(x, m, hw, p0, len, B, W, sq);
    const int64_t i = m - half;  // every square of channel i's window is in the ring now
    if (i < 0) continue;
#if ALEXNET_X86
    if (fused) {
      const float* rows[kFusedRows];
      const int n = ringRows(sq, W, i, c, half, B, rows);
      lrnFinishFwd075(rows, n, x + i * hw + p0, y + i * hw + p0, len, alpha, k);
      continue;
    }
#endif
    scaleOf(sq, W, i, c, half, len, B, alpha, k, scl);
    powNeg(scl, scl, len, beta);
    const float* xr = x + i * hw + p0;
    float* yr = y + i * hw + p0;
    for (int64_t p = 0; p < len; ++p) yr[p] = xr[p] * scl[p];
  }
}

// dx_i = dy_i scale_i^-beta - 2 alpha beta x_i sum_{|j - i| <= half} dy_j y_j / scale_j: channel m's
// squares enter; channel j = m - half gets its scale and t_j = dy_j y_j / scale_j (rings of W rows);
// channel i = m - 2 half is finished.
ALEXNET_INLINE void lrnBwdBody(const float* x, const float* y, const float* dy, float* dx, int64_t c, int64_t hw,
                               int64_t p0, int64_t len, int64_t B, int64_t W, int64_t half, float alpha, float beta,
                               float k, float* scratch) {
  float* sq = scratch;
  float* scl = sq + W * B;
  float* t = scl + W * B;
  float* pw = t + W * B;
  float* acc = pw + B;
  const float coef = 2.0f * alpha * beta;
#if ALEXNET_X86
  const bool fused = beta == 0.75f && W <= kFusedRows && activeIsa() == Isa::Avx512;
#endif
  for (int64_t m = 0; m < c + 2 * half; ++m) {
    if (m < c) squaresInto(x, m, hw, p0, len, B, W, sq);
    const int64_t j = m - half;
#if ALEXNET_X86
    if (fused) {
      const float* rows[kFusedRows];
      if (j >= 0 && j < c) {
        const int n = ringRows(sq, W, j, c, half, B, rows);
        lrnScaleT(rows, n, y + j * hw + p0, dy + j * hw + p0, scl + (j % W) * B, t + (j % W) * B, len, alpha, k);
      }
      const int64_t i = m - 2 * half;
      if (i >= 0) {
        const int n = ringRows(t, W, i, c, half, B, rows);
        lrnFinishBwd075(rows, n, scl + (i % W) * B, x + i * hw + p0, dy + i * hw + p0, dx + i * hw + p0, len, coef);
      }
      continue;
    }
#endif
    if (j >= 0 && j < c) {
      float* s = scl + (j % W) * B;
      scaleOf(sq, W, j, c, half, len, B, alpha, k, s);
      const float* yr = y + j * hw + p0;
      const float* dyr = dy + j * hw + p0;
      float* tr = t + (j % W) * B;
      for (int64_t p = 0; p < len; ++p) tr[p] = dyr[p] * yr[p] / s[p];
    }
    const int64_t i = m - 2 * half;
    if (i < 0) continue;
    windowSum(t, W, i, c, half, len, B, acc);
    powNeg(scl + (i % W) * B, pw, len, beta);
    const float* xr = x + i * hw + p0;
    const float* dyr = dy + i * hw + p0;
    float* dxr = dx + i * hw + p0;
    for (int64_t p = 0; p < len; ++p) dxr[p] = dyr[p] * pw[p] - coef * xr[p] * acc[p];
  }
}

/**
 * The block width: at most kLrnBlock positions, split evenly over the plane (whole vectors), and
 * smaller when the window is so wide that the rings would pass kLrnScratchFloats. Scratch is at most
 * (3 W + 2) B floats, so a hostile window size costs at most 3 c + 2 floats.
 */
constexpr int64_t kLrnScratchFloats = 1 << 16;  // 256 KiB

int64_t lrnBlockWidth(int64_t W, int64_t hw) {
  const int64_t blocks = (hw + kLrnBlock - 1) / kLrnBlock;
  int64_t b = (hw + blocks - 1) / blocks;
  b = std::min(b, kLrnScratchFloats / (3 * W + 2));
  if (b >= 16) b = (b + 15) / 16 * 16;
  return std::max<int64_t>(1, std::min<int64_t>({b, kLrnBlock, hw}));
}

/**
 * Runs body(sample offset, p0, len, B, W, ...) over every block of B positions of every sample, in
 * parallel, with `rows` ring rows of W x B floats and two rows of B floats of the thread's scratch.
 */
template <auto Body, class... Ptrs>
void lrnBlocks(ThreadPool& pool, const LrnParams& prm, int64_t n, int64_t c, int64_t hw, int64_t rings,
               Ptrs... ptrs) {
  if (n == 0 || c == 0 || hw == 0) return;
  const int64_t half = prm.size / 2, W = std::min<int64_t>(2 * half + 1, c);
  const int64_t B = lrnBlockWidth(W, hw), blocks = (hw + B - 1) / B;
  const float alpha = (float)prm.alpha, beta = (float)prm.beta, k = (float)prm.k;
  pool.parallelFor(n * blocks, 2, [&](int64_t b, int64_t e) {
    float* s = scratch(Scratch::Lrn, (size_t)((rings * W + 2) * B + 16));
    for (int64_t t = b; t < e; ++t) {
      const int64_t off = (t / blocks) * c * hw, p0 = (t % blocks) * B;
      dispatchIsa<Body>((ptrs + off)..., c, hw, p0, std::min(B, hw - p0), B, W, half, alpha, beta, k, s);
    }
  });
}

}  // namespace

void lrnForward(ThreadPool& pool, const float* x, float* y, const LrnParams& p, int64_t n, int64_t c, int64_t hw) {
  lrnBlocks<lrnFwdBody>(pool, p, n, c, hw, 1, x, y);
}

void lrnBackward(ThreadPool& pool, const float* x, const float* y, const float* dy, float* dx, const LrnParams& p,
                 int64_t n, int64_t c, int64_t hw) {
  lrnBlocks<lrnBwdBody>(pool, p, n, c, hw, 3, x, y, dy, dx);
}

}  // namespace alexnet
