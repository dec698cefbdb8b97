// Element types of device buffers, numbered alike in every engine (packages/tensor/src/backend.ts's
// DType: 'float32' | 'float64' | 'int32' | 'uint8'; only the reference engine stores float64).
#pragma once
#include <string>

namespace alexnet {

enum DType : int { kFloat32 = 0, kFloat64 = 1, kInt32 = 2, kUint8 = 3 };

/** Any dtype (an argument of copy, fill, read and write). */
constexpr int kAnyDType = -1;

inline const char* dtypeName(int d) {
  switch (d) {
    case kFloat32: return "float32";
    case kFloat64: return "float64";
    case kInt32: return "int32";
    default: return "uint8";
  }
}

inline int dtypeBytes(int d) { return d == kFloat64 ? 8 : d == kUint8 ? 1 : 4; }

/** The code of a dtype name, or -1. */
inline int parseDType(const std::string& s) {
  for (int d : {kFloat32, kFloat64, kInt32, kUint8})
    if (s == dtypeName(d)) return d;
  return -1;
}

}  // namespace alexnet
