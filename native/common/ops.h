// The ops of the Engine interface (packages/tensor/src/backend.ts) as argument lists, read and checked
// once for every engine addon: `read` takes an op's arguments, in the interface's order, from an
// Args/Call (napi_args.h) and checks that each buffer holds what the sizes need. An addon binds an op
// to its engine with one launch() overload: native/cpu/addon.cpp queues the CPU kernel,
// native/cuda/addon.cpp launches the CUDA one. Adding an op: docs/architecture.md, "Adding an op".
#pragma once
#include <cstdint>
#include <cstring>

#include "napi_args.h"

namespace alexnet {
namespace ops {

template <class A>
using H = typename A::Handle;

// ---- memory (each addon runs these itself; the arguments are the same) ----

template <class A>
struct Alloc {
  static constexpr const char* name = "alloc";
  int dtype;
  int64_t length;
  void read(const A& a) {
    const std::string d = a.oneOf(0, "dtype", {"float32", "int32", "uint8", "float64"});
    if (d == "float64") a.failType("this engine stores float32, int32 and uint8; float64 is the reference engine's");
    dtype = parseDType(d);
    length = a.size(1, "length");
  }
};

/** write(buf, data, offset?): data a typed array of buf's dtype; buf[offset, offset + data.length). */
template <class A>
struct Write {
  static constexpr const char* name = "write";
  H<A> buf;
  napi::HostArray data;
  int64_t offset;
  void read(const A& a) {
    buf = a.buf(0, "buf", kAnyDType);
    data = a.typedArray(1, "data", buf->dtype);
    offset = a.given(2) ? a.size(2, "offset") : 0;
    const int64_t len = (int64_t)data.length;
    if (offset > buf->length || len > buf->length - offset)
      a.fail("offset " + std::to_string(offset) + " + data.length " + std::to_string(len) + " exceeds buf.length " +
             std::to_string(buf->length));
  }
  size_t bytes() const { return data.length * (size_t)dtypeBytes(buf->dtype); }
};

/** read(buf, offset?, length?) and readSync: the range [offset, offset + length) of buf. */
template <class A>
struct Read {
  static constexpr const char* name = "read";
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

template <class A>
struct SetThreads {
  static constexpr const char* name = "setThreads";
  int threads;
  void read(const A& a) { threads = (int)a.positive(0, "threads", 1024); }
};

// ---- data movement ----

/** fill(buf, value): the 32-bit pattern of value as buf's dtype (float32, ToInt32, or ToUint8 repeated). */
template <class A>
struct Fill {
  static constexpr const char* name = "fill";
  H<A> buf;
  uint32_t pattern;
  void read(const A& a) {
    buf = a.buf(0, "buf", kAnyDType);
    const float f = (float)a.number(1, "value");
    const Napi::Number v = a.at(1).template As<Napi::Number>();
    if (buf->dtype == kFloat32) {
      std::memcpy(&pattern, &f, 4);
    } else if (buf->dtype == kInt32) {
      const int32_t i = v.Int32Value();  // JavaScript's ToInt32, as an Int32Array store
      std::memcpy(&pattern, &i, 4);
    } else {
      pattern = (v.Uint32Value() & 0xFFu) * 0x01010101u;  // ToUint8, in every byte
    }
  }
};

template <class A>
struct Random {
  static constexpr const char* name = "random";
  H<A> buf;
  bool normal;
  uint64_t seed, offset;
  double a, b;  // uniform: [a, b); normal: mean a, standard deviation b
  void read(const A& x) {
    buf = x.f32buf(0, "buf");
    normal = x.oneOf(1, "dist", {"uniform", "normal"}) == "normal";
    seed = (uint64_t)x.size(2, "seed");
    offset = (uint64_t)x.size(3, "offset");
    a = x.number(4, "a");
    b = x.number(5, "b");
  }
};

template <class A>
struct Copy {
  static constexpr const char* name = "copy";
  H<A> src, dst;
  int64_t srcOffset, dstOffset, length;
  void read(const A& a) {
    src = a.buf(0, "src", kAnyDType);
    srcOffset = a.size(1, "srcOffset");
    dst = a.buf(2, "dst", kAnyDType);
    dstOffset = a.size(3, "dstOffset");
    length = a.size(4, "length");
    a.sameDType(src, "src", dst, "dst");
    a.need(src, "src", srcOffset + length, "srcOffset + length is");
    a.need(dst, "dst", dstOffset + length, "dstOffset + length is");
  }
};

/** copyToPeer(src, peer, dst, length): dst a buffer of the peer engine. */
template <class A>
struct CopyToPeer {
  static constexpr const char* name = "copyToPeer";
  H<A> src, dst;
  std::shared_ptr<typename A::Core> peer;
  int64_t length;
  void read(const A& a) {
    src = a.buf(0, "src", kAnyDType);
    peer = a.engine(1, "peer");
    if (!peer) a.fail("peer was destroyed");
    dst = a.buf(2, "dst", kAnyDType, false, peer->id);
    length = a.size(3, "length");
    a.sameDType(src, "src", dst, "dst");
    a.need(src, "src", length, "length is");
    a.need(dst, "dst", length, "length is");
  }
};

/** dst[i, dstOffset + j, :] = src[i, srcOffset + j, :] for i < n, j < count (planes of hw). */
template <class A>
struct ChannelCopy {
  static constexpr const char* name = "channelCopy";
  H<A> src, dst;
  int64_t n, hw, srcC, srcOffset, dstC, dstOffset, count;
  void read(const A& a) {
    src = a.buf(0, "src", kAnyDType);
    dst = a.buf(1, "dst", kAnyDType);
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

template <class A>
struct Gemm {
  static constexpr const char* name = "gemm";
  bool transA, transB;
  int64_t m, n, k;
  float alpha, beta;
  H<A> a, b, c;
  void read(const A& x) {
    transA = x.boolean(0, "transA"), transB = x.boolean(1, "transB");
    m = x.dim(2, "m"), n = x.dim(3, "n"), k = x.dim(4, "k");
    alpha = x.f32(5, "alpha");
    a = x.f32buf(6, "a"), b = x.f32buf(7, "b");
    beta = x.f32(8, "beta");
    c = x.f32buf(9, "c");
    x.need(a, "a", x.mul({m, k}), "m * k is");
    x.need(b, "b", x.mul({k, n}), "k * n is");
    x.need(c, "c", x.mul({m, n}), "m * n is");
  }
};

template <class A>
struct Axpy {
  static constexpr const char* name = "axpy";
  float alpha;
  H<A> x, y;
  void read(const A& a) {
    alpha = a.f32(0, "alpha");
    x = a.f32buf(1, "x"), y = a.f32buf(2, "y");
    a.sameLength(x, "x", y, "y");
  }
};

template <class A>
struct Scale {
  static constexpr const char* name = "scale";
  float alpha;
  H<A> x;
  void read(const A& a) { alpha = a.f32(0, "alpha"), x = a.f32buf(1, "x"); }
};

template <class A>
struct Add {
  static constexpr const char* name = "add";
  H<A> a, b, out;
  void read(const A& x) {
    a = x.f32buf(0, "a"), b = x.f32buf(1, "b"), out = x.f32buf(2, "out");
    x.sameLength(a, "a", b, "b");
    x.sameLength(a, "a", out, "out");
  }
};

/** biasAdd(y, bias, n, c, hw) and biasGrad(dy, db, n, c, hw, beta): y [n, c, hw], bias [c]. */
template <class A, bool Grad>
struct Bias {
  static constexpr const char* name = Grad ? "biasGrad" : "biasAdd";
  H<A> y, bias;
  int64_t n, c, hw;
  float beta = 0;
  void read(const A& a) {
    const char* yn = Grad ? "dy" : "y";
    const char* bn = Grad ? "db" : "bias";
    y = a.f32buf(0, yn), bias = a.f32buf(1, bn);
    n = a.dim(2, "n"), c = a.dim(3, "c"), hw = a.dim(4, "hw");
    if (Grad) beta = a.f32(5, "beta");
    a.need(y, yn, a.mul({n, c, hw}), "n * c * hw is");
    a.need(bias, bn, c, "c is");
  }
};
template <class A>
using BiasAdd = Bias<A, false>;
template <class A>
using BiasGrad = Bias<A, true>;

// ---- convolution ----

template <class A>
struct Conv2dForward {
  static constexpr const char* name = "conv2dForward";
  H<A> x, w, bias, y;
  ConvGeometry g;
  void read(const A& a) {
    x = a.f32buf(0, "x"), w = a.f32buf(1, "w"), bias = a.f32buf(2, "bias", true), y = a.f32buf(3, "y");
    g = a.conv(4);
    a.need(x, "x", g.xSize(), "the geometry needs");
    a.need(w, "w", g.wSize(), "the geometry needs");
    if (bias) a.need(bias, "bias", g.k, "the geometry needs");
    a.need(y, "y", g.ySize(), "the geometry needs");
  }
};

template <class A>
struct Conv2dBackwardData {
  static constexpr const char* name = "conv2dBackwardData";
  H<A> dy, w, dx;
  ConvGeometry g;
  void read(const A& a) {
    dy = a.f32buf(0, "dy"), w = a.f32buf(1, "w"), dx = a.f32buf(2, "dx");
    g = a.conv(3);
    a.need(dy, "dy", g.ySize(), "the geometry needs");
    a.need(w, "w", g.wSize(), "the geometry needs");
    a.need(dx, "dx", g.xSize(), "the geometry needs");
  }
};

template <class A>
struct Conv2dBackwardFilter {
  static constexpr const char* name = "conv2dBackwardFilter";
  H<A> x, dy, dw, db;
  ConvGeometry g;
  float beta;
  void read(const A& a) {
    x = a.f32buf(0, "x"), dy = a.f32buf(1, "dy"), dw = a.f32buf(2, "dw"), db = a.f32buf(3, "db", true);
    g = a.conv(4);
    beta = a.f32(5, "beta");
    a.need(x, "x", g.xSize(), "the geometry needs");
    a.need(dy, "dy", g.ySize(), "the geometry needs");
    a.need(dw, "dw", g.wSize(), "the geometry needs");
    if (db) a.need(db, "db", g.k, "the geometry needs");
  }
};

// ---- activations ----

template <class A>
struct ReluForward {
  static constexpr const char* name = "reluForward";
  H<A> x, y;
  void read(const A& a) {
    x = a.f32buf(0, "x"), y = a.f32buf(1, "y");
    a.sameLength(x, "x", y, "y");
  }
};

template <class A>
struct ReluBackward {
  static constexpr const char* name = "reluBackward";
  H<A> y, dy, dx;
  void read(const A& a) {
    y = a.f32buf(0, "y"), dy = a.f32buf(1, "dy"), dx = a.f32buf(2, "dx");
    a.sameLength(y, "y", dy, "dy");
    a.sameLength(y, "y", dx, "dx");
  }
};

// ---- LRN (§3.3): lrnForward(x, y, p, n, c, hw), lrnBackward(x, y, dy, dx, p, n, c, hw) ----

template <class A, bool Backward>
struct Lrn {
  static constexpr const char* name = Backward ? "lrnBackward" : "lrnForward";
  H<A> x, y, dy, dx;  // dy, dx: backward only
  LrnParams p;
  int64_t n, c, hw;
  void read(const A& a) {
    const size_t at = Backward ? 4 : 2;
    x = a.f32buf(0, "x"), y = a.f32buf(1, "y");
    if (Backward) dy = a.f32buf(2, "dy"), dx = a.f32buf(3, "dx");
    p = a.lrn(at);
    n = a.dim(at + 1, "n"), c = a.dim(at + 2, "c"), hw = a.dim(at + 3, "hw");
    const int64_t total = a.mul({n, c, hw});
    a.need(x, "x", total, "n * c * hw is");
    a.need(y, "y", total, "n * c * hw is");
    if (Backward) a.need(dy, "dy", total, "n * c * hw is"), a.need(dx, "dx", total, "n * c * hw is");
  }
};
template <class A>
using LrnForward = Lrn<A, false>;
template <class A>
using LrnBackward = Lrn<A, true>;

// ---- max pooling (§3.4) ----

template <class A>
struct MaxPoolForward {
  static constexpr const char* name = "maxPoolForward";
  H<A> x, y, argmax;
  PoolGeometry g;
  void read(const A& a) {
    x = a.f32buf(0, "x"), y = a.f32buf(1, "y"), argmax = a.i32buf(2, "argmax");
    g = a.pool(3);
    a.need(x, "x", g.xSize(), "the geometry needs");
    a.need(y, "y", g.ySize(), "the geometry needs");
    a.need(argmax, "argmax", g.ySize(), "the geometry needs");
  }
};

template <class A>
struct MaxPoolBackward {
  static constexpr const char* name = "maxPoolBackward";
  H<A> dy, argmax, dx;
  PoolGeometry g;
  void read(const A& a) {
    dy = a.f32buf(0, "dy"), argmax = a.i32buf(1, "argmax"), dx = a.f32buf(2, "dx");
    g = a.pool(3);
    a.need(dy, "dy", g.ySize(), "the geometry needs");
    a.need(argmax, "argmax", g.ySize(), "the geometry needs");
    a.need(dx, "dx", g.xSize(), "the geometry needs");
  }
};

// ---- dropout (§4.2): dropoutForward(x, y, p, seed, offset), dropoutBackward(dy, dx, ...) ----

template <class A, bool Backward>
struct Dropout {
  static constexpr const char* name = Backward ? "dropoutBackward" : "dropoutForward";
  H<A> x, y;
  double p;
  uint64_t seed, offset;
  void read(const A& a) {
    const char* xn = Backward ? "dy" : "x";
    const char* yn = Backward ? "dx" : "y";
    x = a.f32buf(0, xn), y = a.f32buf(1, yn);
    a.sameLength(x, xn, y, yn);
    p = a.probability(2, "p");
    seed = (uint64_t)a.size(3, "seed");
    offset = (uint64_t)a.size(4, "offset");
  }
};
template <class A>
using DropoutForward = Dropout<A, false>;
template <class A>
using DropoutBackward = Dropout<A, true>;

// ---- loss and metrics ----

template <class A>
struct SoftmaxCrossEntropy {
  static constexpr const char* name = "softmaxCrossEntropy";
  H<A> logits, labels, loss, dlogits;
  int64_t n, c;
  void read(const A& a) {
    logits = a.f32buf(0, "logits"), labels = a.i32buf(1, "labels");
    loss = a.f32buf(2, "loss"), dlogits = a.f32buf(3, "dlogits", true);
    n = a.dim(4, "n"), c = a.dim(5, "c");
    a.need(logits, "logits", a.mul({n, c}), "n * c is");
    a.need(labels, "labels", n, "n is");
    a.need(loss, "loss", 1, "the loss needs");
    if (dlogits) a.need(dlogits, "dlogits", a.mul({n, c}), "n * c is");
  }
};

template <class A>
struct Softmax {
  static constexpr const char* name = "softmax";
  H<A> x, y;
  int64_t n, c;
  void read(const A& a) {
    x = a.f32buf(0, "x"), y = a.f32buf(1, "y");
    n = a.dim(2, "n"), c = a.dim(3, "c");
    a.need(x, "x", a.mul({n, c}), "n * c is");
    a.need(y, "y", a.mul({n, c}), "n * c is");
  }
};

template <class A>
struct TopkCorrect {
  static constexpr const char* name = "topkCorrect";
  H<A> logits, labels, out;
  int64_t n, c, k;
  void read(const A& a) {
    logits = a.f32buf(0, "logits"), labels = a.i32buf(1, "labels"), out = a.i32buf(2, "out");
    n = a.dim(3, "n"), c = a.dim(4, "c"), k = a.dim(5, "k");
    a.need(logits, "logits", a.mul({n, c}), "n * c is");
    a.need(labels, "labels", n, "n is");
    a.need(out, "out", 1, "the count needs");
  }
};

// ---- SGD (§5) ----

template <class A>
struct SgdUpdate {
  static constexpr const char* name = "sgdUpdate";
  H<A> w, g, v;
  float lr, momentum, weightDecay;
  bool paper;
  void read(const A& a) {
    w = a.f32buf(0, "w"), g = a.f32buf(1, "g"), v = a.f32buf(2, "v");
    a.sameLength(w, "w", g, "g");
    a.sameLength(w, "w", v, "v");
    const Napi::Object p = a.object(3, "params");
    lr = (float)a.numField(p, "params", "lr");
    momentum = (float)a.numField(p, "params", "momentum");
    weightDecay = (float)a.numField(p, "params", "weightDecay");
    paper = a.oneOfValue(p.Get("form"), "params.form", {"paper", "pytorch"}) == "paper";
  }
};

}  // namespace ops
}  // namespace alexnet
