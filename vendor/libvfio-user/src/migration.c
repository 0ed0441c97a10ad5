/*
 * Migration: the device's callbacks and the client's migration commands.
 *
 * Only registration exists so far. The migration protocol itself
 * (DEVICE_FEATURE MIGRATION / MIG_DEVICE_STATE / DMA_LOGGING_*, MIG_DATA_READ
 * and MIG_DATA_WRITE) is not implemented yet: with migration registered those
 * requests answer ENOTSUP; without it they are invalid, as upstream answers.
 */
#include <errno.h>

#include "private.h"

VFU_EXPORT int
vfu_setup_device_migration_callbacks(vfu_ctx_t *ctx,
                                     const vfu_migration_callbacks_t *callbacks)
{
    if (ctx == NULL || callbacks == NULL ||
        callbacks->version != VFU_MIGR_CALLBACKS_VERS ||
        callbacks->transition == NULL || callbacks->read_data == NULL ||
        callbacks->write_data == NULL) {
        errno = EINVAL;
        return -1;
    }
    ctx->migr_cbs = *callbacks;
    ctx->migration_enabled = true;
    return 0;
}

int handle_device_feature(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    if (!ctx->migration_enabled ||
        msg->in_len < sizeof(struct vfio_user_device_feature)) {
        return -EINVAL;
    }
    return -ENOTSUP;
}

int handle_mig_data_read(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    (void)msg;
    return ctx->migration_enabled ? -ENOTSUP : -EINVAL;
}

int handle_mig_data_write(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    (void)msg;
    return ctx->migration_enabled ? -ENOTSUP : -EINVAL;
}
