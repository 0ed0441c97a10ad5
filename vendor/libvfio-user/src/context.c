/*
 * The life of a context: creation with its listening socket, realize,
 * teardown; the reset and quiesce callbacks and what a lost client does.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "private.h"

VFU_EXPORT vfu_ctx_t *
vfu_create_ctx(vfu_trans_t trans, const char *path, int flags, void *pvt, vfu_dev_type_t dev_type)
{
    vfu_ctx_t *ctx;
    int ret;

    if (flags & ~LIBVFIO_USER_FLAG_ATTACH_NB) {
        errno = EINVAL;
        return NULL;
    }
    if (trans != VFU_TRANS_SOCK || dev_type != VFU_DEV_TYPE_PCI) {
        errno = ENOTSUP;
        return NULL;
    }
    if (path == NULL) {
        errno = EINVAL;
        return NULL;
    }
    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        return NULL;
    }
    ctx->sock_path = strdup(path);
    if (ctx->sock_path == NULL) {
        free(ctx);
        errno = ENOMEM;
        return NULL;
    }
    ctx->pvt = pvt;
    ctx->flags = flags;
    ctx->listen_fd = -1;
    ctx->epoll_fd = -1;
    ctx->wake_fd = -1;
    ctx->newcomer_timer_fd = -1;
    for (size_t i = 0; i < NEWCOMERS_MAX; i++) {
        ctx->newcomers[i].fd = -1;
    }
    ctx->xfers.next_msg_id = 1;
    ctx->xfers.chunks_end = &ctx->xfers.chunks;
    ctx->xfers.reply_timeout_ms = DMA_REPLY_TIMEOUT_MS;
    ctx->conn.main.fd = -1;
    ctx->conn.twin.fd = -1;
    ctx->log_level = LOG_ERR;
    for (size_t i = 0; i < VFU_ARRAY_LEN(ctx->regions); i++) {
        ctx->regions[i].fd = -1;
    }
    ctx->irqs.count[VFU_DEV_ERR_IRQ] = 1;
    ctx->irqs.count[VFU_DEV_REQ_IRQ] = 1;

    ret = tran_listen(ctx);
    if (ret < 0) {
        free(ctx->sock_path);
        free(ctx);
        errno = -ret;
        return NULL;
    }
    return ctx;
}

VFU_EXPORT int
vfu_realize_ctx(vfu_ctx_t *vfu_ctx)
{
    int ret;

    if (vfu_ctx == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (vfu_ctx->realized) {
        return 0;
    }
    ret = pci_realize(vfu_ctx);
    if (ret == 0) {
        ret = irq_realize(vfu_ctx);
    }
    if (ret < 0) {
        errno = -ret;
        return -1;
    }
    vfu_ctx->realized = true;
    return 0;
}

VFU_EXPORT int
vfu_get_poll_fd(vfu_ctx_t *vfu_ctx)
{
    return vfu_ctx->epoll_fd;
}

VFU_EXPORT void *
vfu_get_private(vfu_ctx_t *vfu_ctx)
{
    return vfu_ctx->pvt;
}

VFU_EXPORT int
vfu_setup_device_reset_cb(vfu_ctx_t *vfu_ctx, vfu_reset_cb_t *reset)
{
    vfu_ctx->reset_cb = reset;
    return 0;
}

VFU_EXPORT void
vfu_setup_device_quiesce_cb(vfu_ctx_t *vfu_ctx, vfu_device_quiesce_cb_t *quiesce_cb)
{
    vfu_ctx->quiesce_cb = quiesce_cb;
}

int
ctx_call_reset(vfu_ctx_t *ctx, vfu_reset_type_t type)
{
    if (ctx->reset_cb == NULL) {
        return 0;
    }
    errno = 0;
    if (ctx->reset_cb(ctx, type) < 0) {
        return errno != 0 ? -errno : -EIO;
    }
    return 0;
}

ssize_t
ctx_call_region_cb(vfu_ctx_t *ctx, int idx, char *buf, size_t count, uint64_t offset, bool is_write)
{
    vfu_region_access_cb_t *cb = ctx->regions[idx].cb;
    ssize_t ret;

    if (cb == NULL) {
        vfu_err(ctx, "region %d has no access callback", idx);
        return -EINVAL;
    }
    errno = 0;
    ret = cb(ctx, buf, count, (loff_t)offset, is_write);
    if (ret < 0) {
        int err = errno != 0 ? errno : EIO;

        vfu_dbg(ctx, "region %d: %s of %zu bytes at %#" PRIx64 " failed: %d", idx,
                is_write ? "write" : "read", count, offset, err);
        return -err;
    }
    if ((size_t)ret != count) {
        vfu_err(ctx, "region %d: callback handled %zd of %zu bytes", idx, ret, count);
        return -EINVAL;
    }
    return ret;
}

int
ctx_quiesce(vfu_ctx_t *ctx)
{
    if (ctx->quiesce_cb == NULL || ctx->quiesced) {
        return 0;
    }
    errno = 0;
    if (ctx->quiesce_cb(ctx) < 0) {
        return errno != 0 ? -errno : -EIO;
    }
    ctx->quiesced = true;
    return 0;
}

/* What remains of a connection when it ends: the device, without its client. */
static void
drop_client_state(vfu_ctx_t *ctx)
{
    int ret;

    if (ctx->parked != NULL) {
        msg_free(ctx->parked);
        free(ctx->parked);
        ctx->parked = NULL;
    }
    dirty_logging_stop(ctx);
    dma_remove_all(ctx);
    ret = ctx_call_reset(ctx, VFU_RESET_LOST_CONN);
    if (ret < 0) {
        vfu_warn(ctx, "reset after lost connection failed: %s", strerror(-ret));
    }
    migration_abandon(ctx);
    irq_disconnect(ctx);
    tran_close_conn(ctx);
    /* Last, so that a callback starting another transfer finds no client. */
    dma_transfer_abort_all(ctx);
    ctx->quiesced = false;
}

int
ctx_lost_connection(vfu_ctx_t *ctx)
{
    int ret = ctx_quiesce(ctx);

    if (ret == -EBUSY) {
        /* vfu_device_quiesced() finishes the job. */
        ctx->reset_parked = true;
        return -EBUSY;
    }
    if (ret < 0) {
        vfu_warn(ctx, "quiesce after lost connection failed: %s", strerror(-ret));
    }
    drop_client_state(ctx);
    vfu_info(ctx, "client disconnected");
    return -ENOTCONN;
}

bool
device_reset_needs_quiesce(vfu_ctx_t *ctx, const struct vfu_msg *msg)
{
    return true;
}

int
handle_device_reset(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    int ret = ctx_call_reset(ctx, VFU_RESET_DEVICE);

    if (ret == 0) {
        pci_function_reset(ctx);
        migration_abandon(ctx);
    }
    return ret;
}

VFU_EXPORT void
vfu_destroy_ctx(vfu_ctx_t *vfu_ctx)
{
    vfu_ctx_t *ctx = vfu_ctx;

    if (ctx == NULL) {
        return;
    }
    /* Like upstream: no quiesce here, but the device hears the reset. */
    drop_client_state(ctx);
    ioeventfd_free(ctx);
    dma_free(ctx);
    irq_free(ctx);
    pci_free(ctx);
    region_free(ctx);
    if (ctx->listen_fd >= 0) {
        unlink(ctx->sock_path);
    }
    tran_close_listener(ctx);
    free(ctx->sock_path);
    free(ctx);
}
