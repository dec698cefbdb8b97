// The CPU engine's kernels on raw float32 pointers (shapes in the comments; validation happens in
// addon.cpp before anything is queued). Every kernel runs on the calling engine thread and the
// workers of `ctx.pool`.
#pragma once
#include <cstddef>
#include <cstdint>

#include "../common/geometry.h"
#include "threadpool.h"

namespace alexnet {

/** Per-engine scratch memory, reused across ops (only the engine's queue thread asks for it). */
class Workspace {
 public:
  ~Workspace();
  /** At least n floats, 64-byte aligned, in slot 0..3; contents undefined. */
  float* get(int slot, size_t n);
  void release();
 private:
  float* p_[4] = {nullptr, nullptr, nullptr, nullptr};
  size_t cap_[4] = {0, 0, 0, 0};
};

struct Ctx {
  ThreadPool& pool;
  Workspace& ws;
};

// ---- data movement ----
void fillBytes(Ctx& ctx, void* dst, int64_t n, int elemBytes, const void* pattern);
void randomUniform(Ctx& ctx, float* out, int64_t n, uint64_t seed, uint64_t offset, double a, double b);
void randomNormal(Ctx& ctx, float* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double std);
/** dst[i, dstOff + j, :] = src[i, srcOff + j, :] for planes of hw elements of elemBytes each. */
void channelCopy(Ctx& ctx, const uint8_t* src, uint8_t* dst, int64_t n, int64_t hw, int64_t srcC, int64_t srcOff,
                 int64_t dstC, int64_t dstOff, int64_t count, int elemBytes);

// ---- elementwise ----
void axpy(Ctx& ctx, float alpha, const float* x, float* y, int64_t n);
void scale(Ctx& ctx, float alpha, float* x, int64_t n);
void add(Ctx& ctx, const float* a, const float* b, float* out, int64_t n);
/** y [n, c, hw] += bias[c]. */
void biasAdd(Ctx& ctx, float* y, const float* bias, int64_t n, int64_t c, int64_t hw);
/** db[c] = beta db[c] + sum over n, hw of dy [n, c, hw] (double accumulation). */
void biasGrad(Ctx& ctx, const float* dy, float* db, int64_t n, int64_t c, int64_t hw, float beta);
void reluForward(Ctx& ctx, const float* x, float* y, int64_t n);
void reluBackward(Ctx& ctx, const float* y, const float* dy, float* dx, int64_t n);

// ---- convolution: im2col + the one GEMM (batched over samples), col2im for the data gradient ----
void conv2dForward(Ctx& ctx, const float* x, const float* w, const float* bias, float* y, const ConvGeometry& g);
void conv2dBackwardData(Ctx& ctx, const float* dy, const float* w, float* dx, const ConvGeometry& g);
void conv2dBackwardFilter(Ctx& ctx, const float* x, const float* dy, float* dw, float* db, const ConvGeometry& g,
                          float beta);

// ---- LRN (§3.3): one fused pass each way ----
void lrnForward(Ctx& ctx, const float* x, float* y, const LrnParams& p, int64_t n, int64_t c, int64_t hw);
void lrnBackward(Ctx& ctx, const float* x, const float* y, const float* dy, float* dx, const LrnParams& p, int64_t n,
                 int64_t c, int64_t hw);

// ---- max pooling (§3.4); returns the number of out-of-range argmax entries skipped ----
void maxPoolForward(Ctx& ctx, const float* x, float* y, int32_t* argmax, const PoolGeometry& g);
int64_t maxPoolBackward(Ctx& ctx, const float* dy, const int32_t* argmax, float* dx, const PoolGeometry& g);

// ---- dropout (§4.2), mask regenerated from (seed, offset) ----
void dropout(Ctx& ctx, const float* x, float* y, int64_t n, double p, uint64_t seed, uint64_t offset);

// ---- loss, metrics ----
void softmaxCrossEntropy(Ctx& ctx, const float* logits, const int32_t* labels, float* loss, float* dlogits, int64_t n,
                         int64_t c);
void softmax(Ctx& ctx, const float* x, float* y, int64_t n, int64_t c);
int32_t topkCorrect(Ctx& ctx, const float* logits, const int32_t* labels, int64_t n, int64_t c, int64_t k);

// ---- SGD (§5) ----
void sgdUpdate(Ctx& ctx, float* w, const float* g, float* v, int64_t n, float lr, float momentum, float wd,
               bool paperForm);

}  // namespace alexnet
