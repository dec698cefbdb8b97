// N-API argument helpers, shared by every addon of @alexnet: the CPU engine (native/cpu/addon.cpp),
// the CUDA engine and its host emulation (native/cuda/addon.cpp), and the MPI collectives to come
// (native/mpi). Native code never trusts its caller: every argument is checked here, and a bad one is
// a thrown JavaScript Error that names the op and the argument, in one style (sharp's lib/is.js):
//
//   conv2dForward: Expected a non-negative integer for geometry.n but received -1 of type number
//   gemm: a holds 4 elements but m * k is 16
//
// What an addon provides: a buffer Kind (how its NativeBuffer objects map to its engine's buffers)
// and a Core (the engine state a call holds). A binding then reads its arguments through a Call:
//
//   struct MpiKind {                                   // this addon's buffers
//     using Buffer = MpiBuffer;                        // int64_t length; int dtype; uint64_t owner
//     using Core = Communicator;                       // uint64_t id (owner of its buffers)
//     static constexpr const char* kWhat = "an mpi buffer";
//     static constexpr napi_type_tag kTag = {0x..., 0x...};   // 128 random bits, one per kind
//     static constexpr const char* kEngineWhat = "an mpi communicator";   // Args::engine()
//     static constexpr napi_type_tag kEngineTag = {0x..., 0x...};
//     static std::shared_ptr<Core> coreOf(Napi::Object engine);     // the core behind an engine object
//     static int64_t hostBytes(const Buffer&) { return 0; }   // reported to V8 (0: not host memory)
//     static std::string convProblem(const ConvGeometry& g) { return alexnet::convProblem(g); }
//     static std::string poolProblem(const PoolGeometry& g) { return alexnet::poolProblem(g); }
//   };
//
//   Napi::Value Allreduce(const Napi::CallbackInfo& info) {     // allreduce(data, op)
//     alexnet::napi::Call<MpiKind> c(info, "allreduce", comm_);  // holds comm_ (a shared_ptr) for the call
//     std::string op = c.oneOf(1, "op", {"sum", "max"});
//     if (c.isTypedArray(0)) {
//       HostArray a = c.typedArray(0, "data", kFloat32);         // a Float32Array (also of a SharedArrayBuffer)
//       c.check();                                             // see below
//       return c.guard([&] { c.core().allreduce(a.data, a.length, op); });
//     }
//     auto b = c.buf(0, "data", kFloat32);                      // one of this addon's NativeBuffers
//     c.check();
//     ...
//   }
//
// Reading an argument can run JavaScript (getters, proxies, valueOf is never called: numbers must be
// numbers) that destroys the engine or frees a buffer: a Call holds the core and every buffer it took
// (shared_ptr) until it returns, and check(), once every argument is read, refuses the call if the
// engine was destroyed or a buffer freed meanwhile ("the engine was destroyed while the arguments were
// read"). `this` is checked by type tag before every method and accessor (Unwrap below), so a method
// called on another object is a TypeError, never a reinterpretation. A NativeBuffer is unwrapped only
// by the addon that made it (its tag says which): another addon's buffer is "another object".
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "dtype.h"
#include "geometry.h"

namespace alexnet {
namespace napi {

/** How a value reads in an error: "-1 of type number", "cauchy of type string", "null", "an object". */
inline std::string describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined of type undefined";
  if (v.IsNull()) return "null";
  if (v.IsFunction()) return "a function";
  if (v.IsArray()) return "an array";
  if (v.IsTypedArray()) return "a typed array";
  if (v.IsExternal()) return "an external";
  if (v.IsObject()) return "an object";
  if (v.IsSymbol()) return "a symbol";
  const char* type = v.IsNumber() ? "number" : v.IsString() ? "string" : v.IsBoolean() ? "boolean" : "bigint";
  return v.ToString().Utf8Value() + " of type " + type;  // JavaScript's String(v): no user code for primitives
}

/** Whether v is an object or external carrying `tag`. */
inline bool hasTag(const Napi::Value& v, const napi_type_tag& tag) {
  bool ok = false;
  if (!v.IsObject() && !v.IsExternal()) return false;
  return napi_check_object_type_tag(v.Env(), v, &tag, &ok) == napi_ok && ok;
}

/** `o` as T when it carries `tag` (a TypeError otherwise). T::Unwrap calls it: node-addon-api unwraps
 * `this` through T::Unwrap before every method and accessor. */
template <class T>
T* unwrapTagged(Napi::Object o, const napi_type_tag& tag, const char* what) {
  if (!hasTag(o, tag))
    throw Napi::TypeError::New(o.Env(), std::string("Expected ") + what + " as this but received " +
                                            (o.IsObject() ? std::string("another object") : describe(o)));
  return Napi::ObjectWrap<T>::Unwrap(o);
}

/**
 * A buffer of Kind as a JavaScript object: `length`, `dtype`, `freed`, and the engine's buffer behind
 * it (a shared_ptr: queued work holds its own reference, so freeing only drops JavaScript's).
 */
template <class Kind>
class NativeBuffer : public Napi::ObjectWrap<NativeBuffer<Kind>> {
  using Base = Napi::ObjectWrap<NativeBuffer<Kind>>;

 public:
  using Ptr = std::shared_ptr<typename Kind::Buffer>;

  static Napi::Function Define(Napi::Env env) {
    return Base::DefineClass(env, "NativeBuffer", {
      Base::template InstanceAccessor<&NativeBuffer::GetLength>("length"),
      Base::template InstanceAccessor<&NativeBuffer::GetDtype>("dtype"),
      Base::template InstanceAccessor<&NativeBuffer::GetFreed>("freed"),
    });
  }
  /** A new buffer object (of the class `ctor`, which Define made) owning b. */
  static Napi::Object wrap(Napi::Env env, const Napi::FunctionReference& ctor, Ptr b) {
    Napi::Object o = ctor.New({});
    Unwrap(o)->attach(env, std::move(b));
    return o;
  }
  static NativeBuffer* Unwrap(Napi::Object o) { return unwrapTagged<NativeBuffer>(o, Kind::kTag, Kind::kWhat); }

  explicit NativeBuffer(const Napi::CallbackInfo& info) : Base(info) {
    napi_type_tag_object(info.Env(), info.This(), &Kind::kTag);
  }
  ~NativeBuffer() override { release(); }

  /** Drops JavaScript's reference; queued work keeps its own. Idempotent. */
  void release() {
    if (reported_) Napi::MemoryManagement::AdjustExternalMemory(env_, -reported_);
    reported_ = 0;
    buf_.reset();
  }
  const Ptr& buf() const { return buf_; }

 private:
  void attach(Napi::Env env, Ptr b) {
    env_ = env;
    buf_ = std::move(b);
    reported_ = Kind::hostBytes(*buf_);
    if (reported_) Napi::MemoryManagement::AdjustExternalMemory(env, reported_);
  }
  Napi::Value GetLength(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), buf_ ? (double)buf_->length : 0.0);
  }
  Napi::Value GetDtype(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), buf_ ? dtypeName(buf_->dtype) : "freed");
  }
  Napi::Value GetFreed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !buf_); }

  napi_env env_ = nullptr;
  Ptr buf_;
  int64_t reported_ = 0;
};

/** A typed array argument: its first element (views of a SharedArrayBuffer too) and element count. */
struct HostArray {
  void* data = nullptr;
  size_t length = 0;
  int dtype = kAnyDType;  // kFloat32, kInt32, kUint8, kFloat64; -1 for other element types
};

/** Number of the largest integers that are exact in a double (Number.MAX_SAFE_INTEGER). */
constexpr double kMaxSafeInteger = 9007199254740991.0;

/**
 * The arguments of one call of `op`, read by position. Every reader throws an Error naming the op
 * and the argument; the buffers taken are remembered for check().
 */
template <class Kind>
class Args {
 public:
  using Buffer = NativeBuffer<Kind>;
  using Handle = typename Buffer::Ptr;
  using Core = typename Kind::Core;

  Args(const Napi::CallbackInfo& info, const char* op, uint64_t owner) : info_(info), op_(op), owner_(owner) {}

  const char* op() const { return op_; }
  Napi::Env env() const { return info_.Env(); }
  Napi::Value at(size_t i) const { return i < info_.Length() ? info_[i] : info_.Env().Undefined(); }
  bool given(size_t i) const { return !at(i).IsUndefined(); }

  [[noreturn]] void fail(const std::string& msg) const { throw Napi::Error::New(env(), std::string(op_) + ": " + msg); }
  [[noreturn]] void failType(const std::string& msg) const {
    throw Napi::TypeError::New(env(), std::string(op_) + ": " + msg);
  }
  /** "<op>: Expected <what> for <name> but received <v>" (a TypeError when v has the wrong type). */
  [[noreturn]] void expected(const std::string& what, const std::string& name, const Napi::Value& v,
                             bool wrongType) const {
    const std::string msg = "Expected " + what + " for " + name + " but received " + describe(v);
    if (wrongType) failType(msg);
    fail(msg);
  }

  // ---- numbers ----

  /** A non-negative integer below 2^53. */
  int64_t size(size_t i, const std::string& name) const { return sizeOf(at(i), name); }
  int64_t sizeOf(const Napi::Value& v, const std::string& name) const {
    if (!v.IsNumber()) expected("a non-negative integer", name, v, true);
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != std::floor(d) || d > kMaxSafeInteger) expected("a non-negative integer", name, v, false);
    return (int64_t)d;
  }
  /** A count of a shaped op: a non-negative integer below 2^31 (the CUDA engine indexes in int32). */
  int64_t dim(size_t i, const std::string& name) const { return dimOf(at(i), name); }
  int64_t dimOf(const Napi::Value& v, const std::string& name) const {
    const int64_t d = sizeOf(v, name);
    if (d >= kDimLimit) fail("Expected " + name + " below 2^31 but received " + std::to_string(d));
    return d;
  }
  /** An integer in [1, max]. */
  int64_t positive(size_t i, const std::string& name, int64_t max) const {
    const Napi::Value v = at(i);
    const int64_t d = sizeOf(v, name);
    if (d < 1 || d > max) expected("an integer from 1 to " + std::to_string(max), name, v, false);
    return d;
  }
  double number(size_t i, const std::string& name) const { return numberOf(at(i), name); }
  double numberOf(const Napi::Value& v, const std::string& name) const {
    if (!v.IsNumber()) expected("a number", name, v, true);
    return v.As<Napi::Number>().DoubleValue();
  }
  float f32(size_t i, const std::string& name) const { return (float)number(i, name); }
  double finite(size_t i, const std::string& name) const {
    const double d = number(i, name);
    if (!std::isfinite(d)) expected("a finite number", name, at(i), false);
    return d;
  }
  /** A probability of dropping: p in [0, 1). */
  double probability(size_t i, const std::string& name) const {
    const double p = number(i, name);
    if (!(p >= 0 && p < 1)) expected("a number in [0, 1)", name, at(i), false);
    return p;
  }

  // ---- other values ----

  bool boolean(size_t i, const std::string& name) const {
    const Napi::Value v = at(i);
    if (!v.IsBoolean()) expected("a boolean", name, v, true);
    return v.As<Napi::Boolean>().Value();
  }
  std::string string(size_t i, const std::string& name) const { return stringOf(at(i), name); }
  std::string stringOf(const Napi::Value& v, const std::string& name) const {
    if (!v.IsString()) expected("a string", name, v, true);
    return v.As<Napi::String>().Utf8Value();
  }
  /** One of `choices` ("Expected 'uniform' or 'normal' for dist but received cauchy of type string"). */
  std::string oneOf(size_t i, const std::string& name, std::initializer_list<const char*> choices) const {
    return oneOfValue(at(i), name, choices);
  }
  std::string oneOfValue(const Napi::Value& v, const std::string& name, std::initializer_list<const char*> choices) const {
    std::string list;
    size_t k = 0;
    for (const char* c : choices) list += (k++ == 0 ? "'" : k == choices.size() ? " or '" : ", '") + std::string(c) + "'";
    if (v.IsString()) {
      const std::string s = v.As<Napi::String>().Utf8Value();
      for (const char* c : choices)
        if (s == c) return s;
    }
    expected(list, name, v, true);
  }
  Napi::Object object(size_t i, const std::string& name) const {
    const Napi::Value v = at(i);
    if (!v.IsObject()) expected("an object", name, v, true);
    return v.As<Napi::Object>();
  }
  int64_t field(const Napi::Object& o, const char* objName, const char* key) const {
    return sizeOf(o.Get(key), std::string(objName) + "." + key);
  }
  double numField(const Napi::Object& o, const char* objName, const char* key) const {
    return numberOf(o.Get(key), std::string(objName) + "." + key);
  }

  bool isTypedArray(size_t i) const { return at(i).IsTypedArray(); }
  /** A typed array, of element type `dtype` unless it is kAnyDType. */
  HostArray typedArray(size_t i, const std::string& name, int dtype = kAnyDType) const {
    const Napi::Value v = at(i);
    if (!v.IsTypedArray()) expected("a typed array", name, v, true);
    napi_typedarray_type type;
    HostArray h;
    if (napi_get_typedarray_info(env(), v, &type, &h.length, &h.data, nullptr, nullptr) != napi_ok)
      fail("cannot read the typed array " + name);
    h.dtype = type == napi_float32_array ? kFloat32 : type == napi_int32_array ? kInt32 : type == napi_uint8_array ? kUint8
            : type == napi_float64_array ? kFloat64 : kAnyDType;
    if (dtype != kAnyDType && h.dtype != dtype)
      failType(name + " must be the typed array of " + dtypeName(dtype) + " (a " + dtypeName(dtype) + " buffer)");
    return h;
  }

  // ---- buffers ----

  /** A NativeBuffer of this engine (of engine `owner` when given), of `dtype` unless it is kAnyDType. */
  Handle buf(size_t i, const char* name, int dtype, bool nullable = false, uint64_t owner = 0) const {
    const Napi::Value v = at(i);
    if (nullable && (v.IsNull() || v.IsUndefined())) return nullptr;
    if (!hasTag(v, Kind::kTag))
      failType(std::string("Expected ") + Kind::kWhat + " for " + name + " but received " +
               (v.IsObject() ? std::string("another object") : describe(v)));
    Buffer* nb = Buffer::Unwrap(v.As<Napi::Object>());
    const Handle& b = nb->buf();
    if (!b) fail(std::string(name) + " was freed");
    if (b->owner != (owner ? owner : owner_)) fail(std::string(name) + " belongs to another engine");
    if (dtype != kAnyDType && b->dtype != dtype)
      failType(std::string(name) + " is " + dtypeName(b->dtype) + " but must be " + dtypeName(dtype));
    taken_.push_back({name, nb, b});
    return b;
  }
  Handle f32buf(size_t i, const char* name, bool nullable = false) const { return buf(i, name, kFloat32, nullable); }
  Handle i32buf(size_t i, const char* name) const { return buf(i, name, kInt32); }

  /** An engine object of this addon (copyToPeer's peer, waitEvent's engine): its core (null once it was
   * destroyed), which the caller holds for the rest of the call. */
  std::shared_ptr<typename Kind::Core> engine(size_t i, const char* name) const {
    const Napi::Value v = at(i);
    if (!hasTag(v, Kind::kEngineTag))
      failType(std::string("Expected ") + Kind::kEngineWhat + " for " + name + " but received " +
               (v.IsObject() ? std::string("another object") : describe(v)));
    return Kind::coreOf(v.As<Napi::Object>());
  }

  /** a * b * ..., failing instead of overflowing int64. */
  int64_t mul(std::initializer_list<int64_t> xs) const {
    const int64_t r = checkedProduct(xs);
    if (r < 0) fail("the sizes given overflow 64-bit integers");
    return r;
  }
  void need(const Handle& b, const char* name, int64_t count, const char* what) const {
    if (b->length < count)
      fail(std::string(name) + " holds " + std::to_string(b->length) + " elements but " + what + " " +
           std::to_string(count));
  }
  struct Need {
    const Handle& buf;
    const char* name;
    int64_t count;
  };
  /** need(buf, name, count, what) for each; null buffers (optional arguments not given) are skipped. */
  void needs(const char* what, std::initializer_list<Need> list) const {
    for (const Need& n : list)
      if (n.buf) need(n.buf, n.name, n.count, what);
  }
  void sameLength(const Handle& a, const char* an, const Handle& b, const char* bn) const {
    if (a->length != b->length)
      fail(std::string(an) + " holds " + std::to_string(a->length) + " elements but " + bn + " holds " +
           std::to_string(b->length) + " (they must have the same length)");
  }
  void sameDType(const Handle& a, const char* an, const Handle& b, const char* bn) const {
    if (a->dtype != b->dtype)
      failType(std::string(an) + " is " + dtypeName(a->dtype) + " but " + bn + " is " + dtypeName(b->dtype));
  }

  // ---- shapes (native/common/geometry.h; Kind adds its engine's own limits) ----

  ConvGeometry conv(size_t i) const {
    const Napi::Object o = object(i, "geometry");
    auto f = [&](const char* k) { return field(o, "geometry", k); };
    const ConvGeometry g{f("n"), f("c"), f("h"), f("w"), f("k"), f("r"), f("s"), f("strideH"), f("strideW"),
                         f("padH"), f("padW"), f("groups"), f("outH"), f("outW")};
    const std::string problem = Kind::convProblem(g);
    if (!problem.empty()) fail(problem);
    return g;
  }
  PoolGeometry pool(size_t i) const {
    const Napi::Object o = object(i, "geometry");
    auto f = [&](const char* k) { return field(o, "geometry", k); };
    const PoolGeometry g{f("n"), f("c"), f("h"), f("w"), f("kh"), f("kw"), f("strideH"), f("strideW"),
                         f("padH"), f("padW"), f("outH"), f("outW")};
    const std::string problem = Kind::poolProblem(g);
    if (!problem.empty()) fail(problem);
    return g;
  }
  LrnParams lrn(size_t i) const {
    const Napi::Object o = object(i, "params");
    LrnParams p{};
    p.size = field(o, "params", "size");
    if (p.size < 1 || p.size >= kDimLimit) expected("a positive integer below 2^31", "params.size", o.Get("size"), false);
    p.alpha = numField(o, "params", "alpha");
    p.beta = numField(o, "params", "beta");
    p.k = numField(o, "params", "k");
    return p;
  }

  /**
   * Once every argument is read (an options object's getters may have run JavaScript): the engine
   * must still be alive and every buffer taken still attached, else the call is refused.
   */
  void check(bool engineAlive) const {
    if (!engineAlive) fail("the engine was destroyed while the arguments were read");
    for (const Taken& t : taken_)
      if (t.nb->buf() != t.buf) fail(std::string(t.name) + " was freed while the arguments were read");
  }

  /** f(buffer) for every buffer this call took. */
  template <class F>
  void eachTaken(F&& f) const {
    for (const Taken& t : taken_) f(*t.buf);
  }

  /** f(), with an exception of the engine as a JavaScript Error "<op>: ..." (a RangeError for
   * std::invalid_argument: a call the engine cannot run, such as a size above its limits). */
  template <class F>
  auto guard(F&& f) const -> decltype(f()) {
    try {
      return f();
    } catch (const Napi::Error&) {
      throw;
    } catch (const std::invalid_argument& e) {
      throw Napi::RangeError::New(env(), std::string(op_) + ": " + e.what());
    } catch (const std::bad_alloc&) {
      throw Napi::Error::New(env(), std::string(op_) + ": out of memory");
    } catch (const std::exception& e) {
      throw Napi::Error::New(env(), std::string(op_) + ": " + e.what());
    }
  }

 private:
  struct Taken {
    const char* name;
    Buffer* nb;  // owned by its JavaScript object, which the call's arguments keep alive
    Handle buf;
  };
  const Napi::CallbackInfo& info_;
  const char* op_;
  uint64_t owner_;
  mutable std::vector<Taken> taken_;
};

/**
 * One call of an engine method: holds the engine's core (Kind::Core, through the caller's
 * shared_ptr member `current`) for the whole call, refusing at once when the engine was destroyed.
 */
template <class Kind>
class Call : public Args<Kind> {
 public:
  using Core = typename Kind::Core;
  Call(const Napi::CallbackInfo& info, const char* op, const std::shared_ptr<Core>& current)
      : Args<Kind>(info, op, current ? current->id : 0), current_(current), held_(current) {
    if (!held_) this->fail("the engine was destroyed");
  }
  Core& core() const { return *held_; }
  const std::shared_ptr<Core>& held() const { return held_; }
  /** Args::check against the engine this call started with. */
  void check() const { Args<Kind>::check(current_.get() == held_.get()); }

 private:
  const std::shared_ptr<Core>& current_;  // the wrapper's member: `this` keeps it alive during the call
  std::shared_ptr<Core> held_;
};

}  // namespace napi
}  // namespace alexnet
