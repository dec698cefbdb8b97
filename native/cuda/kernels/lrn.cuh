// Local response normalisation across channels (§3.3), one fused kernel each way.
// x [n, c, hw]; scale[i] = k + alpha sum_{|j - i| <= size/2} x[j]^2; y[i] = x[i] scale[i]^-beta.
// One thread per (sample, position) column walks the channels with sliding window sums kept in double
// (squares of floats are exact in double, so adding and removing them does not drift); consecutive
// threads read consecutive positions, so every load is coalesced.
#pragma once
#include "common.cuh"

namespace alexnet {
namespace cuda {

__global__ void lrnForwardKernel(const float* x, float* y, int n, int c, int hw, int half, float alpha, float beta,
                                 float k) {
  const long long cols = (long long)n * hw;
  for (long long col = (long long)blockIdx.x * blockDim.x + threadIdx.x; col < cols;
       col += (long long)gridDim.x * blockDim.x) {
    const long long base = (col / hw) * (long long)c * hw + col % hw;
    double ss = 0.0;
    for (int j = 0; j <= half && j < c; ++j) { const double v = x[base + (long long)j * hw]; ss += v * v; }
    for (int ch = 0; ch < c; ++ch) {
      const float scale = (float)(k + alpha * ss);
      const long long idx = base + (long long)ch * hw;
      y[idx] = x[idx] * powf(scale, -beta);
      if (ch + half + 1 < c) { const double v = x[idx + (long long)(half + 1) * hw]; ss += v * v; }
      if (ch - half >= 0) { const double v = x[idx - (long long)half * hw]; ss -= v * v; }
    }
  }
}

/**
 * dx[i] = dy[i] scale[i]^-beta - 2 alpha beta x[i] sum_{|j - i| <= size/2} dy[j] y[j] / scale[j].
 * Two sweeps per column: the first writes t[j] = dy[j] y[j] / scale[j] to `t` (workspace, [n, c, hw]),
 * the second slides the window sums of x^2 and of t to produce dx.
 */
__global__ void lrnBackwardKernel(const float* x, const float* y, const float* dy, float* dx, float* t, int n, int c,
                                  int hw, int half, float alpha, float beta, float k) {
  const long long cols = (long long)n * hw;
  for (long long col = (long long)blockIdx.x * blockDim.x + threadIdx.x; col < cols;
       col += (long long)gridDim.x * blockDim.x) {
    const long long base = (col / hw) * (long long)c * hw + col % hw;
    double ss = 0.0;
    for (int j = 0; j <= half && j < c; ++j) { const double v = x[base + (long long)j * hw]; ss += v * v; }
    for (int ch = 0; ch < c; ++ch) {
      const long long idx = base + (long long)ch * hw;
      t[idx] = (float)((double)dy[idx] * (double)y[idx] / (k + alpha * ss));
      if (ch + half + 1 < c) { const double v = x[idx + (long long)(half + 1) * hw]; ss += v * v; }
      if (ch - half >= 0) { const double v = x[idx - (long long)half * hw]; ss -= v * v; }
    }
    ss = 0.0;
    double ts = 0.0;
    for (int j = 0; j <= half && j < c; ++j) {
      const long long idx = base + (long long)j * hw;
      const double v = x[idx];
      ss += v * v;
      ts += t[idx];
    }
    const double coef = 2.0 * (double)alpha * (double)beta;
    for (int ch = 0; ch < c; ++ch) {
      const long long idx = base + (long long)ch * hw;
      const float scale = (float)(k + alpha * ss);
      dx[idx] = (float)((double)dy[idx] * (double)powf(scale, -beta) - coef * (double)x[idx] * ts);
      if (ch + half + 1 < c) {
        const long long nx = idx + (long long)(half + 1) * hw;
        const double v = x[nx];
        ss += v * v;
        ts += t[nx];
      }
      if (ch - half >= 0) {
        const long long px = idx - (long long)half * hw;
        const double v = x[px];
        ss -= v * v;
        ts -= t[px];
      }
    }
  }
}

}  // namespace cuda
}  // namespace alexnet
