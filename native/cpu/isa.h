// Run-time ISA selection. The whole addon is compiled for the baseline of its target (x86-64 or
// ARM); the SIMD micro-kernels carry function target attributes and are picked here, so one binary
// loads everywhere and uses AVX-512 where the CPU has it. ALEXNET_CPU_ISA=avx512|avx2|portable (or
// setIsa from JavaScript) forces a lower path, so the tests cover every path on one machine.
#pragma once

namespace alexnet {

enum class Isa : int { Portable = 0, Avx2 = 1, Avx512 = 2 };

/** The best ISA this CPU supports. */
Isa detectIsa();
/** The ISA kernels use now (detectIsa() capped by ALEXNET_CPU_ISA and setIsa). */
Isa activeIsa();
/** Caps the ISA; returns false when the CPU lacks it. */
bool setIsa(Isa isa);
const char* isaName(Isa isa);
bool parseIsa(const char* name, Isa* out);

/**
 * The GEMMs' input precision (docs/cpu-engine.md, "bf16"): fp32, or bf16 inputs (rounded to nearest
 * even from fp32) with fp32 products summed in fp32 by AVX512_BF16's vdpbf16ps. Process-wide, read
 * when an op runs; ALEXNET_CPU_PRECISION=fp32|bf16 sets it at load, setPrecision from JavaScript.
 */
enum class Precision : int { Fp32 = 0, Bf16 = 1 };

/** Whether this CPU has AVX512_BF16 (vdpbf16ps) besides the AVX-512 path's features. */
bool cpuHasBf16();
/** What was asked for (ALEXNET_CPU_PRECISION or setPrecision). */
Precision requestedPrecision();
void setRequestedPrecision(Precision p);
/** What the GEMMs use now: bf16 when requested, the CPU has AVX512_BF16 and the AVX-512 path is active. */
Precision activePrecision();
/** Why bf16 is not in effect although it was requested; null otherwise. */
const char* bf16Unavailable();
/** The value of ALEXNET_CPU_PRECISION when it is neither fp32 nor bf16 (ignored: fp32), else null. */
const char* precisionEnvInvalid();
const char* precisionName(Precision p);
bool parsePrecision(const char* name, Precision* out);

#if (defined(__x86_64__) || defined(__i386__)) && !defined(ALEXNET_NO_X86)
#define ALEXNET_X86 1
#define ALEXNET_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma,avx2")))
#define ALEXNET_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define ALEXNET_TARGET_BF16 \
  __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,fma,avx2")))
#else
#define ALEXNET_X86 0
#endif

#if ALEXNET_X86
namespace isa_detail {
template <auto Body, class... Args>
ALEXNET_TARGET_AVX512 void avx512(Args... args) { Body(args...); }
template <auto Body, class... Args>
ALEXNET_TARGET_AVX2 void avx2(Args... args) { Body(args...); }
}  // namespace isa_detail
#endif

/**
 * Body(args...) compiled for the active ISA: AVX-512, AVX2 with FMA, or the baseline. Body must be
 * always inline (ALEXNET_INLINE), so that each of the three copies compiles it for its own ISA
 * (the vectoriser then uses that ISA's registers); the choice is made per call.
 */
template <auto Body, class... Args>
void dispatchIsa(Args... args) {
#if ALEXNET_X86
  const Isa isa = activeIsa();
  if (isa == Isa::Avx512) return isa_detail::avx512<Body>(args...);
  if (isa == Isa::Avx2) return isa_detail::avx2<Body>(args...);
#endif
  Body(args...);
}

}  // namespace alexnet
