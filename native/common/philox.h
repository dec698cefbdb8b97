// Philox4x32-10 (Salmon et al., SC 2011), the counter-based generator behind every random draw of
// @alexnet: weights init (§5), dropout masks (§4.2) and augmentation. The mapping from (seed,
// global index) to a value is normative and must match packages/tensor/src/philox.ts bit for bit
// (uniform) or to float32 rounding (normal, computed in double):
//   key = (seed mod 2^32, floor(seed / 2^32)), block b = floor(gi / 4),
//   counter = (b mod 2^32, floor(b / 2^32), 0, 0), word = gi mod 4 of the block.
// Usable from host C++ and CUDA device code: ALEXNET_HD expands to __host__ __device__ under nvcc.
#pragma once
#include <stdint.h>
#include <math.h>

#if defined(__CUDACC__)
#define ALEXNET_HD __host__ __device__ __forceinline__
#else
#define ALEXNET_HD inline
#endif

namespace alexnet {

struct PhiloxWords { uint32_t w[4]; };

ALEXNET_HD void philoxMulhilo(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  uint64_t p = (uint64_t)a * (uint64_t)b;
  *hi = (uint32_t)(p >> 32);
  *lo = (uint32_t)p;
}

/** The four words of block `block` of stream `seed` (both < 2^53 in practice; 64-bit here). */
ALEXNET_HD PhiloxWords philoxBlock(uint64_t seed, uint64_t block) {
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  uint32_t c0 = (uint32_t)block, c1 = (uint32_t)(block >> 32), c2 = 0, c3 = 0;
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    philoxMulhilo(0xD2511F53u, c0, &hi0, &lo0);
    philoxMulhilo(0xCD9E8D57u, c2, &hi1, &lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0;
    uint32_t n2 = hi0 ^ c3 ^ k1;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  PhiloxWords r;
  r.w[0] = c0; r.w[1] = c1; r.w[2] = c2; r.w[3] = c3;
  return r;
}

/** uniform in [0, 1), exact in float32: (word >> 8) * 2^-24. */
ALEXNET_HD float philoxUniformWord(uint32_t word) {
  return (float)(word >> 8) * (1.0f / 16777216.0f);
}

/** The uniform draw at global index gi (dropout masks regenerate it, never store it). */
ALEXNET_HD float philoxUniformAt(uint64_t seed, uint64_t gi) {
  PhiloxWords w = philoxBlock(seed, gi >> 2);
  return philoxUniformWord(w.w[gi & 3]);
}

/** Box-Muller on word pairs (0,1) and (2,3) of a block, in double (normative). */
ALEXNET_HD void philoxNormalBlock(const PhiloxWords& w, double z[4]) {
  const double inv24 = 1.0 / 16777216.0;
  const double twoPi = 6.283185307179586;  // 2 * Math.PI, the same double as the TypeScript mapping
  for (int p = 0; p < 4; p += 2) {
    double u1 = ((double)(w.w[p] >> 8) + 1.0) * inv24;
    double u2 = (double)(w.w[p + 1] >> 8) * inv24;
    double r = sqrt(-2.0 * log(u1));
    z[p] = r * cos(twoPi * u2);
    z[p + 1] = r * sin(twoPi * u2);
  }
}

}  // namespace alexnet
