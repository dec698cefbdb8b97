// Winograd F(2x2, 3x3), F(4x4, 3x3) and F(2x2, 5x5) for stride-1 convolutions (winograd.cpp), used by conv.cpp
// for the forward pass and the data gradient.
#pragma once
#include <cstdint>

#include "../../common/geometry.h"
#include "../threadpool.h"

namespace alexnet {

/** One Winograd convolution: x [n, cTotal, h, w] (group g: channels g c..), y [n, kTotal, outH, outW]. */
struct WinogradShape {
  int64_t n, c, k, groups;  // c, k: channels per group
  int64_t h, w, outH, outW, pad;
  int64_t cTotal, kTotal;
};

enum class WinogradPass : int { Forward = 0, BackwardData = 1, BackwardFilter = 2 };

/**
 * The variant a convolution gets for `pass`: 0 (direct, im2col + GEMM), or the output tile m of
 * F(m x m, r x r): 2 or 4 for 3x3 kernels, 2 for 5x5 (stride 1, padding at most r - 1).
 */
int winogradVariant(const ConvGeometry& g, WinogradPass pass);
/** The forced variant for `pass` (-1: automatic, 0: direct, 2, 4): ALEXNET_CONV_WINOGRAD, or setWinogradSetting. */
int winogradSetting(WinogradPass pass);
void setWinogradSetting(WinogradPass pass, int variant);

/**
 * y = x * w (r x r correlation, stride 1, padding p.pad, plus bias[g k + ko] when given), by
 * F(variant x variant, r x r). w is [groups k, c, r, r]; flipped: w is [groups c, k, r, r] and used
 * rotated by 180 degrees (the data gradient: x = dy, y = dx, padding r - 1 - the forward's).
 */
void winogradConv(ThreadPool& pool, int variant, int r, const float* x, const float* w, bool flipped,
                  const float* bias, float* y, const WinogradShape& p);

/** dw = beta dw + the filter gradient of the convolution p (x its input, dy its output's gradient), by Winograd. */
void winogradFilterGrad(ThreadPool& pool, int variant, int r, const float* x, const float* dy, float* dw, float beta,
                        const WinogradShape& p);

/**
 * Strided convolutions with ceil(r / stride) = 3 (conv1: 11x11, stride 4), groups 1, as the stride-1
 * 3x3 convolution of the input's stride x stride phases (space_to_depth.cpp): the Winograd variant
 * that convolution gets for `pass` (0: not taken), the forward pass, and the filter gradient.
 */
int spaceToDepthVariant(const ConvGeometry& g, WinogradPass pass);
void spaceToDepthConv(ThreadPool& pool, int variant, const float* x, const float* w, const float* bias, float* y,
                      const ConvGeometry& g);
void spaceToDepthFilterGrad(ThreadPool& pool, int variant, const float* x, const float* dy, float* dw, float beta,
                            const ConvGeometry& g);

/**
 * The convolution g's forward pass / filter gradient by Winograd when a variant takes it (stride 1,
 * or a strided one by space to depth): true when done, false to leave it to im2col + GEMM.
 */
bool winogradForward(ThreadPool& pool, const float* x, const float* w, const float* bias, float* y, const ConvGeometry& g);
bool winogradBackwardFilter(ThreadPool& pool, const float* x, const float* dy, float* dw, float beta, const ConvGeometry& g);

}  // namespace alexnet
