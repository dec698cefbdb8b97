// What every kernel file includes: the CUDA runtime (nvcc) or its host emulation (g++), the shared
// Philox generator, and the launch macro that is `<<<grid, block, 0, stream>>>` on a GPU and a queued
// grid of fibers under emulation. Kernels are written once, for both.
#pragma once
#if defined(ALEXNET_CUDA_EMU)
#include "../emu/cuda_emu.h"
#else
#include <cuda_runtime.h>
#endif
#include <stdint.h>
#include <math.h>

#include "../../common/philox.h"

#if defined(ALEXNET_CUDA_EMU)
#define ALEXNET_LAUNCH(kernel, grid, block, stream, ...) \
  ::emu::launch((stream), dim3(grid), dim3(block), [=]() { kernel(__VA_ARGS__); })
#else
#define ALEXNET_LAUNCH(kernel, grid, block, stream, ...) kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#endif

namespace alexnet {
namespace cuda {

/**
 * Division by a divisor fixed at launch, as a multiply-high and a shift (the round-up method of
 * Granlund and Montgomery, as in CUTLASS's FastDivmod): exact for 0 <= n < 2^31. The implicit-GEMM
 * loaders split every index into (channel, ky, kx) or (row, column); with `/` that is a ~25-instruction
 * integer division per element, with this three.
 */
struct FastDiv {
  int d = 1;
  unsigned int mul = 0, shr = 0;
  FastDiv() = default;
  explicit FastDiv(int divisor) : d(divisor) {
    if (divisor > 1) {
      unsigned int l = 0;
      while ((1u << l) < (unsigned int)divisor) ++l;  // ceil(log2 d)
      const unsigned int p = 31 + l;
      mul = (unsigned int)(((1ull << p) + (unsigned int)divisor - 1) / (unsigned int)divisor);
      shr = p - 32;
    }
  }
  __device__ __forceinline__ int div(int n) const { return d == 1 ? n : (int)(__umulhi((unsigned int)n, mul) >> shr); }
  __device__ __forceinline__ void divmod(int n, int& q, int& r) const { q = div(n); r = n - q * d; }
};

/** Convolution shape as the kernels see it (int32: the engine refuses buffers of 2^31 elements or more). */
struct ConvShape {
  int n, c, h, w;
  int k, r, s;
  int strideH, strideW, padH, padW;
  int groups;
  int outH, outW;
  FastDiv divRS, divS, divOutW, divW, divPlane;  // by r s, s, outW, w, outH outW
  FastDiv divH, divC, divCg;                      // by h, c, c / groups (the direct data-gradient kernel)
};

struct PoolShape {
  int n, c, h, w;
  int kh, kw;
  int strideH, strideW, padH, padW;
  int outH, outW;
  FastDiv divOutW, divOutH, divW, divH;  // index math of the pool kernels (every count is below 2^31)
};

constexpr int kThreads = 256;  // block size of the elementwise and reduction kernels
/** Resident blocks per SM that __launch_bounds__ asks of the kernels launched with kThreads (<= 64 registers). */
constexpr int kMinBlocks = 4;

/** A grid-stride loop: i over [0, n) in int64, spread over every thread of the grid. */
#define ALEXNET_GRID_STRIDE(i, n) \
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

__device__ __forceinline__ int imin(int a, int b) { return a < b ? a : b; }
/** ReLU that keeps NaN (as PyTorch's and reluForwardKernel): the fused epilogues' form of it. */
__device__ __forceinline__ float reluKeepNan(float v) { return (v > 0.f || v != v) ? v : 0.f; }
__device__ __forceinline__ int imax(int a, int b) { return a > b ? a : b; }

/**
 * Block-wide reduction through shared memory (kThreads threads; every thread gets the result).
 * `scratch` is the caller's __shared__ float[kThreads]. Each step needs the barrier: without it a
 * thread reads a partner's slot before the partner has written it.
 */
template <bool IsMax>
__device__ __forceinline__ float blockReduce(float v, float* scratch) {
  const int t = threadIdx.x;
  scratch[t] = v;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
    if (t < stride) {
      float o = scratch[t + stride];
      scratch[t] = IsMax ? fmaxf(scratch[t], o) : scratch[t] + o;
    }
    __syncthreads();
  }
  float r = scratch[0];
  __syncthreads();  // scratch may be reused right after
  return r;
}

/** blockReduce's sum for int counts (exact, where a float sum stops counting at 2^24). */
__device__ __forceinline__ int blockSumInt(int v, int* scratch) {
  const int t = threadIdx.x;
  scratch[t] = v;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
    if (t < stride) scratch[t] += scratch[t + stride];
    __syncthreads();
  }
  int r = scratch[0];
  __syncthreads();
  return r;
}

}  // namespace cuda
}  // namespace alexnet
