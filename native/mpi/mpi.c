/* The MPI binding (build/Release/kiln_mpi.node), built by scripts/build-native.mjs only where mpicc exists: init,
 * rank/size, in-place sum all-reduce and broadcast of Float32Arrays, barrier, finalize. One communication thread
 * makes every MPI call after init, in the order the JavaScript thread submitted them (so every rank issues the same
 * collectives in the same order), which lets a gradient bucket's all-reduce run while backward continues:
 * allReduceStart returns a handle at once, allReduceWait blocks until that reduction is done. */
#define NAPI_VERSION 8
#define _GNU_SOURCE
#include <node_api.h>
#include <mpi.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, "kiln mpi: internal N-API error"); return NULL; } } while (0)
#define FAIL(...) do { char msg_[512]; snprintf(msg_, sizeof msg_, __VA_ARGS__); napi_throw_error(env, NULL, msg_); return NULL; } while (0)

enum { OP_ALLREDUCE, OP_BCAST, OP_BARRIER };
#define MAX_JOBS 1024 /* outstanding operations at once */

typedef struct {
  int op, root, done, err;
  float *data;
  size_t count;
  napi_ref keep; /* the array stays alive while the communication thread uses it */
  int64_t id;
} job;

static job jobs[MAX_JOBS];
static int64_t next_id = 1;  /* id of the next job submitted */
static int64_t next_run = 1; /* id of the next job the communication thread runs */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv_work = PTHREAD_COND_INITIALIZER, cv_done = PTHREAD_COND_INITIALIZER;
static pthread_t comm_thread;
static int threaded = 0, stopping = 0, initialised = 0, finalised = 0, rank_ = 0, size_ = 1, provided_ = 0;

/* MPI counts are ints: larger arrays go in pieces. */
static int run_job(job *j) {
  if (j->op == OP_BARRIER) return MPI_Barrier(MPI_COMM_WORLD);
  for (size_t off = 0; off < j->count;) {
    int n = (int)((j->count - off) > (size_t)(INT_MAX / 2) ? (size_t)(INT_MAX / 2) : (j->count - off));
    int rc = j->op == OP_ALLREDUCE
      ? MPI_Allreduce(MPI_IN_PLACE, j->data + off, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD)
      : MPI_Bcast(j->data + off, n, MPI_FLOAT, j->root, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return rc;
    off += (size_t)n;
  }
  return MPI_SUCCESS;
}

static void *comm_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&mu);
  for (;;) {
    while (next_run == next_id && !stopping) pthread_cond_wait(&cv_work, &mu);
    if (next_run == next_id && stopping) break;
    job *j = &jobs[next_run % MAX_JOBS];
    pthread_mutex_unlock(&mu);
    int rc = run_job(j);
    pthread_mutex_lock(&mu);
    j->err = rc;
    j->done = 1;
    next_run++;
    pthread_cond_broadcast(&cv_done);
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

static napi_value undef(napi_env env) { napi_value u; napi_get_undefined(env, &u); return u; }

static void set_int(napi_env env, napi_value obj, const char *key, int v) {
  napi_value x;
  napi_create_int32(env, v, &x);
  napi_set_named_property(env, obj, key, x);
}

static napi_value world_object(napi_env env) {
  napi_value o;
  napi_create_object(env, &o);
  set_int(env, o, "rank", rank_);
  set_int(env, o, "size", size_);
  set_int(env, o, "threadLevel", provided_);
  napi_value t;
  napi_get_boolean(env, threaded, &t);
  napi_set_named_property(env, o, "asyncProgress", t);
  return o;
}

/* init(): MPI_Init_thread, then the communication thread. Returns { rank, size, threadLevel, asyncProgress }. */
static napi_value init(napi_env env, napi_callback_info info) {
  (void)info;
  if (finalised) FAIL("kiln mpi: init after finalize: MPI cannot be initialised twice in one process");
  if (initialised) return world_object(env);
  /* Node loads addons with RTLD_LOCAL; Open MPI's plugins resolve libmpi's symbols globally, so promote it. */
  const char *libs[] = { "libmpi.so.40", "libmpi.so.12", "libmpi.so", "libmpi.dylib" };
  for (size_t i = 0; i < sizeof libs / sizeof *libs; i++) if (dlopen(libs[i], RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD)) break;
  /* The communication thread shares the cores with the kernels' thread pool: let a rank that waits for its peers
   * yield the core instead of spinning on it (Open MPI; a value the user set wins). */
  setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
  int already = 0;
  MPI_Initialized(&already);
  if (!already) {
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided_);
    if (rc != MPI_SUCCESS) FAIL("kiln mpi: MPI_Init_thread failed with code %d", rc);
  } else {
    MPI_Query_thread(&provided_);
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  initialised = 1;
  /* SERIALIZED is enough: after init only the communication thread calls MPI. Below it, run inline (no overlap). */
  if (provided_ >= MPI_THREAD_SERIALIZED && pthread_create(&comm_thread, NULL, comm_main, NULL) == 0) threaded = 1;
  return world_object(env);
}

static int get_f32(napi_env env, napi_value v, float **data, size_t *len) {
  bool is_ta = false;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) return -1;
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  void *p;
  if (napi_get_typedarray_info(env, v, &type, len, &p, &ab, &off) != napi_ok || type != napi_float32_array) return -1;
  *data = (float *)p;
  return 0;
}

static void error_text(int rc, char *out, size_t n) {
  char s[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "code %d", rc);
  snprintf(out, n, "%s", s);
}

/* Queues one operation and returns its id; inline mode runs it now. Returns 0 and throws on error. */
static int64_t submit(napi_env env, int op, napi_value arr, int root, const char *fn) {
  char msg[512];
  if (!initialised || finalised) {
    snprintf(msg, sizeof msg, "kiln mpi: %s before init or after finalize", fn);
    napi_throw_error(env, NULL, msg);
    return 0;
  }
  float *data = NULL;
  size_t count = 0;
  if (op != OP_BARRIER && get_f32(env, arr, &data, &count)) {
    snprintf(msg, sizeof msg, "kiln mpi: %s: the buffer must be a Float32Array", fn);
    napi_throw_type_error(env, NULL, msg);
    return 0;
  }
  if (op == OP_BCAST && (root < 0 || root >= size_)) {
    snprintf(msg, sizeof msg, "kiln mpi: %s: root %d is not a rank of this world of %d", fn, root, size_);
    napi_throw_range_error(env, NULL, msg);
    return 0;
  }
  pthread_mutex_lock(&mu);
  job *j = &jobs[next_id % MAX_JOBS];
  if (j->id != 0) {
    pthread_mutex_unlock(&mu);
    snprintf(msg, sizeof msg, "kiln mpi: %s: %d operations are already outstanding; wait for some first", fn, MAX_JOBS);
    napi_throw_error(env, NULL, msg);
    return 0;
  }
  memset(j, 0, sizeof *j);
  j->op = op; j->root = root; j->data = data; j->count = count; j->id = next_id;
  if (op != OP_BARRIER) napi_create_reference(env, arr, 1, &j->keep);
  int64_t id = next_id++;
  if (threaded) pthread_cond_signal(&cv_work);
  pthread_mutex_unlock(&mu);
  if (!threaded) { j->err = run_job(j); j->done = 1; next_run++; }
  return id;
}

/* Blocks until job id is done, frees its slot; throws when MPI reported an error. */
static napi_value finish(napi_env env, int64_t id) {
  if (id <= 0 || id >= next_id) FAIL("kiln mpi: wait: %lld is not a handle of an operation started here", (long long)id);
  job *j = &jobs[id % MAX_JOBS];
  if (j->id != id) FAIL("kiln mpi: wait: operation %lld was already waited for", (long long)id);
  pthread_mutex_lock(&mu);
  while (!j->done) pthread_cond_wait(&cv_done, &mu);
  int err = j->err;
  napi_ref keep = j->keep;
  j->id = 0;
  pthread_mutex_unlock(&mu);
  if (keep) napi_delete_reference(env, keep);
  if (err != MPI_SUCCESS) {
    char s[MPI_MAX_ERROR_STRING + 64];
    error_text(err, s, sizeof s);
    FAIL("kiln mpi: a collective operation failed: %s (another rank may have died)", s);
  }
  return undef(env);
}

static int64_t handle_arg(napi_env env, napi_value v) {
  int64_t id = 0;
  if (napi_get_value_int64(env, v, &id) != napi_ok) return -1;
  return id;
}

#define ARGS(n) size_t argc = (n); napi_value argv[4]; CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL)); \
  if (argc < (size_t)(n)) FAIL("kiln mpi: %s expects %d arguments, got %zu", __func__, (int)(n), argc)

static napi_value ret_id(napi_env env, int64_t id) {
  if (id == 0) return NULL; /* exception pending */
  napi_value r;
  napi_create_int64(env, id, &r);
  return r;
}

/* allReduceStart(buf): starts the in-place sum across ranks, returns a handle for allReduceWait/allReduceTest. */
static napi_value all_reduce_start(napi_env env, napi_callback_info info) {
  ARGS(1);
  return ret_id(env, submit(env, OP_ALLREDUCE, argv[0], 0, "allReduceStart"));
}

static napi_value broadcast_start(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t root = 0;
  CHECK(napi_get_value_int32(env, argv[1], &root));
  return ret_id(env, submit(env, OP_BCAST, argv[0], root, "broadcastStart"));
}

static napi_value barrier_start(napi_env env, napi_callback_info info) {
  (void)info;
  return ret_id(env, submit(env, OP_BARRIER, NULL, 0, "barrier"));
}

static napi_value wait_op(napi_env env, napi_callback_info info) {
  ARGS(1);
  return finish(env, handle_arg(env, argv[0]));
}

/* test(handle): whether the operation is done (wait still has to be called to release it). */
static napi_value test_op(napi_env env, napi_callback_info info) {
  ARGS(1);
  int64_t id = handle_arg(env, argv[0]);
  if (id <= 0 || id >= next_id || jobs[id % MAX_JOBS].id != id) FAIL("kiln mpi: test: %lld is not an outstanding handle", (long long)id);
  pthread_mutex_lock(&mu);
  int done = jobs[id % MAX_JOBS].done;
  pthread_mutex_unlock(&mu);
  napi_value r;
  napi_get_boolean(env, done, &r);
  return r;
}

/* finalize(): waits for outstanding operations, stops the communication thread, MPI_Finalize. */
static napi_value finalize(napi_env env, napi_callback_info info) {
  (void)info;
  if (!initialised || finalised) return undef(env);
  if (threaded) {
    pthread_mutex_lock(&mu);
    stopping = 1;
    pthread_cond_signal(&cv_work);
    pthread_mutex_unlock(&mu);
    pthread_join(comm_thread, NULL);
    threaded = 0;
  }
  finalised = 1;
  MPI_Finalize();
  return undef(env);
}

static napi_value abort_job(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t code = 1;
  napi_get_value_int32(env, argv[0], &code);
  if (initialised && !finalised) MPI_Abort(MPI_COMM_WORLD, code);
  return undef(env);
}

static napi_value library_version(napi_env env, napi_callback_info info) {
  (void)info;
  char s[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(s, &len);
  napi_value r;
  napi_create_string_utf8(env, s, (size_t)len, &r);
  return r;
}

static napi_value module_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "init", NULL, init, NULL, NULL, NULL, napi_default, NULL },
    { "allReduceStart", NULL, all_reduce_start, NULL, NULL, NULL, napi_default, NULL },
    { "broadcastStart", NULL, broadcast_start, NULL, NULL, NULL, napi_default, NULL },
    { "barrierStart", NULL, barrier_start, NULL, NULL, NULL, napi_default, NULL },
    { "wait", NULL, wait_op, NULL, NULL, NULL, napi_default, NULL },
    { "test", NULL, test_op, NULL, NULL, NULL, napi_default, NULL },
    { "finalize", NULL, finalize, NULL, NULL, NULL, napi_default, NULL },
    { "abort", NULL, abort_job, NULL, NULL, NULL, napi_default, NULL },
    { "libraryVersion", NULL, library_version, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof *props, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, module_init)
