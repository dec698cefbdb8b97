// The Winograd routes of conv.cpp (winogradForward, winogradBackwardFilter: stride 1 by winograd.cpp,
// or strided by space to depth, below).
//
// Strided convolutions as stride-1 3x3 ones, for Winograd (conv1 of the paper's net: 11x11, stride 4,
// 3 channels, where im2col + GEMM reaches under half of the machine's peak).
//
// Space to depth: with stride s, split the input into its s x s phases,
//   x'[n][(c s + a) s + b][i][j] = x[n][c][s i + a - pad][s j + b - pad]   (0 outside the image),
// and the r x r kernel into r' x r' blocks of s x s taps, r' = ceil(r / s),
//   w'[k][(c s + a) s + b][p][q] = w[k][c][s p + a][s q + b]               (0 past r - 1).
// Then y = w * x (stride s, padding pad) is exactly the stride-1, unpadded r' x r' convolution of x'
// (c s^2 channels, outH + r' - 1 rows) with w': every product of the original sum appears once, the
// added taps multiply zeros. For conv1, s = 4, r' = 3 and 48 channels: F(4x4, 3x3) applies, and its 4x
// fewer multiplies more than pay for the (12 / 11)^2 = 1.19x of zero taps. The filter gradient is
// the Winograd filter gradient of x' and dy, read back through the same map (the zero taps' gradient
// is dropped: those weights do not exist).
//
// Samples go in chunks (x' of kChunk samples at a time, 10 MiB for conv1), so the scratch stays small;
// the filter gradient sums the chunks' partial gradients in order, whatever the thread count.
#include <algorithm>
#include <cstring>

#include "common.h"
#include "winograd.h"

namespace alexnet {

namespace {

constexpr int64_t kChunk = 16;

/** The stride-1 geometry of x' (n samples), or false when space to depth does not apply to g. */
bool transformed(const ConvGeometry& g, int64_t n, ConvGeometry& t) {
  const int64_t s = g.strideH;
  if (g.groups != 1 || g.strideW != s || s < 2 || s > 4 || g.r != g.s || g.padH != g.padW) return false;
  const int64_t rp = (g.r + s - 1) / s;
  if (rp != 3 || g.outH < 1 || g.outW < 1) return false;
  t = ConvGeometry{n, g.c * s * s, g.outH + rp - 1, g.outW + rp - 1, g.k, rp, rp, 1, 1, 0, 0, 1, g.outH, g.outW};
  return true;
}

/** x' of samples [n0, n0 + cnt) of x, as the header says. */
void spaceToDepth(ThreadPool& pool, const float* x, const ConvGeometry& g, const ConvGeometry& t, int64_t n0,
                  int64_t cnt, float* xs) {
  const int64_t s = g.strideH, pad = g.padH, planes = cnt * t.c, hw = t.h * t.w;
  pool.parallelFor(planes, 4, [&](int64_t b, int64_t e) {
    for (int64_t pl = b; pl < e; ++pl) {
      const int64_t nn = pl / t.c, ch = pl % t.c, c = ch / (s * s), a = (ch / s) % s, bb = ch % s;
      const float* src = x + ((n0 + nn) * g.c + c) * g.h * g.w;
      float* dst = xs + pl * hw;
      const int64_t j0 = std::min(t.w, std::max<int64_t>(0, (pad - bb + s - 1) / s));
      const int64_t j1 = std::max(j0, std::min(t.w, (g.w - 1 + pad - bb) / s + 1));
      for (int64_t i = 0; i < t.h; ++i) {
        const int64_t row = s * i + a - pad;
        float* d = dst + i * t.w;
        if (row < 0 || row >= g.h) {
          std::memset(d, 0, (size_t)t.w * sizeof(float));
          continue;
        }
        // columns s j + bb - pad inside the image: j in [j0, j1)
        const float* sr = src + row * g.w + bb - pad;
        for (int64_t j = 0; j < j0; ++j) d[j] = 0.0f;
        for (int64_t j = j0; j < j1; ++j) d[j] = sr[s * j];
        for (int64_t j = j1; j < t.w; ++j) d[j] = 0.0f;
      }
    }
  });
}

/** Index into w [k, c, r, r] of w'[k][ch][p][q], or -1 for a zero tap. */
inline int64_t tapOf(const ConvGeometry& g, const ConvGeometry& t, int64_t k, int64_t ch, int64_t p, int64_t q) {
  const int64_t s = g.strideH, c = ch / (s * s), kh = s * p + (ch / s) % s, kw = s * q + ch % s;
  if (kh >= g.r || kw >= g.s) return -1;
  return ((k * g.c + c) * g.r + kh) * g.s + kw;
}

WinogradShape shapeOf(const ConvGeometry& t) {
  return WinogradShape{t.n, t.c, t.k, 1, t.h, t.w, t.outH, t.outW, 0, t.c, t.k};
}

}  // namespace

int spaceToDepthVariant(const ConvGeometry& g, WinogradPass pass) {
  ConvGeometry t;
  if (!transformed(g, std::min(g.n, kChunk), t)) return 0;
  return winogradVariant(t, pass);
}

void spaceToDepthConv(ThreadPool& pool, int variant, const float* x, const float* w, const float* bias, float* y,
                      const ConvGeometry& g) {
  ConvGeometry t;
  transformed(g, std::min(g.n, kChunk), t);
  float* ws = scratch(Scratch::SpaceToDepthW, (size_t)t.wSize());
  for (int64_t k = 0; k < t.k; ++k)
    for (int64_t ch = 0; ch < t.c; ++ch)
      for (int64_t p = 0; p < t.r; ++p)
        for (int64_t q = 0; q < t.s; ++q) {
          const int64_t i = tapOf(g, t, k, ch, p, q);
          ws[((k * t.c + ch) * t.r + p) * t.s + q] = i < 0 ? 0.0f : w[i];
        }
  float* xs = scratch(Scratch::SpaceToDepthX, (size_t)t.xSize());
  for (int64_t n0 = 0; n0 < g.n; n0 += kChunk) {
    t.n = std::min(kChunk, g.n - n0);
    spaceToDepth(pool, x, g, t, n0, t.n, xs);
    winogradConv(pool, variant, (int)t.r, xs, ws, false, bias, y + n0 * g.k * g.outH * g.outW, shapeOf(t));
  }
}

void spaceToDepthFilterGrad(ThreadPool& pool, int variant, const float* x, const float* dy, float* dw, float beta,
                            const ConvGeometry& g) {
  ConvGeometry t;
  transformed(g, std::min(g.n, kChunk), t);
  float* dws = scratch(Scratch::SpaceToDepthW, (size_t)t.wSize());
  float* xs = scratch(Scratch::SpaceToDepthX, (size_t)t.xSize());
  for (int64_t n0 = 0; n0 < g.n; n0 += kChunk) {
    t.n = std::min(kChunk, g.n - n0);
    spaceToDepth(pool, x, g, t, n0, t.n, xs);
    winogradFilterGrad(pool, variant, (int)t.r, xs, dy + n0 * g.k * g.outH * g.outW, dws, n0 == 0 ? 0.0f : 1.0f,
                       shapeOf(t));
  }
  // dw = beta dw + dw' read through the map (every tap of w is one tap of w').
  for (int64_t k = 0; k < t.k; ++k)
    for (int64_t ch = 0; ch < t.c; ++ch)
      for (int64_t p = 0; p < t.r; ++p)
        for (int64_t q = 0; q < t.s; ++q) {
          const int64_t i = tapOf(g, t, k, ch, p, q);
          if (i < 0) continue;
          const float v = dws[((k * t.c + ch) * t.r + p) * t.s + q];
          dw[i] = beta == 0.0f ? v : beta * dw[i] + v;
        }
}

namespace {
WinogradShape stride1Shape(const ConvGeometry& g) {
  return WinogradShape{g.n, g.cg(), g.kg(), g.groups, g.h, g.w, g.outH, g.outW, g.padH, g.c, g.k};
}
}  // namespace

bool winogradForward(ThreadPool& pool, const float* x, const float* w, const float* bias, float* y, const ConvGeometry& g) {
  if (const int v = winogradVariant(g, WinogradPass::Forward)) {
    winogradConv(pool, v, (int)g.r, x, w, false, bias, y, stride1Shape(g));
  } else if (const int v2 = spaceToDepthVariant(g, WinogradPass::Forward)) {
    spaceToDepthConv(pool, v2, x, w, bias, y, g);
  } else {
    return false;
  }
  return true;
}

bool winogradBackwardFilter(ThreadPool& pool, const float* x, const float* dy, float* dw, float beta, const ConvGeometry& g) {
  if (const int v = winogradVariant(g, WinogradPass::BackwardFilter)) {
    winogradFilterGrad(pool, v, (int)g.r, x, dy, dw, beta, stride1Shape(g));
  } else if (const int v2 = spaceToDepthVariant(g, WinogradPass::BackwardFilter)) {
    spaceToDepthFilterGrad(pool, v2, x, dy, dw, beta, g);
  } else {
    return false;
  }
  return true;
}

}  // namespace alexnet
