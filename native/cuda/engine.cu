// The CUDA engine (see engine.h). The same source is compiled by nvcc against the CUDA runtime and by
// g++ against emu/cuda_emu.h: every call below is a real runtime call in one build and its emulation
// in the other, so the emulated conformance run exercises this exact code path.
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/common.cuh"
#include "kernels/conv.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/fused.cuh"
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

/** cudaSetDevice, skipped when the calling thread is on `device` already. */
void useDevice(int device) {
  thread_local int current = -1;
  if (current != device) {
    check(cudaSetDevice(device), "cudaSetDevice");
    current = device;
  }
}

size_t roundBytes(size_t bytes) {
  if (bytes == 0) bytes = 1;
  return (bytes + 511) / 512 * 512;
}

/** ALEXNET_CUDA_PRECISION: strict (no TF32 anywhere), tf32 (everywhere), or PyTorch's defaults. */
Precision initialPrecision() {
  Precision p;
  const char* e = getenv("ALEXNET_CUDA_PRECISION");
  const std::string v = e ? e : "";
  if (v == "strict" || v == "ieee" || v == "fp32") p = Precision{false, false, false, false};
  else if (v == "tf32") p = Precision{true, true, true, true};
  return p;
}
Precision gPrecision = initialPrecision();

std::atomic<long long> gCounters[kCounters];
const char* const kCounterNames[kCounters] = {
    "gemm.large", "gemm.small", "gemm.thin", "gemm.tf32", "gemm.splitK", "conv.backwardData.direct",
    "sgd.launches", "sgd.tensors", "fused.bias", "fused.relu", "grid.pieces",
    "cudnn.find", "cudnn.calls", "cublasLt.heuristic", "cublasLt.calls", "vendor.checks", "vendor.fallbacks"};

}  // namespace

Precision precision() { return gPrecision; }
void setPrecision(int conv, int matmul) {
  if (conv >= 0) gPrecision.convTf32 = gPrecision.ownConvTf32 = conv != 0;
  if (matmul >= 0) gPrecision.matmulTf32 = gPrecision.ownMatmulTf32 = matmul != 0;
}
// TF32 tensor cores for the GEMM-shaped work (gemm and the implicit-GEMM convolutions with M, N >= 64):
// off for our kernels by default, so that results match float32 (TF32 keeps 10 mantissa bits).
void setTf32(bool on) { setPrecision(on ? 1 : 0, on ? 1 : 0); }
bool tf32() { return gPrecision.ownConvTf32 || gPrecision.ownMatmulTf32; }

void count(Counter c, long long by) { gCounters[c].fetch_add(by, std::memory_order_relaxed); }
std::vector<std::pair<std::string, long long>> counters() {
  std::vector<std::pair<std::string, long long>> out;
  for (int i = 0; i < kCounters; ++i) out.emplace_back(kCounterNames[i], gCounters[i].load());
  return out;
}

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
  Engine::Staging* staging = nullptr;
  cudaEvent_t event = nullptr;
  size_t bytes = 0;
};

}  // namespace cuda
}  // namespace alexnet

#include "vendor/dispatch.h"

namespace alexnet {
namespace cuda {


Engine::Engine(int logicalIndex, uint64_t engineId) : id(engineId), index_(logicalIndex) {
  Probe p = probe();
  if (!p.available) throw std::runtime_error(p.reason);
  physical_ = logicalIndex % p.gpus;  // fewer GPUs than devices: logical devices share one, own stream and memory
  use();
  check(cudaDeviceGetAttribute(&sms_, cudaDevAttrMultiProcessorCount, physical_), "cudaDeviceGetAttribute");
  check(cudaDeviceGetAttribute(&maxGridY_, cudaDevAttrMaxGridDimY, physical_), "cudaDeviceGetAttribute");
  check(cudaDeviceGetAttribute(&maxGridZ_, cudaDevAttrMaxGridDimZ, physical_), "cudaDeviceGetAttribute");
  cudaStream_t s;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  stream_ = s;
  cache_ = std::make_shared<DeviceCache>(physical_, stream_);
}

Engine::~Engine() {
  use();
  try {
    flush();
  } catch (const std::exception& e) {
    fprintf(stderr, "[@alexnet/cuda] cuda:%d: the last held op failed at destroy: %s\n", index_, e.what());
  }
  cudaStreamSynchronize(S(stream_));
  vendor_.reset();  // its handles are bound to the stream
  ws_.reset();
  cache_->close();  // buffers that outlive the engine free their memory at once
  for (auto& st : staging_) {
    if (st->done) cudaEventDestroy(st->done);
    cudaFreeHost(st->host);
  }
  cudaStreamDestroy(S(stream_));
}

void Engine::use() const { useDevice(physical_); }

// ---- the caching allocator (engine.h) ----

Buffer::~Buffer() {
  if (!cache) return;
  if (discard) cache->discard(ptr, capacity);
  else cache->give(ptr, capacity);
}

void* DeviceCache::take(size_t bytes, size_t* capacity, int engineIndex) {
  const size_t want = roundBytes(bytes);
  void* p = nullptr;
  auto it = free_.lower_bound(want);
  if (it != free_.end() && it->first <= want + want / 4) {
    p = it->second;
    *capacity = it->first;
    cached -= it->first;
    free_.erase(it);
  } else {
    useDevice(device_);
    cudaError_t e = cudaMalloc(&p, want);
    if (e != cudaSuccess) {
      cudaGetLastError();  // clear, free what the cache holds, try once more
      trim();
      e = cudaMalloc(&p, want);
    }
    if (e != cudaSuccess) {
      throw std::runtime_error("out of device memory allocating " + std::to_string(bytes) + " bytes on cuda:" +
                               std::to_string(engineIndex) + " (" + std::to_string(inUse) + " bytes in use): " +
                               cudaGetErrorString(e));
    }
    *capacity = want;
  }
  inUse += *capacity;
  liveBlocks += 1;
  if (inUse > peakInUse) peakInUse = inUse;
  return p;
}

void DeviceCache::give(void* p, size_t capacity) {
  inUse -= capacity;
  liveBlocks -= 1;
  if (closed_) {
    useDevice(device_);
    cudaFree(p);
    return;
  }
  cached += capacity;
  free_.emplace(capacity, p);
}

void DeviceCache::discard(void* p, size_t capacity) {
  inUse -= capacity;
  liveBlocks -= 1;
  useDevice(device_);
  if (stream_) cudaStreamSynchronize(S(stream_));  // queued work may still use it
  cudaFree(p);
}

size_t DeviceCache::trim() {
  if (free_.empty()) return 0;
  useDevice(device_);
  if (stream_) cudaStreamSynchronize(S(stream_));  // queued work may still use a cached block
  const size_t freed = cached;
  for (auto& kv : free_) cudaFree(kv.second);
  free_.clear();
  cached = 0;
  return freed;
}

void DeviceCache::close() {
  trim();
  closed_ = true;
  stream_ = nullptr;
}

size_t Engine::trimCache() {
  flush();
  return cache_->trim();
}

BufPtr Engine::alloc(int dtype, int64_t length) {
  flush();  // a held op's memory must not be handed out again before it runs
  return allocRaw(dtype, length);
}

BufPtr Engine::allocRaw(int dtype, int64_t length) {
  use();
  if (length > 0x7fffffffLL) throw std::invalid_argument("Expected length below 2^31 but received " + std::to_string(length));
  auto b = std::make_shared<Buffer>();
  b->dtype = dtype;
  b->elemBytes = dtypeBytes(dtype);
  b->length = length;
  b->owner = id;
  b->ptr = cache_->take((size_t)length * b->elemBytes, &b->capacity, index_);
  b->cache = cache_;
  return b;
}

float* Engine::workspace(size_t floats) {
  if (!ws_ || ws_->capacity < floats * 4) {
    ws_.reset();  // back to the cache, stream-ordered: earlier kernels still see valid memory
    ws_ = allocRaw(kFloat32, (int64_t)floats);
  }
  return ws_->f32();
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


void Engine::write(Buffer& b, const void* data, int64_t offset, int64_t length) {
  flush();
  use();
  const size_t bytes = (size_t)length * b.elemBytes;
  if (!bytes) return;
  Staging* st = acquireStaging(bytes);
  memcpy(st->host, data, bytes);
  check(cudaMemcpyAsync(static_cast<char*>(b.ptr) + offset * b.elemBytes, st->host, bytes, cudaMemcpyHostToDevice,
                        S(stream_)), "cudaMemcpyAsync (write)");
  check(cudaEventRecord(st->done, S(stream_)), "cudaEventRecord");
}

void Engine::readSync(Buffer& b, int64_t offset, int64_t length, void* out) {
  Pending* p = readAsync(&b, offset, length);
  waitPending(p);
  finishPending(p, out);
}

Pending* Engine::readAsync(Buffer* b, int64_t offset, int64_t length) {
  flush();
  use();
  auto* p = new Pending();
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
  flush();
  use();
  check(cudaStreamSynchronize(S(stream_)), "cudaStreamSynchronize");
}

void* Engine::recordEvent() {
  flush();
  use();
  cudaEvent_t e;
  check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventRecord(e, S(stream_)), "cudaEventRecord");
  return e;
}

void Engine::waitEvent(void* event) {
  flush();
  use();
  check(cudaStreamWaitEvent(S(stream_), static_cast<cudaEvent_t>(event), 0), "cudaStreamWaitEvent");
}

void Engine::destroyEvent(void* event) { cudaEventDestroy(static_cast<cudaEvent_t>(event)); }

void Engine::setThreads(int threads) {
  flush();
#if defined(ALEXNET_CUDA_EMU)
  emu::setStreamThreads(S(stream_), threads);
#else
  (void)threads;  // a GPU has no host threads to share
#endif
}

int Engine::gridFor(long long n) const {
  long long blocks = (n + kThreads - 1) / kThreads;
  const long long cap = (long long)sms_ * 16;
  if (blocks > cap) blocks = cap;
  return blocks < 1 ? 1 : (int)blocks;
}

/** kernel(args...) over a grid-stride range of n (nothing when n is 0). */
template <class K, class... A>
void Engine::launchFlat(const char* what, K kernel, long long n, A... args) {
  use();
  if (n <= 0) return;
  ALEXNET_LAUNCH(kernel, gridFor(n), kThreads, S(stream_), args...);
  check(cudaGetLastError(), what);
}

// ---- data movement ----
void Engine::fill(Buffer& b, uint32_t pattern) {
  use();
  if (!b.length) return;
  if (b.elemBytes == 1) {
    check(cudaMemsetAsync(b.ptr, (int)(pattern & 0xFF), (size_t)b.length, S(stream_)), "cudaMemsetAsync");
    return;
  }
  launchFlat("fill", fill32Kernel, b.length, static_cast<uint32_t*>(b.ptr), pattern, (long long)b.length);
}

void Engine::random(Buffer& b, bool normal, uint64_t seed, uint64_t offset, double a, double bb) {
  if (!b.length) return;
  const long long len = b.length;
  const unsigned long long sd = seed, off = offset;
  launchFlat("random", randomKernel, len / 4 + 2, b.f32(), len, sd, off, normal ? 1 : 0, a, bb);
}

void Engine::copy(Buffer& src, int64_t srcOffset, Buffer& dst, int64_t dstOffset, int64_t length) {
  use();
  if (!length) return;
  check(cudaMemcpyAsync(static_cast<char*>(dst.ptr) + dstOffset * dst.elemBytes,
                        static_cast<char*>(src.ptr) + srcOffset * src.elemBytes, (size_t)length * src.elemBytes,
                        cudaMemcpyDeviceToDevice, S(stream_)), "cudaMemcpyAsync (copy)");
}

/**
 * src (this engine) -> dst (the peer's), ordered on both sides by the engine itself, whatever the
 * caller does: the copy waits for the work queued on the peer so far (which may still read or write
 * dst), and the peer's later work waits for the copy. Queued on this engine's stream.
 */
void Engine::copyToPeer(Buffer& src, const Engine& peer, Buffer& dst, int64_t length) {
  if (!length) return;
  Engine& other = const_cast<Engine&>(peer);
  if (&other != this) other.flush();  // the peer's held op comes before the copy
  use();
  const size_t bytes = (size_t)length * src.elemBytes;
  if (&other == this) {
    check(cudaMemcpyAsync(dst.ptr, src.ptr, bytes, cudaMemcpyDeviceToDevice, S(stream_)), "cudaMemcpyAsync (peer)");
    return;
  }
  cudaEvent_t before, after;
  other.use();
  check(cudaEventCreateWithFlags(&before, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventRecord(before, S(other.stream_)), "cudaEventRecord (copyToPeer)");
  use();
  check(cudaStreamWaitEvent(S(stream_), before, 0), "cudaStreamWaitEvent (copyToPeer)");
  cudaEventDestroy(before);  // released once complete; the wait already holds its position
  if (peer.physical_ == physical_) {
    check(cudaMemcpyAsync(dst.ptr, src.ptr, bytes, cudaMemcpyDeviceToDevice, S(stream_)), "cudaMemcpyAsync (peer)");
  } else {
    check(cudaMemcpyPeerAsync(dst.ptr, peer.physical_, src.ptr, physical_, bytes, S(stream_)), "cudaMemcpyPeerAsync");
  }
  check(cudaEventCreateWithFlags(&after, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventRecord(after, S(stream_)), "cudaEventRecord (copyToPeer)");
  other.use();
  check(cudaStreamWaitEvent(S(other.stream_), after, 0), "cudaStreamWaitEvent (copyToPeer)");
  cudaEventDestroy(after);
  use();
}

void Engine::channelCopy(Buffer& src, Buffer& dst, int64_t n, int64_t hw, int64_t srcC, int64_t srcOffset, int64_t dstC,
                         int64_t dstOffset, int64_t count) {
  use();
  if (!n || !hw || !count) return;
  const size_t eb = src.elemBytes;
  // n rows of count * hw contiguous elements: a 2-D copy with the two channel pitches.
  check(cudaMemcpy2DAsync(static_cast<char*>(dst.ptr) + dstOffset * hw * eb, dstC * hw * eb,
                          static_cast<char*>(src.ptr) + srcOffset * hw * eb, srcC * hw * eb, count * hw * eb, n,
                          cudaMemcpyDeviceToDevice, S(stream_)), "cudaMemcpy2DAsync (channelCopy)");
}

// ---- GEMM: tile choice and split-K ----
template <bool Tc, class Tile, class LA, class LB, class Epi, bool Partial>
auto kernelFor() {
  if constexpr (Tc) return &gemmKernelTf32<LA, LB, Epi, Partial>;
  else return &gemmKernel<Tile, LA, LB, Epi, Partial>;
}

/**
 * Launches a grid of (gx, gy, gz) blocks in pieces that respect gridDim's limits (65535 in y and z on
 * every GPU so far: the device's attributes): launch(zBase, yBase, dim3) for each piece.
 */
template <class F>
void launchPieces(int gx, long long gy, long long gz, long long maxY, long long maxZ, F launch) {
  for (long long z0 = 0; z0 < gz; z0 += maxZ)
    for (long long y0 = 0; y0 < gy; y0 += maxY) {
      const long long py = gy - y0 < maxY ? gy - y0 : maxY, pz = gz - z0 < maxZ ? gz - z0 : maxZ;
      if (y0 || z0) count(kCountGridPieces);
      launch((int)z0, (int)y0, dim3((unsigned)gx, (unsigned)py, (unsigned)pz));
    }
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
  count(Tc ? kCountGemmTf32 : std::is_same<Tile, TileLarge>::value ? kCountGemmLarge
                            : std::is_same<Tile, TileThin>::value  ? kCountGemmThin
                                                                   : kCountGemmSmall);
  if (splits == 1) {
    auto kern = kernelFor<Tc, Tile, LA, LB, Epi, false>();
    launchPieces(gx, gy, batch, maxGridY_, maxGridZ_, [&](int z0, int y0, dim3 grid) {
      ALEXNET_LAUNCH(kern, grid, Tile::kThreads, S(stream_), la, lb, epi, M, N, K, batch, kChunk, z0, y0);
      ALEXNET_CHECK_LAUNCH("gemm");
    });
    return;
  }
  count(kCountSplitK);
  float* ws = workspace((size_t)splits * batch * M * N);
  StorePartial part{ws, M, N};
  auto kern = kernelFor<Tc, Tile, LA, LB, StorePartial, true>();
  launchPieces(gx, gy, (long long)batch * splits, maxGridY_, maxGridZ_, [&](int z0, int y0, dim3 grid) {
    ALEXNET_LAUNCH(kern, grid, Tile::kThreads, S(stream_), la, lb, part, M, N, K, batch, kChunk, z0, y0);
    ALEXNET_CHECK_LAUNCH("gemm (split-K)");
  });
  auto red = gemmSplitReduce<Epi>;
  const float* cws = ws;
  const FastDiv divN(N), divM(M);
  ALEXNET_LAUNCH(red, gridFor((long long)batch * M * N), kThreads, S(stream_), cws, epi, M, N, batch, splits, divN, divM);
  ALEXNET_CHECK_LAUNCH("gemm (split-K reduce)");
}

template <class LA, class LB, class Epi>
void Engine::gemmAuto(LA la, LB lb, Epi epi, int M, int N, int K, int batch, bool tc) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  const long long large = (long long)((M + 127) / 128) * ((N + 127) / 128) * batch;
  if (tc && M >= 64 && N >= 64) gemmRun<TileTc, true>(la, lb, epi, M, N, K, batch);  // opt-in tensor cores
  else if (M >= 96 && N >= 96 && large >= sms_) gemmRun<TileLarge, false>(la, lb, epi, M, N, K, batch);
  else if (M <= 16 && N >= 64) gemmRun<TileThin, false>(la, lb, epi, M, N, K, batch);
  else gemmRun<TileSmall, false>(la, lb, epi, M, N, K, batch);
}

void Engine::ownGemm(bool transA, bool transB, int m, int n, int k, float alpha, const float* A, int lda, const float* B,
                     int ldb, float beta, float* C, const float* bias, bool relu) {
  use();
  StoreGemm st{C, n, 0, alpha, beta, bias, relu};
  const bool tc = gPrecision.ownMatmulTf32;
  if (transA) {
    if (transB) gemmAuto(DenseA<true>{A, lda, 0}, DenseB<true>{B, ldb, 0}, st, m, n, k, 1, tc);
    else gemmAuto(DenseA<true>{A, lda, 0}, DenseB<false>{B, ldb, 0}, st, m, n, k, 1, tc);
  } else {
    if (transB) gemmAuto(DenseA<false>{A, lda, 0}, DenseB<true>{B, ldb, 0}, st, m, n, k, 1, tc);
    else gemmAuto(DenseA<false>{A, lda, 0}, DenseB<false>{B, ldb, 0}, st, m, n, k, 1, tc);
  }
}

void Engine::runGemm(bool transA, bool transB, int m, int n, int k, float alpha, const float* a, const float* b, float beta,
                     float* c, const float* bias, bool relu) {
  if (bias) count(kCountFusedBias);
  if (relu) count(kCountFusedRelu);
  if (m <= 0 || n <= 0) return;
  if (vendorState()->gemm(transA, transB, m, n, k, alpha, a, b, beta, c, bias, relu)) return;
  ownGemm(transA, transB, m, n, k, alpha, a, transA ? m : k, b, transB ? k : n, beta, c, bias, relu);
}

/**
 * Held back (engine.h, Held): the dense layer's biasAdd over C's columns and an in-place reluForward
 * of C that follow fold into the GEMM's epilogue, ours or cuBLASLt's.
 */
void Engine::gemm(bool transA, bool transB, int m, int n, int k, float alpha, Buffer& a, Buffer& b, float beta,
                  Buffer& c) {
  flush();
  hg_ = HeldGemm{transA, transB, m, n, k, alpha, beta, a.f32(), b.f32(), c.f32(), nullptr, false};
  held_ = Held::Gemm;
  if (c.length != (int64_t)m * n) flush();  // C larger than the product: a later op's range would not match
}

void Engine::flush() {
  const Held h = held_;
  if (h == Held::None) return;
  held_ = Held::None;  // first: what runs below may call flush() again
  switch (h) {
    case Held::Gemm:
      runGemm(hg_.transA, hg_.transB, hg_.m, hg_.n, hg_.k, hg_.alpha, hg_.a, hg_.b, hg_.beta, hg_.c, hg_.bias, hg_.relu);
      break;
    case Held::Conv:
      runConvForward(hc_.x, hc_.w, hc_.bias, hc_.y, hc_.g, hc_.relu);
      break;
    case Held::Sgd:
      runSgd();
      break;
    case Held::None:
      break;
  }
}

namespace {
ConvShape shapeOf(const ConvGeometry& a) {
  ConvShape g{(int)a.n, (int)a.c, (int)a.h, (int)a.w, (int)a.k, (int)a.r, (int)a.s, (int)a.strideH, (int)a.strideW,
              (int)a.padH, (int)a.padW, (int)a.groups, (int)a.outH, (int)a.outW};
  g.divRS = FastDiv(g.r * g.s);
  g.divS = FastDiv(g.s);
  g.divOutW = FastDiv(g.outW);
  g.divW = FastDiv(g.w);
  g.divPlane = FastDiv(g.outH * g.outW);
  g.divH = FastDiv(g.h);
  g.divC = FastDiv(g.c);
  g.divCg = FastDiv(g.c / g.groups);
  return g;
}
PoolShape shapeOf(const PoolGeometry& a) {
  PoolShape g{(int)a.n, (int)a.c, (int)a.h, (int)a.w, (int)a.kh, (int)a.kw, (int)a.strideH, (int)a.strideW,
              (int)a.padH, (int)a.padW, (int)a.outH, (int)a.outW};
  g.divOutW = FastDiv(g.outW);
  g.divOutH = FastDiv(g.outH);
  g.divW = FastDiv(g.w);
  g.divH = FastDiv(g.h);
  return g;
}
}  // namespace

void Engine::axpy(float alpha, Buffer& x, Buffer& y) { launchFlat("axpy", axpyKernel, x.length, alpha, x.f32(), y.f32(), (long long)x.length); }

void Engine::scale(float alpha, Buffer& x) { launchFlat("scale", scaleKernel, x.length, alpha, x.f32(), (long long)x.length); }

void Engine::add(Buffer& a, Buffer& b, Buffer& out) {
  launchFlat("add", addKernel, a.length, a.f32(), b.f32(), out.f32(), (long long)a.length);
}

void Engine::biasAct(float* y, const float* bias, bool relu, int n, int c, int hw) {
  const long long total = (long long)n * c * hw;
  if (!total || (!bias && !relu)) return;
  launchFlat("biasAdd", biasActKernel, total, y, bias, relu ? 1 : 0, total, FastDiv(hw), FastDiv(c));
}

void Engine::copyRaw(void* dst, const void* src, size_t bytes) {
  use();
  if (!bytes) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, S(stream_)), "cudaMemcpyAsync (copy)");
}

double Engine::compareRaw(const float* a, const float* b, long long n) {
  use();
  if (n <= 0) return 0.0;
  BufPtr out = allocRaw(kFloat32, 4);  // two doubles
  double* o = static_cast<double*>(out->ptr);
  ALEXNET_LAUNCH(compareKernel, 1, kThreads, S(stream_), a, b, n, o);
  ALEXNET_CHECK_LAUNCH("compare");
  double h[2] = {0.0, 0.0};
  check(cudaMemcpyAsync(h, o, sizeof h, cudaMemcpyDeviceToHost, S(stream_)), "cudaMemcpyAsync (compare)");
  check(cudaStreamSynchronize(S(stream_)), "cudaStreamSynchronize (compare)");
  if (h[1] > 0.0) return sqrt(h[0] / h[1]);
  return h[0] > 0.0 ? INFINITY : 0.0;
}

#if defined(ALEXNET_CUDA_EMU)
namespace {
int enqueueOnStream(void* stream, void (*fn)(void*), void* arg) {
  return cudaLaunchHostFunc(static_cast<cudaStream_t>(stream), fn, arg) == cudaSuccess ? 0 : 1;
}
const vendor::StandinHooks kStandinHooks{1, enqueueOnStream};
}  // namespace
const vendor::StandinHooks* standinHooks() { return &kStandinHooks; }
#else
const vendor::StandinHooks* standinHooks() { return nullptr; }
#endif

void Engine::biasAdd(Buffer& y, Buffer& bias, int n, int c, int hw) {
  // the dense layer's bias after its gemm: into the held GEMM's epilogue
  if (held_ == Held::Gemm && !hg_.bias && !hg_.relu && y.f32() == hg_.c && hw == 1 && n == hg_.m && c == hg_.n &&
      bias.f32() != hg_.c) {
    hg_.bias = bias.f32();
    return;
  }
  flush();
  biasAct(y.f32(), bias.f32(), false, n, c, hw);
}

void Engine::biasGrad(Buffer& dy, Buffer& db, int n, int c, int hw, float beta) {
  use();
  if (!c) return;
  const float* dyp = dy.f32();
  float* dbp = db.f32();
  ALEXNET_LAUNCH(biasGradKernel, c, kThreads, S(stream_), dyp, dbp, n, c, hw, beta);
  ALEXNET_CHECK_LAUNCH("biasGrad");
}

// ---- convolution as implicit GEMM (gemm.cuh loaders), one GEMM per (sample, group) batch ----
void Engine::ownConvForward(const float* x, const float* w, const float* bias, float* y, const ConvGeometry& a, bool relu) {
  use();
  const ConvShape g = shapeOf(a);
  StoreConvFwd st{y, bias, g, relu};
  gemmAuto(ConvFwdA{w, g}, ConvFwdB{x, g}, st, (int)a.kg(), (int)a.plane(), (int)a.colRows(), g.n * g.groups,
           gPrecision.ownConvTf32);
}

void Engine::runConvForward(const float* x, const float* w, const float* bias, float* y, const ConvGeometry& g, bool relu) {
  if (relu) count(kCountFusedRelu);
  if (vendorState()->convForward(x, w, bias, y, g, relu)) return;
  ownConvForward(x, w, bias, y, g, relu);
}

/** Held back: an in-place reluForward of y that follows folds into the epilogue. */
void Engine::conv2dForward(Buffer& x, Buffer& w, Buffer* bias, Buffer& y, const ConvGeometry& a) {
  flush();
  hc_ = HeldConv{x.f32(), w.f32(), bias ? bias->f32() : nullptr, y.f32(), a.ySize(), a, false};
  held_ = Held::Conv;
}

void Engine::ownConvBackwardData(const float* dy, const float* w, float* dx, const ConvGeometry& a) {
  use();
  const ConvShape g = shapeOf(a);
  const int cg = (int)a.cg(), krs = (int)(a.kg() * a.r * a.s);
  if (g.strideH > 1 || g.strideW > 1 || cg < 32) {
    count(kCountConvDataDirect);
    launchFlat("conv2dBackwardData (direct)", convBackwardDataDirectKernel, a.xSize(), dy, w, dx, g);
    return;
  }
  gemmAuto(ConvBwdDataA{w, g}, ConvBwdDataB{dy, g}, StoreConvBwdData{dx, g}, cg, g.h * g.w, krs, g.n * g.groups,
           gPrecision.ownConvTf32);
}

void Engine::conv2dBackwardData(Buffer& dy, Buffer& w, Buffer& dx, const ConvGeometry& a) {
  if (vendorState()->convBackwardData(dy.f32(), w.f32(), dx.f32(), a)) return;
  ownConvBackwardData(dy.f32(), w.f32(), dx.f32(), a);
}

void Engine::ownConvBackwardFilter(const float* x, const float* dy, float* dw, const ConvGeometry& a, float beta) {
  use();
  const ConvShape g = shapeOf(a);
  gemmAuto(ConvBwdFilterA{dy, g}, ConvBwdFilterB{x, g}, StoreConvBwdFilter{dw, g, beta}, (int)a.kg(), (int)a.colRows(),
           (int)(a.n * a.plane()), g.groups, gPrecision.ownConvTf32);
}

void Engine::conv2dBackwardFilter(Buffer& x, Buffer& dy, Buffer& dw, Buffer* db, const ConvGeometry& a, float beta) {
  if (!vendorState()->convBackwardFilter(x.f32(), dy.f32(), dw.f32(), a, beta)) ownConvBackwardFilter(x.f32(), dy.f32(), dw.f32(), a, beta);
  if (db) biasGrad(dy, *db, (int)a.n, (int)a.k, (int)(a.outH * a.outW), beta);
}

// ---- activations, LRN, pooling, dropout ----
/** In place over exactly the held GEMM's C or convolution's y: folded into its epilogue. */
void Engine::reluForward(Buffer& x, Buffer& y) {
  if (x.f32() == y.f32()) {
    if (held_ == Held::Gemm && !hg_.relu && x.f32() == hg_.c && x.length == (int64_t)hg_.m * hg_.n) {
      hg_.relu = true;
      return;
    }
    if (held_ == Held::Conv && !hc_.relu && x.f32() == hc_.y && x.length == hc_.ySize) {
      hc_.relu = true;
      return;
    }
  }
  flush();
  launchFlat("reluForward", reluForwardKernel, x.length, x.f32(), y.f32(), (long long)x.length);
}

void Engine::reluBackward(Buffer& y, Buffer& dy, Buffer& dx) {
  launchFlat("reluBackward", reluBackwardKernel, y.length, y.f32(), dy.f32(), dx.f32(), (long long)y.length);
}

void Engine::tanhForward(Buffer& x, Buffer& y) {
  launchFlat("tanhForward", tanhForwardKernel, x.length, x.f32(), y.f32(), (long long)x.length);
}

void Engine::tanhBackward(Buffer& y, Buffer& dy, Buffer& dx) {
  launchFlat("tanhBackward", tanhBackwardKernel, y.length, y.f32(), dy.f32(), dx.f32(), (long long)y.length);
}

void Engine::lrnForward(Buffer& x, Buffer& y, const LrnParams& p, int n, int c, int hw) {
  if (!c) return;
  launchFlat("lrnForward", lrnForwardKernel, (long long)n * hw, x.f32(), y.f32(), n, c, hw, (int)(p.size / 2),
             (float)p.alpha, (float)p.beta, (float)p.k, FastDiv(hw));
}

void Engine::lrnBackward(Buffer& x, Buffer& y, Buffer& dy, Buffer& dx, const LrnParams& p, int n, int c, int hw) {
  const long long cols = (long long)n * hw;
  if (!cols || !c) return;
  float* t = workspace((size_t)cols * c);
  launchFlat("lrnBackward", lrnBackwardKernel, cols, x.f32(), y.f32(), dy.f32(), dx.f32(), t, n, c, hw,
             (int)(p.size / 2), (float)p.alpha, (float)p.beta, (float)p.k, FastDiv(hw));
}

void Engine::maxPoolForward(Buffer& x, Buffer& y, Buffer& argmax, const PoolGeometry& a) {
  launchFlat("maxPoolForward", maxPoolForwardKernel, a.ySize(), x.f32(), y.f32(), argmax.i32(), shapeOf(a));
}

void Engine::maxPoolBackward(Buffer& dy, Buffer& argmax, Buffer& dx, const PoolGeometry& a) {
  launchFlat("maxPoolBackward", maxPoolBackwardKernel, a.xSize(), dy.f32(), argmax.i32(), dx.f32(), shapeOf(a));
}

void Engine::dropout(Buffer& x, Buffer& y, double p, uint64_t seed, uint64_t offset) {
  const unsigned long long sd = seed, off = offset;
  launchFlat("dropout", dropoutKernel, x.length, x.f32(), y.f32(), (long long)x.length, p, 1.0 / (1.0 - p), sd, off);
}

// ---- loss and metrics ----
void Engine::softmaxCrossEntropy(Buffer& logits, Buffer& labels, Buffer& loss, Buffer* dlogits, int n, int c) {
  use();
  if (!n) return;
  float* rows = workspace((size_t)n);
  const float* lp = logits.f32();
  const int32_t* lb = labels.i32();
  float* dp = dlogits ? dlogits->f32() : nullptr;
  ALEXNET_LAUNCH(softmaxCrossEntropyKernel, n, kThreads, S(stream_), lp, lb, rows, dp, n, c);
  ALEXNET_CHECK_LAUNCH("softmaxCrossEntropy");
  const float* crows = rows;
  float* out = loss.f32();
  ALEXNET_LAUNCH(meanKernel, 1, kThreads, S(stream_), crows, out, n);
  ALEXNET_CHECK_LAUNCH("softmaxCrossEntropy (mean)");
}

void Engine::softmax(Buffer& x, Buffer& y, int n, int c) {
  use();
  if (!n || !c) return;
  const float* xp = x.f32();
  float* yp = y.f32();
  ALEXNET_LAUNCH(softmaxKernel, n, kThreads, S(stream_), xp, yp, c);
  ALEXNET_CHECK_LAUNCH("softmax");
}

void Engine::topkCorrect(Buffer& logits, Buffer& labels, Buffer& out, int n, int c, int k) {
  use();
  check(cudaMemsetAsync(out.ptr, 0, 4, S(stream_)), "cudaMemsetAsync");
  if (!n) return;
  const float* lp = logits.f32();
  const int32_t* lb = labels.i32();
  int32_t* op = out.i32();
  ALEXNET_LAUNCH(topkCorrectKernel, n, kThreads, S(stream_), lp, lb, op, c, k);
  ALEXNET_CHECK_LAUNCH("topkCorrect");
}

namespace {
bool overlap(const void* a, int64_t na, const void* b, int64_t nb) {
  const char *pa = static_cast<const char*>(a), *pb = static_cast<const char*>(b);
  return pa < pb + nb * 4 && pb < pa + na * 4;
}
}  // namespace

/**
 * Held back: consecutive updates (an optimizer's step over its parameters) run as one launch of
 * sgdMultiKernel, up to kSgdMax tensors with the same momentum and form and no memory in common.
 */
void Engine::sgdUpdate(Buffer& w, Buffer& g, Buffer& v, float lr, float momentum, float weightDecay, bool paper) {
  if (!w.length) return;
  const HeldSgd t{w.f32(), g.f32(), v.f32(), w.length, lr, weightDecay};
  bool join = held_ == Held::Sgd && hs_.size() < (size_t)kSgdMax && hsMomentum_ == momentum && hsPaper_ == paper;
  for (size_t i = 0; join && i < hs_.size(); ++i) {
    const HeldSgd& e = hs_[i];
    for (const void* wr : {(const void*)t.w, (const void*)t.v})
      if (overlap(wr, t.n, e.w, e.n) || overlap(wr, t.n, e.g, e.n) || overlap(wr, t.n, e.v, e.n)) join = false;
    if (overlap(t.g, t.n, e.w, e.n) || overlap(t.g, t.n, e.v, e.n)) join = false;
  }
  if (!join) {
    flush();
    hs_.clear();
    hsMomentum_ = momentum;
    hsPaper_ = paper;
    held_ = Held::Sgd;
  }
  hs_.push_back(t);
}

void Engine::runSgd() {
  use();
  if (hs_.empty()) return;
  SgdBatch b{};
  b.count = (int)hs_.size();
  b.momentum = hsMomentum_;
  b.paper = hsPaper_ ? 1 : 0;
  long long blocks = 0;
  constexpr long long perBlock = (long long)kThreads * kSgdPerThread;
  for (int i = 0; i < b.count; ++i) {
    const HeldSgd& h = hs_[i];
    b.t[i] = SgdTensor{h.w, h.g, h.v, (long long)h.n, h.lr, (float)((double)h.wd * (double)h.lr), h.wd};
    b.firstBlock[i] = blocks;
    blocks += (h.n + perBlock - 1) / perBlock;
  }
  b.firstBlock[b.count] = blocks;
  hs_.clear();
  count(kCountSgdLaunches);
  count(kCountSgdTensors, b.count);
  ALEXNET_LAUNCH(sgdMultiKernel, dim3((unsigned)blocks), kThreads, S(stream_), b);
  ALEXNET_CHECK_LAUNCH("sgdUpdate");
}

}  // namespace cuda
}  // namespace alexnet
