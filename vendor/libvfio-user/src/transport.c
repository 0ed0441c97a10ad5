/*
 * The UNIX-socket transport: the listening socket, accepting one client,
 * closing it, and the poll fd that tells a caller when to come back.
 * Messages move in transport_recv.c (framing and fds) and transport_send.c
 * (the send queue).
 */
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "private.h"
#include "transport.h"

/*
 * The fd a caller polls (vfu_get_poll_fd) is an epoll set holding the
 * sockets that matter now: the listener while no client is attached, and the
 * client's socket once one is accepted, for input, or for output alone while
 * replies wait for room. So a caller that polls it for input only, as
 * upstream's API expects, wakes when queued replies can move on, and does not
 * spin on a client that sends requests but does not read the replies.
 *
 * The listener stays in the set: before a client has completed VERSION, one
 * that connects and then stalls must not lock out the next one, which takes
 * its place (tran_accept); after, newcomers are told that the device is busy
 * (transport_newcomer.c). The set also holds wake_fd, readable while
 * messages received during a DMA transfer wait to be served.
 */
int
tran_watch(vfu_ctx_t *ctx, int op, int fd, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.fd = fd };

    return epoll_ctl(ctx->epoll_fd, op, fd, &ev) < 0 ? -errno : 0;
}

bool
tran_nonblocking(const vfu_ctx_t *ctx)
{
    return (ctx->flags & LIBVFIO_USER_FLAG_ATTACH_NB) != 0;
}

static int
fill_addr(const char *path, struct sockaddr_un *addr)
{
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr->sun_path)) {
        return -ENAMETOOLONG;
    }
    strcpy(addr->sun_path, path);
    return 0;
}

/*
 * A socket file left behind by a server that died may be replaced; anything
 * else at the path (a live server, a regular file) is an error.
 */
static int
remove_stale_socket(const struct sockaddr_un *addr)
{
    struct stat st;
    int probe, ret;

    if (lstat(addr->sun_path, &st) < 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    if (!S_ISSOCK(st.st_mode)) {
        return -EEXIST;
    }
    probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) {
        return -errno;
    }
    ret = connect(probe, (const struct sockaddr *)addr, sizeof(*addr));
    close(probe);
    if (ret == 0) {
        return -EADDRINUSE;
    }
    if (errno != ECONNREFUSED) {
        return -errno;
    }
    return unlink(addr->sun_path) < 0 && errno != ENOENT ? -errno : 0;
}

int
tran_listen(vfu_ctx_t *ctx)
{
    struct sockaddr_un addr;
    int fd, ret;

    ret = fill_addr(ctx->sock_path, &addr);
    if (ret < 0) {
        return ret;
    }
    ret = remove_stale_socket(&addr);
    if (ret < 0) {
        return ret;
    }
    ctx->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (ctx->epoll_fd < 0) {
        return -errno;
    }
    ctx->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ctx->wake_fd < 0 || (ret = tran_watch(ctx, EPOLL_CTL_ADD, ctx->wake_fd, EPOLLIN)) < 0) {
        ret = ctx->wake_fd < 0 ? -errno : ret;
        tran_close_listener(ctx);
        return ret;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (tran_nonblocking(ctx) ? SOCK_NONBLOCK : 0),
                0);
    if (fd < 0) {
        ret = -errno;
        tran_close_listener(ctx);
        return ret;
    }
    ctx->listen_fd = fd;
    /* Linux creates the socket file with the socket inode's mode: 0600. */
    if (fchmod(fd, S_IRUSR | S_IWUSR) < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(fd, 8) < 0) {
        ret = -errno;
        tran_close_listener(ctx);
        return ret;
    }
    ret = tran_watch(ctx, EPOLL_CTL_ADD, fd, EPOLLIN);
    if (ret == 0) {
        ret = tran_newcomers_init(ctx);
    }
    if (ret < 0) {
        unlink(addr.sun_path);
        tran_close_listener(ctx);
    }
    return ret;
}

int
tran_accept(vfu_ctx_t *ctx)
{
    int fd, ret;

    /* One that connected while the last client was attached comes first. */
    fd = tran_newcomer_take(ctx);
    while (fd < 0) {
        fd = accept4(ctx->listen_fd, NULL, NULL,
                     SOCK_CLOEXEC | (tran_nonblocking(ctx) ? SOCK_NONBLOCK : 0));
        if (fd >= 0 || errno != EINTR) {
            break;
        }
    }
    if (fd < 0) {
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
    if (ctx->conn.main.fd >= 0) {
        /* Never attached, so there is no device state to reset. */
        vfu_info(ctx, "a new client replaces one that did not finish VERSION");
        tran_close_conn(ctx);
    }
    ret = tran_watch(ctx, EPOLL_CTL_ADD, fd, EPOLLIN);
    if (ret < 0) {
        close(fd);
        return ret;
    }
    ctx->conn.main.fd = fd;
    ctx->conn.main.watched = EPOLLIN;
    ctx->conn.negotiated = false;
    memset(&ctx->conn.main.rx, 0, sizeof(ctx->conn.main.rx));
    return 0;
}

int
tran_attached(vfu_ctx_t *ctx)
{
    /* The listener stays: newcomers are turned away (transport_newcomer.c). */
    int ret = 0;

    if (ctx->conn.twin.fd >= 0) {
        ret = tran_watch(ctx, EPOLL_CTL_ADD, ctx->conn.twin.fd, EPOLLIN);
        ctx->conn.twin.watched = EPOLLIN;
    }
    if (ret == 0) {
        ctx->conn.negotiated = true;
        tran_newcomers_wake(ctx);
    }
    return ret;
}

/*
 * Deferred messages need no new input to be served, so while some wait (and
 * no output does, which wakes the caller by itself) the poll fd is kept
 * readable through wake_fd, an eventfd in the set.
 */
void
tran_wake_update(vfu_ctx_t *ctx)
{
    bool want = ctx->conn.deferred_head != NULL && ctx->conn.main.tx_head == NULL;
    uint64_t count = 1;

    if (want == ctx->wake_armed) {
        return;
    }
    if (want ? write(ctx->wake_fd, &count, sizeof(count)) == sizeof(count)
             : read(ctx->wake_fd, &count, sizeof(count)) == sizeof(count)) {
        ctx->wake_armed = want;
    }
}

/* Waits until fd is ready for events; -ETIMEDOUT after timeout_ms (< 0: never). */
int
tran_wait_fd(int fd, short events, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = events };
    int ret;

    do {
        ret = poll(&pfd, 1, timeout_ms);
    } while (ret < 0 && errno == EINTR);
    if (ret < 0) {
        return -errno;
    }
    return ret == 0 ? -ETIMEDOUT : 0;
}

int
tran_twin_create(vfu_ctx_t *ctx)
{
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        return -errno;
    }
    /*
     * Ours is read and written without waiting in either mode (blocking
     * waits poll first); the client's end is an ordinary socket.
     */
    if (fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK) < 0) {
        int err = errno;

        close(sv[0]);
        close(sv[1]);
        return -err;
    }
    if (ctx->conn.twin.fd >= 0) {
        close(ctx->conn.twin.fd);
    }
    ctx->conn.twin.fd = sv[0];
    memset(&ctx->conn.twin.rx, 0, sizeof(ctx->conn.twin.rx));
    return sv[1];
}

void
tran_close_conn(vfu_ctx_t *ctx)
{
    struct vfu_conn *conn = &ctx->conn;

    tran_recv_reset(ctx);
    tran_send_reset(ctx);
    tran_wake_update(ctx);
    if (conn->twin.fd >= 0) {
        tran_watch(ctx, EPOLL_CTL_DEL, conn->twin.fd, 0);
        close(conn->twin.fd);
        conn->twin.fd = -1;
    }
    if (conn->main.fd >= 0) {
        tran_watch(ctx, EPOLL_CTL_DEL, conn->main.fd, 0);
        close(conn->main.fd);
    }
    if (conn->negotiated) {
        tran_newcomers_wake(ctx);
    }
    conn->main.fd = -1;
    conn->negotiated = false;
}

void
tran_close_listener(vfu_ctx_t *ctx)
{
    tran_close_newcomers(ctx);
    if (ctx->listen_fd >= 0) {
        close(ctx->listen_fd);
        ctx->listen_fd = -1;
    }
    if (ctx->epoll_fd >= 0) {
        close(ctx->epoll_fd);
        ctx->epoll_fd = -1;
    }
    if (ctx->wake_fd >= 0) {
        close(ctx->wake_fd);
        ctx->wake_fd = -1;
        ctx->wake_armed = false;
    }
}
