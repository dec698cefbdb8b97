// Convolutions (§3.1; groups are §3.2's "same GPU only") as im2col + the one GEMM, several samples'
// columns per GEMM, im2col written straight into the GEMM's packed-B panels; col2im for the data
// gradient (native/cuda/kernels/conv.cuh and gemm.cuh are the CUDA engine's). docs/cpu-engine.md.
#include <cstring>

#include "../kernels.h"
#include "common.h"
#include "gemm.h"
#include "winograd.h"

namespace alexnet {

namespace {

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
 * is then one gather through it (for short output rows: im2colBySegments).
 */
const int32_t* spatialMap(const ConvGeometry& g) {
  const int64_t P = g.plane();
  int32_t* map = scratch<int32_t>(Scratch::Aux, (size_t)(g.r * g.s * P));
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

/** im2colPanelsTask's result, row by row through the spatial map (short output rows gather faster). */
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

void im2colPanels(ThreadPool& pool, const float* x, const int32_t* map, const ConvGeometry& g, int64_t n0, int64_t cnt,
                  int64_t grp, int nr, float* dst) {
  pool.parallelFor(g.colRows() * cnt, 4, [&](int64_t b, int64_t e) {
    if (map) im2colPanelsGatherTask(x, map, g, n0, cnt, grp, nr, dst, b, e);
    else im2colPanelsTask(x, g, n0, cnt, grp, nr, dst, b, e);
  });
}

/** Per im2col row (c r s): the input offset c H W + r W + s and the tap (r, s); rows past the end never valid. */
struct ColRows {
  const int32_t *off, *r, *s;
};

ColRows colRowTable(const ConvGeometry& g, int nr) {
  const int64_t rows = g.colRows(), rowsPad = (rows + nr - 1) / nr * nr, RS = g.r * g.s;
  int32_t* off = scratch<int32_t>(Scratch::Table, (size_t)(3 * rowsPad));
  int32_t *tr = off + rowsPad, *ts = off + 2 * rowsPad;
  for (int64_t row = 0; row < rowsPad; ++row) {
    const bool real = row < rows;
    const int64_t c = row / RS, r = (row / g.s) % g.r, s = row % g.s;
    off[row] = real ? (int32_t)(c * g.h * g.w + r * g.w + s) : 0;
    tr[row] = real ? (int32_t)r : -(1 << 30);
    ts[row] = real ? (int32_t)s : -(1 << 30);
  }
  return ColRows{off, tr, ts};
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
    const int32_t* off = tab.off + q * nr;
    const int32_t* tr = tab.r + q * nr;
    const int32_t* ts = tab.s + q * nr;
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

void im2colPanelsT(ThreadPool& pool, const float* x, const ColRows& tab, const ConvGeometry& g, int64_t n0, int64_t cnt,
                   int64_t grp, int nr, float* dst) {
  const int64_t panels = (g.colRows() + nr - 1) / nr;
  pool.parallelFor(panels * cnt, 1, [&](int64_t b, int64_t e) {
    im2colPanelsTTask(x, tab, g, n0, cnt, grp, nr, dst, b, e);
  });
}

/** dy of one group gathered straight into packed-B panels: B [kg, L], (kk, j p) = dy[n0 + j, grp kg + kk, p]. */
void dyPanels(ThreadPool& pool, const float* dy, const ConvGeometry& g, int64_t n0, int64_t cnt, int64_t grp, int nr,
              float* dst) {
  const int64_t P = g.plane(), L = cnt * P, kg = g.kg();
  const int64_t Lpad = (L + nr - 1) / nr * nr;
  pool.parallelFor(kg * cnt, 8, [&](int64_t b, int64_t e) {
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

void col2im(ThreadPool& pool, const float* col, const ConvGeometry& g, int64_t n0, int64_t cnt, int64_t grp, float* dx) {
  pool.parallelFor(g.cg() * cnt, 1, [&](int64_t b, int64_t e) { col2imTask(col, g, n0, cnt, grp, dx, b, e); });
}

/** tmp [kg, cnt * P] <-> y[n0 + j, grp kg + kk, :]; bias added on the way out when given. */
void gatherGroup(ThreadPool& pool, const float* y, const ConvGeometry& g, int64_t n0, int64_t cnt, int64_t grp, float* tmp) {
  const int64_t P = g.plane(), L = cnt * P, kg = g.kg();
  pool.parallelFor(kg * cnt, 8, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t kk = t / cnt, j = t % cnt;
      std::memcpy(tmp + kk * L + j * P, y + ((n0 + j) * g.k + grp * kg + kk) * P, (size_t)P * sizeof(float));
    }
  });
}

void scatterGroup(ThreadPool& pool, const float* tmp, const float* bias, const ConvGeometry& g, int64_t n0, int64_t cnt,
                  int64_t grp, float* y) {
  const int64_t P = g.plane(), L = cnt * P, kg = g.kg();
  pool.parallelFor(kg * cnt, 8, [&](int64_t b, int64_t e) {
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

/**
 * Whether to give each thread whole chunks (im2col, GEMM, scatter on its own, data in its own L2,
 * no barrier between the three) rather than parallelise inside each step: when there are enough
 * chunks to share out.
 */
bool chunkPerThread(const ThreadPool& pool, int64_t tasks) {
  static const bool enabled = envInt("ALEXNET_CONV_CHUNK_PER_THREAD", 1) == 1;
  return enabled && pool.size() > 1 && tasks >= 4 * (int64_t)pool.size();
}

/**
 * chunk(pool, n0, group, col, gather) for every chunk of nb samples and every group, in that order:
 * each thread takes whole chunks with its own scratch (col floats of Scratch::Col, gather floats of
 * Scratch::Gather, none when 0) when chunkPerThread, else one after the other with `pool` inside each.
 */
template <class F>
void forEachChunk(ThreadPool& pool, const ConvGeometry& g, int64_t nb, size_t colFloats, size_t gatherFloats, F chunk) {
  const int64_t tasks = (g.n + nb - 1) / nb * g.groups;
  auto run = [&](ThreadPool& p, int64_t t0, int64_t t1) {
    float* col = scratch(Scratch::Col, colFloats);
    float* gather = gatherFloats ? scratch(Scratch::Gather, gatherFloats) : nullptr;
    for (int64_t t = t0; t < t1; ++t) chunk(p, (t / g.groups) * nb, t % g.groups, col, gather);
  };
  if (chunkPerThread(pool, tasks)) pool.forChunks(tasks, 1, [&](int64_t t0, int64_t t1) { run(serialPool(), t0, t1); });
  else run(pool, 0, tasks);
}

/** packWeights as bf16 pairs for the bf16 GEMM (bgemmPackA). */
uint32_t* packWeightsBf16(Bf16Kernel kern, bool trans, const float* w, const ConvGeometry& g) {
  const int64_t rows = g.colRows(), kg = g.kg(), apSize = bgemmPackedASize(kern, trans ? rows : kg, trans ? kg : rows);
  uint32_t* wp = scratch<uint32_t>(Scratch::Packed, (size_t)(apSize * g.groups));
  for (int64_t grp = 0; grp < g.groups; ++grp)
    bgemmPackA(kern, trans, w + grp * kg * rows, rows, trans ? rows : kg, trans ? kg : rows, wp + grp * apSize);
  return wp;
}

/** `panels` fp32 B panels of k rows (width kBf16Nr) as bf16 pairs, in the calling thread's Scratch::ColBf16. */
const uint32_t* panelsBf16(ThreadPool& pool, Bf16Kernel kern, const float* src, int64_t k, int64_t panels) {
  uint32_t* dst = scratch<uint32_t>(Scratch::ColBf16, (size_t)(panels * bgemmPairs(kern, k) * kBf16Nr));
  bgemmPanelsFromFp32(pool, kern, src, k, panels, dst);
  return dst;
}

/** The weights of every group packed once per op as the GEMM's A (transposed for the data gradient). */
float* packWeights(Isa isa, bool trans, const float* w, const ConvGeometry& g) {
  const int64_t rows = g.colRows(), kg = g.kg(), apSize = gemmPackedASize(isa, trans ? rows : kg, trans ? kg : rows);
  float* wp = scratch(Scratch::Packed, (size_t)(apSize * g.groups));
  for (int64_t grp = 0; grp < g.groups; ++grp)
    gemmPackA(isa, trans, w + grp * kg * rows, rows, trans ? rows : kg, trans ? kg : rows, wp + grp * apSize);
  return wp;
}
}  // namespace

/**
 * The GEMM side of an im2col convolution pass whose A is the weights (forward: w [kg, rows]; the data
 * gradient: w^T, trans): the ISA, the precision (bf16, docs/cpu-engine.md: the same im2col panels
 * turned into bf16 pairs, the weights packed as bf16 once per op), the panel width, the samples per
 * chunk and their padded column count, and the weights packed once for all chunks.
 */
namespace {

struct WeightGemm {
  Isa isa;
  bool bf16;
  Bf16Kernel kern;
  int nr;
  int64_t nb, Lmax, apSize;
  const float* wp;
  const uint32_t* wpb;
};

WeightGemm weightGemm(const float* w, const ConvGeometry& g, bool trans) {
  WeightGemm m{};
  m.isa = activeIsa();
  m.bf16 = activePrecision() == Precision::Bf16;
  m.kern = m.bf16 ? activeBf16Kernel() : Bf16Kernel::None;
  m.nr = m.bf16 ? kBf16Nr : gemmPanelWidth(m.isa);
  m.nb = convBatch(g);
  m.Lmax = (m.nb * g.plane() + m.nr - 1) / m.nr * m.nr;
  const int64_t rows = g.colRows(), kg = g.kg(), am = trans ? rows : kg, ak = trans ? kg : rows;
  m.apSize = m.bf16 ? bgemmPackedASize(m.kern, am, ak) : gemmPackedASize(m.isa, am, ak);
  m.wp = m.bf16 ? nullptr : packWeights(m.isa, trans, w, g);
  m.wpb = m.bf16 ? packWeightsBf16(m.kern, trans, w, g) : nullptr;
  return m;
}

}  // namespace

void conv2dForward(ThreadPool& pool, const float* x, const float* w, const float* bias, float* y, const ConvGeometry& g) {
  const int64_t P = g.plane(), rows = g.colRows(), kg = g.kg();
  if (g.ySize() == 0) return;
  if (winogradForward(pool, x, w, bias, y, g)) return;  // stride 1, or conv1 by space to depth
  const WeightGemm m = weightGemm(w, g, false);
  const Isa isa = m.isa;
  const bool bf16 = m.bf16;
  const int nr = m.nr;
  const int64_t nb = m.nb, apSize = m.apSize;
  const int32_t* map = im2colBySegments(g) ? nullptr : spatialMap(g);
  // One chunk of nb samples, one group: im2col, GEMM, scatter (+ bias) on the pool `c` gives.
  auto chunk = [&](ThreadPool& c, int64_t n0, int64_t grp, float* col, float* tmp) {
    const int64_t cnt = std::min(nb, g.n - n0), L = cnt * P;
    const float* wg = w + grp * kg * rows;
    const float* wpg = bf16 ? nullptr : m.wp + grp * apSize;
    im2colPanels(c, x, map, g, n0, cnt, grp, nr, col);
    float* out = cnt == 1 ? y + (n0 * g.k + grp * kg) * P : tmp;
    if (bf16) {
      const uint32_t* colb = panelsBf16(c, m.kern, col, rows, (L + nr - 1) / nr);
      bgemmPackedB(c, m.kern, false, kg, L, rows, 1.0f, nullptr, rows, colb, 0.0f, out, L, m.wpb + grp * apSize);
    } else {
      sgemmPackedB(c, isa, false, kg, L, rows, 1.0f, wg, rows, col, 0.0f, out, L, wpg);
    }
    if (cnt == 1) {
      if (bias) biasAdd(c, out, bias + grp * kg, 1, kg, P);
    } else {
      scatterGroup(c, tmp, bias, g, n0, cnt, grp, y);
    }
  };
  forEachChunk(pool, g, nb, (size_t)(rows * m.Lmax), nb > 1 ? (size_t)(kg * nb * P) : 0, chunk);
}

void conv2dBackwardData(ThreadPool& pool, const float* dy, const float* w, float* dx, const ConvGeometry& g) {
  const int64_t P = g.plane(), rows = g.colRows(), kg = g.kg();
  if (g.xSize() == 0) return;
  if (P == 0 || kg == 0) { std::memset(dx, 0, (size_t)g.xSize() * sizeof(float)); return; }
  if (const int v = winogradVariant(g, WinogradPass::BackwardData)) {
    // dx = dy * w rotated by 180 degrees and transposed, padding r - 1 - p: a forward convolution.
    const WinogradShape p{g.n, kg, g.cg(), g.groups, g.outH, g.outW, g.h, g.w, g.r - 1 - g.padH, g.k, g.c};
    winogradConv(pool, v, (int)g.r, dy, w, true, nullptr, dx, p);
    return;
  }
  const WeightGemm m = weightGemm(w, g, true);
  const Isa isa = m.isa;
  const bool bf16 = m.bf16;
  const int nr = m.nr;
  const int64_t nb = m.nb, apSize = m.apSize;
  // One chunk, one group: dy into panels, dcol [rows, L] = wg^T [rows, kg] x dy_g [kg, L], col2im
  // (which overwrites exactly this chunk's and group's planes of dx).
  auto chunk = [&](ThreadPool& c, int64_t n0, int64_t grp, float* col, float* dyp) {
    const int64_t cnt = std::min(nb, g.n - n0), L = cnt * P;
    dyPanels(c, dy, g, n0, cnt, grp, nr, dyp);
    if (bf16)
      bgemmPackedB(c, m.kern, true, rows, L, kg, 1.0f, nullptr, rows, panelsBf16(c, m.kern, dyp, kg, (L + nr - 1) / nr), 0.0f, col,
                   L, m.wpb + grp * apSize);
    else
      sgemmPackedB(c, isa, true, rows, L, kg, 1.0f, w + grp * kg * rows, rows, dyp, 0.0f, col, L,
                   m.wp + grp * apSize);
    col2im(c, col, g, n0, cnt, grp, dx);
  };
  forEachChunk(pool, g, nb, (size_t)(rows * nb * P), (size_t)(kg * m.Lmax), chunk);
}

void conv2dBackwardFilter(ThreadPool& pool, const float* x, const float* dy, float* dw, float* db, const ConvGeometry& g,
                          float beta) {
  const int64_t P = g.plane(), rows = g.colRows(), kg = g.kg(), wSize = g.wSize();
  if (db) biasGrad(pool, dy, db, g.n, g.k, P, beta);
  if (wSize == 0) return;
  if (g.n == 0 || P == 0) {
    for (int64_t i = 0; i < wSize; ++i) dw[i] = beta == 0.0f ? 0.0f : beta * dw[i];
    return;
  }
  if (winogradBackwardFilter(pool, x, dy, dw, beta, g)) return;
  const Isa isa = activeIsa();
  const bool bf16 = activePrecision() == Precision::Bf16;
  const Bf16Kernel kern = bf16 ? activeBf16Kernel() : Bf16Kernel::None;
  const int nr = bf16 ? kBf16Nr : gemmPanelWidth(isa), mr = bf16 ? bgemmPanelHeight(kern) : gemmPanelHeight(isa);
  const int64_t rowsPad = (rows + nr - 1) / nr * nr;
  // Packed dy (the GEMM's A) per chunk of nbc samples: floats, or bf16 pair words (4 bytes each too).
  auto apSize = [&](int64_t nbc) {
    return bf16 ? bgemmPackedASize(kern, kg, nbc * P) : gemmPackedASize(isa, kg, nbc * P);
  };
  const ColRows tab = colRowTable(g, nr);
  // One chunk of nb samples, one group: im2col^T into B panels, dy into packed A (once, shared by
  // all C stripes), dst_g [kg, rows] = b dst_g + dy_g [kg, L] x col^T [L, rows].
  auto chunk = [&](ThreadPool& c, int64_t nb, int64_t n0, int64_t grp, float* col, float* tmp, float* ap, float* dst,
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
    if (bf16) {
      // k = L: pairs of columns of this chunk (zeros pad L in both operands).
      uint32_t* apb = reinterpret_cast<uint32_t*>(ap);
      c.parallelFor(panels, 1, [&](int64_t pb, int64_t pe) {
        const int64_t i0 = pb * mr, i1 = std::min<int64_t>(pe * mr, kg);
        bgemmPackA(kern, false, dyg + i0 * lda, lda, i1 - i0, L, apb + i0 * bgemmPairs(kern, L));
      });
      bgemmPackedB(c, kern, false, kg, rows, L, 1.0f, nullptr, lda, panelsBf16(c, kern, col, L, rowsPad / nr), b,
                   dst + grp * kg * rows, rows, apb);
      return;
    }
    c.parallelFor(panels, 1, [&](int64_t pb, int64_t pe) {
      const int64_t i0 = pb * mr, i1 = std::min<int64_t>(pe * mr, kg);
      gemmPackA(isa, false, dyg + i0 * lda, lda, i1 - i0, L, ap + i0 * L);
    });
    sgemmPackedB(c, isa, false, kg, rows, L, 1.0f, dyg, lda, col, b, dst + grp * kg * rows, rows, ap);
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
    float* parts = scratch(Scratch::Aux, (size_t)(R * wSize));
    pool.forChunks(R, 1, [&](int64_t r0, int64_t r1) {
      ThreadPool& local = serialPool();
      float* col = scratch(Scratch::Col, (size_t)(rowsPad * nbT * P));
      float* tmp = nbT > 1 ? scratch(Scratch::Gather, (size_t)(kg * nbT * P)) : nullptr;
      float* ap = scratch(Scratch::Packed, (size_t)apSize(nbT));
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t c0 = chunksT * r / R, c1 = chunksT * (r + 1) / R;
        for (int64_t ci = c0; ci < c1; ++ci)
          for (int64_t grp = 0; grp < g.groups; ++grp)
            chunk(local, nbT, ci * nbT, grp, col, tmp, ap, parts + r * wSize, ci == c0 ? 0.0f : 1.0f);
      }
    });
    pool.parallelFor(wSize, 1 << 14, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        float acc = beta == 0.0f ? 0.0f : beta * dw[i];
        for (int64_t r = 0; r < R; ++r) acc += parts[r * wSize + i];
        dw[i] = acc;
      }
    });
    return;
  }
  const int64_t nb = convBatch(g, true);
  float* col = scratch(Scratch::Col, (size_t)(rowsPad * nb * P));
  float* tmp = nb > 1 ? scratch(Scratch::Gather, (size_t)(kg * nb * P)) : nullptr;
  float* ap = scratch(Scratch::Packed, (size_t)apSize(nb));
  for (int64_t n0 = 0; n0 < g.n; n0 += nb)
    for (int64_t grp = 0; grp < g.groups; ++grp) chunk(pool, nb, n0, grp, col, tmp, ap, dw, n0 == 0 ? beta : 1.0f);
}

}  // namespace alexnet
