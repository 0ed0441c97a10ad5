/*
 * Attaching a client and serving its requests: the receive loop, request
 * validation, quiescing before the requests that need it, dispatch to the
 * command handlers and the replies.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "private.h"

/*
 * A command's handler, and the rule (from the file that owns its payload)
 * saying whether a request of it needs the device quiesced first.
 */
struct command {
    vfu_cmd_handler_t handler;
    vfu_cmd_quiesce_t *needs_quiesce; /* NULL: never */
    bool payload_optional;            /* only DEVICE_RESET may come bare */
};

/* Commands a client may send once attached, by number. */
static const struct command commands[VFIO_USER_MAX] = {
    [VFIO_USER_DMA_MAP] = { handle_dma_map, dma_needs_quiesce, false },
    [VFIO_USER_DMA_UNMAP] = { handle_dma_unmap, dma_needs_quiesce, false },
    [VFIO_USER_DEVICE_GET_INFO] = { handle_device_get_info, NULL, false },
    [VFIO_USER_DEVICE_GET_REGION_INFO] = { handle_device_get_region_info, NULL, false },
    [VFIO_USER_DEVICE_GET_REGION_IO_FDS] = { handle_device_get_region_io_fds, NULL, false },
    [VFIO_USER_DEVICE_GET_IRQ_INFO] = { handle_device_get_irq_info, NULL, false },
    [VFIO_USER_DEVICE_SET_IRQS] = { handle_device_set_irqs, NULL, false },
    [VFIO_USER_REGION_READ] = { handle_region_read, NULL, false },
    [VFIO_USER_REGION_WRITE] = { handle_region_write, region_write_needs_quiesce, false },
    [VFIO_USER_DEVICE_RESET] = { handle_device_reset, device_reset_needs_quiesce, true },
    [VFIO_USER_REGION_WRITE_MULTI] = { handle_region_write_multi, region_write_multi_needs_quiesce,
                                       false },
    [VFIO_USER_DEVICE_FEATURE] = { handle_device_feature, device_feature_needs_quiesce, false },
    [VFIO_USER_MIG_DATA_READ] = { handle_mig_data_read, NULL, false },
    [VFIO_USER_MIG_DATA_WRITE] = { handle_mig_data_write, NULL, false },
};

void *
msg_reply_alloc(struct vfu_msg *msg, size_t len)
{
    free(msg->out);
    msg->out = calloc(1, VFU_MAX(len, 1));
    msg->out_len = msg->out != NULL ? len : 0;
    return msg->out;
}

int
msg_reply_add_fd(struct vfu_msg *msg, int fd)
{
    if (msg->nr_out_fds >= SERVER_MAX_MSG_FDS) {
        return -ENOSPC;
    }
    msg->out_fds[msg->nr_out_fds++] = fd;
    return 0;
}

int
msg_take_fd(struct vfu_msg *msg, size_t idx)
{
    int fd;

    if (idx >= msg->nr_in_fds) {
        return -1;
    }
    fd = msg->in_fds[idx];
    msg->in_fds[idx] = -1;
    return fd;
}

int
msg_own_payload(struct vfu_msg *msg)
{
    uint8_t *copy;

    if (!msg->in_borrowed) {
        return 0;
    }
    copy = malloc(msg->in_len);
    if (copy == NULL) {
        return -ENOMEM;
    }
    memcpy(copy, msg->in, msg->in_len);
    msg->in = copy;
    msg->in_borrowed = false;
    return 0;
}

void
msg_free(struct vfu_msg *msg)
{
    for (size_t i = 0; i < msg->nr_in_fds; i++) {
        if (msg->in_fds[i] >= 0) {
            close(msg->in_fds[i]);
        }
    }
    free(msg->in_fds);
    for (size_t i = 0; msg->out_fds_owned && i < msg->nr_out_fds; i++) {
        close(msg->out_fds[i]);
    }
    if (!msg->in_borrowed) {
        free(msg->in);
    }
    free(msg->out);
    memset(msg, 0, sizeof(*msg));
}

/* Sends the reply to msg: its payload on success, the header alone on error. */
static int
send_reply(vfu_ctx_t *ctx, struct vfu_msg *msg, int err)
{
    struct vfio_user_header hdr = {
        .msg_id = msg->hdr.msg_id,
        .cmd = msg->hdr.cmd,
        .msg_size = sizeof(hdr),
        .flags = VFIO_USER_F_TYPE_REPLY,
    };

    if (msg->hdr.flags & VFIO_USER_F_NO_REPLY) {
        return 0;
    }
    if (err != 0) {
        hdr.flags |= VFIO_USER_F_ERROR;
        hdr.error_no = (uint32_t)err;
        return tran_send(ctx, &hdr, NULL, 0, NULL, 0);
    }
    hdr.msg_size += (uint32_t)msg->out_len;
    return tran_send(ctx, &hdr, msg->out, msg->out_len, msg->out_fds, msg->nr_out_fds);
}

static bool
is_reply(const struct vfu_msg *msg)
{
    return (msg->hdr.flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_REPLY;
}

/*
 * A message on the twin socket that is no reply to one of our commands: the
 * client gets an error there for a command, a stray reply is dropped.
 */
static int
answer_on_twin(vfu_ctx_t *ctx, const struct vfu_msg *msg)
{
    struct vfio_user_header hdr = {
        .msg_id = msg->hdr.msg_id,
        .cmd = msg->hdr.cmd,
        .msg_size = sizeof(hdr),
        .flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR,
        .error_no = EINVAL,
    };

    if (is_reply(msg)) {
        vfu_warn(ctx, "msg%#x: dropped a stray reply on the twin socket", msg->hdr.msg_id);
        return 0;
    }
    vfu_err(ctx,
            "msg%#x: command %u on the twin socket, which carries only "
            "replies to ours",
            msg->hdr.msg_id, msg->hdr.cmd);
    if (msg->hdr.flags & VFIO_USER_F_NO_REPLY) {
        return 0;
    }
    return tran_sendv(ctx, true, &hdr, NULL, 0, NULL, 0);
}

/* Checks what every request must satisfy; 0 or the errno to answer. */
static int
validate_request(vfu_ctx_t *ctx, const struct vfu_msg *msg)
{
    uint16_t cmd = msg->hdr.cmd;

    if ((msg->hdr.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_COMMAND) {
        vfu_err(ctx, "msg%#x: not a command (flags %#x)", msg->hdr.msg_id, msg->hdr.flags);
        return EINVAL;
    }
    if (cmd >= VFIO_USER_MAX || commands[cmd].handler == NULL) {
        vfu_err(ctx, "msg%#x: command %u is not one a client may send", msg->hdr.msg_id, cmd);
        return EINVAL;
    }
    if (msg->in_len == 0 && !commands[cmd].payload_optional) {
        vfu_err(ctx, "msg%#x: command %u without payload", msg->hdr.msg_id, cmd);
        return EINVAL;
    }
    if (msg->nr_in_fds > SERVER_MAX_MSG_FDS || msg->fds_lost) {
        vfu_err(ctx, "msg%#x: more than %d fds", msg->hdr.msg_id, SERVER_MAX_MSG_FDS);
        return EINVAL;
    }
    if (!migration_allows_command(ctx, cmd)) {
        vfu_err(ctx, "msg%#x: command %u refused in migration state %u", msg->hdr.msg_id, cmd,
                ctx->migr_state);
        return EINVAL;
    }
    return 0;
}

/* Whether the device must be quiesced before this request runs. */
static bool
needs_quiesce(vfu_ctx_t *ctx, const struct vfu_msg *msg)
{
    vfu_cmd_quiesce_t *rule = commands[msg->hdr.cmd].needs_quiesce;

    return ctx->quiesce_cb != NULL && !ctx->quiesced && rule != NULL && rule(ctx, msg);
}

/* Runs a validated request and replies; returns 0 or -errno of the send. */
static int
dispatch(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    int ret = commands[msg->hdr.cmd].handler(ctx, msg);

    if (ret > 0) {
        ret = 0;
    }
    ret = send_reply(ctx, msg, -ret);
    ctx->quiesced = false;
    return ret;
}

/*
 * Handles one received request. Returns 0 when answered, -EBUSY when it is
 * parked until the device finishes quiescing, or the -errno of a failed send.
 */
static int
process_request(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    int err = validate_request(ctx, msg);

    if (err != 0) {
        return send_reply(ctx, msg, err);
    }
    if (needs_quiesce(ctx, msg)) {
        int ret = ctx_quiesce(ctx);

        if (ret == -EBUSY) {
            ctx->parked = malloc(sizeof(*msg));
            if (ctx->parked == NULL || msg_own_payload(msg) < 0) {
                free(ctx->parked);
                ctx->parked = NULL;
                return send_reply(ctx, msg, ENOMEM);
            }
            *ctx->parked = *msg;
            memset(msg, 0, sizeof(*msg));
            return -EBUSY;
        }
        if (ret < 0) {
            return send_reply(ctx, msg, -ret);
        }
    }
    return dispatch(ctx, msg);
}

/* Answers the first message, which must be a VERSION command; 0 or -errno. */
static int
handle_first_message(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    int ret;

    if ((msg->hdr.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_COMMAND) {
        vfu_err(ctx, "first message is not a command (flags %#x)", msg->hdr.flags);
        ret = -EINVAL;
    } else {
        ret = handle_version(ctx, msg);
    }
    if (ret == 0) {
        return send_reply(ctx, msg, 0);
    }
    send_reply(ctx, msg, -ret);
    return ret;
}

static int
fail(int err)
{
    errno = err;
    return -1;
}

VFU_EXPORT int
vfu_attach_ctx(vfu_ctx_t *vfu_ctx)
{
    vfu_ctx_t *ctx = vfu_ctx;
    struct vfu_msg msg = { 0 };
    int ret;

    if (ctx == NULL) {
        return fail(EINVAL);
    }
    if (ctx->reset_parked) {
        return fail(EBUSY);
    }
    if (ctx->conn.negotiated) {
        return fail(EINVAL);
    }
    if (ctx->conn.main.fd < 0) {
        ret = tran_accept(ctx);
        if (ret < 0) {
            return fail(-ret);
        }
    }
    /* The VERSION request, which may arrive in pieces in non-blocking mode. */
    ret = tran_recv_msg(ctx, &msg);
    while (ret == 0) {
        /* Still incomplete: a client waiting behind this one takes its place. */
        ret = tran_accept(ctx);
        if (ret < 0) {
            return fail(-ret);
        }
        ret = tran_recv_msg(ctx, &msg);
    }
    if (ret > 0) {
        ret = handle_first_message(ctx, &msg);
    } else if (ret == -EINVAL || ret == -E2BIG) {
        vfu_err(ctx, "first message size %u is out of range", msg.hdr.msg_size);
        send_reply(ctx, &msg, EINVAL);
    }
    msg_free(&msg);
    if (ret == 0) {
        ret = tran_attached(ctx);
    }
    if (ret < 0) {
        vfu_info(ctx, "client rejected at negotiation: %s", strerror(-ret));
        tran_close_conn(ctx);
        return fail(ret == -E2BIG ? EINVAL : -ret);
    }
    vfu_info(ctx, "client attached, protocol 0.%u", ctx->conn.minor);
    return 0;
}

static int
lost_connection(vfu_ctx_t *ctx)
{
    int ret = ctx_lost_connection(ctx);

    return fail(ret == -EBUSY ? EBUSY : ENOTCONN);
}

/*
 * While the client has not taken our replies, its requests wait, but the
 * answers to our DMA messages are taken: a client such as QEMU may be
 * blocked writing one and read nothing until we do. What else comes is kept
 * for later, in order, within DEFERRED_MAX. 0, or -errno.
 */
static int
take_dma_replies(vfu_ctx_t *ctx)
{
    while (ctx->xfers.chunks != NULL) {
        struct vfu_msg msg = { 0 };
        int ret = tran_wait_msg(ctx, &msg, 0);

        if (ret == 1 && is_reply(&msg) && dma_transfer_reply(ctx, &msg)) {
            msg_free(&msg);
            continue;
        }
        if (ret != 1 && ret != -EINVAL && ret != -E2BIG) {
            msg_free(&msg);
            return ret == -ETIMEDOUT ? 0 : ret;
        }
        ret = tran_defer_msg(ctx, &msg, ret);
        if (ret < 0) {
            msg_free(&msg);
            return ret;
        }
        if (ctx->conn.deferred_bytes > DEFERRED_MAX) {
            vfu_err(ctx, "client is not reading: it sent over %u bytes meanwhile", DEFERRED_MAX);
            return -ENOBUFS;
        }
    }
    return 0;
}

/* Serves the attached client's requests: how many, or -1 with errno. */
static int
serve_client(vfu_ctx_t *ctx)
{
    int handled = 0;

    /*
     * A caller comes back when the poll fd says so, or on its own: either way
     * the socket is worth reading again (see tran_recv_msg).
     */
    ctx->conn.main.rx.drained = false;
    /* A blocking context waits inside tran_recv_msg and never sees 0. */
    for (;;) {
        struct vfu_msg msg = { 0 };
        int ret = tran_flush(ctx);

        if (ret == -EAGAIN) {
            /* The client has not taken its replies: read no more for now. */
            ret = take_dma_replies(ctx);
            if (ret < 0) {
                vfu_err(ctx, "receive failed: %s", strerror(-ret));
                return lost_connection(ctx);
            }
            return handled;
        }
        if (ret < 0) {
            vfu_err(ctx, "reply failed: %s", strerror(-ret));
            return lost_connection(ctx);
        }
        ret = tran_recv_msg(ctx, &msg);

        if (ret == 0) {
            return handled;
        }
        if (ret == -ENOTCONN) {
            msg_free(&msg);
            return lost_connection(ctx);
        }
        if (ret == -EINTR) {
            return fail(EINTR);
        }
        if (msg.from_twin && (ret == 1 || ret == -EINVAL || ret == -E2BIG)) {
            ret = ret == 1 && is_reply(&msg) && dma_transfer_reply(ctx, &msg)
                      ? 0
                      : answer_on_twin(ctx, &msg);
        } else if (ret == -EINVAL || ret == -E2BIG) {
            vfu_err(ctx, "msg%#x: message size %u is out of range", msg.hdr.msg_id,
                    msg.hdr.msg_size);
            ret = send_reply(ctx, &msg, EINVAL);
        } else if (ret < 0) {
            msg_free(&msg);
            vfu_err(ctx, "receive failed: %s", strerror(-ret));
            return lost_connection(ctx);
        } else if (is_reply(&msg) && dma_transfer_reply(ctx, &msg)) {
            ret = 0;
        } else {
            ret = process_request(ctx, &msg);
        }
        msg_free(&msg);
        if (ret == -EBUSY) {
            return fail(EBUSY);
        }
        if (ret < 0) {
            vfu_err(ctx, "reply failed: %s", strerror(-ret));
            return lost_connection(ctx);
        }
        handled++;
    }
}

VFU_EXPORT int
vfu_run_ctx(vfu_ctx_t *vfu_ctx)
{
    vfu_ctx_t *ctx = vfu_ctx;
    int ret;

    if (ctx == NULL || !ctx->realized) {
        return fail(EINVAL);
    }
    if (ctx->parked != NULL || ctx->reset_parked) {
        if (ctx->conn.negotiated) {
            tran_serve_newcomers(ctx, false);
        }
        return fail(EBUSY);
    }
    if (!ctx->conn.negotiated) {
        return fail(ENOTCONN);
    }
    ret = serve_client(ctx);
    if (ctx->conn.negotiated) {
        int err = errno;

        tran_serve_newcomers(ctx, ret > 0);
        errno = err;
    }
    return ret;
}

VFU_EXPORT int
vfu_device_quiesced(vfu_ctx_t *vfu_ctx, int quiesce_errno)
{
    vfu_ctx_t *ctx = vfu_ctx;
    struct vfu_msg *msg;
    int ret;

    if (ctx == NULL || ctx->quiesce_cb == NULL || (ctx->parked == NULL && !ctx->reset_parked)) {
        return fail(EINVAL);
    }
    if (ctx->reset_parked) {
        ctx->reset_parked = false;
        ctx->quiesced = true;
        ctx_lost_connection(ctx);
        return 0;
    }
    msg = ctx->parked;
    ctx->parked = NULL;
    if (quiesce_errno != 0) {
        /* Upstream drops the request silently; a reply keeps the client going. */
        ret = send_reply(ctx, msg, quiesce_errno);
    } else {
        ctx->quiesced = true;
        ret = dispatch(ctx, msg);
    }
    msg_free(msg);
    free(msg);
    if (ret < 0) {
        /*
         * The reply found the client gone. The device is still quiesced for
         * that request, so the reset that follows runs now, without asking
         * it a second time, as upstream's; vfu_run_ctx says ENOTCONN next.
         */
        ctx->quiesced = true;
        ctx_lost_connection(ctx);
    }
    return 0;
}
