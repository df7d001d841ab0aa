/* Keeping freed memory in the process. On a VM the first write to a fresh page costs about 10 us, far more than
 * the kernels that fill it, and glibc gives large blocks back to the system when they are freed (mmap for blocks
 * over 128 KiB, trimming the heap top over 128 KiB). Tensor storage is allocated and freed by V8 through malloc,
 * so Kiln raises both thresholds: a freed tensor's pages stay mapped and the next tensor of that size reuses them
 * warm, as numpy's results reuse the memory of the ones just freed. The cache is bounded (the trim threshold)
 * and kiln_memory_release() hands it back. Other C libraries keep their own policy (their allocators already
 * cache more than glibc does). */
#include "kiln.h"
#include <stdint.h>
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(__GLIBC__)
static size_t configured_bound = 0;
#endif

#if defined(__GLIBC__)
/* Fresh memory faulted in once at load, then freed to the top of the heap, where the raised trim threshold keeps
 * it mapped: the first tensors and GEMM packing buffers of a process land on warm pages instead of faulting each
 * one in (about 10 us a page on a VM; a 1024x1024 result is 1024 pages, a 256x256 one's 64 pages cost twice its
 * GEMM). Dropped tensors are freed only at the next young-generation collection (every 4 MiB of fresh tensor
 * memory, src/backend/native/index.ts), so a process's first results, before any collection, all need fresh
 * memory. One block just under the mmap threshold set below (so it comes from the heap), advised huge, which
 * makes the warming a few dozen faults, not thousands. */
#define WARM_BYTES ((size_t)31 << 20)
static void warm_heap(size_t bytes) {
  char *p = malloc(bytes);
  if (!p) return;
  kiln_memory_advise_huge(p, bytes);
  for (size_t b = 0; b < bytes; b += 4096) p[b] = 0;
  free(p);
}
#endif

size_t kiln_memory_init(size_t bound) {
#if defined(__GLIBC__)
  if (bound == 0 || configured_bound != 0) return configured_bound;
  /* blocks up to 32 MiB (glibc's largest allowed threshold) come from the heap instead of their own mapping */
  if (mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1 && mallopt(M_TRIM_THRESHOLD, (int)(bound > 0x7fffffff ? 0x7fffffff : bound)) == 1) {
    configured_bound = bound;
    warm_heap(bound < WARM_BYTES ? bound : WARM_BYTES);
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

/* Big fresh buffers ask for transparent huge pages, as numpy does for arrays of 4 MiB and more: one fault per
 * 2 MiB instead of 512, each of which costs about 10 us on a VM (where the kernel's default is "madvise").
 * Only the 2 MiB-aligned interior is advised; pages already touched keep their small pages. A hint: a kernel
 * without transparent huge pages ignores it, and other systems have nothing to do. */
void kiln_memory_advise_huge(void *p, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  static int enabled = -1; /* KILN_HUGE_PAGES=0 turns the advice off */
  if (enabled < 0) {
    const char *v = getenv("KILN_HUGE_PAGES");
    enabled = !(v && v[0] == '0' && v[1] == 0);
  }
  if (!enabled) return;
  const uintptr_t huge = (uintptr_t)2 << 20;
  uintptr_t begin = ((uintptr_t)p + huge - 1) & ~(huge - 1);
  uintptr_t end = ((uintptr_t)p + bytes) & ~(huge - 1);
  if (end > begin) (void)madvise((void *)begin, end - begin, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}
