// Argument reading for the N-API surface of @alexnet/distributed, in the one error style of every
// @alexnet addon (sharp's):
//   "allReduce: Expected one of 'sum', 'max', 'min' for op but received mean of type string"
//
// The shared helpers of native/common/napi_args.h are used when that header is there (as in the
// monorepo and in the packed tarball, which carries native/common): adist::Args is then
// alexnet::napi::Args with this addon's (buffer-less) Kind. Without it (or with -DADIST_OWN_ARGS) a
// minimal stand-in below offers the same few readers with the same messages, so the addon still builds.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#if !defined(ADIST_OWN_ARGS) && __has_include("../common/napi_args.h")
#include "../common/napi_args.h"
#define ADIST_SHARED_ARGS 1

namespace adist {

// This addon passes typed arrays and plain numbers, never NativeBuffers or engine objects: its Kind
// only satisfies the template.
struct MpiKind {
  struct Buffer {
    int64_t length = 0;
    int dtype = 0;
    uint64_t owner = 0;
  };
  struct Core {
    uint64_t id = 0;
  };
  static constexpr const char* kWhat = "an @alexnet/distributed buffer";
  static constexpr napi_type_tag kTag = {0x6d70692d62756666ULL, 0x8c3f1a2b4d5e6f70ULL};
  static constexpr const char* kEngineWhat = "an @alexnet/distributed communicator";
  static constexpr napi_type_tag kEngineTag = {0x6d70692d636f6d6dULL, 0x1f2e3d4c5b6a7988ULL};
  static std::shared_ptr<Core> coreOf(Napi::Object) { return nullptr; }
  static int64_t hostBytes(const Buffer&) { return 0; }
};

using Args = alexnet::napi::Args<MpiKind>;
inline std::string Describe(const Napi::Value& v) { return alexnet::napi::describe(v); }

}  // namespace adist

#else
#define ADIST_SHARED_ARGS 0

namespace adist {

inline std::string Describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined of type undefined";
  if (v.IsNull()) return "null";
  if (v.IsFunction()) return "a function";
  if (v.IsArray()) return "an array";
  if (v.IsTypedArray()) return "a typed array";
  if (v.IsObject()) return "an object";
  if (v.IsSymbol()) return "a symbol";
  const char* type = v.IsNumber() ? "number" : v.IsString() ? "string" : v.IsBoolean() ? "boolean" : "bigint";
  return v.ToString().Utf8Value() + " of type " + type;
}

// The subset of alexnet::napi::Args that this addon reads with.
class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* op, uint64_t) : info_(info), op_(op) {}
  Napi::Env env() const { return info_.Env(); }
  Napi::Value at(size_t i) const { return i < info_.Length() ? info_[i] : info_.Env().Undefined(); }
  bool given(size_t i) const { return !at(i).IsUndefined(); }
  [[noreturn]] void fail(const std::string& msg) const { throw Napi::Error::New(env(), std::string(op_) + ": " + msg); }
  [[noreturn]] void failType(const std::string& msg) const { throw Napi::TypeError::New(env(), std::string(op_) + ": " + msg); }
  [[noreturn]] void expected(const std::string& what, const std::string& name, const Napi::Value& v, bool wrongType) const {
    const std::string msg = "Expected " + what + " for " + name + " but received " + Describe(v);
    if (wrongType) failType(msg);
    fail(msg);
  }
  int64_t size(size_t i, const std::string& name) const { return sizeOf(at(i), name); }
  int64_t sizeOf(const Napi::Value& v, const std::string& name) const {
    if (!v.IsNumber()) expected("a non-negative integer", name, v, true);
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0) expected("a non-negative integer", name, v, false);
    return static_cast<int64_t>(d);
  }
  std::string string(size_t i, const std::string& name) const {
    const Napi::Value v = at(i);
    if (!v.IsString()) expected("a string", name, v, true);
    return v.As<Napi::String>().Utf8Value();
  }
  std::string oneOf(size_t i, const std::string& name, std::initializer_list<const char*> choices) const {
    const Napi::Value v = at(i);
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
  bool isTypedArray(size_t i) const { return at(i).IsTypedArray(); }

 private:
  const Napi::CallbackInfo& info_;
  const char* op_;
};

}  // namespace adist
#endif

namespace adist {

// An integer in [lo, hi].
inline int64_t IntIn(const Args& a, size_t i, const std::string& name, int64_t lo, int64_t hi) {
  const int64_t d = a.size(i, name);  // a non-negative integer (lo is never negative here)
  if (d < lo || d > hi) a.expected("an integer from " + std::to_string(lo) + " to " + std::to_string(hi), name, a.at(i), false);
  return d;
}

// A device address or stream handle: a BigInt in [0, 2^64).
inline uint64_t AddressOf(const Args& a, const Napi::Value& v, const std::string& name) {
  if (!v.IsBigInt()) a.expected("a bigint device address", name, v, true);
  bool lossless = false;
  const uint64_t r = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) a.expected("a bigint in [0, 2^64)", name, v, false);
  return r;
}

}  // namespace adist
