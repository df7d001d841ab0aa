/* Runtime CPU feature detection: picks AVX-512F, AVX2+FMA, NEON or portable C once; KILN_ISA overrides
 * (scalar|avx2|avx512) for tests and benchmarks. The build targets the architecture baseline. */
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
#else
  return KILN_ISA_SCALAR;
#endif
}

const char *kiln_isa_name(int isa) {
  switch (isa) {
    case KILN_ISA_AVX512: return "avx512";
    case KILN_ISA_AVX2: return "avx2";
    case KILN_ISA_NEON: return "neon";
    default: return "scalar";
  }
}

int kiln_set_isa(int isa) {
  int best = kiln_isa_best();
  if (isa > best) return -1;
  if (isa == KILN_ISA_NEON && best != KILN_ISA_NEON) return -1;
  if (best == KILN_ISA_NEON && isa != KILN_ISA_NEON && isa != KILN_ISA_SCALAR) return -1;
  isa_current = isa;
  return 0;
}

int kiln_isa(void) {
  if (isa_current < 0) {
    int isa = kiln_isa_best();
    const char *env = getenv("KILN_ISA");
    if (env) {
      for (int i = 0; i <= KILN_ISA_AVX512; i++)
        if (strcmp(env, kiln_isa_name(i)) == 0 && kiln_set_isa(i) == 0) isa = i;
    }
    isa_current = isa;
  }
  return isa_current;
}

/* AVX512_BF16: vdpbf16ps. KILN_BF16=0 turns it off (the rounded float32 fallback runs), for tests and benchmarks. */
static int bf16_on = -1;

int kiln_bf16_supported(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return kiln_isa_best() == KILN_ISA_AVX512 && __builtin_cpu_supports("avx512bf16");
#else
  return 0;
#endif
}

int kiln_set_bf16(int on) {
  if (on && !kiln_bf16_supported()) return -1;
  bf16_on = on ? 1 : 0;
  return 0;
}

int kiln_bf16(void) {
  if (bf16_on < 0) {
    const char *env = getenv("KILN_BF16");
    bf16_on = kiln_bf16_supported() && !(env && strcmp(env, "0") == 0);
  }
  return bf16_on && kiln_isa() == KILN_ISA_AVX512;
}
