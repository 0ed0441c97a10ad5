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
#include <time.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
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
 * takes its place (tran_accept). The set also holds wake_fd, readable while
 * messages received during a DMA transfer wait to be served.
 *
 * Input is read ahead into a buffer per connection, so that one recvmsg
 * usually brings a whole request (or several) and a read that comes back
 * short tells that the socket is empty without another one to prove it.
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
    ctx->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ctx->wake_fd < 0 || (ret = watch(ctx, EPOLL_CTL_ADD, ctx->wake_fd, EPOLLIN)) < 0) {
        ret = ctx->wake_fd < 0 ? -errno : ret;
        tran_close_listener(ctx);
        return ret;
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
close_fds(const int *fds, size_t nr)
{
    for (size_t i = 0; i < nr; i++) {
        close(fds[i]);
    }
}

/* Forgets everything received, closing the fds no message took. */
static void
rx_reset(struct vfu_rx *rx)
{
    for (size_t i = 0; i < rx->nr_fds; i++) {
        close_fds(rx->fds[i].fds, rx->fds[i].nr);
    }
    free(rx->big_body);
    rx->big_body = NULL;
    rx->nr_fds = 0;
    rx->start = rx->end = 0;
    rx->base = 0;
    rx->discard = 0;
    rx->drained = false;
    rx->eof = false;
}

/*
 * Deferred messages need no new input to be served, so while some wait (and
 * no output does, which wakes the caller by itself) the poll fd is kept
 * readable through wake_fd, an eventfd in the set.
 */
static void
wake_update(vfu_ctx_t *ctx)
{
    bool want = ctx->conn.deferred_head != NULL && ctx->conn.tx_head == NULL;
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

/* What one recvmsg brought besides bytes. */
struct received_fds {
    int fds[RECV_MAX_FDS];
    size_t nr;
    bool lost;
};

/*
 * One recvmsg into buf. Returns the byte count, -EAGAIN when nothing is there
 * now (dontwait, or a non-blocking context), -ENOTCONN at end of stream.
 */
static ssize_t
recv_some(vfu_ctx_t *ctx, void *buf, size_t len, bool dontwait,
          struct received_fds *got)
{
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

    got->nr = 0;
    got->lost = false;
    for (;;) {
        n = recvmsg(ctx->conn.fd, &mh, MSG_CMSG_CLOEXEC | (dontwait ? MSG_DONTWAIT : 0));
        /*
         * A signal that interrupts a blocking vfu_run_ctx hands control back
         * to its caller, as upstream's does (its sample server acts on
         * SIGALRM that way). Negotiation is not interrupted.
         */
        if (n < 0 && errno == EINTR && !dontwait && ctx->conn.negotiated) {
            return -EINTR;
        }
        if (n >= 0 || errno != EINTR) {
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                int ret;
                if (dontwait || nonblocking(ctx)) {
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

            memcpy(got->fds + got->nr, CMSG_DATA(cm), nr * sizeof(int));
            got->nr += nr;
        }
    }
    if (mh.msg_flags & MSG_CTRUNC) {
        got->lost = true;
    }
    if (n == 0) {
        close_fds(got->fds, got->nr);
        return -ENOTCONN;
    }
    return n;
}

/*
 * The stream offset of the message holding stream byte pos, by walking the
 * headers read so far (a header shorter than itself frames 16 bytes, as the
 * receive path treats it). Bytes of an oversized message being skipped
 * belong to no message that will be served.
 */
static uint64_t
rx_owner_of(const struct vfu_rx *rx, uint64_t pos)
{
    uint64_t at = rx->base + rx->start;

    if (rx->big_body != NULL) {
        return rx->big_start;
    }
    if (pos < at + rx->discard) {
        return at;
    }
    at += rx->discard;
    for (;;) {
        struct vfio_user_header hdr;
        uint64_t off = at - rx->base;

        if (off + sizeof(hdr) > rx->end) {
            return at;
        }
        memcpy(&hdr, rx->buf + off, sizeof(hdr));
        at += VFU_MAX(hdr.msg_size, (uint32_t)sizeof(hdr));
        if (pos < at) {
            return at - VFU_MAX(hdr.msg_size, (uint32_t)sizeof(hdr));
        }
    }
}

/*
 * Files the fds of one read under the message they belong to. The kernel
 * ends a read right after the data that carried fds, and a client sends a
 * message's fds with its first bytes, so they belong to the message holding
 * the last byte of that read; the bytes before may be earlier messages.
 */
static void
rx_add_fds(vfu_ctx_t *ctx, uint64_t last_byte, struct received_fds *got)
{
    struct vfu_rx *rx = &ctx->conn.rx;
    uint64_t owner = rx_owner_of(rx, last_byte);
    uint64_t parsed = rx->base + rx->start;
    struct vfu_rx_fds *set = NULL;
    size_t i, keep;

    /* Sets of messages already gone (skipped ones) are closed now. */
    for (i = 0, keep = 0; i < rx->nr_fds; i++) {
        if (rx->fds[i].owner < parsed && rx->fds[i].owner != rx->big_start) {
            close_fds(rx->fds[i].fds, rx->fds[i].nr);
        } else {
            rx->fds[keep++] = rx->fds[i];
        }
    }
    rx->nr_fds = keep;
    for (i = 0; i < rx->nr_fds && set == NULL; i++) {
        if (rx->fds[i].owner == owner) {
            set = &rx->fds[i];
        }
    }
    if (set == NULL) {
        if (rx->nr_fds == VFU_ARRAY_LEN(rx->fds)) {
            vfu_err(ctx, "fds for too many messages at once: closed");
            close_fds(got->fds, got->nr);
            return;
        }
        set = &rx->fds[rx->nr_fds++];
        set->owner = owner;
        set->nr = 0;
        set->lost = false;
    }
    set->lost |= got->lost;
    for (i = 0; i < got->nr; i++) {
        if (set->nr < RECV_MAX_FDS) {
            set->fds[set->nr++] = got->fds[i];
        } else {
            close(got->fds[i]);
            set->lost = true;
        }
    }
}

/*
 * Gives msg the fds of the message starting at stream offset owner; fds of
 * messages before it (skipped ones) are closed. 1 or -ENOMEM.
 */
static int
rx_take_fds(struct vfu_rx *rx, uint64_t owner, struct vfu_msg *msg)
{
    int ret = 1;
    size_t keep = 0;

    for (size_t i = 0; i < rx->nr_fds; i++) {
        struct vfu_rx_fds *set = &rx->fds[i];

        if (set->owner > owner) {
            rx->fds[keep++] = *set;
            continue;
        }
        if (set->owner == owner && ret > 0) {
            msg->fds_lost = set->lost;
            msg->in_fds = malloc(set->nr * sizeof(int));
            if (msg->in_fds != NULL) {
                memcpy(msg->in_fds, set->fds, set->nr * sizeof(int));
                msg->nr_in_fds = set->nr;
                continue;
            }
            ret = -ENOMEM;
        }
        close_fds(set->fds, set->nr);
    }
    rx->nr_fds = keep;
    return ret;
}

/*
 * Takes the next whole message out of what was read: 1 with msg filled, 0
 * when more bytes are needed, or -EINVAL / -E2BIG / -ENOMEM as
 * tran_recv_msg. own: the payload is malloc'd for msg, else it is copied to
 * rx->payload (the copy is small, and a DMA transfer waiting inside the
 * request may move the buffer).
 */
static int
rx_next(vfu_ctx_t *ctx, struct vfu_msg *msg, bool own)
{
    struct vfu_rx *rx = &ctx->conn.rx;
    struct vfio_user_header hdr;
    size_t avail, len;
    uint64_t at;
    int ret;

    if (rx->discard > 0) {
        size_t n = (size_t)VFU_MIN(rx->discard, rx->end - rx->start);

        rx->start += n;
        rx->discard -= n;
        if (rx->discard > 0) {
            return 0;
        }
    }
    if (rx->big_body != NULL) {
        if (rx->big_got < rx->big_len) {
            return 0;
        }
        msg->hdr = rx->big_hdr;
        msg->in = rx->big_body;
        msg->in_len = rx->big_len;
        rx->big_body = NULL;
        return rx_take_fds(rx, rx->big_start, msg);
    }
    avail = rx->end - rx->start;
    if (avail < sizeof(hdr)) {
        return 0;
    }
    at = rx->base + rx->start;
    memcpy(&hdr, rx->buf + rx->start, sizeof(hdr));
    if (hdr.msg_size < sizeof(hdr) || hdr.msg_size > SERVER_MAX_MSG_SIZE) {
        msg->hdr = hdr;
        rx->start += sizeof(hdr);
        if (hdr.msg_size > SERVER_MAX_MSG_SIZE) {
            rx->discard = hdr.msg_size - sizeof(hdr);
        }
        ret = rx_take_fds(rx, at, msg);
        return ret < 0 ? ret : hdr.msg_size < sizeof(hdr) ? -EINVAL : -E2BIG;
    }
    len = hdr.msg_size - sizeof(hdr);
    if (hdr.msg_size > avail) {
        if (hdr.msg_size <= sizeof(rx->buf)) {
            return 0;           /* the rest comes into the buffer */
        }
        rx->big_body = malloc(len);
        if (rx->big_body == NULL) {
            return -ENOMEM;
        }
        rx->big_hdr = hdr;
        rx->big_len = len;
        rx->big_got = avail - sizeof(hdr);
        rx->big_start = at;
        memcpy(rx->big_body, rx->buf + rx->start + sizeof(hdr), rx->big_got);
        rx->start = rx->end;
        return 0;
    }
    if (len > 0) {
        msg->in = own ? malloc(len) : rx->payload;
        if (msg->in == NULL) {
            return -ENOMEM;
        }
        msg->in_borrowed = !own;
        memcpy(msg->in, rx->buf + rx->start + sizeof(hdr), len);
    }
    msg->hdr = hdr;
    msg->in_len = len;
    rx->start += hdr.msg_size;
    return rx_take_fds(rx, at, msg);
}

/*
 * One read into the buffer, or into the body of a message too big for it.
 * Returns the byte count, -EAGAIN, -ENOTCONN (also remembered: rx->eof) or
 * -errno.
 */
static ssize_t
rx_fill(vfu_ctx_t *ctx, bool dontwait)
{
    struct vfu_rx *rx = &ctx->conn.rx;
    struct received_fds got;
    uint8_t *dst;
    size_t room;
    ssize_t n;

    if (rx->big_body != NULL) {
        dst = rx->big_body + rx->big_got;
        room = rx->big_len - rx->big_got;
    } else {
        if (rx->start > 0) {
            memmove(rx->buf, rx->buf + rx->start, rx->end - rx->start);
            rx->base += rx->start;
            rx->end -= rx->start;
            rx->start = 0;
        }
        dst = rx->buf + rx->end;
        room = sizeof(rx->buf) - rx->end;
    }
    n = recv_some(ctx, dst, room, dontwait, &got);
    if (n < 0) {
        rx->eof = n == -ENOTCONN;
        return n;
    }
    if (rx->big_body != NULL) {
        rx->big_got += (size_t)n;
        rx->base += (size_t)n;  /* these bytes bypass buf */
    } else {
        rx->end += (size_t)n;
    }
    /* A read that brought fds may have stopped short of what is there. */
    rx->drained = (size_t)n < room && got.nr == 0 && !got.lost;
    if (got.nr > 0 || got.lost) {
        rx_add_fds(ctx, rx->base + rx->end - 1, &got);
    }
    return n;
}

/* The oldest deferred message, handed over with its status. */
static int
pop_deferred(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfu_conn *conn = &ctx->conn;
    struct vfu_deferred *d = conn->deferred_head;
    int status = d->status;

    conn->deferred_head = d->next;
    if (conn->deferred_head == NULL) {
        conn->deferred_tail = NULL;
    }
    conn->deferred_bytes -= sizeof(d->msg.hdr) + d->msg.in_len;
    *msg = d->msg;
    free(d);
    wake_update(ctx);
    return status;
}

int
tran_recv_msg(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfu_rx *rx = &ctx->conn.rx;

    if (ctx->conn.fd < 0) {
        return -ENOTCONN;
    }
    if (ctx->conn.deferred_head != NULL) {
        return pop_deferred(ctx, msg);
    }
    for (;;) {
        ssize_t n;
        int ret = rx_next(ctx, msg, false);

        if (ret != 0) {
            return ret;
        }
        if (rx->eof) {
            return -ENOTCONN;
        }
        /*
         * After a short read the socket had nothing more: another read would
         * only fail with EAGAIN. The poll fd wakes the caller when more comes.
         */
        if (rx->drained && nonblocking(ctx)) {
            rx->drained = false;
            return 0;
        }
        n = rx_fill(ctx, false);
        if (n == -EAGAIN) {
            return 0;
        }
        if (n < 0) {
            return (int)n;
        }
    }
}

int
tran_wait_msg(vfu_ctx_t *ctx, struct vfu_msg *msg, int timeout_ms)
{
    struct vfu_rx *rx = &ctx->conn.rx;
    struct timespec now;
    int64_t deadline_ms;

    if (ctx->conn.fd < 0) {
        return -ENOTCONN;
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
    deadline_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 + timeout_ms;
    for (;;) {
        struct pollfd pfd = { .fd = ctx->conn.fd, .events = POLLIN };
        int64_t left;
        ssize_t n;
        int ret = rx_next(ctx, msg, true);

        if (ret != 0) {
            return ret;
        }
        if (rx->eof) {
            return -ENOTCONN;
        }
        ret = tran_flush(ctx);
        if (ret < 0 && ret != -EAGAIN) {
            return ret;
        }
        n = rx_fill(ctx, true);
        if (n > 0) {
            continue;
        }
        if (n != -EAGAIN) {
            return (int)n;
        }
        if (ctx->conn.tx_head != NULL) {
            pfd.events |= POLLOUT;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        left = deadline_ms - ((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
        if (left <= 0) {
            return -ETIMEDOUT;
        }
        do {
            ret = poll(&pfd, 1, (int)VFU_MIN(left, INT32_MAX));
        } while (ret < 0 && errno == EINTR);
        if (ret < 0) {
            return -errno;
        }
    }
}

int
tran_defer_msg(vfu_ctx_t *ctx, struct vfu_msg *msg, int status)
{
    struct vfu_conn *conn = &ctx->conn;
    struct vfu_deferred *d = malloc(sizeof(*d));

    if (d == NULL) {
        return -ENOMEM;
    }
    d->next = NULL;
    d->msg = *msg;
    d->status = status;
    memset(msg, 0, sizeof(*msg));
    if (conn->deferred_tail != NULL) {
        conn->deferred_tail->next = d;
    } else {
        conn->deferred_head = d;
    }
    conn->deferred_tail = d;
    conn->deferred_bytes += sizeof(d->msg.hdr) + d->msg.in_len;
    wake_update(ctx);
    return 0;
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
tran_sendv(vfu_ctx_t *ctx, const struct vfio_user_header *hdr,
           const struct iovec *payload, size_t iovcnt, const int *fds,
           size_t nr_fds)
{
    struct iovec iovs[4] = {
        { .iov_base = (void *)hdr, .iov_len = sizeof(*hdr) },
    };
    struct iovec *iov = iovs;

    if (ctx->conn.fd < 0) {
        return -ENOTCONN;
    }
    if (nr_fds > SERVER_MAX_MSG_FDS || iovcnt >= VFU_ARRAY_LEN(iovs)) {
        return -EINVAL;
    }
    memcpy(iovs + 1, payload, iovcnt * sizeof(*payload));
    iovcnt++;
    /* Behind queued output, a message waits its turn. */
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
tran_send(vfu_ctx_t *ctx, const struct vfio_user_header *hdr,
          const void *payload, size_t len, const int *fds, size_t nr_fds)
{
    struct iovec iov = { .iov_base = (void *)payload, .iov_len = len };

    return tran_sendv(ctx, hdr, &iov, len > 0 ? 1 : 0, fds, nr_fds);
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
            wake_update(ctx);
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
    wake_update(ctx);
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
    struct vfu_conn *conn = &ctx->conn;
    bool listener_resting = conn->negotiated;

    rx_reset(&conn->rx);
    tx_drop(conn);
    while (conn->deferred_head != NULL) {
        struct vfu_msg msg;

        pop_deferred(ctx, &msg);
        msg_free(&msg);
    }
    wake_update(ctx);
    if (conn->fd >= 0) {
        watch(ctx, EPOLL_CTL_DEL, conn->fd, 0);
        close(conn->fd);
        /* Listen again for the next client. */
        if (listener_resting && ctx->listen_fd >= 0 &&
            watch(ctx, EPOLL_CTL_ADD, ctx->listen_fd, EPOLLIN) < 0) {
            vfu_err(ctx, "cannot poll the listening socket: %m");
        }
    }
    conn->fd = -1;
    conn->negotiated = false;
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
    if (ctx->wake_fd >= 0) {
        close(ctx->wake_fd);
        ctx->wake_fd = -1;
        ctx->wake_armed = false;
    }
}
