// Data movement, elementwise ops, the Philox draws, dropout (§4.2) and the fused SGD update (§5):
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
