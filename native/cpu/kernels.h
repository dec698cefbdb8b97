// The CPU engine's kernels on raw pointers, by op family: each section is one file of kernels/, named
// as the CUDA engine's kernels/*.cuh are (conv, lrn, pool, elementwise, loss; gemm). Arguments were
// checked by native/common/ops.h before anything was queued. Every kernel runs on the calling engine
// thread and the workers of `pool`; scratch is kernels/common.h's.
#pragma once
#include <cstddef>
#include <cstdint>

#include "../common/geometry.h"
#include "threadpool.h"

namespace alexnet {

// ---- kernels/elementwise.cpp: data movement, elementwise ops, dropout (§4.2), SGD (§5) ----
/** Every element of dst (n elements of elemBytes each: 1 or 4) set to the low elemBytes of pattern. */
void fill(ThreadPool& pool, void* dst, int64_t n, int elemBytes, uint32_t pattern);
void randomUniform(ThreadPool& pool, float* out, int64_t n, uint64_t seed, uint64_t offset, double a, double b);
void randomNormal(ThreadPool& pool, float* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double std);
/** dst[i, dstOff + j, :] = src[i, srcOff + j, :] for planes of hw elements of elemBytes each. */
void channelCopy(ThreadPool& pool, const uint8_t* src, uint8_t* dst, int64_t n, int64_t hw, int64_t srcC,
                 int64_t srcOff, int64_t dstC, int64_t dstOff, int64_t count, int elemBytes);
void axpy(ThreadPool& pool, float alpha, const float* x, float* y, int64_t n);
void scale(ThreadPool& pool, float alpha, float* x, int64_t n);
void add(ThreadPool& pool, const float* a, const float* b, float* out, int64_t n);
/** y [n, c, hw] += bias[c]. */
void biasAdd(ThreadPool& pool, float* y, const float* bias, int64_t n, int64_t c, int64_t hw);
/** db[c] = beta db[c] + sum over n, hw of dy [n, c, hw] (double accumulation). */
void biasGrad(ThreadPool& pool, const float* dy, float* db, int64_t n, int64_t c, int64_t hw, float beta);
void reluForward(ThreadPool& pool, const float* x, float* y, int64_t n);
void reluBackward(ThreadPool& pool, const float* y, const float* dy, float* dx, int64_t n);
/** y = tanh(x) (y may be x), max relative error 1.5e-7; dx = dy (1 - y²) (dx may be dy). */
void tanhForward(ThreadPool& pool, const float* x, float* y, int64_t n);
void tanhBackward(ThreadPool& pool, const float* y, const float* dy, float* dx, int64_t n);
/** y = u >= p ? x / (1 - p) : 0, u the uniform draw at offset + i (the mask is regenerated, never stored). */
void dropout(ThreadPool& pool, const float* x, float* y, int64_t n, double p, uint64_t seed, uint64_t offset);
void sgdUpdate(ThreadPool& pool, float* w, const float* g, float* v, int64_t n, float lr, float momentum, float wd,
               bool paperForm);

// ---- kernels/conv.cpp: im2col + the one GEMM (batched over samples), col2im for the data gradient ----
void conv2dForward(ThreadPool& pool, const float* x, const float* w, const float* bias, float* y,
                   const ConvGeometry& g);
void conv2dBackwardData(ThreadPool& pool, const float* dy, const float* w, float* dx, const ConvGeometry& g);
void conv2dBackwardFilter(ThreadPool& pool, const float* x, const float* dy, float* dw, float* db,
                          const ConvGeometry& g, float beta);

// ---- kernels/lrn.cpp (§3.3): one fused pass each way ----
void lrnForward(ThreadPool& pool, const float* x, float* y, const LrnParams& p, int64_t n, int64_t c, int64_t hw);
void lrnBackward(ThreadPool& pool, const float* x, const float* y, const float* dy, float* dx, const LrnParams& p,
                 int64_t n, int64_t c, int64_t hw);

// ---- kernels/pool.cpp (§3.4); backward returns the number of out-of-range argmax entries skipped ----
void maxPoolForward(ThreadPool& pool, const float* x, float* y, int32_t* argmax, const PoolGeometry& g);
int64_t maxPoolBackward(ThreadPool& pool, const float* dy, const int32_t* argmax, float* dx, const PoolGeometry& g);

// ---- kernels/loss.cpp: softmax cross-entropy, softmax, top-k (§6) ----
void softmaxCrossEntropy(ThreadPool& pool, const float* logits, const int32_t* labels, float* loss, float* dlogits,
                         int64_t n, int64_t c);
void softmax(ThreadPool& pool, const float* x, float* y, int64_t n, int64_t c);
int32_t topkCorrect(const float* logits, const int32_t* labels, int64_t n, int64_t c, int64_t k);

// kernels/gemm.h: sgemm and its packed forms (fully connected layers and every convolution).

}  // namespace alexnet
