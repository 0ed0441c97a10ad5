/*
 * The UNIX-socket transport: listening, accepting one client, and moving
 * whole vfio-user messages with their file descriptors. In non-blocking mode
 * nothing waits: a partial request is kept until the rest arrives, and a
 * reply the socket cannot take yet is queued, so a slow client never stalls
 * the thread.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "private.h"

/*
 * The fd a caller polls (vfu_get_poll_fd) is an epoll set holding the
 * sockets that matter now: the listener while no client is attached, and the
 * client's socket once one is accepted, for input, or for output alone while
 * replies wait for room. So a caller that polls it for input only, as
 * upstream's API expects, wakes when queued replies can move on, and does not
 * spin on a client that sends requests but does not read the replies.
 *
 * The listener stays in the set until the client has completed VERSION: a
 * client that connects and then stalls must not lock out the next one, which
 * takes its place (tran_accept).
 */
static int
watch(vfu_ctx_t *ctx, int op, int fd, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.fd = fd };

    return epoll_ctl(ctx->epoll_fd, op, fd, &ev) < 0 ? -errno : 0;
}

static bool
nonblocking(const vfu_ctx_t *ctx)
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
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
                (nonblocking(ctx) ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) {
        ret = -errno;
        tran_close_listener(ctx);
        return ret;
    }
    ctx->listen_fd = fd;
    /* Linux creates the socket file with the socket inode's mode: 0600. */
    if (fchmod(fd, S_IRUSR | S_IWUSR) < 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(fd, 8) < 0) {
        ret = -errno;
        tran_close_listener(ctx);
        return ret;
    }
    ret = watch(ctx, EPOLL_CTL_ADD, fd, EPOLLIN);
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

    do {
        fd = accept4(ctx->listen_fd, NULL, NULL, SOCK_CLOEXEC |
                     (nonblocking(ctx) ? SOCK_NONBLOCK : 0));
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
    if (ctx->conn.fd >= 0) {
        /* Never attached, so there is no device state to reset. */
        vfu_info(ctx, "a new client replaces one that did not finish VERSION");
        tran_close_conn(ctx);
    }
    ret = watch(ctx, EPOLL_CTL_ADD, fd, EPOLLIN);
    if (ret < 0) {
        close(fd);
        return ret;
    }
    ctx->conn.fd = fd;
    ctx->conn.negotiated = false;
    memset(&ctx->conn.rx, 0, sizeof(ctx->conn.rx));
    return 0;
}

int
tran_attached(vfu_ctx_t *ctx)
{
    /* One client at a time: the listener rests until this one leaves. */
    int ret = watch(ctx, EPOLL_CTL_DEL, ctx->listen_fd, 0);

    if (ret == 0) {
        ctx->conn.negotiated = true;
    }
    return ret;
}

static void
rx_close_fds(struct vfu_rx *rx)
{
    for (size_t i = 0; i < rx->nr_fds; i++) {
        close(rx->fds[i]);
    }
    rx->nr_fds = 0;
}

static void
rx_reset(struct vfu_rx *rx)
{
    uint64_t discard = rx->discard;

    free(rx->body);
    memset(rx, 0, sizeof(*rx));
    rx->discard = discard;
}

/* Waits until fd is ready for events; used only by blocking contexts. */
static int
wait_fd(int fd, short events, int timeout_ms)
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

/*
 * One recvmsg into buf, collecting any fds that come with it. Returns the
 * byte count, -EAGAIN when nothing is there now, -ENOTCONN at end of stream.
 */
static ssize_t
recv_some(vfu_ctx_t *ctx, void *buf, size_t len)
{
    struct vfu_rx *rx = &ctx->conn.rx;
    union {
        char buf[CMSG_SPACE(RECV_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = control.buf, .msg_controllen = sizeof(control.buf),
    };
    ssize_t n;

    for (;;) {
        n = recvmsg(ctx->conn.fd, &mh, MSG_CMSG_CLOEXEC);
        if (n >= 0 || errno != EINTR) {
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                int ret;
                if (nonblocking(ctx)) {
                    return -EAGAIN;
                }
                /* Someone made our blocking fd non-blocking: wait here. */
                ret = wait_fd(ctx->conn.fd, POLLIN, -1);
                if (ret < 0) {
                    return ret;
                }
                continue;
            }
            break;
        }
    }
    if (n < 0) {
        return errno == ECONNRESET ? -ENOTCONN : -errno;
    }
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL;
         cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            size_t nr = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int *fds = (int *)CMSG_DATA(cm);
            for (size_t i = 0; i < nr; i++) {
                if (rx->nr_fds < RECV_MAX_FDS) {
                    rx->fds[rx->nr_fds++] = fds[i];
                } else {
                    close(fds[i]);
                    rx->fds_lost = true;
                }
            }
        }
    }
    if (mh.msg_flags & MSG_CTRUNC) {
        rx->fds_lost = true;
    }
    if (n == 0) {
        return -ENOTCONN;
    }
    return n;
}

/* Skips the body of an oversized message that was already answered. */
static int
rx_discard(vfu_ctx_t *ctx)
{
    struct vfu_rx *rx = &ctx->conn.rx;
    char scratch[4096];

    while (rx->discard > 0) {
        ssize_t n = recv_some(ctx, scratch, VFU_MIN(sizeof(scratch), rx->discard));
        if (n < 0) {
            return (int)n;
        }
        rx->discard -= (uint64_t)n;
        rx_close_fds(rx);
    }
    return 0;
}

/* Hands the received message and its fds over to msg. */
static int
rx_complete(struct vfu_rx *rx, struct vfu_msg *msg)
{
    memcpy(&msg->hdr, rx->hdr, sizeof(msg->hdr));
    msg->in = rx->body;
    msg->in_len = rx->body_len;
    rx->body = NULL;
    msg->fds_lost = rx->fds_lost;
    if (rx->nr_fds > 0) {
        msg->in_fds = malloc(rx->nr_fds * sizeof(int));
        if (msg->in_fds == NULL) {
            rx_close_fds(rx);
            rx_reset(rx);
            return -ENOMEM;
        }
        memcpy(msg->in_fds, rx->fds, rx->nr_fds * sizeof(int));
        msg->nr_in_fds = rx->nr_fds;
        rx->nr_fds = 0;
    }
    rx_reset(rx);
    return 1;
}

int
tran_recv_msg(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfu_rx *rx = &ctx->conn.rx;
    ssize_t n;
    int ret;

    if (ctx->conn.fd < 0) {
        return -ENOTCONN;
    }
    ret = rx_discard(ctx);
    if (ret < 0) {
        return ret == -EAGAIN ? 0 : ret;
    }
    while (rx->hdr_got < sizeof(rx->hdr)) {
        n = recv_some(ctx, rx->hdr + rx->hdr_got, sizeof(rx->hdr) - rx->hdr_got);
        if (n < 0) {
            return n == -EAGAIN ? 0 : (int)n;
        }
        rx->hdr_got += (size_t)n;
    }
    if (rx->body == NULL && rx->body_len == 0) {
        struct vfio_user_header hdr;

        memcpy(&hdr, rx->hdr, sizeof(hdr));
        if (hdr.msg_size < sizeof(hdr)) {
            ret = rx_complete(rx, msg);
            return ret < 0 ? ret : -EINVAL;
        }
        if (hdr.msg_size > SERVER_MAX_MSG_SIZE) {
            rx->discard = hdr.msg_size - sizeof(hdr);
            ret = rx_complete(rx, msg);
            return ret < 0 ? ret : -E2BIG;
        }
        rx->body_len = hdr.msg_size - sizeof(hdr);
        if (rx->body_len > 0) {
            rx->body = malloc(rx->body_len);
            if (rx->body == NULL) {
                return -ENOMEM;
            }
        }
    }
    while (rx->body_got < rx->body_len) {
        n = recv_some(ctx, rx->body + rx->body_got, rx->body_len - rx->body_got);
        if (n < 0) {
            return n == -EAGAIN ? 0 : (int)n;
        }
        rx->body_got += (size_t)n;
    }
    return rx_complete(rx, msg);
}

/*
 * One sendmsg of what iov holds, fds with its first byte: the bytes taken,
 * or -EAGAIN when the socket is full, or -errno.
 */
static ssize_t
send_once(int fd, struct iovec *iov, size_t iovcnt, const int *fds, size_t nr_fds)
{
    union {
        char buf[CMSG_SPACE(SERVER_MAX_MSG_FDS * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = iovcnt };
    ssize_t n;

    if (nr_fds > 0) {
        struct cmsghdr *cm;

        memset(&control, 0, sizeof(control));
        mh.msg_control = control.buf;
        mh.msg_controllen = CMSG_SPACE(nr_fds * sizeof(int));
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(nr_fds * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, nr_fds * sizeof(int));
    }
    do {
        n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n >= 0) {
        return n;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return -EAGAIN;
    }
    return errno == EPIPE || errno == ECONNRESET ? -ENOTCONN : -errno;
}

/* Moves iov past n bytes that were sent. */
static void
iov_advance(struct iovec **iov, size_t *iovcnt, size_t n)
{
    while (n > 0 && *iovcnt > 0) {
        size_t step = VFU_MIN(n, (*iov)->iov_len);

        (*iov)->iov_base = (char *)(*iov)->iov_base + step;
        (*iov)->iov_len -= step;
        n -= step;
        if ((*iov)->iov_len == 0) {
            (*iov)++;
            (*iovcnt)--;
        }
    }
}

/* Keeps what the socket did not take, to go out when it has room. */
static int
tx_enqueue(vfu_ctx_t *ctx, const struct iovec *iov, size_t iovcnt,
           const int *fds, size_t nr_fds)
{
    struct vfu_conn *conn = &ctx->conn;
    struct vfu_tx *tx;
    size_t len = 0;

    for (size_t i = 0; i < iovcnt; i++) {
        len += iov[i].iov_len;
    }
    if (len > TX_QUEUE_MAX - conn->tx_bytes) {
        /* A client that does not read its replies is treated as gone. */
        vfu_err(ctx, "client is not reading: %zu bytes of replies queued",
                conn->tx_bytes);
        return -ENOBUFS;
    }
    tx = calloc(1, sizeof(*tx));
    if (tx == NULL || (tx->data = malloc(len)) == NULL) {
        free(tx);
        return -ENOMEM;
    }
    for (size_t i = 0; i < iovcnt; i++) {
        memcpy(tx->data + tx->len, iov[i].iov_base, iov[i].iov_len);
        tx->len += iov[i].iov_len;
    }
    if (nr_fds > 0) {
        memcpy(tx->fds, fds, nr_fds * sizeof(int));
    }
    tx->nr_fds = nr_fds;
    conn->tx_bytes += len;
    if (conn->tx_tail != NULL) {
        conn->tx_tail->next = tx;
        conn->tx_tail = tx;
        return 0;
    }
    conn->tx_head = conn->tx_tail = tx;
    /* Stop reading requests until the client takes its replies. */
    return watch(ctx, EPOLL_CTL_MOD, conn->fd, EPOLLOUT);
}

int
tran_send(vfu_ctx_t *ctx, const struct vfio_user_header *hdr,
          const void *payload, size_t len, const int *fds, size_t nr_fds)
{
    struct iovec iovs[2] = {
        { .iov_base = (void *)hdr, .iov_len = sizeof(*hdr) },
        { .iov_base = (void *)payload, .iov_len = len },
    };
    struct iovec *iov = iovs;
    size_t iovcnt = len > 0 ? 2 : 1;

    if (ctx->conn.fd < 0) {
        return -ENOTCONN;
    }
    if (nr_fds > SERVER_MAX_MSG_FDS) {
        return -EINVAL;
    }
    /* Behind queued replies, a message waits its turn. */
    if (ctx->conn.tx_head != NULL) {
        return tx_enqueue(ctx, iov, iovcnt, fds, nr_fds);
    }
    while (iovcnt > 0) {
        ssize_t n = send_once(ctx->conn.fd, iov, iovcnt, fds, nr_fds);

        if (n == -EAGAIN) {
            int ret;

            if (nonblocking(ctx)) {
                return tx_enqueue(ctx, iov, iovcnt, fds, nr_fds);
            }
            ret = wait_fd(ctx->conn.fd, POLLOUT, -1);
            if (ret < 0) {
                return ret;
            }
            continue;
        }
        if (n < 0) {
            return (int)n;
        }
        if (n > 0) {
            nr_fds = 0;         /* they went with the first byte */
        }
        iov_advance(&iov, &iovcnt, (size_t)n);
    }
    return 0;
}

int
tran_flush(vfu_ctx_t *ctx)
{
    struct vfu_conn *conn = &ctx->conn;

    if (conn->tx_head == NULL) {
        return 0;
    }
    while (conn->tx_head != NULL) {
        struct vfu_tx *tx = conn->tx_head;
        struct iovec iov = { .iov_base = tx->data + tx->sent,
                             .iov_len = tx->len - tx->sent };
        ssize_t n = send_once(conn->fd, &iov, 1, tx->fds,
                              tx->sent == 0 ? tx->nr_fds : 0);

        if (n < 0) {
            return (int)n;
        }
        tx->sent += (size_t)n;
        conn->tx_bytes -= (size_t)n;
        if (tx->sent < tx->len) {
            continue;
        }
        conn->tx_head = tx->next;
        if (conn->tx_head == NULL) {
            conn->tx_tail = NULL;
        }
        free(tx->data);
        free(tx);
    }
    return watch(ctx, EPOLL_CTL_MOD, conn->fd, EPOLLIN);
}

static void
tx_drop(struct vfu_conn *conn)
{
    while (conn->tx_head != NULL) {
        struct vfu_tx *tx = conn->tx_head;

        conn->tx_head = tx->next;
        free(tx->data);
        free(tx);
    }
    conn->tx_tail = NULL;
    conn->tx_bytes = 0;
}

void
tran_close_conn(vfu_ctx_t *ctx)
{
    struct vfu_rx *rx = &ctx->conn.rx;
    bool listener_resting = ctx->conn.negotiated;

    rx_close_fds(rx);
    rx->discard = 0;
    rx_reset(rx);
    tx_drop(&ctx->conn);
    if (ctx->conn.fd >= 0) {
        watch(ctx, EPOLL_CTL_DEL, ctx->conn.fd, 0);
        close(ctx->conn.fd);
        /* Listen again for the next client. */
        if (listener_resting && ctx->listen_fd >= 0 &&
            watch(ctx, EPOLL_CTL_ADD, ctx->listen_fd, EPOLLIN) < 0) {
            vfu_err(ctx, "cannot poll the listening socket: %m");
        }
    }
    ctx->conn.fd = -1;
    ctx->conn.negotiated = false;
}

void
tran_close_listener(vfu_ctx_t *ctx)
{
    if (ctx->listen_fd >= 0) {
        close(ctx->listen_fd);
        ctx->listen_fd = -1;
    }
    if (ctx->epoll_fd >= 0) {
        close(ctx->epoll_fd);
        ctx->epoll_fd = -1;
    }
}
