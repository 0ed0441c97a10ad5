/*
 * Test harness: serves a realized vfu_ctx_t from a background thread.
 *
 * The test creates the context with LIBVFIO_USER_FLAG_ATTACH_NB, sets it up,
 * realizes it and calls vfu_test_server_start().  The server thread loops:
 *
 *   poll(vfu_get_poll_fd(ctx) -- re-read every iteration -- and a wake pipe,
 *        50 ms);
 *   not attached: vfu_attach_ctx(); 0 -> attached (attaches++), EAGAIN ->
 *        keep polling, other errors -> attach_errors++ and keep listening;
 *   attached: vfu_run_ctx() until it returns 0 or -1; -1/ENOTCONN ->
 *        detached (disconnects++), keep listening; -1/EBUSY -> busy++ and
 *        retry every 10 ms (or at once after vfu_test_server_call());
 *        -1/other -> run_errors++.
 *
 * Device callbacks therefore run on the server thread.  The test must not
 * touch the context from its own thread while the server runs; use
 * vfu_test_server_call() to run code (vfu_irq_trigger, vfu_device_quiesced,
 * ...) on the server thread between requests.  vfu_test_server_stop() joins
 * the thread; it does not destroy the context.
 */
#ifndef VFU_TEST_HARNESS_H
#define VFU_TEST_HARNESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <libvfio-user.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VFU_TEST_POLL_MS 50

typedef int vfu_test_server_fn(vfu_ctx_t *ctx, void *arg);

struct vfu_test_server {
    vfu_ctx_t *ctx;
    int poll_timeout_ms; /* VFU_TEST_POLL_MS by default */

    /* Counters, updated by the server thread (read with atomic_load or the
     * accessors below). */
    atomic_uint attaches;      /* successful vfu_attach_ctx */
    atomic_uint attach_errors; /* vfu_attach_ctx errors except EAGAIN */
    atomic_uint disconnects;   /* vfu_run_ctx -1/ENOTCONN */
    atomic_uint run_errors;    /* vfu_run_ctx -1, other errno */
    atomic_uint busy;          /* vfu_run_ctx -1/EBUSY */
    atomic_ulong requests;     /* sum of vfu_run_ctx results > 0 */
    atomic_int last_attach_errno;
    atomic_int last_run_errno;
    atomic_bool attached;

    /* Internal. */
    pthread_t thread;
    bool started;
    atomic_bool stop;
    int wake[2];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    vfu_test_server_fn *call_fn;
    void *call_arg;
    int call_ret;
    int call_errno;
    bool call_pending;
};

/*
 * Starts serving `ctx` on a new thread.  0, or -1 with errno.  `srv` is
 * (re)initialised: counters start at 0.
 */
int vfu_test_server_start(struct vfu_test_server *srv, vfu_ctx_t *ctx);

/* Stops and joins the thread (idempotent); the context is left alone and
 * may then be destroyed by the caller.  Returns 0. */
int vfu_test_server_stop(struct vfu_test_server *srv);

/*
 * Runs fn(ctx, arg) on the server thread between requests and returns its
 * result, with errno as fn left it.  Runs it directly if the server is not
 * running or if called from the server thread itself (e.g. in a callback).
 */
int vfu_test_server_call(struct vfu_test_server *srv, vfu_test_server_fn *fn, void *arg);

/* Counter accessors. */
unsigned vfu_test_server_attaches(struct vfu_test_server *srv);
unsigned vfu_test_server_disconnects(struct vfu_test_server *srv);
unsigned vfu_test_server_attach_errors(struct vfu_test_server *srv);
unsigned vfu_test_server_run_errors(struct vfu_test_server *srv);
bool vfu_test_server_is_attached(struct vfu_test_server *srv);

/*
 * Wait until the counter reaches at least `n` (polling every millisecond),
 * up to timeout_ms.  0, or -1/ETIMEDOUT.
 */
int vfu_test_server_wait_attaches(struct vfu_test_server *srv, unsigned n, int timeout_ms);
int vfu_test_server_wait_disconnects(struct vfu_test_server *srv, unsigned n, int timeout_ms);

/*
 * Waits up to timeout_ms for pred(arg) to become true, polling every
 * millisecond.  Returns true if it did.
 */
bool vfu_test_wait_until(bool (*pred)(void *arg), void *arg, int timeout_ms);

/*
 * Writes "/tmp/vfu-test-<pid>-<n>-<name>.sock" into buf (n counts calls in
 * this process) and unlinks any stale file at that path.  Returns buf, or
 * NULL (errno ENAMETOOLONG) if it does not fit in `len` or in sun_path.
 */
char *vfu_test_sock_path(char *buf, size_t len, const char *name);

/*
 * A vfu_log_fn_t that prints "[vfu <level>] msg" on stderr when the
 * environment variable VFU_TEST_VERBOSE is set (non-empty), else nothing.
 * Use: vfu_setup_log(ctx, vfu_test_log_stderr, LOG_DEBUG).
 */
void vfu_test_log_stderr(vfu_ctx_t *ctx, int level, const char *msg);

#ifdef __cplusplus
}
#endif

#endif /* VFU_TEST_HARNESS_H */
