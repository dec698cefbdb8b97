// The CUDA engine (see engine.h). The same source is compiled by nvcc against the CUDA runtime and by
// g++ against emu/cuda_emu.h: every call below is a real runtime call in one build and its emulation
// in the other, so the emulated conformance run exercises this exact code path.
#include "engine.h"

#include <string.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/common.cuh"
#include "kernels/conv.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/gemm.cuh"
#include "kernels/lrn.cuh"
#include "kernels/loss.cuh"
#include "kernels/pool.cuh"

namespace alexnet {
namespace cuda {

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

#define ALEXNET_CHECK_LAUNCH(what) check(cudaGetLastError(), what)

inline cudaStream_t S(void* s) { return static_cast<cudaStream_t>(s); }

bool gTf32 = false;

size_t roundBytes(size_t bytes) {
  if (bytes == 0) bytes = 1;
  return (bytes + 511) / 512 * 512;
}

}  // namespace

// TF32 tensor cores for the GEMM-shaped work (gemm and the implicit-GEMM convolutions with M, N >= 64):
// off by default, so that results match float32 (TF32 keeps 10 mantissa bits of each input).
void setTf32(bool on) { gTf32 = on; }
bool tf32() { return gTf32; }

Probe probe() {
  Probe p;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    p.reason = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorString(e);
    return p;
  }
  if (count == 0) {
    p.reason = "no CUDA device found";
    return p;
  }
  p.available = true;
  p.gpus = count;
#if !defined(ALEXNET_CUDA_EMU)
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) p.name = prop.name;
#else
  p.name = "emulated GPU (host threads)";
#endif
  return p;
}

int logicalDeviceCount() {
  Probe p = probe();
  if (!p.available) return 0;
  return p.gpus < 2 ? 2 : p.gpus;
}

struct Engine::Staging {
  void* host = nullptr;
  size_t bytes = 0;
  cudaEvent_t done = nullptr;  // the last copy that used it
  bool busy = false;           // held by a read whose result has not been taken yet
};

struct Pending {
  Engine* engine = nullptr;
  Engine::Staging* staging = nullptr;
  cudaEvent_t event = nullptr;
  size_t bytes = 0;
};

Engine::Engine(int logicalIndex) : index_(logicalIndex) {
  Probe p = probe();
  if (!p.available) throw std::runtime_error(p.reason);
  physical_ = logicalIndex % p.gpus;  // fewer GPUs than devices: logical devices share one, own stream and memory
  use();
  check(cudaDeviceGetAttribute(&sms_, cudaDevAttrMultiProcessorCount, physical_), "cudaDeviceGetAttribute");
  cudaStream_t s;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  stream_ = s;
}

Engine::~Engine() {
  use();
  cudaStreamSynchronize(S(stream_));
  if (ws_.ptr) devFree(ws_.ptr, ws_.capacity);
  emptyCache();
  for (auto& st : staging_) {
    if (st->done) cudaEventDestroy(st->done);
    cudaFreeHost(st->host);
  }
  cudaStreamDestroy(S(stream_));
}

void Engine::use() const {
  thread_local int current = -1;
  if (current != physical_) {
    check(cudaSetDevice(physical_), "cudaSetDevice");
    current = physical_;
  }
}

// ---- caching allocator: cudaMalloc on a miss, blocks come back to a per-engine free list ----
void* Engine::devAlloc(size_t bytes, size_t* capacity) {
  const size_t want = roundBytes(bytes);
  auto it = cache_.lower_bound(want);
  if (it != cache_.end() && it->first <= want + want / 4) {
    void* p = it->second;
    *capacity = it->first;
    cachedBytes_ -= it->first;
    cache_.erase(it);
    inUse_ += *capacity;
    return p;
  }
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, want);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear, free what the cache holds, try once more
    emptyCache();
    e = cudaMalloc(&p, want);
  }
  if (e != cudaSuccess) {
    throw std::runtime_error("out of device memory allocating " + std::to_string(bytes) + " bytes on cuda:" +
                             std::to_string(index_) + " (" + std::to_string(inUse_) + " bytes in use): " +
                             cudaGetErrorString(e));
  }
  *capacity = want;
  inUse_ += want;
  return p;
}

void Engine::devFree(void* p, size_t capacity) {
  inUse_ -= capacity;
  cachedBytes_ += capacity;
  cache_.emplace(capacity, p);
}

void Engine::emptyCache() {
  use();
  if (cache_.empty()) return;
  cudaStreamSynchronize(S(stream_));
  for (auto& kv : cache_) cudaFree(kv.second);
  cache_.clear();
  cachedBytes_ = 0;
}

Buffer* Engine::alloc(int dtype, int64_t length) {
  use();
  if (dtype == kF64) throw std::runtime_error("float64 buffers are only supported by the reference backend");
  auto* b = new Buffer();
  b->dtype = dtype;
  b->elemBytes = dtype == kU8 ? 1 : 4;
  b->length = length;
  try {
    b->ptr = devAlloc((size_t)length * b->elemBytes, &b->capacity);
  } catch (...) {
    delete b;
    throw;
  }
  return b;
}

void Engine::release(Buffer* b) {
  if (!b) return;
  devFree(b->ptr, b->capacity);
  delete b;
}

float* Engine::workspace(size_t floats) {
  const size_t bytes = floats * 4;
  if (ws_.capacity < bytes) {
    if (ws_.ptr) devFree(ws_.ptr, ws_.capacity);  // stream-ordered: earlier kernels still see valid memory
    ws_.ptr = nullptr;
    ws_.ptr = devAlloc(bytes, &ws_.capacity);
  }
  return static_cast<float*>(ws_.ptr);
}

// ---- host <-> device through pinned staging buffers ----
Engine::Staging* Engine::acquireStaging(size_t bytes) {
  Staging* best = nullptr;
  for (auto& st : staging_) {
    if (st->busy || st->bytes < bytes) continue;
    if (st->done && cudaEventQuery(st->done) != cudaSuccess) continue;
    if (!best || st->bytes < best->bytes) best = st.get();
  }
  if (!best) {
    auto st = std::make_unique<Staging>();
    st->bytes = bytes < (1u << 20) ? (1u << 20) : bytes;
    check(cudaMallocHost(&st->host, st->bytes), "cudaMallocHost");
    check(cudaEventCreateWithFlags(&st->done, cudaEventDisableTiming), "cudaEventCreate");
    best = st.get();
    staging_.push_back(std::move(st));
  }
  return best;
}

void Engine::write(Buffer* b, const void* data, int64_t offset, int64_t length) {
  use();
  const size_t bytes = (size_t)length * b->elemBytes;
  if (!bytes) return;
  Staging* st = acquireStaging(bytes);
  memcpy(st->host, data, bytes);
  check(cudaMemcpyAsync(static_cast<char*>(b->ptr) + offset * b->elemBytes, st->host, bytes, cudaMemcpyHostToDevice,
                        S(stream_)), "cudaMemcpyAsync (write)");
  check(cudaEventRecord(st->done, S(stream_)), "cudaEventRecord");
}

void Engine::readSync(Buffer* b, int64_t offset, int64_t length, void* out) {
  Pending* p = readAsync(b, offset, length);
  waitPending(p);
  finishPending(p, out);
}

Pending* Engine::readAsync(Buffer* b, int64_t offset, int64_t length) {
  use();
  auto* p = new Pending();
  p->engine = this;
  p->bytes = b ? (size_t)length * b->elemBytes : 0;
  if (p->bytes) {
    p->staging = acquireStaging(p->bytes);
    p->staging->busy = true;
    check(cudaMemcpyAsync(p->staging->host, static_cast<char*>(b->ptr) + offset * b->elemBytes, p->bytes,
                          cudaMemcpyDeviceToHost, S(stream_)), "cudaMemcpyAsync (read)");
  }
  check(cudaEventCreateWithFlags(&p->event, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventRecord(p->event, S(stream_)), "cudaEventRecord");
  if (p->staging) check(cudaEventRecord(p->staging->done, S(stream_)), "cudaEventRecord");
  return p;
}

Pending* Engine::syncAsync() { return readAsync(nullptr, 0, 0); }

void Engine::waitPending(Pending* p) { check(cudaEventSynchronize(p->event), "cudaEventSynchronize"); }

void Engine::finishPending(Pending* p, void* out) {
  if (p->staging) {
    if (out) memcpy(out, p->staging->host, p->bytes);
    p->staging->busy = false;
  }
  cudaEventDestroy(p->event);
  delete p;
}

void Engine::synchronize() {
  use();
  check(cudaStreamSynchronize(S(stream_)), "cudaStreamSynchronize");
}

void* Engine::recordEvent() {
  use();
  cudaEvent_t e;
  check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventRecord(e, S(stream_)), "cudaEventRecord");
  return e;
}

void Engine::waitEvent(void* event) {
  use();
  check(cudaStreamWaitEvent(S(stream_), static_cast<cudaEvent_t>(event), 0), "cudaStreamWaitEvent");
}

void Engine::destroyEvent(void* event) { cudaEventDestroy(static_cast<cudaEvent_t>(event)); }

void Engine::setThreads(int threads) {
  threads_ = threads;
#if defined(ALEXNET_CUDA_EMU)
  emu::setStreamThreads(S(stream_), threads);
#endif
}

int Engine::getThreads() const {
  return threads_;
}

int Engine::gridFor(long long n) const {
  long long blocks = (n + kThreads - 1) / kThreads;
  const long long cap = (long long)sms_ * 16;
  if (blocks > cap) blocks = cap;
  return blocks < 1 ? 1 : (int)blocks;
}

// ---- data movement ----
void Engine::fill(Buffer* b, double value) {
  use();
  if (!b->length) return;
  if (b->dtype == kU8) {
    check(cudaMemsetAsync(b->ptr, (int)(uint8_t)(int)value, (size_t)b->length, S(stream_)), "cudaMemsetAsync");
    return;
  }
  uint32_t bits;
  if (b->dtype == kI32) {
    int32_t v = (int32_t)value;
    memcpy(&bits, &v, 4);
  } else {
    float v = (float)value;
    memcpy(&bits, &v, 4);
  }
  uint32_t* p = static_cast<uint32_t*>(b->ptr);
  long long n = b->length;
  ALEXNET_LAUNCH(fill32Kernel, gridFor(n), kThreads, S(stream_), p, bits, n);
  ALEXNET_CHECK_LAUNCH("fill");
}

void Engine::random(Buffer* b, bool normal, uint64_t seed, uint64_t offset, double a, double bb) {
  use();
  if (!b->length) return;
  float* out = static_cast<float*>(b->ptr);
  long long len = b->length;
  unsigned long long sd = seed, off = offset;
  int nrm = normal ? 1 : 0;
  ALEXNET_LAUNCH(randomKernel, gridFor(len / 4 + 2), kThreads, S(stream_), out, len, sd, off, nrm, a, bb);
  ALEXNET_CHECK_LAUNCH("random");
}

void Engine::copy(Buffer* src, int64_t srcOffset, Buffer* dst, int64_t dstOffset, int64_t length) {
  use();
  if (!length) return;
  check(cudaMemcpyAsync(static_cast<char*>(dst->ptr) + dstOffset * dst->elemBytes,
                        static_cast<char*>(src->ptr) + srcOffset * src->elemBytes, (size_t)length * src->elemBytes,
                        cudaMemcpyDeviceToDevice, S(stream_)), "cudaMemcpyAsync (copy)");
}

void Engine::copyToPeer(Buffer* src, Engine* peer, Buffer* dst, int64_t length) {
  use();
  if (!length) return;
  const size_t bytes = (size_t)length * src->elemBytes;
  if (peer->physical_ == physical_) {
    check(cudaMemcpyAsync(dst->ptr, src->ptr, bytes, cudaMemcpyDeviceToDevice, S(stream_)), "cudaMemcpyAsync (peer)");
  } else {
    check(cudaMemcpyPeerAsync(dst->ptr, peer->physical_, src->ptr, physical_, bytes, S(stream_)),
          "cudaMemcpyPeerAsync");
  }
}

void Engine::channelCopy(Buffer* src, Buffer* dst, int64_t n, int64_t hw, int64_t srcC, int64_t srcOffset, int64_t dstC,
                         int64_t dstOffset, int64_t count) {
  use();
  if (!n || !hw || !count) return;
  const size_t eb = src->elemBytes;
  // n rows of count * hw contiguous elements: a 2-D copy with the two channel pitches.
  check(cudaMemcpy2DAsync(static_cast<char*>(dst->ptr) + dstOffset * hw * eb, dstC * hw * eb,
                          static_cast<char*>(src->ptr) + srcOffset * hw * eb, srcC * hw * eb, count * hw * eb, n,
                          cudaMemcpyDeviceToDevice, S(stream_)), "cudaMemcpy2DAsync (channelCopy)");
}

// ---- GEMM: tile choice and split-K ----
template <bool Tc, class Tile, class LA, class LB, class Epi, bool Partial>
auto kernelFor() {
  if constexpr (Tc) return &gemmKernelTf32<LA, LB, Epi, Partial>;
  else return &gemmKernel<Tile, LA, LB, Epi, Partial>;
}

template <class Tile, bool Tc, class LA, class LB, class Epi>
void Engine::gemmRun(LA la, LB lb, Epi epi, int M, int N, int K, int batch) {
  const int gx = (N + Tile::BN - 1) / Tile::BN, gy = (M + Tile::BM - 1) / Tile::BM;
  const long long tiles = (long long)gx * gy * batch;
  const long long target = 2LL * sms_;  // two waves' worth of blocks
  int splits = 1;
  if (tiles < target && K >= 256) {
    long long want = (target + tiles - 1) / tiles;
    long long maxByK = K / 128;
    splits = (int)(want < maxByK ? want : maxByK);
    if (splits > 32) splits = 32;
    if (splits < 1) splits = 1;
  }
  int kChunk = K < 1 ? 1 : K;
  if (splits > 1) {
    kChunk = ((K + splits - 1) / splits + Tile::BK - 1) / Tile::BK * Tile::BK;
    splits = (K + kChunk - 1) / kChunk;
  }
  if (splits == 1) {
    auto kern = kernelFor<Tc, Tile, LA, LB, Epi, false>();
    ALEXNET_LAUNCH(kern, dim3(gx, gy, batch), Tile::kThreads, S(stream_), la, lb, epi, M, N, K, batch, kChunk);
    ALEXNET_CHECK_LAUNCH("gemm");
    return;
  }
  float* ws = workspace((size_t)splits * batch * M * N);
  StorePartial part{ws, M, N};
  auto kern = kernelFor<Tc, Tile, LA, LB, StorePartial, true>();
  ALEXNET_LAUNCH(kern, dim3(gx, gy, batch * splits), Tile::kThreads, S(stream_), la, lb, part, M, N, K, batch, kChunk);
  ALEXNET_CHECK_LAUNCH("gemm (split-K)");
  auto red = gemmSplitReduce<Epi>;
  const float* cws = ws;
  ALEXNET_LAUNCH(red, gridFor((long long)batch * M * N), kThreads, S(stream_), cws, epi, M, N, batch, splits);
  ALEXNET_CHECK_LAUNCH("gemm (split-K reduce)");
}

template <class LA, class LB, class Epi>
void Engine::gemmAuto(LA la, LB lb, Epi epi, int M, int N, int K, int batch) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  const long long large = (long long)((M + 127) / 128) * ((N + 127) / 128) * batch;
  if (gTf32 && M >= 64 && N >= 64) gemmRun<TileTc, true>(la, lb, epi, M, N, K, batch);  // opt-in tensor cores
  else if (M >= 96 && N >= 96 && large >= sms_) gemmRun<TileLarge, false>(la, lb, epi, M, N, K, batch);
  else if (M <= 16 && N >= 64) gemmRun<TileThin, false>(la, lb, epi, M, N, K, batch);
  else gemmRun<TileSmall, false>(la, lb, epi, M, N, K, batch);
}

void Engine::gemm(bool transA, bool transB, int m, int n, int k, float alpha, Buffer* a, Buffer* b, float beta,
                  Buffer* c) {
  use();
  const float* A = static_cast<const float*>(a->ptr);
  const float* B = static_cast<const float*>(b->ptr);
  StoreGemm st{static_cast<float*>(c->ptr), n, 0, alpha, beta};
  const int lda = transA ? m : k, ldb = transB ? k : n;
  if (transA) {
    if (transB) gemmAuto(DenseA<true>{A, lda, 0}, DenseB<true>{B, ldb, 0}, st, m, n, k, 1);
    else gemmAuto(DenseA<true>{A, lda, 0}, DenseB<false>{B, ldb, 0}, st, m, n, k, 1);
  } else {
    if (transB) gemmAuto(DenseA<false>{A, lda, 0}, DenseB<true>{B, ldb, 0}, st, m, n, k, 1);
    else gemmAuto(DenseA<false>{A, lda, 0}, DenseB<false>{B, ldb, 0}, st, m, n, k, 1);
  }
}

namespace {
long long elems(const Buffer* b) { return b->length; }
ConvShape shapeOf(const ConvArgs& a) {
  ConvShape g{a.n, a.c, a.h, a.w, a.k, a.r, a.s, a.strideH, a.strideW, a.padH, a.padW, a.groups, a.outH, a.outW};
  g.divRS = FastDiv(a.r * a.s);
  g.divS = FastDiv(a.s);
  g.divOutW = FastDiv(a.outW);
  g.divW = FastDiv(a.w);
  g.divPlane = FastDiv(a.outH * a.outW);
  return g;
}
}  // namespace

void Engine::axpy(float alpha, Buffer* x, Buffer* y) {
  use();
  long long n = elems(x);
  if (!n) return;
  const float* xp = static_cast<const float*>(x->ptr);
  float* yp = static_cast<float*>(y->ptr);
  ALEXNET_LAUNCH(axpyKernel, gridFor(n), kThreads, S(stream_), alpha, xp, yp, n);
  ALEXNET_CHECK_LAUNCH("axpy");
}

void Engine::scale(float alpha, Buffer* x) {
  use();
  long long n = elems(x);
  if (!n) return;
  float* xp = static_cast<float*>(x->ptr);
  ALEXNET_LAUNCH(scaleKernel, gridFor(n), kThreads, S(stream_), alpha, xp, n);
  ALEXNET_CHECK_LAUNCH("scale");
}

void Engine::add(Buffer* a, Buffer* b, Buffer* out) {
  use();
  long long n = elems(a);
  if (!n) return;
  const float* ap = static_cast<const float*>(a->ptr);
  const float* bp = static_cast<const float*>(b->ptr);
  float* op = static_cast<float*>(out->ptr);
  ALEXNET_LAUNCH(addKernel, gridFor(n), kThreads, S(stream_), ap, bp, op, n);
  ALEXNET_CHECK_LAUNCH("add");
}

void Engine::biasAdd(Buffer* y, Buffer* bias, int n, int c, int hw) {
  use();
  long long total = (long long)n * c * hw;
  if (!total) return;
  float* yp = static_cast<float*>(y->ptr);
  const float* bp = static_cast<const float*>(bias->ptr);
  ALEXNET_LAUNCH(biasAddKernel, gridFor(total), kThreads, S(stream_), yp, bp, c, hw, total);
  ALEXNET_CHECK_LAUNCH("biasAdd");
}

void Engine::biasGrad(Buffer* dy, Buffer* db, int n, int c, int hw, float beta) {
  use();
  if (!c) return;
  const float* dp = static_cast<const float*>(dy->ptr);
  float* bp = static_cast<float*>(db->ptr);
  ALEXNET_LAUNCH(biasGradKernel, c, kThreads, S(stream_), dp, bp, n, c, hw, beta);
  ALEXNET_CHECK_LAUNCH("biasGrad");
}

// ---- convolution as implicit GEMM (gemm.cuh loaders), one GEMM per (sample, group) batch ----
void Engine::conv2dForward(Buffer* x, Buffer* w, Buffer* bias, Buffer* y, const ConvArgs& a) {
  use();
  const ConvShape g = shapeOf(a);
  const int kg = g.k / g.groups, crs = (g.c / g.groups) * g.r * g.s, P = g.outH * g.outW;
  gemmAuto(ConvFwdA{static_cast<const float*>(w->ptr), g}, ConvFwdB{static_cast<const float*>(x->ptr), g},
           StoreConvFwd{static_cast<float*>(y->ptr), bias ? static_cast<const float*>(bias->ptr) : nullptr, g}, kg, P,
           crs, g.n * g.groups);
}

void Engine::conv2dBackwardData(Buffer* dy, Buffer* w, Buffer* dx, const ConvArgs& a) {
  use();
  const ConvShape g = shapeOf(a);
  const int cg = g.c / g.groups, krs = (g.k / g.groups) * g.r * g.s;
  if (g.strideH > 1 || g.strideW > 1 || cg < 32) {
    long long total = (long long)g.n * g.c * g.h * g.w;
    if (!total) return;
    const float* dyp = static_cast<const float*>(dy->ptr);
    const float* wp = static_cast<const float*>(w->ptr);
    float* dxp = static_cast<float*>(dx->ptr);
    ALEXNET_LAUNCH(convBackwardDataDirectKernel, gridFor(total), kThreads, S(stream_), dyp, wp, dxp, g);
    ALEXNET_CHECK_LAUNCH("conv2dBackwardData (direct)");
    return;
  }
  gemmAuto(ConvBwdDataA{static_cast<const float*>(w->ptr), g}, ConvBwdDataB{static_cast<const float*>(dy->ptr), g},
           StoreConvBwdData{static_cast<float*>(dx->ptr), g}, cg, g.h * g.w, krs, g.n * g.groups);
}

void Engine::conv2dBackwardFilter(Buffer* x, Buffer* dy, Buffer* dw, Buffer* db, const ConvArgs& a, float beta) {
  use();
  const ConvShape g = shapeOf(a);
  const int kg = g.k / g.groups, crs = (g.c / g.groups) * g.r * g.s;
  gemmAuto(ConvBwdFilterA{static_cast<const float*>(dy->ptr), g}, ConvBwdFilterB{static_cast<const float*>(x->ptr), g},
           StoreConvBwdFilter{static_cast<float*>(dw->ptr), g, beta}, kg, crs, g.n * g.outH * g.outW, g.groups);
  if (db) biasGrad(dy, db, g.n, g.k, g.outH * g.outW, beta);
}

// ---- activations, LRN, pooling, dropout ----
void Engine::reluForward(Buffer* x, Buffer* y) {
  use();
  long long n = elems(x);
  if (!n) return;
  const float* xp = static_cast<const float*>(x->ptr);
  float* yp = static_cast<float*>(y->ptr);
  ALEXNET_LAUNCH(reluForwardKernel, gridFor(n), kThreads, S(stream_), xp, yp, n);
  ALEXNET_CHECK_LAUNCH("reluForward");
}

void Engine::reluBackward(Buffer* y, Buffer* dy, Buffer* dx) {
  use();
  long long n = elems(y);
  if (!n) return;
  const float* yp = static_cast<const float*>(y->ptr);
  const float* dp = static_cast<const float*>(dy->ptr);
  float* xp = static_cast<float*>(dx->ptr);
  ALEXNET_LAUNCH(reluBackwardKernel, gridFor(n), kThreads, S(stream_), yp, dp, xp, n);
  ALEXNET_CHECK_LAUNCH("reluBackward");
}

void Engine::lrnForward(Buffer* x, Buffer* y, int size, double alpha, double beta, double k, int n, int c, int hw) {
  use();
  long long cols = (long long)n * hw;
  if (!cols || !c) return;
  const float* xp = static_cast<const float*>(x->ptr);
  float* yp = static_cast<float*>(y->ptr);
  int half = size / 2;
  float fa = (float)alpha, fb = (float)beta, fk = (float)k;
  ALEXNET_LAUNCH(lrnForwardKernel, gridFor(cols), kThreads, S(stream_), xp, yp, n, c, hw, half, fa, fb, fk);
  ALEXNET_CHECK_LAUNCH("lrnForward");
}

void Engine::lrnBackward(Buffer* x, Buffer* y, Buffer* dy, Buffer* dx, int size, double alpha, double beta, double k,
                         int n, int c, int hw) {
  use();
  long long cols = (long long)n * hw;
  if (!cols || !c) return;
  float* t = workspace((size_t)cols * c);
  const float* xp = static_cast<const float*>(x->ptr);
  const float* yp = static_cast<const float*>(y->ptr);
  const float* dyp = static_cast<const float*>(dy->ptr);
  float* dxp = static_cast<float*>(dx->ptr);
  int half = size / 2;
  float fa = (float)alpha, fb = (float)beta, fk = (float)k;
  ALEXNET_LAUNCH(lrnBackwardKernel, gridFor(cols), kThreads, S(stream_), xp, yp, dyp, dxp, t, n, c, hw, half, fa, fb,
                 fk);
  ALEXNET_CHECK_LAUNCH("lrnBackward");
}

void Engine::maxPoolForward(Buffer* x, Buffer* y, Buffer* argmax, const PoolArgs& a) {
  use();
  PoolShape g{a.n, a.c, a.h, a.w, a.kh, a.kw, a.strideH, a.strideW, a.padH, a.padW, a.outH, a.outW};
  long long total = (long long)g.n * g.c * g.outH * g.outW;
  if (!total) return;
  const float* xp = static_cast<const float*>(x->ptr);
  float* yp = static_cast<float*>(y->ptr);
  int* ap = static_cast<int*>(argmax->ptr);
  ALEXNET_LAUNCH(maxPoolForwardKernel, gridFor(total), kThreads, S(stream_), xp, yp, ap, g);
  ALEXNET_CHECK_LAUNCH("maxPoolForward");
}

void Engine::maxPoolBackward(Buffer* dy, Buffer* argmax, Buffer* dx, const PoolArgs& a) {
  use();
  PoolShape g{a.n, a.c, a.h, a.w, a.kh, a.kw, a.strideH, a.strideW, a.padH, a.padW, a.outH, a.outW};
  long long total = (long long)g.n * g.c * g.h * g.w;
  if (!total) return;
  const float* dp = static_cast<const float*>(dy->ptr);
  const int* ap = static_cast<const int*>(argmax->ptr);
  float* xp = static_cast<float*>(dx->ptr);
  ALEXNET_LAUNCH(maxPoolBackwardKernel, gridFor(total), kThreads, S(stream_), dp, ap, xp, g);
  ALEXNET_CHECK_LAUNCH("maxPoolBackward");
}

void Engine::dropout(Buffer* x, Buffer* y, double p, uint64_t seed, uint64_t offset) {
  use();
  long long n = elems(x);
  if (!n) return;
  const float* xp = static_cast<const float*>(x->ptr);
  float* yp = static_cast<float*>(y->ptr);
  double inv = 1.0 / (1.0 - p);
  unsigned long long sd = seed, off = offset;
  ALEXNET_LAUNCH(dropoutKernel, gridFor(n), kThreads, S(stream_), xp, yp, n, p, inv, sd, off);
  ALEXNET_CHECK_LAUNCH("dropout");
}

// ---- loss and metrics ----
void Engine::softmaxCrossEntropy(Buffer* logits, Buffer* labels, Buffer* loss, Buffer* dlogits, int n, int c) {
  use();
  if (!n) return;
  float* rows = workspace((size_t)n);
  const float* lp = static_cast<const float*>(logits->ptr);
  const int* lb = static_cast<const int*>(labels->ptr);
  float* dp = dlogits ? static_cast<float*>(dlogits->ptr) : nullptr;
  ALEXNET_LAUNCH(softmaxCrossEntropyKernel, n, kThreads, S(stream_), lp, lb, rows, dp, n, c);
  ALEXNET_CHECK_LAUNCH("softmaxCrossEntropy");
  const float* crows = rows;
  float* out = static_cast<float*>(loss->ptr);
  ALEXNET_LAUNCH(meanKernel, 1, kThreads, S(stream_), crows, out, n);
  ALEXNET_CHECK_LAUNCH("softmaxCrossEntropy (mean)");
}

void Engine::softmax(Buffer* x, Buffer* y, int n, int c) {
  use();
  if (!n || !c) return;
  const float* xp = static_cast<const float*>(x->ptr);
  float* yp = static_cast<float*>(y->ptr);
  ALEXNET_LAUNCH(softmaxKernel, n, kThreads, S(stream_), xp, yp, c);
  ALEXNET_CHECK_LAUNCH("softmax");
}

void Engine::topkCorrect(Buffer* logits, Buffer* labels, Buffer* out, int n, int c, int k) {
  use();
  check(cudaMemsetAsync(out->ptr, 0, 4, S(stream_)), "cudaMemsetAsync");
  if (!n) return;
  const float* lp = static_cast<const float*>(logits->ptr);
  const int* lb = static_cast<const int*>(labels->ptr);
  int* op = static_cast<int*>(out->ptr);
  ALEXNET_LAUNCH(topkCorrectKernel, n, kThreads, S(stream_), lp, lb, op, c, k);
  ALEXNET_CHECK_LAUNCH("topkCorrect");
}

void Engine::sgdUpdate(Buffer* w, Buffer* g, Buffer* v, float lr, float momentum, float weightDecay, bool paper) {
  use();
  long long n = elems(w);
  if (!n) return;
  float* wp = static_cast<float*>(w->ptr);
  const float* gp = static_cast<const float*>(g->ptr);
  float* vp = static_cast<float*>(v->ptr);
  float wdLr = (float)((double)weightDecay * (double)lr);
  int pf = paper ? 1 : 0;
  ALEXNET_LAUNCH(sgdKernel, gridFor(n), kThreads, S(stream_), wp, gp, vp, n, lr, momentum, wdLr, weightDecay, pf);
  ALEXNET_CHECK_LAUNCH("sgdUpdate");
}

}  // namespace cuda
}  // namespace alexnet
