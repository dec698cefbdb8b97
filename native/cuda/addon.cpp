// N-API bindings of the CUDA engine (engine.h). Built twice: as alexnet_cuda.node against the CUDA
// runtime (engine.cu through nvcc) and as alexnet_cuda_emu.node against the emulation (engine.cu
// through g++ with ALEXNET_CUDA_EMU). Native code never trusts its caller: every buffer id, size and
// geometry is checked here, and a bad call is a thrown Error that names the argument. Options objects
// (geometry, LRN and SGD parameters) are read before any buffer id is resolved, since their getters
// can run JavaScript that frees a buffer or destroys the engine; the engine itself is looked up last,
// when the work is queued. `this` must be an engine of this addon (a type tag, checked on every call).
#include <napi.h>

#include <cmath>
#include <cstring>
#include <string>
#include <unordered_map>

#include "../common/geometry.h"
#include "engine.h"
#if defined(ALEXNET_CUDA_EMU)
#include "emu/selftest.h"
#endif

using namespace alexnet::cuda;

namespace {

std::string str(const char* op, const std::string& msg) { return std::string(op) + ": " + msg; }

int64_t toInt(const Napi::Value& v, const char* op, const char* name, int64_t lo = 0, int64_t hi = (1LL << 53)) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), str(op, std::string("expected a number for ") + name));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || d < (double)lo || d > (double)hi) {
    throw Napi::RangeError::New(v.Env(), str(op, std::string("invalid ") + name + " " + std::to_string(d)));
  }
  return (int64_t)d;
}

int toDim(const Napi::Value& v, const char* op, const char* name) {
  return (int)toInt(v, op, name, 0, 0x7fffffff);
}

/** The product of sizes, as a buffer need; an Error instead of an int64 overflow. */
int64_t product(Napi::Env env, const char* op, std::initializer_list<int64_t> xs) {
  const int64_t r = alexnet::checkedProduct(xs);
  if (r < 0) throw Napi::RangeError::New(env, str(op, "the sizes given overflow 64-bit integers"));
  return r;
}

const napi_type_tag kEngineTag = {0x5d2a7c91e4b3f608ULL, 0x2f8e6d4c1b0a9e37ULL};

double toNum(const Napi::Value& v, const char* op, const char* name) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), str(op, std::string("expected a number for ") + name));
  return v.As<Napi::Number>().DoubleValue();
}

int dtypeCode(const std::string& s) {
  if (s == "float32") return kF32;
  if (s == "float64") return kF64;
  if (s == "int32") return kI32;
  if (s == "uint8") return kU8;
  return -1;
}

enum Kind { kFloat, kInt, kAny };

class NativeEngine : public Napi::ObjectWrap<NativeEngine> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeEngine", {
      InstanceMethod("alloc", &NativeEngine::Alloc),
      InstanceMethod("free", &NativeEngine::Free),
      InstanceMethod("write", &NativeEngine::Write),
      InstanceMethod("readSync", &NativeEngine::ReadSync),
      InstanceMethod("read", &NativeEngine::Read),
      InstanceMethod("synchronize", &NativeEngine::Synchronize),
      InstanceMethod("synchronizeSync", &NativeEngine::SynchronizeSync),
      InstanceMethod("recordEvent", &NativeEngine::RecordEvent),
      InstanceMethod("waitEvent", &NativeEngine::WaitEvent),
      InstanceMethod("setThreads", &NativeEngine::SetThreads),
      InstanceMethod("getThreads", &NativeEngine::GetThreads),
      InstanceMethod("memoryInfo", &NativeEngine::MemoryInfo),
      InstanceMethod("emptyCache", &NativeEngine::EmptyCache),
      InstanceMethod("fill", &NativeEngine::Fill),
      InstanceMethod("random", &NativeEngine::Random),
      InstanceMethod("copy", &NativeEngine::Copy),
      InstanceMethod("copyToPeer", &NativeEngine::CopyToPeer),
      InstanceMethod("channelCopy", &NativeEngine::ChannelCopy),
      InstanceMethod("gemm", &NativeEngine::Gemm),
      InstanceMethod("axpy", &NativeEngine::Axpy),
      InstanceMethod("scale", &NativeEngine::Scale),
      InstanceMethod("add", &NativeEngine::Add),
      InstanceMethod("biasAdd", &NativeEngine::BiasAdd),
      InstanceMethod("biasGrad", &NativeEngine::BiasGrad),
      InstanceMethod("conv2dForward", &NativeEngine::ConvForward),
      InstanceMethod("conv2dBackwardData", &NativeEngine::ConvBackwardData),
      InstanceMethod("conv2dBackwardFilter", &NativeEngine::ConvBackwardFilter),
      InstanceMethod("reluForward", &NativeEngine::ReluForward),
      InstanceMethod("reluBackward", &NativeEngine::ReluBackward),
      InstanceMethod("lrnForward", &NativeEngine::LrnForward),
      InstanceMethod("lrnBackward", &NativeEngine::LrnBackward),
      InstanceMethod("maxPoolForward", &NativeEngine::MaxPoolForward),
      InstanceMethod("maxPoolBackward", &NativeEngine::MaxPoolBackward),
      InstanceMethod("dropout", &NativeEngine::Dropout),
      InstanceMethod("softmaxCrossEntropy", &NativeEngine::SoftmaxCrossEntropy),
      InstanceMethod("softmax", &NativeEngine::Softmax),
      InstanceMethod("topkCorrect", &NativeEngine::TopkCorrect),
      InstanceMethod("sgdUpdate", &NativeEngine::SgdUpdate),
      InstanceMethod("destroy", &NativeEngine::Destroy),
    });
  }

  explicit NativeEngine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeEngine>(info) {
    napi_type_tag_object(info.Env(), info.This(), &kEngineTag);
    int index = (int)toInt(info[0], "createEngine", "index", 0, 1 << 20);
    try {
      engine_ = new Engine(index);
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
  }
  ~NativeEngine() override { destroy(); }

  // node-addon-api unwraps `this` through T::Unwrap before every method: an object that is not an
  // engine of this addon (another addon's wrapped object included) is a TypeError, never reinterpreted.
  static NativeEngine* Unwrap(Napi::Object o) {
    bool ok = false;
    if (napi_check_object_type_tag(o.Env(), o, &kEngineTag, &ok) != napi_ok || !ok)
      throw Napi::TypeError::New(o.Env(), "expected a CUDA engine as this but received another value");
    return Napi::ObjectWrap<NativeEngine>::Unwrap(o);
  }

  Engine* engine(Napi::Env env) {
    if (!engine_) throw Napi::Error::New(env, "the engine was destroyed");
    return engine_;
  }

 private:
  void destroy() {
    if (!engine_) return;
    for (auto& kv : buffers_) engine_->release(kv.second);
    buffers_.clear();
    delete engine_;
    engine_ = nullptr;
  }

  Buffer* buf(const Napi::Value& v, const char* op, const char* name, int64_t need, Kind kind = kFloat) {
    Napi::Env env = v.Env();
    if (!v.IsNumber()) throw Napi::TypeError::New(env, str(op, std::string(name) + " is not a buffer of this engine"));
    auto it = buffers_.find((uint32_t)v.As<Napi::Number>().Uint32Value());
    if (it == buffers_.end()) throw Napi::Error::New(env, str(op, std::string(name) + " was freed or belongs to another engine"));
    Buffer* b = it->second;
    if (kind == kFloat && b->dtype != kF32) throw Napi::TypeError::New(env, str(op, std::string(name) + " must be float32"));
    if (kind == kInt && b->dtype != kI32) throw Napi::TypeError::New(env, str(op, std::string(name) + " must be int32"));
    if (need < 0) throw Napi::RangeError::New(env, str(op, std::string("invalid size for ") + name));
    if (b->length < need) {
      throw Napi::RangeError::New(env, str(op, std::string(name) + " holds " + std::to_string(b->length) +
                                                  " elements but " + std::to_string(need) + " are needed"));
    }
    return b;
  }

  template <class F>
  Napi::Value guard(Napi::Env env, F f) {
    try {
      f();
    } catch (const Napi::Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    return env.Undefined();
  }

  Napi::Value Alloc(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int dt = info[0].IsString() ? dtypeCode(info[0].As<Napi::String>().Utf8Value()) : -1;
    if (dt < 0) throw Napi::TypeError::New(env, "alloc: unknown dtype");
    int64_t length = toInt(info[1], "alloc", "length", 0, 0x7fffffff);
    Buffer* b = nullptr;
    try {
      b = engine(env)->alloc(dt, length);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, std::string("alloc: ") + e.what());
    }
    uint32_t id = ++nextId_;
    buffers_[id] = b;
    return Napi::Number::New(env, id);
  }

  Napi::Value Free(const Napi::CallbackInfo& info) {
    if (!info[0].IsNumber() || !engine_) return info.Env().Undefined();
    auto it = buffers_.find(info[0].As<Napi::Number>().Uint32Value());
    if (it == buffers_.end()) return info.Env().Undefined();  // idempotent
    engine_->release(it->second);
    buffers_.erase(it);
    return info.Env().Undefined();
  }

  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[1].IsTypedArray()) throw Napi::TypeError::New(env, "write: data must be a typed array");
    Napi::TypedArray ta = info[1].As<Napi::TypedArray>();
    int64_t offset = toInt(info[2], "write", "offset");
    int64_t len = (int64_t)ta.ElementLength();
    Buffer* b = buf(info[0], "write", "buf", offset + len, kAny);
    if ((int)ta.ElementSize() != b->elemBytes) throw Napi::TypeError::New(env, "write: data has the wrong element type");
    // napi_get_typedarray_info gives the first element's address, also for views of a SharedArrayBuffer
    // (worker-thread batches), where TypedArray::ArrayBuffer() would fail.
    napi_typedarray_type type;
    size_t count;
    void* raw = nullptr;
    if (napi_get_typedarray_info(env, ta, &type, &count, &raw, nullptr, nullptr) != napi_ok) {
      throw Napi::TypeError::New(env, "write: cannot read the typed array");
    }
    const uint8_t* data = static_cast<const uint8_t*>(raw);
    return guard(env, [&] { engine(env)->write(b, data, offset, len); });
  }

  Napi::Value makeArray(Napi::Env env, int dtype, int64_t length, Napi::ArrayBuffer& ab) {
    const size_t eb = dtype == kU8 ? 1 : 4;
    ab = Napi::ArrayBuffer::New(env, (size_t)length * eb);
    if (dtype == kI32) return Napi::Int32Array::New(env, length, ab, 0);
    if (dtype == kU8) return Napi::Uint8Array::New(env, length, ab, 0);
    return Napi::Float32Array::New(env, length, ab, 0);
  }

  void readArgs(const Napi::CallbackInfo& info, const char* op, Buffer** b, int64_t* offset, int64_t* length) {
    *offset = info[1].IsUndefined() ? 0 : toInt(info[1], op, "offset");
    Buffer* bb = buf(info[0], op, "buf", 0, kAny);
    *length = info[2].IsUndefined() ? bb->length - *offset : toInt(info[2], op, "length");
    if (*length < 0 || *offset + *length > bb->length) {
      throw Napi::RangeError::New(info.Env(), std::string(op) + ": range [" + std::to_string(*offset) + ", " +
                                                  std::to_string(*offset + *length) + ") is outside the buffer of " +
                                                  std::to_string(bb->length) + " elements");
    }
    *b = bb;
  }

  Napi::Value ReadSync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Buffer* b;
    int64_t offset, length;
    readArgs(info, "read", &b, &offset, &length);
    Napi::ArrayBuffer ab;
    Napi::Value out = makeArray(env, b->dtype, length, ab);
    guard(env, [&] { engine(env)->readSync(b, offset, length, ab.Data()); });
    return out;
  }

  class ReadWorker : public Napi::AsyncWorker {
   public:
    ReadWorker(Napi::Env env, NativeEngine* owner, Pending* p, int dtype, int64_t length)
        : Napi::AsyncWorker(env), owner_(owner), p_(p), dtype_(dtype), length_(length), deferred_(Napi::Promise::Deferred::New(env)) {
      ref_ = Napi::Persistent(owner->Value());
    }
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
      if (!owner_->engine_) {
        deferred_.Reject(Napi::Error::New(env, "the engine was destroyed before the read finished").Value());
        return;
      }
      if (dtype_ < 0) {
        owner_->engine_->finishPending(p_, nullptr);
        deferred_.Resolve(env.Undefined());
        return;
      }
      Napi::ArrayBuffer ab;
      Napi::Value out = owner_->makeArray(env, dtype_, length_, ab);
      owner_->engine_->finishPending(p_, ab.Data());
      deferred_.Resolve(out);
    }
    void OnError(const Napi::Error& e) override {
      if (owner_->engine_) owner_->engine_->finishPending(p_, nullptr);
      deferred_.Reject(e.Value());
    }

   private:
    NativeEngine* owner_;
    Pending* p_;
    int dtype_;
    int64_t length_;
    Napi::Promise::Deferred deferred_;
    Napi::ObjectReference ref_;  // keeps the engine alive while the read is in flight
  };

  Napi::Value Read(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Buffer* b;
    int64_t offset, length;
    readArgs(info, "read", &b, &offset, &length);
    Pending* p = nullptr;
    guard(env, [&] { p = engine(env)->readAsync(b, offset, length); });
    auto* w = new ReadWorker(env, this, p, b->dtype, length);
    Napi::Promise promise = w->promise();
    w->Queue();
    return promise;
  }

  Napi::Value Synchronize(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Pending* p = nullptr;
    guard(env, [&] { p = engine(env)->syncAsync(); });
    auto* w = new ReadWorker(env, this, p, -1, 0);
    Napi::Promise promise = w->promise();
    w->Queue();
    return promise;
  }

  Napi::Value SynchronizeSync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard(env, [&] { engine(env)->synchronize(); });
  }

  Napi::Value RecordEvent(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    void* ev = nullptr;
    guard(env, [&] { ev = engine(env)->recordEvent(); });
    return Napi::External<void>::New(env, ev, [](Napi::Env, void* e) { Engine::destroyEvent(e); });
  }

  Napi::Value WaitEvent(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsExternal()) throw Napi::TypeError::New(env, "waitEvent: event is not an event of this backend");
    void* ev = info[0].As<Napi::External<void>>().Data();
    return guard(env, [&] { engine(env)->waitEvent(ev); });
  }

  Napi::Value SetThreads(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int t = (int)toInt(info[0], "setThreads", "threads", 1, 1024);
    return guard(env, [&] { engine(env)->setThreads(t); });
  }
  Napi::Value GetThreads(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), engine(info.Env())->getThreads());
  }
  Napi::Value MemoryInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t inUse, cached;
    engine(env)->memoryInfo(&inUse, &cached);
    Napi::Object o = Napi::Object::New(env);
    o.Set("inUse", Napi::Number::New(env, (double)inUse));
    o.Set("cached", Napi::Number::New(env, (double)cached));
    o.Set("buffers", Napi::Number::New(env, (double)buffers_.size()));
    return o;
  }
  Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard(env, [&] { engine(env)->emptyCache(); });
  }

  // ---- data movement ----
  Napi::Value Fill(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Buffer* b = buf(info[0], "fill", "buf", 0, kAny);
    double v = toNum(info[1], "fill", "value");
    return guard(env, [&] { engine(env)->fill(b, v); });
  }
  Napi::Value Random(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Buffer* b = buf(info[0], "random", "buf", 0);
    std::string dist = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    if (dist != "uniform" && dist != "normal") throw Napi::TypeError::New(env, "random: dist must be 'uniform' or 'normal'");
    uint64_t seed = (uint64_t)toInt(info[2], "random", "seed");
    uint64_t offset = (uint64_t)toInt(info[3], "random", "offset");
    double a = toNum(info[4], "random", "a"), bb = toNum(info[5], "random", "b");
    return guard(env, [&] { engine(env)->random(b, dist == "normal", seed, offset, a, bb); });
  }
  Napi::Value Copy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int64_t so = toInt(info[1], "copy", "srcOffset"), dof = toInt(info[3], "copy", "dstOffset");
    int64_t len = toInt(info[4], "copy", "length");
    Buffer* s = buf(info[0], "copy", "src", so + len, kAny);
    Buffer* d = buf(info[2], "copy", "dst", dof + len, kAny);
    if (s->dtype != d->dtype) throw Napi::TypeError::New(env, "copy: src and dst have different dtypes");
    return guard(env, [&] { engine(env)->copy(s, so, d, dof, len); });
  }
  Napi::Value CopyToPeer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[1].IsObject()) throw Napi::TypeError::New(env, "copyToPeer: peer is not an engine of this backend");
    Napi::Object po = info[1].As<Napi::Object>();
    bool tagged = false;
    if (napi_check_object_type_tag(env, po, &kEngineTag, &tagged) != napi_ok || !tagged)
      throw Napi::TypeError::New(env, "copyToPeer: peer is not an engine of this backend");
    NativeEngine* peer = NativeEngine::Unwrap(po);
    int64_t len = toInt(info[3], "copyToPeer", "length");
    Buffer* s = buf(info[0], "copyToPeer", "src", len, kAny);
    Buffer* d = peer->buf(info[2], "copyToPeer", "dst", len, kAny);
    if (s->dtype != d->dtype) throw Napi::TypeError::New(env, "copyToPeer: src and dst have different dtypes");
    return guard(env, [&] { engine(env)->copyToPeer(s, peer->engine(env), d, len); });
  }
  Napi::Value ChannelCopy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "channelCopy";
    int64_t n = toDim(info[2], op, "n"), hw = toDim(info[3], op, "hw"), srcC = toDim(info[4], op, "srcC");
    int64_t so = toDim(info[5], op, "srcOffset"), dstC = toDim(info[6], op, "dstC"), dof = toDim(info[7], op, "dstOffset");
    int64_t count = toDim(info[8], op, "count");
    if (so + count > srcC || dof + count > dstC) {
      throw Napi::RangeError::New(env, str(op, "channels [" + std::to_string(so) + ", " + std::to_string(so + count) +
                                                   ") of " + std::to_string(srcC) + " to [" + std::to_string(dof) + ", " +
                                                   std::to_string(dof + count) + ") of " + std::to_string(dstC) +
                                                   " are out of range"));
    }
    Buffer* s = buf(info[0], op, "src", product(env, op, {n, srcC, hw}), kAny);
    Buffer* d = buf(info[1], op, "dst", product(env, op, {n, dstC, hw}), kAny);
    if (s->dtype != d->dtype) throw Napi::TypeError::New(env, "channelCopy: src and dst have different dtypes");
    return guard(env, [&] { engine(env)->channelCopy(s, d, n, hw, srcC, so, dstC, dof, count); });
  }

  // ---- dense algebra ----
  Napi::Value Gemm(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "gemm";
    bool ta = info[0].ToBoolean(), tb = info[1].ToBoolean();
    int m = toDim(info[2], op, "m"), n = toDim(info[3], op, "n"), k = toDim(info[4], op, "k");
    float alpha = (float)toNum(info[5], op, "alpha"), beta = (float)toNum(info[8], op, "beta");
    Buffer* a = buf(info[6], op, "a", product(env, op, {m, k}));
    Buffer* b = buf(info[7], op, "b", product(env, op, {k, n}));
    Buffer* c = buf(info[9], op, "c", product(env, op, {m, n}));
    return guard(env, [&] { engine(env)->gemm(ta, tb, m, n, k, alpha, a, b, beta, c); });
  }
  Napi::Value Axpy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    float alpha = (float)toNum(info[0], "axpy", "alpha");
    Buffer* x = buf(info[1], "axpy", "x", 0);
    Buffer* y = buf(info[2], "axpy", "y", x->length);
    return guard(env, [&] { engine(env)->axpy(alpha, x, y); });
  }
  Napi::Value Scale(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    float alpha = (float)toNum(info[0], "scale", "alpha");
    Buffer* x = buf(info[1], "scale", "x", 0);
    return guard(env, [&] { engine(env)->scale(alpha, x); });
  }
  Napi::Value Add(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Buffer* a = buf(info[0], "add", "a", 0);
    Buffer* b = buf(info[1], "add", "b", a->length);
    Buffer* o = buf(info[2], "add", "out", a->length);
    return guard(env, [&] { engine(env)->add(a, b, o); });
  }
  Napi::Value BiasAdd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int n = toDim(info[2], "biasAdd", "n"), c = toDim(info[3], "biasAdd", "c"), hw = toDim(info[4], "biasAdd", "hw");
    Buffer* y = buf(info[0], "biasAdd", "y", product(env, "biasAdd", {n, c, hw}));
    Buffer* b = buf(info[1], "biasAdd", "bias", c);
    return guard(env, [&] { engine(env)->biasAdd(y, b, n, c, hw); });
  }
  Napi::Value BiasGrad(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int n = toDim(info[2], "biasGrad", "n"), c = toDim(info[3], "biasGrad", "c"), hw = toDim(info[4], "biasGrad", "hw");
    float beta = (float)toNum(info[5], "biasGrad", "beta");
    Buffer* dy = buf(info[0], "biasGrad", "dy", product(env, "biasGrad", {n, c, hw}));
    Buffer* db = buf(info[1], "biasGrad", "db", c);
    return guard(env, [&] { engine(env)->biasGrad(dy, db, n, c, hw, beta); });
  }

  // ---- convolution ----
  // The checks of native/common/geometry.h (the CPU engine's), then this engine's own: the window fits
  // the padded input, and the implicit GEMM's 32-bit indexing.
  ConvArgs conv(const Napi::Value& v, const char* op) {
    Napi::Env env = v.Env();
    if (!v.IsObject()) throw Napi::TypeError::New(env, str(op, "expected a ConvGeometry object for geometry"));
    Napi::Object o = v.As<Napi::Object>();
    auto f = [&](const char* k) { return toInt(o.Get(k), op, (std::string("geometry.") + k).c_str()); };
    alexnet::ConvGeometry g{f("n"), f("c"), f("h"), f("w"), f("k"), f("r"), f("s"), f("strideH"), f("strideW"),
                            f("padH"), f("padW"), f("groups"), f("outH"), f("outW")};
    std::string problem = alexnet::convProblem(g);
    if (problem.empty() && (g.h + 2 * g.padH < g.r || g.w + 2 * g.padW < g.s)) {
      problem = "the " + std::to_string(g.r) + "x" + std::to_string(g.s) + " kernel is larger than the padded input " +
                std::to_string(g.h + 2 * g.padH) + "x" + std::to_string(g.w + 2 * g.padW);
    }
    if (problem.empty() && alexnet::checkedProduct({g.c / g.groups, g.r, g.s, g.outH, g.outW, g.n}) > 0x7fffffffLL * 64)
      problem = "the convolution is too large for 32-bit indexing";
    if (!problem.empty()) throw Napi::RangeError::New(env, str(op, problem));
    return ConvArgs{(int)g.n, (int)g.c, (int)g.h, (int)g.w, (int)g.k, (int)g.r, (int)g.s, (int)g.strideH,
                    (int)g.strideW, (int)g.padH, (int)g.padW, (int)g.groups, (int)g.outH, (int)g.outW};
  }
  // Products of a checked geometry (convProblem: no overflow).
  static int64_t xs(const ConvArgs& g) { return (int64_t)g.n * g.c * g.h * g.w; }
  static int64_t ys(const ConvArgs& g) { return (int64_t)g.n * g.k * g.outH * g.outW; }
  static int64_t wsz(const ConvArgs& g) { return (int64_t)g.k * (g.c / g.groups) * g.r * g.s; }

  Napi::Value ConvForward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "conv2dForward";
    ConvArgs g = conv(info[4], op);
    Buffer* x = buf(info[0], op, "x", xs(g));
    Buffer* w = buf(info[1], op, "w", wsz(g));
    Buffer* b = info[2].IsNull() || info[2].IsUndefined() ? nullptr : buf(info[2], op, "bias", g.k);
    Buffer* y = buf(info[3], op, "y", ys(g));
    return guard(env, [&] { engine(env)->conv2dForward(x, w, b, y, g); });
  }
  Napi::Value ConvBackwardData(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "conv2dBackwardData";
    ConvArgs g = conv(info[3], op);
    Buffer* dy = buf(info[0], op, "dy", ys(g));
    Buffer* w = buf(info[1], op, "w", wsz(g));
    Buffer* dx = buf(info[2], op, "dx", xs(g));
    return guard(env, [&] { engine(env)->conv2dBackwardData(dy, w, dx, g); });
  }
  Napi::Value ConvBackwardFilter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "conv2dBackwardFilter";
    ConvArgs g = conv(info[4], op);
    float beta = (float)toNum(info[5], op, "beta");
    Buffer* x = buf(info[0], op, "x", xs(g));
    Buffer* dy = buf(info[1], op, "dy", ys(g));
    Buffer* dw = buf(info[2], op, "dw", wsz(g));
    Buffer* db = info[3].IsNull() || info[3].IsUndefined() ? nullptr : buf(info[3], op, "db", g.k);
    return guard(env, [&] { engine(env)->conv2dBackwardFilter(x, dy, dw, db, g, beta); });
  }

  // ---- activations, LRN, pooling, dropout ----
  Napi::Value ReluForward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Buffer* x = buf(info[0], "reluForward", "x", 0);
    Buffer* y = buf(info[1], "reluForward", "y", x->length);
    return guard(env, [&] { engine(env)->reluForward(x, y); });
  }
  Napi::Value ReluBackward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Buffer* y = buf(info[0], "reluBackward", "y", 0);
    Buffer* dy = buf(info[1], "reluBackward", "dy", y->length);
    Buffer* dx = buf(info[2], "reluBackward", "dx", y->length);
    return guard(env, [&] { engine(env)->reluBackward(y, dy, dx); });
  }
  void lrnParams(const Napi::Value& v, const char* op, int* size, double* alpha, double* beta, double* k) {
    if (!v.IsObject()) throw Napi::TypeError::New(v.Env(), str(op, "expected LrnParams"));
    Napi::Object o = v.As<Napi::Object>();
    *size = (int)toInt(o.Get("size"), op, "size", 1, 1 << 20);
    *alpha = toNum(o.Get("alpha"), op, "alpha");
    *beta = toNum(o.Get("beta"), op, "beta");
    *k = toNum(o.Get("k"), op, "k");
  }
  Napi::Value LrnForward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "lrnForward";
    int size;
    double alpha, beta, k;
    lrnParams(info[2], op, &size, &alpha, &beta, &k);
    int n = toDim(info[3], op, "n"), c = toDim(info[4], op, "c"), hw = toDim(info[5], op, "hw");
    int64_t total = product(env, op, {n, c, hw});
    Buffer* x = buf(info[0], op, "x", total);
    Buffer* y = buf(info[1], op, "y", total);
    return guard(env, [&] { engine(env)->lrnForward(x, y, size, alpha, beta, k, n, c, hw); });
  }
  Napi::Value LrnBackward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "lrnBackward";
    int size;
    double alpha, beta, k;
    lrnParams(info[4], op, &size, &alpha, &beta, &k);
    int n = toDim(info[5], op, "n"), c = toDim(info[6], op, "c"), hw = toDim(info[7], op, "hw");
    int64_t total = product(env, op, {n, c, hw});
    Buffer* x = buf(info[0], op, "x", total);
    Buffer* y = buf(info[1], op, "y", total);
    Buffer* dy = buf(info[2], op, "dy", total);
    Buffer* dx = buf(info[3], op, "dx", total);
    return guard(env, [&] { engine(env)->lrnBackward(x, y, dy, dx, size, alpha, beta, k, n, c, hw); });
  }
  PoolArgs pool(const Napi::Value& v, const char* op) {
    Napi::Env env = v.Env();
    if (!v.IsObject()) throw Napi::TypeError::New(env, str(op, "expected a PoolGeometry object for geometry"));
    Napi::Object o = v.As<Napi::Object>();
    auto f = [&](const char* k) { return toInt(o.Get(k), op, (std::string("geometry.") + k).c_str()); };
    alexnet::PoolGeometry g{f("n"), f("c"), f("h"), f("w"), f("kh"), f("kw"), f("strideH"), f("strideW"), f("padH"),
                            f("padW"), f("outH"), f("outW")};
    std::string problem = alexnet::poolProblem(g);
    if (problem.empty() && (g.h + 2 * g.padH < g.kh || g.w + 2 * g.padW < g.kw)) {
      problem = "the " + std::to_string(g.kh) + "x" + std::to_string(g.kw) + " window is larger than the padded input " +
                std::to_string(g.h + 2 * g.padH) + "x" + std::to_string(g.w + 2 * g.padW);
    }
    if (!problem.empty()) throw Napi::RangeError::New(env, str(op, problem));
    return PoolArgs{(int)g.n, (int)g.c, (int)g.h, (int)g.w, (int)g.kh, (int)g.kw, (int)g.strideH, (int)g.strideW,
                    (int)g.padH, (int)g.padW, (int)g.outH, (int)g.outW};
  }
  Napi::Value MaxPoolForward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "maxPoolForward";
    PoolArgs g = pool(info[3], op);
    int64_t xsz = (int64_t)g.n * g.c * g.h * g.w, ysz = (int64_t)g.n * g.c * g.outH * g.outW;
    Buffer* x = buf(info[0], op, "x", xsz);
    Buffer* y = buf(info[1], op, "y", ysz);
    Buffer* am = buf(info[2], op, "argmax", ysz, kInt);
    return guard(env, [&] { engine(env)->maxPoolForward(x, y, am, g); });
  }
  Napi::Value MaxPoolBackward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "maxPoolBackward";
    PoolArgs g = pool(info[3], op);
    int64_t xsz = (int64_t)g.n * g.c * g.h * g.w, ysz = (int64_t)g.n * g.c * g.outH * g.outW;
    Buffer* dy = buf(info[0], op, "dy", ysz);
    Buffer* am = buf(info[1], op, "argmax", ysz, kInt);
    Buffer* dx = buf(info[2], op, "dx", xsz);
    return guard(env, [&] { engine(env)->maxPoolBackward(dy, am, dx, g); });
  }
  Napi::Value Dropout(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "dropout";
    Buffer* x = buf(info[0], op, "x", 0);
    Buffer* y = buf(info[1], op, "y", x->length);
    double p = toNum(info[2], op, "p");
    if (!(p >= 0 && p < 1)) throw Napi::RangeError::New(env, "dropout: p must be in [0, 1)");
    uint64_t seed = (uint64_t)toInt(info[3], op, "seed"), offset = (uint64_t)toInt(info[4], op, "offset");
    return guard(env, [&] { engine(env)->dropout(x, y, p, seed, offset); });
  }

  // ---- loss and metrics ----
  Napi::Value SoftmaxCrossEntropy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "softmaxCrossEntropy";
    int n = toDim(info[4], op, "n"), c = toDim(info[5], op, "c");
    Buffer* logits = buf(info[0], op, "logits", (int64_t)n * c);
    Buffer* labels = buf(info[1], op, "labels", n, kInt);
    Buffer* loss = buf(info[2], op, "loss", 1);
    Buffer* dl = info[3].IsNull() || info[3].IsUndefined() ? nullptr : buf(info[3], op, "dlogits", (int64_t)n * c);
    return guard(env, [&] { engine(env)->softmaxCrossEntropy(logits, labels, loss, dl, n, c); });
  }
  Napi::Value Softmax(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int n = toDim(info[2], "softmax", "n"), c = toDim(info[3], "softmax", "c");
    Buffer* x = buf(info[0], "softmax", "x", (int64_t)n * c);
    Buffer* y = buf(info[1], "softmax", "y", (int64_t)n * c);
    return guard(env, [&] { engine(env)->softmax(x, y, n, c); });
  }
  Napi::Value TopkCorrect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "topkCorrect";
    int n = toDim(info[3], op, "n"), c = toDim(info[4], op, "c"), k = toDim(info[5], op, "k");
    Buffer* logits = buf(info[0], op, "logits", (int64_t)n * c);
    Buffer* labels = buf(info[1], op, "labels", n, kInt);
    Buffer* out = buf(info[2], op, "out", 1, kInt);
    return guard(env, [&] { engine(env)->topkCorrect(logits, labels, out, n, c, k); });
  }
  Napi::Value SgdUpdate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "sgdUpdate";
    // The parameters first: their getters run JavaScript, which may free w, g or v.
    if (!info[3].IsObject()) throw Napi::TypeError::New(env, "sgdUpdate: expected an SgdParams object for params");
    Napi::Object p = info[3].As<Napi::Object>();
    float lr = (float)toNum(p.Get("lr"), op, "params.lr"), m = (float)toNum(p.Get("momentum"), op, "params.momentum");
    float wd = (float)toNum(p.Get("weightDecay"), op, "params.weightDecay");
    Napi::Value fv = p.Get("form");
    std::string form = fv.IsString() ? fv.As<Napi::String>().Utf8Value() : "";
    if (form != "paper" && form != "pytorch") throw Napi::TypeError::New(env, "sgdUpdate: expected 'paper' or 'pytorch' for params.form");
    Buffer* w = buf(info[0], op, "w", 0);
    Buffer* g = buf(info[1], op, "g", w->length);
    Buffer* v = buf(info[2], op, "v", w->length);
    return guard(env, [&] { engine(env)->sgdUpdate(w, g, v, lr, m, wd, form == "paper"); });
  }

  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    destroy();
    return info.Env().Undefined();
  }

 public:
  static Napi::FunctionReference constructor_;

 private:
  Engine* engine_ = nullptr;
  std::unordered_map<uint32_t, Buffer*> buffers_;
  uint32_t nextId_ = 0;
};

Napi::FunctionReference NativeEngine::constructor_;

Napi::Value ProbeJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Probe p = probe();
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
  setTf32(info[0].ToBoolean());
  return Napi::Boolean::New(info.Env(), tf32());
}

#if defined(ALEXNET_CUDA_EMU)
Napi::Value EmuSelfTestJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int threads = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 2;
  emu::SelfTest r = emu::runSelfTest(threads < 1 ? 1 : threads);
  auto arr = [&](const std::vector<float>& v) {
    Napi::Array a = Napi::Array::New(env, v.size());
    for (size_t i = 0; i < v.size(); ++i) a.Set((uint32_t)i, Napi::Number::New(env, v[i]));
    return a;
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
  Napi::Function ctor = NativeEngine::Define(env);
  NativeEngine::constructor_ = Napi::Persistent(ctor);
  NativeEngine::constructor_.SuppressDestruct();
  exports.Set("NativeEngine", ctor);
  exports.Set("probe", Napi::Function::New(env, ProbeJs));
  exports.Set("setTf32", Napi::Function::New(env, SetTf32Js));
#if defined(ALEXNET_CUDA_EMU)
  exports.Set("emuSelfTest", Napi::Function::New(env, EmuSelfTestJs));
  exports.Set("emuBarrierDivergences", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), (double)emu::divergenceCount());
  }));
#endif
  return exports;
}

}  // namespace

NODE_API_MODULE(NODE_GYP_MODULE_NAME, Init)
