// N-API bindings of the CUDA engine (engine.h), what packages/tensor/src/native-engine.ts adapts to the
// Engine interface. Built twice: as alexnet_cuda.node against the CUDA runtime (engine.cu through nvcc)
// and as alexnet_cuda_emu.node against the emulation (engine.cu through g++ with ALEXNET_CUDA_EMU).
// Every op's arguments are read and checked by native/common/ops.h through the shared helpers of
// native/common/napi_args.h, with the CPU engine's messages and this engine's own geometry limits
// (cudaConvProblem, cudaPoolProblem): a call holds the engine and its buffers, is refused when a getter
// destroyed or freed them, and checks `this` by type tag. launch() below maps each op to the engine.
#include <napi.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <string>

#include "../common/ops.h"
#include "engine.h"
#include "vendor/loader.h"
#if defined(ALEXNET_CUDA_EMU)
#include "emu/selftest.h"
#endif

namespace alexnet {
namespace cuda {
namespace {

struct CudaKind {
  using Buffer = cuda::Buffer;
  using Core = Engine;
  static constexpr const char* kWhat = "a cuda device buffer";
  static constexpr napi_type_tag kTag = {0x3a9e6c21d47b5f08ULL, 0x6b1f2e8d9c0a4357ULL};
  static constexpr const char* kEngineWhat = "a cuda engine";
  static constexpr napi_type_tag kEngineTag = {0x5d2a7c91e4b3f608ULL, 0x2f8e6d4c1b0a9e37ULL};
  static int64_t hostBytes(const Buffer&) { return 0; }  // device memory: V8 does not see it
  static std::shared_ptr<Engine> coreOf(Napi::Object engine);
  static std::string convProblem(const ConvGeometry& g) { return cudaConvProblem(g); }
  static std::string poolProblem(const PoolGeometry& g) { return cudaPoolProblem(g); }
};

/** Events are externals of this tag (a cudaEvent_t, destroyed with the external). */
constexpr napi_type_tag kEventTag = {0x7e41c0d5a92b3f86ULL, 0x0c5d8e1f3a7b6942ULL};

using Call = napi::Call<CudaKind>;
std::atomic<uint64_t> g_nextEngineId{1};

// ---- each op on the engine (it enqueues on the engine's stream and returns) ----

void launch(Engine& e, const ops::Fill<Call>& p) { e.fill(*p.buf, p.pattern); }
void launch(Engine& e, const ops::Random<Call>& p) { e.random(*p.buf, p.normal, p.seed, p.offset, p.a, p.b); }
void launch(Engine& e, const ops::Copy<Call>& p) { e.copy(*p.src, p.srcOffset, *p.dst, p.dstOffset, p.length); }
void launch(Engine& e, const ops::CopyToPeer<Call>& p) { e.copyToPeer(*p.src, *p.peer, *p.dst, p.length); }
void launch(Engine& e, const ops::ChannelCopy<Call>& p) {
  e.channelCopy(*p.src, *p.dst, p.n, p.hw, p.srcC, p.srcOffset, p.dstC, p.dstOffset, p.count);
}
void launch(Engine& e, const ops::Gemm<Call>& p) {
  e.gemm(p.transA, p.transB, (int)p.m, (int)p.n, (int)p.k, p.alpha, *p.a, *p.b, p.beta, *p.c);
}
void launch(Engine& e, const ops::Axpy<Call>& p) { e.axpy(p.alpha, *p.x, *p.y); }
void launch(Engine& e, const ops::Scale<Call>& p) { e.scale(p.alpha, *p.x); }
void launch(Engine& e, const ops::Add<Call>& p) { e.add(*p.b[0], *p.b[1], *p.b[2]); }
void launch(Engine& e, const ops::BiasAdd<Call>& p) { e.biasAdd(*p.y, *p.bias, (int)p.n, (int)p.c, (int)p.hw); }
void launch(Engine& e, const ops::BiasGrad<Call>& p) { e.biasGrad(*p.y, *p.bias, (int)p.n, (int)p.c, (int)p.hw, p.beta); }
void launch(Engine& e, const ops::Conv2dForward<Call>& p) { e.conv2dForward(*p.x, *p.w, p.bias.get(), *p.y, p.g); }
void launch(Engine& e, const ops::Conv2dBackwardData<Call>& p) { e.conv2dBackwardData(*p.dy, *p.w, *p.dx, p.g); }
void launch(Engine& e, const ops::Conv2dBackwardFilter<Call>& p) {
  e.conv2dBackwardFilter(*p.x, *p.dy, *p.dw, p.db.get(), p.g, p.beta);
}
void launch(Engine& e, const ops::ReluForward<Call>& p) { e.reluForward(*p.b[0], *p.b[1]); }
void launch(Engine& e, const ops::ReluBackward<Call>& p) { e.reluBackward(*p.b[0], *p.b[1], *p.b[2]); }
void launch(Engine& e, const ops::TanhForward<Call>& p) { e.tanhForward(*p.b[0], *p.b[1]); }
void launch(Engine& e, const ops::TanhBackward<Call>& p) { e.tanhBackward(*p.b[0], *p.b[1], *p.b[2]); }
void launch(Engine& e, const ops::LrnForward<Call>& p) { e.lrnForward(*p.x, *p.y, p.p, (int)p.n, (int)p.c, (int)p.hw); }
void launch(Engine& e, const ops::LrnBackward<Call>& p) {
  e.lrnBackward(*p.x, *p.y, *p.dy, *p.dx, p.p, (int)p.n, (int)p.c, (int)p.hw);
}
void launch(Engine& e, const ops::MaxPoolForward<Call>& p) { e.maxPoolForward(*p.in, *p.out, *p.argmax, p.g); }
void launch(Engine& e, const ops::MaxPoolBackward<Call>& p) { e.maxPoolBackward(*p.in, *p.argmax, *p.out, p.g); }
template <bool Backward>
void launch(Engine& e, const ops::Dropout<Call, Backward>& p) { e.dropout(*p.x, *p.y, p.p, p.seed, p.offset); }
void launch(Engine& e, const ops::SoftmaxCrossEntropy<Call>& p) {
  e.softmaxCrossEntropy(*p.logits, *p.labels, *p.loss, p.dlogits.get(), (int)p.n, (int)p.c);
}
void launch(Engine& e, const ops::Softmax<Call>& p) { e.softmax(*p.x, *p.y, (int)p.n, (int)p.c); }
void launch(Engine& e, const ops::TopkCorrect<Call>& p) {
  e.topkCorrect(*p.logits, *p.labels, *p.out, (int)p.n, (int)p.c, (int)p.k);
}
void launch(Engine& e, const ops::SgdUpdate<Call>& p) {
  e.sgdUpdate(*p.w, *p.g, *p.v, p.lr, p.momentum, p.weightDecay, p.paper);
}

/**
 * The ops that may fold into the op held before them (engine.h, Held) decide themselves whether to
 * flush it; every other op enqueues it first, so the held op keeps its place in the stream.
 */
template <template <class> class Op>
struct Fusable : std::false_type {};
template <> struct Fusable<ops::Gemm> : std::true_type {};
template <> struct Fusable<ops::BiasAdd> : std::true_type {};
template <> struct Fusable<ops::ReluForward> : std::true_type {};
template <> struct Fusable<ops::Conv2dForward> : std::true_type {};
template <> struct Fusable<ops::SgdUpdate> : std::true_type {};

class NativeEngine : public ops::EngineWrap<NativeEngine, CudaKind> {
 public:
  explicit NativeEngine(const Napi::CallbackInfo& info) : EngineWrap(info) {
    const int i = index(info);
    core_ = napi::Args<CudaKind>(info, "createEngine", 0).guard([&] { return std::make_shared<Engine>(i, g_nextEngineId++); });
  }

  /** Op's arguments read by ops.h, then the engine's launch (above). */
  template <template <class> class Op>
  void Bind(const Napi::CallbackInfo& info) {
    Call c(info, Op<Call>::name, core_);
    Op<Call> p;
    p.read(c);
    c.check();
    c.guard([&] {
      if (!Fusable<Op>::value) c.core().flush();
      launch(c.core(), p);
    });
  }

  Napi::Value Alloc(const Napi::CallbackInfo& info) {
    return ops::alloc(Call(info, "alloc", core_));
  }

  /** The memory returns to the cache at once: later work on this stream is ordered after the work that used it. */
  void Free(const Napi::CallbackInfo& info) { ops::free<CudaKind>(info, core_); }

  void Write(const Napi::CallbackInfo& info) {
    Call c(info, "write", core_);
    ops::Write<Call> p;
    p.read(c);
    c.check();
    c.guard([&] { c.core().write(*p.buf, p.data.data, p.offset, (int64_t)p.data.length); });
  }

  Napi::Value ReadSync(const Napi::CallbackInfo& info) {
    Call c(info, "readSync", core_);
    ops::Read<Call> p;
    p.read(c);
    c.check();
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(info.Env(), p.bytes());
    c.guard([&] { c.core().readSync(*p.buf, p.offset, p.length, ab.Data()); });
    return ab;
  }

  /** Waits for a read or synchronize on a libuv worker, holding the engine and the buffer meanwhile. */
  class ReadWorker : public Napi::AsyncWorker {
   public:
    ReadWorker(Napi::Env env, std::shared_ptr<Engine> engine, BufPtr buf, Pending* p, size_t bytes)
        : Napi::AsyncWorker(env), engine_(std::move(engine)), buf_(std::move(buf)), p_(p), bytes_(bytes),
          deferred_(Napi::Promise::Deferred::New(env)) {}
    Napi::Promise promise() { return deferred_.Promise(); }
    void Execute() override {
      try {
        Engine::waitPending(p_);
      } catch (const std::exception& e) {
        SetError(e.what());
      }
    }
    void OnOK() override {
      Napi::Env env = Env();
      if (!buf_) {
        Engine::finishPending(p_, nullptr);
        deferred_.Resolve(env.Undefined());
        return;
      }
      Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, bytes_);
      Engine::finishPending(p_, ab.Data());
      deferred_.Resolve(ab);
    }
    void OnError(const Napi::Error& e) override {
      Engine::finishPending(p_, nullptr);
      deferred_.Reject(e.Value());
    }

   private:
    std::shared_ptr<Engine> engine_;  // a destroyed engine's stream and staging live until the read is done
    BufPtr buf_;
    Pending* p_;
    size_t bytes_;
    Napi::Promise::Deferred deferred_;
  };

  Napi::Value queueRead(const Call& c, BufPtr b, int64_t offset, int64_t length) {
    c.check();
    Pending* p = c.guard([&] { return c.core().readAsync(b.get(), offset, length); });
    auto* w = new ReadWorker(c.env(), c.held(), b, p, b ? (size_t)length * b->elemBytes : 0);
    Napi::Promise promise = w->promise();
    w->Queue();
    return promise;
  }

  void SynchronizeSync(const Napi::CallbackInfo& info) {
    Call c(info, "synchronizeSync", core_);
    c.guard([&] { c.core().synchronize(); });
  }

  /** An event is an external holding a cudaEvent_t recorded on this engine's stream. */
  Napi::Value RecordEvent(const Napi::CallbackInfo& info) {
    Call c(info, "recordEvent", core_);
    void* ev = c.guard([&] { return c.core().recordEvent(); });
    auto ext = Napi::External<void>::New(info.Env(), ev, [](Napi::Env, void* e) { Engine::destroyEvent(e); });
    napi_type_tag_object(info.Env(), ext, &kEventTag);
    return ext;
  }

  void WaitEvent(const Napi::CallbackInfo& info) {
    Call c(info, "waitEvent", core_);
    c.engine(0, "engine");  // of this addon (a destroyed one's events are still valid)
    const Napi::Value v = c.at(1);
    if (!napi::hasTag(v, kEventTag)) c.expected("an event of a cuda engine", "event", v, true);
    void* ev = v.As<Napi::External<void>>().Data();
    c.guard([&] { c.core().waitEvent(ev); });
  }

  void SetThreads(const Napi::CallbackInfo& info) {
    Call c(info, "setThreads", core_);
    ops::SetThreads<Call> p;
    p.read(c);
    c.guard([&] { c.core().setThreads(p.threads); });
  }

  /** The cache has no bound: freed blocks stay until trimCache() (or until an allocation fails). */
  Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
    Call c(info, "memoryStats", core_);
    const DeviceCache& m = c.core().memory();
    return ops::memoryStats(info.Env(), {(double)m.inUse, (double)m.liveBlocks, (double)m.peakInUse},
                            {(double)m.cached, (double)m.cachedBlocks(), INFINITY});
  }

  Napi::Value TrimCache(const Napi::CallbackInfo& info) {
    Call c(info, "trimCache", core_);
    return Napi::Number::New(info.Env(), (double)c.guard([&] { return c.core().trimCache(); }));
  }

  void Destroy(const Napi::CallbackInfo&) { core_.reset(); }

};

std::shared_ptr<Engine> CudaKind::coreOf(Napi::Object engine) { return NativeEngine::Unwrap(engine)->core(); }

Napi::Value ProbeJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Probe p = probe();
  Napi::Object o = Napi::Object::New(env);
  o.Set("available", p.available);
  if (!p.available) o.Set("reason", p.reason);
  o.Set("gpus", p.gpus);
  o.Set("name", p.name);
  o.Set("logicalDevices", p.available ? (p.gpus < 2 ? 2 : p.gpus) : 0);
#if defined(ALEXNET_CUDA_EMU)
  o.Set("emulated", true);
#else
  o.Set("emulated", false);
#endif
  return o;
}

Napi::Value SetTf32Js(const Napi::CallbackInfo& info) {
  napi::Args<CudaKind> a(info, "setTf32", 0);
  setTf32(a.boolean(0, "on"));
  return Napi::Boolean::New(info.Env(), tf32());
}

Napi::Object PrecisionObject(Napi::Env env) {
  const Precision p = precision();
  auto name = [](bool tf32) { return tf32 ? "tf32" : "ieee"; };
  Napi::Object o = Napi::Object::New(env);
  o.Set("conv", name(p.convTf32));
  o.Set("matmul", name(p.matmulTf32));
  Napi::Object own = Napi::Object::New(env);
  own.Set("conv", name(p.ownConvTf32));
  own.Set("matmul", name(p.ownMatmulTf32));
  o.Set("ownKernels", own);
  return o;
}

/** setPrecision(conv, matmul): 'tf32' | 'ieee' | undefined (unchanged) each. */
Napi::Value SetPrecisionJs(const Napi::CallbackInfo& info) {
  napi::Args<CudaKind> a(info, "setPrecision", 0);
  auto pick = [&](size_t i, const char* what) {
    if (!a.given(i)) return -1;
    return a.oneOf(i, what, {"tf32", "ieee"}) == "tf32" ? 1 : 0;
  };
  const int conv = pick(0, "conv"), matmul = pick(1, "matmul");
  setPrecision(conv, matmul);
  return PrecisionObject(info.Env());
}

std::vector<std::string> stringList(const Napi::Object& o, const char* key) {
  std::vector<std::string> out;
  const Napi::Value v = o.Get(key);
  if (!v.IsArray()) return out;
  const Napi::Array arr = v.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    const Napi::Value x = arr.Get(i);
    if (x.IsString()) out.push_back(x.As<Napi::String>().Utf8Value());
  }
  return out;
}

Napi::Object ReportObject(Napi::Env env, const vendor::LibReport& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("found", r.found);
  if (r.found) {
    o.Set("path", r.path);
    o.Set("version", r.version);
    o.Set("versionCode", (double)r.versionCode);
  }
  Napi::Array attempts = Napi::Array::New(env, r.attempts.size());
  for (size_t i = 0; i < r.attempts.size(); ++i) {
    Napi::Object t = Napi::Object::New(env);
    t.Set("path", r.attempts[i].path);
    t.Set("error", r.attempts[i].error);
    attempts.Set((uint32_t)i, t);
  }
  o.Set("attempts", attempts);
  Napi::Array pre = Napi::Array::New(env, r.preloaded.size());
  for (size_t i = 0; i < r.preloaded.size(); ++i) pre.Set((uint32_t)i, r.preloaded[i]);
  o.Set("preloaded", pre);
  if (!r.note.empty()) o.Set("note", r.note);
  return o;
}

/**
 * loadLibraries({ cudnn, cublasLt, nccl, preload }: candidate paths, in order): loads the vendor
 * libraries once per process (later calls report the first result) and says what was found.
 */
Napi::Value LoadLibrariesJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  vendor::Candidates c;
  if (info.Length() > 0 && info[0].IsObject()) {
    const Napi::Object o = info[0].As<Napi::Object>();
    c.cudnn = stringList(o, "cudnn");
    c.cublasLt = stringList(o, "cublasLt");
    c.nccl = stringList(o, "nccl");
    c.preload = stringList(o, "preload");
  }
  const vendor::Libraries& l = vendor::loadLibraries(c, standinHooks());
  Napi::Object out = Napi::Object::New(env);
  out.Set("cudnn", ReportObject(env, l.cudnn));
  out.Set("cublasLt", ReportObject(env, l.cublasLt));
  out.Set("nccl", ReportObject(env, l.nccl));
  out.Set("standins", l.standins);
  return out;
}

/** Which kernels each op family uses now (a vendor library's, or ours and why), the precision, the counters. */
Napi::Value KernelsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  Napi::Object fam = Napi::Object::New(env);
  for (int f = 0; f < kFamilies; ++f) {
    const FamilyChoice ch = familyChoice((Family)f);
    Napi::Object o = Napi::Object::New(env);
    o.Set("library", ch.library);
    if (!ch.reason.empty()) o.Set("reason", ch.reason);
    fam.Set(familyName((Family)f), o);
  }
  out.Set("families", fam);
  out.Set("own", kernelsOwn());
  out.Set("precision", PrecisionObject(env));
  Napi::Object cnt = Napi::Object::New(env);
  for (const auto& kv : counters()) cnt.Set(kv.first, (double)kv.second);
  out.Set("counters", cnt);
  return out;
}

#if defined(ALEXNET_CUDA_EMU)
Napi::Value EmuSelfTestJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  napi::Args<CudaKind> a(info, "emuSelfTest", 0);
  const emu::SelfTest r = emu::runSelfTest((int)a.positive(0, "threads", 256));
  auto arr = [&](const std::vector<float>& v) {
    Napi::Array x = Napi::Array::New(env, v.size());
    for (size_t i = 0; i < v.size(); ++i) x.Set((uint32_t)i, Napi::Number::New(env, v[i]));
    return x;
  };
  Napi::Object o = Napi::Object::New(env);
  o.Set("expected", arr(r.expected));
  o.Set("withBarrier", arr(r.withBarrier));
  o.Set("withoutBarrier", arr(r.withoutBarrier));
  o.Set("atomicCount", r.atomicCount);
  o.Set("atomicExpected", r.atomicExpected);
  o.Set("threads", r.threads);
  o.Set("divergencesDetected", (double)r.divergencesDetected);
  o.Set("fastDivErrors", (double)r.fastDivErrors);
  return o;
}
#endif

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ops::exportEngine<NativeEngine, CudaKind>(env, exports, {});
  exports.Set("probe", Napi::Function::New(env, ProbeJs));
  exports.Set("setTf32", Napi::Function::New(env, SetTf32Js));
  exports.Set("setPrecision", Napi::Function::New(env, SetPrecisionJs));
  exports.Set("loadLibraries", Napi::Function::New(env, LoadLibrariesJs));
  exports.Set("kernels", Napi::Function::New(env, KernelsJs));
#if defined(ALEXNET_CUDA_EMU)
  exports.Set("emuSelfTest", Napi::Function::New(env, EmuSelfTestJs));
  exports.Set("emuBarrierDivergences", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), (double)emu::divergenceCount());
  }));
#endif
  return exports;
}

}  // namespace
}  // namespace cuda
}  // namespace alexnet

static Napi::Object InitAlexnetCuda(Napi::Env env, Napi::Object exports) { return alexnet::cuda::Init(env, exports); }
NODE_API_MODULE(NODE_GYP_MODULE_NAME, InitAlexnetCuda)
