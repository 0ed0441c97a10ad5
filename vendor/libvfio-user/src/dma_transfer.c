/*
 * Client memory reached through DMA_READ / DMA_WRITE messages: for mappings
 * the client gave no fd for, and for every access made without
 * VFU_SGL_DIRECT_ACCESS.
 *
 * A transfer is cut into messages of at most the smaller of the two sides'
 * max_data_xfer_size (a DMA_READ reply must fit what we accept), and a
 * DMA_READ at most DMA_READ_CHUNK_MAX (so that QEMU sends its reply whole),
 * each with its own message id from a counter that starts at 1. At most
 * DMA_INFLIGHT_MAX bytes of them await replies at a time, per kind of
 * transfer, so a large transfer never fills the output queue.
 *
 * A blocking transfer (vfu_sgl_read / vfu_sgl_write) reads the connection
 * itself until its replies are in; every other message that arrives
 * meanwhile, replies to asynchronous transfers included, is kept in order
 * for vfu_run_ctx (tran_defer_msg). An asynchronous transfer gets its
 * replies from the run loop (dma_transfer_reply) and ends with a callback.
 *
 * A reply must echo the request's address and count. A count that is
 * smaller is a short transfer, which the spec lets a client report: it
 * fails with EIO. Any other mismatch (address, a larger count, a payload
 * that does not match the count) is a malformed reply: EINVAL, as upstream.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "private.h"

struct dma_xfer {
    struct dma_xfer *next;
    uint64_t iova;
    size_t len;
    uint8_t *data;
    bool is_write;
    bool blocking;
    size_t requested; /* bytes asked for so far */
    size_t completed; /* bytes whose replies arrived */
    size_t inflight;  /* requested, not completed: blocking only */
    size_t pending;   /* messages awaiting replies */
    int error;        /* first failure (positive errno), or 0 */
    dma_transfer_done_t *done;
    void *cookie;
};

struct dma_chunk {
    struct dma_chunk *next;
    struct dma_xfer *xfer;
    uint16_t msg_id;
    uint16_t cmd;
    uint64_t addr;
    size_t offset; /* into the transfer's data */
    size_t count;
};

/* Both sides' message limits hold for a chunk: ours bounds the reply. */
static size_t
chunk_limit(vfu_ctx_t *ctx, bool is_write)
{
    uint64_t limit =
        VFU_MIN(ctx->conn.client_max_data_xfer_size, (uint64_t)SERVER_MAX_DATA_XFER_SIZE);

    if (!is_write) {
        limit = VFU_MIN(limit, (uint64_t)DMA_READ_CHUNK_MAX);
    }
    return (size_t)VFU_MAX(limit, 1);
}

static uint16_t
next_msg_id(vfu_ctx_t *ctx)
{
    uint16_t id = ctx->xfers.next_msg_id++;

    if (ctx->xfers.next_msg_id == 0) {
        ctx->xfers.next_msg_id = 1;
    }
    return id;
}

/* Sends the next message of x; 0 or -errno (nothing sent). */
static int
send_chunk(vfu_ctx_t *ctx, struct dma_xfer *x)
{
    struct dma_chunk *c = calloc(1, sizeof(*c));
    struct vfio_user_dma_region_access access;
    struct vfio_user_header hdr = { 0 };
    struct iovec iov[2];
    int ret;

    if (c == NULL) {
        return -ENOMEM;
    }
    c->xfer = x;
    c->cmd = x->is_write ? VFIO_USER_DMA_WRITE : VFIO_USER_DMA_READ;
    c->offset = x->requested;
    c->count = VFU_MIN(chunk_limit(ctx, x->is_write), x->len - x->requested);
    c->addr = x->iova + c->offset;
    c->msg_id = next_msg_id(ctx);
    access.addr = c->addr;
    access.count = c->count;
    hdr.msg_id = c->msg_id;
    hdr.cmd = c->cmd;
    hdr.msg_size = (uint32_t)(sizeof(hdr) + sizeof(access) + (x->is_write ? c->count : 0));
    iov[0].iov_base = &access;
    iov[0].iov_len = sizeof(access);
    iov[1].iov_base = x->data + c->offset;
    iov[1].iov_len = c->count;
    /* On the twin socket when the client has one for our commands. */
    ret = tran_sendv(ctx, true, &hdr, iov, x->is_write ? 2 : 1, NULL, 0);
    if (ret < 0) {
        free(c);
        return ret;
    }
    /* At the end: the client answers mostly in order, so find_chunk looks at the front. */
    *ctx->xfers.chunks_end = c;
    ctx->xfers.chunks_end = &c->next;
    x->requested += c->count;
    x->pending++;
    if (x->blocking) {
        x->inflight += c->count;
    } else {
        ctx->xfers.inflight += c->count;
    }
    return 0;
}

/* Sends what the window allows of x; 0 or -errno of a failed send. */
static int
pump(vfu_ctx_t *ctx, struct dma_xfer *x)
{
    while (x->requested < x->len && x->error == 0) {
        size_t inflight = x->blocking ? x->inflight : ctx->xfers.inflight;
        size_t next = VFU_MIN(chunk_limit(ctx, x->is_write), x->len - x->requested);
        int ret;

        /* One message always goes, however large. */
        if (inflight > 0 && inflight + next > DMA_INFLIGHT_MAX) {
            return 0;
        }
        ret = send_chunk(ctx, x);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

static void
drop_chunk(vfu_ctx_t *ctx, struct dma_chunk **link)
{
    struct dma_chunk *c = *link;

    *link = c->next;
    if (c->next == NULL) {
        ctx->xfers.chunks_end = link;
    }
    c->xfer->pending--;
    if (c->xfer->blocking) {
        c->xfer->inflight -= c->count;
    } else {
        ctx->xfers.inflight -= c->count;
    }
    free(c);
}

/* Forgets every message of x still awaiting a reply: late replies are dropped. */
static void
drop_chunks_of(vfu_ctx_t *ctx, struct dma_xfer *x)
{
    struct dma_chunk **link = &ctx->xfers.chunks;

    while (*link != NULL && x->pending > 0) {
        if ((*link)->xfer == x) {
            drop_chunk(ctx, link);
        } else {
            link = &(*link)->next;
        }
    }
}

static struct dma_chunk **
find_chunk(vfu_ctx_t *ctx, uint16_t msg_id)
{
    for (struct dma_chunk **link = &ctx->xfers.chunks; *link != NULL; link = &(*link)->next) {
        if ((*link)->msg_id == msg_id) {
            return link;
        }
    }
    return NULL;
}

/* Checks a reply against its request and takes its data; 0 or an errno. */
static int
take_reply(vfu_ctx_t *ctx, const struct dma_chunk *c, const struct vfu_msg *msg)
{
    struct vfio_user_dma_region_access access;
    size_t data_len;

    if (msg->hdr.flags & VFIO_USER_F_ERROR) {
        vfu_err(ctx, "msg%#x: the client failed DMA %s of %#zx bytes at %#" PRIx64 ": %s",
                c->msg_id, c->cmd == VFIO_USER_DMA_READ ? "read" : "write", c->count, c->addr,
                strerror((int)msg->hdr.error_no));
        return msg->hdr.error_no != 0 ? (int)msg->hdr.error_no : EIO;
    }
    if (msg->hdr.cmd != c->cmd || msg->in_len < sizeof(access)) {
        vfu_err(ctx, "msg%#x: malformed reply to a DMA message", c->msg_id);
        return EINVAL;
    }
    memcpy(&access, msg->in, sizeof(access));
    data_len = msg->in_len - sizeof(access);
    if (access.addr != c->addr || access.count > c->count ||
        data_len != (c->cmd == VFIO_USER_DMA_READ ? access.count : 0)) {
        vfu_err(ctx,
                "msg%#x: DMA reply for %#" PRIx64 "+%#" PRIx64 " (%zu bytes) does "
                "not answer %#" PRIx64 "+%#zx",
                c->msg_id, access.addr, access.count, data_len, c->addr, c->count);
        return EINVAL;
    }
    if (access.count < c->count) {
        vfu_err(ctx, "msg%#x: the client moved %#" PRIx64 " of %#zx bytes", c->msg_id, access.count,
                c->count);
        return EIO;
    }
    if (c->cmd == VFIO_USER_DMA_READ) {
        memcpy(c->xfer->data + c->offset, msg->in + sizeof(access), c->count);
    }
    return 0;
}

/* Applies the reply to the message at *link (which it removes). */
static void
complete_chunk(vfu_ctx_t *ctx, struct dma_chunk **link, const struct vfu_msg *msg)
{
    struct dma_xfer *x = (*link)->xfer;
    size_t count = (*link)->count;
    int err = take_reply(ctx, *link, msg);

    drop_chunk(ctx, link);
    if (err != 0) {
        x->error = err;
        drop_chunks_of(ctx, x);
    } else {
        x->completed += count;
    }
}

/* ------------------------------------------------------------ asynchronous */

static void
unlink_xfer(vfu_ctx_t *ctx, struct dma_xfer *x)
{
    struct dma_xfer **link = &ctx->xfers.head;

    while (*link != x) {
        link = &(*link)->next;
    }
    *link = x->next;
    if (ctx->xfers.unsent == x) {
        ctx->xfers.unsent = x->next;
    }
    if (ctx->xfers.tail == x) {
        ctx->xfers.tail = NULL;
        for (struct dma_xfer *t = ctx->xfers.head; t != NULL; t = t->next) {
            ctx->xfers.tail = t;
        }
    }
}

static void
finish(vfu_ctx_t *ctx, struct dma_xfer *x, int error)
{
    drop_chunks_of(ctx, x);
    unlink_xfer(ctx, x);
    x->done(ctx, x->cookie, error);
    free(x);
}

static bool
has_unsent(const struct dma_xfer *x)
{
    return x->requested < x->len && x->error == 0;
}

/*
 * Sends what the window allows, oldest transfer first, from the first one
 * with bytes left to ask for (so a reply costs no walk over transfers that
 * only await replies), up to the first one the window holds back. A
 * transfer whose send fails ends with that error once nothing of it is in
 * flight.
 */
static void
pump_all(vfu_ctx_t *ctx)
{
    struct dma_xfer *x = ctx->xfers.unsent;

    /* Set again below, or by a transfer that a callback of finish() starts. */
    ctx->xfers.unsent = NULL;
    while (x != NULL) {
        struct dma_xfer *next = x->next;
        int ret = pump(ctx, x);

        if (ret < 0 && x->error == 0) {
            x->error = -ret;
        }
        if (has_unsent(x)) {
            ctx->xfers.unsent = x;
            return;
        }
        if (x->error != 0 && x->pending == 0) {
            finish(ctx, x, x->error);
        }
        x = next;
    }
}

int
dma_transfer_start(vfu_ctx_t *ctx, uint64_t iova, size_t len, void *data, bool is_write,
                   dma_transfer_done_t *done, void *cookie)
{
    struct dma_xfer *x;
    int ret;

    if (ctx == NULL || data == NULL || done == NULL || len == 0) {
        return -EINVAL;
    }
    if (!ctx->conn.negotiated) {
        return -ENOTCONN;
    }
    ret = dma_check_range(ctx, iova, len, is_write);
    if (ret < 0) {
        return ret;
    }
    x = calloc(1, sizeof(*x));
    if (x == NULL) {
        return -ENOMEM;
    }
    x->iova = iova;
    x->len = len;
    x->data = data;
    x->is_write = is_write;
    x->done = done;
    x->cookie = cookie;
    if (ctx->xfers.tail != NULL) {
        ctx->xfers.tail->next = x;
    } else {
        ctx->xfers.head = x;
    }
    ctx->xfers.tail = x;
    ret = pump(ctx, x);
    if (ret < 0) {
        if (x->pending == 0) {
            /* Nothing went out: as if never started. */
            unlink_xfer(ctx, x);
            free(x);
            return ret;
        }
        x->error = -ret;
    }
    if (ctx->xfers.unsent == NULL && has_unsent(x)) {
        ctx->xfers.unsent = x;
    }
    return 0;
}

bool
dma_transfer_reply(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct dma_chunk **link;
    struct dma_xfer *x;

    if (msg->hdr.cmd != VFIO_USER_DMA_READ && msg->hdr.cmd != VFIO_USER_DMA_WRITE) {
        return false;
    }
    link = find_chunk(ctx, msg->hdr.msg_id);
    if (link == NULL) {
        /* A transfer that failed or timed out may still get its replies. */
        vfu_warn(ctx, "msg%#x: dropped a DMA reply nothing waits for", msg->hdr.msg_id);
        return true;
    }
    x = (*link)->xfer;
    complete_chunk(ctx, link, msg);
    if (x->error != 0 || x->completed == x->len) {
        finish(ctx, x, x->error);
    }
    pump_all(ctx);
    return true;
}

void
dma_transfer_abort_all(vfu_ctx_t *ctx)
{
    while (ctx->xfers.head != NULL) {
        finish(ctx, ctx->xfers.head, ENOTCONN);
    }
}

/* ---------------------------------------------------------------- blocking */

int
dma_transfer_wait(vfu_ctx_t *ctx, uint64_t iova, size_t len, void *data, bool is_write)
{
    struct dma_xfer x = {
        .iova = iova,
        .len = len,
        .data = data,
        .is_write = is_write,
        .blocking = true,
    };

    if (!ctx->conn.negotiated) {
        return -ENOTCONN;
    }
    while (x.error == 0 && x.completed < x.len) {
        struct vfu_msg msg = { 0 };
        struct dma_chunk **link;
        int ret = pump(ctx, &x);

        if (ret < 0) {
            x.error = -ret;
            break;
        }
        ret = tran_wait_msg(ctx, &msg, ctx->xfers.reply_timeout_ms);
        if (ret == 1 && (msg.hdr.flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_REPLY &&
            (link = find_chunk(ctx, msg.hdr.msg_id)) != NULL && (*link)->xfer == &x) {
            complete_chunk(ctx, link, &msg);
            msg_free(&msg);
            continue;
        }
        if (ret != 1 && ret != -EINVAL && ret != -E2BIG) {
            msg_free(&msg);
            if (ret == -ETIMEDOUT) {
                vfu_err(ctx, "no reply to a DMA message in %d ms", ctx->xfers.reply_timeout_ms);
            }
            x.error = -ret;
            break;
        }
        /* Not ours: served by vfu_run_ctx later, in order. */
        ret = tran_defer_msg(ctx, &msg, ret);
        if (ret < 0) {
            msg_free(&msg);
            x.error = -ret;
        } else if (ctx->conn.deferred_bytes > DEFERRED_MAX) {
            vfu_err(ctx, "the client sent over %u bytes during a DMA transfer", DEFERRED_MAX);
            x.error = ENOBUFS;
        }
    }
    drop_chunks_of(ctx, &x);
    return -x.error;
}
