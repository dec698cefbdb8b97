// Winograd minimal filtering F(m x m, 3 x 3) (Lavin & Gray, "Fast algorithms for convolutional neural
// networks", 2016) for the 3x3 stride-1 convolutions (conv3-5 of the paper's net): forward, and the
// data gradient as the forward convolution of dy with the flipped, transposed filters (padding 2 - p).
//
//   y tile (m x m) = A^T [ (G g G^T) . (B^T d B) ] A       d: an (m+2) x (m+2) input tile
//
// Per group and per chunk of Tc output tiles (tiles of all samples, numbered image-major):
//   1. input transform: V_xi [C, Tc] for each of the alpha^2 = (m+2)^2 points xi, written straight in
//      the GEMM's packed-B panels (lanes of 8 or 16 tiles at a time, one vector per point);
//   2. alpha^2 GEMMs  M_xi [K, Tc] = U_xi [K, C] x V_xi [C, Tc]  with U (the filter transform, in packed-A
//      panels, once per op) pre-packed: the one GEMM micro-kernel of gemm.cpp;
//   3. output transform of each (k, lane group of tiles), + bias, stored to NCHW (clipped at the edges).
// Multiplies per output: alpha^2 / m^2 x C x K instead of 9 C K: 4 for F(2x2) (2.25x fewer), 2.25 for
// F(4x4) (4x fewer), before the waste of partial tiles at the edges (13 = 3 x 4 + 1).
// Transforms are vector code in plain C++ (GCC vector extensions, compiled once per ISA by dispatchIsa)
// with -ffp-contract=off, so they round the same on every ISA path.
#include "winograd.h"

// The vector helpers are always inlined into one ISA's copy: no vector crosses a call boundary.
#pragma GCC diagnostic ignored "-Wpsabi"

#include <atomic>
#include <cstring>

#include "../isa.h"
#if ALEXNET_X86
#include <immintrin.h>
#endif

#include "common.h"
#include "gemm.h"

namespace alexnet {

namespace {

template <int L>
struct VecOf;
template <>
struct VecOf<8> { typedef float type __attribute__((vector_size(32))); };
template <>
struct VecOf<16> { typedef float type __attribute__((vector_size(64))); };

template <class V>
ALEXNET_INLINE V vload(const float* p) { V v; std::memcpy(&v, p, sizeof(V)); return v; }
template <class V>
ALEXNET_INLINE void vstore(float* p, V v) { std::memcpy(p, &v, sizeof(V)); }

// ---- the 1-D transforms (rows of B^T, A^T, G), on scalars or vectors ----
// F(m, r) by Toom-Cook on the points 0, 1, -1, 2, -2 (as many as needed) and infinity: alpha = m + r - 1.
// B^T depends on the points only, so F(4, 3) and F(2, 5) (alpha 6) share it; G [alpha, r] holds
// p_j^k / prod_{l != j} (p_j - p_l) (the infinity row picks g[r - 1]); A^T [m, alpha] holds p_j^i.

template <int Alpha>
struct InT;

template <>
struct InT<4> {  // points 0, 1, -1, infinity
  template <class V>
  ALEXNET_INLINE static void in(const V* d, V* o) {  // B^T d
    o[0] = d[0] - d[2];
    o[1] = d[1] + d[2];
    o[2] = d[2] - d[1];
    o[3] = d[1] - d[3];
  }
};

template <>
struct InT<6> {  // points 0, 1, -1, 2, -2, infinity
  template <class V>
  ALEXNET_INLINE static void in(const V* d, V* o) {  // B^T d
    o[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
    o[1] = (d[3] + d[4]) - 4.0f * (d[1] + d[2]);
    o[2] = 4.0f * (d[1] - d[2]) + (d[4] - d[3]);
    o[3] = 2.0f * (d[3] - d[1]) + (d[4] - d[2]);
    o[4] = 2.0f * (d[1] - d[3]) + (d[4] - d[2]);
    o[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
  }
};

template <int M, int R>
struct Tf;

template <>
struct Tf<2, 3> : InT<4> {
  static constexpr int kAlpha = 4;
  template <class V>
  ALEXNET_INLINE static void outT(const V* v, V* o) {  // A v (the filter gradient's dy tile)
    o[0] = v[0];
    o[1] = v[0] + v[1];
    o[2] = v[0] - v[1];
    o[3] = -v[1];
  }
  static void filterT(const double* u, double* o) {  // G^T u
    o[0] = u[0] + 0.5 * (u[1] + u[2]);
    o[1] = 0.5 * (u[1] - u[2]);
    o[2] = 0.5 * (u[1] + u[2]) + u[3];
  }
  template <class V>
  ALEXNET_INLINE static void out(const V* m, V* o) {  // A^T m
    o[0] = m[0] + m[1] + m[2];
    o[1] = m[1] - m[2] - m[3];
  }
  template <class V>
  ALEXNET_INLINE static void filter(const V* g, V* o) {  // G g
    o[0] = g[0];
    o[1] = 0.5f * (g[0] + g[1] + g[2]);
    o[2] = 0.5f * (g[0] - g[1] + g[2]);
    o[3] = g[2];
  }
};

template <>
struct Tf<4, 3> : InT<6> {
  static constexpr int kAlpha = 6;
  template <class V>
  ALEXNET_INLINE static void outT(const V* v, V* o) {  // A v
    const V a = v[0] + v[2], b = v[1] + v[3], c = v[0] + 4.0f * v[2], d = 2.0f * v[1] + 8.0f * v[3];
    o[0] = v[0];
    o[1] = a + b;
    o[2] = a - b;
    o[3] = c + d;
    o[4] = c - d;
    o[5] = v[3];
  }
  static void filterT(const double* u, double* o) {  // G^T u
    o[0] = u[0] / 4 - (u[1] + u[2]) / 6 + (u[3] + u[4]) / 24;
    o[1] = (u[2] - u[1]) / 6 + (u[3] - u[4]) / 12;
    o[2] = (u[3] + u[4] - u[1] - u[2]) / 6 + u[5];
  }
  template <class V>
  ALEXNET_INLINE static void out(const V* m, V* o) {  // A^T m
    const V a = m[1] + m[2], b = m[1] - m[2], c = m[3] + m[4], d = m[3] - m[4];
    o[0] = m[0] + a + c;
    o[1] = b + 2.0f * d;
    o[2] = a + 4.0f * c;
    o[3] = b + 8.0f * d + m[5];
  }
  template <class V>
  ALEXNET_INLINE static void filter(const V* g, V* o) {  // G g
    o[0] = g[0] / 4.0f;
    o[1] = -(g[0] + g[1] + g[2]) / 6.0f;
    o[2] = -(g[0] - g[1] + g[2]) / 6.0f;
    o[3] = (g[0] + 2.0f * g[1] + 4.0f * g[2]) / 24.0f;
    o[4] = (g[0] - 2.0f * g[1] + 4.0f * g[2]) / 24.0f;
    o[5] = g[2];
  }
};

template <>
struct Tf<2, 5> : InT<6> {
  static constexpr int kAlpha = 6;
  template <class V>
  ALEXNET_INLINE static void outT(const V* v, V* o) {  // A v
    o[0] = v[0];
    o[1] = v[0] + v[1];
    o[2] = v[0] - v[1];
    o[3] = v[0] + 2.0f * v[1];
    o[4] = v[0] - 2.0f * v[1];
    o[5] = v[1];
  }
  static void filterT(const double* u, double* o) {  // G^T u
    const double p = u[1] + u[2], q = u[2] - u[1], a = u[3] + u[4], b = u[3] - u[4];
    o[0] = u[0] / 4 - p / 6 + a / 24;
    o[1] = q / 6 + b / 12;
    o[2] = -p / 6 + a / 6;
    o[3] = q / 6 + b / 3;
    o[4] = -p / 6 + a * (2.0 / 3.0) + u[5];
  }
  template <class V>
  ALEXNET_INLINE static void out(const V* m, V* o) {  // A^T m
    o[0] = m[0] + (m[1] + m[2]) + (m[3] + m[4]);
    o[1] = (m[1] - m[2]) + 2.0f * (m[3] - m[4]) + m[5];
  }
  template <class V>
  ALEXNET_INLINE static void filter(const V* g, V* o) {  // G g
    o[0] = g[0] / 4.0f;
    o[1] = -(g[0] + g[1] + g[2] + g[3] + g[4]) / 6.0f;
    o[2] = -(g[0] - g[1] + g[2] - g[3] + g[4]) / 6.0f;
    o[3] = (g[0] + 2.0f * g[1] + 4.0f * g[2] + 8.0f * g[3] + 16.0f * g[4]) / 24.0f;
    o[4] = (g[0] - 2.0f * g[1] + 4.0f * g[2] - 8.0f * g[3] + 16.0f * g[4]) / 24.0f;
    o[5] = g[4];
  }
};

/**
 * The alpha^2 matrices of V (and of M) lie this many floats more than their size apart: at a multiple of
 * 4 KiB (16 KiB for conv2's M) the transforms' alpha^2 loads or stores of one tile all fell into one L1 set.
 */
constexpr int64_t kXiPad = 16;

/** Output tiles of one chunk: image, and top-left output row and column (the input tile starts pad earlier). */
struct TileInfo {
  int32_t img, oh0, ow0;
};

/** Input transform of channels [c0, c1) of group g for the chunk's tc tiles into V (alpha^2 packed-B matrices). */
template <int M, int R, int L>
ALEXNET_INLINE void inputTransformBody(const float* x, const WinogradShape* ps, const TileInfo* tiles, int64_t tc,
                                       int64_t tcPad, int nr, int64_t g, int64_t c0, int64_t c1, float* V) {
  typedef typename VecOf<L>::type Vec;
  constexpr int A = Tf<M, R>::kAlpha;
  const WinogradShape& p = *ps;
  const int64_t HW = p.h * p.w, C = p.c;
  alignas(64) float st[A * A][L];
  for (int64_t ci = c0; ci < c1; ++ci) {
    for (int64_t tb = 0; tb < tcPad; tb += L) {
      for (int l = 0; l < L; ++l) {
        const int64_t t = tb + l;
        if (t >= tc) {
          for (int ij = 0; ij < A * A; ++ij) st[ij][l] = 0.0f;
          continue;
        }
        const TileInfo ti = tiles[t];
        const float* plane = x + ((int64_t)ti.img * p.cTotal + g * C + ci) * HW;
        const int64_t ih0 = ti.oh0 - p.pad, iw0 = ti.ow0 - p.pad;
        if (ih0 >= 0 && ih0 + A <= p.h && iw0 >= 0 && iw0 + A <= p.w) {
          const float* s = plane + ih0 * p.w + iw0;
          for (int i = 0; i < A; ++i)
            for (int j = 0; j < A; ++j) st[i * A + j][l] = s[i * p.w + j];
        } else {
          for (int i = 0; i < A; ++i) {
            const int64_t ih = ih0 + i;
            const bool rowIn = ih >= 0 && ih < p.h;
            for (int j = 0; j < A; ++j) {
              const int64_t iw = iw0 + j;
              st[i * A + j][l] = rowIn && iw >= 0 && iw < p.w ? plane[ih * p.w + iw] : 0.0f;
            }
          }
        }
      }
      // V = B^T d B: columns first, then rows.
      Vec d[A][A], tcol[A][A];
      for (int i = 0; i < A; ++i)
        for (int j = 0; j < A; ++j) d[i][j] = vload<Vec>(st[i * A + j]);
      for (int j = 0; j < A; ++j) {
        Vec col[A], o[A];
        for (int i = 0; i < A; ++i) col[i] = d[i][j];
        Tf<M, R>::in(col, o);
        for (int a = 0; a < A; ++a) tcol[a][j] = o[a];
      }
      float* base = V + (tb / nr) * C * nr + ci * nr + tb % nr;
      const int64_t xiStride = tcPad * C + kXiPad;
      for (int a = 0; a < A; ++a) {
        Vec o[A];
        Tf<M, R>::in(tcol[a], o);
        for (int b = 0; b < A; ++b) vstore(base + (a * A + b) * xiStride, o[b]);
      }
    }
  }
}

/** Output transform of output channels [k0, k1) of group g from Mx (alpha^2 matrices [K, tcPad]) into y. */
template <int M, int R, int L>
ALEXNET_INLINE void outputTransformBody(const float* Mx, int64_t xiStride, int64_t kBase, const WinogradShape* ps,
                                        const TileInfo* tiles, int64_t tc, int64_t tcPad, int64_t g, int64_t k0,
                                        int64_t k1, const float* bias, float* y) {
  typedef typename VecOf<L>::type Vec;
  constexpr int A = Tf<M, R>::kAlpha;
  const WinogradShape& p = *ps;
  const int64_t OHW = p.outH * p.outW, K = p.k;
  alignas(64) float st[M * M][L];
  for (int64_t ko = k0; ko < k1; ++ko) {
    const float bv = bias ? bias[g * K + ko] : 0.0f;
    for (int64_t tb = 0; tb < tc; tb += L) {
      Vec trow[M][A];  // a column of M at a time: alpha^2 live vectors would spill
      const float* src = Mx + (ko - kBase) * tcPad + tb;
      for (int b = 0; b < A; ++b) {
        Vec col[A], o[M];
        for (int a = 0; a < A; ++a) col[a] = vload<Vec>(src + (a * A + b) * xiStride);
        Tf<M, R>::out(col, o);
        for (int i = 0; i < M; ++i) trow[i][b] = o[i];
      }
      for (int i = 0; i < M; ++i) {
        Vec o[M];
        Tf<M, R>::out(trow[i], o);
        for (int j = 0; j < M; ++j) vstore(st[i * M + j], o[j] + bv);
      }
      const int lanes = (int)std::min<int64_t>(L, tc - tb);
      for (int l = 0; l < lanes; ++l) {
        const TileInfo ti = tiles[tb + l];
        float* plane = y + ((int64_t)ti.img * p.kTotal + g * K + ko) * OHW;
        const int64_t ih = std::min<int64_t>(M, p.outH - ti.oh0), jw = std::min<int64_t>(M, p.outW - ti.ow0);
        for (int64_t i = 0; i < ih; ++i) {
          float* row = plane + (ti.oh0 + i) * p.outW + ti.ow0;
          for (int64_t j = 0; j < jw; ++j) row[j] = st[i * M + j][l];
        }
      }
    }
  }
}

#if ALEXNET_X86
/**
 * inputTransformBody's result on AVX-512 with masked gathers: per lane group of 16 tiles the input
 * offsets and the in-bounds masks of each tile row and column are computed once, then every channel
 * is alpha^2 gathers straight into registers (no staging through memory). Same arithmetic, same results.
 */
template <int M, int R>
ALEXNET_TARGET_AVX512 void inputTransformGather(const float* x, const WinogradShape* ps, const TileInfo* tiles,
                                                int64_t tc, int64_t tcPad, int nr, int64_t g, int64_t c0, int64_t c1,
                                                float* V) {
  constexpr int A = Tf<M, R>::kAlpha;
  const WinogradShape& p = *ps;
  const int64_t HW = p.h * p.w, C = p.c, xiStride = tcPad * C + kXiPad;
  for (int64_t tb = 0; tb < tcPad; tb += 16) {
    alignas(64) int32_t off[16];
    __mmask16 rowM[A], colM[A];
    for (int a = 0; a < A; ++a) rowM[a] = colM[a] = 0;
    for (int l = 0; l < 16; ++l) {
      const int64_t t = tb + l;
      off[l] = 0;
      if (t >= tc) continue;
      const TileInfo ti = tiles[t];
      const int64_t ih0 = ti.oh0 - p.pad, iw0 = ti.ow0 - p.pad;
      off[l] = (int32_t)((int64_t)ti.img * p.cTotal * HW + ih0 * p.w + iw0);
      for (int a = 0; a < A; ++a) {
        if (ih0 + a >= 0 && ih0 + a < p.h) rowM[a] |= (__mmask16)(1u << l);
        if (iw0 + a >= 0 && iw0 + a < p.w) colM[a] |= (__mmask16)(1u << l);
      }
    }
    const __m512i vo = _mm512_load_si512(off);
    for (int64_t ci = c0; ci < c1; ++ci) {
      const float* plane = x + (g * C + ci) * HW;
      __m512 tcol[A][A];
      for (int j = 0; j < A; ++j) {  // a column of the tile at a time
        __m512 col[A], o[A];
        for (int i = 0; i < A; ++i) {
          const __m512i idx = _mm512_add_epi32(vo, _mm512_set1_epi32((int32_t)(i * p.w + j)));
          col[i] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), rowM[i] & colM[j], idx, plane, 4);
        }
        Tf<M, R>::in(col, o);
        for (int a = 0; a < A; ++a) tcol[a][j] = o[a];
      }
      float* base = V + (tb / nr) * C * nr + ci * nr + tb % nr;
      for (int a = 0; a < A; ++a) {
        __m512 o[A];
        Tf<M, R>::in(tcol[a], o);
        for (int b = 0; b < A; ++b) _mm512_storeu_ps(base + (a * A + b) * xiStride, o[b]);
      }
    }
  }
}
#endif

template <int M, int R, int L>
void inputTransform(const float* x, const WinogradShape* p, const TileInfo* tiles, int64_t tc, int64_t tcPad, int nr,
                    int64_t g, int64_t c0, int64_t c1, float* V) {
#if ALEXNET_X86
  // 32-bit gather offsets: the whole input below 2^31 elements (else the staged gather below).
  static const bool gathers = envInt("ALEXNET_WINOGRAD_GATHER", 1) == 1;  // 2: the staged loads
  if (L == 16 && gathers && activeIsa() == Isa::Avx512 && p->n * p->cTotal * p->h * p->w < ((int64_t)1 << 31))
    return inputTransformGather<M, R>(x, p, tiles, tc, tcPad, nr, g, c0, c1, V);
#endif
  dispatchIsa<inputTransformBody<M, R, L>>(x, p, tiles, tc, tcPad, nr, g, c0, c1, V);
}
#if ALEXNET_X86
/**
 * outputTransformBody's result on AVX-512 with masked scatters: per lane group of 16 tiles the output
 * offsets and the masks of the tile rows and columns inside the plane once, then per output channel
 * m^2 scatters straight from registers. Same arithmetic, same results.
 */
template <int M, int R>
ALEXNET_TARGET_AVX512 void outputTransformScatter(const float* Mx, int64_t xiStride, int64_t kBase,
                                                  const WinogradShape* ps, const TileInfo* tiles, int64_t tc,
                                                  int64_t tcPad, int64_t g, int64_t k0, int64_t k1, const float* bias,
                                                  float* y) {
  constexpr int A = Tf<M, R>::kAlpha;
  const WinogradShape& p = *ps;
  const int64_t OHW = p.outH * p.outW, K = p.k;
  for (int64_t tb = 0; tb < tc; tb += 16) {
    alignas(64) int32_t off[16];
    __mmask16 rowM[M], colM[M];
    for (int a = 0; a < M; ++a) rowM[a] = colM[a] = 0;
    for (int l = 0; l < 16; ++l) {
      off[l] = 0;
      if (tb + l >= tc) continue;
      const TileInfo ti = tiles[tb + l];
      off[l] = (int32_t)((int64_t)ti.img * p.kTotal * OHW + (int64_t)ti.oh0 * p.outW + ti.ow0);
      for (int a = 0; a < M; ++a) {
        if (ti.oh0 + a < p.outH) rowM[a] |= (__mmask16)(1u << l);
        if (ti.ow0 + a < p.outW) colM[a] |= (__mmask16)(1u << l);
      }
    }
    const __m512i vo = _mm512_load_si512(off);
    for (int64_t ko = k0; ko < k1; ++ko) {
      const __m512 bv = _mm512_set1_ps(bias ? bias[g * K + ko] : 0.0f);
      float* plane = y + (g * K + ko) * OHW;
      const float* src = Mx + (ko - kBase) * tcPad + tb;
      __m512 trow[M][A];  // a column of M at a time: alpha^2 live vectors would spill
      for (int b = 0; b < A; ++b) {
        __m512 col[A], o[M];
        for (int a = 0; a < A; ++a) col[a] = _mm512_loadu_ps(src + (a * A + b) * xiStride);
        Tf<M, R>::out(col, o);
        for (int i = 0; i < M; ++i) trow[i][b] = o[i];
      }
      for (int i = 0; i < M; ++i) {
        __m512 o[M];
        Tf<M, R>::out(trow[i], o);
        for (int j = 0; j < M; ++j) {
          const __m512i idx = _mm512_add_epi32(vo, _mm512_set1_epi32((int32_t)(i * p.outW + j)));
          _mm512_mask_i32scatter_ps(plane, rowM[i] & colM[j], idx, o[j] + bv, 4);
        }
      }
    }
  }
}
#endif

/**
 * Output channels [k0, k1) of group g (rows k0 - kBase.. of the alpha^2 matrices of Mx, xiStride
 * floats apart, tcPad columns each) into y.
 */
template <int M, int R, int L>
void outputTransform(const float* Mx, int64_t xiStride, int64_t kBase, const WinogradShape* p, const TileInfo* tiles,
                     int64_t tc, int64_t tcPad, int64_t g, int64_t k0, int64_t k1, const float* bias, float* y) {
#if ALEXNET_X86
  static const bool scatters = envInt("ALEXNET_WINOGRAD_GATHER", 1) == 1;
  if (L == 16 && scatters && activeIsa() == Isa::Avx512 && p->n * p->kTotal * p->outH * p->outW < ((int64_t)1 << 31))
    return outputTransformScatter<M, R>(Mx, xiStride, kBase, p, tiles, tc, tcPad, g, k0, k1, bias, y);
#endif
  dispatchIsa<outputTransformBody<M, R, L>>(Mx, xiStride, kBase, p, tiles, tc, tcPad, g, k0, k1, bias, y);
}

/**
 * The filter transform U = G f G^T of rows [k0, k0 + mr) (one packed-A panel: the vector lanes) for
 * every input channel, into that panel of each of the alpha^2 packed A matrices (apSize floats apart):
 * element (row k, column c) at (k - k0) + c mr; rows past K are zero.
 */
template <int M, int R>
ALEXNET_INLINE void filterPanelBody(const float* w, bool flipped, int64_t C, int64_t K, int64_t g, int64_t k0, int mr,
                                    int64_t apSize, float* dst) {
  typedef typename VecOf<16>::type Vec;
  constexpr int A = Tf<M, R>::kAlpha;
  for (int64_t ci = 0; ci < C; ++ci) {
    alignas(64) float f[R * R][16];
    for (int l = 0; l < 16; ++l) {
      const int64_t ko = k0 + l;
      const bool real = l < mr && ko < K;
      for (int rs = 0; rs < R * R; ++rs)
        f[rs][l] = !real ? 0.0f
                   : flipped ? w[((g * C + ci) * K + ko) * R * R + (R * R - 1 - rs)]
                             : w[((g * K + ko) * C + ci) * R * R + rs];
    }
    Vec t[A][R];
    for (int sc = 0; sc < R; ++sc) {
      Vec col[R], o[A];
      for (int r = 0; r < R; ++r) col[r] = vload<Vec>(f[r * R + sc]);
      Tf<M, R>::filter(col, o);
      for (int a = 0; a < A; ++a) t[a][sc] = o[a];
    }
    for (int a = 0; a < A; ++a) {
      Vec o[A];
      Tf<M, R>::filter(t[a], o);
      for (int b = 0; b < A; ++b) {
        alignas(64) float tmp[16];
        vstore(tmp, o[b]);
        float* d = dst + (a * A + b) * apSize + ci * mr;
        for (int l = 0; l < mr; ++l) d[l] = tmp[l];
      }
    }
  }
}

/**
 * The filter gradient's transform of dy: for output channels [k0, k1) of group g, each tile's m x m
 * gradients (zero past the plane) as A dy A^T into D: alpha^2 matrices [K, tcPad] (xiStride apart),
 * tiles along the rows.
 */
template <int M, int R, int L>
ALEXNET_INLINE void dyTransformBody(const float* dy, const WinogradShape* ps, const TileInfo* tiles, int64_t tc,
                                    int64_t tcPad, int64_t xiStride, int64_t g, int64_t k0, int64_t k1, float* D) {
  typedef typename VecOf<L>::type Vec;
  constexpr int A = Tf<M, R>::kAlpha;
  const WinogradShape& p = *ps;
  const int64_t OHW = p.outH * p.outW, K = p.k;
  alignas(64) float st[M * M][L];
  for (int64_t ko = k0; ko < k1; ++ko) {
    for (int64_t tb = 0; tb < tcPad; tb += L) {
      for (int l = 0; l < L; ++l) {
        const int64_t t = tb + l;
        if (t >= tc) {
          for (int ij = 0; ij < M * M; ++ij) st[ij][l] = 0.0f;
          continue;
        }
        const TileInfo ti = tiles[t];
        const float* plane = dy + ((int64_t)ti.img * p.kTotal + g * K + ko) * OHW;
        for (int i = 0; i < M; ++i)
          for (int j = 0; j < M; ++j) {
            const bool in = ti.oh0 + i < p.outH && ti.ow0 + j < p.outW;
            st[i * M + j][l] = in ? plane[(ti.oh0 + i) * p.outW + ti.ow0 + j] : 0.0f;
          }
      }
      Vec tcol[A][M];
      for (int j = 0; j < M; ++j) {
        Vec col[M], o[A];
        for (int i = 0; i < M; ++i) col[i] = vload<Vec>(st[i * M + j]);
        Tf<M, R>::outT(col, o);
        for (int a = 0; a < A; ++a) tcol[a][j] = o[a];
      }
      float* base = D + ko * tcPad + tb;
      for (int a = 0; a < A; ++a) {
        Vec o[A];
        Tf<M, R>::outT(tcol[a], o);
        for (int b = 0; b < A; ++b) vstore(base + (a * A + b) * xiStride, o[b]);
      }
    }
  }
}

ThreadPool& serialPool() {
  static ThreadPool pool;
  return pool;
}

/** Tiles per chunk: enough GEMM columns, small enough for V and M to stay near the core. */
int64_t chunkTiles(int M, int nr) {
  static const int64_t t4 = envInt("ALEXNET_WINOGRAD_TILES", 0);
  const int64_t t = t4 ? t4 : 32;  // measured best of 32-256 on conv3 and conv4 (CPU time, one thread)
  return std::max<int64_t>(nr, (t + nr - 1) / nr * nr);
}

/** Whether variant F(m x m, r x r)'s GEMMs run in bf16: the bf16 precision, and F(2x2, 3x3) only. */
bool bf16Winograd(int m, int r) { return m == 2 && r == 3 && activePrecision() == Precision::Bf16; }

template <int M, int R>
void run(ThreadPool& pool, const float* x, const float* w, bool flipped, const float* bias, float* y,
         const WinogradShape& p) {
  constexpr int A = Tf<M, R>::kAlpha, A2 = A * A;
  const Isa isa = activeIsa();
  // bf16 precision (docs/cpu-engine.md): F(2x2, 3x3)'s alpha^2 GEMMs take U and V rounded to bf16
  // (fp32 sums). F(4x4, 3x3) and F(2x2, 5x5) amplify that rounding 20-50x (max-norm error 5e-2 to
  // 1e-1 measured, against 4e-3 for F(2x2, 3x3)), so their GEMMs stay fp32.
  const bool bf16 = bf16Winograd(M, R);
  const Bf16Kernel kern = bf16 ? activeBf16Kernel() : Bf16Kernel::None;
  const int nr = bf16 ? kBf16Nr : gemmPanelWidth(isa), mr = gemmPanelHeight(isa);
  const int64_t C = p.c, K = p.k, G = p.groups;
  const int64_t apSize = gemmPackedASize(isa, K, C), kPad = (K + mr - 1) / mr * mr;
  // U = G f G^T for every (group, k, c) into the packed-A panels of GEMM xi: element (row k, column c)
  // of panel k / mr at (k / mr) C mr + c mr + k % mr; rows past K zero.
  float* U = scratch(Scratch::Packed, (size_t)(G * A2 * apSize));
  const int64_t panels = kPad / mr;
  pool.parallelFor(G * panels, 1, [&](int64_t b, int64_t e) {
    for (int64_t gp = b; gp < e; ++gp) {
      const int64_t g = gp / panels, pn = gp % panels;
      dispatchIsa<filterPanelBody<M, R>>(w, flipped, C, K, g, pn * mr, mr, apSize, U + g * A2 * apSize + pn * C * mr);
    }
  });
  // bf16: each U_xi [K, C] unpacked to rows and packed again as the bf16 GEMM's A (once per op).
  const int amr = bf16 ? bgemmPanelHeight(kern) : mr;
  const int64_t bApSize = bf16 ? bgemmPackedASize(kern, K, C) : 0, khC = bf16 ? bgemmPairs(kern, C) : 0;
  uint32_t* Ub = bf16 ? scratch<uint32_t>(Scratch::PackedBf16, (size_t)(G * A2 * bApSize)) : nullptr;
  if (bf16) {
    pool.parallelFor(G * A2, 1, [&](int64_t b, int64_t e) {
      float* plain = scratch(Scratch::Aux, (size_t)(K * C));
      for (int64_t gx = b; gx < e; ++gx) {
        const float* u = U + gx * apSize;
        for (int64_t k = 0; k < K; ++k)
          for (int64_t ci = 0; ci < C; ++ci) plain[k * C + ci] = u[(k / mr) * C * mr + ci * mr + k % mr];
        bgemmPackA(kern, false, plain, C, K, C, Ub + gx * bApSize);
      }
    });
  }

  const int64_t tilesH = (p.outH + M - 1) / M, tilesW = (p.outW + M - 1) / M, perImage = tilesH * tilesW;
  const int64_t T = p.n * perImage;
  const int64_t Tc = chunkTiles(M, nr);
  const int64_t chunks = (T + Tc - 1) / Tc, tasks = chunks * G;
  const int lanes = nr >= 16 ? 16 : 8;
  auto chunk = [&](ThreadPool& c, int64_t task) {
    const int64_t ch = task / G, g = task % G;
    const int64_t t0 = ch * Tc, tc = std::min(Tc, T - t0), tcPad = (tc + nr - 1) / nr * nr;
    TileInfo* tiles = scratch<TileInfo>(Scratch::Table, (size_t)tc);
    for (int64_t t = 0; t < tc; ++t) {
      const int64_t tt = t0 + t, img = tt / perImage, rem = tt % perImage;
      tiles[t] = TileInfo{(int32_t)img, (int32_t)((rem / tilesW) * M), (int32_t)((rem % tilesW) * M)};
    }
    // M in blocks of kb output channels (the GEMMs' rows), each transformed out at once: the alpha^2
    // blocks of M stay in L1/L2 while V stays in L2 (all of M for conv3 was 1.8 MiB, and read back missed).
    const int64_t kb = std::min<int64_t>((K + amr - 1) / amr * amr, (int64_t)amr * envInt("ALEXNET_WINOGRAD_KPANELS", bf16 && amr > 16 ? 2 : 4));
    const int64_t vStride = C * tcPad + kXiPad, mStride = kb * tcPad + kXiPad;
    float* V = scratch(Scratch::Col, (size_t)(A2 * vStride));
    float* Mx = scratch(Scratch::Gather, (size_t)(A2 * mStride));
    c.parallelFor(C, 4, [&](int64_t c0, int64_t c1) {
      if (lanes == 16) inputTransform<M, R, 16>(x, &p, tiles, tc, tcPad, nr, g, c0, c1, V);
      else inputTransform<M, R, 8>(x, &p, tiles, tc, tcPad, nr, g, c0, c1, V);
    });
    for (int64_t k0 = 0; k0 < K; k0 += kb) {
      const int64_t kn = std::min(kb, K - k0);
      for (int xi = 0; xi < A2; ++xi) {
        if (bf16) {
          uint32_t* vb = scratch<uint32_t>(Scratch::ColBf16, (size_t)(tcPad * khC));
          bgemmPanelsFromFp32(c, kern, V + xi * vStride, C, tcPad / nr, vb);
          bgemmPackedB(c, kern, false, kn, tcPad, C, 1.0f, nullptr, C, vb, 0.0f, Mx + xi * mStride, tcPad,
                       Ub + (g * A2 + xi) * bApSize + k0 * khC);
        } else {
          sgemmPackedB(c, isa, false, kn, tcPad, C, 1.0f, nullptr, C, V + xi * vStride, 0.0f, Mx + xi * mStride, tcPad,
                       U + (g * A2 + xi) * apSize + k0 * C);
        }
      }
      c.parallelFor(kn, 4, [&](int64_t a, int64_t b) {
        if (lanes == 16) outputTransform<M, R, 16>(Mx, mStride, k0, &p, tiles, tc, tcPad, g, k0 + a, k0 + b, bias, y);
        else outputTransform<M, R, 8>(Mx, mStride, k0, &p, tiles, tc, tcPad, g, k0 + a, k0 + b, bias, y);
      });
    }
  };
  // Whole chunks per thread (transforms, GEMMs and output on one core, V and M in its cache) when
  // there are enough of them; otherwise every step in parallel.
  if (pool.size() > 1 && tasks >= 4 * (int64_t)pool.size()) {
    pool.forChunks(tasks, 1, [&](int64_t a, int64_t b) {
      for (int64_t t = a; t < b; ++t) chunk(serialPool(), t);
    });
  } else {
    for (int64_t t = 0; t < tasks; ++t) chunk(pool, t);
  }
}

/**
 * dW (r x r per (k, c)) = G^T [ sum over tiles (A dy_t A^T) . (B^T x_t B) ] G: per xi a GEMM
 * dU_xi^T [C, K] += V_xi [C, tc] x D_xi^T [tc, K] over chunks of tiles, whose k dimension is the tiles.
 * A fixed number of ranges of chunks (at most 4, whatever the thread count) are summed by one thread
 * each into its own partial dU, then added in order (results do not depend on the thread count).
 */
template <int M, int R>
void runFilter(ThreadPool& pool, const float* x, const float* dy, float* dw, float beta, const WinogradShape& p) {
  constexpr int A = Tf<M, R>::kAlpha, A2 = A * A;
  const int64_t C = p.c, K = p.k, G = p.groups, uSize = G * A2 * K * C;
  const int64_t tilesH = (p.outH + M - 1) / M, tilesW = (p.outW + M - 1) / M, perImage = tilesH * tilesW;
  const int64_t T = p.n * perImage;
  static const int64_t tcEnv = envInt("ALEXNET_WINOGRAD_FILTER_TILES", 128);
  const int64_t Tc = std::min<int64_t>((tcEnv + 15) / 16 * 16, (T + 15) / 16 * 16);
  const int64_t chunks = (T + Tc - 1) / Tc;
  const int lanes = activeIsa() == Isa::Avx512 ? 16 : 8;
  const int64_t R4 = std::min<int64_t>(chunks, 4);
  float* parts = scratch(Scratch::Aux, (size_t)(R4 * uSize));
  // One chunk of one group into dU (beta 0 on the range's first chunk, 1 after).
  auto chunk = [&](ThreadPool& c, int64_t ch, int64_t g, float* dU, float b) {
    const int64_t t0 = ch * Tc, tc = std::min(Tc, T - t0), tcPad = (tc + 15) / 16 * 16;
    TileInfo* tiles = scratch<TileInfo>(Scratch::Table, (size_t)tc);
    for (int64_t t = 0; t < tc; ++t) {
      const int64_t tt = t0 + t, img = tt / perImage, rem = tt % perImage;
      tiles[t] = TileInfo{(int32_t)img, (int32_t)((rem / tilesW) * M), (int32_t)((rem % tilesW) * M)};
    }
    const int64_t vStride = C * tcPad + kXiPad, dStride = K * tcPad + kXiPad;
    float* V = scratch(Scratch::Col, (size_t)(A2 * vStride));
    float* D = scratch(Scratch::Gather, (size_t)(A2 * dStride));
    // V as plain rows [C, tcPad]: the packed-B layout with one panel as wide as the chunk.
    c.parallelFor(C, 4, [&](int64_t c0, int64_t c1) {
      if (lanes == 16) inputTransform<M, R, 16>(x, &p, tiles, tc, tcPad, (int)tcPad, g, c0, c1, V);
      else inputTransform<M, R, 8>(x, &p, tiles, tc, tcPad, (int)tcPad, g, c0, c1, V);
    });
    c.parallelFor(K, 4, [&](int64_t k0, int64_t k1) {
      if (lanes == 16) dispatchIsa<dyTransformBody<M, R, 16>>(dy, &p, tiles, tc, tcPad, dStride, g, k0, k1, D);
      else dispatchIsa<dyTransformBody<M, R, 8>>(dy, &p, tiles, tc, tcPad, dStride, g, k0, k1, D);
    });
    // bf16 precision (F(2x2, 3x3) only, as in run): D and V rounded to bf16 by the bf16 GEMM, fp32 sums.
    const bool bf16 = bf16Winograd(M, R);
    // dU_xi^T [C, K] += V_xi [C, tc] D_xi^T: C (48 for conv2) as the GEMM's rows and K (128, 192)
    // its columns fill the 32-wide micro-tiles (K as columns left a third of them empty).
    for (int xi = 0; xi < A2; ++xi)
      (bf16 ? bgemm : sgemm)(c, false, true, C, K, tcPad, 1.0f, V + xi * vStride, tcPad, D + xi * dStride, tcPad, b,
                             dU + (g * A2 + xi) * K * C, K);
  };
  if (R4 >= 2) {
    pool.forChunks(R4, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t c0 = chunks * r / R4, c1 = chunks * (r + 1) / R4;
        for (int64_t ch = c0; ch < c1; ++ch)
          for (int64_t g = 0; g < G; ++g) chunk(serialPool(), ch, g, parts + r * uSize, ch == c0 ? 0.0f : 1.0f);
      }
    });
  } else {
    for (int64_t g = 0; g < G; ++g) chunk(pool, 0, g, parts, 0.0f);
  }
  // The partials summed in order into the first (vectorised, contiguous), then dW = beta dW + G^T dU G
  // in double, each (group, c) reading its alpha^2 rows of dU contiguously.
  if (R4 >= 2)
    pool.parallelFor(uSize, 1 << 14, [&](int64_t b0, int64_t e0) {
      for (int64_t i = b0; i < e0; ++i) {
        float acc = parts[i];
        for (int64_t r = 1; r < R4; ++r) acc += parts[r * uSize + i];
        parts[i] = acc;
      }
    });
  pool.parallelFor(G * C, 4, [&](int64_t b0, int64_t e0) {
    float* rows = scratch(Scratch::Rows, (size_t)(A2 * K));
    for (int64_t gc = b0; gc < e0; ++gc) {
      const int64_t g = gc / C, ci = gc % C;
      for (int xi = 0; xi < A2; ++xi)
        std::memcpy(rows + xi * K, parts + ((g * A2 + xi) * C + ci) * K, (size_t)K * sizeof(float));
      for (int64_t ko = 0; ko < K; ++ko) {
        double u[A][A];
        for (int xi = 0; xi < A2; ++xi) u[xi / A][xi % A] = rows[xi * K + ko];
        double t[R][A], f[R][R];
        for (int b = 0; b < A; ++b) {
          double col[A], o[R];
          for (int a = 0; a < A; ++a) col[a] = u[a][b];
          Tf<M, R>::filterT(col, o);
          for (int r = 0; r < R; ++r) t[r][b] = o[r];
        }
        for (int r = 0; r < R; ++r) Tf<M, R>::filterT(t[r], f[r]);
        float* d = dw + ((g * K + ko) * C + ci) * R * R;
        for (int r = 0; r < R; ++r)
          for (int sc = 0; sc < R; ++sc) {
            const int i = r * R + sc;
            d[i] = beta == 0.0f ? (float)f[r][sc] : (float)(beta * d[i] + f[r][sc]);
          }
      }
    }
  });
}

std::atomic<int> g_variant[3] = {{-1}, {-1}, {-1}};

int envVariant(const char* name) {
  const char* s = std::getenv(name);
  if (!s || !*s) return -1;
  if (!std::strcmp(s, "0") || !std::strcmp(s, "off") || !std::strcmp(s, "direct")) return 0;
  if (!std::strcmp(s, "2")) return 2;
  if (!std::strcmp(s, "4")) return 4;
  return -1;
}

}  // namespace

int winogradSetting(WinogradPass pass) {
  static const int fromEnv = envVariant("ALEXNET_CONV_WINOGRAD");
  const int v = g_variant[(int)pass].load(std::memory_order_relaxed);
  return v >= 0 ? v : fromEnv;
}

void setWinogradSetting(WinogradPass pass, int variant) { g_variant[(int)pass].store(variant); }

int winogradVariant(const ConvGeometry& g, WinogradPass pass) {
  if (!(g.r == g.s && (g.r == 3 || g.r == 5)) || g.strideH != 1 || g.strideW != 1 || g.padH != g.padW ||
      g.padH > g.r - 1)
    return 0;
  if (g.outH < 1 || g.outW < 1 || g.h < 1 || g.w < 1) return 0;
  const int set = winogradSetting(pass);
  if (g.r == 5) return set == 0 ? 0 : set > 0 ? 2 : (g.cg() >= 16 && g.kg() >= 16 ? 2 : 0);  // F(2x2, 5x5) only
  if (set >= 0) return set;
  // Automatic: F(4x4) (measured faster than F(2x2) and direct on conv3-5, docs/cpu-engine.md) where
  // the GEMMs are big enough to be worth the transforms: at least 16 channels per group in and out,
  // and enough tiles over the batch. Below 256 tiles of 4x4 (a batch under 16 on conv3-5's 13x13),
  // F(2x2) while it has 128 tiles (batch 3 and up there), below that im2col + GEMM: at batch 1 the
  // alpha^2 GEMMs of a few tiles each cost more than the direct GEMM (conv3: 5.0 ms against 1.9).
  if (g.cg() < 16 || g.kg() < 16) return 0;
  const auto tiles = [&](int64_t m) { return g.n * ((g.outH + m - 1) / m) * ((g.outW + m - 1) / m); };
  return tiles(4) >= 256 ? 4 : tiles(2) >= 128 ? 2 : 0;
}

void winogradFilterGrad(ThreadPool& pool, int variant, int r, const float* x, const float* dy, float* dw, float beta,
                        const WinogradShape& p) {
  if (r == 5) runFilter<2, 5>(pool, x, dy, dw, beta, p);
  else if (variant == 2) runFilter<2, 3>(pool, x, dy, dw, beta, p);
  else runFilter<4, 3>(pool, x, dy, dw, beta, p);
}

void winogradConv(ThreadPool& pool, int variant, int r, const float* x, const float* w, bool flipped,
                  const float* bias, float* y, const WinogradShape& p) {
  if (r == 5) run<2, 5>(pool, x, w, flipped, bias, y, p);
  else if (variant == 2) run<2, 3>(pool, x, w, flipped, bias, y, p);
  else run<4, 3>(pool, x, w, flipped, bias, y, p);
}

}  // namespace alexnet
