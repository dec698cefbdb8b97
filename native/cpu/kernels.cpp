#include "kernels.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#include "../common/philox.h"
#include "gemm.h"
#include "isa.h"

#define ALEXNET_INLINE inline __attribute__((always_inline))

// Data-movement loops (im2col, col2im, panel packing) get AVX-512 / AVX2 clones picked by the loader
// (they are bit-exact copies and sums in any ISA, so ALEXNET_CPU_ISA does not need to reach them).
#if ALEXNET_X86 && defined(__linux__) && !defined(__clang__)
#define ALEXNET_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define ALEXNET_CLONES
#endif

namespace alexnet {

// ---- workspace ----

Workspace::~Workspace() { release(); }

float* Workspace::get(int slot, size_t n) {
  if (n == 0) n = 1;
  if (n > cap_[slot]) {
    std::free(p_[slot]);
    p_[slot] = nullptr;
    cap_[slot] = 0;
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    p_[slot] = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (!p_[slot]) throw std::bad_alloc();
    cap_[slot] = n;
  }
  return p_[slot];
}

void Workspace::release() {
  for (int i = 0; i < 4; ++i) { std::free(p_[i]); p_[i] = nullptr; cap_[i] = 0; }
}

namespace {
constexpr int64_t kElementwiseGrain = 1 << 16;  // below this an op is not worth waking a worker
}

// ---- data movement ----

void fillBytes(Ctx& ctx, void* dst, int64_t n, int elemBytes, const void* pattern) {
  uint8_t* d = static_cast<uint8_t*>(dst);
  ctx.pool.parallelFor(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    if (elemBytes == 1) { std::memset(d + b, *static_cast<const uint8_t*>(pattern), (size_t)(e - b)); return; }
    if (elemBytes == 4) {
      uint32_t v;
      std::memcpy(&v, pattern, 4);
      if (v == 0) { std::memset(d + b * 4, 0, (size_t)(e - b) * 4); return; }
      uint32_t* p = reinterpret_cast<uint32_t*>(d) + b;
      for (int64_t i = 0; i < e - b; ++i) p[i] = v;
      return;
    }
    for (int64_t i = b; i < e; ++i) std::memcpy(d + i * elemBytes, pattern, (size_t)elemBytes);
  });
}

void randomUniform(Ctx& ctx, float* out, int64_t n, uint64_t seed, uint64_t offset, double a, double b) {
  ctx.pool.parallelFor(n, 1 << 14, [&](int64_t s, int64_t e) {
    uint64_t block = ~(uint64_t)0;
    PhiloxWords w{};
    for (int64_t i = s; i < e; ++i) {
      uint64_t gi = offset + (uint64_t)i;
      if ((gi >> 2) != block) { block = gi >> 2; w = philoxBlock(seed, block); }
      double u = (double)(w.w[gi & 3] >> 8) * (1.0 / 16777216.0);
      out[i] = (float)(a + (b - a) * u);
    }
  });
}

void randomNormal(Ctx& ctx, float* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double sd) {
  ctx.pool.parallelFor(n, 1 << 12, [&](int64_t s, int64_t e) {
    uint64_t block = ~(uint64_t)0;
    double z[4] = {0, 0, 0, 0};
    for (int64_t i = s; i < e; ++i) {
      uint64_t gi = offset + (uint64_t)i;
      if ((gi >> 2) != block) { block = gi >> 2; philoxNormalBlock(philoxBlock(seed, block), z); }
      out[i] = (float)(mean + sd * z[gi & 3]);
    }
  });
}

// Zero-size calls return before any loop: the work of every kernel is proportional to the elements
// it reads or writes, never to a count that multiplies into zero (n = 2^30 samples of 0 channels).

void channelCopy(Ctx& ctx, const uint8_t* src, uint8_t* dst, int64_t n, int64_t hw, int64_t srcC, int64_t srcOff,
                 int64_t dstC, int64_t dstOff, int64_t count, int elemBytes) {
  if (n == 0 || hw == 0 || count == 0) return;
  const size_t plane = (size_t)(hw * elemBytes);
  ctx.pool.parallelFor(n * count, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(hw, 1)),
                       [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      int64_t i = t / count, j = t % count;
      std::memmove(dst + (size_t)(i * dstC + dstOff + j) * plane, src + (size_t)(i * srcC + srcOff + j) * plane, plane);
    }
  });
}

// ---- elementwise ----

void axpy(Ctx& ctx, float alpha, const float* x, float* y, int64_t n) {
  ctx.pool.parallelFor(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] += alpha * x[i];
  });
}

void scale(Ctx& ctx, float alpha, float* x, int64_t n) {
  ctx.pool.parallelFor(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) x[i] *= alpha;
  });
}

void add(Ctx& ctx, const float* a, const float* b, float* out, int64_t n) {
  ctx.pool.parallelFor(n, kElementwiseGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) out[i] = a[i] + b[i];
  });
}

void biasAdd(Ctx& ctx, float* y, const float* bias, int64_t n, int64_t c, int64_t hw) {
  if (n == 0 || c == 0 || hw == 0) return;
  ctx.pool.parallelFor(n * c, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(hw, 1)),
                       [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      float v = bias[t % c], *p = y + t * hw;
      for (int64_t q = 0; q < hw; ++q) p[q] += v;
    }
  });
}

void biasGrad(Ctx& ctx, const float* dy, float* db, int64_t n, int64_t c, int64_t hw, float beta) {
  if (n == 0 || hw == 0) {  // an empty sum: db = beta db
    for (int64_t j = 0; j < c; ++j) db[j] = beta == 0.0f ? 0.0f : beta * db[j];
    return;
  }
  ctx.pool.parallelFor(c, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(n * hw, 1)),
                       [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) {
      double s = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        const float* p = dy + (i * c + j) * hw;
        float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // float lanes over one plane, double across planes
        int64_t q = 0;
        for (; q + 8 <= hw; q += 8)
          for (int l = 0; l < 8; ++l) part[l] += p[q + l];
        double ps = 0.0;
        for (int l = 0; l < 8; ++l) ps += part[l];
        for (; q < hw; ++q) ps += p[q];
        s += ps;
      }
      db[j] = beta == 0.0f ? (float)s : (float)((double)beta * db[j] + s);
    }
  });
}

// NaN propagates, as in PyTorch: relu(NaN) = NaN; the gradient is 0 only where y <= 0, so it passes
// where y is NaN (torch's threshold_backward).
void reluForward(Ctx& ctx, const float* x, float* y, int64_t n) {
  ctx.pool.parallelFor(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = x[i] > 0.0f ? x[i] : (x[i] != x[i] ? x[i] : 0.0f);
  });
}

void reluBackward(Ctx& ctx, const float* y, const float* dy, float* dx, int64_t n) {
  ctx.pool.parallelFor(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dx[i] = y[i] <= 0.0f ? 0.0f : dy[i];
  });
}

// ---- convolution ----

namespace {

/** First output index o with o * stride + off >= 0, and one past the last with o * stride + off < limit. */
inline void validRange(int64_t off, int64_t stride, int64_t limit, int64_t outLen, int64_t* lo, int64_t* hi) {
  int64_t a = off >= 0 ? 0 : (-off + stride - 1) / stride;
  int64_t b = limit - 1 - off < 0 ? 0 : (limit - 1 - off) / stride + 1;
  *lo = std::min(a, outLen);
  *hi = std::max(*lo, std::min(b, outLen));
}

int64_t envInt(const char* name, int64_t dflt) {
  const char* s = std::getenv(name);
  return s && *s && std::atoll(s) > 0 ? (int64_t)std::atoll(s) : dflt;
}

/**
 * Samples per GEMM: enough columns (nb outH outW) for an efficient GEMM, but an im2col buffer small
 * enough to stay in cache between im2col writing it and the GEMM reading it.
 */
int64_t convBatch(const ConvGeometry& g, bool filterGradient = false) {
  static const int64_t targetCols = envInt("ALEXNET_CONV_COLS", 1024);
  static const int64_t colBytesCapDefault = envInt("ALEXNET_CONV_COLBYTES", 4 << 20);
  // The filter gradient's GEMM has k = columns: longer chunks mean fewer passes over dw and fewer
  // parallel regions (conv1: one 363 x 3025 chunk per sample otherwise).
  const int64_t colBytesCap = filterGradient ? 3 * colBytesCapDefault : colBytesCapDefault;
  const int64_t P = std::max<int64_t>(g.plane(), 1);
  int64_t nb = (targetCols + P - 1) / P;
  const int64_t perSample = std::max<int64_t>(g.colRows(), g.kg()) * P * 4;
  nb = std::min(nb, std::max<int64_t>(1, colBytesCap / std::max<int64_t>(perSample, 1)));
  return std::max<int64_t>(1, std::min(nb, g.n));
}

/**
 * Writes src[0, len) as columns q0.. of row `row` of a K-row matrix packed in nr-column panels
 * (the GEMM's pre-packed B layout: element (row, q) at dst[(q / nr) K nr + row nr + q % nr]).
 */
inline void rowToPanels(const float* src, int64_t len, int64_t q0, int64_t row, int64_t K, int nr, float* dst) {
  int64_t i = 0;
  while (i < len) {
    const int64_t q = q0 + i, panel = q / nr, off = q % nr;
    const int64_t run = std::min<int64_t>(nr - off, len - i);
    float* d = dst + panel * K * nr + row * nr + off;
    const float* sp = src + i;
    for (int64_t t = 0; t < run; ++t) d[t] = sp[t];
    i += run;
  }
}

/**
 * The spatial half of im2col, computed once per op: map[(r S + s) P + oh outW + ow] = ih W + iw of
 * the input pixel under kernel tap (r, s) at output (oh, ow), or -1 in the padding. Every im2col row
 * is then one gather through it (vectorised: masked gathers on AVX-512/AVX2).
 */
const int32_t* spatialMap(Ctx& ctx, const ConvGeometry& g) {
  const int64_t P = g.plane();
  int32_t* map = reinterpret_cast<int32_t*>(ctx.ws.get(3, (size_t)(g.r * g.s * P)));
  for (int64_t r = 0; r < g.r; ++r)
    for (int64_t s = 0; s < g.s; ++s) {
      int32_t* m = map + (r * g.s + s) * P;
      for (int64_t oh = 0; oh < g.outH; ++oh) {
        const int64_t ih = oh * g.strideH - g.padH + r;
        for (int64_t ow = 0; ow < g.outW; ++ow) {
          const int64_t iw = ow * g.strideW - g.padW + s;
          m[oh * g.outW + ow] = (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w) ? (int32_t)(ih * g.w + iw) : -1;
        }
      }
    }
  return map;
}

ALEXNET_CLONES void im2colPanelsGatherTask(const float* x, const int32_t* map, const ConvGeometry& g, int64_t n0,
                                     int64_t cnt, int64_t grp, int nr, float* dst, int64_t b, int64_t e) {
  const int64_t P = g.plane(), L = cnt * P, rows = g.colRows(), RS = g.r * g.s;
  const int64_t Lpad = (L + nr - 1) / nr * nr;
  for (int64_t t = b; t < e; ++t) {
    const int64_t row = t / cnt, j = t % cnt;
    const int64_t c = row / RS, rs = row % RS;
    const float* xc = x + ((n0 + j) * g.c + grp * g.cg() + c) * g.h * g.w;
    const int32_t* mp = map + rs * P;
    for (int64_t i = 0; i < P;) {
      const int64_t q = j * P + i, off = q % nr;
      const int64_t run = std::min<int64_t>(nr - off, P - i);
      float* __restrict d = dst + (q / nr) * rows * nr + row * nr + off;
      const int32_t* __restrict mr = mp + i;
      // Scalar on purpose: AVX-512 gathers measured slower on Zen 5 than this predictable branch.
      for (int64_t u = 0; u < run; ++u) { const int32_t m = mr[u]; d[u] = m >= 0 ? xc[m] : 0.0f; }
      i += run;
    }
    if (j == cnt - 1 && Lpad > L) {
      float* z = dst + (L / nr) * rows * nr + row * nr + L % nr;
      std::memset(z, 0, (size_t)(Lpad - L) * sizeof(float));
    }
  }
}

/**
 * im2col straight into the GEMM's packed-B panels: B = col [rows, L], row (c r s), column (j p) =
 * x[n0 + j, grp cg + c, oh sh - ph + r, ow sw - pw + s]; columns past L are zero.
 */
/**
 * im2col straight into the GEMM's packed-B panels: B = col [rows, L], row (c r s), column (j p) =
 * x[n0 + j, grp cg + c, oh sh - ph + r, ow sw - pw + s] (0 in the padding); columns past L are zero.
 * Element (row, q) lands at dst[(q / nr) rows nr + row nr + q % nr]. Each task is one (row, sample):
 * per output row, a zero run, a copy (contiguous when the stride is 1) and a zero run, split where
 * the output row crosses a panel boundary.
 */
ALEXNET_CLONES void im2colPanelsTask(const float* x, const ConvGeometry& g, int64_t n0, int64_t cnt, int64_t grp,
                                     int nr, float* dst, int64_t b, int64_t e) {
  const int64_t P = g.plane(), L = cnt * P, rows = g.colRows(), RS = g.r * g.s, OW = g.outW, sw = g.strideW;
  const int64_t Lpad = (L + nr - 1) / nr * nr;
  for (int64_t t = b; t < e; ++t) {
    const int64_t row = t / cnt, j = t % cnt;
    const int64_t c = row / RS, r = (row / g.s) % g.r, s = row % g.s;
    const float* xc = x + ((n0 + j) * g.c + grp * g.cg() + c) * g.h * g.w;
    int64_t ow0, ow1;
    validRange(s - g.padW, sw, g.w, OW, &ow0, &ow1);
    for (int64_t oh = 0; oh < g.outH; ++oh) {
      const int64_t ih = oh * g.strideH - g.padH + r;
      const bool rowValid = ih >= 0 && ih < g.h;
      const float* src = xc + ih * g.w + s - g.padW;  // src[ow sw] is the input under output (oh, ow)
      const int64_t q0 = j * P + oh * OW;
      for (int64_t a = 0; a < OW;) {
        const int64_t q = q0 + a, off = q % nr;
        const int64_t bEnd = std::min<int64_t>(OW, a + (nr - off));
        float* __restrict d = dst + (q / nr) * rows * nr + row * nr + off - a;  // d[ow] for ow in [a, bEnd)
        if (!rowValid) {
          for (int64_t ow = a; ow < bEnd; ++ow) d[ow] = 0.0f;
        } else {
          const int64_t ca = std::max(a, ow0), cb = std::min(bEnd, ow1);
          for (int64_t ow = a; ow < std::min(bEnd, ca); ++ow) d[ow] = 0.0f;
          if (sw == 1) {
            for (int64_t ow = ca; ow < cb; ++ow) d[ow] = src[ow];
          } else {
            for (int64_t ow = ca; ow < cb; ++ow) d[ow] = src[ow * sw];
          }
          for (int64_t ow = std::max(a, cb); ow < bEnd; ++ow) d[ow] = 0.0f;
        }
        a = bEnd;
      }
    }
    if (j == cnt - 1 && Lpad > L) {
      float* z = dst + (L / nr) * rows * nr + row * nr + L % nr;
      std::memset(z, 0, (size_t)(Lpad - L) * sizeof(float));
    }
  }
}

/** Which im2col measured faster: copies of output-row segments for long rows, the map gather for short. */
bool im2colBySegments(const ConvGeometry& g) { return g.outW >= 24; }

void im2colPanels(Ctx& ctx, const float* x, const int32_t* map, const ConvGeometry& g, int64_t n0, int64_t cnt,
                  int64_t grp, int nr, float* dst) {
  ctx.pool.parallelFor(g.colRows() * cnt, 4, [&](int64_t b, int64_t e) {
    if (map) im2colPanelsGatherTask(x, map, g, n0, cnt, grp, nr, dst, b, e);
    else im2colPanelsTask(x, g, n0, cnt, grp, nr, dst, b, e);
  });
}

/**
 * im2col transposed into packed-B panels for the filter gradient: op(B) = col^T [L, rows], so panel
 * q holds rows [q nr, q nr + nr) of col, element (l, row) at dst[q L nr + l nr + row % nr].
 */
/** Per im2col row (c r s): the input offset c H W + r W + s and the tap (r, s); rows past the end never valid. */
struct ColRows {
  std::vector<int32_t> off, r, s;
};

ColRows colRowTable(const ConvGeometry& g, int nr) {
  const int64_t rows = g.colRows(), rowsPad = (rows + nr - 1) / nr * nr, RS = g.r * g.s;
  ColRows t;
  t.off.assign((size_t)rowsPad, 0);
  t.r.assign((size_t)rowsPad, -(1 << 30));
  t.s.assign((size_t)rowsPad, -(1 << 30));
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t c = row / RS, r = (row / g.s) % g.r, s = row % g.s;
    t.off[(size_t)row] = (int32_t)(c * g.h * g.w + r * g.w + s);
    t.r[(size_t)row] = (int32_t)r;
    t.s[(size_t)row] = (int32_t)s;
  }
  return t;
}

/**
 * im2col transposed, generated k-major straight into packed-B panels for the filter gradient:
 * op(B) = col^T [L, rows]; panel q holds rows [q nr, q nr + nr), element (l, row) at
 * dst[q L nr + l nr + row % nr]. Each output position writes one contiguous run of nr floats.
 */
__attribute__((optimize("no-tree-vectorize")))  // scalar loads beat AVX-512 gathers here
void im2colPanelsTTask(const float* x, const ColRows& tab, const ConvGeometry& g, int64_t n0, int64_t cnt,
                       int64_t grp, int nr, float* dst, int64_t b, int64_t e) {
  const int64_t P = g.plane(), L = cnt * P, rows = g.colRows();
  for (int64_t t = b; t < e; ++t) {
    const int64_t q = t / cnt, j = t % cnt;
    const float* xs = x + ((n0 + j) * g.c + grp * g.cg()) * g.h * g.w;
    const int32_t* off = tab.off.data() + q * nr;
    const int32_t* tr = tab.r.data() + q * nr;
    const int32_t* ts = tab.s.data() + q * nr;
    const bool fullPanel = q * nr + nr <= rows;
    float* d = dst + q * L * nr + j * P * nr;
    for (int64_t oh = 0; oh < g.outH; ++oh) {
      const int64_t hb = oh * g.strideH - g.padH;
      for (int64_t ow = 0; ow < g.outW; ++ow, d += nr) {
        const int64_t wb = ow * g.strideW - g.padW;
        const float* xb = xs + hb * g.w + wb;
        if (fullPanel && hb >= 0 && hb + g.r <= g.h && wb >= 0 && wb + g.s <= g.w) {
          for (int i = 0; i < nr; ++i) d[i] = xb[off[i]];
        } else {
          for (int i = 0; i < nr; ++i) {
            const int64_t ih = hb + tr[i], iw = wb + ts[i];
            d[i] = (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w) ? xb[off[i]] : 0.0f;
          }
        }
      }
    }
  }
}

void im2colPanelsT(Ctx& ctx, const float* x, const ColRows& tab, const ConvGeometry& g, int64_t n0, int64_t cnt,
                   int64_t grp, int nr, float* dst) {
  const int64_t panels = (g.colRows() + nr - 1) / nr;
  ctx.pool.parallelFor(panels * cnt, 1, [&](int64_t b, int64_t e) {
    im2colPanelsTTask(x, tab, g, n0, cnt, grp, nr, dst, b, e);
  });
}

/** dy of one group gathered straight into packed-B panels: B [kg, L], (kk, j p) = dy[n0 + j, grp kg + kk, p]. */
void dyPanels(Ctx& ctx, const float* dy, const ConvGeometry& g, int64_t n0, int64_t cnt, int64_t grp, int nr,
              float* dst) {
  const int64_t P = g.plane(), L = cnt * P, kg = g.kg();
  const int64_t Lpad = (L + nr - 1) / nr * nr;
  ctx.pool.parallelFor(kg * cnt, 8, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t kk = t / cnt, j = t % cnt;
      rowToPanels(dy + ((n0 + j) * g.k + grp * kg + kk) * P, P, j * P, kk, kg, nr, dst);
      if (j == cnt - 1 && Lpad > L) {
        float* z = dst + (L / nr) * kg * nr + kk * nr + L % nr;
        std::memset(z, 0, (size_t)(Lpad - L) * sizeof(float));
      }
    }
  });
}

/** dx[n0 + j, grp cg + c] = sum over (r, s) of col rows scattered back (dx planes overwritten). */
ALEXNET_CLONES void col2imTask(const float* col, const ConvGeometry& g, int64_t n0, int64_t cnt, int64_t grp,
                               float* dx, int64_t b, int64_t e) {
  const int64_t P = g.plane(), L = cnt * P, R = g.r, S = g.s, cg = g.cg();
  {
    for (int64_t t = b; t < e; ++t) {
      const int64_t c = t / cnt, j = t % cnt;
      float* xp = dx + ((n0 + j) * g.c + grp * cg + c) * g.h * g.w;
      std::memset(xp, 0, (size_t)(g.h * g.w) * sizeof(float));
      for (int64_t r = 0; r < R; ++r)
        for (int64_t s = 0; s < S; ++s) {
          const float* d = col + ((c * R + r) * S + s) * L + j * P;
          int64_t ow0, ow1;
          validRange(s - g.padW, g.strideW, g.w, g.outW, &ow0, &ow1);
          for (int64_t oh = 0; oh < g.outH; ++oh) {
            const int64_t ih = oh * g.strideH - g.padH + r;
            if (ih < 0 || ih >= g.h) continue;
            float* xr = xp + ih * g.w + s - g.padW;
            const float* dr = d + oh * g.outW;
            if (g.strideW == 1) {
              for (int64_t ow = ow0; ow < ow1; ++ow) xr[ow] += dr[ow];
            } else {
              const int64_t sw = g.strideW;
              for (int64_t ow = ow0; ow < ow1; ++ow) xr[ow * sw] += dr[ow];
            }
          }
        }
    }
  }
}

void col2im(Ctx& ctx, const float* col, const ConvGeometry& g, int64_t n0, int64_t cnt, int64_t grp, float* dx) {
  ctx.pool.parallelFor(g.cg() * cnt, 1, [&](int64_t b, int64_t e) { col2imTask(col, g, n0, cnt, grp, dx, b, e); });
}

/** tmp [kg, cnt * P] <-> y[n0 + j, grp kg + kk, :]; bias added on the way out when given. */
void gatherGroup(Ctx& ctx, const float* y, const ConvGeometry& g, int64_t n0, int64_t cnt, int64_t grp, float* tmp) {
  const int64_t P = g.plane(), L = cnt * P, kg = g.kg();
  ctx.pool.parallelFor(kg * cnt, 8, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t kk = t / cnt, j = t % cnt;
      std::memcpy(tmp + kk * L + j * P, y + ((n0 + j) * g.k + grp * kg + kk) * P, (size_t)P * sizeof(float));
    }
  });
}

void scatterGroup(Ctx& ctx, const float* tmp, const float* bias, const ConvGeometry& g, int64_t n0, int64_t cnt,
                  int64_t grp, float* y) {
  const int64_t P = g.plane(), L = cnt * P, kg = g.kg();
  ctx.pool.parallelFor(kg * cnt, 8, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t kk = t / cnt, j = t % cnt;
      const float* s = tmp + kk * L + j * P;
      float* d = y + ((n0 + j) * g.k + grp * kg + kk) * P;
      if (bias) {
        const float bv = bias[grp * kg + kk];
        for (int64_t p = 0; p < P; ++p) d[p] = s[p] + bv;
      } else {
        std::memcpy(d, s, (size_t)P * sizeof(float));
      }
    }
  });
}

}  // namespace

namespace {
/** A pool of one: helpers given it run inline on the calling thread. */
ThreadPool& serialPool() {
  static ThreadPool pool;
  return pool;
}
/** Each thread's own im2col / GEMM scratch for the chunk-per-thread convolutions. */
thread_local Workspace tlsConvWs;

/**
 * Whether to give each thread whole chunks (im2col, GEMM, scatter on its own, data in its own L2,
 * no barrier between the three) rather than parallelise inside each step: when there are enough
 * chunks to share out.
 */
bool chunkPerThread(const Ctx& ctx, int64_t tasks) {
  static const bool enabled = envInt("ALEXNET_CONV_CHUNK_PER_THREAD", 1) == 1;
  return enabled && ctx.pool.size() > 1 && tasks >= 4 * (int64_t)ctx.pool.size();
}
}  // namespace

void conv2dForward(Ctx& ctx, const float* x, const float* w, const float* bias, float* y, const ConvGeometry& g) {
  const int64_t P = g.plane(), rows = g.colRows(), kg = g.kg();
  if (g.ySize() == 0) return;
  const Isa isa = activeIsa();
  const int nr = gemmPanelWidth(isa);
  const int64_t nb = convBatch(g);
  const int64_t Lmax = (nb * P + nr - 1) / nr * nr;
  const int32_t* map = im2colBySegments(g) ? nullptr : spatialMap(ctx, g);
  // The weights are A of every chunk's GEMM: pack them once per op.
  const int64_t apSize = gemmPackedASize(isa, kg, rows);
  float* wp = ctx.ws.get(2, (size_t)(apSize * g.groups));
  for (int64_t grp = 0; grp < g.groups; ++grp)
    gemmPackA(isa, false, w + grp * kg * rows, rows, kg, rows, wp + grp * apSize);
  // One chunk of nb samples, one group: im2col, GEMM, scatter (+ bias) on the pool `c` gives.
  auto chunk = [&](Ctx& c, int64_t n0, int64_t grp, float* col, float* tmp) {
    const int64_t cnt = std::min(nb, g.n - n0), L = cnt * P;
    const float* wg = w + grp * kg * rows;
    const float* wpg = wp + grp * apSize;
    im2colPanels(c, x, map, g, n0, cnt, grp, nr, col);
    if (cnt == 1) {
      float* out = y + (n0 * g.k + grp * kg) * P;
      sgemmPackedB(c.pool, isa, false, kg, P, rows, 1.0f, wg, rows, col, 0.0f, out, P, wpg);
      if (bias) biasAdd(c, out, bias + grp * kg, 1, kg, P);
    } else {
      sgemmPackedB(c.pool, isa, false, kg, L, rows, 1.0f, wg, rows, col, 0.0f, tmp, L, wpg);
      scatterGroup(c, tmp, bias, g, n0, cnt, grp, y);
    }
  };
  const int64_t chunks = (g.n + nb - 1) / nb, tasks = chunks * g.groups;
  if (chunkPerThread(ctx, tasks)) {
    ctx.pool.forChunks(tasks, 1, [&](int64_t t0, int64_t t1) {
      Ctx local{serialPool(), tlsConvWs};
      float* col = tlsConvWs.get(0, (size_t)(rows * Lmax));
      float* tmp = nb > 1 ? tlsConvWs.get(1, (size_t)(kg * nb * P)) : nullptr;
      for (int64_t t = t0; t < t1; ++t) chunk(local, (t / g.groups) * nb, t % g.groups, col, tmp);
    });
    return;
  }
  float* col = ctx.ws.get(0, (size_t)(rows * Lmax));
  float* tmp = nb > 1 ? ctx.ws.get(1, (size_t)(kg * nb * P)) : nullptr;
  for (int64_t n0 = 0; n0 < g.n; n0 += nb)
    for (int64_t grp = 0; grp < g.groups; ++grp) chunk(ctx, n0, grp, col, tmp);
}

void conv2dBackwardData(Ctx& ctx, const float* dy, const float* w, float* dx, const ConvGeometry& g) {
  const int64_t P = g.plane(), rows = g.colRows(), kg = g.kg();
  if (g.xSize() == 0) return;
  if (P == 0 || kg == 0) { std::memset(dx, 0, (size_t)g.xSize() * sizeof(float)); return; }
  const Isa isa = activeIsa();
  const int nr = gemmPanelWidth(isa);
  const int64_t nb = convBatch(g);
  const int64_t Lmax = (nb * P + nr - 1) / nr * nr;
  const int64_t apSize = gemmPackedASize(isa, rows, kg);
  float* wp = ctx.ws.get(2, (size_t)(apSize * g.groups));
  for (int64_t grp = 0; grp < g.groups; ++grp)
    gemmPackA(isa, true, w + grp * kg * rows, rows, rows, kg, wp + grp * apSize);
  // One chunk, one group: dy into panels, dcol [rows, L] = wg^T [rows, kg] x dy_g [kg, L], col2im
  // (which overwrites exactly this chunk's and group's planes of dx).
  auto chunk = [&](Ctx& c, int64_t n0, int64_t grp, float* col, float* dyp) {
    const int64_t cnt = std::min(nb, g.n - n0), L = cnt * P;
    dyPanels(c, dy, g, n0, cnt, grp, nr, dyp);
    sgemmPackedB(c.pool, isa, true, rows, L, kg, 1.0f, w + grp * kg * rows, rows, dyp, 0.0f, col, L,
                 wp + grp * apSize);
    col2im(c, col, g, n0, cnt, grp, dx);
  };
  const int64_t chunks = (g.n + nb - 1) / nb, tasks = chunks * g.groups;
  if (chunkPerThread(ctx, tasks)) {
    ctx.pool.forChunks(tasks, 1, [&](int64_t t0, int64_t t1) {
      Ctx local{serialPool(), tlsConvWs};
      float* col = tlsConvWs.get(0, (size_t)(rows * nb * P));
      float* dyp = tlsConvWs.get(1, (size_t)(kg * Lmax));
      for (int64_t t = t0; t < t1; ++t) chunk(local, (t / g.groups) * nb, t % g.groups, col, dyp);
    });
    return;
  }
  float* col = ctx.ws.get(0, (size_t)(rows * nb * P));
  float* dyp = ctx.ws.get(1, (size_t)(kg * Lmax));
  for (int64_t n0 = 0; n0 < g.n; n0 += nb)
    for (int64_t grp = 0; grp < g.groups; ++grp) chunk(ctx, n0, grp, col, dyp);
}

void conv2dBackwardFilter(Ctx& ctx, const float* x, const float* dy, float* dw, float* db, const ConvGeometry& g,
                          float beta) {
  const int64_t P = g.plane(), rows = g.colRows(), kg = g.kg(), wSize = g.wSize();
  if (db) biasGrad(ctx, dy, db, g.n, g.k, P, beta);
  if (wSize == 0) return;
  if (g.n == 0 || P == 0) {
    for (int64_t i = 0; i < wSize; ++i) dw[i] = beta == 0.0f ? 0.0f : beta * dw[i];
    return;
  }
  const Isa isa = activeIsa();
  const int nr = gemmPanelWidth(isa), mr = gemmPanelHeight(isa);
  const int64_t rowsPad = (rows + nr - 1) / nr * nr;
  const ColRows tab = colRowTable(g, nr);
  // One chunk of nb samples, one group: im2col^T into B panels, dy into packed A (once, shared by
  // all C stripes), dst_g [kg, rows] = b dst_g + dy_g [kg, L] x col^T [L, rows].
  auto chunk = [&](Ctx& c, int64_t nb, int64_t n0, int64_t grp, float* col, float* tmp, float* ap, float* dst,
                   float b) {
    const int64_t cnt = std::min(nb, g.n - n0), L = cnt * P;
    im2colPanelsT(c, x, tab, g, n0, cnt, grp, nr, col);
    const float* dyg;
    int64_t lda;
    if (cnt == 1) {
      dyg = dy + (n0 * g.k + grp * kg) * P;
      lda = P;
    } else {
      gatherGroup(c, dy, g, n0, cnt, grp, tmp);
      dyg = tmp;
      lda = L;
    }
    const int64_t panels = (kg + mr - 1) / mr;
    c.pool.parallelFor(panels, 1, [&](int64_t pb, int64_t pe) {
      const int64_t i0 = pb * mr, i1 = std::min<int64_t>(pe * mr, kg);
      gemmPackA(isa, false, dyg + i0 * lda, lda, i1 - i0, L, ap + i0 * L);
    });
    sgemmPackedB(c.pool, isa, false, kg, rows, L, 1.0f, dyg, lda, col, b, dst + grp * kg * rows, rows, ap);
  };
  // With several chunks: a fixed number of ranges of chunks (at most 4, whatever the thread count,
  // so results do not depend on it), each summed by one thread into its own partial dW with its
  // own scratch, then the partials added in order. Threads work without barriers, on data in
  // their own L2.
  static const bool ranges = envInt("ALEXNET_CONV_CHUNK_PER_THREAD", 1) == 1;
  const int64_t nbT = convBatch(g);
  const int64_t chunksT = (g.n + nbT - 1) / nbT;
  const int64_t R = std::min<int64_t>(chunksT, 4);
  if (ranges && R >= 2) {
    float* parts = ctx.ws.get(3, (size_t)(R * wSize));
    ctx.pool.forChunks(R, 1, [&](int64_t r0, int64_t r1) {
      Ctx local{serialPool(), tlsConvWs};
      float* col = tlsConvWs.get(0, (size_t)(rowsPad * nbT * P));
      float* tmp = nbT > 1 ? tlsConvWs.get(1, (size_t)(kg * nbT * P)) : nullptr;
      float* ap = tlsConvWs.get(2, (size_t)gemmPackedASize(isa, kg, nbT * P));
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t c0 = chunksT * r / R, c1 = chunksT * (r + 1) / R;
        for (int64_t ci = c0; ci < c1; ++ci)
          for (int64_t grp = 0; grp < g.groups; ++grp)
            chunk(local, nbT, ci * nbT, grp, col, tmp, ap, parts + r * wSize, ci == c0 ? 0.0f : 1.0f);
      }
    });
    ctx.pool.parallelFor(wSize, 1 << 14, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        float acc = beta == 0.0f ? 0.0f : beta * dw[i];
        for (int64_t r = 0; r < R; ++r) acc += parts[r * wSize + i];
        dw[i] = acc;
      }
    });
    return;
  }
  const int64_t nb = convBatch(g, true);
  float* col = ctx.ws.get(0, (size_t)(rowsPad * nb * P));
  float* tmp = nb > 1 ? ctx.ws.get(1, (size_t)(kg * nb * P)) : nullptr;
  float* ap = ctx.ws.get(2, (size_t)gemmPackedASize(isa, kg, nb * P));
  for (int64_t n0 = 0; n0 < g.n; n0 += nb)
    for (int64_t grp = 0; grp < g.groups; ++grp) chunk(ctx, nb, n0, grp, col, tmp, ap, dw, n0 == 0 ? beta : 1.0f);
}

// ---- LRN ----
// §3.3: b_i = a_i / (k + alpha sum_{j near i} a_j^2)^beta. One pass over a block of `B` positions of
// one sample: squares once into scratch, each channel's window sum from them, the power, the output.
// The positions are the vectorised dimension (channel planes are contiguous in NCHW).

namespace {

constexpr int64_t kLrnBlock = 64;

/** s^-beta; beta = 0.75 (the paper's) as 1 / (sqrt(s) sqrt(sqrt(s))), which vectorises. */
ALEXNET_INLINE void powNeg(const float* s, float* out, int64_t len, float beta) {
  if (beta == 0.75f) {
    for (int64_t p = 0; p < len; ++p) { float r = std::sqrt(s[p]); out[p] = 1.0f / (r * std::sqrt(r)); }
  } else if (beta == 0.5f) {
    for (int64_t p = 0; p < len; ++p) out[p] = 1.0f / std::sqrt(s[p]);
  } else if (beta == 1.0f) {
    for (int64_t p = 0; p < len; ++p) out[p] = 1.0f / s[p];
  } else {
    for (int64_t p = 0; p < len; ++p) out[p] = (float)std::pow((double)s[p], -(double)beta);
  }
}

/** scale[i][p] = k + alpha sum_{|j - i| <= half} sq[j][p]  (rows of B floats). */
ALEXNET_INLINE void windowScale(const float* sq, float* scl, int64_t c, int64_t half, int64_t len, int64_t B,
                                float alpha, float k) {
  float acc[kLrnBlock];
  for (int64_t i = 0; i < c; ++i) {
    const int64_t lo = std::max<int64_t>(0, i - half), hi = std::min<int64_t>(c - 1, i + half);
    for (int64_t p = 0; p < len; ++p) acc[p] = 0.0f;
    for (int64_t j = lo; j <= hi; ++j) {
      const float* q = sq + j * B;
      for (int64_t p = 0; p < len; ++p) acc[p] += q[p];
    }
    float* o = scl + i * B;
    for (int64_t p = 0; p < len; ++p) o[p] = k + alpha * acc[p];
  }
}

// Scratch rows are B floats (B = the block width, <= kLrnBlock; len <= B positions are used).
ALEXNET_INLINE void lrnFwdBody(const float* x, float* y, int64_t c, int64_t hw, int64_t p0, int64_t len, int64_t B,
                               int64_t half, float alpha, float beta, float k, float* scratch) {
  float* sq = scratch;
  float* scl = scratch + c * B;
  for (int64_t j = 0; j < c; ++j) {
    const float* xr = x + j * hw + p0;
    float* q = sq + j * B;
    for (int64_t p = 0; p < len; ++p) q[p] = xr[p] * xr[p];
  }
  windowScale(sq, scl, c, half, len, B, alpha, k);
  float pw[kLrnBlock];
  for (int64_t i = 0; i < c; ++i) {
    powNeg(scl + i * B, pw, len, beta);
    const float* xr = x + i * hw + p0;
    float* yr = y + i * hw + p0;
    for (int64_t p = 0; p < len; ++p) yr[p] = xr[p] * pw[p];
  }
}

// dx_i = dy_i scale_i^-beta - 2 alpha beta x_i sum_{|j - i| <= half} dy_j y_j / scale_j
ALEXNET_INLINE void lrnBwdBody(const float* x, const float* y, const float* dy, float* dx, int64_t c, int64_t hw,
                               int64_t p0, int64_t len, int64_t B, int64_t half, float alpha, float beta, float k,
                               float* scratch) {
  float* sq = scratch;
  float* scl = scratch + c * B;
  float* t = scratch + 2 * c * B;
  for (int64_t j = 0; j < c; ++j) {
    const float* xr = x + j * hw + p0;
    float* q = sq + j * B;
    for (int64_t p = 0; p < len; ++p) q[p] = xr[p] * xr[p];
  }
  windowScale(sq, scl, c, half, len, B, alpha, k);
  for (int64_t j = 0; j < c; ++j) {
    const float* yr = y + j * hw + p0;
    const float* dyr = dy + j * hw + p0;
    const float* s = scl + j * B;
    float* tr = t + j * B;
    for (int64_t p = 0; p < len; ++p) tr[p] = dyr[p] * yr[p] / s[p];
  }
  const float coef = 2.0f * alpha * beta;
  float pw[kLrnBlock], acc[kLrnBlock];
  for (int64_t i = 0; i < c; ++i) {
    const int64_t lo = std::max<int64_t>(0, i - half), hi = std::min<int64_t>(c - 1, i + half);
    for (int64_t p = 0; p < len; ++p) acc[p] = 0.0f;
    for (int64_t j = lo; j <= hi; ++j) {
      const float* tr = t + j * B;
      for (int64_t p = 0; p < len; ++p) acc[p] += tr[p];
    }
    powNeg(scl + i * B, pw, len, beta);
    const float* xr = x + i * hw + p0;
    const float* dyr = dy + i * hw + p0;
    float* dxr = dx + i * hw + p0;
    for (int64_t p = 0; p < len; ++p) dxr[p] = dyr[p] * pw[p] - coef * xr[p] * acc[p];
  }
}

void lrnFwdPortable(const float* x, float* y, int64_t c, int64_t hw, int64_t p0, int64_t len, int64_t B, int64_t half,
                    float alpha, float beta, float k, float* scratch) {
  lrnFwdBody(x, y, c, hw, p0, len, B, half, alpha, beta, k, scratch);
}
void lrnBwdPortable(const float* x, const float* y, const float* dy, float* dx, int64_t c, int64_t hw, int64_t p0,
                    int64_t len, int64_t B, int64_t half, float alpha, float beta, float k, float* scratch) {
  lrnBwdBody(x, y, dy, dx, c, hw, p0, len, B, half, alpha, beta, k, scratch);
}
#if ALEXNET_X86
ALEXNET_TARGET_AVX512 void lrnFwdAvx512(const float* x, float* y, int64_t c, int64_t hw, int64_t p0, int64_t len,
                                        int64_t B, int64_t half, float alpha, float beta, float k, float* scratch) {
  lrnFwdBody(x, y, c, hw, p0, len, B, half, alpha, beta, k, scratch);
}
ALEXNET_TARGET_AVX512 void lrnBwdAvx512(const float* x, const float* y, const float* dy, float* dx, int64_t c,
                                        int64_t hw, int64_t p0, int64_t len, int64_t B, int64_t half, float alpha, float beta,
                                        float k, float* scratch) {
  lrnBwdBody(x, y, dy, dx, c, hw, p0, len, B, half, alpha, beta, k, scratch);
}
ALEXNET_TARGET_AVX2 void lrnFwdAvx2(const float* x, float* y, int64_t c, int64_t hw, int64_t p0, int64_t len,
                                    int64_t B, int64_t half, float alpha, float beta, float k, float* scratch) {
  lrnFwdBody(x, y, c, hw, p0, len, B, half, alpha, beta, k, scratch);
}
ALEXNET_TARGET_AVX2 void lrnBwdAvx2(const float* x, const float* y, const float* dy, float* dx, int64_t c,
                                    int64_t hw, int64_t p0, int64_t len, int64_t B, int64_t half, float alpha, float beta,
                                    float k, float* scratch) {
  lrnBwdBody(x, y, dy, dx, c, hw, p0, len, B, half, alpha, beta, k, scratch);
}
#endif

/**
 * LRN scratch: three rows of B floats per channel (squares, scales, backward's t), so the block width
 * B shrinks as the channel count grows: scratch stays near kLrnScratchFloats (in L1/L2) while that
 * allows B >= 1, and is at most 3 c min(hw, 64) floats, 3x one sample's block, beyond. Blocks up to the
 * bound live in a per-thread buffer; larger ones are per task and freed with it.
 */
constexpr int64_t kLrnScratchFloats = 1 << 16;  // 256 KiB

int64_t lrnBlockWidth(int64_t c, int64_t hw) {
  int64_t b = kLrnScratchFloats / (3 * std::max<int64_t>(c, 1));
  if (b >= 16) b = b / 16 * 16;  // whole vectors
  return std::max<int64_t>(1, std::min<int64_t>({b, kLrnBlock, hw}));
}

thread_local std::vector<float> tlsLrn;

/** Scratch of `floats` for one task: the thread's buffer when within the bound, else `local`. */
float* lrnScratch(size_t floats, std::vector<float>& local) {
  std::vector<float>& v = floats <= (size_t)kLrnScratchFloats + 16 ? tlsLrn : local;
  if (v.size() < floats) v.resize(floats);
  return v.data();
}

}  // namespace

void lrnForward(Ctx& ctx, const float* x, float* y, const LrnParams& prm, int64_t n, int64_t c, int64_t hw) {
  if (n == 0 || c == 0 || hw == 0) return;
  const int64_t B = lrnBlockWidth(c, hw), blocks = (hw + B - 1) / B, half = prm.size / 2;
  const float alpha = (float)prm.alpha, beta = (float)prm.beta, k = (float)prm.k;
  auto fn = lrnFwdPortable;
#if ALEXNET_X86
  if (activeIsa() == Isa::Avx512) fn = lrnFwdAvx512;
  else if (activeIsa() == Isa::Avx2) fn = lrnFwdAvx2;
#endif
  ctx.pool.parallelFor(n * blocks, 2, [&](int64_t b, int64_t e) {
    std::vector<float> local;
    float* scratch = lrnScratch((size_t)(2 * c * B + 16), local);
    for (int64_t t = b; t < e; ++t) {
      const int64_t i = t / blocks, p0 = (t % blocks) * B;
      fn(x + i * c * hw, y + i * c * hw, c, hw, p0, std::min(B, hw - p0), B, half, alpha, beta, k, scratch);
    }
  });
}

void lrnBackward(Ctx& ctx, const float* x, const float* y, const float* dy, float* dx, const LrnParams& prm, int64_t n,
                 int64_t c, int64_t hw) {
  if (n == 0 || c == 0 || hw == 0) return;
  const int64_t B = lrnBlockWidth(c, hw), blocks = (hw + B - 1) / B, half = prm.size / 2;
  const float alpha = (float)prm.alpha, beta = (float)prm.beta, k = (float)prm.k;
  auto fn = lrnBwdPortable;
#if ALEXNET_X86
  if (activeIsa() == Isa::Avx512) fn = lrnBwdAvx512;
  else if (activeIsa() == Isa::Avx2) fn = lrnBwdAvx2;
#endif
  ctx.pool.parallelFor(n * blocks, 2, [&](int64_t b, int64_t e) {
    std::vector<float> local;
    float* scratch = lrnScratch((size_t)(3 * c * B + 16), local);
    for (int64_t t = b; t < e; ++t) {
      const int64_t i = t / blocks, p0 = (t % blocks) * B;
      const int64_t off = i * c * hw;
      fn(x + off, y + off, dy + off, dx + off, c, hw, p0, std::min(B, hw - p0), B, half, alpha, beta, k, scratch);
    }
  });
}

// ---- max pooling ----

namespace {

/**
 * One plane, one output row at a time: for each window cell (row-major, so ties keep the first) the
 * whole row of outputs is compared at once, which vectorises (stride-2 loads for the paper's 3x3 s2).
 * best/idx: scratch of outW. NaN wins (and stays), as in PyTorch.
 */
ALEXNET_INLINE void poolPlaneBody(const float* xp, float* yp, int32_t* ap, const PoolGeometry& g, float* best,
                                  int32_t* idx, float* v) {
  const int64_t W = g.w, OW = g.outW, sw = g.strideW, KW = g.kw;
  const int64_t OWp = (OW + 15) / 16 * 16;  // whole vectors, no scalar remainder
  // De-interleave the plane first: v[(ih KW + kw) OWp + ow] = x[ih, ow sw + kw - padW]. Written well
  // before the compares read it (a wide load right after narrow stores would stall store forwarding).
  for (int64_t ih = 0; ih < g.h; ++ih) {
    const float* xr = xp + ih * W;
    for (int64_t kw = 0; kw < KW; ++kw) {
      int64_t lo, hi;
      validRange(kw - g.padW, sw, W, OW, &lo, &hi);
      float* vr = v + (ih * KW + kw) * OWp;
      const float* src = xr + kw - g.padW;
      for (int64_t ow = lo; ow < hi; ++ow) vr[ow] = src[ow * sw];
    }
  }
  for (int64_t oh = 0; oh < g.outH; ++oh) {
    const int64_t h0 = oh * g.strideH - g.padH;
    const int64_t ha = std::max<int64_t>(h0, 0), hb = std::min<int64_t>(h0 + g.kh, g.h);
    for (int64_t ow = 0; ow < OWp; ++ow) { best[ow] = -std::numeric_limits<float>::infinity(); idx[ow] = -1; }
    for (int64_t ih = ha; ih < hb; ++ih) {
      for (int64_t kw = 0; kw < KW; ++kw) {
        int64_t lo, hi;
        validRange(kw - g.padW, sw, W, OW, &lo, &hi);
        const int32_t base = (int32_t)(ih * W + kw - g.padW);
        const float* vr = v + (ih * KW + kw) * OWp;
        const int32_t l32 = (int32_t)lo, h32 = (int32_t)hi, s32 = (int32_t)sw;
        for (int32_t ow = 0; ow < (int32_t)OWp; ++ow) {
          const float x = vr[ow], b = best[ow];
          const int32_t cur = idx[ow];
          const bool take = (ow >= l32) & (ow < h32) & ((cur < 0) | (x > b) | ((x != x) & (b == b)));
          best[ow] = take ? x : b;
          idx[ow] = take ? base + ow * s32 : cur;
        }
      }
    }
    std::memcpy(yp + oh * OW, best, (size_t)OW * sizeof(float));
    std::memcpy(ap + oh * OW, idx, (size_t)OW * sizeof(int32_t));
  }
}

void poolPlanePortable(const float* xp, float* yp, int32_t* ap, const PoolGeometry& g, float* best, int32_t* idx,
                       float* v) {
  poolPlaneBody(xp, yp, ap, g, best, idx, v);
}
#if ALEXNET_X86
ALEXNET_TARGET_AVX512 void poolPlaneAvx512(const float* xp, float* yp, int32_t* ap, const PoolGeometry& g, float* best,
                                           int32_t* idx, float* v) {
  poolPlaneBody(xp, yp, ap, g, best, idx, v);
}
ALEXNET_TARGET_AVX2 void poolPlaneAvx2(const float* xp, float* yp, int32_t* ap, const PoolGeometry& g, float* best,
                                       int32_t* idx, float* v) {
  poolPlaneBody(xp, yp, ap, g, best, idx, v);
}
#endif

}  // namespace

void maxPoolForward(Ctx& ctx, const float* x, float* y, int32_t* argmax, const PoolGeometry& g) {
  const int64_t planes = g.n * g.c, inPlane = g.h * g.w, outPlane = g.outH * g.outW;
  if (planes == 0 || outPlane == 0) return;
  auto fn = poolPlanePortable;
#if ALEXNET_X86
  if (activeIsa() == Isa::Avx512) fn = poolPlaneAvx512;
  else if (activeIsa() == Isa::Avx2) fn = poolPlaneAvx2;
#endif
  ctx.pool.parallelFor(planes, 4, [&](int64_t b, int64_t e) {
    const size_t owp = (size_t)(g.outW + 15) / 16 * 16;
    std::vector<float> best(owp), v(owp * (size_t)(g.h * g.kw), 0.0f);
    std::vector<int32_t> idx(owp);
    for (int64_t pl = b; pl < e; ++pl)
      fn(x + pl * inPlane, y + pl * outPlane, argmax + pl * outPlane, g, best.data(), idx.data(), v.data());
  });
}

int64_t maxPoolBackward(Ctx& ctx, const float* dy, const int32_t* argmax, float* dx, const PoolGeometry& g) {
  const int64_t planes = g.n * g.c, inPlane = g.h * g.w, outPlane = g.outH * g.outW;
  if (planes == 0 || inPlane == 0) return 0;
  std::atomic<int64_t> bad{0};
  ctx.pool.parallelFor(planes, 4, [&](int64_t b, int64_t e) {
    int64_t myBad = 0;
    for (int64_t pl = b; pl < e; ++pl) {
      float* xp = dx + pl * inPlane;
      std::memset(xp, 0, (size_t)inPlane * sizeof(float));
      const float* dp = dy + pl * outPlane;
      const int32_t* ap = argmax + pl * outPlane;
      for (int64_t o = 0; o < outPlane; ++o) {
        const int32_t a = ap[o];
        if (a >= 0 && a < inPlane) xp[a] += dp[o];
        else if (a != -1) ++myBad;
      }
    }
    bad += myBad;
  });
  return bad.load();
}

// ---- dropout ----

void dropout(Ctx& ctx, const float* x, float* y, int64_t n, double p, uint64_t seed, uint64_t offset) {
  const double keep = 1.0 - p;
  ctx.pool.parallelFor(n, 1 << 14, [&](int64_t s, int64_t e) {
    uint64_t block = ~(uint64_t)0;
    PhiloxWords w{};
    for (int64_t i = s; i < e; ++i) {
      const uint64_t gi = offset + (uint64_t)i;
      if ((gi >> 2) != block) { block = gi >> 2; w = philoxBlock(seed, block); }
      const double u = (double)(w.w[gi & 3] >> 8) * (1.0 / 16777216.0);
      y[i] = u >= p ? (float)((double)x[i] / keep) : 0.0f;
    }
  });
}

// ---- loss and metrics ----

void softmaxCrossEntropy(Ctx& ctx, const float* logits, const int32_t* labels, float* loss, float* dlogits, int64_t n,
                         int64_t c) {
  std::vector<double> rowLoss((size_t)std::max<int64_t>(n, 1), 0.0);
  ctx.pool.parallelFor(n, std::max<int64_t>(1, 4096 / std::max<int64_t>(c, 1)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float* z = logits + i * c;
      const int32_t label = labels[i];
      const bool valid = label >= 0 && label < c;
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < c; ++j) mx = std::max(mx, (double)z[j]);
      double sum = 0.0;
      for (int64_t j = 0; j < c; ++j) sum += std::exp((double)z[j] - mx);
      const double lse = mx + std::log(sum);
      rowLoss[(size_t)i] = valid ? lse - (double)z[label] : std::numeric_limits<double>::quiet_NaN();
      if (dlogits) {
        float* d = dlogits + i * c;
        if (!valid) {
          for (int64_t j = 0; j < c; ++j) d[j] = std::numeric_limits<float>::quiet_NaN();
        } else {
          for (int64_t j = 0; j < c; ++j) {
            const double pj = std::exp((double)z[j] - lse);
            d[j] = (float)((pj - (j == label ? 1.0 : 0.0)) / (double)n);
          }
        }
      }
    }
  });
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += rowLoss[(size_t)i];
  loss[0] = n > 0 ? (float)(total / (double)n) : std::numeric_limits<float>::quiet_NaN();
}

void softmax(Ctx& ctx, const float* x, float* y, int64_t n, int64_t c) {
  if (n == 0 || c == 0) return;
  ctx.pool.parallelFor(n, std::max<int64_t>(1, 4096 / std::max<int64_t>(c, 1)), [&](int64_t b, int64_t e) {
    std::vector<double> ex((size_t)c);
    for (int64_t i = b; i < e; ++i) {
      const float* z = x + i * c;
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < c; ++j) mx = std::max(mx, (double)z[j]);
      double sum = 0.0;
      for (int64_t j = 0; j < c; ++j) { ex[(size_t)j] = std::exp((double)z[j] - mx); sum += ex[(size_t)j]; }
      float* o = y + i * c;
      for (int64_t j = 0; j < c; ++j) o[j] = (float)(ex[(size_t)j] / sum);
    }
  });
}

// Class j ranks above the label t when z[j] > z[t], or z[j] == z[t] and j < t (a stable sort by
// descending score); a NaN anywhere in the row makes it wrong, as does a label outside [0, c).
int32_t topkCorrect(Ctx& ctx, const float* logits, const int32_t* labels, int64_t n, int64_t c, int64_t k) {
  (void)ctx;
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t label = labels[i];
    if (label < 0 || label >= c) continue;
    const float* z = logits + i * c;
    const float t = z[label];
    int64_t above = 0, nan = 0;
    for (int64_t j = 0; j < c; ++j) {
      const float v = z[j];
      nan += v != v ? 1 : 0;
      above += (v > t || (v == t && j < label)) ? 1 : 0;
    }
    if (nan == 0 && above < k) ++correct;
  }
  return (int32_t)correct;
}

// ---- SGD ----

void sgdUpdate(Ctx& ctx, float* w, const float* g, float* v, int64_t n, float lr, float momentum, float wd,
               bool paperForm) {
  ctx.pool.parallelFor(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    if (paperForm) {
      // §5: v = 0.9 v - 0.0005 lr w - lr g; w += v
      const float wdlr = wd * lr;
      for (int64_t i = b; i < e; ++i) {
        const float vi = momentum * v[i] - wdlr * w[i] - lr * g[i];
        v[i] = vi;
        w[i] += vi;
      }
    } else {
      for (int64_t i = b; i < e; ++i) {
        const float vi = momentum * v[i] + g[i] + wd * w[i];
        v[i] = vi;
        w[i] -= lr * vi;
      }
    }
  });
}

}  // namespace alexnet
