// Kernels that do in one pass what the backend interface asks for in several calls, used by the
// engine's fusion of consecutive ops (engine.cu, "pending"): the bias and ReLU after a cuDNN
// convolution, and every parameter's SGD update of an optimizer step in one launch.
#pragma once
#include "common.cuh"

namespace alexnet {
namespace cuda {

/**
 * y [n, c, hw]: y += bias[channel] (when bias), then ReLU keeping NaN (when relu). i < 2^31 (one
 * buffer), so the channel is (i / hw) mod c in int with fast division. biasAdd is this with relu off.
 */
__global__ void __launch_bounds__(kThreads, kMinBlocks) biasActKernel(float* y, const float* bias, int relu, long long total,
                                                                     FastDiv divHw, FastDiv divC) {
  ALEXNET_GRID_STRIDE(i, total) {
    float v = y[i];
    if (bias) {
      int plane, p, q, ch;
      divHw.divmod((int)i, plane, p);
      divC.divmod(plane, q, ch);
      v += bias[ch];
    }
    y[i] = relu ? reluKeepNan(v) : v;
  }
}

/** Parameters of one SGD launch: up to kSgdMax tensors with their own lr and decay (passed by value). */
constexpr int kSgdMax = 32;
constexpr int kSgdPerThread = 4;  // elements per thread: a block covers kThreads * 4 of one tensor
struct SgdTensor {
  float* w;
  const float* g;
  float* v;
  long long n;
  float lr, wdLr, wd;
};
struct SgdBatch {
  SgdTensor t[kSgdMax];
  long long firstBlock[kSgdMax + 1];  // blocks [firstBlock[i], firstBlock[i + 1]) update tensor i
  int count;
  float momentum;
  int paper;
};

/**
 * The SGD update (§5) of every tensor of `b` in one launch, the same arithmetic as sgdKernel:
 * paper:   v = m v - wd lr w - lr g;  w = w + v
 * pytorch: v = m v + g + wd w;        w = w - lr v
 * Each block updates 1024 consecutive elements of one tensor (found by a short scan of firstBlock).
 */
__global__ void __launch_bounds__(kThreads, kMinBlocks) sgdMultiKernel(SgdBatch b) {
  const long long blk = blockIdx.x;
  int t = 0;
  while (t + 1 < b.count && b.firstBlock[t + 1] <= blk) ++t;
  const SgdTensor s = b.t[t];
  const long long base = (blk - b.firstBlock[t]) * (long long)(kThreads * kSgdPerThread);
  for (int q = 0; q < kSgdPerThread; ++q) {
    const long long i = base + (long long)q * kThreads + threadIdx.x;
    if (i >= s.n) break;
    const float wi = s.w[i];
    if (b.paper) {
      const float nv = b.momentum * s.v[i] - s.wdLr * wi - s.lr * s.g[i];
      s.v[i] = nv;
      s.w[i] = wi + nv;
    } else {
      const float nv = b.momentum * s.v[i] + s.g[i] + s.wd * wi;
      s.v[i] = nv;
      s.w[i] = wi - s.lr * nv;
    }
  }
}

/** Norm-wise comparison of two device vectors for the vendor paths' check: sums of (a - b)^2 and b^2. */
__global__ void __launch_bounds__(kThreads) compareKernel(const float* a, const float* b, long long n, double* out) {
  __shared__ double s1[kThreads], s2[kThreads];
  double d = 0.0, r = 0.0;
  for (long long i = threadIdx.x; i < n; i += kThreads) {
    const double x = a[i], y = b[i];
    if (y != y) continue;  // NaN in the reference: nothing to compare there
    if (x != x) d = INFINITY;  // a NaN where the reference has none
    else d += (x - y) * (x - y);
    r += y * y;
  }
  s1[threadIdx.x] = d;
  s2[threadIdx.x] = r;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
    if ((int)threadIdx.x < stride) {
      s1[threadIdx.x] += s1[threadIdx.x + stride];
      s2[threadIdx.x] += s2[threadIdx.x + stride];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    out[0] = s1[0];
    out[1] = s2[0];
  }
}

}  // namespace cuda
}  // namespace alexnet
