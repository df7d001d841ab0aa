/* Runtime CPU feature detection: picks AVX-512F, AVX2+FMA, NEON or portable C once; KILN_ISA overrides
 * (scalar|avx2|avx512) for tests and benchmarks. The build targets the architecture baseline. The WebAssembly
 * build (compiled with -msimd128) has SIMD128 and the portable path; its host sets the ISA through kiln_set_isa,
 * since a wasm module has no environment to read. */
#include "kiln.h"
#include <stdlib.h>
#include <string.h>

static int isa_current = -1;

int kiln_isa_best(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return KILN_ISA_AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return KILN_ISA_AVX2;
  return KILN_ISA_SCALAR;
#elif defined(__aarch64__)
  return KILN_ISA_NEON;
#elif defined(__wasm_simd128__)
  return KILN_ISA_SIMD128;
#else
  return KILN_ISA_SCALAR;
#endif
}

const char *kiln_isa_name(int isa) {
  switch (isa) {
    case KILN_ISA_AVX512: return "avx512";
    case KILN_ISA_AVX2: return "avx2";
    case KILN_ISA_NEON: return "neon";
    case KILN_ISA_SIMD128: return "simd128";
    default: return "scalar";
  }
}

int kiln_set_isa(int isa) {
  int best = kiln_isa_best();
  if (isa < 0 || isa >= KILN_ISA_COUNT) return -1;
  /* SIMD128 stands alone: the wasm build has it and scalar, nothing else has it */
  if ((isa == KILN_ISA_SIMD128) != (best == KILN_ISA_SIMD128) && isa != KILN_ISA_SCALAR) return -1;
  if (best == KILN_ISA_SIMD128) { isa_current = isa; return 0; }
  if (isa > best) return -1;
  if (isa == KILN_ISA_NEON && best != KILN_ISA_NEON) return -1;
  if (best == KILN_ISA_NEON && isa != KILN_ISA_NEON && isa != KILN_ISA_SCALAR) return -1;
  isa_current = isa;
  return 0;
}

int kiln_isa(void) {
  if (isa_current < 0) {
    int isa = kiln_isa_best();
#if defined(__wasm__)
    const char *env = NULL; /* no environment inside wasm: the host calls kiln_set_isa */
#else
    const char *env = getenv("KILN_ISA");
#endif
    if (env) {
      for (int i = 0; i <= KILN_ISA_AVX512; i++)
        if (strcmp(env, kiln_isa_name(i)) == 0 && kiln_set_isa(i) == 0) isa = i;
    }
    isa_current = isa;
  }
  return isa_current;
}
