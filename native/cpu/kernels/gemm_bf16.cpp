// The bf16 GEMM (docs/cpu-engine.md, "bf16"): gemm.cpp's BLIS-style blocking with operands packed as
// bf16 pairs along k (rounded to nearest even from fp32 while packing) and one of two micro-kernels:
//  - AMX-BF16 (Sapphire Rapids and later): a 32 x 32 tile of C in four 16 x 16 fp32 tile registers,
//    TDPBF16PS multiplying a 16-row A tile (16 pairs of k per row) by a 16-pair B tile (16 columns);
//  - AVX512_BF16: 14 x 32 of C in 28 zmm accumulators, vdpbf16ps per pair of k.
// Both multiply bf16 pairs exactly in fp32 and add the products into fp32; C, alpha and beta stay
// fp32. Compiled with target attributes per function, chosen at run time (CPUID, and for AMX Linux's
// permission for the tile state), used only when activePrecision() says so.
#include "gemm.h"

#include "common.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if ALEXNET_X86
#include <cpuid.h>
#include <immintrin.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#define ALEXNET_TARGET_AMX \
  __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,fma,avx2,amx-tile,amx-bf16")))
#endif

#include <atomic>

namespace alexnet {

#if ALEXNET_X86
namespace {

constexpr int MR = 14, NR = kBf16Nr, NV = NR / 16, MRX = 32;

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
    load[v] = lanes16(std::min<int64_t>(count, W) - 16 * v);
    store[v] = lanes16(W - 16 * v);
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
    const __mmask16 store = lanes16(nt);
    for (int64_t pp0 = 0; pp0 < kh; pp0 += 16) {
      const int64_t np = std::min<int64_t>(16, kh - pp0), e0 = 2 * pp0, ne = std::min<int64_t>(32, k - e0);
      const __mmask16 mlo = lanes16(ne), mhi = lanes16(ne - 16);
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
    for (int v = 0; v < NV; ++v) mask[v] = lanes16(nr - 16 * v);
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

/**
 * AMX A panel of 32 rows: groups of 16 pairs, each [32 rows][16 words] (two 16 x 64-byte tiles):
 * word (pp, r) at (pp / 16) 512 + r 16 + pp % 16, for kh pairs (a multiple of 16; zeros pad k and rows).
 */
ALEXNET_TARGET_BF16 void packAmxA(bool ta, const float* A, int64_t lda, int64_t rows, int64_t k, int64_t kh,
                                  uint32_t* dst) {
  const int64_t kr = (k + 1) / 2;
  for (int h = 0; h < 2; ++h) {
    const int64_t real = std::max<int64_t>(0, std::min<int64_t>(rows - 16 * h, 16));
    for (int64_t pp0 = 0; pp0 < kh; pp0 += 16) {
      uint32_t* d = dst + (pp0 / 16) * 512 + h * 256;
      __m512i r[16];
      if (!ta) {  // rows of A contiguous along k: each row's 16 pairs straight out
        const int64_t e0 = 2 * pp0, ne = std::max<int64_t>(0, std::min<int64_t>(32, k - e0));
        const __mmask16 mlo = lanes16(ne), mhi = lanes16(ne - 16);
        for (int t = 0; t < 16; ++t)
          r[t] = t < real && ne > 0 ? runWords(A + (16 * h + t) * lda + e0, mlo, mhi) : _mm512_setzero_si512();
      } else {  // op(A)(i, p) = A[p lda + i]: pairs of rows of A over 16 lanes i, then transposed
        const __mmask16 ml = lanes16(real);
        for (int t = 0; t < 16; ++t) {
          const int64_t pp = pp0 + t;
          if (pp >= kr || real == 0) { r[t] = _mm512_setzero_si512(); continue; }
          const float* r0 = A + 2 * pp * lda + 16 * h;
          const __m512 lo = _mm512_maskz_loadu_ps(ml, r0);
          const __m512 hi = 2 * pp + 1 < k ? _mm512_maskz_loadu_ps(ml, r0 + lda) : _mm512_setzero_ps();
          r[t] = pairWords(lo, hi);
        }
        transpose16(r);
      }
      for (int t = 0; t < 16; ++t) _mm512_storeu_si512(d + t * 16, r[t]);
    }
  }
}

/** C tile (mr x nr of 32 x 32) = alpha sum over kh (a multiple of 16) pairs of A and B + beta C, by AMX tiles. */
ALEXNET_TARGET_AMX void kernelAmx(int64_t kh, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, float alpha,
                                  float beta, int mr, int nr) {
  const bool direct = mr == MRX && nr == NR && alpha == 1.0f && (beta == 0.0f || beta == 1.0f);
  const size_t ldcB = (size_t)ldc * sizeof(float);
  if (direct && beta == 1.0f) {
    _tile_loadd(0, c, ldcB);
    _tile_loadd(1, c + 16, ldcB);
    _tile_loadd(2, c + 16 * ldc, ldcB);
    _tile_loadd(3, c + 16 * ldc + 16, ldcB);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  for (int64_t g = 0; g < kh / 16; ++g) {
    _tile_loadd(4, a + g * 512, 64);
    _tile_loadd(5, a + g * 512 + 256, 64);
    _tile_loadd(6, b + g * 16 * NR, NR * 4);
    _tile_loadd(7, b + g * 16 * NR + 16, NR * 4);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  if (direct) {
    _tile_stored(0, c, ldcB);
    _tile_stored(1, c + 16, ldcB);
    _tile_stored(2, c + 16 * ldc, ldcB);
    _tile_stored(3, c + 16 * ldc + 16, ldcB);
    return;
  }
  alignas(64) float tile[MRX][NR];
  _tile_stored(0, &tile[0][0], NR * 4);
  _tile_stored(1, &tile[0][16], NR * 4);
  _tile_stored(2, &tile[16][0], NR * 4);
  _tile_stored(3, &tile[16][16], NR * 4);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  const __mmask16 m0 = lanes16(nr), m1 = lanes16(nr - 16);
  for (int i = 0; i < mr; ++i) {
    float* cp = c + i * ldc;
    __m512 r0 = _mm512_mul_ps(_mm512_load_ps(&tile[i][0]), va), r1 = _mm512_mul_ps(_mm512_load_ps(&tile[i][16]), va);
    if (beta != 0.0f) {
      r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, cp), r0);
      r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, cp + 16), r1);
    }
    _mm512_mask_storeu_ps(cp, m0, r0);
    _mm512_mask_storeu_ps(cp + 16, m1, r1);
  }
}

struct TileConfig {
  uint8_t palette, startRow;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

/**
 * Eight 16 x 64-byte tiles: C 0-3, A 4-5, B 6-7 (palette 1). A namespace-scope object: GCC's
 * _tile_loadconfig tells the compiler it reads 8 bytes only, so a config built on the stack just
 * before it loses its stores (and ldtilecfg faults).
 */
alignas(64) const TileConfig kTileConfig = {1, 0, {}, {64, 64, 64, 64, 64, 64, 64, 64}, {16, 16, 16, 16, 16, 16, 16, 16}};
ALEXNET_TARGET_AMX void amxBegin() { _tile_loadconfig(&kTileConfig); }
ALEXNET_TARGET_AMX void amxEnd() { _tile_release(); }

/** Blocking and panel height of each kernel; KC counts k values (a multiple of 2, of 32 for AMX). */
struct Cfg {
  bool amx;
  int mr;
  int64_t kc, mc, nc;
};
const Cfg& cfgFor(Bf16Kernel kern) {
  // The packed blocks take half the bytes of fp32's, so KC is larger than gemm.cpp's for the same
  // cache footprint; the AMX A panel (32 rows) stays within L1 at KC = 512.
  static const Cfg avx{false, MR, (envInt("ALEXNET_BF16_KC", 768) + 1) / 2 * 2,
                       (envInt("ALEXNET_BF16_MC", 1008) + MR - 1) / MR * MR, (envInt("ALEXNET_BF16_NC", 384) + NR - 1) / NR * NR};
  static const Cfg amx{true, MRX, (envInt("ALEXNET_AMX_KC", 512) + 31) / 32 * 32,
                       (envInt("ALEXNET_AMX_MC", 1024) + MRX - 1) / MRX * MRX, (envInt("ALEXNET_AMX_NC", 384) + NR - 1) / NR * NR};
  return kern == Bf16Kernel::Amx ? amx : avx;
}

int64_t pairsFor(const Cfg& cf, int64_t k) {
  const int64_t kh = (k + 1) / 2;
  return cf.amx ? (kh + 15) / 16 * 16 : kh;
}

/** A block (mc x kc of op(A)) in mr-row panels of kh pairs each. */
void packABlock(const Cfg& cf, bool ta, const float* A, int64_t lda, int64_t mc, int64_t kc, uint32_t* dst) {
  const int64_t kh = pairsFor(cf, kc);
  for (int64_t ir = 0; ir < mc; ir += cf.mr) {
    const int64_t rows = std::min<int64_t>(cf.mr, mc - ir);
    const float* src = ta ? A + ir : A + ir * lda;
    if (cf.amx) packAmxA(ta, src, lda, rows, kc, kh, dst + ir * kh);
    else if (ta) packPairsRows<MR>(src, lda, rows, kc, dst + ir * kh);
    else packPairsLines<MR>(src, lda, rows, kc, dst + ir * kh);
  }
}

/** Zero pairs [from, to) of a 32-wide panel. */
inline void zeroPairs(uint32_t* panel, int64_t from, int64_t to) {
  if (to > from) std::memset(panel + from * NR, 0, (size_t)((to - from) * NR) * sizeof(uint32_t));
}

/** B block (kc x nc of op(B)) in NR-column panels of kh pairs each. */
void packBBlock(const Cfg& cf, bool tb, const float* B, int64_t ldb, int64_t kc, int64_t nc, uint32_t* dst) {
  const int64_t kh = pairsFor(cf, kc), kr = (kc + 1) / 2;
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int64_t cols = std::min<int64_t>(NR, nc - jr);
    uint32_t* d = dst + jr * kh;
    if (tb) packPairsLines<NR>(B + jr * ldb, ldb, cols, kc, d);
    else packPairsRows<NR>(B + jr, ldb, cols, kc, d);
    zeroPairs(d, kr, kh);
  }
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
void blocked(const Cfg& cf, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
             int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const uint32_t* Bpre,
             const uint32_t* Apre) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) { scaleC(m, n, beta, C, ldc); return; }
  const int64_t MC = cf.mc, NC = cf.nc, kh = pairsFor(cf, k), step = cf.amx ? 32 : 2;
  // k in equal blocks of at most KC, each but the last a whole number of pairs (AMX: of 16 pairs).
  const int64_t kBlocks = (k + cf.kc - 1) / cf.kc, KC = ((k + kBlocks - 1) / kBlocks + step - 1) / step * step;
  const int64_t mcMax = std::min(MC, (m + cf.mr - 1) / cf.mr * cf.mr), ncMax = std::min(NC, (n + NR - 1) / NR * NR);
  const int64_t khMax = pairsFor(cf, std::min(KC, k));
  uint32_t* Ap = Apre ? nullptr : scratch<uint32_t>(Scratch::GemmA, (size_t)(mcMax * khMax));
  uint32_t* Bp = Bpre ? nullptr : scratch<uint32_t>(Scratch::GemmB, (size_t)(ncMax * khMax));
  if (cf.amx) amxBegin();
  for (int64_t ic = 0; ic < m; ic += MC) {
    const int64_t mc = std::min(MC, m - ic);
    for (int64_t pc = 0; pc < k; pc += KC) {
      const int64_t kc = std::min(KC, k - pc), khc = pairsFor(cf, kc);
      const float betaEff = pc == 0 ? beta : 1.0f;
      if (!Apre) packABlock(cf, ta, ta ? A + pc * lda + ic : A + ic * lda + pc, lda, mc, kc, Ap);
      for (int64_t jc = 0; jc < n; jc += NC) {
        const int64_t nc = std::min(NC, n - jc);
        const uint32_t* b0;
        int64_t bStride;
        if (Bpre) {
          b0 = Bpre + (jc / NR) * kh * NR + (pc / 2) * NR;
          bStride = kh * NR;
        } else {
          packBBlock(cf, tb, tb ? B + jc * ldb + pc : B + pc * ldb + jc, ldb, kc, nc, Bp);
          b0 = Bp;
          bStride = khc * NR;
        }
        for (int64_t ir = 0; ir < mc; ir += cf.mr) {
          const int mr = (int)std::min<int64_t>(cf.mr, mc - ir);
          const uint32_t* a = Apre ? Apre + (ic + ir) * kh + (pc / 2) * cf.mr : Ap + ir * khc;
          float* crow = C + (ic + ir) * ldc + jc;
          const uint32_t* b = b0;
          for (int64_t jr = 0; jr < nc; jr += NR, b += bStride) {
            const int nr = (int)std::min<int64_t>(NR, nc - jr);
            if (cf.amx) kernelAmx(khc, a, b, crow + jr, ldc, alpha, betaEff, mr, nr);
            else kernelBf16(khc, a, b, crow + jr, ldc, alpha, betaEff, mr, nr);
          }
        }
      }
    }
  }
  if (cf.amx) amxEnd();
}

/** gemm.cpp's parallelGemm on the bf16 blocking: C in tile-aligned stripes along its longer side. */
void parallel(ThreadPool& pool, const Cfg& cf, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
              const uint32_t* Bpre, const uint32_t* Apre) {
  if (m <= 0 || n <= 0) return;
  const double work = (double)m * (double)n * (double)std::max<int64_t>(k, 1);
  const int threads = work < 2.0e6 ? 1 : pool.size();
  const int mrT = cf.mr;
  const bool splitN = (double)n / NR >= (double)m / mrT;
  const int64_t units = splitN ? (n + NR - 1) / NR : (m + mrT - 1) / mrT;
  if (threads <= 1 || units < 2) { blocked(cf, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, Bpre, Apre); return; }
  static const int64_t perThread = envInt("ALEXNET_GEMM_STRIPES", 3);
  const int64_t kh = pairsFor(cf, k);
  const bool otherPrepacked = splitN ? Apre != nullptr : Bpre != nullptr;
  const int64_t widest = otherPrepacked ? units : std::max<int64_t>(1, units / 8);
  const int64_t parts = std::min<int64_t>(units, std::min<int64_t>(perThread * threads, std::max<int64_t>(threads, widest)));
  pool.forChunks(parts, 1, [&](int64_t t0, int64_t t1) {
    const int64_t u0 = units * t0 / parts, u1 = units * t1 / parts;
    if (splitN) {
      const int64_t j0 = u0 * NR, j1 = std::min(n, u1 * NR);
      if (j0 >= j1) return;
      blocked(cf, ta, tb, m, j1 - j0, k, alpha, A, lda, Bpre ? B : tb ? B + j0 * ldb : B + j0, ldb, beta, C + j0, ldc,
              Bpre ? Bpre + u0 * kh * NR : nullptr, Apre);
    } else {
      const int64_t i0 = u0 * mrT, i1 = std::min(m, u1 * mrT);
      if (i0 >= i1) return;
      blocked(cf, ta, tb, i1 - i0, n, k, alpha, Apre ? A : ta ? A + i0 : A + i0 * lda, lda, B, ldb, beta,
              C + i0 * ldc, ldc, Bpre, Apre ? Apre + i0 * kh : nullptr);
    }
  });
}

bool cpuHasAmxBf16() {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool tile = (d >> 24) & 1, bf16 = (d >> 22) & 1;
  if (!tile || !bf16) return false;
  // The OS must save the tile state (XCR0 bits 17 and 18) and, on Linux, grant it to this process.
  if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) return false;  // OSXSAVE
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & (3u << 17)) != (3u << 17)) return false;
#if defined(__linux__)
  return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
#else
  return false;
#endif
}

}  // namespace

Bf16Kernel detectBf16Kernel() {
  static const Bf16Kernel best = !cpuHasBf16() ? Bf16Kernel::None : cpuHasAmxBf16() ? Bf16Kernel::Amx
                                                                                    : Bf16Kernel::Avx512Bf16;
  return best;
}

namespace {
Bf16Kernel initialBf16Kernel() {
  const Bf16Kernel best = detectBf16Kernel();
  const char* env = std::getenv("ALEXNET_BF16_KERNEL");
  if (best == Bf16Kernel::Amx && env && !std::strcmp(env, "avx512bf16")) return Bf16Kernel::Avx512Bf16;
  return best;
}
std::atomic<int> g_bf16Kernel{-1};
}  // namespace

Bf16Kernel activeBf16Kernel() {
  int k = g_bf16Kernel.load(std::memory_order_relaxed);
  if (k < 0) {
    k = (int)initialBf16Kernel();
    g_bf16Kernel.store(k);
  }
  return (Bf16Kernel)k;
}

bool setBf16Kernel(Bf16Kernel k) {
  if (k == Bf16Kernel::None || (int)k > (int)detectBf16Kernel()) return false;
  g_bf16Kernel.store((int)k);
  return true;
}

int bgemmPanelHeight(Bf16Kernel kern) { return cfgFor(kern).mr; }
int64_t bgemmPairs(Bf16Kernel kern, int64_t k) { return pairsFor(cfgFor(kern), k); }

void bgemm(ThreadPool& pool, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  parallel(pool, cfgFor(activeBf16Kernel()), ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, nullptr, nullptr);
}

void bgemmPackedB(ThreadPool& pool, Bf16Kernel kern, bool ta, int64_t m, int64_t n, int64_t k, float alpha,
                  const float* A, int64_t lda, const uint32_t* Bp, float beta, float* C, int64_t ldc,
                  const uint32_t* Ap) {
  parallel(pool, cfgFor(kern), ta, false, m, n, k, alpha, A, lda, nullptr, 0, beta, C, ldc, Bp, Ap);
}

void bgemmPackA(Bf16Kernel kern, bool ta, const float* A, int64_t lda, int64_t m, int64_t k, uint32_t* dst) {
  if (m > 0 && k > 0) packABlock(cfgFor(kern), ta, A, lda, m, k, dst);
}

void bgemmPanelsFromFp32(ThreadPool& pool, Bf16Kernel kern, const float* src, int64_t k, int64_t panels,
                         uint32_t* dst) {
  const int64_t kh = bgemmPairs(kern, k), kr = (k + 1) / 2;
  pool.parallelFor(panels, 1, [&](int64_t b, int64_t e) {
    for (int64_t q = b; q < e; ++q) {
      packPairsRows<NR>(src + q * k * NR, NR, NR, k, dst + q * kh * NR);
      zeroPairs(dst + q * kh * NR, kr, kh);
    }
  });
}

#else  // not x86: activePrecision() is never Bf16 there

[[noreturn]] static void noBf16() {
  std::fprintf(stderr, "alexnet: the bf16 GEMM needs AVX512_BF16, which this build's target lacks\n");
  std::abort();
}
Bf16Kernel detectBf16Kernel() { return Bf16Kernel::None; }
Bf16Kernel activeBf16Kernel() { return Bf16Kernel::None; }
bool setBf16Kernel(Bf16Kernel) { return false; }
int bgemmPanelHeight(Bf16Kernel) { return 14; }
int64_t bgemmPairs(Bf16Kernel, int64_t k) { return (k + 1) / 2; }
void bgemm(ThreadPool&, bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
           float, float*, int64_t) { noBf16(); }
void bgemmPackedB(ThreadPool&, Bf16Kernel, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                  const uint32_t*, float, float*, int64_t, const uint32_t*) { noBf16(); }
void bgemmPackA(Bf16Kernel, bool, const float*, int64_t, int64_t, int64_t, uint32_t*) { noBf16(); }
void bgemmPanelsFromFp32(ThreadPool&, Bf16Kernel, const float*, int64_t, int64_t, uint32_t*) { noBf16(); }

#endif

int64_t bgemmPackedASize(Bf16Kernel kern, int64_t m, int64_t k) {
  const int mr = bgemmPanelHeight(kern);
  return (m + mr - 1) / mr * mr * bgemmPairs(kern, k);
}

const char* bf16KernelName(Bf16Kernel k) {
  return k == Bf16Kernel::Amx ? "amx" : k == Bf16Kernel::Avx512Bf16 ? "avx512bf16" : "none";
}

}  // namespace alexnet
