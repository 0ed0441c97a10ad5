/*
 * Sending to the client: one sendmsg per message with its fds, and in
 * non-blocking mode a queue of what the socket could not take yet, so that
 * a slow client never stalls the thread.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <poll.h>

#include "private.h"
#include "transport.h"

/* Most queued messages one sendmsg takes when the queue is flushed. */
#define FLUSH_IOV_MAX 64

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

/*
 * The events to poll s for: the main socket's requests wait while replies
 * do (so a client that does not read them is not served more), unless our
 * own DMA messages await answers: a client such as QEMU may be blocked
 * writing one of those answers and read nothing until we take it. The twin
 * socket always takes the client's replies.
 */
static uint32_t
poll_events(vfu_ctx_t *ctx, const struct vfu_stream *s)
{
    if (s->tx_head == NULL) {
        return EPOLLIN;
    }
    if (s == &ctx->conn.twin || ctx->xfers.chunks != NULL) {
        return EPOLLIN | EPOLLOUT;
    }
    return EPOLLOUT;
}

/* Polls s for what poll_events says, with no system call when that is unchanged. */
static int
watch_stream(vfu_ctx_t *ctx, struct vfu_stream *s)
{
    uint32_t events = poll_events(ctx, s);
    int ret;

    if (events == s->watched) {
        return 0;
    }
    ret = tran_watch(ctx, EPOLL_CTL_MOD, s->fd, events);
    if (ret == 0) {
        s->watched = events;
    }
    return ret;
}

/* Keeps what the socket did not take, to go out when it has room. */
static int
tx_enqueue(vfu_ctx_t *ctx, struct vfu_stream *s, const struct iovec *iov, size_t iovcnt,
           const int *fds, size_t nr_fds)
{
    struct vfu_tx *tx;
    size_t len = 0;

    for (size_t i = 0; i < iovcnt; i++) {
        len += iov[i].iov_len;
    }
    if (len > TX_QUEUE_MAX - s->tx_bytes) {
        /* A client that does not read what we send is treated as gone. */
        vfu_err(ctx, "client is not reading: %zu bytes queued", s->tx_bytes);
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
    s->tx_bytes += len;
    if (s->tx_tail != NULL) {
        s->tx_tail->next = tx;
    } else {
        s->tx_head = tx;
    }
    s->tx_tail = tx;
    /* Again even when the queue was not empty: a DMA message may be new. */
    return watch_stream(ctx, s);
}

int
tran_sendv(vfu_ctx_t *ctx, bool for_twin, const struct vfio_user_header *hdr,
           const struct iovec *payload, size_t iovcnt, const int *fds, size_t nr_fds)
{
    struct vfu_stream *s = for_twin && ctx->conn.twin.fd >= 0 ? &ctx->conn.twin : &ctx->conn.main;
    struct iovec iovs[4] = {
        { .iov_base = (void *)hdr, .iov_len = sizeof(*hdr) },
    };
    struct iovec *iov = iovs;

    if (ctx->conn.main.fd < 0) {
        return -ENOTCONN;
    }
    if (nr_fds > SERVER_MAX_MSG_FDS || iovcnt >= VFU_ARRAY_LEN(iovs)) {
        return -EINVAL;
    }
    if (iovcnt > 0) {
        memcpy(iovs + 1, payload, iovcnt * sizeof(*payload));
    }
    iovcnt++;
    /* Behind queued output, a message waits its turn. */
    if (s->tx_head != NULL) {
        return tx_enqueue(ctx, s, iov, iovcnt, fds, nr_fds);
    }
    while (iovcnt > 0) {
        ssize_t n = send_once(s->fd, iov, iovcnt, fds, nr_fds);

        if (n == -EAGAIN) {
            int ret;

            if (tran_nonblocking(ctx)) {
                return tx_enqueue(ctx, s, iov, iovcnt, fds, nr_fds);
            }
            ret = tran_wait_fd(s->fd, POLLOUT, -1);
            if (ret < 0) {
                return ret;
            }
            continue;
        }
        if (n < 0) {
            return (int)n;
        }
        if (n > 0) {
            nr_fds = 0; /* they went with the first byte */
        }
        iov_advance(&iov, &iovcnt, (size_t)n);
    }
    return 0;
}

int
tran_send(vfu_ctx_t *ctx, const struct vfio_user_header *hdr, const void *payload, size_t len,
          const int *fds, size_t nr_fds)
{
    struct iovec iov = { .iov_base = (void *)payload, .iov_len = len };

    return tran_sendv(ctx, false, hdr, &iov, len > 0 ? 1 : 0, fds, nr_fds);
}

/*
 * Sends what s has queued, several messages a sendmsg (a burst of DMA
 * messages queues hundreds): 0 when none is left, -EAGAIN when some is,
 * -errno. A message with fds starts a sendmsg of its own, so that they go
 * with its first byte.
 */
static int
flush_stream(vfu_ctx_t *ctx, struct vfu_stream *s)
{
    if (s->tx_head == NULL) {
        return 0;
    }
    while (s->tx_head != NULL) {
        struct iovec iov[FLUSH_IOV_MAX];
        size_t iovcnt = 0;
        const struct vfu_tx *head = s->tx_head;
        size_t nr_fds = head->sent == 0 ? head->nr_fds : 0;
        ssize_t n;

        for (const struct vfu_tx *tx = head; tx != NULL && iovcnt < FLUSH_IOV_MAX; tx = tx->next) {
            if (tx != head && tx->nr_fds > 0) {
                break;
            }
            iov[iovcnt].iov_base = tx->data + tx->sent;
            iov[iovcnt].iov_len = tx->len - tx->sent;
            iovcnt++;
        }
        n = send_once(s->fd, iov, iovcnt, head->fds, nr_fds);
        if (n == -EAGAIN) {
            /* The events may have changed since: a DMA transfer ended. */
            int ret = watch_stream(ctx, s);

            return ret < 0 ? ret : -EAGAIN;
        }
        if (n < 0) {
            return (int)n;
        }
        s->tx_bytes -= (size_t)n;
        while (n > 0) {
            struct vfu_tx *tx = s->tx_head;
            size_t step = VFU_MIN((size_t)n, tx->len - tx->sent);

            tx->sent += step;
            n -= (ssize_t)step;
            if (tx->sent < tx->len) {
                break;
            }
            s->tx_head = tx->next;
            if (s->tx_head == NULL) {
                s->tx_tail = NULL;
            }
            free(tx->data);
            free(tx);
        }
    }
    return watch_stream(ctx, s);
}

int
tran_flush(vfu_ctx_t *ctx)
{
    /* Our own commands waiting on the twin socket never hold requests back. */
    int ret = flush_stream(ctx, &ctx->conn.twin);

    if (ret < 0 && ret != -EAGAIN) {
        return ret;
    }
    ret = flush_stream(ctx, &ctx->conn.main);
    tran_wake_update(ctx);
    return ret;
}

static void
tx_drop(struct vfu_stream *s)
{
    while (s->tx_head != NULL) {
        struct vfu_tx *tx = s->tx_head;

        s->tx_head = tx->next;
        free(tx->data);
        free(tx);
    }
    s->tx_tail = NULL;
    s->tx_bytes = 0;
}

void
tran_send_reset(vfu_ctx_t *ctx)
{
    tx_drop(&ctx->conn.main);
    tx_drop(&ctx->conn.twin);
}
