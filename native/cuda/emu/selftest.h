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
};

SelfTest runSelfTest(int threads);

}  // namespace emu
