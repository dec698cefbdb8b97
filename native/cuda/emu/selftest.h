// Checks of the emulation layer itself (emulated build only), run by packages/cuda/src/emulation.test.ts.
#pragma once
#include <vector>

namespace emu {

struct SelfTest {
  std::vector<float> expected;        // per-block sums of the input, computed on the host
  std::vector<float> withBarrier;     // block-wide tree reduction with __syncthreads between levels
  std::vector<float> withoutBarrier;  // the same reduction with the barriers left out
  int atomicCount = 0, atomicExpected = 0;  // atomicAdd from every thread of a grid run on `threads` workers
  int threads = 0;
  long long divergencesDetected = 0;
  long long fastDivErrors = 0;  // FastDiv (kernels/common.cuh) against `/` and `%`, many divisors and numerators  // by a kernel with a barrier inside `if (threadIdx.x < 128)`
};

SelfTest runSelfTest(int threads);
/** emu::barrierDivergences() of the whole process so far. */
long long divergenceCount();

}  // namespace emu
