/* Keeping freed memory in the process. On a VM the first write to a fresh page costs about 10 us, far more than
 * the kernels that fill it, and glibc gives large blocks back to the system when they are freed (mmap for blocks
 * over 128 KiB, trimming the heap top over 128 KiB). Tensor storage is allocated and freed by V8 through malloc,
 * so Kiln raises both thresholds: a freed tensor's pages stay mapped and the next tensor of that size reuses them
 * warm, as numpy's results reuse the memory of the ones just freed. The cache is bounded (the trim threshold)
 * and kiln_memory_release() hands it back. Other C libraries keep their own policy (their allocators already
 * cache more than glibc does). */
#include "kiln.h"
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static size_t configured_bound = 0;

size_t kiln_memory_init(size_t bound) {
#if defined(__GLIBC__)
  if (bound == 0 || configured_bound != 0) return configured_bound;
  /* blocks up to 32 MiB (glibc's largest allowed threshold) come from the heap instead of their own mapping */
  if (mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1 && mallopt(M_TRIM_THRESHOLD, (int)(bound > 0x7fffffff ? 0x7fffffff : bound)) == 1) {
    configured_bound = bound;
  }
  return configured_bound;
#else
  (void)bound;
  return 0;
#endif
}

void kiln_memory_release(void) {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}
