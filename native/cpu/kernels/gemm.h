// The one GEMM entry point of the CPU engine (fully connected layers and every convolution).
#pragma once
#include <cstdint>
#include "../isa.h"
#include "../threadpool.h"

namespace alexnet {

/**
 * C[m, n] = alpha op(A) op(B) + beta C, row-major with leading dimensions (elements per stored row).
 * op(A) is m x k: A is stored [m, lda] or, when transA, [k, lda]. op(B) is k x n: B is stored
 * [k, ldb] or, when transB, [n, ldb]. beta = 0 never reads C. Runs on every thread of `pool`.
 */
void sgemm(ThreadPool& pool, bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

/** Same, on the calling thread only (used inside already-parallel loops). */
void sgemmSerial(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

/**
 * The same with B already packed (by the caller, e.g. im2col straight into panels, skipping one pass
 * over memory): B panel q holds columns [q nr, q nr + nr) of op(B) for all k rows, element (p, j) at
 * Bp[q k nr + p nr + j], columns past n zero. `isa` must be the one whose panel width nr was used.
 */
void sgemmPackedB(ThreadPool& pool, Isa isa, bool transA, int64_t m, int64_t n, int64_t k, float alpha,
                  const float* A, int64_t lda, const float* Bp, float beta, float* C, int64_t ldc,
                  const float* Ap = nullptr);

/**
 * Packs op(A) (m x k) once for several sgemmPackedB calls (Ap argument; A and lda are then unused):
 * mr-row panels over all of k, panel i at dst[i k mr], element (row r, p) at + p mr + r. dst holds
 * gemmPackedASize(isa, m, k) floats.
 */
void gemmPackA(Isa isa, bool transA, const float* A, int64_t lda, int64_t m, int64_t k, float* dst);
int64_t gemmPackedASize(Isa isa, int64_t m, int64_t k);
/** Panel height mr of the GEMM kernel of `isa` (row panels of a packed A start at multiples of it). */
int gemmPanelHeight(Isa isa);

/** Panel width nr of the GEMM kernel of `isa` (for callers that pack B themselves). */
int gemmPanelWidth(Isa isa);

/** Blocking of the active ISA's kernel, for the docs and the bench. */
struct GemmBlocking { int mr, nr; int64_t kc, mc, nc; const char* kernel; };
GemmBlocking gemmBlocking();

// ---- bf16 GEMM (gemm_bf16.cpp; docs/cpu-engine.md, "bf16"): used when activePrecision() is Bf16 ----
// op(A) and op(B) are rounded to bf16 (nearest even; NaN stays NaN) while packed, as pairs along k
// in 32-bit words (element 2pp in the low half, 2pp + 1 in the high half, zeros pad k), and multiplied
// with each bf16 x bf16 product exact in fp32, summed into fp32 accumulators; alpha, beta and C are
// fp32. Two micro-kernels, chosen at run time: AMX-BF16 tiles (TDPBF16PS, 32 x 32 of C in four tiles)
// where the CPU has them and Linux grants the tile state, else AVX512_BF16's vdpbf16ps (14 x 32 in
// zmm registers). The packed layouts differ between the two, so callers that pre-pack pass the
// kernel they packed for.

enum class Bf16Kernel : int { None = 0, Avx512Bf16 = 1, Amx = 2 };
/** The best bf16 kernel of this CPU (None without AVX512_BF16). */
Bf16Kernel detectBf16Kernel();
/** The kernel bf16 GEMMs use now (detectBf16Kernel(), or ALEXNET_BF16_KERNEL=avx512bf16 / setBf16Kernel). */
Bf16Kernel activeBf16Kernel();
/** Forces a kernel this CPU has; returns false when it lacks it. */
bool setBf16Kernel(Bf16Kernel k);
const char* bf16KernelName(Bf16Kernel k);

/** Panel width of packed B (columns of op(B)), both kernels. */
constexpr int kBf16Nr = 32;
/** Panel height of packed A: 14 rows (vdpbf16ps) or 32 (AMX). */
int bgemmPanelHeight(Bf16Kernel kern);
/** Pairs a packed panel holds for k values of the k dimension: (k + 1) / 2, rounded up to 16 for AMX. */
int64_t bgemmPairs(Bf16Kernel kern, int64_t k);

/** sgemm's contract with bf16 inputs, on the active bf16 kernel. */
void bgemm(ThreadPool& pool, bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

/**
 * bgemm with B pre-packed as bf16 pairs: panel q (columns [32 q, 32 q + 32) of op(B)) holds
 * kh = bgemmPairs(kern, k) pairs of rows, word (pp, j) at Bp[q kh 32 + pp 32 + j]; with Ap, A
 * pre-packed by bgemmPackA for the same kernel (A and lda unused).
 */
void bgemmPackedB(ThreadPool& pool, Bf16Kernel kern, bool transA, int64_t m, int64_t n, int64_t k, float alpha,
                  const float* A, int64_t lda, const uint32_t* Bp, float beta, float* C, int64_t ldc,
                  const uint32_t* Ap = nullptr);

/**
 * op(A) (m x k) as bf16 pairs in panels of bgemmPanelHeight(kern) rows over all of k: panel i at
 * dst[i kh mr] (kh = bgemmPairs(kern, k)); rows start at multiples of mr.
 */
void bgemmPackA(Bf16Kernel kern, bool transA, const float* A, int64_t lda, int64_t m, int64_t k, uint32_t* dst);
/** Words of bgemmPackA's result. */
int64_t bgemmPackedASize(Bf16Kernel kern, int64_t m, int64_t k);

/**
 * `panels` fp32 B panels of sgemmPackedB's layout with nr = 32 (panel q at src[q k 32], k rows) as
 * bgemmPackedB's bf16 panels for `kern` (parallel on pool).
 */
void bgemmPanelsFromFp32(ThreadPool& pool, Bf16Kernel kern, const float* src, int64_t k, int64_t panels,
                         uint32_t* dst);

/** Seconds-long FMA loop with no memory traffic: the machine's peak GFLOP/s on `threads` threads. */
double measurePeakGflops(ThreadPool& pool, double seconds);

}  // namespace alexnet
