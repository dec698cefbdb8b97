// The shapes of the shaped ops (convolution, max-pool, LRN) in every native engine: plain structs of
// 64-bit sizes, read from JavaScript by native/common/napi_args.h and checked there, once for every
// addon, with the checks below, so the CPU and CUDA engines say the same thing about a bad call.
// (packages/tensor/src/geometry.ts computes them; the same fields, outH = floor((h + 2 padH - r) /
// strideH) + 1.) The CUDA engine adds two limits of its own at the end (implicit GEMM, 32-bit indices).
#pragma once
#include <stdint.h>

#include <initializer_list>
#include <utility>
#include <string>

namespace alexnet {

/** x [n, c, h, w]; w [k, c / groups, r, s]; y [n, k, outH, outW]. Group g: channels [g c/G, (g+1) c/G). */
struct ConvGeometry {
  int64_t n, c, h, w;
  int64_t k, r, s;
  int64_t strideH, strideW;
  int64_t padH, padW;
  int64_t groups;
  int64_t outH, outW;

  int64_t cg() const { return c / groups; }        // input channels per group
  int64_t kg() const { return k / groups; }        // output channels per group
  int64_t plane() const { return outH * outW; }    // output positions per sample
  int64_t colRows() const { return cg() * r * s; } // rows of one group's im2col matrix
  int64_t xSize() const { return n * c * h * w; }
  int64_t ySize() const { return n * k * outH * outW; }
  int64_t wSize() const { return k * cg() * r * s; }
  /** Multiply-adds x 2 of the forward pass (also of each backward pass). */
  double flops() const { return 2.0 * (double)n * (double)k * (double)plane() * (double)colRows(); }
};

/** x [n, c, h, w] -> y [n, c, outH, outW]; padding cells count as -Infinity. */
struct PoolGeometry {
  int64_t n, c, h, w;
  int64_t kh, kw;
  int64_t strideH, strideW;
  int64_t padH, padW;
  int64_t outH, outW;

  int64_t xSize() const { return n * c * h * w; }
  int64_t ySize() const { return n * c * outH * outW; }
};

/** §3.3: scale = k + alpha * sum of squares over `size` neighbouring channels; y = x scale^-beta. */
struct LrnParams {
  int64_t size;
  double alpha, beta, k;
};

/** Every dimension and count of a shaped op is below this (int32 indexing on the GPU, argmax, im2col). */
constexpr int64_t kDimLimit = (int64_t)1 << 31;

/** The product of xs, or -1 when it overflows int64 (all xs >= 0). */
inline int64_t checkedProduct(std::initializer_list<int64_t> xs) {
  int64_t r = 1;
  for (int64_t x : xs) {
    if (x != 0 && r > INT64_MAX / x) return -1;
    r *= x;
  }
  return r;
}

namespace detail {
inline std::string dimProblem(std::initializer_list<std::pair<const char*, int64_t>> dims) {
  for (const auto& d : dims)
    if (d.second >= kDimLimit)
      return std::string("Expected geometry.") + d.first + " below 2^31 but received " + std::to_string(d.second);
  return "";
}
inline std::string belowOne(const char* a, int64_t av, const char* b, int64_t bv) {
  if (av >= 1 && bv >= 1) return "";
  return std::string("Expected geometry.") + a + " and geometry." + b + " of at least 1 but received " +
         std::to_string(av) + " and " + std::to_string(bv);
}
inline int64_t outSize(int64_t in, int64_t pad, int64_t window, int64_t stride) {
  const int64_t e = in + 2 * pad - window;
  return e >= 0 ? e / stride + 1 : 0;
}
}  // namespace detail

/** Why g is not a convolution the engines can run (a sentence naming the field), or "" when it is. */
inline std::string convProblem(const ConvGeometry& g) {
  std::string p = detail::dimProblem({{"n", g.n}, {"c", g.c}, {"h", g.h}, {"w", g.w}, {"k", g.k}, {"r", g.r},
                                      {"s", g.s}, {"strideH", g.strideH}, {"strideW", g.strideW}, {"padH", g.padH},
                                      {"padW", g.padW}, {"groups", g.groups}, {"outH", g.outH}, {"outW", g.outW}});
  if (p.empty()) p = detail::belowOne("r", g.r, "s", g.s);
  if (p.empty()) p = detail::belowOne("strideH", g.strideH, "strideW", g.strideW);
  if (!p.empty()) return p;
  if (g.groups < 1) return "Expected geometry.groups of at least 1 but received 0";
  if (g.c % g.groups || g.k % g.groups)
    return "geometry.groups (" + std::to_string(g.groups) + ") must divide c (" + std::to_string(g.c) + ") and k (" +
           std::to_string(g.k) + ")";
  const int64_t oh = detail::outSize(g.h, g.padH, g.r, g.strideH), ow = detail::outSize(g.w, g.padW, g.s, g.strideW);
  if (g.outH != oh || g.outW != ow)
    return "geometry.outH x outW is " + std::to_string(g.outH) + "x" + std::to_string(g.outW) +
           " but h, w, r, s, stride and padding give " + std::to_string(oh) + "x" + std::to_string(ow);
  if (checkedProduct({g.n, g.c, g.h, g.w}) < 0 || checkedProduct({g.n, g.k, g.outH, g.outW}) < 0 ||
      checkedProduct({g.k, g.c, g.r, g.s}) < 0 || checkedProduct({g.c, g.r, g.s, g.n, g.outH, g.outW}) < 0)
    return "the geometry's sizes overflow 64-bit integers";
  // im2col indexes one sample's input, and the spatial map one sample's taps, with int32 offsets
  if (checkedProduct({g.c, g.h, g.w}) >= kDimLimit)
    return "Expected geometry.c * h * w below 2^31 but received " + std::to_string(g.c * g.h * g.w);
  if (checkedProduct({g.r, g.s, g.outH, g.outW}) >= kDimLimit)
    return "Expected geometry.r * s * outH * outW below 2^31 but received " +
           std::to_string(g.r * g.s * g.outH * g.outW);
  return "";
}

/** Why g is not a max-pool the engines can run (a sentence naming the field), or "" when it is. */
inline std::string poolProblem(const PoolGeometry& g) {
  std::string p = detail::dimProblem({{"n", g.n}, {"c", g.c}, {"h", g.h}, {"w", g.w}, {"kh", g.kh}, {"kw", g.kw},
                                      {"strideH", g.strideH}, {"strideW", g.strideW}, {"padH", g.padH},
                                      {"padW", g.padW}, {"outH", g.outH}, {"outW", g.outW}});
  if (p.empty()) p = detail::belowOne("kh", g.kh, "kw", g.kw);
  if (p.empty()) p = detail::belowOne("strideH", g.strideH, "strideW", g.strideW);
  if (!p.empty()) return p;
  if (checkedProduct({g.h, g.w}) >= kDimLimit)
    return "Expected geometry.h * w below 2^31 (argmax is int32) but received " + std::to_string(g.h * g.w);
  const int64_t oh = detail::outSize(g.h, g.padH, g.kh, g.strideH), ow = detail::outSize(g.w, g.padW, g.kw, g.strideW);
  if (g.outH != oh || g.outW != ow)
    return "geometry.outH x outW is " + std::to_string(g.outH) + "x" + std::to_string(g.outW) +
           " but h, w, kh, kw, stride and padding give " + std::to_string(oh) + "x" + std::to_string(ow);
  if (checkedProduct({g.n, g.c, g.h, g.w}) < 0 || checkedProduct({g.n, g.c, g.outH, g.outW}) < 0)
    return "the geometry's sizes overflow 64-bit integers";
  return "";
}

// ---- the CUDA engine's own limits (its kernels index within a sample in 32 bits) ----

/** Why the window of a checked geometry does not fit its padded input, or "". */
inline std::string windowProblem(int64_t h, int64_t w, int64_t padH, int64_t padW, int64_t kh, int64_t kw,
                                 const char* what) {
  if (h + 2 * padH >= kh && w + 2 * padW >= kw) return "";
  return "the " + std::to_string(kh) + "x" + std::to_string(kw) + " " + what + " is larger than the padded input " +
         std::to_string(h + 2 * padH) + "x" + std::to_string(w + 2 * padW);
}

/** convProblem, the kernel within the padded input, and the implicit GEMM's 32-bit indexing. */
inline std::string cudaConvProblem(const ConvGeometry& g) {
  std::string p = convProblem(g);
  if (p.empty()) p = windowProblem(g.h, g.w, g.padH, g.padW, g.r, g.s, "kernel");
  if (p.empty() && checkedProduct({g.cg(), g.r, g.s, g.outH, g.outW, g.n}) > 0x7fffffffLL * 64)
    p = "the convolution is too large for 32-bit indexing";
  return p;
}

/** poolProblem and the window within the padded input. */
inline std::string cudaPoolProblem(const PoolGeometry& g) {
  std::string p = poolProblem(g);
  if (p.empty()) p = windowProblem(g.h, g.w, g.padH, g.padW, g.kh, g.kw, "window");
  return p;
}

}  // namespace alexnet
