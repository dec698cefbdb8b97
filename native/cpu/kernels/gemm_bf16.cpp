// The bf16 GEMM (docs/cpu-engine.md, "bf16"): gemm.cpp's BLIS-style blocking with operands packed as
// bf16 pairs along k (rounded to nearest even from fp32 while packing) and a 14 x 32 micro-kernel of
// AVX512_BF16's vdpbf16ps, which multiplies two bf16 pairs exactly in fp32 and adds both products into
// an fp32 accumulator: twice the multiply-adds of an fp32 FMA per instruction, half the bytes per
// operand. C, alpha and beta stay fp32. Compiled with the AVX512_BF16 target attribute per function
// and used only when activePrecision() says so (the CPU has it, bf16 was asked for).
#include "gemm.h"

#include "common.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if ALEXNET_X86
#include <immintrin.h>
#endif

namespace alexnet {

#if ALEXNET_X86
namespace {

constexpr int MR = kBf16Mr, NR = kBf16Nr, NV = NR / 16;

inline __mmask16 lanes(int64_t count) {
  return count >= 16 ? (__mmask16)0xFFFF : count <= 0 ? (__mmask16)0 : (__mmask16)((1u << count) - 1u);
}

/** fp32 rounded to nearest even at bf16 precision, in the high 16 bits of each lane (NaN: a quiet NaN). */
ALEXNET_TARGET_BF16 inline __m512i roundHigh(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
  return _mm512_mask_or_epi32(rounded, nan, u, _mm512_set1_epi32(0x00400000));
}

/** Words (bf16(lo[t]) low half, bf16(hi[t]) high half). */
ALEXNET_TARGET_BF16 inline __m512i pairWords(__m512 lo, __m512 hi) {
  return _mm512_or_si512(_mm512_srli_epi32(roundHigh(lo), 16),
                         _mm512_and_si512(roundHigh(hi), _mm512_set1_epi32((int)0xFFFF0000u)));
}

/** 32 consecutive floats (masked: zeros past the mask) as 16 words of consecutive bf16 pairs. */
ALEXNET_TARGET_BF16 inline __m512i runWords(const float* s, __mmask16 mlo, __mmask16 mhi) {
  const __m256i lo = _mm512_cvtepi32_epi16(_mm512_srli_epi32(roundHigh(_mm512_maskz_loadu_ps(mlo, s)), 16));
  const __m256i hi = _mm512_cvtepi32_epi16(_mm512_srli_epi32(roundHigh(_mm512_maskz_loadu_ps(mhi, s + 16)), 16));
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/** r[i] lane j <- r[j] lane i, 32-bit lanes. */
ALEXNET_TARGET_BF16 inline void transpose16(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  // u[4 b + c] lane (4 l + e) = r[4 b + e] lane (4 l + c): 4 x 4 blocks transposed within each 128-bit lane l.
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_i32x4(u[i], u[4 + i], 0x88);      // lanes 0, 2 of u[i], then 0, 2 of u[4 + i]
    t[4 + i] = _mm512_shuffle_i32x4(u[i], u[4 + i], 0xDD);  // lanes 1, 3
    t[8 + i] = _mm512_shuffle_i32x4(u[8 + i], u[12 + i], 0x88);
    t[12 + i] = _mm512_shuffle_i32x4(u[8 + i], u[12 + i], 0xDD);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_i32x4(t[i], t[8 + i], 0xDD);
    r[4 + i] = _mm512_shuffle_i32x4(t[4 + i], t[12 + i], 0x88);
    r[12 + i] = _mm512_shuffle_i32x4(t[4 + i], t[12 + i], 0xDD);
  }
}

/**
 * Panel of W lanes from rows along k: dst[pp W + t] = (src[2pp ld + t], src[(2pp + 1) ld + t]) for
 * t < count, 0 for count <= t < W; a zero row pads odd k.
 */
template <int W>
ALEXNET_TARGET_BF16 void packPairsRows(const float* src, int64_t ld, int64_t count, int64_t k, uint32_t* dst) {
  constexpr int V = (W + 15) / 16;
  __mmask16 load[V], store[V];
  for (int v = 0; v < V; ++v) {
    load[v] = lanes(std::min<int64_t>(count, W) - 16 * v);
    store[v] = lanes(W - 16 * v);
  }
  const int64_t kh = (k + 1) / 2;
  for (int64_t pp = 0; pp < kh; ++pp) {
    const float* r0 = src + 2 * pp * ld;
    const bool two = 2 * pp + 1 < k;
    for (int v = 0; v < V; ++v) {
      const __m512 lo = _mm512_maskz_loadu_ps(load[v], r0 + 16 * v);
      const __m512 hi = two ? _mm512_maskz_loadu_ps(load[v], r0 + ld + 16 * v) : _mm512_setzero_ps();
      _mm512_mask_storeu_epi32(dst + pp * W + 16 * v, store[v], pairWords(lo, hi));
    }
  }
}

/**
 * Panel of W lanes from lines contiguous along k (line t at src + t ld): dst[pp W + t] =
 * (line_t[2pp], line_t[2pp + 1]), lanes t >= count and an odd k's last pair padded with zeros.
 * 16 lines x 16 pairs at a time through a register transpose.
 */
template <int W>
ALEXNET_TARGET_BF16 void packPairsLines(const float* src, int64_t ld, int64_t count, int64_t k, uint32_t* dst) {
  const int64_t kh = (k + 1) / 2;
  for (int t0 = 0; t0 < W; t0 += 16) {
    const int nt = std::min(16, W - t0);
    const int64_t real = std::max<int64_t>(0, std::min<int64_t>(count - t0, nt));
    const __mmask16 store = lanes(nt);
    for (int64_t pp0 = 0; pp0 < kh; pp0 += 16) {
      const int64_t np = std::min<int64_t>(16, kh - pp0), e0 = 2 * pp0, ne = std::min<int64_t>(32, k - e0);
      const __mmask16 mlo = lanes(ne), mhi = lanes(ne - 16);
      __m512i r[16];
      for (int t = 0; t < 16; ++t)
        r[t] = t < real ? runWords(src + (t0 + t) * ld + e0, mlo, mhi) : _mm512_setzero_si512();
      transpose16(r);
      for (int64_t p = 0; p < np; ++p) _mm512_mask_storeu_epi32(dst + (pp0 + p) * W + t0, store, r[p]);
    }
  }
}

/** C tile (mr x nr of MR x NR) = alpha sum over kh pairs of a (MR words per pair) x b (NR words per pair) + beta C. */
ALEXNET_TARGET_BF16 void kernelBf16(int64_t kh, const uint32_t* __restrict a, const uint32_t* __restrict b, float* c,
                                    int64_t ldc, float alpha, float beta, int mr, int nr) {
  __m512 acc[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < kh; ++p) {
    __m512i bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_si512(b + 16 * v);
    _mm_prefetch(reinterpret_cast<const char*>(b + 16 * NV * 8), _MM_HINT_T0);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const __m512i ai = _mm512_set1_epi32((int)a[i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], (__m512bh)ai, (__m512bh)bv[v]);
    }
    a += MR;
    b += 16 * NV;
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  if (mr == MR && nr == NR) {
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
    for (int v = 0; v < NV; ++v) mask[v] = lanes(nr - 16 * v);
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

/** A block (mc x kc of op(A)) in MR-row panels of pairs. */
void packABlock(bool ta, const float* A, int64_t lda, int64_t mc, int64_t kc, uint32_t* dst) {
  const int64_t kh = (kc + 1) / 2;
  for (int64_t ir = 0; ir < mc; ir += MR) {
    const int64_t rows = std::min<int64_t>(MR, mc - ir);
    if (ta) packPairsRows<MR>(A + ir, lda, rows, kc, dst + ir * kh);
    else packPairsLines<MR>(A + ir * lda, lda, rows, kc, dst + ir * kh);
  }
}

/** B block (kc x nc of op(B)) in NR-column panels of pairs. */
void packBBlock(bool tb, const float* B, int64_t ldb, int64_t kc, int64_t nc, uint32_t* dst) {
  const int64_t kh = (kc + 1) / 2;
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int64_t cols = std::min<int64_t>(NR, nc - jr);
    if (tb) packPairsLines<NR>(B + jr * ldb, ldb, cols, kc, dst + jr * kh);
    else packPairsRows<NR>(B + jr, ldb, cols, kc, dst + jr * kh);
  }
}

struct Blocking {
  int64_t kc, mc, nc;
};
const Blocking& blocking() {
  // KC counts k values (pairs: KC / 2), even; the packed blocks take half the bytes of fp32's, so KC is
  // twice gemm.cpp's for the same cache footprint.
  static const Blocking b{(envInt("ALEXNET_BF16_KC", 768) + 1) / 2 * 2, (envInt("ALEXNET_BF16_MC", 1008) + MR - 1) / MR * MR,
                          (envInt("ALEXNET_BF16_NC", 384) + NR - 1) / NR * NR};
  return b;
}

void scaleC(int64_t m, int64_t n, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    float* r = C + i * ldc;
    if (beta == 0.0f) std::memset(r, 0, (size_t)n * sizeof(float));
    else if (beta != 1.0f)
      for (int64_t j = 0; j < n; ++j) r[j] *= beta;
  }
}

/** Bpre / Apre: pre-packed full-k panels (bgemmPackedB, bgemmPackA), or null to pack here. */
void blocked(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* A, int64_t lda,
             const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const uint32_t* Bpre,
             const uint32_t* Apre) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) { scaleC(m, n, beta, C, ldc); return; }
  const Blocking& bl = blocking();
  const int64_t MC = bl.mc, NC = bl.nc, kh = (k + 1) / 2;
  // k in equal even blocks of at most KC, so every block but the last starts and ends on a pair.
  const int64_t kBlocks = (k + bl.kc - 1) / bl.kc, KC = ((k + kBlocks - 1) / kBlocks + 1) / 2 * 2;
  const int64_t mcMax = std::min(MC, (m + MR - 1) / MR * MR), ncMax = std::min(NC, (n + NR - 1) / NR * NR);
  const int64_t khMax = (std::min(KC, k) + 1) / 2;
  uint32_t* Ap = Apre ? nullptr : scratch<uint32_t>(Scratch::GemmA, (size_t)(mcMax * khMax));
  uint32_t* Bp = Bpre ? nullptr : scratch<uint32_t>(Scratch::GemmB, (size_t)(ncMax * khMax));
  for (int64_t ic = 0; ic < m; ic += MC) {
    const int64_t mc = std::min(MC, m - ic);
    for (int64_t pc = 0; pc < k; pc += KC) {
      const int64_t kc = std::min(KC, k - pc), khc = (kc + 1) / 2;
      const float betaEff = pc == 0 ? beta : 1.0f;
      if (!Apre) packABlock(ta, ta ? A + pc * lda + ic : A + ic * lda + pc, lda, mc, kc, Ap);
      for (int64_t jc = 0; jc < n; jc += NC) {
        const int64_t nc = std::min(NC, n - jc);
        const uint32_t* b0;
        int64_t bStride;
        if (Bpre) {
          b0 = Bpre + (jc / NR) * kh * NR + (pc / 2) * NR;
          bStride = kh * NR;
        } else {
          packBBlock(tb, tb ? B + jc * ldb + pc : B + pc * ldb + jc, ldb, kc, nc, Bp);
          b0 = Bp;
          bStride = khc * NR;
        }
        for (int64_t ir = 0; ir < mc; ir += MR) {
          const int mr = (int)std::min<int64_t>(MR, mc - ir);
          const uint32_t* a = Apre ? Apre + (ic + ir) * kh + (pc / 2) * MR : Ap + ir * khc;
          float* crow = C + (ic + ir) * ldc + jc;
          const uint32_t* b = b0;
          for (int64_t jr = 0; jr < nc; jr += NR, b += bStride)
            kernelBf16(khc, a, b, crow + jr, ldc, alpha, betaEff, mr, (int)std::min<int64_t>(NR, nc - jr));
        }
      }
    }
  }
}

/** gemm.cpp's parallelGemm on the bf16 blocking: C in tile-aligned stripes along its longer side. */
void parallel(ThreadPool& pool, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
              int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const uint32_t* Bpre,
              const uint32_t* Apre) {
  if (m <= 0 || n <= 0) return;
  const double work = (double)m * (double)n * (double)std::max<int64_t>(k, 1);
  const int threads = work < 2.0e6 ? 1 : pool.size();
  const bool splitN = (double)n / NR >= (double)m / MR;
  const int64_t units = splitN ? (n + NR - 1) / NR : (m + MR - 1) / MR;
  if (threads <= 1 || units < 2) { blocked(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, Bpre, Apre); return; }
  static const int64_t perThread = envInt("ALEXNET_GEMM_STRIPES", 3);
  const int64_t kh = (k + 1) / 2;
  const bool otherPrepacked = splitN ? Apre != nullptr : Bpre != nullptr;
  const int64_t widest = otherPrepacked ? units : std::max<int64_t>(1, units / 8);
  const int64_t parts = std::min<int64_t>(units, std::min<int64_t>(perThread * threads, std::max<int64_t>(threads, widest)));
  pool.forChunks(parts, 1, [&](int64_t t0, int64_t t1) {
    const int64_t u0 = units * t0 / parts, u1 = units * t1 / parts;
    if (splitN) {
      const int64_t j0 = u0 * NR, j1 = std::min(n, u1 * NR);
      if (j0 >= j1) return;
      blocked(ta, tb, m, j1 - j0, k, alpha, A, lda, Bpre ? B : tb ? B + j0 * ldb : B + j0, ldb, beta, C + j0, ldc,
              Bpre ? Bpre + u0 * kh * NR : nullptr, Apre);
    } else {
      const int64_t i0 = u0 * MR, i1 = std::min(m, u1 * MR);
      if (i0 >= i1) return;
      blocked(ta, tb, i1 - i0, n, k, alpha, Apre ? A : ta ? A + i0 : A + i0 * lda, lda, B, ldb, beta, C + i0 * ldc,
              ldc, Bpre, Apre ? Apre + i0 * kh : nullptr);
    }
  });
}

}  // namespace

void bgemm(ThreadPool& pool, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  parallel(pool, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, nullptr, nullptr);
}

void bgemmPackedB(ThreadPool& pool, bool ta, int64_t m, int64_t n, int64_t k, float alpha, const float* A, int64_t lda,
                  const uint32_t* Bp, float beta, float* C, int64_t ldc, const uint32_t* Ap) {
  parallel(pool, ta, false, m, n, k, alpha, A, lda, nullptr, 0, beta, C, ldc, Bp, Ap);
}

void bgemmPackA(bool ta, const float* A, int64_t lda, int64_t m, int64_t k, uint32_t* dst) {
  if (m > 0 && k > 0) packABlock(ta, A, lda, m, k, dst);
}

void bgemmPanelsFromFp32(ThreadPool& pool, const float* src, int64_t k, int64_t panels, uint32_t* dst) {
  const int64_t kh = (k + 1) / 2;
  pool.parallelFor(panels, 1, [&](int64_t b, int64_t e) {
    for (int64_t q = b; q < e; ++q) packPairsRows<NR>(src + q * k * NR, NR, NR, k, dst + q * kh * NR);
  });
}

#else  // not x86: activePrecision() is never Bf16 there

[[noreturn]] static void noBf16() {
  std::fprintf(stderr, "alexnet: the bf16 GEMM needs AVX512_BF16, which this build's target lacks\n");
  std::abort();
}
void bgemm(ThreadPool&, bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
           float, float*, int64_t) { noBf16(); }
void bgemmPackedB(ThreadPool&, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const uint32_t*, float,
                  float*, int64_t, const uint32_t*) { noBf16(); }
void bgemmPackA(bool, const float*, int64_t, int64_t, int64_t, uint32_t*) { noBf16(); }
void bgemmPanelsFromFp32(ThreadPool&, const float*, int64_t, int64_t, uint32_t*) { noBf16(); }

#endif

int64_t bgemmPackedASize(int64_t m, int64_t k) { return (m + kBf16Mr - 1) / kBf16Mr * kBf16Mr * ((k + 1) / 2); }

}  // namespace alexnet
