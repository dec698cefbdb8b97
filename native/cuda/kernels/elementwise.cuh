// Elementwise kernels, the Philox draws and dropout (§4.2). Grid-stride loops over int64 indices.
#pragma once
#include "common.cuh"

namespace alexnet {
namespace cuda {

__global__ void fill32Kernel(uint32_t* p, uint32_t bits, long long n) {
  ALEXNET_GRID_STRIDE(i, n) p[i] = bits;
}

// y += alpha x
__global__ void axpyKernel(float alpha, const float* x, float* y, long long n) {
  ALEXNET_GRID_STRIDE(i, n) y[i] = fmaf(alpha, x[i], y[i]);
}

// x *= alpha
__global__ void scaleKernel(float alpha, float* x, long long n) {
  ALEXNET_GRID_STRIDE(i, n) x[i] = alpha * x[i];
}

// out = a + b (out may alias a or b)
__global__ void addKernel(const float* a, const float* b, float* out, long long n) {
  ALEXNET_GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}

// y [n, c, hw] += bias[c]
__global__ void biasAddKernel(float* y, const float* bias, int c, int hw, long long n) {
  ALEXNET_GRID_STRIDE(i, n) y[i] += bias[(int)((i / hw) % c)];
}

// db[j] = beta db[j] + sum_{i, p} dy[i, j, p]: one block per channel, fixed-order tree reduction.
__global__ void biasGradKernel(const float* dy, float* db, int n, int c, int hw, float beta) {
  __shared__ float scratch[kThreads];
  const int j = blockIdx.x;
  float s = 0.f;
  for (int i = 0; hw > 0 && i < n; ++i) {  // hw = 0: no work per sample, however many samples
    const float* row = dy + ((long long)i * c + j) * hw;
    for (int p = threadIdx.x; p < hw; p += kThreads) s += row[p];
  }
  s = blockReduce<false>(s, scratch);
  if (threadIdx.x == 0) db[j] = beta == 0.f ? s : beta * db[j] + s;
}

// y = max(0, x); NaN stays NaN (as in PyTorch)
__global__ void reluForwardKernel(const float* x, float* y, long long n) {
  ALEXNET_GRID_STRIDE(i, n) { const float v = x[i]; y[i] = (v > 0.f || v != v) ? v : 0.f; }
}

// dx = y <= 0 ? 0 : dy (the gradient passes where y is NaN, as torch's threshold_backward)
__global__ void reluBackwardKernel(const float* y, const float* dy, float* dx, long long n) {
  ALEXNET_GRID_STRIDE(i, n) dx[i] = y[i] <= 0.f ? 0.f : dy[i];
}

// y = tanh(x) (§3.1, Figure 1): tanhf (CUDA: 2 ulp; the emulation: the host's libm); NaN stays NaN,
// tanh(±Inf) = ±1
__global__ void tanhForwardKernel(const float* x, float* y, long long n) {
  ALEXNET_GRID_STRIDE(i, n) y[i] = tanhf(x[i]);
}

// dx = dy (1 - y)(1 + y), i.e. dy (1 - y²) without the cancellation near |y| = 1
__global__ void tanhBackwardKernel(const float* y, const float* dy, float* dx, long long n) {
  ALEXNET_GRID_STRIDE(i, n) { const float v = y[i]; dx[i] = dy[i] * ((1.f - v) * (1.f + v)); }
}

/**
 * Philox draws (src/philox.ts is normative): one thread per 4-word block, so each block is computed
 * once. out[i] = a + (b - a) u or mean + std z for global index offset + i; double arithmetic, one
 * rounding to float32 at the store, exactly like the reference.
 */
__global__ void randomKernel(float* out, long long len, unsigned long long seed, unsigned long long offset, int normal,
                             double a, double b) {
  const unsigned long long first = offset >> 2, last = (offset + len + 3) >> 2;
  const long long blocks = (long long)(last - first);
  ALEXNET_GRID_STRIDE(t, blocks) {
    const unsigned long long blk = first + t;
    const PhiloxWords w = philoxBlock(seed, blk);
    double z[4];
    if (normal) philoxNormalBlock(w, z);
    for (int q = 0; q < 4; ++q) {
      const unsigned long long gi = blk * 4 + q;
      if (gi < offset || gi >= offset + len) continue;
      const double v = normal ? a + b * z[q] : a + (b - a) * ((double)(w.w[q] >> 8) * (1.0 / 16777216.0));
      out[gi - offset] = (float)v;
    }
  }
}

/** Inverted dropout (§4.2): y = u >= p ? x / (1 - p) : 0, u regenerated from (seed, offset + i). */
__global__ void dropoutKernel(const float* x, float* y, long long n, double p, double inv, unsigned long long seed,
                              unsigned long long offset) {
  ALEXNET_GRID_STRIDE(i, n) {
    const double u = (double)philoxUniformAt(seed, offset + (unsigned long long)i);
    y[i] = u >= p ? (float)((double)x[i] * inv) : 0.f;
  }
}

/**
 * SGD with momentum and weight decay (§5), one fused pass.
 * paper:   v = m v - wd lr w - lr g;  w = w + v
 * pytorch: v = m v + g + wd w;        w = w - lr v
 */
__global__ void sgdKernel(float* w, const float* g, float* v, long long n, float lr, float momentum, float wdLr, float wd,
                          int paper) {
  ALEXNET_GRID_STRIDE(i, n) {
    const float wi = w[i];
    if (paper) {
      const float nv = momentum * v[i] - wdLr * wi - lr * g[i];
      v[i] = nv;
      w[i] = wi + nv;
    } else {
      const float nv = momentum * v[i] + g[i] + wd * wi;
      v[i] = nv;
      w[i] = wi - lr * nv;
    }
  }
}

}  // namespace cuda
}  // namespace alexnet
