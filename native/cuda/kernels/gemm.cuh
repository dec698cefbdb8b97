// The one GEMM of the CUDA backend: C[b][m, n] = sum_k A[b][m, k] B[b][k, n], tiled through shared
// memory (BM x BK and BK x BN tiles) and registers (TM x TN outputs per thread). Where A and B come
// from and where C goes are template policies, so the same kernel is the plain SGEMM (dense loaders),
// and the three convolutions as implicit GEMMs (loaders that gather the im2col matrix on the fly from
// NCHW activations: no column buffer). Split-K: blockIdx.z = split * batch + b; each split covers
// kChunk values of k and, when there are several, writes a partial product that gemmSplitReduce sums
// in a fixed order (deterministic, no atomics).
#pragma once
#include "common.cuh"
#if !defined(ALEXNET_CUDA_EMU)
#include <mma.h>
#endif

namespace alexnet {
namespace cuda {

template <int BM_, int BN_, int BK_, int TM_, int TN_, int MinBlocks_>
struct GemmTile {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, TM = TM_, TN = TN_;
  static constexpr int kThreads = (BM / TM) * (BN / TN);
  /** __launch_bounds__'s minimum of resident blocks per SM (ptxas then keeps registers within 64K / (kThreads x it)). */
  static constexpr int kMinBlocks = MinBlocks_;
  // A thread (tx, ty) owns the rows rowOf(ty, i), i < TM, and the columns colOf(tx, j), j < TN: runs of 4
  // consecutive indices (one float4 read of a shared tile each), the runs BM / (TM / 4) apart, so that
  // 8 consecutive threads read 128 consecutive bytes of Bs (no bank conflicts) and a warp's two rows of
  // As are broadcasts.
  static constexpr int CM = TM >= 4 ? 4 : 1, CN = TN >= 4 ? 4 : 1;
  static_assert(TM % CM == 0 && TN % CN == 0, "register tiles are runs of 4 (or single rows / columns)");
  __device__ __forceinline__ static int rowOf(int ty, int i) { return (i / CM) * (BM / (TM / CM)) + ty * CM + i % CM; }
  __device__ __forceinline__ static int colOf(int tx, int j) { return (j / CN) * (BN / (TN / CN)) + tx * CN + j % CN; }
  // shared memory: the A and B tiles (rows padded by 4 floats: conflict-free transposing stores, rows
  // 16-byte aligned), reused after the k-loop for the epilogue's staging rows
  static constexpr int kTileFloats = BK * (BM + 4) + BK * (BN + 4);
  static constexpr int kStageFloats = (BM / TM) * (BN + 4);
  static constexpr int kSmemFloats = kTileFloats > kStageFloats ? kTileFloats : kStageFloats;
};
using TileLarge = GemmTile<128, 128, 8, 8, 8, 2>;  // 256 threads, 64 outputs each
using TileSmall = GemmTile<64, 64, 8, 4, 4, 3>;    // 256 threads, 16 outputs each: small M or N
using TileThin = GemmTile<16, 128, 16, 1, 8, 3>;   // 256 threads, 8 outputs each: M <= 16 (fc layers at small batch)

// ---- loaders: element (row, col) of batch b; called only inside [0, rows) x [0, cols).
// kFast says which index runs along memory, so consecutive threads load consecutive addresses.

/** A[m, k] of a row-major matrix ([m, k], or [k, m] when Trans), `bstride` elements apart per batch. */
template <bool Trans>
struct DenseA {
  const float* p; int ld; long long bstride;
  static constexpr bool kFast = !Trans;
  __device__ __forceinline__ float operator()(int b, int m, int k) const {
    return Trans ? p[b * bstride + (long long)k * ld + m] : p[b * bstride + (long long)m * ld + k];
  }
};
/** B[k, n] of a row-major matrix ([k, n], or [n, k] when Trans). */
template <bool Trans>
struct DenseB {
  const float* p; int ld; long long bstride;
  static constexpr bool kFast = Trans;
  __device__ __forceinline__ float operator()(int b, int k, int n) const {
    return Trans ? p[b * bstride + (long long)n * ld + k] : p[b * bstride + (long long)k * ld + n];
  }
};

// Convolutions, batch index b = sample * groups + group (forward, data gradient) or group (filter
// gradient). Shapes: x [n, c, h, w], w [k, c/G, r, s], y [n, k, outH, outW]; crs = (c/G) r s.

/** Forward A: the group's weights as [k/G, crs]. */
struct ConvFwdA {
  const float* w; ConvShape g;
  static constexpr bool kFast = true;
  __device__ __forceinline__ float operator()(int b, int m, int kk) const {
    const int grp = b % g.groups, kg = g.k / g.groups, crs = (g.c / g.groups) * g.r * g.s;
    return w[(long long)(grp * kg + m) * crs + kk];
  }
};
/** im2col(x) of sample i and group grp at row kk = (ci, ky, kx), column p = (oy, ox); 0 in the padding. */
__device__ __forceinline__ float im2colAt(const float* x, const ConvShape& g, int i, int grp, int kk, int p) {
  int ci, q, ky, kx, oy, ox;
  g.divRS.divmod(kk, ci, q);
  g.divS.divmod(q, ky, kx);
  g.divOutW.divmod(p, oy, ox);
  const int iy = oy * g.strideH - g.padH + ky, ix = ox * g.strideW - g.padW + kx;
  if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) return 0.f;
  return x[((long long)(i * g.c + grp * (g.c / g.groups) + ci) * g.h + iy) * g.w + ix];
}
/** Forward B: im2col(x) [crs, outH outW] of one sample and group, gathered with zero padding. */
struct ConvFwdB {
  const float* x; ConvShape g;
  static constexpr bool kFast = false;
  __device__ __forceinline__ float operator()(int b, int kk, int p) const { return im2colAt(x, g, b / g.groups, b % g.groups, kk, p); }
};
/** Data gradient A: w^T [c/G, (k/G) r s]: A[ci, (o, ky, kx)] = w[grp k/G + o, ci, ky, kx]. */
struct ConvBwdDataA {
  const float* w; ConvShape g;
  static constexpr bool kFast = true;
  __device__ __forceinline__ float operator()(int b, int ci, int kk) const {
    const int grp = b % g.groups, kg = g.k / g.groups, cg = g.c / g.groups, rs = g.r * g.s;
    int o, q;
    g.divRS.divmod(kk, o, q);
    return w[((long long)(grp * kg + o) * cg + ci) * rs + q];
  }
};
/**
 * Data gradient B [(k/G) r s, h w]: B[(o, ky, kx), (iy, ix)] = dy[o, oy, ox] where iy = oy strideH -
 * padH + ky (likewise x), else 0. The transposed convolution as a gather: no scatter, no atomics.
 */
struct ConvBwdDataB {
  const float* dy; ConvShape g;
  static constexpr bool kFast = false;
  __device__ __forceinline__ float operator()(int b, int kk, int p) const {
    const int i = b / g.groups, grp = b % g.groups, kg = g.k / g.groups;
    int o, q, ky, kx, iy, ix;
    g.divRS.divmod(kk, o, q);
    g.divS.divmod(q, ky, kx);
    g.divW.divmod(p, iy, ix);
    const int ty = iy + g.padH - ky, tx = ix + g.padW - kx;
    if (ty < 0 || tx < 0 || ty % g.strideH || tx % g.strideW) return 0.f;
    const int oy = ty / g.strideH, ox = tx / g.strideW;
    if (oy >= g.outH || ox >= g.outW) return 0.f;
    return dy[((long long)(i * g.k + grp * kg + o) * g.outH + oy) * g.outW + ox];
  }
};
/** Filter gradient A [k/G, n outH outW]: A[o, (i, p)] = dy[i, grp k/G + o, p]. */
struct ConvBwdFilterA {
  const float* dy; ConvShape g;
  static constexpr bool kFast = true;
  __device__ __forceinline__ float operator()(int grp, int o, int kk) const {
    const int plane = g.outH * g.outW, kg = g.k / g.groups;
    int i, p;
    g.divPlane.divmod(kk, i, p);
    return dy[(long long)(i * g.k + grp * kg + o) * plane + p];
  }
};
/** Filter gradient B [n outH outW, crs]: im2col(x) of sample i, transposed. */
struct ConvBwdFilterB {
  const float* x; ConvShape g;
  static constexpr bool kFast = true;
  __device__ __forceinline__ float operator()(int grp, int kk, int col) const {
    int i, p;
    g.divPlane.divmod(kk, i, p);
    return im2colAt(x, g, i, grp, col, p);
  }
};

// ---- epilogues: store(b, m, n, sum) for m < M, n < N ----

/**
 * C = alpha sum + beta C (C not read when beta = 0, so NaN in it never leaks through), then + bias[n]
 * and ReLU when given: the dense layer's gemm, biasAdd and in-place reluForward in one store.
 */
struct StoreGemm {
  float* c; int ldc; long long bstride; float alpha, beta;
  const float* bias = nullptr;
  bool relu = false;
  __device__ __forceinline__ void operator()(int b, int m, int n, float v) const {
    float* o = c + b * bstride + (long long)m * ldc + n;
    float r = beta == 0.f ? alpha * v : alpha * v + beta * *o;
    if (bias) r += bias[n];
    *o = relu ? reluKeepNan(r) : r;
  }
};
/** y[i, grp k/G + m, p] = sum + bias, then ReLU when fused (conv2dForward and an in-place reluForward). */
struct StoreConvFwd {
  float* y; const float* bias; ConvShape g;
  bool relu = false;
  __device__ __forceinline__ void operator()(int b, int m, int p, float v) const {
    const int i = b / g.groups, grp = b % g.groups, o = grp * (g.k / g.groups) + m;
    const float r = bias ? v + bias[o] : v;
    y[(long long)(i * g.k + o) * (g.outH * g.outW) + p] = relu ? reluKeepNan(r) : r;
  }
};
/** dx[i, grp c/G + m, p] = sum. */
struct StoreConvBwdData {
  float* dx; ConvShape g;
  __device__ __forceinline__ void operator()(int b, int m, int p, float v) const {
    const int i = b / g.groups, grp = b % g.groups;
    dx[(long long)(i * g.c + grp * (g.c / g.groups) + m) * (g.h * g.w) + p] = v;
  }
};
/** dw[grp k/G + m, col] = beta dw + sum. */
struct StoreConvBwdFilter {
  float* dw; ConvShape g; float beta;
  __device__ __forceinline__ void operator()(int grp, int m, int col, float v) const {
    const int crs = (g.c / g.groups) * g.r * g.s;
    float* o = dw + (long long)(grp * (g.k / g.groups) + m) * crs + col;
    *o = beta == 0.f ? v : beta * *o + v;
  }
};
/** Split-K partial: ws[z][m][n] with z = split * batch + b (the raw blockIdx.z). */
struct StorePartial {
  float* ws; int M, N;
  __device__ __forceinline__ void operator()(int z, int m, int n, float v) const {
    ws[((long long)z * M + m) * N + n] = v;
  }
};

/**
 * The global loads of one k-step's tiles, BM x BK of A and BK x BN of B, into registers (issued before
 * the current tiles are consumed, so their latency hides behind the FMAs), and their stores into shared
 * memory after the barrier: B as Bs[k][n]; A as As[k][m], or As[m][k] when ARowMajor (the TF32
 * kernel's fragments). Loads follow each loader's kFast order, so a warp's loads coalesce.
 */
template <int BM, int BN, int BK, int NT, class LA, class LB>
struct TileLoads {
  static constexpr int LA_N = BM * BK / NT, LB_N = BN * BK / NT;
  float ra[LA_N], rb[LB_N];
  // element e of a tile: (m, k) of A, (n, k) of B
  __device__ __forceinline__ static void aAt(int e, int& m, int& k) {
    m = LA::kFast ? e / BK : e % BM;
    k = LA::kFast ? e % BK : e / BM;
  }
  __device__ __forceinline__ static void bAt(int e, int& n, int& k) {
    n = LB::kFast ? e / BK : e % BN;
    k = LB::kFast ? e % BK : e / BN;
  }
  __device__ __forceinline__ void fetch(const LA& la, const LB& lb, int b, int m0, int n0, int k0, int M, int N, int kEnd,
                                        int tid) {
#pragma unroll
    for (int i = 0; i < LA_N; ++i) {
      int m, k;
      aAt(tid + i * NT, m, k);
      ra[i] = (m0 + m < M && k0 + k < kEnd) ? la(b, m0 + m, k0 + k) : 0.f;
    }
#pragma unroll
    for (int i = 0; i < LB_N; ++i) {
      int n, k;
      bAt(tid + i * NT, n, k);
      rb[i] = (n0 + n < N && k0 + k < kEnd) ? lb(b, k0 + k, n0 + n) : 0.f;
    }
  }
  template <bool ARowMajor, class SA, class SB>
  __device__ __forceinline__ void stage(SA& As, SB& Bs, int tid) const {
#pragma unroll
    for (int i = 0; i < LA_N; ++i) {
      int m, k;
      aAt(tid + i * NT, m, k);
      if (ARowMajor) As[m][k] = ra[i];
      else As[k][m] = ra[i];
    }
#pragma unroll
    for (int i = 0; i < LB_N; ++i) {
      int n, k;
      bAt(tid + i * NT, n, k);
      Bs[k][n] = rb[i];
    }
  }
  /**
   * The block's k-steps over [kBegin, kEnd): compute() consumes the staged tiles of one step while the
   * next step's loads are in flight; barriers before the tiles are overwritten and once the next ones
   * are complete (every thread of the block runs this, so the barriers are never divergent).
   */
  template <bool ARowMajor, class SA, class SB, class F>
  __device__ __forceinline__ void steps(const LA& la, const LB& lb, SA& As, SB& Bs, int b, int m0, int n0, int M, int N,
                                        int kBegin, int kEnd, int tid, F compute) {
    if (kBegin < kEnd) {
      fetch(la, lb, b, m0, n0, kBegin, M, N, kEnd, tid);
      stage<ARowMajor>(As, Bs, tid);
    }
    __syncthreads();
    for (int k0 = kBegin; k0 < kEnd; k0 += BK) {
      const bool more = k0 + BK < kEnd;
      if (more) fetch(la, lb, b, m0, n0, k0 + BK, M, N, kEnd, tid);
      compute();
      __syncthreads();  // everyone is done reading the tiles
      if (more) {
        stage<ARowMajor>(As, Bs, tid);
        __syncthreads();  // the next tiles are complete
      }
    }
  }
};

/**
 * The tiled kernel. Grid (ceil(N / BN), ceil(M / BM), splits * batch), launched in pieces of at most
 * 65535 in y and z (gridDim's limits): block (x, y, z) computes the tile at row block y + yBase of
 * batch and split z + zBase. Block Tile::kThreads.
 * Each k-step: the block stages a BM x BK tile of A and a BK x BN tile of B in shared memory
 * (barrier), every thread accumulates its TM x TN outputs from them with float4 reads (barrier before
 * the next step overwrites the tiles), while the next step's tiles are already on their way into
 * registers. The epilogue goes through shared memory too, one row of each thread's tile at a time, so
 * that consecutive threads store consecutive columns (coalesced), whatever the register tiling.
 */
template <class Tile, class LA, class LB, class Epi, bool Partial>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks)
gemmKernel(LA la, LB lb, Epi epi, int M, int N, int K, int batch, int kChunk, int zBase, int yBase) {
  constexpr int BM = Tile::BM, BN = Tile::BN, BK = Tile::BK, TM = Tile::TM, TN = Tile::TN;
  constexpr int NT = Tile::kThreads, CM = Tile::CM, CN = Tile::CN;
  __shared__ __align__(16) float smem[Tile::kSmemFloats];
  float(*As)[BM + 4] = reinterpret_cast<float(*)[BM + 4]>(smem);
  float(*Bs)[BN + 4] = reinterpret_cast<float(*)[BN + 4]>(smem + BK * (BM + 4));
  const int tid = threadIdx.x;
  const int z = blockIdx.z + zBase, b = z % batch, split = z / batch;
  const int m0 = (blockIdx.y + yBase) * BM, n0 = blockIdx.x * BN;
  const int kBegin = split * kChunk, kEnd = imin(K, kBegin + kChunk);
  const int tx = tid % (BN / TN), ty = tid / (BN / TN);
  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

  TileLoads<BM, BN, BK, NT, LA, LB> loads;
  loads.template steps<false>(la, lb, As, Bs, b, m0, n0, M, N, kBegin, kEnd, tid, [&] {
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      float a[TM], bv[TN];
#pragma unroll
      for (int i = 0; i < TM; i += CM) {
        if (CM == 4) {
          const float4 q = *reinterpret_cast<const float4*>(&As[k][Tile::rowOf(ty, i)]);
          a[i] = q.x, a[i + 1] = q.y, a[i + 2] = q.z, a[i + 3] = q.w;
        } else {
          a[i] = As[k][Tile::rowOf(ty, i)];
        }
      }
#pragma unroll
      for (int j = 0; j < TN; j += CN) {
        if (CN == 4) {
          const float4 q = *reinterpret_cast<const float4*>(&Bs[k][Tile::colOf(tx, j)]);
          bv[j] = q.x, bv[j + 1] = q.y, bv[j + 2] = q.z, bv[j + 3] = q.w;
        } else {
          bv[j] = Bs[k][Tile::colOf(tx, j)];
        }
      }
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], bv[j], acc[i][j]);
    }
  });
  // Epilogue: pass i stages row slot i of every thread's tile (BM / TM rows of the block's tile) in
  // shared memory, then the block stores those rows with consecutive threads on consecutive columns.
  constexpr int ROWS = BM / TM;
  float(*Cs)[BN + 4] = reinterpret_cast<float(*)[BN + 4]>(smem);
#pragma unroll
  for (int i = 0; i < TM; ++i) {  // unrolled: acc stays in registers (a run-time i would put it in local memory)
    __syncthreads();  // the k-loop's (or the previous pass's) reads of shared memory are done
#pragma unroll
    for (int j = 0; j < TN; j += CN) {
      if (CN == 4) {
        *reinterpret_cast<float4*>(&Cs[ty][Tile::colOf(tx, j)]) = make_float4(acc[i][j], acc[i][j + 1], acc[i][j + 2], acc[i][j + 3]);
      } else {
        Cs[ty][Tile::colOf(tx, j)] = acc[i][j];
      }
    }
    __syncthreads();
#pragma unroll
    for (int e = tid; e < ROWS * BN; e += NT) {
      const int r = e / BN, cc = e % BN;  // BN is a power of two: shifts
      const int gm = m0 + Tile::rowOf(r, i), gn = n0 + cc;
      if (gm < M && gn < N) epi(Partial ? z : b, gm, gn, Cs[r][cc]);
    }
  }
}

/**
 * The TF32 tensor-core variant (opt-in: cuda.setTf32(true); sm_80 and newer). Same loaders, stores,
 * split-K and register prefetch as gemmKernel; the block's 128 x 128 tile is computed by 8 warps, each
 * a 64 x 32 sub-tile of 4 x 2 wmma 16x16x8 fragments, inputs rounded to TF32 (10-bit mantissa), sums in
 * float. Results differ from float32 by about 1e-3 relative, which is why it is off by default.
 */
using TileTc = GemmTile<128, 128, 8, 8, 8, 2>;  // 256 threads; TM/TN only size the loads here

template <class LA, class LB, class Epi, bool Partial>
__global__ void __launch_bounds__(256, 2)
gemmKernelTf32(LA la, LB lb, Epi epi, int M, int N, int K, int batch, int kChunk, int zBase, int yBase) {
  using namespace nvcuda;
  constexpr int BM = 128, BN = 128, BK = 8, NT = 256;
  __shared__ __align__(32) float As[BM][BK + 4];   // row-major (m, k): ldm 12
  __shared__ __align__(32) float Bs[BK][BN + 4];   // row-major (k, n): ldm 132
  __shared__ __align__(32) float Cs[8][16 * 16];   // one 16x16 staging tile per warp for the stores
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int wm = (warp / 4) * 64, wn = (warp % 4) * 32;  // warps laid out 2 (rows) x 4 (columns)
  const int z = blockIdx.z + zBase, b = z % batch, split = z / batch;
  const int m0 = (blockIdx.y + yBase) * BM, n0 = blockIdx.x * BN;
  const int kBegin = split * kChunk, kEnd = imin(K, kBegin + kChunk);
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[4][2];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  TileLoads<BM, BN, BK, NT, LA, LB> loads;
  loads.template steps<true>(la, lb, As, Bs, b, m0, n0, M, N, kBegin, kEnd, tid, [&] {
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa[4];
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb[2];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      wmma::load_matrix_sync(fa[i], &As[wm + 16 * i][0], BK + 4);
#pragma unroll
      for (int t = 0; t < fa[i].num_elements; ++t) fa[i].x[t] = wmma::__float_to_tf32(fa[i].x[t]);
    }
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      wmma::load_matrix_sync(fb[j], &Bs[0][wn + 16 * j], BN + 4);
#pragma unroll
      for (int t = 0; t < fb[j].num_elements; ++t) fb[j].x[t] = wmma::__float_to_tf32(fb[j].x[t]);
    }
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
  });
  // Stores: each fragment goes through the warp's staging tile, then every lane writes 8 of its 256
  // values through the epilogue (bounds-checked, so edge tiles need no special case).
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      wmma::store_matrix_sync(Cs[warp], acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) {
        const int gm = m0 + wm + 16 * i + e / 16, gn = n0 + wn + 16 * j + e % 16;
        if (gm < M && gn < N) epi(Partial ? z : b, gm, gn, Cs[warp][e]);
      }
      __syncwarp();
    }
}

/**
 * out(b, m, n) = sum over splits of ws[split * batch + b][m][n], in split order. The workspace is one
 * buffer (below 2^31 elements), so indices fit in int and split with fast division.
 */
template <class Epi>
__global__ void __launch_bounds__(kThreads, 4)
gemmSplitReduce(const float* ws, Epi epi, int M, int N, int batch, int splits, FastDiv divN, FastDiv divM) {
  const long long total = (long long)batch * M * N;
  ALEXNET_GRID_STRIDE(idx, total) {
    float s = 0.f;
    for (int q = 0; q < splits; ++q) s += ws[(long long)q * total + idx];
    int bm, n, b, m;
    divN.divmod((int)idx, bm, n);
    divM.divmod(bm, b, m);
    epi(b, m, n, s);
  }
}

}  // namespace cuda
}  // namespace alexnet
