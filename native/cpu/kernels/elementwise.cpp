// Data movement, elementwise ops (ReLU, tanh), the Philox draws, dropout (§4.2) and the fused SGD update (§5):
// parallel loops over flat ranges (native/cuda/kernels/elementwise.cuh is the CUDA engine's).
// Zero-size calls return before any loop: the work of every kernel is proportional to the elements it
// reads or writes, never to a count that multiplies into zero (n = 2^30 samples of 0 channels).
#include <cstring>

#include "../../common/philox.h"
#include "../kernels.h"
#include "common.h"

namespace alexnet {

namespace {

/** f(i, u) for i < n, u the uniform draw in [0, 1) at global index offset + i (src/philox.ts). */
template <class F>
void forEachUniform(ThreadPool& pool, int64_t n, uint64_t seed, uint64_t offset, F f) {
  pool.parallelFor(n, 1 << 14, [&](int64_t s, int64_t e) {
    uint64_t block = ~(uint64_t)0;
    PhiloxWords w{};
    for (int64_t i = s; i < e; ++i) {
      const uint64_t gi = offset + (uint64_t)i;
      if ((gi >> 2) != block) { block = gi >> 2; w = philoxBlock(seed, block); }
      f(i, (double)(w.w[gi & 3] >> 8) * (1.0 / 16777216.0));
    }
  });
}

/** f(i) over [0, n) in chunks worth a worker. */
template <class F>
void forEach(ThreadPool& pool, int64_t n, F f) {
  pool.parallelFor(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) f(i);
  });
}

/** Grain of a loop over `rows` rows of `rowLength` elements each. */
int64_t rowGrain(int64_t rowLength) { return std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(rowLength, 1)); }

ALEXNET_INLINE uint32_t bitsOf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
ALEXNET_INLINE float floatOf(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
/** All ones where c holds, else 0: the selects below are bit blends (a `?:` on floats would be a branch). */
ALEXNET_INLINE uint32_t maskOf(bool c) { return 0u - (uint32_t)c; }

/**
 * tanh(x) in float32 arithmetic that vectorises (no calls, no branches): for |x| < 0.625 the odd
 * polynomial a + a s P(s), s = a², P a degree-4 minimax fit of (tanh(a)/a - 1)/s (error 4.4e-9);
 * above, (1 - e) / (1 + e) with e = exp(-2a) (Cephes' expf: n = round(2a log2 e), the remainder's
 * degree-7 polynomial, 2^-n by its exponent bits), |x| clamped at 10 (tanh = 1 in float32 from 9.01).
 * Max relative error against float64 tanh, over every float32: 1.5e-7 (2.5 ulp), the same on every
 * ISA path (no FMA: -ffp-contract=off). Sign by copysign (tanh(-0) = -0); NaN stays as it is.
 */
ALEXNET_INLINE float tanhOne(float x) {
  const uint32_t xb = bitsOf(x), sign = xb & 0x80000000u, ab = xb & 0x7fffffffu;
  const float a = floatOf(ab), s = a * a;
  const float small = a + a * (s * (-0.33333281941853843f + s * (0.1333144219475046f + s * (-0.053739714845885425f +
                                s * (0.020639086568371004f + s * -0.0057049863276239145f)))));
  const uint32_t big = maskOf(ab > 0x41200000u);  // |x| > 10, Infinity, NaN
  const float z = 2.0f * floatOf((ab & ~big) | (0x41200000u & big));
  const int32_t n = (int32_t)(z * 1.44269504088896341f + 0.5f);  // z >= 0: truncation rounds
  const float fn = (float)n;
  const float u = (fn * 0.693359375f - z) + fn * -2.12194440e-4f;  // -(z - n ln 2), ln 2 in two parts
  const float p = ((((((1.9875691500e-4f * u + 1.3981999507e-3f) * u + 8.3334519073e-3f) * u + 4.1665795894e-2f) * u +
                     1.6666665459e-1f) * u + 5.0000001201e-1f) * (u * u) + u) + 1.0f;
  const float e = p * floatOf((uint32_t)(127 - n) << 23);  // exp(-z) = exp(u) 2^-n
  const float large = (1.0f - e) / (1.0f + e);
  const uint32_t useSmall = maskOf(ab < 0x3f200000u), isNan = maskOf(ab > 0x7f800000u);  // |x| < 0.625
  const uint32_t m = ((bitsOf(small) & useSmall) | (bitsOf(large) & ~useSmall)) | sign;
  return floatOf((xb & isNan) | (m & ~isNan));
}

// y may be x (in place), never a part of it: every element is read before it is written.
ALEXNET_INLINE void tanhForwardBody(const float* x, float* y, int64_t n) {
#pragma GCC ivdep
  for (int64_t i = 0; i < n; ++i) y[i] = tanhOne(x[i]);
}

// dx = dy (1 - y)(1 + y): for |y| near 1 both factors are exact, so 1 - y² loses nothing. dx may be dy.
ALEXNET_INLINE void tanhBackwardBody(const float* y, const float* dy, float* dx, int64_t n) {
#pragma GCC ivdep
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * ((1.0f - y[i]) * (1.0f + y[i]));
}

}  // namespace

void fill(ThreadPool& pool, void* dst, int64_t n, int elemBytes, uint32_t pattern) {
  uint8_t* d = static_cast<uint8_t*>(dst);
  pool.parallelFor(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    if (elemBytes == 1 || pattern == 0) {
      std::memset(d + b * elemBytes, (int)(pattern & 0xFF), (size_t)(e - b) * elemBytes);
      return;
    }
    uint32_t* p = reinterpret_cast<uint32_t*>(d) + b;
    for (int64_t i = 0; i < e - b; ++i) p[i] = pattern;
  });
}

void randomUniform(ThreadPool& pool, float* out, int64_t n, uint64_t seed, uint64_t offset, double a, double b) {
  forEachUniform(pool, n, seed, offset, [=](int64_t i, double u) { out[i] = (float)(a + (b - a) * u); });
}

void randomNormal(ThreadPool& pool, float* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double sd) {
  pool.parallelFor(n, 1 << 12, [&](int64_t s, int64_t e) {
    uint64_t block = ~(uint64_t)0;
    double z[4] = {0, 0, 0, 0};
    for (int64_t i = s; i < e; ++i) {
      const uint64_t gi = offset + (uint64_t)i;
      if ((gi >> 2) != block) { block = gi >> 2; philoxNormalBlock(philoxBlock(seed, block), z); }
      out[i] = (float)(mean + sd * z[gi & 3]);
    }
  });
}

void dropout(ThreadPool& pool, const float* x, float* y, int64_t n, double p, uint64_t seed, uint64_t offset) {
  const double keep = 1.0 - p;
  forEachUniform(pool, n, seed, offset, [=](int64_t i, double u) { y[i] = u >= p ? (float)((double)x[i] / keep) : 0.0f; });
}

void channelCopy(ThreadPool& pool, const uint8_t* src, uint8_t* dst, int64_t n, int64_t hw, int64_t srcC,
                 int64_t srcOff, int64_t dstC, int64_t dstOff, int64_t count, int elemBytes) {
  if (n == 0 || hw == 0 || count == 0) return;
  const size_t plane = (size_t)(hw * elemBytes);
  pool.parallelFor(n * count, rowGrain(hw), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t i = t / count, j = t % count;
      std::memmove(dst + (size_t)(i * dstC + dstOff + j) * plane, src + (size_t)(i * srcC + srcOff + j) * plane, plane);
    }
  });
}

void axpy(ThreadPool& pool, float alpha, const float* x, float* y, int64_t n) {
  forEach(pool, n, [=](int64_t i) { y[i] += alpha * x[i]; });
}

void scale(ThreadPool& pool, float alpha, float* x, int64_t n) {
  forEach(pool, n, [=](int64_t i) { x[i] *= alpha; });
}

void add(ThreadPool& pool, const float* a, const float* b, float* out, int64_t n) {
  forEach(pool, n, [=](int64_t i) { out[i] = a[i] + b[i]; });
}

void biasAdd(ThreadPool& pool, float* y, const float* bias, int64_t n, int64_t c, int64_t hw) {
  if (n == 0 || c == 0 || hw == 0) return;
  pool.parallelFor(n * c, rowGrain(hw), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const float v = bias[t % c];
      float* p = y + t * hw;
      for (int64_t q = 0; q < hw; ++q) p[q] += v;
    }
  });
}

void biasGrad(ThreadPool& pool, const float* dy, float* db, int64_t n, int64_t c, int64_t hw, float beta) {
  if (n == 0 || hw == 0) {  // an empty sum: db = beta db
    for (int64_t j = 0; j < c; ++j) db[j] = beta == 0.0f ? 0.0f : beta * db[j];
    return;
  }
  pool.parallelFor(c, rowGrain(n * hw), [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) {
      double s = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        const float* p = dy + (i * c + j) * hw;
        float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // float lanes over one plane, double across planes
        int64_t q = 0;
        for (; q + 8 <= hw; q += 8)
          for (int l = 0; l < 8; ++l) part[l] += p[q + l];
        double ps = 0.0;
        for (int l = 0; l < 8; ++l) ps += part[l];
        for (; q < hw; ++q) ps += p[q];
        s += ps;
      }
      db[j] = beta == 0.0f ? (float)s : (float)((double)beta * db[j] + s);
    }
  });
}

// NaN propagates, as in PyTorch: relu(NaN) = NaN; the gradient is 0 only where y <= 0, so it passes
// where y is NaN (torch's threshold_backward).
void reluForward(ThreadPool& pool, const float* x, float* y, int64_t n) {
  forEach(pool, n, [=](int64_t i) { y[i] = x[i] > 0.0f ? x[i] : (x[i] != x[i] ? x[i] : 0.0f); });
}

void reluBackward(ThreadPool& pool, const float* y, const float* dy, float* dx, int64_t n) {
  // dy is loaded unconditionally so the select vectorises (a load under the branch stayed a branch:
  // mispredicted on half the elements, 8x slower than the forward on conv1's output).
  forEach(pool, n, [=](int64_t i) { const float d = dy[i]; dx[i] = y[i] <= 0.0f ? 0.0f : d; });
}

// §3.1 (Figure 1): tanh, vectorised on the ISA path in use (tanhOne above; the same results on each).
void tanhForward(ThreadPool& pool, const float* x, float* y, int64_t n) {
  pool.parallelFor(n, kElementwiseGrain, [&](int64_t b, int64_t e) { dispatchIsa<tanhForwardBody>(x + b, y + b, e - b); });
}

void tanhBackward(ThreadPool& pool, const float* y, const float* dy, float* dx, int64_t n) {
  pool.parallelFor(n, kElementwiseGrain,
                   [&](int64_t b, int64_t e) { dispatchIsa<tanhBackwardBody>(y + b, dy + b, dx + b, e - b); });
}

void sgdUpdate(ThreadPool& pool, float* w, const float* g, float* v, int64_t n, float lr, float momentum, float wd,
               bool paperForm) {
  if (paperForm) {  // §5: v = 0.9 v - 0.0005 lr w - lr g; w += v
    const float wdlr = wd * lr;
    forEach(pool, n, [=](int64_t i) {
      const float vi = momentum * v[i] - wdlr * w[i] - lr * g[i];
      v[i] = vi;
      w[i] += vi;
    });
  } else {  // PyTorch's: v = m v + g + wd w; w -= lr v
    forEach(pool, n, [=](int64_t i) {
      const float vi = momentum * v[i] + g[i] + wd * w[i];
      v[i] = vi;
      w[i] -= lr * vi;
    });
  }
}

}  // namespace alexnet
