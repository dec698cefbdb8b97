// The CUDA engine: one logical device = one stream, its own caching allocator and pinned staging
// buffers. Plain C++ (no N-API, no CUDA types), so addon.cpp compiles with g++ while engine.cu is
// compiled by nvcc for GPUs, or by g++ against emu/cuda_emu.h for the emulated backend.
// Arguments are validated by addon.cpp before they get here (sizes fit the buffers, int32 ranges).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace alexnet {
namespace cuda {

enum DTypeCode { kF32 = 0, kF64 = 1, kI32 = 2, kU8 = 3 };

struct Buffer {
  void* ptr = nullptr;
  size_t capacity = 0;  // bytes of the allocation (rounded), returned to the cache on release
  int64_t length = 0;   // elements
  int dtype = kF32;
  int elemBytes = 4;
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

struct ConvArgs { int n, c, h, w, k, r, s, strideH, strideW, padH, padW, groups, outH, outW; };
struct PoolArgs { int n, c, h, w, kh, kw, strideH, strideW, padH, padW, outH, outW; };

class Engine {
 public:
  explicit Engine(int logicalIndex);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  int index() const { return index_; }
  int physical() const { return physical_; }

  // ---- memory and queue ----
  Buffer* alloc(int dtype, int64_t length);
  void release(Buffer* b);  // back to the cache: later work on this stream is ordered after earlier work
  void write(Buffer* b, const void* data, int64_t offset, int64_t length);
  void readSync(Buffer* b, int64_t offset, int64_t length, void* out);
  Pending* readAsync(Buffer* b, int64_t offset, int64_t length);
  Pending* syncAsync();
  static void waitPending(Pending* p);                  // any thread
  void finishPending(Pending* p, void* out);           // owner thread: copies out (if a read), frees p
  void synchronize();
  void* recordEvent();
  void waitEvent(void* event);
  static void destroyEvent(void* event);
  void setThreads(int threads);
  int getThreads() const;
  void memoryInfo(size_t* inUse, size_t* cached) const { *inUse = inUse_; *cached = cachedBytes_; }
  void emptyCache();

  // ---- data movement ----
  void fill(Buffer* b, double value);
  void random(Buffer* b, bool normal, uint64_t seed, uint64_t offset, double a, double bb);
  void copy(Buffer* src, int64_t srcOffset, Buffer* dst, int64_t dstOffset, int64_t length);
  void copyToPeer(Buffer* src, Engine* peer, Buffer* dst, int64_t length);
  void channelCopy(Buffer* src, Buffer* dst, int64_t n, int64_t hw, int64_t srcC, int64_t srcOffset, int64_t dstC,
                   int64_t dstOffset, int64_t count);

  // ---- dense algebra ----
  void gemm(bool transA, bool transB, int m, int n, int k, float alpha, Buffer* a, Buffer* b, float beta, Buffer* c);
  void axpy(float alpha, Buffer* x, Buffer* y);
  void scale(float alpha, Buffer* x);
  void add(Buffer* a, Buffer* b, Buffer* out);
  void biasAdd(Buffer* y, Buffer* bias, int n, int c, int hw);
  void biasGrad(Buffer* dy, Buffer* db, int n, int c, int hw, float beta);

  // ---- convolution ----
  void conv2dForward(Buffer* x, Buffer* w, Buffer* bias, Buffer* y, const ConvArgs& g);
  void conv2dBackwardData(Buffer* dy, Buffer* w, Buffer* dx, const ConvArgs& g);
  void conv2dBackwardFilter(Buffer* x, Buffer* dy, Buffer* dw, Buffer* db, const ConvArgs& g, float beta);

  // ---- the rest ----
  void reluForward(Buffer* x, Buffer* y);
  void reluBackward(Buffer* y, Buffer* dy, Buffer* dx);
  void lrnForward(Buffer* x, Buffer* y, int size, double alpha, double beta, double k, int n, int c, int hw);
  void lrnBackward(Buffer* x, Buffer* y, Buffer* dy, Buffer* dx, int size, double alpha, double beta, double k, int n,
                   int c, int hw);
  void maxPoolForward(Buffer* x, Buffer* y, Buffer* argmax, const PoolArgs& g);
  void maxPoolBackward(Buffer* dy, Buffer* argmax, Buffer* dx, const PoolArgs& g);
  void dropout(Buffer* x, Buffer* y, double p, uint64_t seed, uint64_t offset);
  void softmaxCrossEntropy(Buffer* logits, Buffer* labels, Buffer* loss, Buffer* dlogits, int n, int c);
  void softmax(Buffer* x, Buffer* y, int n, int c);
  void topkCorrect(Buffer* logits, Buffer* labels, Buffer* out, int n, int c, int k);
  void sgdUpdate(Buffer* w, Buffer* g, Buffer* v, float lr, float momentum, float weightDecay, bool paper);

  /** Opaque to callers: the stream (cudaStream_t). */
  void* stream() const { return stream_; }

  struct Staging;

 private:
  void use() const;
  void* devAlloc(size_t bytes, size_t* capacity);
  void devFree(void* p, size_t capacity);
  float* workspace(size_t floats);
  Staging* acquireStaging(size_t bytes);
  int gridFor(long long n) const;
  template <class LA, class LB, class Epi>
  void gemmAuto(LA la, LB lb, Epi epi, int M, int N, int K, int batch);
  template <class Tile, bool Tc, class LA, class LB, class Epi>
  void gemmRun(LA la, LB lb, Epi epi, int M, int N, int K, int batch);

  int index_, physical_;
  int sms_ = 1;
  int threads_ = 1;  // host threads of the emulated device (a GPU ignores it)
  void* stream_ = nullptr;
  std::multimap<size_t, void*> cache_;  // free device blocks by capacity
  size_t inUse_ = 0, cachedBytes_ = 0;
  Buffer ws_;                           // scratch (split-K partials, LRN, per-row losses)
  std::vector<std::unique_ptr<Staging>> staging_;
};

}  // namespace cuda
}  // namespace alexnet
