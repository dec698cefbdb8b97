// A kernel that is wrong without a working barrier: the tree reduction of a block reads its partner's
// slot of shared memory, which that partner wrote before the previous barrier. Under the fiber
// emulation, leaving the barriers out makes thread 0 run every level before thread 128 has even
// stored its input, so the sums come out wrong; with them, right. Plus atomics across workers.
#include "selftest.h"

#include "../kernels/common.cuh"

namespace {

constexpr int kBlock = 256;

template <bool Barrier>
__global__ void blockSumKernel(const float* in, float* out) {
  __shared__ float s[kBlock];
  const int t = threadIdx.x;
  s[t] = in[blockIdx.x * kBlock + t];
  if (Barrier) __syncthreads();
  for (int stride = kBlock / 2; stride > 0; stride >>= 1) {
    if (t < stride) s[t] += s[t + stride];
    if (Barrier) __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
  if (Barrier) __syncthreads();
  s[t] = -1.f;  // poison for the next block on this worker
}

__global__ void atomicCountKernel(int* counter) { atomicAdd(counter, 1); }

__global__ void divergentBarrierKernel(int* out) {
  if (threadIdx.x < 128) __syncthreads();  // wrong on purpose: half the block never arrives
  if (threadIdx.x == 0) out[blockIdx.x] = 1;
}

}  // namespace

namespace emu {

SelfTest runSelfTest(int threads) {
  SelfTest r;
  const int blocks = 8;
  std::vector<float> in(blocks * kBlock);
  for (size_t i = 0; i < in.size(); ++i) in[i] = (float)((i * 7919) % 101) - 50.f;
  r.expected.assign(blocks, 0.f);
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < kBlock; ++t) r.expected[b] += in[b * kBlock + t];  // small integers: exact in any order
  r.withBarrier.assign(blocks, 0.f);
  r.withoutBarrier.assign(blocks, 0.f);
  const float* ip = in.data();
  float* wp = r.withBarrier.data();
  float* np = r.withoutBarrier.data();
  runGridHere(dim3(blocks), dim3(kBlock), [=] { blockSumKernel<true>(ip, wp); });
  runGridHere(dim3(blocks), dim3(kBlock), [=] { blockSumKernel<false>(ip, np); });

  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  setStreamThreads(s, threads);
  int* counter = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&counter), sizeof(int));
  cudaMemsetAsync(counter, 0, sizeof(int), s);
  const int grid = 64, block = 128;
  ALEXNET_LAUNCH(atomicCountKernel, grid, block, s, counter);
  cudaMemcpyAsync(&r.atomicCount, counter, sizeof(int), cudaMemcpyDeviceToHost, s);
  cudaStreamSynchronize(s);
  r.threads = getStreamThreads(s);
  cudaFree(counter);
  cudaStreamDestroy(s);
  r.atomicExpected = grid * block;

  const long long before = barrierDivergences();
  std::vector<int> flags(4, 0);
  int* fp = flags.data();
  runGridHere(dim3(4), dim3(kBlock), [=] { divergentBarrierKernel(fp); });
  r.divergencesDetected = barrierDivergences() - before;

  for (int d = 1; d <= 4100; ++d) {
    const alexnet::cuda::FastDiv f(d);
    const int probes[] = {0, 1, d - 1, d, d + 1, 2 * d - 1, 7919, 65535, 65536, 1 << 20, 123456789, 0x7ffffffe, 0x7fffffff};
    for (int n : probes) {
      if (n < 0) continue;
      int q, rem;
      f.divmod(n, q, rem);
      if (q != n / d || rem != n % d) ++r.fastDivErrors;
    }
    for (int n = 0; n < 3 * d + 50; n += 1 + d / 64) {
      if (f.div(n) != n / d) ++r.fastDivErrors;
    }
  }
  return r;
}

long long divergenceCount() { return barrierDivergences(); }

}  // namespace emu
