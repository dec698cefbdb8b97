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

namespace vendor {
struct StandinHooks;
}
/** The emulated engine's hooks for the tests' stand-in libraries (its stream queue); null in the GPU build. */
const vendor::StandinHooks* standinHooks();

class DeviceCache;

/** Device memory of `length` elements; back to its engine's cache when the last reference goes. */
struct Buffer {
  void* ptr = nullptr;
  size_t capacity = 0;  // bytes of the allocation (rounded)
  int64_t length = 0;   // elements
  int dtype = kFloat32;
  int elemBytes = 4;
  uint64_t owner = 0;   // engine id
  bool discard = false; // freed to the driver rather than kept in the cache (the vendor libraries' search workspace)
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
  /** The same, freed to the driver once the stream's queued work is done (a one-off large block). */
  void discard(void* p, size_t capacity);
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

/**
 * The float32 math of the GEMM-shaped work, process-wide, by op family. The vendor libraries follow
 * PyTorch's defaults: cuDNN convolutions may use TF32 (CUDNN_DEFAULT_MATH), cuBLASLt matmuls are
 * strict (CUBLAS_COMPUTE_32F). Our own kernels are strict unless TF32 is asked for explicitly
 * (setTf32(true), setPrecision, ALEXNET_CUDA_PRECISION=tf32), which then applies to every path.
 */
struct Precision {
  bool convTf32 = true;      // cuDNN
  bool matmulTf32 = false;   // cuBLASLt
  bool ownConvTf32 = false;  // our implicit-GEMM convolutions (the wmma kernel, M, N >= 64)
  bool ownMatmulTf32 = false;
};
Precision precision();
/** conv / matmul: 1 TF32, 0 strict FP32, -1 unchanged; both paths (vendor and ours) follow. */
void setPrecision(int conv, int matmul);
/** TF32 everywhere (on) or nowhere (off): setPrecision(on, on). */
void setTf32(bool on);
/** Whether our own kernels use TF32 (for the GEMMs or the convolutions). */
bool tf32();

/** The op families that may run on a vendor library, each with its own choice and fallback. */
enum Family { kConvForward = 0, kConvBackwardData, kConvBackwardFilter, kGemm, kFamilies };
const char* familyName(Family f);
struct FamilyChoice {
  std::string library;  // "cudnn", "cublasLt" or "own"
  std::string reason;   // why our kernels, when they are used
};
FamilyChoice familyChoice(Family f);
/** ALEXNET_CUDA_KERNELS=own: our kernels for every family, whatever libraries are found. */
bool kernelsOwn();

/** Process-wide counts of what ran (which GEMM tiles, fusions, vendor calls, checks): tests read them. */
enum Counter {
  kCountGemmLarge = 0, kCountGemmSmall, kCountGemmThin, kCountGemmTf32, kCountSplitK, kCountConvDataDirect,
  kCountSgdLaunches, kCountSgdTensors, kCountFusedBias, kCountFusedRelu, kCountGridPieces,
  kCountCudnnFind, kCountCudnnCalls, kCountCublasLtHeuristic, kCountCublasLtCalls, kCountVendorChecks,
  kCountVendorFallbacks, kCounters
};
std::vector<std::pair<std::string, long long>> counters();
void count(Counter c, long long by = 1);

struct Pending;      // an in-flight read or synchronize
struct VendorState;  // this engine's cuDNN / cuBLASLt handles, plans and workspace (engine.cu)

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
  /** Enqueues the op held back for fusion, if any (every op but the fusable ones does this first). */
  void flush();

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

  // ---- raw launches (no flush, no fusion): the ops above, the vendor paths and their checks use them ----
  void ownGemm(bool transA, bool transB, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb,
               float beta, float* c, const float* bias, bool relu);
  void ownConvForward(const float* x, const float* w, const float* bias, float* y, const ConvGeometry& g, bool relu);
  void ownConvBackwardData(const float* dy, const float* w, float* dx, const ConvGeometry& g);
  void ownConvBackwardFilter(const float* x, const float* dy, float* dw, const ConvGeometry& g, float beta);
  void biasAct(float* y, const float* bias, bool relu, int n, int c, int hw);
  void copyRaw(void* dst, const void* src, size_t bytes);
  /** Norm-wise relative error of a against b (device vectors of n floats); synchronizes. */
  double compareRaw(const float* a, const float* b, long long n);
  BufPtr scratch(int64_t floats) { return allocRaw(kFloat32, floats); }

 private:
  void use() const;
  BufPtr allocRaw(int dtype, int64_t length);
  float* workspace(size_t floats);
  Staging* acquireStaging(size_t bytes);
  int gridFor(long long n) const;
  template <class K, class... A>
  void launchFlat(const char* what, K kernel, long long n, A... args);
  template <class LA, class LB, class Epi>
  void gemmAuto(LA la, LB lb, Epi epi, int M, int N, int K, int batch, bool tc);
  template <class Tile, bool Tc, class LA, class LB, class Epi>
  void gemmRun(LA la, LB lb, Epi epi, int M, int N, int K, int batch);
  // the fused ops, run by flush()
  void runGemm(bool transA, bool transB, int m, int n, int k, float alpha, const float* a, const float* b, float beta,
               float* c, const float* bias, bool relu);
  void runConvForward(const float* x, const float* w, const float* bias, float* y, const ConvGeometry& g, bool relu);
  void runSgd();
  VendorState* vendorState();  // created at first use

  int index_, physical_;
  int sms_ = 1;
  int maxGridY_ = 65535, maxGridZ_ = 65535;  // gridDim's limits (the GEMM launches in pieces within them)
  void* stream_ = nullptr;
  std::shared_ptr<DeviceCache> cache_;
  BufPtr ws_;  // scratch (split-K partials, LRN, per-row losses)
  std::vector<std::unique_ptr<Staging>> staging_;
  std::unique_ptr<VendorState> vendor_;

  /**
   * The op held back so that the next one may fuse into it: a gemm (biasAdd of its C over its columns
   * and an in-place reluForward of C fold into its epilogue), a conv2dForward (an in-place
   * reluForward of y folds in), or a run of sgdUpdates (one launch for all). Raw pointers: every
   * other call, alloc included, flushes first, so the memory cannot be reused before it runs.
   */
  enum class Held { None, Gemm, Conv, Sgd } held_ = Held::None;
  struct HeldGemm {
    bool transA, transB;
    int m, n, k;
    float alpha, beta;
    const float* a;
    const float* b;
    float* c;
    const float* bias;
    bool relu;
  } hg_{};
  struct HeldConv {
    const float* x;
    const float* w;
    const float* bias;
    float* y;
    int64_t ySize;
    ConvGeometry g;
    bool relu;
  } hc_{};
  struct HeldSgd {
    float* w;
    const float* g;
    float* v;
    int64_t n;
    float lr, wd;
  };
  std::vector<HeldSgd> hs_;
  float hsMomentum_ = 0.f;
  bool hsPaper_ = false;
  friend struct VendorState;
};

}  // namespace cuda
}  // namespace alexnet
