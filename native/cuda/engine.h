// The CUDA engine: one logical device = one stream, its own caching allocator and pinned staging
// buffers. Plain C++ (no N-API, no CUDA types), so addon.cpp compiles with g++ while engine.cu is
// compiled by nvcc for GPUs, or by g++ against emu/cuda_emu.h for the emulated backend.
// Arguments were checked by native/common/ops.h (through addon.cpp) before they get here: sizes fit
// the buffers, counts are below 2^31, geometries pass cudaConvProblem / cudaPoolProblem.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../common/dtype.h"
#include "../common/geometry.h"

namespace alexnet {
namespace cuda {

class DeviceCache;

/** Device memory of `length` elements; back to its engine's cache when the last reference goes. */
struct Buffer {
  void* ptr = nullptr;
  size_t capacity = 0;  // bytes of the allocation (rounded)
  int64_t length = 0;   // elements
  int dtype = kFloat32;
  int elemBytes = 4;
  uint64_t owner = 0;   // engine id
  std::shared_ptr<DeviceCache> cache;
  Buffer() = default;
  Buffer(const Buffer&) = delete;  // one owner of the memory (a kernel launch captures pointers, never a Buffer)
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();
  float* f32() const { return static_cast<float*>(ptr); }
  int32_t* i32() const { return static_cast<int32_t*>(ptr); }
};
using BufPtr = std::shared_ptr<Buffer>;

/**
 * The caching allocator of one engine: cudaMalloc on a miss (never managed memory), sizes rounded to
 * 512 bytes, freed blocks kept by capacity and reused for a request of up to 1.25x their size.
 * Returning a block at free is safe without waiting: every later use of it is queued on the same
 * stream, after the ops that used it before. Shared by the engine and its buffers, so a buffer that
 * outlives its engine still frees its memory (at once: the cache is closed then).
 */
class DeviceCache {
 public:
  DeviceCache(int device, void* stream) : device_(device), stream_(stream) {}
  /** A block of at least `bytes` (its capacity in *capacity): cached, else cudaMalloc, else after trim(). */
  void* take(size_t bytes, size_t* capacity, int engineIndex);
  /** The block of a buffer whose last reference is gone. */
  void give(void* p, size_t capacity);
  /** Frees every cached block (after the stream's queued work); returns the bytes freed. */
  size_t trim();
  /** trim(), and later give() frees at once (the engine is being destroyed). */
  void close();
  int64_t cachedBlocks() const { return (int64_t)free_.size(); }
  size_t inUse = 0, peakInUse = 0, cached = 0;
  int64_t liveBlocks = 0;

 private:
  int device_;
  void* stream_;
  bool closed_ = false;
  std::multimap<size_t, void*> free_;  // by capacity
};

struct Probe {
  bool available = false;
  std::string reason;     // why not, when not
  int gpus = 0;           // physical devices
  std::string name;       // of device 0
};

/** Whether this build can run here (runtime loads, driver answers, a device exists). */
Probe probe();
/** Logical devices: max(2, GPUs), so the paper's two towers (§3.2) always have two devices. */
int logicalDeviceCount();
/** Whether GEMMs and convolutions use TF32 tensor cores (off by default; process-wide). */
void setTf32(bool on);
bool tf32();

struct Pending;  // an in-flight read or synchronize

/** One logical device. Not copyable (it owns its stream and staging buffers: unique_ptr). */
class Engine {
 public:
  Engine(int logicalIndex, uint64_t id);
  ~Engine();
  const uint64_t id;
  int index() const { return index_; }
  int physical() const { return physical_; }

  // ---- memory and queue ----
  BufPtr alloc(int dtype, int64_t length);
  void write(Buffer& b, const void* data, int64_t offset, int64_t length);
  void readSync(Buffer& b, int64_t offset, int64_t length, void* out);
  Pending* readAsync(Buffer* b, int64_t offset, int64_t length);  // b null: synchronize
  static void waitPending(Pending* p);                            // any thread
  static void finishPending(Pending* p, void* out);               // owner thread: copies out (if a read), frees p
  void synchronize();
  void* recordEvent();
  void waitEvent(void* event);
  static void destroyEvent(void* event);
  void setThreads(int threads);
  const DeviceCache& memory() const { return *cache_; }
  size_t trimCache();

  // ---- data movement ----
  void fill(Buffer& b, uint32_t pattern);
  void random(Buffer& b, bool normal, uint64_t seed, uint64_t offset, double a, double bb);
  void copy(Buffer& src, int64_t srcOffset, Buffer& dst, int64_t dstOffset, int64_t length);
  void copyToPeer(Buffer& src, const Engine& peer, Buffer& dst, int64_t length);
  void channelCopy(Buffer& src, Buffer& dst, int64_t n, int64_t hw, int64_t srcC, int64_t srcOffset, int64_t dstC,
                   int64_t dstOffset, int64_t count);

  // ---- dense algebra ----
  void gemm(bool transA, bool transB, int m, int n, int k, float alpha, Buffer& a, Buffer& b, float beta, Buffer& c);
  void axpy(float alpha, Buffer& x, Buffer& y);
  void scale(float alpha, Buffer& x);
  void add(Buffer& a, Buffer& b, Buffer& out);
  void biasAdd(Buffer& y, Buffer& bias, int n, int c, int hw);
  void biasGrad(Buffer& dy, Buffer& db, int n, int c, int hw, float beta);

  // ---- convolution ----
  void conv2dForward(Buffer& x, Buffer& w, Buffer* bias, Buffer& y, const ConvGeometry& g);
  void conv2dBackwardData(Buffer& dy, Buffer& w, Buffer& dx, const ConvGeometry& g);
  void conv2dBackwardFilter(Buffer& x, Buffer& dy, Buffer& dw, Buffer* db, const ConvGeometry& g, float beta);

  // ---- the rest ----
  void reluForward(Buffer& x, Buffer& y);
  void reluBackward(Buffer& y, Buffer& dy, Buffer& dx);
  void tanhForward(Buffer& x, Buffer& y);
  void tanhBackward(Buffer& y, Buffer& dy, Buffer& dx);
  void lrnForward(Buffer& x, Buffer& y, const LrnParams& p, int n, int c, int hw);
  void lrnBackward(Buffer& x, Buffer& y, Buffer& dy, Buffer& dx, const LrnParams& p, int n, int c, int hw);
  void maxPoolForward(Buffer& x, Buffer& y, Buffer& argmax, const PoolGeometry& g);
  void maxPoolBackward(Buffer& dy, Buffer& argmax, Buffer& dx, const PoolGeometry& g);
  void dropout(Buffer& x, Buffer& y, double p, uint64_t seed, uint64_t offset);
  void softmaxCrossEntropy(Buffer& logits, Buffer& labels, Buffer& loss, Buffer* dlogits, int n, int c);
  void softmax(Buffer& x, Buffer& y, int n, int c);
  void topkCorrect(Buffer& logits, Buffer& labels, Buffer& out, int n, int c, int k);
  void sgdUpdate(Buffer& w, Buffer& g, Buffer& v, float lr, float momentum, float weightDecay, bool paper);

  /** Opaque to callers: the stream (cudaStream_t). */
  void* stream() const { return stream_; }

  struct Staging;

 private:
  void use() const;
  float* workspace(size_t floats);
  Staging* acquireStaging(size_t bytes);
  int gridFor(long long n) const;
  template <class K, class... A>
  void launchFlat(const char* what, K kernel, long long n, A... args);
  template <class LA, class LB, class Epi>
  void gemmAuto(LA la, LB lb, Epi epi, int M, int N, int K, int batch);
  template <class Tile, bool Tc, class LA, class LB, class Epi>
  void gemmRun(LA la, LB lb, Epi epi, int M, int N, int K, int batch);

  int index_, physical_;
  int sms_ = 1;
  void* stream_ = nullptr;
  std::shared_ptr<DeviceCache> cache_;
  BufPtr ws_;  // scratch (split-K partials, LRN, per-row losses)
  std::vector<std::unique_ptr<Staging>> staging_;
};

}  // namespace cuda
}  // namespace alexnet
