// The emulated CUDA runtime behind cuda_emu.h: fibers for the threads of a block, worker threads for
// the blocks of a grid, a queue thread per stream, events as positions in a stream's queue.
#include "cuda_emu.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace emu {
namespace {

// ---------------------------------------------------------------- fibers ----
// One fiber per thread of the block being run. The scheduler (the worker's own stack) resumes each
// live fiber in turn; a fiber runs until it reaches __syncthreads() or returns, then switches back.
// A round over all live fibers therefore ends with every one of them at the same barrier.

constexpr size_t kStackBytes = 64 * 1024;  // kernels keep small frames (register tiles <= 1 KiB)

#if defined(__x86_64__)
// void emuSwitch(void** saveSp, void* loadSp): saves callee-saved registers, MXCSR and the x87
// control word on the current stack, stores its pointer, and resumes the other stack.
extern "C" void emuSwitch(void** saveSp, void* loadSp);
asm(R"(
.text
.p2align 4
.type emuSwitch,@function
emuSwitch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size emuSwitch,.-emuSwitch
)");
#endif

struct Fiber {
  void* stack = nullptr;  // mmap'd, guard page at the low end
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t ctx;
#endif
  bool done = true;
};

struct FiberSys {
  std::vector<Fiber> fibers;
#if defined(__x86_64__)
  void* schedSp = nullptr;
#else
  ucontext_t sched;
#endif
  int current = -1;
  const std::function<void()>* body = nullptr;
  ~FiberSys() {
    for (auto& f : fibers) if (f.stack) munmap(f.stack, kStackBytes + 4096);
  }
};

thread_local FiberSys tls;
std::atomic<long long> gDivergences{0};

void toScheduler() {
  Fiber& f = tls.fibers[tls.current];
#if defined(__x86_64__)
  emuSwitch(&f.sp, tls.schedSp);
#else
  swapcontext(&f.ctx, &tls.sched);
#endif
}

void fiberEntry() {
  (*tls.body)();
  tls.fibers[tls.current].done = true;
  toScheduler();
  std::abort();  // a finished fiber is never resumed
}

void* newStack() {
  void* p = mmap(nullptr, kStackBytes + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  mprotect(p, 4096, PROT_NONE);  // overflowing a fiber stack faults instead of corrupting memory
  return p;
}

void startFiber(Fiber& f) {
  if (!f.stack) f.stack = newStack();
  char* top = static_cast<char*>(f.stack) + 4096 + kStackBytes;
#if defined(__x86_64__)
  uint64_t* s = reinterpret_cast<uint64_t*>(top);  // 16-byte aligned
  s[-1] = 0;                                        // fake return address of fiberEntry
  s[-2] = reinterpret_cast<uint64_t>(&fiberEntry);  // popped by emuSwitch's ret
  for (int i = 3; i <= 8; ++i) s[-i] = 0;           // rbp rbx r12 r13 r14 r15
  uint32_t csr[2];
  asm volatile("stmxcsr %0" : "=m"(csr[0]));
  asm volatile("fnstcw %0" : "=m"(*reinterpret_cast<uint16_t*>(&csr[1])));
  memcpy(&s[-9], csr, 8);
  f.sp = &s[-9];
#else
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = static_cast<char*>(f.stack) + 4096;
  f.ctx.uc_stack.ss_size = kStackBytes;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, &fiberEntry, 0);
#endif
  f.done = false;
}

/**
 * Fibers of a block run in thread order on even blocks and in reverse order on odd ones. Between two
 * barriers a fiber runs alone to the next barrier, so a missing barrier shows only if the reader runs
 * before the writer: alternating the order over the blocks of a grid catches such a bug whichever of
 * the two threads has the lower index. ALEXNET_CUDA_EMU_ORDER=forward|reverse pins one order.
 */
int fiberOrder() {
  static const int order = [] {
    const char* e = getenv("ALEXNET_CUDA_EMU_ORDER");
    if (e && !strcmp(e, "forward")) return 1;
    if (e && !strcmp(e, "reverse")) return 2;
    return 0;  // alternate
  }();
  return order;
}

/** Runs one block (blockIdx already set) to completion on this OS thread. */
void runBlock(const std::function<void()>& body, dim3 block) {
  const int n = (int)(block.x * block.y * block.z);
  if ((int)tls.fibers.size() < n) tls.fibers.resize(n);
  tls.body = &body;
  for (int t = 0; t < n; ++t) startFiber(tls.fibers[t]);
  const int order = fiberOrder();
  const bool reverse = order == 2 || (order == 0 && ((blockIdx.x + blockIdx.y + blockIdx.z) & 1));
  int live = n;
  while (live > 0) {
    int finished = 0;  // fibers that returned in this round (the others stopped at a barrier)
    for (int i = 0; i < n; ++i) {
      const int t = reverse ? n - 1 - i : i;
      Fiber& f = tls.fibers[t];
      if (f.done) continue;
      tls.current = t;
      threadIdx.x = t % block.x;
      threadIdx.y = (t / block.x) % block.y;
      threadIdx.z = t / (block.x * block.y);
#if defined(__x86_64__)
      emuSwitch(&tls.schedSp, f.sp);
#else
      swapcontext(&tls.sched, &f.ctx);
#endif
      if (f.done) { --live; ++finished; }
    }
    // Some threads returned while others wait at a barrier: __syncthreads in divergent code, undefined
    // behaviour in CUDA. Counted (emu::barrierDivergences) so tests can require zero.
    if (finished > 0 && live > 0) gDivergences.fetch_add(1, std::memory_order_relaxed);
  }
  tls.current = -1;
}

void runBlocks(const std::function<void()>& body, dim3 grid, dim3 block, int64_t begin, int64_t end) {
  gridDim = grid;
  blockDim = block;
  for (int64_t b = begin; b < end; ++b) {
    blockIdx.x = (unsigned)(b % grid.x);
    blockIdx.y = (unsigned)((b / grid.x) % grid.y);
    blockIdx.z = (unsigned)(b / ((int64_t)grid.x * grid.y));
    runBlock(body, block);
  }
}

// ---------------------------------------------------------------- worker pool ----
// The blocks of one grid are handed out through an atomic counter; the queue thread takes part.
class Pool {
 public:
  ~Pool() { resize(1); }
  int size() const { return (int)workers_.size() + 1; }
  void resize(int threads) {
    if (threads < 1) threads = 1;
    if (threads == size()) return;
    {
      std::lock_guard<std::mutex> l(m_);
      stop_ = true;
      ++gen_;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_ = false;
    uint64_t g = gen_;
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, g] { loop(g); });
  }
  void runGrid(const std::function<void()>& body, dim3 grid, dim3 block) {
    const int64_t total = (int64_t)grid.x * grid.y * grid.z;
    if (total == 0) return;
    if (workers_.empty() || total == 1) { runBlocks(body, grid, block, 0, total); return; }
    {
      std::lock_guard<std::mutex> l(m_);
      body_ = &body; grid_ = grid; block_ = block; total_ = total;
      next_.store(0);
      pending_ = (int)workers_.size();
      ++gen_;
    }
    cv_.notify_all();
    work();
    std::unique_lock<std::mutex> l(m_);
    done_.wait(l, [this] { return pending_ == 0; });
    body_ = nullptr;
  }

 private:
  void work() {
    for (;;) {
      int64_t b = next_.fetch_add(1);
      if (b >= total_) return;
      runBlocks(*body_, grid_, block_, b, b + 1);
    }
  }
  void loop(uint64_t seen) {
    for (;;) {
      {
        std::unique_lock<std::mutex> l(m_);
        cv_.wait(l, [&] { return gen_ != seen; });
        seen = gen_;
        if (stop_) return;
        if (!body_) continue;
      }
      work();
      std::lock_guard<std::mutex> l(m_);
      if (--pending_ == 0) done_.notify_one();
    }
  }
  std::vector<std::thread> workers_;
  std::mutex m_;
  std::condition_variable cv_, done_;
  const std::function<void()>* body_ = nullptr;
  dim3 grid_, block_;
  int64_t total_ = 0;
  std::atomic<int64_t> next_{0};
  int pending_ = 0;
  uint64_t gen_ = 0;
  bool stop_ = false;
};

thread_local int currentDevice = 0;
constexpr int kEmulatedGpus = 1;    // one "GPU": two logical devices share it, as on a one-GPU machine
constexpr int kEmulatedSms = 132;   // the H200's SM count, so launch heuristics match the real run

}  // namespace

// ---------------------------------------------------------------- streams and events ----
struct Stream {
  explicit Stream(int device) : device(device), thread([this] { loop(); }) {}
  ~Stream() {
    {
      std::lock_guard<std::mutex> l(m);
      stop = true;
    }
    cv.notify_all();
    thread.join();
  }
  /** Queue position of the last enqueued item. */
  uint64_t enqueue(std::function<void()> fn) {
    std::lock_guard<std::mutex> l(m);
    q.push_back(std::move(fn));
    ++enqueued;
    cv.notify_all();
    return enqueued;
  }
  void waitFor(uint64_t pos) {
    std::unique_lock<std::mutex> l(m);
    doneCv.wait(l, [&] { return completed >= pos; });
  }
  bool reached(uint64_t pos) {
    std::lock_guard<std::mutex> l(m);
    return completed >= pos;
  }
  void loop() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> l(m);
        cv.wait(l, [&] { return stop || !q.empty(); });
        if (q.empty()) return;
        fn = std::move(q.front());
        q.pop_front();
      }
      try {
        fn();
      } catch (const std::exception& e) {
        fprintf(stderr, "[cuda-emu] error in a queued operation: %s\n", e.what());
      }
      {
        std::lock_guard<std::mutex> l(m);
        ++completed;
      }
      doneCv.notify_all();
    }
  }
  int device;
  Pool pool;
  std::mutex m;
  std::condition_variable cv, doneCv;
  std::deque<std::function<void()>> q;
  uint64_t enqueued = 0, completed = 0;
  bool stop = false;
  std::thread thread;
};

struct Event {
  Stream* stream = nullptr;
  uint64_t pos = 0;
};

thread_local cudaError_t lastError = cudaSuccess;

/** gridDim.y and .z's limit: a GPU's 65535, or less (ALEXNET_CUDA_EMU_GRID_YZ) for tests. */
unsigned gridLimitYZ() {
  static const unsigned limit = [] {
    const char* e = getenv("ALEXNET_CUDA_EMU_GRID_YZ");
    const long v = e ? atol(e) : 0;
    return v > 0 && v < 65535 ? (unsigned)v : 65535u;
  }();
  return limit;
}

void launch(cudaStream_t s, dim3 grid, dim3 block, std::function<void()> kernel) {
  const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > gridLimitYZ() || grid.z > gridLimitYZ() ||
      threads == 0 || threads > 1024 || block.z > 64) {
    lastError = cudaErrorInvalidConfiguration;
    return;
  }
  s->enqueue([s, grid, block, k = std::move(kernel)] { s->pool.runGrid(k, grid, block); });
}

void setStreamThreads(cudaStream_t s, int threads) {
  s->enqueue([s, threads] { s->pool.resize(threads); });
}

int getStreamThreads(cudaStream_t s) { return s->pool.size(); }

long long barrierDivergences() { return gDivergences.load(); }

void runGridHere(dim3 grid, dim3 block, const std::function<void()>& kernel) {
  runBlocks(kernel, grid, block, 0, (int64_t)grid.x * grid.y * grid.z);
}

}  // namespace emu

void __syncthreads() {
  if (emu::tls.current < 0) return;  // called outside a kernel
  emu::toScheduler();
}

void __syncwarp(unsigned) { __syncthreads(); }

using emu::Stream;

cudaError_t cudaGetDeviceCount(int* count) { *count = emu::kEmulatedGpus; return cudaSuccess; }
cudaError_t cudaSetDevice(int d) {
  if (d < 0 || d >= emu::kEmulatedGpus) return cudaErrorInvalidDevice;
  emu::currentDevice = d;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* d) { *d = emu::currentDevice; return cudaSuccess; }
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int) {
  if (attr == cudaDevAttrMaxGridDimY || attr == cudaDevAttrMaxGridDimZ) {
    *v = (int)emu::gridLimitYZ();
    return cudaSuccess;
  }
  if (attr != cudaDevAttrMultiProcessorCount) return cudaErrorInvalidValue;
  // ALEXNET_CUDA_EMU_SMS: a smaller "GPU" makes the launch heuristics take their other branches
  // (large tiles, no split-K), so tests can cover both.
  const char* env = getenv("ALEXNET_CUDA_EMU_SMS");
  *v = env && atoi(env) > 0 ? atoi(env) : emu::kEmulatedSms;
  return cudaSuccess;
}
cudaError_t cudaDeviceCanAccessPeer(int* can, int, int) { *can = 1; return cudaSuccess; }
cudaError_t cudaDeviceEnablePeerAccess(int, unsigned int) { return cudaSuccess; }
cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = aligned_alloc(256, ((bytes ? bytes : 1) + 255) / 256 * 256);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void* p) { free(p); return cudaSuccess; }
cudaError_t cudaMallocHost(void** p, size_t bytes) { return cudaMalloc(p, bytes); }
cudaError_t cudaFreeHost(void* p) { free(p); return cudaSuccess; }
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t s) {
  if (bytes) s->enqueue([=] { memmove(dst, src, bytes); });
  return cudaSuccess;
}
cudaError_t cudaMemcpyPeerAsync(void* dst, int, const void* src, int, size_t bytes, cudaStream_t s) {
  return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s);
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind, cudaStream_t s) {
  if (width > dpitch || width > spitch) return cudaErrorInvalidValue;
  s->enqueue([=] {
    for (size_t r = 0; r < height; ++r)
      memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
  });
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s) {
  if (bytes) s->enqueue([=] { memset(p, value, bytes); });
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) {
  *s = new Stream(emu::currentDevice);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete s;  // drains the queue first
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  uint64_t pos;
  {
    std::lock_guard<std::mutex> l(s->m);
    pos = s->enqueued;
  }
  s->waitFor(pos);
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int) { *e = new emu::Event(); return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  std::lock_guard<std::mutex> l(s->m);
  e->stream = s;
  e->pos = s->enqueued;
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t e) {
  if (!e->stream) return cudaSuccess;
  return e->stream->reached(e->pos) ? cudaSuccess : cudaErrorNotReady;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (e->stream) e->stream->waitFor(e->pos);
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int) {
  if (!e->stream || e->stream == s) return cudaSuccess;  // same stream: already in order
  Stream* other = e->stream;
  uint64_t pos = e->pos;  // the record as of now, like CUDA
  s->enqueue([other, pos] { other->waitFor(pos); });
  return cudaSuccess;
}
cudaError_t cudaLaunchHostFunc(cudaStream_t s, void (*fn)(void*), void* data) {
  s->enqueue([fn, data] { fn(data); });
  return cudaSuccess;
}
cudaError_t cudaGetLastError() {
  const cudaError_t e = emu::lastError;
  emu::lastError = cudaSuccess;
  return e;
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
  }
  return "unknown error";
}
