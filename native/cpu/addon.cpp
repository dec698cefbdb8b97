// N-API surface of the CPU engine. Native code never trusts its caller: every entry point checks
// its argument types and that each buffer holds enough elements for the sizes given, and throws a
// JavaScript Error naming the argument. Valid calls are queued and return at once.
// Reading an options object can run JavaScript (getters, proxies) that destroys the engine or frees
// a buffer mid-call: each call holds the engine core and its buffers alive until it returns, and
// checks, once every argument is read, that neither was destroyed or freed meanwhile. `this` is
// checked too (a NativeBuffer accessor or a NativeEngine method called on another object throws).
#include <napi.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "engine.h"
#include "gemm.h"
#include "isa.h"
#include "kernels.h"

namespace alexnet {
namespace {

const napi_type_tag kBufferTag = {0x8b3c6a1e5f2d4c7aULL, 0x9e1f0b2c3d4a5e6fULL};
const napi_type_tag kEngineTag = {0x1c7e5a3b9d2f4e60ULL, 0x7a6b5c4d3e2f1a0bULL};
std::atomic<uint64_t> g_nextEngineId{1};

const char* dtypeName(int d) {
  switch (d) {
    case kFloat32: return "float32";
    case kFloat64: return "float64";
    case kInt32: return "int32";
    default: return "uint8";
  }
}
int dtypeBytes(int d) { return d == kFloat64 ? 8 : d == kUint8 ? 1 : 4; }

struct AddonData {
  Napi::FunctionReference bufferCtor;
  Napi::FunctionReference engineCtor;
};

std::string describeValue(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsNumber()) return "number " + std::to_string(v.As<Napi::Number>().DoubleValue());
  if (v.IsString()) return "a string";
  if (v.IsBoolean()) return "a boolean";
  if (v.IsFunction()) return "a function";
  return "an object";
}

/** `o` as T when it carries T's type tag; a TypeError otherwise (never a reinterpretation of another object). */
template <class T>
T* unwrapTagged(Napi::Object o, const napi_type_tag* tag, const char* what) {
  bool ok = false;
  if (napi_check_object_type_tag(o.Env(), o, tag, &ok) != napi_ok || !ok)
    throw Napi::TypeError::New(o.Env(), std::string("expected ") + what + " as this but received " +
                                            (o.IsObject() ? std::string("another object") : describeValue(o)));
  return Napi::ObjectWrap<T>::Unwrap(o);
}

// ---- buffers ----

class NativeBuffer : public Napi::ObjectWrap<NativeBuffer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeBuffer", {
      InstanceAccessor<&NativeBuffer::GetLength>("length"),
      InstanceAccessor<&NativeBuffer::GetDtype>("dtype"),
      InstanceAccessor<&NativeBuffer::GetFreed>("freed"),
    });
  }
  explicit NativeBuffer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeBuffer>(info) {
    napi_type_tag_object(info.Env(), info.This(), &kBufferTag);
  }
  ~NativeBuffer() override { release(); }
  // node-addon-api unwraps `this` through T::Unwrap before every accessor: check the tag there.
  static NativeBuffer* Unwrap(Napi::Object o) { return unwrapTagged<NativeBuffer>(o, &kBufferTag, "a cpu device buffer"); }

  void attach(Napi::Env env, BufPtr b) {
    env_ = env;
    buf_ = std::move(b);
    reported_ = (int64_t)buf_->bytes;
    Napi::MemoryManagement::AdjustExternalMemory(env, reported_);
  }
  /** Drops JavaScript's reference; queued ops keep theirs. Idempotent. */
  void release() {
    if (buf_ && reported_) {
      Napi::MemoryManagement::AdjustExternalMemory(env_, -reported_);
      reported_ = 0;
    }
    buf_.reset();
  }
  const BufPtr& buf() const { return buf_; }

 private:
  Napi::Value GetLength(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), buf_ ? (double)buf_->length : 0.0);
  }
  Napi::Value GetDtype(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), buf_ ? dtypeName(buf_->dtype) : "freed");
  }
  Napi::Value GetFreed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !buf_); }

  napi_env env_ = nullptr;
  BufPtr buf_;
  int64_t reported_ = 0;
};

class NativeEngine;

/** Argument checking for one call: messages read "<op>: <argument> ...". */
class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* op, EngineCore* core) : info_(info), op_(op), core_(core) {}

  [[noreturn]] void fail(const std::string& msg) const {
    throw Napi::Error::New(info_.Env(), std::string(op_) + ": " + msg);
  }
  [[noreturn]] void failType(const std::string& msg) const {
    throw Napi::TypeError::New(info_.Env(), std::string(op_) + ": " + msg);
  }

  Napi::Value at(size_t i) const { return i < info_.Length() ? info_[i] : info_.Env().Undefined(); }

  static std::string describe(const Napi::Value& v) { return describeValue(v); }

  /** A device buffer of this engine (or of `owner` when given), of dtype `dtype` (-1: any). */
  BufPtr buf(size_t i, const char* name, int dtype, bool nullable = false, uint64_t owner = 0) const {
    Napi::Value v = at(i);
    if (nullable && (v.IsNull() || v.IsUndefined())) return nullptr;
    if (!v.IsObject()) failType(std::string("expected a device buffer for ") + name + " but received " + describe(v));
    bool ok = false;
    if (napi_check_object_type_tag(info_.Env(), v, &kBufferTag, &ok) != napi_ok || !ok)
      failType(std::string("expected a device buffer for ") + name + " but received another object");
    NativeBuffer* nb = NativeBuffer::Unwrap(v.As<Napi::Object>());
    if (!nb || !nb->buf()) fail(std::string(name) + " was freed");
    const BufPtr& b = nb->buf();
    uint64_t want = owner ? owner : core_->id;
    if (b->owner != want) fail(std::string(name) + " belongs to another engine");
    if (dtype >= 0 && b->dtype != dtype)
      failType(std::string(name) + " is " + dtypeName(b->dtype) + " but must be " + dtypeName(dtype));
    seen_.push_back({name, nb, b});
    return b;
  }

  /**
   * After every argument is read (getters of an options object may have run JavaScript): the engine
   * must still be `current` and every buffer taken still attached, else the call is refused.
   */
  void stillValid(const std::shared_ptr<EngineCore>& current) const {
    if (!current || current.get() != core_) fail("the engine was destroyed while the arguments were read");
    for (const Seen& s : seen_)
      if (s.nb->buf() != s.buf) fail(std::string(s.name) + " was freed while the arguments were read");
  }

  Napi::Env env() const { return info_.Env(); }

  /** A non-negative integer below 2^53. */
  int64_t size(size_t i, const char* name) const { return sizeOf(at(i), name); }
  int64_t sizeOf(const Napi::Value& v, const char* name) const {
    if (!v.IsNumber()) failType(std::string("expected a non-negative integer for ") + name + " but received " + describe(v));
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0)
      fail(std::string("expected a non-negative integer for ") + name + " but received " + describe(v));
    return (int64_t)d;
  }
  /** A count of a shaped op: a non-negative integer below 2^31 (as the CUDA engine's). */
  int64_t dim(size_t i, const char* name) const {
    int64_t v = size(i, name);
    if (v >= kDimLimit) fail(std::string("expected ") + name + " below 2^31 but received " + std::to_string(v));
    return v;
  }
  int64_t positive(size_t i, const char* name) const {
    int64_t v = size(i, name);
    if (v < 1) fail(std::string("expected a positive integer for ") + name + " but received 0");
    return v;
  }
  double number(size_t i, const char* name) const { return numberOf(at(i), name); }
  double numberOf(const Napi::Value& v, const char* name) const {
    if (!v.IsNumber()) failType(std::string("expected a number for ") + name + " but received " + describe(v));
    return v.As<Napi::Number>().DoubleValue();
  }
  double finite(size_t i, const char* name) const {
    double d = number(i, name);
    if (!std::isfinite(d)) fail(std::string("expected a finite number for ") + name + " but received " + describe(at(i)));
    return d;
  }
  bool boolean(size_t i, const char* name) const {
    Napi::Value v = at(i);
    if (!v.IsBoolean()) failType(std::string("expected a boolean for ") + name + " but received " + describe(v));
    return v.As<Napi::Boolean>().Value();
  }
  std::string string(size_t i, const char* name) const {
    Napi::Value v = at(i);
    if (!v.IsString()) failType(std::string("expected a string for ") + name + " but received " + describe(v));
    return v.As<Napi::String>().Utf8Value();
  }
  Napi::Object object(size_t i, const char* name) const {
    Napi::Value v = at(i);
    if (!v.IsObject()) failType(std::string("expected an object for ") + name + " but received " + describe(v));
    return v.As<Napi::Object>();
  }
  int64_t field(const Napi::Object& o, const char* objName, const char* key) const {
    std::string what = std::string(objName) + "." + key;
    return sizeOf(o.Get(key), what.c_str());
  }
  double numField(const Napi::Object& o, const char* objName, const char* key) const {
    std::string what = std::string(objName) + "." + key;
    return numberOf(o.Get(key), what.c_str());
  }

  /** a * b, failing instead of overflowing. */
  int64_t mul(int64_t a, int64_t b) const {
    if (a != 0 && b > std::numeric_limits<int64_t>::max() / a) fail("sizes overflow");
    return a * b;
  }
  int64_t mul(std::initializer_list<int64_t> xs) const {
    int64_t r = 1;
    for (int64_t x : xs) r = mul(r, x);
    return r;
  }

  void need(const BufPtr& b, const char* name, int64_t count, const char* what = "the sizes given need") const {
    if (b->length < count)
      fail(std::string(name) + " holds " + std::to_string(b->length) + " elements but " + what + " " +
           std::to_string(count));
  }
  void sameLength(const BufPtr& a, const char* an, const BufPtr& b, const char* bn) const {
    if (a->length != b->length)
      fail(std::string(an) + " holds " + std::to_string(a->length) + " elements but " + bn + " holds " +
           std::to_string(b->length) + " (they must have the same length)");
  }

  ConvGeometry conv(size_t i) const {
    Napi::Object o = object(i, "geometry");
    ConvGeometry g{};
    g.n = field(o, "geometry", "n"); g.c = field(o, "geometry", "c");
    g.h = field(o, "geometry", "h"); g.w = field(o, "geometry", "w");
    g.k = field(o, "geometry", "k"); g.r = field(o, "geometry", "r"); g.s = field(o, "geometry", "s");
    g.strideH = field(o, "geometry", "strideH"); g.strideW = field(o, "geometry", "strideW");
    g.padH = field(o, "geometry", "padH"); g.padW = field(o, "geometry", "padW");
    g.groups = field(o, "geometry", "groups");
    g.outH = field(o, "geometry", "outH"); g.outW = field(o, "geometry", "outW");
    const std::string problem = convProblem(g);
    if (!problem.empty()) fail(problem);
    return g;
  }

  PoolGeometry pool(size_t i) const {
    Napi::Object o = object(i, "geometry");
    PoolGeometry g{};
    g.n = field(o, "geometry", "n"); g.c = field(o, "geometry", "c");
    g.h = field(o, "geometry", "h"); g.w = field(o, "geometry", "w");
    g.kh = field(o, "geometry", "kh"); g.kw = field(o, "geometry", "kw");
    g.strideH = field(o, "geometry", "strideH"); g.strideW = field(o, "geometry", "strideW");
    g.padH = field(o, "geometry", "padH"); g.padW = field(o, "geometry", "padW");
    g.outH = field(o, "geometry", "outH"); g.outW = field(o, "geometry", "outW");
    const std::string problem = poolProblem(g);
    if (!problem.empty()) fail(problem);
    return g;
  }

  LrnParams lrn(size_t i) const {
    Napi::Object o = object(i, "params");
    LrnParams p{};
    p.size = field(o, "params", "size");
    if (p.size < 1) fail("expected a positive integer for params.size but received 0");
    p.alpha = numField(o, "params", "alpha");
    p.beta = numField(o, "params", "beta");
    p.k = numField(o, "params", "k");
    return p;
  }

  uint64_t seed(size_t i, const char* name) const { return (uint64_t)size(i, name); }

 private:
  struct Seen {
    const char* name;
    NativeBuffer* nb;  // owned by its JavaScript object, which the call's arguments keep alive
    BufPtr buf;
  };
  const Napi::CallbackInfo& info_;
  const char* op_;
  EngineCore* core_;
  mutable std::vector<Seen> seen_;
};

// ---- engines ----

struct AsyncResult {
  Napi::Promise::Deferred deferred;
  std::vector<uint8_t> data;
  bool hasData = false;
  std::string error;
  NativeEngine* engine = nullptr;
  explicit AsyncResult(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

class NativeEngine : public Napi::ObjectWrap<NativeEngine> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeEngine", {
      InstanceMethod<&NativeEngine::Alloc>("alloc"),
      InstanceMethod<&NativeEngine::Free>("free"),
      InstanceMethod<&NativeEngine::Write>("write"),
      InstanceMethod<&NativeEngine::Read>("read"),
      InstanceMethod<&NativeEngine::ReadSync>("readSync"),
      InstanceMethod<&NativeEngine::Synchronize>("synchronize"),
      InstanceMethod<&NativeEngine::SynchronizeSync>("synchronizeSync"),
      InstanceMethod<&NativeEngine::RecordEvent>("recordEvent"),
      InstanceMethod<&NativeEngine::WaitEvent>("waitEvent"),
      InstanceMethod<&NativeEngine::SetThreads>("setThreads"),
      InstanceMethod<&NativeEngine::GetThreads>("getThreads"),
      InstanceMethod<&NativeEngine::Stats>("stats"),
      InstanceMethod<&NativeEngine::TrimCache>("trimCache"),
      InstanceMethod<&NativeEngine::SetCacheLimit>("setCacheLimit"),
      InstanceMethod<&NativeEngine::Fill>("fill"),
      InstanceMethod<&NativeEngine::Random>("random"),
      InstanceMethod<&NativeEngine::Copy>("copy"),
      InstanceMethod<&NativeEngine::CopyToPeer>("copyToPeer"),
      InstanceMethod<&NativeEngine::ChannelCopy>("channelCopy"),
      InstanceMethod<&NativeEngine::Gemm>("gemm"),
      InstanceMethod<&NativeEngine::Axpy>("axpy"),
      InstanceMethod<&NativeEngine::Scale>("scale"),
      InstanceMethod<&NativeEngine::Add>("add"),
      InstanceMethod<&NativeEngine::BiasAdd>("biasAdd"),
      InstanceMethod<&NativeEngine::BiasGrad>("biasGrad"),
      InstanceMethod<&NativeEngine::Conv2dForward>("conv2dForward"),
      InstanceMethod<&NativeEngine::Conv2dBackwardData>("conv2dBackwardData"),
      InstanceMethod<&NativeEngine::Conv2dBackwardFilter>("conv2dBackwardFilter"),
      InstanceMethod<&NativeEngine::ReluForward>("reluForward"),
      InstanceMethod<&NativeEngine::ReluBackward>("reluBackward"),
      InstanceMethod<&NativeEngine::LrnForward>("lrnForward"),
      InstanceMethod<&NativeEngine::LrnBackward>("lrnBackward"),
      InstanceMethod<&NativeEngine::MaxPoolForward>("maxPoolForward"),
      InstanceMethod<&NativeEngine::MaxPoolBackward>("maxPoolBackward"),
      InstanceMethod<&NativeEngine::DropoutForward>("dropoutForward"),
      InstanceMethod<&NativeEngine::DropoutBackward>("dropoutBackward"),
      InstanceMethod<&NativeEngine::SoftmaxCrossEntropy>("softmaxCrossEntropy"),
      InstanceMethod<&NativeEngine::Softmax>("softmax"),
      InstanceMethod<&NativeEngine::TopkCorrect>("topkCorrect"),
      InstanceMethod<&NativeEngine::SgdUpdate>("sgdUpdate"),
      InstanceMethod<&NativeEngine::Sleep>("sleep"),
      InstanceMethod<&NativeEngine::Destroy>("destroy"),
    });
  }

  explicit NativeEngine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeEngine>(info) {
    Napi::Env env = info.Env();
    napi_type_tag_object(env, info.This(), &kEngineTag);
    Args args(info, "createEngine", nullptr);
    int64_t index = args.size(0, "index");
    if (index > 1 << 20) args.fail("index must be below 2^20");
    core_ = std::make_shared<EngineCore>((int)index, g_nextEngineId++);
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

  EngineCore* core() const { return core_.get(); }
  const std::shared_ptr<EngineCore>& coreShared() const { return core_; }
  // node-addon-api unwraps `this` through T::Unwrap before every method: check the tag there.
  static NativeEngine* Unwrap(Napi::Object o) { return unwrapTagged<NativeEngine>(o, &kEngineTag, "a cpu engine"); }

 private:
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
  // reports the difference at each alloc, free, stats and trim.
  void syncCached(Napi::Env env) {
    if (!core_) return;
    env_ = env;
    const int64_t now = core_->cache->cachedBytes.load();
    if (now != reportedCached_) {
      Napi::MemoryManagement::AdjustExternalMemory(env, now - reportedCached_);
      reportedCached_ = now;
    }
  }

  /** The engine core, held by the caller for the whole call (an argument's getter may destroy the engine). */
  std::shared_ptr<EngineCore> live(const Napi::CallbackInfo& info, const char* op) {
    if (!core_) throw Napi::Error::New(info.Env(), std::string(op) + ": the engine was destroyed");
    return core_;
  }

  /** Queues fn once `a` confirms the engine and every buffer it took survived the reading of the arguments. */
  template <class F>
  void enqueue(const Args& a, F&& fn) {
    a.stillValid(core_);
    try {
      core_->enqueue(std::forward<F>(fn));
    } catch (const std::exception& e) {
      throw Napi::Error::New(a.env(), e.what());
    }
  }

  void throwPendingError(Napi::Env env) {
    std::string err = core_->takeError();
    if (!err.empty()) throw Napi::Error::New(env, err);
  }

  // ---- memory and queue ----

  Napi::Value Alloc(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "alloc");
    EngineCore* core = hold.get();
    Args a(info, "alloc", core);
    std::string dt = a.string(0, "dtype");
    int dtype;
    if (dt == "float32") dtype = kFloat32;
    else if (dt == "int32") dtype = kInt32;
    else if (dt == "uint8") dtype = kUint8;
    else if (dt == "float64") a.failType("the cpu engine stores float32, int32 and uint8; float64 is the reference engine's");
    else a.failType("expected 'float32', 'int32' or 'uint8' for dtype but received '" + dt + "'");
    int64_t length = a.size(1, "length");
    if (length > ((int64_t)1 << 40)) a.fail("length " + std::to_string(length) + " is too large");
    const size_t bytes = bufSizeClass((size_t)length * (size_t)dtypeBytes(dtype));
    // A block from the cache is memory whose last reference (JavaScript's, or the last queued op's
    // on any engine) is gone, so nothing can still read or write it. Contents are unspecified
    // (Engine.alloc): no zero-fill, so alloc queues nothing.
    void* p = core->cache->take(bytes);
    if (!p) p = std::aligned_alloc(64, bytes);
    if (!p) {
      core->cache->trim(0);  // give the cache back to the system and try once more
      p = std::aligned_alloc(64, bytes);
    }
    if (!p) a.fail("out of memory allocating " + std::to_string(bytes) + " bytes");
    auto b = std::make_shared<Buf>();
    b->data = p;
    b->length = length;
    b->bytes = bytes;
    b->dtype = dtype;
    b->owner = core->id;
    b->stats = core->stats;
    b->cache = core->cache;
    const int64_t liveBytes = (core->stats->bytes += (int64_t)bytes);
    core->stats->buffers += 1;
    if (liveBytes > core->stats->peakBytes.load()) core->stats->peakBytes = liveBytes;  // only this thread writes it
    syncCached(info.Env());
    AddonData* d = info.Env().GetInstanceData<AddonData>();
    Napi::Object obj = d->bufferCtor.New({});
    NativeBuffer::Unwrap(obj)->attach(info.Env(), b);
    return obj;
  }

  void Free(const Napi::CallbackInfo& info) {
    // Idempotent, and allowed after destroy (the memory then goes at once).
    Napi::Value v = info.Length() > 0 ? info[0] : info.Env().Undefined();
    bool ok = false;
    if (!v.IsObject() || napi_check_object_type_tag(info.Env(), v, &kBufferTag, &ok) != napi_ok || !ok)
      throw Napi::TypeError::New(info.Env(), "free: expected a device buffer for buf but received " + Args::describe(v));
    NativeBuffer* nb = NativeBuffer::Unwrap(v.As<Napi::Object>());
    if (nb->buf() && core_ && nb->buf()->owner != core_->id)
      throw Napi::Error::New(info.Env(), "free: buf belongs to another engine");
    nb->release();
    syncCached(info.Env());
  }

  void Write(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "write");
    EngineCore* core = hold.get();
    Args a(info, "write", core);
    BufPtr b = a.buf(0, "buf", -1);
    Napi::Value dv = a.at(1);
    if (!dv.IsTypedArray()) a.failType("expected a typed array for data but received " + Args::describe(dv));
    Napi::TypedArray ta = dv.As<Napi::TypedArray>();
    napi_typedarray_type t = ta.TypedArrayType();
    int want = t == napi_float32_array ? kFloat32 : t == napi_int32_array ? kInt32 : t == napi_uint8_array ? kUint8 : -1;
    if (want != b->dtype)
      a.failType(std::string("data must be the typed array of ") + dtypeName(b->dtype) + " for a " +
                 dtypeName(b->dtype) + " buffer");
    int64_t offset = info.Length() > 2 && !a.at(2).IsUndefined() ? a.size(2, "offset") : 0;
    int64_t len = (int64_t)ta.ElementLength();
    if (offset > b->length || len > b->length - offset)
      a.fail("offset " + std::to_string(offset) + " + data.length " + std::to_string(len) + " exceeds buf.length " +
             std::to_string(b->length));
    const int eb = dtypeBytes(b->dtype);
    const uint8_t* src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    size_t bytes = (size_t)len * eb;
    if (bytes == 0) return;
    uint8_t* dst = b->u8() + offset * eb;
    if (core->idle()) {
      std::memcpy(dst, src, bytes);  // nothing queued can touch it: copy now, skip the staging copy
      return;
    }
    auto staged = std::make_shared<std::vector<uint8_t>>(src, src + bytes);
    enqueue(a, [b, staged, dst] { std::memcpy(dst, staged->data(), staged->size()); });
  }

  Napi::Value ReadSync(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "readSync");
    EngineCore* core = hold.get();
    Args a(info, "readSync", core);
    BufPtr b = a.buf(0, "buf", -1);
    int64_t offset, length;
    readRange(a, b, &offset, &length);
    a.stillValid(core_);
    core->waitReached(core->submitted());
    throwPendingError(info.Env());
    const int eb = dtypeBytes(b->dtype);
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(info.Env(), (size_t)(length * eb));
    if (length) std::memcpy(ab.Data(), b->u8() + offset * eb, (size_t)(length * eb));
    return ab;
  }

  void readRange(const Args& a, const BufPtr& b, int64_t* offset, int64_t* length) {
    *offset = !a.at(1).IsUndefined() ? a.size(1, "offset") : 0;
    if (*offset > b->length) a.fail("offset " + std::to_string(*offset) + " exceeds buf.length " + std::to_string(b->length));
    *length = !a.at(2).IsUndefined() ? a.size(2, "length") : b->length - *offset;
    if (*length > b->length - *offset)
      a.fail("offset " + std::to_string(*offset) + " + length " + std::to_string(*length) + " exceeds buf.length " +
             std::to_string(b->length));
  }

  /** Completes `r` on the JavaScript thread (called through tsfn_). */
  static void finish(Napi::Env env, Napi::Function, AsyncResult* r) {
    if (env != nullptr) {
      NativeEngine* self = r->engine;
      if (--self->pending_ == 0 && self->core_) self->tsfn_.Unref(env);
      if (!r->error.empty()) {
        r->deferred.Reject(Napi::Error::New(env, r->error).Value());
      } else if (r->hasData) {
        Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, r->data.size());
        if (!r->data.empty()) std::memcpy(ab.Data(), r->data.data(), r->data.size());
        r->deferred.Resolve(ab);
      } else {
        r->deferred.Resolve(env.Undefined());
      }
      self->Unref();
    }
    delete r;
  }

  Napi::Value queueAsync(const Napi::CallbackInfo& info, BufPtr b, int64_t offset, int64_t length) {
    Napi::Env env = info.Env();
    auto* r = new AsyncResult(env);
    r->engine = this;
    Napi::Promise promise = r->deferred.Promise();
    if (pending_++ == 0) tsfn_.Ref(env);
    Ref();  // a pending read keeps this engine alive
    EngineCore* core = core_.get();
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
        std::string err = core->takeError();
        if (!err.empty()) r->error = err;
        tsfn.BlockingCall(r, finish);
      });
    } catch (const std::exception& e) {
      if (--pending_ == 0) tsfn_.Unref(env);
      Unref();
      delete r;
      throw Napi::Error::New(env, e.what());
    }
    return promise;
  }

  Napi::Value Read(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "read");
    EngineCore* core = hold.get();
    Args a(info, "read", core);
    BufPtr b = a.buf(0, "buf", -1);
    int64_t offset, length;
    readRange(a, b, &offset, &length);
    a.stillValid(core_);
    return queueAsync(info, b, offset, length);
  }

  Napi::Value Synchronize(const Napi::CallbackInfo& info) {
    live(info, "synchronize");
    return queueAsync(info, nullptr, 0, 0);
  }

  void SynchronizeSync(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "synchronizeSync");
    EngineCore* core = hold.get();
    core->waitReached(core->submitted());
    throwPendingError(info.Env());
  }

  Napi::Value RecordEvent(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "recordEvent");
    EngineCore* core = hold.get();
    return Napi::Number::New(info.Env(), (double)core->submitted());
  }

  void WaitEvent(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "waitEvent");
    EngineCore* core = hold.get();
    Args a(info, "waitEvent", core);
    Napi::Value v = a.at(0);
    bool ok = false;
    if (!v.IsObject() || napi_check_object_type_tag(info.Env(), v, &kEngineTag, &ok) != napi_ok || !ok)
      a.failType("expected a cpu engine for event.engine but received " + Args::describe(v));
    NativeEngine* other = NativeEngine::Unwrap(v.As<Napi::Object>());
    uint64_t seq = (uint64_t)a.size(1, "event.sequence");
    if (!other->core_ || other == this) return;  // destroyed (nothing left to wait for) or in-order already
    std::shared_ptr<EngineCore> oc = other->core_;
    if (seq > oc->submitted()) a.fail("event.sequence is beyond what that engine has queued");
    enqueue(a, [oc, seq] { oc->waitReached(seq); });
  }

  void SetThreads(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "setThreads");
    EngineCore* core = hold.get();
    Args a(info, "setThreads", core);
    int64_t n = a.positive(0, "threads");
    if (n > 256) a.fail("threads must be at most 256 but received " + std::to_string(n));
    threads_ = (int)n;
    enqueue(a, [core, n] { core->pool.resize((int)n); });
  }

  Napi::Value GetThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), threads_); }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "stats");
    EngineCore* core = hold.get();
    syncCached(info.Env());
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("bytes", Napi::Number::New(env, (double)core->stats->bytes.load()));
    o.Set("buffers", Napi::Number::New(env, (double)core->stats->buffers.load()));
    o.Set("peakBytes", Napi::Number::New(env, (double)core->stats->peakBytes.load()));
    o.Set("cachedBytes", Napi::Number::New(env, (double)core->cache->cachedBytes.load()));
    o.Set("cachedBuffers", Napi::Number::New(env, (double)core->cache->cachedBlocks.load()));
    o.Set("cacheLimit", Napi::Number::New(env, (double)core->cache->limit()));
    return o;
  }

  /** Frees every cached block; returns the bytes given back. */
  Napi::Value TrimCache(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "trimCache");
    EngineCore* core = hold.get();
    int64_t freed = core->cache->trim(0);
    syncCached(info.Env());
    return Napi::Number::New(info.Env(), (double)freed);
  }

  /** Bounds the cache at `bytes` (trimming to it); -1 restores the default max(1 GiB, 2 x peak live). */
  void SetCacheLimit(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "setCacheLimit");
    EngineCore* core = hold.get();
    Args a(info, "setCacheLimit", core);
    Napi::Value v = a.at(0);
    if (!v.IsNumber()) a.failType("expected a number for bytes but received " + Args::describe(v));
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d == -1 || (d >= 0 && d <= 9.0e15 && d == std::floor(d))))
      a.fail("bytes must be a non-negative integer or -1");
    core->cache->setLimit((int64_t)d);
    syncCached(info.Env());
  }

  // ---- data movement ----

  void Fill(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "fill");
    EngineCore* core = hold.get();
    Args a(info, "fill", core);
    BufPtr b = a.buf(0, "buf", -1);
    Napi::Value v = a.at(1);
    a.number(1, "value");
    uint32_t pattern = 0;
    int eb = dtypeBytes(b->dtype);
    if (b->dtype == kFloat32) {
      float f = (float)v.As<Napi::Number>().DoubleValue();
      std::memcpy(&pattern, &f, 4);
    } else if (b->dtype == kInt32) {
      int32_t iv = v.As<Napi::Number>().Int32Value();  // JavaScript's ToInt32, as an Int32Array store
      std::memcpy(&pattern, &iv, 4);
    } else {
      pattern = v.As<Napi::Number>().Uint32Value() & 0xFF;  // ToUint8
    }
    enqueue(a, [core, b, pattern, eb] {
      Ctx ctx{core->pool, core->ws};
      uint8_t bytes[4];
      std::memcpy(bytes, &pattern, 4);
      fillBytes(ctx, b->data, b->length, eb, bytes);
    });
  }

  void Random(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "random");
    EngineCore* core = hold.get();
    Args a(info, "random", core);
    BufPtr b = a.buf(0, "buf", kFloat32);
    std::string dist = a.string(1, "dist");
    if (dist != "uniform" && dist != "normal")
      a.failType("expected 'uniform' or 'normal' for dist but received '" + dist + "'");
    uint64_t seed = a.seed(2, "seed");
    uint64_t offset = (uint64_t)a.size(3, "offset");
    double p1 = a.number(4, "a"), p2 = a.number(5, "b");
    bool normal = dist == "normal";
    enqueue(a, [core, b, normal, seed, offset, p1, p2] {
      Ctx ctx{core->pool, core->ws};
      if (normal) randomNormal(ctx, b->f32(), b->length, seed, offset, p1, p2);
      else randomUniform(ctx, b->f32(), b->length, seed, offset, p1, p2);
    });
  }

  void Copy(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "copy");
    EngineCore* core = hold.get();
    Args a(info, "copy", core);
    BufPtr src = a.buf(0, "src", -1);
    int64_t so = a.size(1, "srcOffset");
    BufPtr dst = a.buf(2, "dst", -1);
    int64_t dof = a.size(3, "dstOffset");
    int64_t len = a.size(4, "length");
    if (src->dtype != dst->dtype)
      a.failType(std::string("src is ") + dtypeName(src->dtype) + " but dst is " + dtypeName(dst->dtype));
    a.need(src, "src", so + len, "srcOffset + length is");
    a.need(dst, "dst", dof + len, "dstOffset + length is");
    const int eb = dtypeBytes(src->dtype);
    enqueue(a, [src, dst, so, dof, len, eb] {
      std::memmove(dst->u8() + dof * eb, src->u8() + so * eb, (size_t)(len * eb));
    });
  }

  void CopyToPeer(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "copyToPeer");
    EngineCore* core = hold.get();
    Args a(info, "copyToPeer", core);
    BufPtr src = a.buf(0, "src", -1);
    Napi::Value pv = a.at(1);
    bool ok = false;
    if (!pv.IsObject() || napi_check_object_type_tag(info.Env(), pv, &kEngineTag, &ok) != napi_ok || !ok)
      a.failType("expected a cpu engine for peer but received " + Args::describe(pv));
    NativeEngine* peer = NativeEngine::Unwrap(pv.As<Napi::Object>());
    if (!peer->core_) a.fail("peer was destroyed");
    BufPtr dst = a.buf(2, "dst", -1, false, peer->core_->id);
    int64_t len = a.size(3, "length");
    if (src->dtype != dst->dtype)
      a.failType(std::string("src is ") + dtypeName(src->dtype) + " but dst is " + dtypeName(dst->dtype));
    a.need(src, "src", len, "length is");
    a.need(dst, "dst", len, "length is");
    const int eb = dtypeBytes(src->dtype);
    enqueue(a, [src, dst, len, eb] { std::memmove(dst->data, src->data, (size_t)(len * eb)); });
  }

  void ChannelCopy(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "channelCopy");
    EngineCore* core = hold.get();
    Args a(info, "channelCopy", core);
    BufPtr src = a.buf(0, "src", -1), dst = a.buf(1, "dst", -1);
    int64_t n = a.dim(2, "n"), hw = a.dim(3, "hw"), srcC = a.dim(4, "srcC"), so = a.dim(5, "srcOffset");
    int64_t dstC = a.dim(6, "dstC"), dof = a.dim(7, "dstOffset"), count = a.dim(8, "count");
    if (src->dtype != dst->dtype)
      a.failType(std::string("src is ") + dtypeName(src->dtype) + " but dst is " + dtypeName(dst->dtype));
    if (so + count > srcC)
      a.fail("srcOffset + count is " + std::to_string(so + count) + " but srcC is " + std::to_string(srcC));
    if (dof + count > dstC)
      a.fail("dstOffset + count is " + std::to_string(dof + count) + " but dstC is " + std::to_string(dstC));
    a.need(src, "src", a.mul({n, srcC, hw}));
    a.need(dst, "dst", a.mul({n, dstC, hw}));
    const int eb = dtypeBytes(src->dtype);
    enqueue(a, [core, src, dst, n, hw, srcC, so, dstC, dof, count, eb] {
      Ctx ctx{core->pool, core->ws};
      channelCopy(ctx, src->u8(), dst->u8(), n, hw, srcC, so, dstC, dof, count, eb);
    });
  }

  // ---- dense algebra ----

  void Gemm(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "gemm");
    EngineCore* core = hold.get();
    Args a(info, "gemm", core);
    bool ta = a.boolean(0, "transA"), tb = a.boolean(1, "transB");
    int64_t m = a.size(2, "m"), n = a.size(3, "n"), k = a.size(4, "k");
    float alpha = (float)a.number(5, "alpha");
    BufPtr A = a.buf(6, "a", kFloat32), B = a.buf(7, "b", kFloat32);
    float beta = (float)a.number(8, "beta");
    BufPtr C = a.buf(9, "c", kFloat32);
    a.need(A, "a", a.mul(m, k), "m * k is");
    a.need(B, "b", a.mul(k, n), "k * n is");
    a.need(C, "c", a.mul(m, n), "m * n is");
    enqueue(a, [core, ta, tb, m, n, k, alpha, A, B, beta, C] {
      sgemm(core->pool, ta, tb, m, n, k, alpha, A->f32(), ta ? m : k, B->f32(), tb ? k : n, beta, C->f32(), n);
    });
  }

  void Axpy(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "axpy");
    EngineCore* core = hold.get();
    Args a(info, "axpy", core);
    float alpha = (float)a.number(0, "alpha");
    BufPtr x = a.buf(1, "x", kFloat32), y = a.buf(2, "y", kFloat32);
    a.sameLength(x, "x", y, "y");
    enqueue(a, [core, alpha, x, y] {
      Ctx ctx{core->pool, core->ws};
      axpy(ctx, alpha, x->f32(), y->f32(), x->length);
    });
  }

  void Scale(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "scale");
    EngineCore* core = hold.get();
    Args a(info, "scale", core);
    float alpha = (float)a.number(0, "alpha");
    BufPtr x = a.buf(1, "x", kFloat32);
    enqueue(a, [core, alpha, x] {
      Ctx ctx{core->pool, core->ws};
      scale(ctx, alpha, x->f32(), x->length);
    });
  }

  void Add(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "add");
    EngineCore* core = hold.get();
    Args a(info, "add", core);
    BufPtr x = a.buf(0, "a", kFloat32), y = a.buf(1, "b", kFloat32), out = a.buf(2, "out", kFloat32);
    a.sameLength(x, "a", y, "b");
    a.sameLength(x, "a", out, "out");
    enqueue(a, [core, x, y, out] {
      Ctx ctx{core->pool, core->ws};
      add(ctx, x->f32(), y->f32(), out->f32(), x->length);
    });
  }

  void BiasAdd(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "biasAdd");
    EngineCore* core = hold.get();
    Args a(info, "biasAdd", core);
    BufPtr y = a.buf(0, "y", kFloat32), bias = a.buf(1, "bias", kFloat32);
    int64_t n = a.dim(2, "n"), c = a.dim(3, "c"), hw = a.dim(4, "hw");
    a.need(y, "y", a.mul({n, c, hw}), "n * c * hw is");
    a.need(bias, "bias", c, "c is");
    enqueue(a, [core, y, bias, n, c, hw] {
      Ctx ctx{core->pool, core->ws};
      biasAdd(ctx, y->f32(), bias->f32(), n, c, hw);
    });
  }

  void BiasGrad(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "biasGrad");
    EngineCore* core = hold.get();
    Args a(info, "biasGrad", core);
    BufPtr dy = a.buf(0, "dy", kFloat32), db = a.buf(1, "db", kFloat32);
    int64_t n = a.dim(2, "n"), c = a.dim(3, "c"), hw = a.dim(4, "hw");
    float beta = (float)a.number(5, "beta");
    a.need(dy, "dy", a.mul({n, c, hw}), "n * c * hw is");
    a.need(db, "db", c, "c is");
    enqueue(a, [core, dy, db, n, c, hw, beta] {
      Ctx ctx{core->pool, core->ws};
      biasGrad(ctx, dy->f32(), db->f32(), n, c, hw, beta);
    });
  }

  // ---- convolution ----

  void Conv2dForward(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "conv2dForward");
    EngineCore* core = hold.get();
    Args a(info, "conv2dForward", core);
    BufPtr x = a.buf(0, "x", kFloat32), w = a.buf(1, "w", kFloat32);
    BufPtr bias = a.buf(2, "bias", kFloat32, true);
    BufPtr y = a.buf(3, "y", kFloat32);
    ConvGeometry g = a.conv(4);
    a.need(x, "x", g.xSize(), "the geometry needs");
    a.need(w, "w", g.wSize(), "the geometry needs");
    if (bias) a.need(bias, "bias", g.k, "the geometry needs");
    a.need(y, "y", g.ySize(), "the geometry needs");
    enqueue(a, [core, x, w, bias, y, g] {
      Ctx ctx{core->pool, core->ws};
      conv2dForward(ctx, x->f32(), w->f32(), bias ? bias->f32() : nullptr, y->f32(), g);
    });
  }

  void Conv2dBackwardData(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "conv2dBackwardData");
    EngineCore* core = hold.get();
    Args a(info, "conv2dBackwardData", core);
    BufPtr dy = a.buf(0, "dy", kFloat32), w = a.buf(1, "w", kFloat32), dx = a.buf(2, "dx", kFloat32);
    ConvGeometry g = a.conv(3);
    a.need(dy, "dy", g.ySize(), "the geometry needs");
    a.need(w, "w", g.wSize(), "the geometry needs");
    a.need(dx, "dx", g.xSize(), "the geometry needs");
    enqueue(a, [core, dy, w, dx, g] {
      Ctx ctx{core->pool, core->ws};
      conv2dBackwardData(ctx, dy->f32(), w->f32(), dx->f32(), g);
    });
  }

  void Conv2dBackwardFilter(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "conv2dBackwardFilter");
    EngineCore* core = hold.get();
    Args a(info, "conv2dBackwardFilter", core);
    BufPtr x = a.buf(0, "x", kFloat32), dy = a.buf(1, "dy", kFloat32), dw = a.buf(2, "dw", kFloat32);
    BufPtr db = a.buf(3, "db", kFloat32, true);
    ConvGeometry g = a.conv(4);
    float beta = (float)a.number(5, "beta");
    a.need(x, "x", g.xSize(), "the geometry needs");
    a.need(dy, "dy", g.ySize(), "the geometry needs");
    a.need(dw, "dw", g.wSize(), "the geometry needs");
    if (db) a.need(db, "db", g.k, "the geometry needs");
    enqueue(a, [core, x, dy, dw, db, g, beta] {
      Ctx ctx{core->pool, core->ws};
      conv2dBackwardFilter(ctx, x->f32(), dy->f32(), dw->f32(), db ? db->f32() : nullptr, g, beta);
    });
  }

  // ---- activations ----

  void ReluForward(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "reluForward");
    EngineCore* core = hold.get();
    Args a(info, "reluForward", core);
    BufPtr x = a.buf(0, "x", kFloat32), y = a.buf(1, "y", kFloat32);
    a.sameLength(x, "x", y, "y");
    enqueue(a, [core, x, y] {
      Ctx ctx{core->pool, core->ws};
      reluForward(ctx, x->f32(), y->f32(), x->length);
    });
  }

  void ReluBackward(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "reluBackward");
    EngineCore* core = hold.get();
    Args a(info, "reluBackward", core);
    BufPtr y = a.buf(0, "y", kFloat32), dy = a.buf(1, "dy", kFloat32), dx = a.buf(2, "dx", kFloat32);
    a.sameLength(y, "y", dy, "dy");
    a.sameLength(y, "y", dx, "dx");
    enqueue(a, [core, y, dy, dx] {
      Ctx ctx{core->pool, core->ws};
      reluBackward(ctx, y->f32(), dy->f32(), dx->f32(), y->length);
    });
  }

  // ---- LRN ----

  void LrnForward(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "lrnForward");
    EngineCore* core = hold.get();
    Args a(info, "lrnForward", core);
    BufPtr x = a.buf(0, "x", kFloat32), y = a.buf(1, "y", kFloat32);
    LrnParams p = a.lrn(2);
    int64_t n = a.dim(3, "n"), c = a.dim(4, "c"), hw = a.dim(5, "hw");
    int64_t total = a.mul({n, c, hw});
    a.need(x, "x", total, "n * c * hw is");
    a.need(y, "y", total, "n * c * hw is");
    enqueue(a, [core, x, y, p, n, c, hw] {
      Ctx ctx{core->pool, core->ws};
      lrnForward(ctx, x->f32(), y->f32(), p, n, c, hw);
    });
  }

  void LrnBackward(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "lrnBackward");
    EngineCore* core = hold.get();
    Args a(info, "lrnBackward", core);
    BufPtr x = a.buf(0, "x", kFloat32), y = a.buf(1, "y", kFloat32), dy = a.buf(2, "dy", kFloat32);
    BufPtr dx = a.buf(3, "dx", kFloat32);
    LrnParams p = a.lrn(4);
    int64_t n = a.dim(5, "n"), c = a.dim(6, "c"), hw = a.dim(7, "hw");
    int64_t total = a.mul({n, c, hw});
    a.need(x, "x", total, "n * c * hw is");
    a.need(y, "y", total, "n * c * hw is");
    a.need(dy, "dy", total, "n * c * hw is");
    a.need(dx, "dx", total, "n * c * hw is");
    enqueue(a, [core, x, y, dy, dx, p, n, c, hw] {
      Ctx ctx{core->pool, core->ws};
      lrnBackward(ctx, x->f32(), y->f32(), dy->f32(), dx->f32(), p, n, c, hw);
    });
  }

  // ---- pooling ----

  void MaxPoolForward(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "maxPoolForward");
    EngineCore* core = hold.get();
    Args a(info, "maxPoolForward", core);
    BufPtr x = a.buf(0, "x", kFloat32), y = a.buf(1, "y", kFloat32), am = a.buf(2, "argmax", kInt32);
    PoolGeometry g = a.pool(3);
    a.need(x, "x", g.xSize(), "the geometry needs");
    a.need(y, "y", g.ySize(), "the geometry needs");
    a.need(am, "argmax", g.ySize(), "the geometry needs");
    enqueue(a, [core, x, y, am, g] {
      Ctx ctx{core->pool, core->ws};
      maxPoolForward(ctx, x->f32(), y->f32(), am->i32(), g);
    });
  }

  void MaxPoolBackward(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "maxPoolBackward");
    EngineCore* core = hold.get();
    Args a(info, "maxPoolBackward", core);
    BufPtr dy = a.buf(0, "dy", kFloat32), am = a.buf(1, "argmax", kInt32), dx = a.buf(2, "dx", kFloat32);
    PoolGeometry g = a.pool(3);
    a.need(dy, "dy", g.ySize(), "the geometry needs");
    a.need(am, "argmax", g.ySize(), "the geometry needs");
    a.need(dx, "dx", g.xSize(), "the geometry needs");
    enqueue(a, [core, dy, am, dx, g] {
      Ctx ctx{core->pool, core->ws};
      int64_t bad = maxPoolBackward(ctx, dy->f32(), am->i32(), dx->f32(), g);
      if (bad) throw std::runtime_error("maxPoolBackward: " + std::to_string(bad) + " argmax entries were out of range (skipped)");
    });
  }

  // ---- dropout ----

  void dropoutCommon(const Napi::CallbackInfo& info, const char* op, const char* xn, const char* yn) {
    const auto hold = live(info, op);
    EngineCore* core = hold.get();
    Args a(info, op, core);
    BufPtr x = a.buf(0, xn, kFloat32), y = a.buf(1, yn, kFloat32);
    a.sameLength(x, xn, y, yn);
    double p = a.number(2, "p");
    if (!(p >= 0 && p < 1)) a.fail("expected p in [0, 1) but received " + std::to_string(p));
    uint64_t seed = a.seed(3, "seed");
    uint64_t offset = (uint64_t)a.size(4, "offset");
    enqueue(a, [core, x, y, p, seed, offset] {
      Ctx ctx{core->pool, core->ws};
      dropout(ctx, x->f32(), y->f32(), x->length, p, seed, offset);
    });
  }
  void DropoutForward(const Napi::CallbackInfo& info) { dropoutCommon(info, "dropoutForward", "x", "y"); }
  void DropoutBackward(const Napi::CallbackInfo& info) { dropoutCommon(info, "dropoutBackward", "dy", "dx"); }

  // ---- loss and metrics ----

  void SoftmaxCrossEntropy(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "softmaxCrossEntropy");
    EngineCore* core = hold.get();
    Args a(info, "softmaxCrossEntropy", core);
    BufPtr logits = a.buf(0, "logits", kFloat32), labels = a.buf(1, "labels", kInt32);
    BufPtr loss = a.buf(2, "loss", kFloat32), dl = a.buf(3, "dlogits", kFloat32, true);
    int64_t n = a.dim(4, "n"), c = a.dim(5, "c");
    a.need(logits, "logits", a.mul(n, c), "n * c is");
    a.need(labels, "labels", n, "n is");
    a.need(loss, "loss", 1, "the loss needs");
    if (dl) a.need(dl, "dlogits", a.mul(n, c), "n * c is");
    enqueue(a, [core, logits, labels, loss, dl, n, c] {
      Ctx ctx{core->pool, core->ws};
      softmaxCrossEntropy(ctx, logits->f32(), labels->i32(), loss->f32(), dl ? dl->f32() : nullptr, n, c);
    });
  }

  void Softmax(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "softmax");
    EngineCore* core = hold.get();
    Args a(info, "softmax", core);
    BufPtr x = a.buf(0, "x", kFloat32), y = a.buf(1, "y", kFloat32);
    int64_t n = a.dim(2, "n"), c = a.dim(3, "c");
    a.need(x, "x", a.mul(n, c), "n * c is");
    a.need(y, "y", a.mul(n, c), "n * c is");
    enqueue(a, [core, x, y, n, c] {
      Ctx ctx{core->pool, core->ws};
      softmax(ctx, x->f32(), y->f32(), n, c);
    });
  }

  void TopkCorrect(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "topkCorrect");
    EngineCore* core = hold.get();
    Args a(info, "topkCorrect", core);
    BufPtr logits = a.buf(0, "logits", kFloat32), labels = a.buf(1, "labels", kInt32);
    BufPtr out = a.buf(2, "out", kInt32);
    int64_t n = a.dim(3, "n"), c = a.dim(4, "c"), k = a.size(5, "k");
    a.need(logits, "logits", a.mul(n, c), "n * c is");
    a.need(labels, "labels", n, "n is");
    a.need(out, "out", 1, "the count needs");
    enqueue(a, [core, logits, labels, out, n, c, k] {
      Ctx ctx{core->pool, core->ws};
      out->i32()[0] = topkCorrect(ctx, logits->f32(), labels->i32(), n, c, k);
    });
  }

  // ---- SGD ----

  void SgdUpdate(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "sgdUpdate");
    EngineCore* core = hold.get();
    Args a(info, "sgdUpdate", core);
    BufPtr w = a.buf(0, "w", kFloat32), g = a.buf(1, "g", kFloat32), v = a.buf(2, "v", kFloat32);
    a.sameLength(w, "w", g, "g");
    a.sameLength(w, "w", v, "v");
    Napi::Object p = a.object(3, "params");
    float lr = (float)a.numField(p, "params", "lr");
    float mom = (float)a.numField(p, "params", "momentum");
    float wd = (float)a.numField(p, "params", "weightDecay");
    Napi::Value fv = p.Get("form");
    std::string form = fv.IsString() ? fv.As<Napi::String>().Utf8Value() : "";
    if (form != "paper" && form != "pytorch")
      a.failType("expected 'paper' or 'pytorch' for params.form but received " + Args::describe(fv));
    bool paper = form == "paper";
    enqueue(a, [core, w, g, v, lr, mom, wd, paper] {
      Ctx ctx{core->pool, core->ws};
      sgdUpdate(ctx, w->f32(), g->f32(), v->f32(), w->length, lr, mom, wd, paper);
    });
  }

  /** Test hook: a queued op that just takes `ms` milliseconds (asynchrony and overlap tests). */
  void Sleep(const Napi::CallbackInfo& info) {
    const auto hold = live(info, "sleep");
    EngineCore* core = hold.get();
    Args a(info, "sleep", core);
    int64_t ms = a.size(0, "ms");
    if (ms > 60000) a.fail("ms must be at most 60000");
    enqueue(a, [ms] { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); });
  }

  void Destroy(const Napi::CallbackInfo&) { shutdown(); }

  std::shared_ptr<EngineCore> core_;
  Napi::ThreadSafeFunction tsfn_;
  napi_env env_ = nullptr;
  int64_t reportedCached_ = 0;  // cache bytes reported to V8 as external memory
  int pending_ = 0;
  int threads_ = 1;
};

// ---- module functions ----

Napi::Value GetIsa(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("active", isaName(activeIsa()));
  o.Set("detected", isaName(detectIsa()));
  GemmBlocking b = gemmBlocking();
  Napi::Object g = Napi::Object::New(info.Env());
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
  Args a(info, "setIsa", nullptr);
  std::string name = a.string(0, "isa");
  Isa isa;
  if (!parseIsa(name.c_str(), &isa)) a.failType("expected 'avx512', 'avx2' or 'portable' for isa but received '" + name + "'");
  if (!setIsa(isa)) a.fail(std::string("this CPU lacks ") + name + " (it has " + isaName(detectIsa()) + ")");
}

/** Peak GFLOP/s of an FMA loop with no memory traffic, on `threads` threads (blocks the caller). */
Napi::Value PeakGflops(const Napi::CallbackInfo& info) {
  Args a(info, "peakGflops", nullptr);
  int64_t threads = a.positive(0, "threads");
  double seconds = a.finite(1, "seconds");
  if (threads > 256 || seconds <= 0 || seconds > 30) a.fail("threads must be 1..256 and seconds in (0, 30]");
  ThreadPool pool;
  pool.resize((int)threads);
  return Napi::Number::New(info.Env(), measurePeakGflops(pool, seconds));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  Napi::Function bufferCtor = NativeBuffer::Define(env);
  Napi::Function engineCtor = NativeEngine::Define(env);
  data->bufferCtor = Napi::Persistent(bufferCtor);
  data->engineCtor = Napi::Persistent(engineCtor);
  env.SetInstanceData<AddonData>(data);
  exports.Set("NativeEngine", engineCtor);
  exports.Set("NativeBuffer", bufferCtor);
  exports.Set("isa", Napi::Function::New(env, GetIsa, "isa"));
  exports.Set("setIsa", Napi::Function::New(env, SetIsaFn, "setIsa"));
  exports.Set("peakGflops", Napi::Function::New(env, PeakGflops, "peakGflops"));
  return exports;
}

}  // namespace
}  // namespace alexnet

static Napi::Object InitAlexnetCpu(Napi::Env env, Napi::Object exports) { return alexnet::Init(env, exports); }
NODE_API_MODULE(alexnet_cpu, InitAlexnetCpu)
