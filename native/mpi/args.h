// Argument reading for the N-API surface of @alexnet/distributed, in the one error style of every
// @alexnet addon (sharp's):
//   "allReduce: Expected one of 'sum', 'max', 'min' for op but received mean of type string"
//
// The shared helpers of native/common/napi_args.h (in the monorepo, and in the packed tarball, which
// carries native/common): adist::Args is alexnet::napi::Args with this addon's (buffer-less) Kind.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "../common/napi_args.h"

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
