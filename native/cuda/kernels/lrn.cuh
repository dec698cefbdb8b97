// Local response normalisation across channels (§3.3), one fused kernel each way (native/cpu/kernels/
// lrn.cpp is the CPU engine's).
// x [n, c, hw]; scale[i] = k + alpha sum_{|j - i| <= size/2} x[j]^2; y[i] = x[i] scale[i]^-beta.
// One thread per (sample, position) column walks the channels with sliding window sums kept in double
// (squares of floats are exact in double, so adding and removing them does not drift); consecutive
// threads read consecutive positions, so every load is coalesced.
#pragma once
#include "common.cuh"

namespace alexnet {
namespace cuda {

/**
 * A sum over the channel window [ch - half, ch + half] of one column of v (its squares when Sq),
 * kept in double and slid one channel at a time: start(col) gives channel 0's window of column col
 * (sample col / hw, position col % hw), at(ch) the element index of channel ch, next(ch) moves the
 * window from channel ch to ch + 1.
 */
template <bool Sq>
struct ChannelWindow {
  const float* v;
  int c, hw, half;
  FastDiv divHw;  // columns are below 2^31 (n hw <= the buffer's length)
  long long base = 0;
  double sum = 0.0;
  __device__ __forceinline__ static double term(float x) { return Sq ? (double)x * (double)x : (double)x; }
  __device__ __forceinline__ long long at(int ch) const { return base + (long long)ch * hw; }
  __device__ __forceinline__ void start(long long col) {
    int sample, pos;
    divHw.divmod((int)col, sample, pos);
    base = (long long)sample * c * hw + pos;
    sum = 0.0;
    for (int j = 0; j <= half && j < c; ++j) sum += term(v[at(j)]);
  }
  __device__ __forceinline__ void next(int ch) {
    if (ch + half + 1 < c) sum += term(v[at(ch + half + 1)]);
    if (ch - half >= 0) sum -= term(v[at(ch - half)]);
  }
};

__global__ void __launch_bounds__(kThreads, kMinBlocks) lrnForwardKernel(const float* x, float* y, int n, int c, int hw,
                                                                          int half, float alpha, float beta, float k,
                                                                          FastDiv divHw) {
  ALEXNET_GRID_STRIDE(col, (long long)n * hw) {
    ChannelWindow<true> ss{x, c, hw, half, divHw};
    ss.start(col);
    for (int ch = 0; ch < c; ++ch) {
      const long long i = ss.at(ch);
      y[i] = x[i] * powf((float)(k + alpha * ss.sum), -beta);
      ss.next(ch);
    }
  }
}

/**
 * dx[i] = dy[i] scale[i]^-beta - 2 alpha beta x[i] sum_{|j - i| <= size/2} dy[j] y[j] / scale[j].
 * Two sweeps per column: the first writes t[j] = dy[j] y[j] / scale[j] to `t` (workspace, [n, c, hw]),
 * the second slides the window sums of x^2 and of t to produce dx.
 */
__global__ void __launch_bounds__(kThreads, kMinBlocks) lrnBackwardKernel(const float* x, const float* y, const float* dy,
                                                                           float* dx, float* t, int n, int c, int hw, int half,
                                                                           float alpha, float beta, float k, FastDiv divHw) {
  const double coef = 2.0 * (double)alpha * (double)beta;
  ALEXNET_GRID_STRIDE(col, (long long)n * hw) {
    ChannelWindow<true> ss{x, c, hw, half, divHw};
    ss.start(col);
    for (int ch = 0; ch < c; ++ch) {
      const long long i = ss.at(ch);
      t[i] = (float)((double)dy[i] * (double)y[i] / (k + alpha * ss.sum));
      ss.next(ch);
    }
    ChannelWindow<false> ts{t, c, hw, half, divHw};
    ss.start(col);
    ts.start(col);
    for (int ch = 0; ch < c; ++ch) {
      const long long i = ss.at(ch);
      const float scale = (float)(k + alpha * ss.sum);
      dx[i] = (float)((double)dy[i] * (double)powf(scale, -beta) - coef * (double)x[i] * ts.sum);
      ss.next(ch);
      ts.next(ch);
    }
  }
}

}  // namespace cuda
}  // namespace alexnet
