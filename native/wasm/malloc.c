/* The wasm build's allocator: malloc, free, calloc, realloc, aligned_alloc and posix_memalign for the kernels (on
 * any pool thread) and for the host's buffers (kiln_wasm_alloc). wasi-libc's own malloc takes no lock, and the
 * pool's workers allocate too, so this one serialises on a spin lock (allocations are few and short: per kernel
 * call, never per element).
 *
 * Blocks come in size classes, 4 per power of two (at most 25% slack); a freed block goes on its class's free list
 * and the next request of that class takes it back, which is what repeated training steps ask for. New blocks are
 * cut from the top of the heap, which grows with memory.grow. Every payload is 64-byte aligned. Memory is never
 * given back to the system: wasm memory cannot shrink. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdatomic.h>

#define ALIGN 64u
#define HEADER 16u               /* in front of each payload: the block's class */
#define PAGE 65536u
#define NCLASS 128               /* 4 per power of two from 64 bytes up to 2^32 */

extern unsigned char __heap_base;

typedef struct free_block { struct free_block *next; } free_block;

static free_block *free_lists[NCLASS];
static uintptr_t top = 0;        /* next unused byte of the heap (a block start: payload - HEADER) */
static uintptr_t end_ = 0;       /* end of memory */
static atomic_flag lock = ATOMIC_FLAG_INIT;

/* Another thread's memory.grow reaches this thread's bulk-memory instructions late. V8 11.3 (Node 20) bounds-checks
 * memory.fill and memory.copy (memset, memcpy) against a size each thread caches, and refreshes it only when the
 * thread handles the grow's interrupt: a pool worker that memset a block the caller had just carved from new pages
 * trapped with "memory access out of bounds", and the caller then waited for it forever (1 run in 10 of the wasm
 * conformance tests on a loaded 2-core machine, 2026-12-07). A grow by 0 pages refreshes the calling thread's size,
 * so every block is handed out only after its thread can see it. */
void kiln_wasm_see_memory(void) { __builtin_wasm_memory_grow(0, 0); }

static void take_lock(void) { while (atomic_flag_test_and_set_explicit(&lock, memory_order_acquire)) {} }
static void drop_lock(void) { atomic_flag_clear_explicit(&lock, memory_order_release); }

/* class c holds blocks (header + payload) of class_size(c) bytes, a multiple of ALIGN */
static uint64_t class_size(int c) {
  int p = c / 4 + 6, q = c % 4;          /* 2^p * (1 + q/4), rounded up to ALIGN */
  uint64_t s = ((uint64_t)1 << p) + ((uint64_t)q << (p - 2));
  return (s + ALIGN - 1) / ALIGN * ALIGN;
}

static int class_of(uint64_t need) {
  int c = 0;
  while (c < NCLASS && class_size(c) < need) c++;
  return c;
}

/* Cuts `size` bytes from the top of the heap, growing memory as needed; 0 when memory is exhausted. */
static uintptr_t carve(uint64_t size) {
  if (top == 0) {
    /* first block: its payload (after the header) lands on an ALIGN boundary */
    top = ((uintptr_t)&__heap_base + HEADER + ALIGN - 1) / ALIGN * ALIGN - HEADER;
    end_ = (uintptr_t)__builtin_wasm_memory_size(0) * PAGE;
  }
  if (size > (uint64_t)UINTPTR_MAX - top) return 0;
  uint64_t want = (uint64_t)top + size;
  if (want > end_) {
    uint64_t pages = (want - end_ + PAGE - 1) / PAGE;
    if (__builtin_wasm_memory_grow(0, (size_t)pages) == (size_t)-1) return 0;
    end_ = (uintptr_t)__builtin_wasm_memory_size(0) * PAGE;
  }
  uintptr_t block = top;
  top += size;
  return block;
}

void *malloc(size_t n) {
  int c = class_of((uint64_t)n + HEADER);
  if (c >= NCLASS) return NULL;
  take_lock();
  void *p = NULL;
  free_block *f = free_lists[c];
  if (f) {
    free_lists[c] = f->next;
    p = f;
  } else {
    uintptr_t block = carve(class_size(c));
    if (block) {
      *(uint32_t *)block = (uint32_t)c;
      p = (void *)(block + HEADER);
    }
  }
  drop_lock();
  if (p) kiln_wasm_see_memory();
  return p;
}

void free(void *p) {
  if (!p) return;
  int c = (int)*(uint32_t *)((uintptr_t)p - HEADER);
  take_lock();
  free_block *f = p;
  f->next = free_lists[c];
  free_lists[c] = f;
  drop_lock();
}

void *calloc(size_t n, size_t size) {
  if (size && n > SIZE_MAX / size) return NULL;
  void *p = malloc(n * size);
  if (p) memset(p, 0, n * size);
  return p;
}

void *realloc(void *p, size_t n) {
  if (!p) return malloc(n);
  int c = (int)*(uint32_t *)((uintptr_t)p - HEADER);
  uint64_t have = class_size(c) - HEADER;
  if ((uint64_t)n <= have) return p;
  void *q = malloc(n);
  if (q) { memcpy(q, p, (size_t)have); free(p); }
  return q;
}

void *aligned_alloc(size_t align, size_t n) { return align <= ALIGN ? malloc(n) : NULL; }

int posix_memalign(void **out, size_t align, size_t n) {
  void *p = aligned_alloc(align, n);
  if (!p) return 12; /* ENOMEM */
  *out = p;
  return 0;
}

/* The host's allocations (tensor storage, scratch for copies, worker stacks); 0 when memory is exhausted. */
__attribute__((export_name("kiln_wasm_alloc"))) void *kiln_wasm_alloc(size_t n) { return malloc(n); }
__attribute__((export_name("kiln_wasm_free"))) void kiln_wasm_free(void *p) { free(p); }
