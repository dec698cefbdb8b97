// Local response normalisation across channels (§3.3), one fused pass each way (native/cuda/kernels/
// lrn.cuh is the CUDA engine's): b_i = a_i / (k + alpha sum_{j near i} a_j^2)^beta. One pass over a
// block of `B` positions of one sample: squares once into scratch, each channel's window sum from
// them, the power, the output. The positions are the vectorised dimension (channel planes are
// contiguous in NCHW).
#include <cmath>

#include "../kernels.h"
#include "common.h"

namespace alexnet {

namespace {

constexpr int64_t kLrnBlock = 64;

/** s^-beta; beta = 0.75 (the paper's) as 1 / (sqrt(s) sqrt(sqrt(s))), which vectorises. */
ALEXNET_INLINE void powNeg(const float* s, float* out, int64_t len, float beta) {
  if (beta == 0.75f) {
    for (int64_t p = 0; p < len; ++p) { float r = std::sqrt(s[p]); out[p] = 1.0f / (r * std::sqrt(r)); }
  } else if (beta == 0.5f) {
    for (int64_t p = 0; p < len; ++p) out[p] = 1.0f / std::sqrt(s[p]);
  } else if (beta == 1.0f) {
    for (int64_t p = 0; p < len; ++p) out[p] = 1.0f / s[p];
  } else {
    for (int64_t p = 0; p < len; ++p) out[p] = (float)std::pow((double)s[p], -(double)beta);
  }
}

/** acc[p] = sum over the channels j with |j - i| <= half of rows[j][p] (rows of B floats). */
ALEXNET_INLINE void windowSum(const float* rows, int64_t i, int64_t c, int64_t half, int64_t len, int64_t B, float* acc) {
  const int64_t lo = std::max<int64_t>(0, i - half), hi = std::min<int64_t>(c - 1, i + half);
  for (int64_t p = 0; p < len; ++p) acc[p] = 0.0f;
  for (int64_t j = lo; j <= hi; ++j) {
    const float* q = rows + j * B;
    for (int64_t p = 0; p < len; ++p) acc[p] += q[p];
  }
}

// Scratch rows are B floats (B = the block width, <= kLrnBlock; len <= B positions are used).

/** scale[i][p] = k + alpha sum_{|j - i| <= half} x[j][p]^2 into scratch rows c..2c (squares in rows 0..c). */
ALEXNET_INLINE float* lrnScales(const float* x, int64_t c, int64_t hw, int64_t p0, int64_t len, int64_t B, int64_t half,
                                float alpha, float k, float* scratch) {
  float* sq = scratch;
  float* scl = scratch + c * B;
  for (int64_t j = 0; j < c; ++j) {
    const float* xr = x + j * hw + p0;
    float* q = sq + j * B;
    for (int64_t p = 0; p < len; ++p) q[p] = xr[p] * xr[p];
  }
  float acc[kLrnBlock];
  for (int64_t i = 0; i < c; ++i) {
    windowSum(sq, i, c, half, len, B, acc);
    float* o = scl + i * B;
    for (int64_t p = 0; p < len; ++p) o[p] = k + alpha * acc[p];
  }
  return scl;
}

ALEXNET_INLINE void lrnFwdBody(const float* x, float* y, int64_t c, int64_t hw, int64_t p0, int64_t len, int64_t B,
                               int64_t half, float alpha, float beta, float k, float* scratch) {
  const float* scl = lrnScales(x, c, hw, p0, len, B, half, alpha, k, scratch);
  float pw[kLrnBlock];
  for (int64_t i = 0; i < c; ++i) {
    powNeg(scl + i * B, pw, len, beta);
    const float* xr = x + i * hw + p0;
    float* yr = y + i * hw + p0;
    for (int64_t p = 0; p < len; ++p) yr[p] = xr[p] * pw[p];
  }
}

// dx_i = dy_i scale_i^-beta - 2 alpha beta x_i sum_{|j - i| <= half} dy_j y_j / scale_j
ALEXNET_INLINE void lrnBwdBody(const float* x, const float* y, const float* dy, float* dx, int64_t c, int64_t hw,
                               int64_t p0, int64_t len, int64_t B, int64_t half, float alpha, float beta, float k,
                               float* scratch) {
  const float* scl = lrnScales(x, c, hw, p0, len, B, half, alpha, k, scratch);
  float* t = scratch + 2 * c * B;
  for (int64_t j = 0; j < c; ++j) {
    const float* yr = y + j * hw + p0;
    const float* dyr = dy + j * hw + p0;
    const float* s = scl + j * B;
    float* tr = t + j * B;
    for (int64_t p = 0; p < len; ++p) tr[p] = dyr[p] * yr[p] / s[p];
  }
  const float coef = 2.0f * alpha * beta;
  float pw[kLrnBlock], acc[kLrnBlock];
  for (int64_t i = 0; i < c; ++i) {
    windowSum(t, i, c, half, len, B, acc);
    powNeg(scl + i * B, pw, len, beta);
    const float* xr = x + i * hw + p0;
    const float* dyr = dy + i * hw + p0;
    float* dxr = dx + i * hw + p0;
    for (int64_t p = 0; p < len; ++p) dxr[p] = dyr[p] * pw[p] - coef * xr[p] * acc[p];
  }
}

/**
 * LRN scratch: three rows of B floats per channel (squares, scales, backward's t), so the block width
 * B shrinks as the channel count grows: scratch stays near kLrnScratchFloats (in L1/L2) while that
 * allows B >= 1, and is at most 3 c min(hw, 64) floats, 3x one sample's block, beyond (the thread's
 * Scratch::Lrn).
 */
constexpr int64_t kLrnScratchFloats = 1 << 16;  // 256 KiB

int64_t lrnBlockWidth(int64_t c, int64_t hw) {
  int64_t b = kLrnScratchFloats / (3 * std::max<int64_t>(c, 1));
  if (b >= 16) b = b / 16 * 16;  // whole vectors
  return std::max<int64_t>(1, std::min<int64_t>({b, kLrnBlock, hw}));
}

/**
 * Runs body(sample offset, p0, len, B, ...) over every block of B positions of every sample, in
 * parallel, with `rows` rows of B floats of the thread's scratch (2: forward, 3: backward).
 */
template <auto Body, class... Ptrs>
void lrnBlocks(ThreadPool& pool, const LrnParams& prm, int64_t n, int64_t c, int64_t hw, int64_t rows,
               Ptrs... ptrs) {
  if (n == 0 || c == 0 || hw == 0) return;
  const int64_t B = lrnBlockWidth(c, hw), blocks = (hw + B - 1) / B, half = prm.size / 2;
  const float alpha = (float)prm.alpha, beta = (float)prm.beta, k = (float)prm.k;
  pool.parallelFor(n * blocks, 2, [&](int64_t b, int64_t e) {
    float* s = scratch(Scratch::Lrn, (size_t)(rows * c * B + 16));
    for (int64_t t = b; t < e; ++t) {
      const int64_t off = (t / blocks) * c * hw, p0 = (t % blocks) * B;
      dispatchIsa<Body>((ptrs + off)..., c, hw, p0, std::min(B, hw - p0), B, half, alpha, beta, k, s);
    }
  });
}

}  // namespace

void lrnForward(ThreadPool& pool, const float* x, float* y, const LrnParams& p, int64_t n, int64_t c, int64_t hw) {
  lrnBlocks<lrnFwdBody>(pool, p, n, c, hw, 2, x, y);
}

void lrnBackward(ThreadPool& pool, const float* x, const float* y, const float* dy, float* dx, const LrnParams& p,
                 int64_t n, int64_t c, int64_t hw) {
  lrnBlocks<lrnBwdBody>(pool, p, n, c, hw, 3, x, y, dy, dx);
}

}  // namespace alexnet
