{
  # The native CPU engine. Sources come from ./native when the package was packed (npm pack copies
  # them there: prepack runs ../../native/copy-into-package.mjs) and from the monorepo's ../../native otherwise.
  # Baseline ISA for every file (the addon loads on any x86-64 and on ARM); the AVX2 / AVX-512
  # micro-kernels carry function target attributes and are chosen at run time (native/cpu/isa.cpp).
  "variables": {
    "native_dir": "<!(node -p \"require('fs').existsSync('native')?'native':'../../native'\")"
  },
  "targets": [
    {
      "target_name": "alexnet_cpu",
      "sources": [
        "<(native_dir)/cpu/addon.cpp",
        "<(native_dir)/cpu/engine.cpp",
        "<(native_dir)/cpu/isa.cpp",
        "<(native_dir)/cpu/kernels/conv.cpp",
        "<(native_dir)/cpu/kernels/elementwise.cpp",
        "<(native_dir)/cpu/kernels/gemm.cpp",
        "<(native_dir)/cpu/kernels/gemm_bf16.cpp",
        "<(native_dir)/cpu/kernels/loss.cpp",
        "<(native_dir)/cpu/kernels/lrn.cpp",
        "<(native_dir)/cpu/kernels/pool.cpp",
        "<(native_dir)/cpu/kernels/space_to_depth.cpp",
        "<(native_dir)/cpu/kernels/winograd.cpp"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<(native_dir)"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions", "-O2"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++14", "-std=gnu++17", "-O2"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-fno-math-errno", "-ffp-contract=off", "-pthread"],
      "ldflags": ["-pthread"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "GCC_OPTIMIZATION_LEVEL": "3",
        "OTHER_CPLUSPLUSFLAGS": ["-fno-math-errno", "-ffp-contract=off"]
      },
      "msvs_settings": {
        "VCCLCompilerTool": { "ExceptionHandling": 1, "AdditionalOptions": ["/std:c++17", "/O2"] }
      }
    }
  ]
}
