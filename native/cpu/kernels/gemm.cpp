// BLIS-style single-precision GEMM (Goto & van de Geijn, "Anatomy of high-performance matrix
// multiplication", 2008), row-major:
//   for ic (MC rows of C, A block packed MC x KC, L3)
//     for pc (KC of the k dimension)
//       for jc (NC columns, B block packed KC x NC: stays in L2)
//         for ir (MR rows: the A micro-panel MR x KC stays in L1)
//           for jr (NR columns: the micro-kernel streams B micro-panels from L2)
// The micro-kernel keeps an MR x NR tile of C in registers: NR along the contiguous row of C (SIMD
// vectors of B), MR broadcasts of A. Packing (with zero padding to MR/NR) absorbs every transpose
// combination and every edge, so there is one kernel per ISA. Threads split C into column (or row)
// stripes, each with its own packed blocks: no synchronisation inside the GEMM.
#include "gemm.h"

#include "common.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#if ALEXNET_X86
#include <immintrin.h>
#endif

namespace alexnet {
namespace {

typedef void (*Kernel)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                       float beta, int mr, int nr);
typedef void (*PackA)(bool trans, const float* A, int64_t lda, int64_t mc, int64_t kc, float* dst);
typedef void (*PackB)(bool trans, const float* B, int64_t ldb, int64_t kc, int64_t nc, float* dst);

struct Config {
  int mr, nr;
  int64_t kc, mc, nc;
  Kernel kernel;
  PackA packA;
  PackB packB;
  const char* name;
};

// ---- packing: A into MR-row micro-panels (k-major), B into NR-column micro-panels ----
// op(A)(i, p) = trans ? A[p * lda + i] : A[i * lda + p];  op(B)(p, j) = trans ? B[j * ldb + p] : B[p * ldb + j]

template <int MR>
void packA(bool trans, const float* A, int64_t lda, int64_t mc, int64_t kc, float* dst) {
  for (int64_t ir = 0; ir < mc; ir += MR) {
    int mr = (int)std::min<int64_t>(MR, mc - ir);
    float* d = dst + ir * kc;
    if (trans) {
      for (int64_t p = 0; p < kc; ++p) {
        const float* s = A + p * lda + ir;
        float* dp = d + p * MR;
        int i = 0;
        for (; i < mr; ++i) dp[i] = s[i];
        for (; i < MR; ++i) dp[i] = 0.0f;
      }
    } else {
      for (int i = 0; i < mr; ++i) {
        const float* s = A + (ir + i) * lda;
        for (int64_t p = 0; p < kc; ++p) d[p * MR + i] = s[p];
      }
      for (int i = mr; i < MR; ++i)
        for (int64_t p = 0; p < kc; ++p) d[p * MR + i] = 0.0f;
    }
  }
}

#if ALEXNET_X86
/** out[t][0..8) = column t of the 8 x 8 block rows[0..8)[0..8) (rows are `ld` apart). */
ALEXNET_TARGET_AVX2 inline void transpose8x8(const float* src, int64_t ld, float* dst, int64_t ldd) {
  __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ld), r2 = _mm256_loadu_ps(src + 2 * ld),
         r3 = _mm256_loadu_ps(src + 3 * ld), r4 = _mm256_loadu_ps(src + 4 * ld), r5 = _mm256_loadu_ps(src + 5 * ld),
         r6 = _mm256_loadu_ps(src + 6 * ld), r7 = _mm256_loadu_ps(src + 7 * ld);
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
         t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
         t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)),
         s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)),
         s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2)),
         s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  _mm256_storeu_ps(dst + 0 * ldd, _mm256_permute2f128_ps(s0, s4, 0x20));
  _mm256_storeu_ps(dst + 1 * ldd, _mm256_permute2f128_ps(s1, s5, 0x20));
  _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(s2, s6, 0x20));
  _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(s3, s7, 0x20));
  _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(s0, s4, 0x31));
  _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(s1, s5, 0x31));
  _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(s2, s6, 0x31));
  _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(s3, s7, 0x31));
}
#endif

#if ALEXNET_X86
/** r[i] becomes column i of the 16 x 16 block the rows r[0..16) hold (four unpack/shuffle stages). */
ALEXNET_TARGET_AVX512 inline void transpose16x16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  // r[4a + b] now holds, in its 128-bit lane q, column 4q + b of rows 4a..4a+3.
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], _MM_SHUFFLE(2, 0, 2, 0));
    t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], _MM_SHUFFLE(3, 1, 3, 1));
    t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], _MM_SHUFFLE(2, 0, 2, 0));
    t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], _MM_SHUFFLE(3, 1, 3, 1));
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], _MM_SHUFFLE(2, 0, 2, 0));
    r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], _MM_SHUFFLE(3, 1, 3, 1));
    r[4 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], _MM_SHUFFLE(2, 0, 2, 0));
    r[12 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], _MM_SHUFFLE(3, 1, 3, 1));
  }
}

/**
 * packA for MR <= 16 rows on AVX-512: the untransposed case (rows of A contiguous in k, the one the
 * scalar loop wrote MR floats apart) by 16 x 16 register transposes, 16 values of k at a time.
 */
template <int MR>
ALEXNET_TARGET_AVX512 void packAAvx512(bool trans, const float* A, int64_t lda, int64_t mc, int64_t kc, float* dst) {
  static_assert(MR <= 16, "one register per row");
  if (trans) { packA<MR>(trans, A, lda, mc, kc, dst); return; }
  const __mmask16 rowMask = lanes16(MR);
  for (int64_t ir = 0; ir < mc; ir += MR) {
    const int mr = (int)std::min<int64_t>(MR, mc - ir);
    float* d = dst + ir * kc;
    for (int64_t p = 0; p < kc; p += 16) {
      const int64_t np = std::min<int64_t>(16, kc - p);
      const __mmask16 m = lanes16(np);
      __m512 r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = i < mr ? _mm512_maskz_loadu_ps(m, A + (ir + i) * lda + p) : _mm512_setzero_ps();
      transpose16x16(r);
      for (int64_t q = 0; q < np; ++q) _mm512_mask_storeu_ps(d + (p + q) * MR, rowMask, r[q]);
    }
  }
}
#endif

/** B into NR-column micro-panels, k-major, zero-padded; Avx: transposed B by 8 x 8 register transposes. */
template <int NR, bool Avx>
ALEXNET_INLINE void packBBody(bool trans, const float* B, int64_t ldb, int64_t kc, int64_t nc, float* dst) {
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int nr = (int)std::min<int64_t>(NR, nc - jr);
    float* d = dst + jr * kc;
    if (!trans) {
      for (int64_t p = 0; p < kc; ++p) {
        const float* s = B + p * ldb + jr;
        float* dp = d + p * NR;
        if (nr == NR) {
          std::memcpy(dp, s, NR * sizeof(float));
          continue;
        }
        int j = 0;
        for (; j < nr; ++j) dp[j] = s[j];
        for (; j < NR; ++j) dp[j] = 0.0f;
      }
      continue;
    }
    // Transposed B: 8 rows of B (8 columns of op(B)) at a time along p, written k-major.
    int j = 0;
    for (; j + 8 <= nr; j += 8) {
      const float* s0 = B + (jr + j) * ldb;
      int64_t p = 0;
#if ALEXNET_X86
      if constexpr (Avx)
        for (; p + 8 <= kc; p += 8) transpose8x8(s0 + p, ldb, d + p * NR + j, NR);
#endif
      for (; p < kc; ++p)
        for (int t = 0; t < 8; ++t) d[p * NR + j + t] = s0[t * ldb + p];
    }
    for (; j < nr; ++j) {
      const float* s = B + (jr + j) * ldb;
      for (int64_t p = 0; p < kc; ++p) d[p * NR + j] = s[p];
    }
    for (; j < NR; ++j)
      for (int64_t p = 0; p < kc; ++p) d[p * NR + j] = 0.0f;
  }
}

template <int NR>
void packB(bool trans, const float* B, int64_t ldb, int64_t kc, int64_t nc, float* dst) {
  packBBody<NR, false>(trans, B, ldb, kc, nc, dst);
}
#if ALEXNET_X86
template <int NR>
ALEXNET_TARGET_AVX2 void packBAvx(bool trans, const float* B, int64_t ldb, int64_t kc, int64_t nc, float* dst) {
  packBBody<NR, true>(trans, B, ldb, kc, nc, dst);
}
#endif

// ---- portable micro-kernel (baseline ISA; the compiler vectorises the j loop) ----

template <int MR, int NR>
void kernelPortable(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                    float beta, int mr, int nr) {
  float acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = 0.0f;
  for (int64_t p = 0; p < kc; ++p) {
    for (int i = 0; i < MR; ++i) {
      float ai = a[i];
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
    }
    a += MR;
    b += NR;
  }
  for (int i = 0; i < mr; ++i) {
    float* cr = c + i * ldc;
    if (beta == 0.0f) {
      for (int j = 0; j < nr; ++j) cr[j] = alpha * acc[i][j];
    } else {
      for (int j = 0; j < nr; ++j) cr[j] = alpha * acc[i][j] + beta * cr[j];
    }
  }
}

#if ALEXNET_X86
/**
 * The k loop of the SIMD micro-kernels, once for both ISAs (intrinsics differ by name only): for each
 * k, NV vectors of B (LANES floats each) and a prefetch, then MR broadcasts of A, each multiplied into
 * NV of the MR x NV accumulators acc. Advances a and b past the k values.
 */
#define ALEXNET_GEMM_K_LOOP(VEC, LANES, LOAD, SET1, FMA, PREFETCH)                            \
  for (int64_t p = 0; p < kc; ++p) {                                                          \
    VEC bv[NV];                                                                               \
    _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) bv[v] = LOAD(b + LANES * v);          \
    PREFETCH;                                                                                 \
    _Pragma("GCC unroll 32") for (int i = 0; i < MR; ++i) {                                    \
      const VEC ai = SET1(a[i]);                                                              \
      _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) acc[i][v] = FMA(ai, bv[v], acc[i][v]); \
    }                                                                                         \
    a += MR;                                                                                  \
    b += LANES * NV;                                                                          \
  }

// ---- AVX2 + FMA micro-kernel: MR x (8 NV) ----

template <int MR, int NV>
ALEXNET_TARGET_AVX2 void kernelAvx2(int64_t kc, const float* __restrict a, const float* __restrict b,
                                    float* c, int64_t ldc, float alpha, float beta, int mr, int nr) {
  __m256 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();
  ALEXNET_GEMM_K_LOOP(__m256, 8, _mm256_load_ps, _mm256_set1_ps, _mm256_fmadd_ps, (void)0);
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  if (mr == MR && nr == 8 * NV) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        float* cp = c + i * ldc + 8 * v;
        __m256 r = _mm256_mul_ps(acc[i][v], va);
        if (beta != 0.0f) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cp), r);
        _mm256_storeu_ps(cp, r);
      }
  } else {
    alignas(32) float tile[MR][8 * NV];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) _mm256_store_ps(&tile[i][8 * v], _mm256_mul_ps(acc[i][v], va));
    for (int i = 0; i < mr; ++i) {
      float* cr = c + i * ldc;
      if (beta == 0.0f) {
        for (int j = 0; j < nr; ++j) cr[j] = tile[i][j];
      } else {
        for (int j = 0; j < nr; ++j) cr[j] = tile[i][j] + beta * cr[j];
      }
    }
  }
}

// ---- AVX-512 micro-kernel: MR x (16 NV), masked stores at the edges ----

template <int MR, int NV>
ALEXNET_TARGET_AVX512 void kernelAvx512(int64_t kc, const float* __restrict a, const float* __restrict b,
                                        float* c, int64_t ldc, float alpha, float beta, int mr, int nr) {
  __m512 acc[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  }
  ALEXNET_GEMM_K_LOOP(__m512, 16, _mm512_load_ps, _mm512_set1_ps, _mm512_fmadd_ps,
                      _mm_prefetch(reinterpret_cast<const char*>(b + 16 * NV * 8), _MM_HINT_T0));
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  if (mr == MR && nr == 16 * NV) {
    if (beta == 0.0f) {
#pragma GCC unroll 32
      for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) _mm512_storeu_ps(c + i * ldc + 16 * v, _mm512_mul_ps(acc[i][v], va));
    } else {
#pragma GCC unroll 32
      for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
          float* cp = c + i * ldc + 16 * v;
          _mm512_storeu_ps(cp, _mm512_fmadd_ps(vb, _mm512_loadu_ps(cp), _mm512_mul_ps(acc[i][v], va)));
        }
    }
  } else {
    __mmask16 mask[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      int rem = nr - 16 * v;
      mask[v] = lanes16(rem);
    }
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      if (i >= mr) break;
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        float* cp = c + i * ldc + 16 * v;
        __m512 r = _mm512_mul_ps(acc[i][v], va);
        if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask[v], cp), r);
        _mm512_mask_storeu_ps(cp, mask[v], r);
      }
    }
  }
}
#undef ALEXNET_GEMM_K_LOOP
#endif  // ALEXNET_X86

Config makeConfig(Isa isa) {
  Config c{};
#if ALEXNET_X86
  if (isa == Isa::Avx512) {
    const char* k = std::getenv("ALEXNET_GEMM_KERNEL");
    const std::string kern = k ? k : "";
    // 14x32 measured best on Zen 5 when the machine was quiet (ALEXNET_GEMM_KERNEL picks the others).
    if (kern == "8x48") c = Config{8, 48, 384, 1008, 384, kernelAvx512<8, 3>, packAAvx512<8>, packBAvx<48>, "avx512 8x48"};
    else if (kern == "6x64") c = Config{6, 64, 384, 1008, 384, kernelAvx512<6, 4>, packAAvx512<6>, packBAvx<64>, "avx512 6x64"};
    else c = Config{14, 32, 384, 1008, 384, kernelAvx512<14, 2>, packAAvx512<14>, packBAvx<32>, "avx512 14x32"};
  } else if (isa == Isa::Avx2) {
    c = Config{6, 16, 256, 768, 1024, kernelAvx2<6, 2>, packA<6>, packBAvx<16>, "avx2 6x16"};
  } else
#endif
  {
    (void)isa;
    c = Config{4, 8, 256, 512, 1024, kernelPortable<4, 8>, packA<4>, packB<8>, "portable 4x8"};
  }
  // Tuning knobs for measurements (docs/cpu-engine.md): MC and NC are rounded to the tile.
  c.kc = envInt("ALEXNET_GEMM_KC", c.kc);
  c.mc = (envInt("ALEXNET_GEMM_MC", c.mc) + c.mr - 1) / c.mr * c.mr;
  c.nc = (envInt("ALEXNET_GEMM_NC", c.nc) + c.nr - 1) / c.nr * c.nr;
  return c;
}

const Config& configFor(Isa isa) {
  static const Config configs[3] = {makeConfig(Isa::Portable), makeConfig(Isa::Avx2), makeConfig(Isa::Avx512)};
  return configs[(int)isa];
}
const Config& config() { return configFor(activeIsa()); }

/** C = beta C for the degenerate cases (k = 0 or alpha = 0): beta = 0 writes zeros without reading. */
void scaleC(int64_t m, int64_t n, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    float* r = C + i * ldc;
    if (beta == 0.0f) {
      std::memset(r, 0, (size_t)n * sizeof(float));
    } else if (beta != 1.0f) {
      for (int64_t j = 0; j < n; ++j) r[j] *= beta;
    }
  }
}

/** Bpre: B pre-packed in full-k panels (see sgemmPackedB), or null to pack B here. */
void blocked(const Config& cf, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
             const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
             const float* Bpre = nullptr, const float* Apre = nullptr) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) { scaleC(m, n, beta, C, ldc); return; }
  // k is cut into equal blocks of at most KC (1200 = 4 x 300, not 3 x 384 + 48: a short last
  // block pays the C tile load/store of a full one for a fraction of the FMAs).
  const int64_t MC = cf.mc, NC = cf.nc;
  const int64_t kBlocks = (k + cf.kc - 1) / cf.kc, KC = (k + kBlocks - 1) / kBlocks;
  const int64_t mcMax = std::min(MC, (m + cf.mr - 1) / cf.mr * cf.mr);
  const int64_t ncMax = std::min(NC, (n + cf.nr - 1) / cf.nr * cf.nr);
  const int64_t kcMax = std::min(KC, k);
  float* Ap = Apre ? nullptr : scratch(Scratch::GemmA, (size_t)(mcMax * kcMax));
  float* Bp = Bpre ? nullptr : scratch(Scratch::GemmB, (size_t)(ncMax * kcMax));
  for (int64_t ic = 0; ic < m; ic += MC) {
    const int64_t mc = std::min(MC, m - ic);
    for (int64_t pc = 0; pc < k; pc += KC) {
      const int64_t kc = std::min(KC, k - pc);
      const float betaEff = pc == 0 ? beta : 1.0f;
      if (!Apre) cf.packA(ta, ta ? A + pc * lda + ic : A + ic * lda + pc, lda, mc, kc, Ap);
      for (int64_t jc = 0; jc < n; jc += NC) {
        const int64_t nc = std::min(NC, n - jc);
        // Panel jr / nr of this block starts at b0 + jr / nr * bStride.
        const float* b0;
        int64_t bStride;
        if (Bpre) {
          b0 = Bpre + (jc / cf.nr) * k * cf.nr + pc * cf.nr;
          bStride = k * cf.nr;
        } else {
          cf.packB(tb, tb ? B + jc * ldb + pc : B + pc * ldb + jc, ldb, kc, nc, Bp);
          b0 = Bp;
          bStride = kc * cf.nr;
        }
        for (int64_t ir = 0; ir < mc; ir += cf.mr) {
          const int mr = (int)std::min<int64_t>(cf.mr, mc - ir);
          const float* a = Apre ? Apre + (ic + ir) * k + pc * cf.mr : Ap + ir * kc;
          float* crow = C + (ic + ir) * ldc + jc;
          const float* b = b0;
          for (int64_t jr = 0; jr < nc; jr += cf.nr, b += bStride) {
            const int nr = (int)std::min<int64_t>(cf.nr, nc - jr);
            cf.kernel(kc, a, b, crow + jr, ldc, alpha, betaEff, mr, nr);
          }
        }
      }
    }
  }
}

}  // namespace

void sgemmSerial(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  blocked(config(), ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

namespace {
void parallelGemm(ThreadPool& pool, const Config& cf, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                  const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                  const float* Bpre, const float* Apre = nullptr) {
  if (m <= 0 || n <= 0) return;
  const double work = (double)m * (double)n * (double)std::max<int64_t>(k, 1);
  const int threads = work < 2.0e6 ? 1 : pool.size();
  // Split C in stripes along its longer side, aligned to the micro-tile; each stripe packs its own blocks.
  const bool splitN = (double)n / cf.nr >= (double)m / cf.mr;
  const int64_t units = splitN ? (n + cf.nr - 1) / cf.nr : (m + cf.mr - 1) / cf.mr;
  if (threads <= 1 || units < 2) { blocked(cf, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, Bpre, Apre); return; }
  // About three equal stripes per thread (sizes differ by at most one tile), claimed dynamically. Each
  // stripe packs the other operand again unless it came pre-packed, so then stripes stay at least
  // 8 tiles wide (packing A per 64-column stripe cost more than the stripe's FMAs on conv1's dw).
  static const int64_t perThread = envInt("ALEXNET_GEMM_STRIPES", 3);
  const bool otherPrepacked = splitN ? Apre != nullptr : Bpre != nullptr;
  const int64_t widest = otherPrepacked ? units : std::max<int64_t>(1, units / 8);
  const int64_t parts = std::min<int64_t>(units, std::min<int64_t>(perThread * threads, std::max<int64_t>(threads, widest)));
  pool.forChunks(parts, 1, [&](int64_t t0, int64_t t1) {
    const int64_t u0 = units * t0 / parts, u1 = units * t1 / parts;
    if (splitN) {
      const int64_t j0 = u0 * cf.nr, j1 = std::min(n, u1 * cf.nr);
      if (j0 >= j1) return;
      blocked(cf, ta, tb, m, j1 - j0, k, alpha, A, lda, Bpre ? B : tb ? B + j0 * ldb : B + j0, ldb, beta, C + j0,
              ldc, Bpre ? Bpre + u0 * k * cf.nr : nullptr, Apre);
    } else {
      const int64_t i0 = u0 * cf.mr, i1 = std::min(m, u1 * cf.mr);
      if (i0 >= i1) return;
      blocked(cf, ta, tb, i1 - i0, n, k, alpha, Apre ? A : ta ? A + i0 : A + i0 * lda, lda, B, ldb, beta,
              C + i0 * ldc, ldc, Bpre, Apre ? Apre + i0 * k : nullptr);
    }
  });
}
}  // namespace

#if ALEXNET_X86
namespace {
/**
 * C = alpha A B^T + beta C for m <= 4 (a linear layer's forward at batch 1 to 4, W [out, in] as B):
 * dot products of A's rows with 4 rows of B at a time, B read once straight from memory. The blocked
 * GEMM would pack all of B (151 MB for fc6) into transposed panels and fill a 14-row micro-tile with
 * m rows; here the layer costs what reading its weights costs.
 */
template <int M>
ALEXNET_TARGET_AVX512 inline void gemvStep(__m512 (&acc)[M][4], const float* const (&b)[4], const float* A, int64_t lda,
                                           int64_t p, __mmask16 mask) {
  __m512 bv[4];
  for (int r = 0; r < 4; ++r) bv[r] = _mm512_maskz_loadu_ps(mask, b[r] + p);
  for (int i = 0; i < M; ++i) {
    const __m512 av = _mm512_maskz_loadu_ps(mask, A + i * lda + p);
    for (int r = 0; r < 4; ++r) acc[i][r] = _mm512_fmadd_ps(av, bv[r], acc[i][r]);
  }
}

template <int M>
ALEXNET_TARGET_AVX512 void gemvBt(int64_t j0, int64_t j1, int64_t k, float alpha, const float* A, int64_t lda,
                                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const int64_t kv = k / 16 * 16;
  const __mmask16 tail = lanes16(k - kv);
  for (int64_t j = j0; j < j1; j += 4) {
    const int nr = (int)std::min<int64_t>(4, j1 - j);
    const float* b[4] = {};
    for (int r = 0; r < 4; ++r) b[r] = B + (j + std::min(r, nr - 1)) * ldb;  // past j1: the last row again, not stored
    __m512 acc[M][4];
    for (int i = 0; i < M; ++i)
      for (int r = 0; r < 4; ++r) acc[i][r] = _mm512_setzero_ps();
    for (int64_t p = 0; p < kv; p += 16) {
      if ((p & 63) == 0)
        for (int r = 0; r < 4; ++r) _mm_prefetch(reinterpret_cast<const char*>(b[r] + p + 256), _MM_HINT_T0);
      gemvStep<M>(acc, b, A, lda, p, (__mmask16)0xFFFF);
    }
    if (tail) gemvStep<M>(acc, b, A, lda, kv, tail);
    for (int i = 0; i < M; ++i)
      for (int r = 0; r < nr; ++r) {
        float* c = C + i * ldc + j + r;
        const float v = alpha * _mm512_reduce_add_ps(acc[i][r]);
        *c = beta == 0.0f ? v : v + beta * *c;
      }
  }
}

bool gemvApplies(bool ta, bool tb, int64_t m, int64_t n, int64_t k) {
  return activeIsa() == Isa::Avx512 && !ta && tb && m >= 1 && m <= 4 && n >= 64 && k >= 64;
}

void gemv(ThreadPool& pool, int64_t m, int64_t n, int64_t k, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  typedef void (*Fn)(int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float, float*, int64_t);
  static const Fn fns[4] = {gemvBt<1>, gemvBt<2>, gemvBt<3>, gemvBt<4>};
  const Fn f = fns[m - 1];
  const int64_t units = (n + 3) / 4;  // groups of 4 rows of B
  const int threads = (double)n * (double)k < 1.0e5 ? 1 : pool.size();
  if (threads <= 1) { f(0, n, k, alpha, A, lda, B, ldb, beta, C, ldc); return; }
  pool.parallelFor(units, 8, [&](int64_t u0, int64_t u1) { f(u0 * 4, std::min(n, u1 * 4), k, alpha, A, lda, B, ldb, beta, C, ldc); });
}
}  // namespace
#endif

void sgemm(ThreadPool& pool, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
#if ALEXNET_X86
  if (alpha != 0.0f && gemvApplies(ta, tb, m, n, k)) {
    gemv(pool, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
#endif
  parallelGemm(pool, config(), ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, nullptr);
}

void sgemmPackedB(ThreadPool& pool, Isa isa, bool ta, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
                  int64_t lda, const float* Bp, float beta, float* C, int64_t ldc, const float* Ap) {
  parallelGemm(pool, configFor(isa), ta, false, m, n, k, alpha, A, lda, nullptr, 0, beta, C, ldc, Bp, Ap);
}

void gemmPackA(Isa isa, bool ta, const float* A, int64_t lda, int64_t m, int64_t k, float* dst) {
  const Config& cf = configFor(isa);
  if (m > 0 && k > 0) cf.packA(ta, A, lda, m, k, dst);
}

int gemmPanelHeight(Isa isa) { return configFor(isa).mr; }

int64_t gemmPackedASize(Isa isa, int64_t m, int64_t k) {
  const Config& cf = configFor(isa);
  return (m + cf.mr - 1) / cf.mr * cf.mr * k;
}

int gemmPanelWidth(Isa isa) { return configFor(isa).nr; }

GemmBlocking gemmBlocking() {
  const Config& c = config();
  return GemmBlocking{c.mr, c.nr, c.kc, c.mc, c.nc, c.name};
}

// ---- peak: independent FMA chains, no memory traffic ----
namespace {
#if ALEXNET_X86
/** CHAINS independent FMA chains of one register each, `iters` times (no memory traffic): s their sum. */
#define ALEXNET_FMA_CHAINS(VEC, CHAINS, SET1, FMA, ADD)                                         \
  VEC acc[CHAINS];                                                                             \
  for (int i = 0; i < CHAINS; ++i) acc[i] = SET1((float)i * 1e-3f);                            \
  const VEC x = SET1(0.999999f), y = SET1(1e-7f);                                              \
  for (int64_t t = 0; t < iters; ++t) {                                                        \
    _Pragma("GCC unroll 24") for (int i = 0; i < CHAINS; ++i) acc[i] = FMA(acc[i], x, y);      \
  }                                                                                            \
  VEC s = acc[0];                                                                              \
  for (int i = 1; i < CHAINS; ++i) s = ADD(s, acc[i]);

ALEXNET_TARGET_AVX512 double fmaLoopAvx512(int64_t iters) {
  ALEXNET_FMA_CHAINS(__m512, 24, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps)
  return (double)_mm512_reduce_add_ps(s);
}
ALEXNET_TARGET_AVX2 double fmaLoopAvx2(int64_t iters) {
  ALEXNET_FMA_CHAINS(__m256, 12, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps)
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}
#undef ALEXNET_FMA_CHAINS
#endif
double fmaLoopPortable(int64_t iters) {
  float acc[32];
  for (int i = 0; i < 32; ++i) acc[i] = (float)i * 1e-3f;
  for (int64_t t = 0; t < iters; ++t)
    for (int i = 0; i < 32; ++i) acc[i] = acc[i] * 0.999999f + 1e-7f;
  float s = 0;
  for (int i = 0; i < 32; ++i) s += acc[i];
  return s;
}
}  // namespace

double measurePeakGflops(ThreadPool& pool, double seconds) {
  const Isa isa = activeIsa();
  // flops per iteration of each loop
  const double perIter = isa == Isa::Avx512 ? 24.0 * 16 * 2 : isa == Isa::Avx2 ? 12.0 * 8 * 2 : 32.0 * 2;
  auto loop = [isa](int64_t iters) -> double {
#if ALEXNET_X86
    if (isa == Isa::Avx512) return fmaLoopAvx512(iters);
    if (isa == Isa::Avx2) return fmaLoopAvx2(iters);
#endif
    (void)isa;
    return fmaLoopPortable(iters);
  };
  // calibrate on one thread
  int64_t iters = 1 << 16;
  volatile double sink = 0;
  for (;;) {
    auto t0 = std::chrono::steady_clock::now();
    sink = sink + loop(iters);
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (dt > 0.05 || iters > (int64_t)1 << 40) { iters = (int64_t)(iters * (seconds / std::max(dt, 1e-9))); break; }
    iters *= 4;
  }
  if (iters < 1) iters = 1;
  auto t0 = std::chrono::steady_clock::now();
  pool.runOnAll([&](int, int) { sink = sink + loop(iters); });
  double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return perIter * (double)iters * pool.size() / dt / 1e9;
}

}  // namespace alexnet
