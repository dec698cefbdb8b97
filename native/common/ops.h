// The ops of the Engine interface (packages/tensor/src/backend.ts) as argument lists, read and checked
// once for every engine addon: `read` takes an op's arguments, in the interface's order, from an
// Args/Call (napi_args.h) and checks that each buffer holds what the sizes need. An addon binds an op
// to its engine with one launch() overload (native/cpu/addon.cpp queues the CPU kernel,
// native/cuda/addon.cpp launches the CUDA one), and engineMethods() below gives every addon's
// NativeEngine class the same method names. Adding an op: docs/architecture.md, "Adding an op".
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "napi_args.h"

namespace alexnet {
namespace ops {

template <class A>
using H = typename A::Handle;

/** Opens the argument list of op Name, the method `js` of every engine addon (closed by `};`). */
#define ALEXNET_OP(Name, js) \
  template <class A>         \
  struct Name {              \
    static constexpr const char* name = js;

/** Opens the argument list of two ops read alike (forward and backward): Name<A, Backward>, as Fwd and Bwd. */
#define ALEXNET_OP_PAIR(Name, Fwd, fwd, Bwd, bwd) \
  template <class A, bool Backward>               \
  struct Name;                                    \
  template <class A>                              \
  using Fwd = Name<A, false>;                     \
  template <class A>                              \
  using Bwd = Name<A, true>;                      \
  template <class A, bool Backward>               \
  struct Name {                                   \
    static constexpr const char* name = Backward ? bwd : fwd;

constexpr const char* kGeometry = "the geometry needs";

// ---- memory (each addon runs these itself; the arguments are the same) ----

ALEXNET_OP(Alloc, "alloc")
  int dtype;
  int64_t length;
  void read(const A& a) {
    const std::string d = a.oneOf(0, "dtype", {"float32", "int32", "uint8", "float64"});
    if (d == "float64") a.failType("this engine stores float32, int32 and uint8; float64 is the reference engine's");
    dtype = parseDType(d), length = a.size(1, "length");
  }
};

/** write(buf, data, offset?): data a typed array of buf's dtype; buf[offset, offset + data.length). */
ALEXNET_OP(Write, "write")
  H<A> buf;
  napi::HostArray data;
  int64_t offset;
  void read(const A& a) {
    buf = a.buf(0, "buf", kAnyDType), data = a.typedArray(1, "data", buf->dtype);
    offset = a.given(2) ? a.size(2, "offset") : 0;
    const int64_t len = (int64_t)data.length;
    if (offset > buf->length || len > buf->length - offset)
      a.fail("offset " + std::to_string(offset) + " + data.length " + std::to_string(len) + " exceeds buf.length " +
             std::to_string(buf->length));
  }
  size_t bytes() const { return data.length * (size_t)dtypeBytes(buf->dtype); }
};

/** read(buf, offset?, length?) and readSync: the range [offset, offset + length) of buf. */
ALEXNET_OP(Read, "read")
  H<A> buf;
  int64_t offset, length;
  void read(const A& a) {
    buf = a.buf(0, "buf", kAnyDType);
    offset = a.given(1) ? a.size(1, "offset") : 0;
    if (offset > buf->length)
      a.fail("offset " + std::to_string(offset) + " exceeds buf.length " + std::to_string(buf->length));
    length = a.given(2) ? a.size(2, "length") : buf->length - offset;
    if (length > buf->length - offset)
      a.fail("offset " + std::to_string(offset) + " + length " + std::to_string(length) + " exceeds buf.length " +
             std::to_string(buf->length));
  }
  size_t bytes() const { return (size_t)length * (size_t)dtypeBytes(buf->dtype); }
};

ALEXNET_OP(SetThreads, "setThreads")
  int threads;
  void read(const A& a) { threads = (int)a.positive(0, "threads", 1024); }
};

// ---- data movement ----

/** fill(buf, value): the 32-bit pattern of value as buf's dtype (float32, ToInt32, or ToUint8 repeated). */
ALEXNET_OP(Fill, "fill")
  H<A> buf;
  uint32_t pattern;
  void read(const A& a) {
    buf = a.buf(0, "buf", kAnyDType);
    const float f = (float)a.number(1, "value");
    const Napi::Number v = a.at(1).template As<Napi::Number>();
    const int32_t i = v.Int32Value();  // JavaScript's ToInt32, as an Int32Array store
    if (buf->dtype == kFloat32) std::memcpy(&pattern, &f, 4);
    else if (buf->dtype == kInt32) std::memcpy(&pattern, &i, 4);
    else pattern = (v.Uint32Value() & 0xFFu) * 0x01010101u;  // ToUint8, in every byte
  }
};

/** random(buf, dist, seed, offset, a, b): uniform in [a, b), or normal with mean a and deviation b. */
ALEXNET_OP(Random, "random")
  H<A> buf;
  bool normal;
  uint64_t seed, offset;
  double a, b;
  void read(const A& x) {
    buf = x.f32buf(0, "buf"), normal = x.oneOf(1, "dist", {"uniform", "normal"}) == "normal";
    seed = (uint64_t)x.size(2, "seed"), offset = (uint64_t)x.size(3, "offset");
    a = x.number(4, "a"), b = x.number(5, "b");
  }
};

ALEXNET_OP(Copy, "copy")
  H<A> src, dst;
  int64_t srcOffset, dstOffset, length;
  void read(const A& a) {
    src = a.buf(0, "src", kAnyDType), srcOffset = a.size(1, "srcOffset");
    dst = a.buf(2, "dst", kAnyDType), dstOffset = a.size(3, "dstOffset"), length = a.size(4, "length");
    a.sameDType(src, "src", dst, "dst");
    a.need(src, "src", srcOffset + length, "srcOffset + length is");
    a.need(dst, "dst", dstOffset + length, "dstOffset + length is");
  }
};

/** copyToPeer(src, peer, dst, length): dst a buffer of the peer engine (held for the call). */
ALEXNET_OP(CopyToPeer, "copyToPeer")
  H<A> src, dst;
  std::shared_ptr<typename A::Core> peer;
  int64_t length;
  void read(const A& a) {
    src = a.buf(0, "src", kAnyDType), peer = a.engine(1, "peer");
    if (!peer) a.fail("peer was destroyed");
    dst = a.buf(2, "dst", kAnyDType, false, peer->id), length = a.size(3, "length");
    a.sameDType(src, "src", dst, "dst");
    a.needs("length is", {{src, "src", length}, {dst, "dst", length}});
  }
};

/** dst[i, dstOffset + j, :] = src[i, srcOffset + j, :] for i < n, j < count (planes of hw). */
ALEXNET_OP(ChannelCopy, "channelCopy")
  H<A> src, dst;
  int64_t n, hw, srcC, srcOffset, dstC, dstOffset, count;
  void read(const A& a) {
    src = a.buf(0, "src", kAnyDType), dst = a.buf(1, "dst", kAnyDType);
    n = a.dim(2, "n"), hw = a.dim(3, "hw"), srcC = a.dim(4, "srcC"), srcOffset = a.dim(5, "srcOffset");
    dstC = a.dim(6, "dstC"), dstOffset = a.dim(7, "dstOffset"), count = a.dim(8, "count");
    a.sameDType(src, "src", dst, "dst");
    if (srcOffset + count > srcC)
      a.fail("srcOffset + count is " + std::to_string(srcOffset + count) + " but srcC is " + std::to_string(srcC));
    if (dstOffset + count > dstC)
      a.fail("dstOffset + count is " + std::to_string(dstOffset + count) + " but dstC is " + std::to_string(dstC));
    a.need(src, "src", a.mul({n, srcC, hw}), "n * srcC * hw is");
    a.need(dst, "dst", a.mul({n, dstC, hw}), "n * dstC * hw is");
  }
};

// ---- dense algebra ----

ALEXNET_OP(Gemm, "gemm")
  bool transA, transB;
  int64_t m, n, k;
  float alpha, beta;
  H<A> a, b, c;
  void read(const A& x) {
    transA = x.boolean(0, "transA"), transB = x.boolean(1, "transB");
    m = x.dim(2, "m"), n = x.dim(3, "n"), k = x.dim(4, "k"), alpha = x.f32(5, "alpha");
    a = x.f32buf(6, "a"), b = x.f32buf(7, "b"), beta = x.f32(8, "beta"), c = x.f32buf(9, "c");
    x.need(a, "a", x.mul({m, k}), "m * k is");
    x.need(b, "b", x.mul({k, n}), "k * n is");
    x.need(c, "c", x.mul({m, n}), "m * n is");
  }
};

ALEXNET_OP(Axpy, "axpy")
  float alpha;
  H<A> x, y;
  void read(const A& a) {
    alpha = a.f32(0, "alpha"), x = a.f32buf(1, "x"), y = a.f32buf(2, "y");
    a.sameLength(x, "x", y, "y");
  }
};

ALEXNET_OP(Scale, "scale")
  float alpha;
  H<A> x;
  void read(const A& a) { alpha = a.f32(0, "alpha"), x = a.f32buf(1, "x"); }
};

/** The elementwise ops over float32 buffers of one length: add(a, b, out), reluForward(x, y),
 * reluBackward(y, dy, dx), tanhForward(x, y), tanhBackward(y, dy, dx). b[i] is argument i; a new op
 * of this form is a row of kArgs and a `using` below (no ALEXNET_OP). */
template <class A, int Which>
struct Elementwise {
  static constexpr const char* kArgs[5][4] = {
    {"add", "a", "b", "out"}, {"reluForward", "x", "y", nullptr}, {"reluBackward", "y", "dy", "dx"},
    {"tanhForward", "x", "y", nullptr}, {"tanhBackward", "y", "dy", "dx"}};
  static constexpr const char* name = kArgs[Which][0];
  H<A> b[3];
  void read(const A& a) {
    for (size_t i = 0; i < 3 && kArgs[Which][i + 1]; ++i) {
      b[i] = a.f32buf(i, kArgs[Which][i + 1]);
      if (i) a.sameLength(b[0], kArgs[Which][1], b[i], kArgs[Which][i + 1]);
    }
  }
};
template <class A>
using Add = Elementwise<A, 0>;
template <class A>
using ReluForward = Elementwise<A, 1>;
template <class A>
using ReluBackward = Elementwise<A, 2>;
template <class A>
using TanhForward = Elementwise<A, 3>;
template <class A>
using TanhBackward = Elementwise<A, 4>;

/** biasAdd(y, bias, n, c, hw) and biasGrad(dy, db, n, c, hw, beta): y [n, c, hw], bias [c]. */
ALEXNET_OP_PAIR(Bias, BiasAdd, "biasAdd", BiasGrad, "biasGrad")
  H<A> y, bias;
  int64_t n, c, hw;
  float beta = 0;
  void read(const A& a) {
    const char* yn = Backward ? "dy" : "y";
    const char* bn = Backward ? "db" : "bias";
    y = a.f32buf(0, yn), bias = a.f32buf(1, bn), n = a.dim(2, "n"), c = a.dim(3, "c"), hw = a.dim(4, "hw");
    if (Backward) beta = a.f32(5, "beta");
    a.need(y, yn, a.mul({n, c, hw}), "n * c * hw is");
    a.need(bias, bn, c, "c is");
  }
};

// ---- convolution ----

ALEXNET_OP(Conv2dForward, "conv2dForward")
  H<A> x, w, bias, y;
  ConvGeometry g;
  void read(const A& a) {
    x = a.f32buf(0, "x"), w = a.f32buf(1, "w"), bias = a.f32buf(2, "bias", true), y = a.f32buf(3, "y"), g = a.conv(4);
    a.needs(kGeometry, {{x, "x", g.xSize()}, {w, "w", g.wSize()}, {bias, "bias", g.k}, {y, "y", g.ySize()}});
  }
};

ALEXNET_OP(Conv2dBackwardData, "conv2dBackwardData")
  H<A> dy, w, dx;
  ConvGeometry g;
  void read(const A& a) {
    dy = a.f32buf(0, "dy"), w = a.f32buf(1, "w"), dx = a.f32buf(2, "dx"), g = a.conv(3);
    a.needs(kGeometry, {{dy, "dy", g.ySize()}, {w, "w", g.wSize()}, {dx, "dx", g.xSize()}});
  }
};

ALEXNET_OP(Conv2dBackwardFilter, "conv2dBackwardFilter")
  H<A> x, dy, dw, db;
  ConvGeometry g;
  float beta;
  void read(const A& a) {
    x = a.f32buf(0, "x"), dy = a.f32buf(1, "dy"), dw = a.f32buf(2, "dw"), db = a.f32buf(3, "db", true);
    g = a.conv(4), beta = a.f32(5, "beta");
    a.needs(kGeometry, {{x, "x", g.xSize()}, {dy, "dy", g.ySize()}, {dw, "dw", g.wSize()}, {db, "db", g.k}});
  }
};

// ---- LRN (§3.3): lrnForward(x, y, p, n, c, hw), lrnBackward(x, y, dy, dx, p, n, c, hw) ----

ALEXNET_OP_PAIR(Lrn, LrnForward, "lrnForward", LrnBackward, "lrnBackward")
  H<A> x, y, dy, dx;  // dy, dx: backward only
  LrnParams p;
  int64_t n, c, hw;
  void read(const A& a) {
    const size_t at = Backward ? 4 : 2;
    x = a.f32buf(0, "x"), y = a.f32buf(1, "y");
    if (Backward) dy = a.f32buf(2, "dy"), dx = a.f32buf(3, "dx");
    p = a.lrn(at), n = a.dim(at + 1, "n"), c = a.dim(at + 2, "c"), hw = a.dim(at + 3, "hw");
    const int64_t t = a.mul({n, c, hw});
    a.needs("n * c * hw is", {{x, "x", t}, {y, "y", t}, {dy, "dy", t}, {dx, "dx", t}});
  }
};

// ---- max pooling (§3.4): maxPoolForward(x, y, argmax, g), maxPoolBackward(dy, argmax, dx, g) ----

ALEXNET_OP_PAIR(MaxPool, MaxPoolForward, "maxPoolForward", MaxPoolBackward, "maxPoolBackward")
  H<A> in, out, argmax;  // forward: in = x, out = y; backward: in = dy, out = dx
  PoolGeometry g;
  void read(const A& a) {
    const char* inName = Backward ? "dy" : "x";
    const char* outName = Backward ? "dx" : "y";
    in = a.f32buf(0, inName);
    if (Backward) argmax = a.i32buf(1, "argmax"), out = a.f32buf(2, outName);
    else out = a.f32buf(1, outName), argmax = a.i32buf(2, "argmax");
    g = a.pool(3);
    const int64_t inSize = Backward ? g.ySize() : g.xSize(), outSize = Backward ? g.xSize() : g.ySize();
    a.needs(kGeometry, {{in, inName, inSize}, {out, outName, outSize}, {argmax, "argmax", g.ySize()}});
  }
};

// ---- dropout (§4.2): dropoutForward(x, y, p, seed, offset), dropoutBackward(dy, dx, ...) ----

ALEXNET_OP_PAIR(Dropout, DropoutForward, "dropoutForward", DropoutBackward, "dropoutBackward")
  H<A> x, y;
  double p;
  uint64_t seed, offset;
  void read(const A& a) {
    const char* xn = Backward ? "dy" : "x";
    const char* yn = Backward ? "dx" : "y";
    x = a.f32buf(0, xn), y = a.f32buf(1, yn);
    a.sameLength(x, xn, y, yn);
    p = a.probability(2, "p"), seed = (uint64_t)a.size(3, "seed"), offset = (uint64_t)a.size(4, "offset");
  }
};

// ---- loss and metrics ----

ALEXNET_OP(SoftmaxCrossEntropy, "softmaxCrossEntropy")
  H<A> logits, labels, loss, dlogits;
  int64_t n, c;
  void read(const A& a) {
    logits = a.f32buf(0, "logits"), labels = a.i32buf(1, "labels");
    loss = a.f32buf(2, "loss"), dlogits = a.f32buf(3, "dlogits", true), n = a.dim(4, "n"), c = a.dim(5, "c");
    const int64_t nc = a.mul({n, c});
    a.needs("n * c is", {{logits, "logits", nc}, {dlogits, "dlogits", nc}});
    a.needs("n is", {{labels, "labels", n}});
    a.needs("the loss needs", {{loss, "loss", 1}});
  }
};

ALEXNET_OP(Softmax, "softmax")
  H<A> x, y;
  int64_t n, c;
  void read(const A& a) {
    x = a.f32buf(0, "x"), y = a.f32buf(1, "y"), n = a.dim(2, "n"), c = a.dim(3, "c");
    const int64_t nc = a.mul({n, c});
    a.needs("n * c is", {{x, "x", nc}, {y, "y", nc}});
  }
};

ALEXNET_OP(TopkCorrect, "topkCorrect")
  H<A> logits, labels, out;
  int64_t n, c, k;
  void read(const A& a) {
    logits = a.f32buf(0, "logits"), labels = a.i32buf(1, "labels"), out = a.i32buf(2, "out");
    n = a.dim(3, "n"), c = a.dim(4, "c"), k = a.dim(5, "k");
    a.needs("n * c is", {{logits, "logits", a.mul({n, c})}});
    a.needs("n is", {{labels, "labels", n}});
    a.needs("the count needs", {{out, "out", 1}});
  }
};

// ---- SGD (§5) ----

ALEXNET_OP(SgdUpdate, "sgdUpdate")
  H<A> w, g, v;
  float lr, momentum, weightDecay;
  bool paper;
  void read(const A& a) {
    w = a.f32buf(0, "w"), g = a.f32buf(1, "g"), v = a.f32buf(2, "v");
    a.sameLength(w, "w", g, "g");
    a.sameLength(w, "w", v, "v");
    const Napi::Object p = a.object(3, "params");
    lr = (float)a.numField(p, "params", "lr"), momentum = (float)a.numField(p, "params", "momentum");
    weightDecay = (float)a.numField(p, "params", "weightDecay");
    paper = a.oneOfValue(p.Get("form"), "params.form", {"paper", "pytorch"}) == "paper";
  }
};

#undef ALEXNET_OP
#undef ALEXNET_OP_PAIR

// ---- what every engine addon's NativeEngine class does alike ----

/**
 * The base of an engine addon's NativeEngine class T: the engine's type tag on `this` (checked by
 * Unwrap before every method), the engine's core (null once destroyed), and op<Op>(), the method of
 * op Op (T::Bind<Op>: read ops::Op, then launch it).
 */
template <class T, class Kind>
class EngineWrap : public Napi::ObjectWrap<T> {
 public:
  using Core = typename Kind::Core;
  explicit EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<T>(info) {
    napi_type_tag_object(info.Env(), info.This(), &Kind::kEngineTag);
  }
  static T* Unwrap(Napi::Object o) { return napi::unwrapTagged<T>(o, Kind::kEngineTag, Kind::kEngineWhat); }
  const std::shared_ptr<Core>& core() const { return core_; }
  template <template <class> class Op>
  static Napi::ClassPropertyDescriptor<T> op() {
    return Napi::ObjectWrap<T>::template InstanceMethod<&T::template Bind<Op>>(Op<napi::Call<Kind>>::name);
  }
  /**
   * read(buf, offset?, length?) (Data) or synchronize(): a Promise that T::queueRead(call, buf,
   * offset, length) settles once the engine's queue gets there (with the range, for a read).
   */
  template <bool Data>
  Napi::Value ReadAsync(const Napi::CallbackInfo& info) {
    napi::Call<Kind> c(info, Data ? "read" : "synchronize", core_);
    Read<napi::Call<Kind>> p{};
    if (Data) p.read(c);
    return static_cast<T*>(this)->queueRead(c, p.buf, p.offset, p.length);
  }
  /** new NativeEngine(index): the device index (below 2^20). */
  static int index(const Napi::CallbackInfo& info) {
    napi::Args<Kind> a(info, "createEngine", 0);
    const int64_t i = a.size(0, "index");
    if (i >= 1 << 20) a.fail("Expected index below 2^20 but received " + std::to_string(i));
    return (int)i;
  }

 protected:
  std::shared_ptr<Core> core_;
};

/** Per-environment data of an engine addon: its NativeBuffer class, of which alloc makes instances. */
struct AddonData {
  Napi::FunctionReference bufferCtor;
};

/** alloc(dtype, length): a NativeBuffer owning a new buffer of the engine (Core::alloc). */
template <class Call>
Napi::Object alloc(const Call& c) {
  Alloc<Call> p;
  p.read(c);
  auto b = c.guard([&] { return c.core().alloc(p.dtype, p.length); });
  return Call::Buffer::wrap(c.env(), c.env().template GetInstanceData<AddonData>()->bufferCtor, std::move(b));
}

/** free(buf): drops JavaScript's reference. Idempotent, and allowed after destroy (core null). */
template <class Kind>
void free(const Napi::CallbackInfo& info, const std::shared_ptr<typename Kind::Core>& core) {
  napi::Args<Kind> a(info, "free", 0);
  const Napi::Value v = a.at(0);
  if (!napi::hasTag(v, Kind::kTag)) a.expected(Kind::kWhat, "buf", v, true);
  auto* nb = napi::NativeBuffer<Kind>::Unwrap(v.As<Napi::Object>());
  if (nb->buf() && core && nb->buf()->owner != core->id) a.fail("buf belongs to another engine");
  nb->release();
}

/** memoryStats() as NativeMemoryStats (packages/tensor/src/native-engine.ts). */
inline Napi::Object memoryStats(Napi::Env env, std::initializer_list<double> live, std::initializer_list<double> cache) {
  Napi::Object o = Napi::Object::New(env);
  const char* const keys[] = {"liveBytes", "liveBuffers", "peakLiveBytes", "cachedBytes", "cachedBuffers", "cacheLimit"};
  size_t i = 0;
  for (double v : live) o.Set(keys[i++], Napi::Number::New(env, v));
  for (double v : cache) o.Set(keys[i++], Napi::Number::New(env, v));
  return o;
}

/**
 * The methods of an engine addon's NativeEngine class T (an EngineWrap), one per Engine method,
 * named as in backend.ts, plus `extra`: T has the handlers Alloc ... Destroy and queueRead (read and
 * synchronize are EngineWrap's), and op<Op>() for every op it binds generically (T::Bind<Op> reads
 * ops::Op and calls launch()).
 */
template <class T>
std::vector<Napi::ClassPropertyDescriptor<T>> engineMethods(std::initializer_list<Napi::ClassPropertyDescriptor<T>> extra) {
  using W = Napi::ObjectWrap<T>;
  std::vector<Napi::ClassPropertyDescriptor<T>> m = {
    W::template InstanceMethod<&T::Alloc>("alloc"), W::template InstanceMethod<&T::Free>("free"),
    W::template InstanceMethod<&T::Write>("write"), W::InstanceMethod("read", &T::template ReadAsync<true>),
    W::template InstanceMethod<&T::ReadSync>("readSync"), W::InstanceMethod("synchronize", &T::template ReadAsync<false>),
    W::template InstanceMethod<&T::SynchronizeSync>("synchronizeSync"),
    W::template InstanceMethod<&T::RecordEvent>("recordEvent"), W::template InstanceMethod<&T::WaitEvent>("waitEvent"),
    W::template InstanceMethod<&T::SetThreads>("setThreads"), W::template InstanceMethod<&T::MemoryStats>("memoryStats"),
    W::template InstanceMethod<&T::TrimCache>("trimCache"), W::template InstanceMethod<&T::Destroy>("destroy"),
    T::template op<Fill>(), T::template op<Random>(), T::template op<Copy>(), T::template op<CopyToPeer>(),
    T::template op<ChannelCopy>(), T::template op<Gemm>(), T::template op<Axpy>(), T::template op<Scale>(),
    T::template op<Add>(), T::template op<BiasAdd>(), T::template op<BiasGrad>(), T::template op<Conv2dForward>(),
    T::template op<Conv2dBackwardData>(), T::template op<Conv2dBackwardFilter>(), T::template op<ReluForward>(),
    T::template op<ReluBackward>(), T::template op<TanhForward>(), T::template op<TanhBackward>(),
    T::template op<LrnForward>(), T::template op<LrnBackward>(),
    T::template op<MaxPoolForward>(), T::template op<MaxPoolBackward>(), T::template op<DropoutForward>(),
    T::template op<DropoutBackward>(), T::template op<SoftmaxCrossEntropy>(), T::template op<Softmax>(),
    T::template op<TopkCorrect>(), T::template op<SgdUpdate>(),
  };
  m.insert(m.end(), extra.begin(), extra.end());
  return m;
}

/** The module's exports NativeEngine (class T, its methods engineMethods<T>(extra)) and NativeBuffer. */
template <class T, class Kind>
void exportEngine(Napi::Env env, Napi::Object exports, std::initializer_list<Napi::ClassPropertyDescriptor<T>> extra) {
  auto* data = new AddonData();
  Napi::Function bufferCtor = napi::NativeBuffer<Kind>::Define(env);
  data->bufferCtor = Napi::Persistent(bufferCtor);
  env.SetInstanceData<AddonData>(data);
  exports.Set("NativeEngine", T::DefineClass(env, "NativeEngine", engineMethods<T>(extra)));
  exports.Set("NativeBuffer", bufferCtor);
}

}  // namespace ops
}  // namespace alexnet
