/*
 * Receiving from the client: bytes are read ahead into a buffer per
 * connection and cut into whole messages, each with the file descriptors
 * that came with it. In non-blocking mode a partial message is kept until
 * the rest arrives. Messages put aside while a DMA transfer waits are served
 * first.
 *
 * Input is read ahead so that one recvmsg usually brings a whole request (or
 * several) and a read that comes back short tells that the socket is empty
 * without another one to prove it.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "private.h"
#include "transport.h"

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

/* What one recvmsg brought besides bytes. */
struct received_fds {
    int fds[RECV_MAX_FDS];
    size_t nr;
    bool lost;
};

/*
 * One recvmsg from s into buf. Returns the byte count, -EAGAIN when nothing
 * is there now (dontwait, or a non-blocking context), -ENOTCONN at end of
 * stream, -EINTR when a signal cut the wait of a blocking context.
 */
static ssize_t
recv_some(vfu_ctx_t *ctx, struct vfu_stream *s, void *buf, size_t len, bool dontwait,
          struct received_fds *got)
{
    union {
        char buf[CMSG_SPACE(RECV_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr mh = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buf,
        .msg_controllen = sizeof(control.buf),
    };
    ssize_t n;

    got->nr = 0;
    got->lost = false;
    for (;;) {
        n = recvmsg(s->fd, &mh, MSG_CMSG_CLOEXEC | (dontwait ? MSG_DONTWAIT : 0));
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
                if (dontwait || tran_nonblocking(ctx)) {
                    return -EAGAIN;
                }
                /* Someone made our blocking fd non-blocking: wait here. */
                ret = tran_wait_fd(s->fd, POLLIN, -1);
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
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
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
rx_add_fds(vfu_ctx_t *ctx, struct vfu_rx *rx, uint64_t last_byte, struct received_fds *got)
{
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
rx_next(vfu_ctx_t *ctx, struct vfu_stream *s, struct vfu_msg *msg, bool own)
{
    struct vfu_rx *rx = &s->rx;
    struct vfio_user_header hdr;
    size_t avail, len;
    uint64_t at;
    int ret;

    msg->from_twin = s == &ctx->conn.twin;
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
            return 0; /* the rest comes into the buffer */
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
rx_fill(vfu_ctx_t *ctx, struct vfu_stream *s, bool dontwait)
{
    struct vfu_rx *rx = &s->rx;
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
    n = recv_some(ctx, s, dst, room, dontwait, &got);
    if (n < 0) {
        rx->eof = n == -ENOTCONN;
        return n;
    }
    if (rx->big_body != NULL) {
        rx->big_got += (size_t)n;
        rx->base += (size_t)n; /* these bytes bypass buf */
    } else {
        rx->end += (size_t)n;
    }
    /* A read that brought fds may have stopped short of what is there. */
    rx->drained = (size_t)n < room && got.nr == 0 && !got.lost;
    if (got.nr > 0 || got.lost) {
        rx_add_fds(ctx, rx, rx->base + rx->end - 1, &got);
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
    tran_wake_update(ctx);
    return status;
}

/*
 * The next message the twin socket holds, without waiting: 1, 0 when none is
 * complete (or there is no twin socket), or as tran_recv_msg. It carries the
 * client's replies to our commands; its end is the client's end.
 */
static int
twin_next(vfu_ctx_t *ctx, struct vfu_msg *msg, bool own)
{
    struct vfu_stream *twin = &ctx->conn.twin;

    if (twin->fd < 0) {
        return 0;
    }
    for (;;) {
        ssize_t n;
        int ret = rx_next(ctx, twin, msg, own);

        if (ret != 0) {
            return ret;
        }
        if (twin->rx.eof) {
            return -ENOTCONN;
        }
        n = rx_fill(ctx, twin, true);
        if (n == -EAGAIN) {
            return 0;
        }
        if (n < 0) {
            return (int)n;
        }
    }
}

/* A blocking context with a twin socket waits for either; 0 or -errno. */
static int
wait_either(vfu_ctx_t *ctx)
{
    struct pollfd pfd[2] = {
        { .fd = ctx->conn.main.fd, .events = POLLIN },
        { .fd = ctx->conn.twin.fd, .events = POLLIN },
    };

    for (;;) {
        if (poll(pfd, 2, -1) >= 0) {
            return 0;
        }
        if (errno != EINTR) {
            return -errno;
        }
        if (ctx->conn.negotiated) {
            return -EINTR;
        }
    }
}

int
tran_recv_msg(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfu_stream *s = &ctx->conn.main;
    struct vfu_rx *rx = &s->rx;
    bool wait_both;

    if (s->fd < 0) {
        return -ENOTCONN;
    }
    if (ctx->conn.deferred_head != NULL) {
        return pop_deferred(ctx, msg);
    }
    wait_both = ctx->conn.twin.fd >= 0 && !tran_nonblocking(ctx);
    for (;;) {
        ssize_t n;
        int ret = twin_next(ctx, msg, false);

        if (ret != 0) {
            return ret;
        }
        ret = rx_next(ctx, s, msg, false);
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
        if (rx->drained && tran_nonblocking(ctx)) {
            rx->drained = false;
            return 0;
        }
        if (wait_both && (ret = wait_either(ctx)) < 0) {
            return ret;
        }
        n = rx_fill(ctx, s, wait_both);
        if (n == -EAGAIN && wait_both) {
            continue; /* it was the twin socket */
        }
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
    struct vfu_stream *s = &ctx->conn.main;
    struct timespec now;
    int64_t deadline_ms;

    if (s->fd < 0) {
        return -ENOTCONN;
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
    deadline_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 + timeout_ms;
    for (;;) {
        /* poll skips the twin entry while its fd is -1. */
        struct pollfd pfd[2] = {
            { .fd = s->fd, .events = POLLIN },
            { .fd = ctx->conn.twin.fd, .events = POLLIN },
        };
        int64_t left;
        ssize_t n;
        int ret = twin_next(ctx, msg, true);

        if (ret != 0) {
            return ret;
        }
        ret = rx_next(ctx, s, msg, true);
        if (ret != 0) {
            return ret;
        }
        if (s->rx.eof) {
            return -ENOTCONN;
        }
        ret = tran_flush(ctx);
        if (ret < 0 && ret != -EAGAIN) {
            return ret;
        }
        n = rx_fill(ctx, s, true);
        if (n > 0) {
            continue;
        }
        if (n != -EAGAIN) {
            return (int)n;
        }
        if (s->tx_head != NULL) {
            pfd[0].events |= POLLOUT;
        }
        if (ctx->conn.twin.tx_head != NULL) {
            pfd[1].events |= POLLOUT;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        left = deadline_ms - ((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
        if (left <= 0) {
            return -ETIMEDOUT;
        }
        do {
            ret = poll(pfd, 2, (int)VFU_MIN(left, INT32_MAX));
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
    tran_wake_update(ctx);
    return 0;
}

void
tran_recv_reset(vfu_ctx_t *ctx)
{
    struct vfu_conn *conn = &ctx->conn;

    rx_reset(&conn->main.rx);
    rx_reset(&conn->twin.rx);
    while (conn->deferred_head != NULL) {
        struct vfu_msg msg;

        pop_deferred(ctx, &msg);
        msg_free(&msg);
    }
}
