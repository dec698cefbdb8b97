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

#if (defined(__x86_64__) || defined(__i386__)) && !defined(ALEXNET_NO_X86)
#define ALEXNET_X86 1
#define ALEXNET_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma,avx2")))
#define ALEXNET_TARGET_AVX2 __attribute__((target("avx2,fma")))
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
