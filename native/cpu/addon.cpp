// N-API surface of the CPU engine (what packages/tensor/src/native-engine.ts adapts to the Engine
// interface). Every op's arguments are read and checked by native/common/ops.h through the shared
// helpers of native/common/napi_args.h (which hold the engine and its buffers for the call, refuse it
// when a getter destroyed or freed them, and check `this` by type tag); a valid call is queued on the
// engine's thread (engine.h) and returns at once. launch() below maps each op to its kernel (kernels.h).
#include <napi.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "../common/ops.h"
#include "engine.h"
#include "isa.h"
#include "kernels.h"
#include "kernels/gemm.h"
#include "kernels/winograd.h"

namespace alexnet {
namespace {

class NativeEngine;

struct CpuKind {
  using Buffer = Buf;
  using Core = EngineCore;
  static constexpr const char* kWhat = "a cpu device buffer";
  static constexpr napi_type_tag kTag = {0x8b3c6a1e5f2d4c7aULL, 0x9e1f0b2c3d4a5e6fULL};
  static constexpr const char* kEngineWhat = "a cpu engine";
  static constexpr napi_type_tag kEngineTag = {0x1c7e5a3b9d2f4e60ULL, 0x7a6b5c4d3e2f1a0bULL};
  static int64_t hostBytes(const Buf& b) { return (int64_t)b.bytes; }
  static std::shared_ptr<EngineCore> coreOf(Napi::Object engine);
  static std::string convProblem(const ConvGeometry& g) { return alexnet::convProblem(g); }
  static std::string poolProblem(const PoolGeometry& g) { return alexnet::poolProblem(g); }
};

using Call = napi::Call<CpuKind>;
std::atomic<uint64_t> g_nextEngineId{1};

// ---- each op on its kernel (run on the engine's queue thread) ----

void launch(ThreadPool& t, const ops::Fill<Call>& p) {
  fill(t, p.buf->data, p.buf->length, dtypeBytes(p.buf->dtype), p.pattern);
}
void launch(ThreadPool& t, const ops::Random<Call>& p) {
  (p.normal ? randomNormal : randomUniform)(t, p.buf->f32(), p.buf->length, p.seed, p.offset, p.a, p.b);
}
void launch(ThreadPool&, const ops::Copy<Call>& p) {
  const int eb = dtypeBytes(p.src->dtype);
  std::memmove(p.dst->u8() + p.dstOffset * eb, p.src->u8() + p.srcOffset * eb, (size_t)(p.length * eb));
}
void launch(ThreadPool&, const ops::CopyToPeer<Call>& p) {
  std::memmove(p.dst->data, p.src->data, (size_t)(p.length * dtypeBytes(p.src->dtype)));
}
void launch(ThreadPool& t, const ops::ChannelCopy<Call>& p) {
  channelCopy(t, p.src->u8(), p.dst->u8(), p.n, p.hw, p.srcC, p.srcOffset, p.dstC, p.dstOffset, p.count,
              dtypeBytes(p.src->dtype));
}
void launch(ThreadPool& t, const ops::Gemm<Call>& p) {
  (activePrecision() == Precision::Bf16 ? bgemm : sgemm)(t, p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.a->f32(),
                                                        p.transA ? p.m : p.k, p.b->f32(), p.transB ? p.k : p.n,
                                                        p.beta, p.c->f32(), p.n);
}
void launch(ThreadPool& t, const ops::Axpy<Call>& p) { axpy(t, p.alpha, p.x->f32(), p.y->f32(), p.x->length); }
void launch(ThreadPool& t, const ops::Scale<Call>& p) { scale(t, p.alpha, p.x->f32(), p.x->length); }
void launch(ThreadPool& t, const ops::Add<Call>& p) { add(t, p.b[0]->f32(), p.b[1]->f32(), p.b[2]->f32(), p.b[0]->length); }
void launch(ThreadPool& t, const ops::BiasAdd<Call>& p) { biasAdd(t, p.y->f32(), p.bias->f32(), p.n, p.c, p.hw); }
void launch(ThreadPool& t, const ops::BiasGrad<Call>& p) {
  biasGrad(t, p.y->f32(), p.bias->f32(), p.n, p.c, p.hw, p.beta);
}
void launch(ThreadPool& t, const ops::Conv2dForward<Call>& p) {
  conv2dForward(t, p.x->f32(), p.w->f32(), p.bias ? p.bias->f32() : nullptr, p.y->f32(), p.g);
}
void launch(ThreadPool& t, const ops::Conv2dBackwardData<Call>& p) {
  conv2dBackwardData(t, p.dy->f32(), p.w->f32(), p.dx->f32(), p.g);
}
void launch(ThreadPool& t, const ops::Conv2dBackwardFilter<Call>& p) {
  conv2dBackwardFilter(t, p.x->f32(), p.dy->f32(), p.dw->f32(), p.db ? p.db->f32() : nullptr, p.g, p.beta);
}
void launch(ThreadPool& t, const ops::ReluForward<Call>& p) { reluForward(t, p.b[0]->f32(), p.b[1]->f32(), p.b[0]->length); }
void launch(ThreadPool& t, const ops::ReluBackward<Call>& p) {
  reluBackward(t, p.b[0]->f32(), p.b[1]->f32(), p.b[2]->f32(), p.b[0]->length);
}
void launch(ThreadPool& t, const ops::TanhForward<Call>& p) { tanhForward(t, p.b[0]->f32(), p.b[1]->f32(), p.b[0]->length); }
void launch(ThreadPool& t, const ops::TanhBackward<Call>& p) {
  tanhBackward(t, p.b[0]->f32(), p.b[1]->f32(), p.b[2]->f32(), p.b[0]->length);
}
void launch(ThreadPool& t, const ops::LrnForward<Call>& p) { lrnForward(t, p.x->f32(), p.y->f32(), p.p, p.n, p.c, p.hw); }
void launch(ThreadPool& t, const ops::LrnBackward<Call>& p) {
  lrnBackward(t, p.x->f32(), p.y->f32(), p.dy->f32(), p.dx->f32(), p.p, p.n, p.c, p.hw);
}
void launch(ThreadPool& t, const ops::MaxPoolForward<Call>& p) {
  maxPoolForward(t, p.in->f32(), p.out->f32(), p.argmax->i32(), p.g);
}
void launch(ThreadPool& t, const ops::MaxPoolBackward<Call>& p) {
  const int64_t bad = maxPoolBackward(t, p.in->f32(), p.argmax->i32(), p.out->f32(), p.g);  // argmax is device data
  if (bad) throw std::runtime_error("maxPoolBackward: " + std::to_string(bad) + " argmax entries were out of range (skipped)");
}
template <bool Backward>
void launch(ThreadPool& t, const ops::Dropout<Call, Backward>& p) {
  dropout(t, p.x->f32(), p.y->f32(), p.x->length, p.p, p.seed, p.offset);
}
void launch(ThreadPool& t, const ops::SoftmaxCrossEntropy<Call>& p) {
  softmaxCrossEntropy(t, p.logits->f32(), p.labels->i32(), p.loss->f32(), p.dlogits ? p.dlogits->f32() : nullptr, p.n,
                      p.c);
}
void launch(ThreadPool& t, const ops::Softmax<Call>& p) { softmax(t, p.x->f32(), p.y->f32(), p.n, p.c); }
void launch(ThreadPool&, const ops::TopkCorrect<Call>& p) {
  p.out->i32()[0] = topkCorrect(p.logits->f32(), p.labels->i32(), p.n, p.c, p.k);
}
void launch(ThreadPool& t, const ops::SgdUpdate<Call>& p) {
  sgdUpdate(t, p.w->f32(), p.g->f32(), p.v->f32(), p.w->length, p.lr, p.momentum, p.weightDecay, p.paper);
}

// ---- engines ----

struct AsyncResult {
  Napi::Promise::Deferred deferred;
  std::vector<uint8_t> data;
  bool hasData = false;
  std::string error;
  NativeEngine* engine = nullptr;
  explicit AsyncResult(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

class NativeEngine : public ops::EngineWrap<NativeEngine, CpuKind> {
 public:
  explicit NativeEngine(const Napi::CallbackInfo& info) : EngineWrap(info) {
    Napi::Env env = info.Env();
    core_ = std::make_shared<EngineCore>(index(info), g_nextEngineId++);
    tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                          "alexnet-cpu-engine", 0, 1);
    tsfn_.Unref(env);
  }

  // A finalizer may run while Node tears the environment down, when the thread-safe function may
  // already be closing (releasing it then aborts in libuv): stop the thread, leave the handle to Node.
  ~NativeEngine() override {
    if (core_) core_->shutdown();  // empties the cache
    if (reportedCached_ && env_) Napi::MemoryManagement::AdjustExternalMemory(env_, -reportedCached_);
    reportedCached_ = 0;
    core_.reset();
  }

  /** Op's arguments read by ops.h, then its kernel queued (launch above). */
  template <template <class> class Op>
  void Bind(const Napi::CallbackInfo& info) {
    Call c(info, Op<Call>::name, core_);
    Op<Call> p;
    p.read(c);
    if constexpr (std::is_same_v<Op<Call>, ops::CopyToPeer<Call>>) p.peer.reset();  // the op holds dst, not the peer
    enqueue(c, [p](EngineCore& core) { launch(core.pool, p); });
  }

  /** Queues fn(core) once c confirms the engine and every buffer it took survived the reading of the arguments. */
  template <class F>
  void enqueue(const Call& c, F fn) {
    c.check();
    c.eachTaken([](Buf& b) { b.queued.store(true, std::memory_order_relaxed); });
    EngineCore* core = &c.core();
    c.guard([&] { core->enqueue([core, fn] { fn(*core); }); });
  }

  void shutdown() {
    if (!core_) return;
    core_->shutdown();  // drains: every pending read has made its call into tsfn_ by now; empties the cache
    if (reportedCached_ && env_) Napi::MemoryManagement::AdjustExternalMemory(env_, -reportedCached_);
    reportedCached_ = 0;
    core_.reset();
    tsfn_.Release();
  }

  // V8 sees what is really held: JavaScript-held buffers (NativeBuffer) plus this engine's cache.
  // The cache fills on the queue thread, where V8 cannot be called, so the JavaScript thread
  // reports the difference at each alloc, free, memoryStats and trimCache.
  void syncCached(Napi::Env env) {
    if (!core_) return;
    env_ = env;
    const int64_t now = core_->cache->cachedBytes.load();
    if (now != reportedCached_) {
      Napi::MemoryManagement::AdjustExternalMemory(env, now - reportedCached_);
      reportedCached_ = now;
    }
  }

  void throwPendingError(Napi::Env env) {
    const std::string err = core_->takeError();
    if (!err.empty()) throw Napi::Error::New(env, err);
  }

  // ---- memory and queue ----

  Napi::Value Alloc(const Napi::CallbackInfo& info) {
    Napi::Object b = ops::alloc(Call(info, "alloc", core_));
    syncCached(info.Env());
    return b;
  }

  void Free(const Napi::CallbackInfo& info) {
    ops::free<CpuKind>(info, core_);
    syncCached(info.Env());
  }

  void Write(const Napi::CallbackInfo& info) {
    Call c(info, "write", core_);
    ops::Write<Call> p;
    p.read(c);
    c.check();
    const size_t bytes = p.bytes();
    if (bytes == 0) return;
    uint8_t* dst = p.buf->u8() + p.offset * dtypeBytes(p.buf->dtype);
    const uint8_t* src = static_cast<const uint8_t*>(p.data.data);
    if (!p.buf->queued.load(std::memory_order_relaxed) || c.core().idle()) {
      // Nothing queued can touch it (a fresh buffer, as tensor() uploads into, or an idle engine):
      // copy now, without the staging copy.
      std::memcpy(dst, src, bytes);
      return;
    }
    auto staged = std::make_shared<std::vector<uint8_t>>(src, src + bytes);
    BufPtr b = p.buf;
    enqueue(c, [b, staged, dst](EngineCore&) { std::memcpy(dst, staged->data(), staged->size()); });
  }

  Napi::Value ReadSync(const Napi::CallbackInfo& info) {
    Call c(info, "readSync", core_);
    ops::Read<Call> p;
    p.read(c);
    c.check();
    EngineCore& core = c.core();
    core.waitReached(core.submitted());
    throwPendingError(info.Env());
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(info.Env(), p.bytes());
    if (p.length) std::memcpy(ab.Data(), p.buf->u8() + p.offset * dtypeBytes(p.buf->dtype), p.bytes());
    return ab;
  }

  /** Completes `r` on the JavaScript thread (called through tsfn_). */
  static void finish(Napi::Env env, Napi::Function, AsyncResult* r) {
    if (env != nullptr) {
      NativeEngine* self = r->engine;
      if (--self->pending_ == 0 && self->core_) self->tsfn_.Unref(env);
      if (!r->error.empty()) {
        r->deferred.Reject(Napi::Error::New(env, r->error).Value());
      } else if (r->hasData && r->data.empty()) {
        r->deferred.Resolve(Napi::ArrayBuffer::New(env, 0));
      } else if (r->hasData) {
        // The bytes the queue thread copied become the ArrayBuffer's own memory (no second copy into
        // fresh pages: a 151 MB gradient read twice cost 2x the page faults); V8 is told their size so
        // that the collector frees them as promptly as its own.
        auto* bytes = new std::vector<uint8_t>(std::move(r->data));
        const int64_t size = (int64_t)bytes->size();
        Napi::MemoryManagement::AdjustExternalMemory(env, size);
        Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, bytes->data(), bytes->size(),
                                                      [size](Napi::Env e, void*, std::vector<uint8_t>* b) {
                                                        Napi::MemoryManagement::AdjustExternalMemory(e, -size);
                                                        delete b;
                                                      }, bytes);
        r->deferred.Resolve(ab);
      } else {
        r->deferred.Resolve(env.Undefined());
      }
      self->Unref();
    }
    delete r;
  }

  /** A Promise completed once the queue reaches this point, with [offset, offset + length) of b if given. */
  Napi::Value queueRead(const Call& c, BufPtr b, int64_t offset, int64_t length) {
    c.check();
    if (b) b->queued.store(true, std::memory_order_relaxed);
    Napi::Env env = c.env();
    auto* r = new AsyncResult(env);
    r->engine = this;
    Napi::Promise promise = r->deferred.Promise();
    if (pending_++ == 0) tsfn_.Ref(env);
    Ref();  // a pending read keeps this engine alive
    EngineCore* core = &c.core();
    Napi::ThreadSafeFunction tsfn = tsfn_;
    try {
      core->enqueue([r, b, offset, length, core, tsfn]() mutable {
        if (b) {
          const int eb = dtypeBytes(b->dtype);
          try {
            r->data.assign(b->u8() + offset * eb, b->u8() + (offset + length) * eb);
            r->hasData = true;
          } catch (const std::bad_alloc&) {
            r->error = "read: out of memory";
          }
        }
        const std::string err = core->takeError();
        if (!err.empty()) r->error = err;
        tsfn.BlockingCall(r, finish);
      });
    } catch (const std::exception& e) {
      if (--pending_ == 0) tsfn_.Unref(env);
      Unref();
      delete r;
      throw Napi::Error::New(env, std::string(c.op()) + ": " + e.what());
    }
    return promise;
  }

  void SynchronizeSync(const Napi::CallbackInfo& info) {
    Call c(info, "synchronizeSync", core_);
    c.core().waitReached(c.core().submitted());
    throwPendingError(info.Env());
  }

  /** An event is the number of ops queued so far; waitEvent(engine, event) waits for that engine to reach it. */
  Napi::Value RecordEvent(const Napi::CallbackInfo& info) {
    Call c(info, "recordEvent", core_);
    return Napi::Number::New(info.Env(), (double)c.core().submitted());
  }

  void WaitEvent(const Napi::CallbackInfo& info) {
    Call c(info, "waitEvent", core_);
    std::shared_ptr<EngineCore> other = c.engine(0, "engine");
    const uint64_t seq = (uint64_t)c.size(1, "event");
    if (!other || other == core_) return;  // destroyed (nothing left to wait for), or in order already
    if (seq > other->submitted()) c.fail("the event is beyond what that engine has queued");
    enqueue(c, [other, seq](EngineCore&) { other->waitReached(seq); });
  }

  void SetThreads(const Napi::CallbackInfo& info) {
    Call c(info, "setThreads", core_);
    ops::SetThreads<Call> p;
    p.read(c);
    const int n = p.threads;
    enqueue(c, [n](EngineCore& core) { core.pool.resize(n); });
  }

  Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
    Call c(info, "memoryStats", core_);
    syncCached(info.Env());
    const EngineCore& core = c.core();
    return ops::memoryStats(info.Env(),
                            {(double)core.stats->bytes, (double)core.stats->buffers, (double)core.stats->peakBytes},
                            {(double)core.cache->cachedBytes, (double)core.cache->cachedBlocks, (double)core.cache->limit()});
  }

  /** Frees every cached block; returns the bytes given back. */
  Napi::Value TrimCache(const Napi::CallbackInfo& info) {
    Call c(info, "trimCache", core_);
    const int64_t freed = c.core().cache->trim(0);
    syncCached(info.Env());
    return Napi::Number::New(info.Env(), (double)freed);
  }

  /** Bounds the cache at `bytes` (trimming to it); -1 restores the default max(1 GiB, 2 x peak live). */
  void SetCacheLimit(const Napi::CallbackInfo& info) {
    Call c(info, "setCacheLimit", core_);
    const Napi::Value v = c.at(0);
    const double d = c.number(0, "bytes");
    if (!(d == -1 || (d >= 0 && d <= napi::kMaxSafeInteger && d == std::floor(d))))
      c.expected("a non-negative integer or -1", "bytes", v, false);
    c.core().cache->setLimit((int64_t)d);
    syncCached(info.Env());
  }

  /** Test hook: a queued op that just takes `ms` milliseconds (asynchrony and overlap tests). */
  void Sleep(const Napi::CallbackInfo& info) {
    Call c(info, "sleep", core_);
    const int64_t ms = c.size(0, "ms");
    if (ms > 60000) c.fail("Expected ms of at most 60000 but received " + std::to_string(ms));
    enqueue(c, [ms](EngineCore&) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); });
  }

  void Destroy(const Napi::CallbackInfo&) { shutdown(); }

 private:
  Napi::ThreadSafeFunction tsfn_;
  napi_env env_ = nullptr;
  int64_t reportedCached_ = 0;  // cache bytes reported to V8 as external memory
  int pending_ = 0;
};

std::shared_ptr<EngineCore> CpuKind::coreOf(Napi::Object engine) { return NativeEngine::Unwrap(engine)->core(); }

// ---- module functions ----

Napi::Value GetIsa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("active", isaName(activeIsa()));
  o.Set("detected", isaName(detectIsa()));
  const GemmBlocking b = gemmBlocking();
  Napi::Object g = Napi::Object::New(env);
  g.Set("kernel", b.kernel);
  g.Set("mr", b.mr);
  g.Set("nr", b.nr);
  g.Set("kc", (double)b.kc);
  g.Set("mc", (double)b.mc);
  g.Set("nc", (double)b.nc);
  o.Set("gemm", g);
  return o;
}

void SetIsaFn(const Napi::CallbackInfo& info) {
  napi::Args<CpuKind> a(info, "setIsa", 0);
  const std::string name = a.oneOf(0, "isa", {"avx512", "avx2", "portable"});
  Isa isa;
  parseIsa(name.c_str(), &isa);
  if (!setIsa(isa)) a.fail("this CPU lacks " + name + " (it has " + isaName(detectIsa()) + ")");
}

/** Peak GFLOP/s of an FMA loop with no memory traffic, on `threads` threads (blocks the caller). */
Napi::Value PeakGflops(const Napi::CallbackInfo& info) {
  napi::Args<CpuKind> a(info, "peakGflops", 0);
  const int64_t threads = a.positive(0, "threads", 256);
  const double seconds = a.finite(1, "seconds");
  if (seconds <= 0 || seconds > 30) a.expected("a number of seconds in (0, 30]", "seconds", a.at(1), false);
  ThreadPool pool;
  pool.resize((int)threads);
  return Napi::Number::New(info.Env(), measurePeakGflops(pool, seconds));
}

/** Argument 0 as a convolution pass: 'forward', 'backwardData' or 'backwardFilter'. */
WinogradPass passArg(const napi::Args<CpuKind>& a) {
  const std::string pass = a.oneOf(0, "pass", {"forward", "backwardData", "backwardFilter"});
  return pass == "forward" ? WinogradPass::Forward : pass == "backwardData" ? WinogradPass::BackwardData : WinogradPass::BackwardFilter;
}

/**
 * setConvAlgorithm(pass, algorithm): the stride-1 3x3 and 5x5 convolutions' algorithm for pass
 * 'forward', 'backwardData' or 'backwardFilter': 'auto' (the measured choice), 'direct' (im2col + GEMM),
 * 'winograd2' (F(2x2,3x3); F(2x2,5x5)), 'winograd4' (F(4x4,3x3); F(2x2,5x5)). Process-wide
 * (benchmarks and tests); returns the previous setting.
 */
Napi::Value SetConvAlgorithm(const Napi::CallbackInfo& info) {
  napi::Args<CpuKind> a(info, "setConvAlgorithm", 0);
  const WinogradPass wp = passArg(a);
  static const char* const names[] = {"auto", "direct", "winograd2", "winograd4"};
  static const int codes[] = {-1, 0, 2, 4};
  const int prev = winogradSetting(wp);
  if (a.given(1)) {
    const std::string algo = a.oneOf(1, "algorithm", {"auto", "direct", "winograd2", "winograd4"});
    for (int i = 0; i < 4; ++i)
      if (algo == names[i]) setWinogradSetting(wp, codes[i]);
  }
  for (int i = 0; i < 4; ++i)
    if (prev == codes[i]) return Napi::String::New(info.Env(), names[i]);
  return Napi::String::New(info.Env(), "auto");
}

/**
 * convAlgorithm(pass, geometry): what the engine runs for this convolution and pass now: 'direct'
 * (im2col + GEMM), 'winograd2' / 'winograd4' (stride 1), or 'space-to-depth winograd2' / '...4' (a
 * strided convolution as the stride-1 3x3 one of its phases: conv1; forward and filter gradient).
 */
Napi::Value ConvAlgorithmFor(const Napi::CallbackInfo& info) {
  napi::Args<CpuKind> a(info, "convAlgorithm", 0);
  const WinogradPass wp = passArg(a);
  const ConvGeometry g = a.conv(1);
  std::string name = "direct";
  if (const int v = winogradVariant(g, wp)) name = "winograd" + std::to_string(v);
  else if (wp != WinogradPass::BackwardData)
    if (const int v = spaceToDepthVariant(g, wp)) name = "space-to-depth winograd" + std::to_string(v);
  return Napi::String::New(info.Env(), name);
}

/** precision(): what the GEMMs were asked to use and use now, whether the CPU has AVX512_BF16, and why not. */
Napi::Value GetPrecision(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("requested", precisionName(requestedPrecision()));
  o.Set("active", precisionName(activePrecision()));
  o.Set("bf16Supported", cpuHasBf16());
  o.Set("bf16Kernel", bf16KernelName(activeBf16Kernel()));
  o.Set("bf16KernelDetected", bf16KernelName(detectBf16Kernel()));
  const char* why = bf16Unavailable();
  o.Set("reason", why ? Napi::Value(Napi::String::New(env, why)) : env.Null());
  const char* bad = precisionEnvInvalid();
  o.Set("envInvalid", bad ? Napi::Value(Napi::String::New(env, bad)) : env.Null());
  return o;
}

/**
 * setPrecision(name): the GEMMs' input precision, 'fp32' or 'bf16', process-wide (read when each op
 * runs: set it before queuing work). Returns the precision in effect: 'fp32' when bf16 was asked for
 * but the CPU lacks AVX512_BF16 or the kernels are capped below AVX-512 (precision().reason says which).
 */
Napi::Value SetPrecisionFn(const Napi::CallbackInfo& info) {
  napi::Args<CpuKind> a(info, "setPrecision", 0);
  const std::string name = a.oneOf(0, "precision", {"fp32", "bf16"});
  Precision p = Precision::Fp32;
  parsePrecision(name.c_str(), &p);
  setRequestedPrecision(p);
  return Napi::String::New(info.Env(), precisionName(activePrecision()));
}

/** setBf16Kernel('amx' | 'avx512bf16'): the bf16 GEMMs' micro-kernel (tests and benchmarks run both). */
void SetBf16KernelFn(const Napi::CallbackInfo& info) {
  napi::Args<CpuKind> a(info, "setBf16Kernel", 0);
  const std::string name = a.oneOf(0, "kernel", {"amx", "avx512bf16"});
  const Bf16Kernel k = name == "amx" ? Bf16Kernel::Amx : Bf16Kernel::Avx512Bf16;
  if (!setBf16Kernel(k))
    a.fail("this CPU lacks " + std::string(k == Bf16Kernel::Amx ? "AMX-BF16 tiles (or Linux did not grant them)" : "AVX512_BF16") +
           " (its best bf16 kernel is " + bf16KernelName(detectBf16Kernel()) + ")");
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ops::exportEngine<NativeEngine, CpuKind>(env, exports, {
    NativeEngine::InstanceMethod<&NativeEngine::SetCacheLimit>("setCacheLimit"),
    NativeEngine::InstanceMethod<&NativeEngine::Sleep>("sleep"),
  });
  exports.Set("isa", Napi::Function::New(env, GetIsa, "isa"));
  exports.Set("setIsa", Napi::Function::New(env, SetIsaFn, "setIsa"));
  exports.Set("peakGflops", Napi::Function::New(env, PeakGflops, "peakGflops"));
  exports.Set("setConvAlgorithm", Napi::Function::New(env, SetConvAlgorithm, "setConvAlgorithm"));
  exports.Set("convAlgorithm", Napi::Function::New(env, ConvAlgorithmFor, "convAlgorithm"));
  exports.Set("precision", Napi::Function::New(env, GetPrecision, "precision"));
  exports.Set("setPrecision", Napi::Function::New(env, SetPrecisionFn, "setPrecision"));
  exports.Set("setBf16Kernel", Napi::Function::New(env, SetBf16KernelFn, "setBf16Kernel"));
  return exports;
}

}  // namespace
}  // namespace alexnet

static Napi::Object InitAlexnetCpu(Napi::Env env, Napi::Object exports) { return alexnet::Init(env, exports); }
NODE_API_MODULE(alexnet_cpu, InitAlexnetCpu)
