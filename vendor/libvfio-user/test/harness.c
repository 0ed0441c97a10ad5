/*
 * Test harness: see harness.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Milliseconds to wait before retrying vfu_run_ctx after EBUSY. */
#define BUSY_RETRY_MS 10

static void
sleep_ms(unsigned ms)
{
    struct timespec ts = {
        .tv_sec = ms / 1000,
        .tv_nsec = (long)(ms % 1000) * 1000000L,
    };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
drain_wake(struct vfu_test_server *srv)
{
    char buf[64];

    while (read(srv->wake[0], buf, sizeof(buf)) > 0) {
    }
}

static void
kick(struct vfu_test_server *srv)
{
    char b = 1;
    ssize_t n;

    do {
        n = write(srv->wake[1], &b, 1);
    } while (n < 0 && errno == EINTR);
    /* EAGAIN: the pipe is full, the thread is awake anyway */
}

/* Runs a pending cross-thread call, if any. */
static void
run_pending_call(struct vfu_test_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    if (srv->call_pending) {
        errno = 0;
        srv->call_ret = srv->call_fn(srv->ctx, srv->call_arg);
        srv->call_errno = errno;
        srv->call_pending = false;
        pthread_cond_broadcast(&srv->cond);
    }
    pthread_mutex_unlock(&srv->lock);
}

static void *
server_thread(void *arg)
{
    struct vfu_test_server *srv = arg;
    bool busy = false;

    while (!atomic_load(&srv->stop)) {
        struct pollfd pfd[2];
        int timeout;

        run_pending_call(srv);

        pfd[0].fd = srv->wake[0];
        pfd[0].events = POLLIN;
        pfd[0].revents = 0;
        /* while a quiesce is pending, the connection is not polled (it may
         * stay readable and would spin); vfu_run_ctx is retried instead */
        pfd[1].fd = busy ? -1 : vfu_get_poll_fd(srv->ctx);
        pfd[1].events = POLLIN;
        pfd[1].revents = 0;
        timeout = busy ? BUSY_RETRY_MS : srv->poll_timeout_ms;

        if (poll(pfd, 2, timeout) < 0 && errno != EINTR) {
            sleep_ms(1);
        }
        if (pfd[0].revents != 0) {
            drain_wake(srv);
        }
        if (atomic_load(&srv->stop)) {
            break;
        }
        run_pending_call(srv);

        if (!atomic_load(&srv->attached)) {
            if (vfu_attach_ctx(srv->ctx) != 0) {
                int err = errno;

                if (err != EAGAIN && err != EWOULDBLOCK) {
                    atomic_fetch_add(&srv->attach_errors, 1);
                    atomic_store(&srv->last_attach_errno, err);
                }
                continue;
            }
            atomic_store(&srv->attached, true);
            atomic_fetch_add(&srv->attaches, 1);
        }

        busy = false;
        while (!atomic_load(&srv->stop)) {
            int ret = vfu_run_ctx(srv->ctx);
            int err = errno;

            if (ret > 0) {
                atomic_fetch_add(&srv->requests, (unsigned long)ret);
                continue;
            }
            if (ret == 0) {
                break;
            }
            if (err == EAGAIN || err == EWOULDBLOCK) {
                break;
            }
            if (err == ENOTCONN) {
                atomic_store(&srv->attached, false);
                atomic_fetch_add(&srv->disconnects, 1);
                break;
            }
            if (err == EBUSY) {
                atomic_fetch_add(&srv->busy, 1);
                busy = true;
                break;
            }
            atomic_fetch_add(&srv->run_errors, 1);
            atomic_store(&srv->last_run_errno, err);
            /* don't spin if the error repeats on a readable fd */
            sleep_ms(1);
            break;
        }
    }

    /* release a caller that raced with stop */
    run_pending_call(srv);
    return NULL;
}

int
vfu_test_server_start(struct vfu_test_server *srv, vfu_ctx_t *ctx)
{
    int err;

    memset(srv, 0, sizeof(*srv));
    srv->ctx = ctx;
    srv->poll_timeout_ms = VFU_TEST_POLL_MS;
    atomic_init(&srv->attaches, 0);
    atomic_init(&srv->attach_errors, 0);
    atomic_init(&srv->disconnects, 0);
    atomic_init(&srv->run_errors, 0);
    atomic_init(&srv->busy, 0);
    atomic_init(&srv->requests, 0);
    atomic_init(&srv->last_attach_errno, 0);
    atomic_init(&srv->last_run_errno, 0);
    atomic_init(&srv->attached, false);
    atomic_init(&srv->stop, false);
    srv->wake[0] = srv->wake[1] = -1;

    if (pipe2(srv->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        return -1;
    }
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->cond, NULL);
    err = pthread_create(&srv->thread, NULL, server_thread, srv);
    if (err != 0) {
        close(srv->wake[0]);
        close(srv->wake[1]);
        srv->wake[0] = srv->wake[1] = -1;
        pthread_mutex_destroy(&srv->lock);
        pthread_cond_destroy(&srv->cond);
        errno = err;
        return -1;
    }
    srv->started = true;
    return 0;
}

int
vfu_test_server_stop(struct vfu_test_server *srv)
{
    if (!srv->started) {
        return 0;
    }
    atomic_store(&srv->stop, true);
    kick(srv);
    pthread_join(srv->thread, NULL);
    srv->started = false;
    /* a call that raced with stop: run it here so its caller returns */
    pthread_mutex_lock(&srv->lock);
    if (srv->call_pending) {
        errno = 0;
        srv->call_ret = srv->call_fn(srv->ctx, srv->call_arg);
        srv->call_errno = errno;
        srv->call_pending = false;
        pthread_cond_broadcast(&srv->cond);
    }
    pthread_mutex_unlock(&srv->lock);
    close(srv->wake[0]);
    close(srv->wake[1]);
    srv->wake[0] = srv->wake[1] = -1;
    pthread_mutex_destroy(&srv->lock);
    pthread_cond_destroy(&srv->cond);
    return 0;
}

int
vfu_test_server_call(struct vfu_test_server *srv, vfu_test_server_fn *fn, void *arg)
{
    int ret;
    int err;

    if (!srv->started || atomic_load(&srv->stop) || pthread_equal(pthread_self(), srv->thread)) {
        return fn(srv->ctx, arg);
    }

    pthread_mutex_lock(&srv->lock);
    while (srv->call_pending) { /* another thread's call in flight */
        pthread_cond_wait(&srv->cond, &srv->lock);
    }
    srv->call_fn = fn;
    srv->call_arg = arg;
    srv->call_pending = true;
    kick(srv);
    while (srv->call_pending) {
        pthread_cond_wait(&srv->cond, &srv->lock);
    }
    ret = srv->call_ret;
    err = srv->call_errno;
    pthread_mutex_unlock(&srv->lock);
    errno = err;
    return ret;
}

unsigned
vfu_test_server_attaches(struct vfu_test_server *srv)
{
    return atomic_load(&srv->attaches);
}

unsigned
vfu_test_server_disconnects(struct vfu_test_server *srv)
{
    return atomic_load(&srv->disconnects);
}

unsigned
vfu_test_server_attach_errors(struct vfu_test_server *srv)
{
    return atomic_load(&srv->attach_errors);
}

unsigned
vfu_test_server_run_errors(struct vfu_test_server *srv)
{
    return atomic_load(&srv->run_errors);
}

bool
vfu_test_server_is_attached(struct vfu_test_server *srv)
{
    return atomic_load(&srv->attached);
}

bool
vfu_test_wait_until(bool (*pred)(void *arg), void *arg, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);

    for (;;) {
        if (pred(arg)) {
            return true;
        }
        if (now_ms() >= end) {
            return pred(arg);
        }
        sleep_ms(1);
    }
}

static int
wait_counter(atomic_uint *ctr, unsigned n, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);

    for (;;) {
        if (atomic_load(ctr) >= n) {
            return 0;
        }
        if (now_ms() >= end) {
            errno = ETIMEDOUT;
            return -1;
        }
        sleep_ms(1);
    }
}

int
vfu_test_server_wait_attaches(struct vfu_test_server *srv, unsigned n, int timeout_ms)
{
    return wait_counter(&srv->attaches, n, timeout_ms);
}

int
vfu_test_server_wait_disconnects(struct vfu_test_server *srv, unsigned n, int timeout_ms)
{
    return wait_counter(&srv->disconnects, n, timeout_ms);
}

char *
vfu_test_sock_path(char *buf, size_t len, const char *name)
{
    static atomic_uint counter;
    struct sockaddr_un sun;
    unsigned n = atomic_fetch_add(&counter, 1);
    int w;

    w = snprintf(buf, len, "/tmp/vfu-test-%ld-%u-%s.sock", (long)getpid(), n, name);
    if (w < 0 || (size_t)w >= len || (size_t)w >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    (void)unlink(buf);
    return buf;
}

void
vfu_test_log_stderr(vfu_ctx_t *ctx, int level, const char *msg)
{
    static const char *const names[] = {
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
    };
    const char *v = getenv("VFU_TEST_VERBOSE");

    (void)ctx;
    if (v == NULL || v[0] == '\0') {
        return;
    }
    fprintf(stderr, "[vfu %s] %s\n", level >= 0 && level < 8 ? names[level] : "?", msg);
}
