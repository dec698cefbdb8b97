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
// with -ffp-contract=off, so they round the same on every ISA path; the filter transform runs in double.
#include "winograd.h"

// The vector helpers are always inlined into one ISA's copy: no vector crosses a call boundary.
#pragma GCC diagnostic ignored "-Wpsabi"

#include <atomic>
#include <cstring>

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
  ALEXNET_INLINE static void out(const V* m, V* o) {  // A^T m
    o[0] = m[0] + m[1] + m[2];
    o[1] = m[1] - m[2] - m[3];
  }
  static void filter(const double* g, double* o) {  // G g
    o[0] = g[0];
    o[1] = 0.5 * (g[0] + g[1] + g[2]);
    o[2] = 0.5 * (g[0] - g[1] + g[2]);
    o[3] = g[2];
  }
};

template <>
struct Tf<4, 3> : InT<6> {
  static constexpr int kAlpha = 6;
  template <class V>
  ALEXNET_INLINE static void out(const V* m, V* o) {  // A^T m
    const V a = m[1] + m[2], b = m[1] - m[2], c = m[3] + m[4], d = m[3] - m[4];
    o[0] = m[0] + a + c;
    o[1] = b + 2.0f * d;
    o[2] = a + 4.0f * c;
    o[3] = b + 8.0f * d + m[5];
  }
  static void filter(const double* g, double* o) {  // G g
    o[0] = g[0] / 4;
    o[1] = -(g[0] + g[1] + g[2]) / 6;
    o[2] = -(g[0] - g[1] + g[2]) / 6;
    o[3] = (g[0] + 2 * g[1] + 4 * g[2]) / 24;
    o[4] = (g[0] - 2 * g[1] + 4 * g[2]) / 24;
    o[5] = g[2];
  }
};

template <>
struct Tf<2, 5> : InT<6> {
  static constexpr int kAlpha = 6;
  template <class V>
  ALEXNET_INLINE static void out(const V* m, V* o) {  // A^T m
    o[0] = m[0] + (m[1] + m[2]) + (m[3] + m[4]);
    o[1] = (m[1] - m[2]) + 2.0f * (m[3] - m[4]) + m[5];
  }
  static void filter(const double* g, double* o) {  // G g
    o[0] = g[0] / 4;
    o[1] = -(g[0] + g[1] + g[2] + g[3] + g[4]) / 6;
    o[2] = -(g[0] - g[1] + g[2] - g[3] + g[4]) / 6;
    o[3] = (g[0] + 2 * g[1] + 4 * g[2] + 8 * g[3] + 16 * g[4]) / 24;
    o[4] = (g[0] - 2 * g[1] + 4 * g[2] - 8 * g[3] + 16 * g[4]) / 24;
    o[5] = g[4];
  }
};

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
      const int64_t xiStride = tcPad * C;
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
ALEXNET_INLINE void outputTransformBody(const float* Mx, const WinogradShape* ps, const TileInfo* tiles, int64_t tc,
                                        int64_t tcPad, int64_t g, int64_t k0, int64_t k1, const float* bias, float* y) {
  typedef typename VecOf<L>::type Vec;
  constexpr int A = Tf<M, R>::kAlpha;
  const WinogradShape& p = *ps;
  const int64_t OHW = p.outH * p.outW, K = p.k;
  const int64_t xiStride = K * tcPad;
  alignas(64) float st[M * M][L];
  for (int64_t ko = k0; ko < k1; ++ko) {
    const float bv = bias ? bias[g * K + ko] : 0.0f;
    for (int64_t tb = 0; tb < tc; tb += L) {
      Vec m[A][A], trow[M][A];
      const float* src = Mx + ko * tcPad + tb;
      for (int a = 0; a < A; ++a)
        for (int b = 0; b < A; ++b) m[a][b] = vload<Vec>(src + (a * A + b) * xiStride);
      for (int b = 0; b < A; ++b) {
        Vec col[A], o[M];
        for (int a = 0; a < A; ++a) col[a] = m[a][b];
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

template <int M, int R, int L>
void inputTransform(const float* x, const WinogradShape* p, const TileInfo* tiles, int64_t tc, int64_t tcPad, int nr,
                    int64_t g, int64_t c0, int64_t c1, float* V) {
  dispatchIsa<inputTransformBody<M, R, L>>(x, p, tiles, tc, tcPad, nr, g, c0, c1, V);
}
template <int M, int R, int L>
void outputTransform(const float* Mx, const WinogradShape* p, const TileInfo* tiles, int64_t tc, int64_t tcPad,
                     int64_t g, int64_t k0, int64_t k1, const float* bias, float* y) {
  dispatchIsa<outputTransformBody<M, R, L>>(Mx, p, tiles, tc, tcPad, g, k0, k1, bias, y);
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

template <int M, int R>
void run(ThreadPool& pool, const float* x, const float* w, bool flipped, const float* bias, float* y,
         const WinogradShape& p) {
  constexpr int A = Tf<M, R>::kAlpha, A2 = A * A;
  const Isa isa = activeIsa();
  const int nr = gemmPanelWidth(isa), mr = gemmPanelHeight(isa);
  const int64_t C = p.c, K = p.k, G = p.groups;
  const int64_t apSize = gemmPackedASize(isa, K, C), kPad = (K + mr - 1) / mr * mr;
  // U = G f G^T for every (group, k, c), in double, into the packed-A panels of GEMM xi:
  // element (row k, column c) of panel k / mr at (k / mr) C mr + c mr + k % mr; rows past K zero.
  float* U = scratch(Scratch::Packed, (size_t)(G * A2 * apSize));
  pool.parallelFor(G * kPad, 2, [&](int64_t b, int64_t e) {
    for (int64_t gk = b; gk < e; ++gk) {
      const int64_t g = gk / kPad, ko = gk % kPad;
      float* dst0 = U + g * A2 * apSize + (ko / mr) * C * mr + ko % mr;
      for (int64_t ci = 0; ci < C; ++ci) {
        double u[A][A];
        if (ko >= K) {
          for (int a = 0; a < A; ++a)
            for (int b2 = 0; b2 < A; ++b2) u[a][b2] = 0.0;
        } else {
          double f[R][R];
          for (int r = 0; r < R; ++r)
            for (int s = 0; s < R; ++s)
              f[r][s] = flipped ? w[((g * C + ci) * K + ko) * R * R + (R - 1 - r) * R + (R - 1 - s)]
                                : w[((g * K + ko) * C + ci) * R * R + r * R + s];
          double t[A][R];
          for (int s = 0; s < R; ++s) {
            double col[R], o[A];
            for (int r = 0; r < R; ++r) col[r] = f[r][s];
            Tf<M, R>::filter(col, o);
            for (int a = 0; a < A; ++a) t[a][s] = o[a];
          }
          for (int a = 0; a < A; ++a) Tf<M, R>::filter(t[a], u[a]);
        }
        for (int a = 0; a < A; ++a)
          for (int b2 = 0; b2 < A; ++b2) dst0[(a * A + b2) * apSize + ci * mr] = (float)u[a][b2];
      }
    }
  });

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
    float* V = scratch(Scratch::Col, (size_t)(A2 * C * tcPad));
    float* Mx = scratch(Scratch::Gather, (size_t)(A2 * K * tcPad));
    c.parallelFor(C, 4, [&](int64_t c0, int64_t c1) {
      if (lanes == 16) inputTransform<M, R, 16>(x, &p, tiles, tc, tcPad, nr, g, c0, c1, V);
      else inputTransform<M, R, 8>(x, &p, tiles, tc, tcPad, nr, g, c0, c1, V);
    });
    for (int xi = 0; xi < A2; ++xi)
      sgemmPackedB(c, isa, false, K, tcPad, C, 1.0f, nullptr, C, V + xi * tcPad * C, 0.0f, Mx + xi * K * tcPad, tcPad,
                   U + (g * A2 + xi) * apSize);
    c.parallelFor(K, 4, [&](int64_t k0, int64_t k1) {
      if (lanes == 16) outputTransform<M, R, 16>(Mx, &p, tiles, tc, tcPad, g, k0, k1, bias, y);
      else outputTransform<M, R, 8>(Mx, &p, tiles, tc, tcPad, g, k0, k1, bias, y);
    });
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

std::atomic<int> g_variant[2] = {{-1}, {-1}};

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
  // the GEMMs are big enough to be worth the transforms.
  return g.cg() >= 16 && g.kg() >= 16 ? 4 : 0;
}

void winogradConv(ThreadPool& pool, int variant, int r, const float* x, const float* w, bool flipped,
                  const float* bias, float* y, const WinogradShape& p) {
  if (r == 5) run<2, 5>(pool, x, w, flipped, bias, y, p);
  else if (variant == 2) run<2, 3>(pool, x, w, flipped, bias, y, p);
  else run<4, 3>(pool, x, w, flipped, bias, y, p);
}

}  // namespace alexnet
