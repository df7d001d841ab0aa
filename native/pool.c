/* Persistent thread pool: workers are created once, spin briefly for new work, then sleep on a condition
 * variable. Work is split in fixed chunks independent of timing, so results repeat bitwise.
 * The WebAssembly build has no pthreads: its host starts the workers (Web Workers or worker_threads on the shared
 * memory) and each calls kiln_worker_main; they sleep and wake with memory.atomic.wait32 / notify instead of a
 * condition variable. Both builds share the job protocol, the barrier and parallel_for below. */
#define _GNU_SOURCE
#include "kiln.h"
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#if defined(__wasm__)
#define KILN_WASM_POOL 1
#define CPU_RELAX() ((void)0)
static void wasm_block(_Atomic int *word, int expected);
#define YIELD_ON(word, expected) wasm_block((_Atomic int *)(word), (int)(expected))
#else
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif
#define YIELD_ON(word, expected) sched_yield()
#endif

#define MAX_THREADS 256
/* An idle worker spins about 75 us (4000 pauses of ~19 ns on Zen 5) before sleeping: long enough to stay hot
 * between the kernels of a training step, short enough not to burn a core that other processes need. Waits inside
 * a job (barrier, completion) spin longer, then yield. */
#define IDLE_SPIN 4000
#define SPIN_ROUNDS 20000
/* After a job started with kiln_parallel_linger, workers spin this many rounds instead (~1 ms): a decoding step
 * comes every few hundred microseconds with JavaScript in between, and a worker that went to sleep costs the next
 * step a wake-up of tens of microseconds on a virtual machine. */
static _Atomic int linger = IDLE_SPIN;
void kiln_parallel_linger(kiln_task_fn fn, void *arg, int n, int spins) {
  atomic_store_explicit(&linger, spins > IDLE_SPIN ? spins : IDLE_SPIN, memory_order_relaxed);
  kiln_parallel(fn, arg, n);
  atomic_store_explicit(&linger, IDLE_SPIN, memory_order_relaxed);
}

#if defined(KILN_WASM_POOL)
/* Job word: the low 8 bits are the number of workers taking part in the job (tids 1 .. members), the rest counts
 * jobs. One word, so a worker that checks in while a job is being set up either sees the job with itself counted
 * in `pending` or not at all. */
#define MEMBER_BITS 8
static int pool_size = 1;          /* caller + workers the host was asked to start */
static int active_threads = 1;     /* threads used by kernels, <= pool_size */
static _Atomic int generation = 0; /* the job word */
static _Atomic int pending = 0;
static _Atomic int checked_in[MAX_THREADS]; /* 1 once worker tid runs */
static kiln_task_fn job_fn;
static void *job_arg;
static int job_n;
static int lock_depth = 0; /* one JavaScript thread calls kernels per memory: the lock only needs to nest */
static int caller_may_block = 0; /* a browser's main thread may not wait (memory.atomic.wait traps there) */
extern unsigned char __heap_base;
void kiln_wasm_see_memory(void); /* wasm/malloc.c */

/* memory.atomic.wait32 in a function of its own, never inlined, whose caller needs nothing from it. Node 20's V8
 * (11.3) does not keep the values its baseline compiler (Liftoff) holds in registers across an inlined wait: after a
 * timed-out wait the barrier compared the word against a clobbered `sense` and left early, so threads drifted a
 * barrier apart (wrong decoding logits, a hung CI run). A call spills every value first. */
__attribute__((noinline)) static void wasm_wait(_Atomic int *word, int expected, long long timeout_ns) {
#if defined(__wasm_atomics__)
  __builtin_wasm_memory_atomic_wait32((int *)word, expected, timeout_ns);
#else
  (void)word; (void)expected; (void)timeout_ns;
#endif
}

/* No sched_yield in wasm: a thread that has spun long enough sleeps on the word it waits for instead (up to 1 ms; the
 * thread that changes the word wakes it), so on a loaded machine it gives its core to the thread it waits for. The
 * caller's stack lies below the heap (--stack-first), workers' stacks in it: that tells who is asking. */
static void wasm_block(_Atomic int *word, int expected) {
  int on_caller = (uintptr_t)__builtin_frame_address(0) < (uintptr_t)&__heap_base;
  if (!on_caller || caller_may_block) wasm_wait(word, expected, 1000000);
}
static void wasm_wake(_Atomic int *word) {
#if defined(__wasm_atomics__)
  __builtin_wasm_memory_atomic_notify((int *)word, 0xffffffffu);
#else
  (void)word;
#endif
}

static _Atomic int bar_count = 0;
static _Atomic unsigned bar_sense = 0;

void kiln_pool_configure(int n, int caller_blocks) {
  caller_may_block = caller_blocks;
  if (n < 1) n = 1;
  if (n > MAX_THREADS) n = MAX_THREADS;
  pool_size = n;
  active_threads = n;
}

void kiln_worker_main(int tid) {
  int seen = atomic_load_explicit(&generation, memory_order_acquire);
  atomic_store_explicit(&checked_in[tid], 1, memory_order_release); /* after reading the job word: see kiln_parallel */
  int idle = IDLE_SPIN;
  for (;;) {
    int g;
    int spins = 0;
    while ((g = atomic_load_explicit(&generation, memory_order_acquire)) == seen) {
      if (++spins < idle * 4) continue; /* no pause instruction in wasm: a spin is ~4x shorter */
      wasm_wait(&generation, seen, -1);
    }
    seen = g;
    if (tid > (g & ((1 << MEMBER_BITS) - 1))) continue; /* not counted in this job */
    kiln_wasm_see_memory(); /* the caller may have grown memory for this job's buffers (wasm/malloc.c) */
    if (tid < job_n) job_fn(job_arg, tid, job_n);
    idle = atomic_load_explicit(&linger, memory_order_relaxed);
    if (atomic_fetch_sub_explicit(&pending, 1, memory_order_acq_rel) == 1) wasm_wake(&pending);
  }
}

int kiln_workers_ready(void) {
  int n = 0;
  while (n + 1 < pool_size && atomic_load_explicit(&checked_in[n + 1], memory_order_acquire)) n++;
  return n;
}

int kiln_pool_size(void) { return pool_size; }
int kiln_threads(void) { return active_threads; }
void kiln_set_threads(int n) {
  if (n < 1) n = 1;
  if (n > pool_size) n = pool_size;
  active_threads = n;
}

void kiln_lock(void) { lock_depth++; }
void kiln_unlock(void) { lock_depth--; }

void kiln_parallel(kiln_task_fn fn, void *arg, int n) {
  if (n > active_threads) n = active_threads;
  /* workers 1 .. members have checked in (each read the job word before saying so, so each will see this job) */
  int members = 0;
  while (members + 1 < n && members + 1 < (1 << MEMBER_BITS) &&
         atomic_load_explicit(&checked_in[members + 1], memory_order_acquire)) members++;
  if (n > members + 1) n = members + 1;
  if (n <= 1) { fn(arg, 0, 1); return; }
  job_fn = fn;
  job_arg = arg;
  job_n = n;
  atomic_store(&bar_count, 0);
  atomic_store_explicit(&pending, members, memory_order_release);
  int g = atomic_load_explicit(&generation, memory_order_relaxed);
  int next = (int)((((unsigned)g >> MEMBER_BITS) + 1u) << MEMBER_BITS) | members;
  atomic_store_explicit(&generation, next, memory_order_release);
#if defined(__wasm_atomics__)
  __builtin_wasm_memory_atomic_notify((int *)&generation, 0xffffffffu); /* all: a sleeper may be a non-member */
#endif
  fn(arg, 0, n);
  /* spins, then (where the caller may block) sleeps until the last worker is done */
  int spins = 0, left;
  while ((left = atomic_load_explicit(&pending, memory_order_acquire)) != 0) {
    if (++spins >= SPIN_ROUNDS) YIELD_ON(&pending, left);
  }
}
#else
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t kernel_lock;
static int pool_size = 1;          /* caller + workers */
static int active_threads = 1;     /* threads used by kernels, <= pool_size */
static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static _Atomic unsigned long generation = 0;
static _Atomic int pending = 0;
static kiln_task_fn job_fn;
static void *job_arg;
static int job_n;

/* barrier state */
static _Atomic int bar_count = 0;
static _Atomic unsigned bar_sense = 0;

static void *worker(void *p) {
  int tid = (int)(intptr_t)p;
  unsigned long seen = 0;
  int idle = IDLE_SPIN;
  for (;;) {
    unsigned long g;
    int spins = 0;
    while ((g = atomic_load_explicit(&generation, memory_order_acquire)) == seen) {
      if (++spins < idle) { CPU_RELAX(); continue; }
      pthread_mutex_lock(&mtx);
      while ((g = atomic_load_explicit(&generation, memory_order_acquire)) == seen) pthread_cond_wait(&cv, &mtx);
      pthread_mutex_unlock(&mtx);
      break;
    }
    seen = g;
    if (tid < job_n) job_fn(job_arg, tid, job_n);
    idle = atomic_load_explicit(&linger, memory_order_relaxed);
    atomic_fetch_sub_explicit(&pending, 1, memory_order_acq_rel);
  }
  return NULL;
}

static void pool_init(void) {
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init(&kernel_lock, &ma);
  pthread_mutexattr_destroy(&ma);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  const char *env = getenv("KILN_THREADS");
  if (env && atoi(env) > 0) n = atoi(env);
  if (n < 1) n = 1;
  if (n > MAX_THREADS) n = MAX_THREADS;
  pool_size = (int)n;
  for (int t = 1; t < pool_size; t++) {
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1 << 20);
    if (pthread_create(&th, &attr, worker, (void *)(intptr_t)t) != 0) { pool_size = t; break; }
    pthread_detach(th);
    pthread_attr_destroy(&attr);
  }
  active_threads = pool_size;
}

int kiln_pool_size(void) { pthread_once(&once, pool_init); return pool_size; }
int kiln_threads(void) { pthread_once(&once, pool_init); return active_threads; }
void kiln_set_threads(int n) {
  pthread_once(&once, pool_init);
  if (n < 1) n = 1;
  if (n > pool_size) n = pool_size;
  active_threads = n;
}

void kiln_lock(void) { pthread_once(&once, pool_init); pthread_mutex_lock(&kernel_lock); }
void kiln_unlock(void) { pthread_mutex_unlock(&kernel_lock); }

void kiln_parallel(kiln_task_fn fn, void *arg, int n) {
  pthread_once(&once, pool_init);
  if (n > pool_size) n = pool_size;
  if (n <= 1) { fn(arg, 0, 1); return; }
  pthread_mutex_lock(&kernel_lock);
  job_fn = fn;
  job_arg = arg;
  job_n = n;
  atomic_store(&bar_count, 0);
  atomic_store_explicit(&pending, pool_size - 1, memory_order_release);
  pthread_mutex_lock(&mtx);
  atomic_fetch_add_explicit(&generation, 1, memory_order_acq_rel);
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mtx);
  fn(arg, 0, n);
  int spins = 0;
  while (atomic_load_explicit(&pending, memory_order_acquire) != 0) {
    if (++spins < SPIN_ROUNDS) CPU_RELAX(); else sched_yield();
  }
  pthread_mutex_unlock(&kernel_lock);
}

#endif

void kiln_barrier(int n) {
  if (n <= 1) return;
  unsigned sense = atomic_load_explicit(&bar_sense, memory_order_acquire);
  if (atomic_fetch_add_explicit(&bar_count, 1, memory_order_acq_rel) == n - 1) {
    atomic_store_explicit(&bar_count, 0, memory_order_relaxed);
    atomic_store_explicit(&bar_sense, sense + 1, memory_order_release);
#if defined(KILN_WASM_POOL)
    wasm_wake((_Atomic int *)&bar_sense);
#endif
    return;
  }
  int spins = 0;
  while (atomic_load_explicit(&bar_sense, memory_order_acquire) == sense) {
    if (++spins < SPIN_ROUNDS) CPU_RELAX(); else YIELD_ON(&bar_sense, sense);
  }
}

typedef struct { size_t count, chunk; kiln_range_fn fn; void *arg; } range_job;

static void range_task(void *p, int tid, int n) {
  range_job *j = p;
  size_t chunks = (j->count + j->chunk - 1) / j->chunk;
  for (size_t c = (size_t)tid; c < chunks; c += (size_t)n) {
    size_t b = c * j->chunk, e = b + j->chunk;
    if (e > j->count) e = j->count;
    j->fn(j->arg, b, e);
  }
}

void kiln_parallel_for(size_t count, size_t chunk, size_t min_parallel, kiln_range_fn fn, void *arg) {
  if (count == 0) return;
  if (chunk == 0) chunk = 1;
  int n = kiln_threads();
  if (count < min_parallel || n <= 1 || count <= chunk) { fn(arg, 0, count); return; }
  size_t chunks = (count + chunk - 1) / chunk;
  if ((size_t)n > chunks) n = (int)chunks;
  range_job j = { count, chunk, fn, arg };
  kiln_parallel(range_task, &j, n);
}
