/*
 * Our extensions to the upstream API (include/libvfio-user-ext.h): thin
 * public doors onto state the other files own.
 */
#include <string.h>

#include "libvfio-user-ext.h"
#include "private.h"

VFU_EXPORT enum vfu_dev_irq_type
vfu_ext_irq_mode(vfu_ctx_t *ctx)
{
    if (ctx == NULL) {
        errno = EINVAL;
        return (enum vfu_dev_irq_type) - 1;
    }
    return (enum vfu_dev_irq_type)irq_mode(ctx);
}

VFU_EXPORT int
vfu_ext_irq_trigger(vfu_ctx_t *ctx, enum vfu_dev_irq_type type, uint32_t vector)
{
    if (ctx == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (type == VFU_DEV_ERR_IRQ || type == VFU_DEV_REQ_IRQ) {
        int ret = irq_signal_event(ctx, (int)type);

        if (ret < 0) {
            errno = -ret;
            return -1;
        }
        return 1;
    }
    /* The mode is worked out once: each look walks the capability list. */
    if (irq_mode(ctx) != (int)type) {
        return 0;
    }
    return irq_trigger_in_mode(ctx, (int)type, vector) == 0 ? 1 : -1;
}

VFU_EXPORT int
vfu_ext_irq_vector_state(vfu_ctx_t *ctx, enum vfu_dev_irq_type type, uint32_t vector, bool *masked,
                         bool *pending)
{
    if (ctx == NULL || masked == NULL || pending == NULL) {
        return -EINVAL;
    }
    return irq_vector_state(ctx, (int)type, vector, masked, pending);
}

VFU_EXPORT const uint8_t *
vfu_ext_msix_table(vfu_ctx_t *ctx, size_t *len)
{
    if (len == NULL) {
        return NULL;
    }
    if (ctx == NULL) {
        *len = 0;
        return NULL;
    }
    *len = ctx->msix.table == NULL ? 0 : ctx->msix.table_len;
    return ctx->msix.table;
}

VFU_EXPORT int
vfu_ext_msix_restore(vfu_ctx_t *ctx, const uint8_t *table, size_t table_len, const uint8_t *pending,
                     size_t nr_pending)
{
    struct vfu_irqs *irqs;
    size_t own_len;

    if (ctx == NULL || (table == NULL && table_len != 0) || (pending == NULL && nr_pending != 0)) {
        return -EINVAL;
    }
    irqs = &ctx->irqs;
    own_len = ctx->msix.table == NULL ? 0 : ctx->msix.table_len;
    if (table_len != own_len || nr_pending > irqs->count[VFU_DEV_MSIX_IRQ] ||
        nr_pending > irqs->nr_vectors[VFU_DEV_MSIX_IRQ]) {
        return -EINVAL;
    }
    if (own_len != 0) {
        memcpy(ctx->msix.table, table, own_len);
    }
    for (size_t v = 0; v < nr_pending; v++) {
        irqs->pending[VFU_DEV_MSIX_IRQ][v] = pending[v] != 0;
    }
    irq_msix_control_changed(ctx);
    return 0;
}

VFU_EXPORT size_t
vfu_ext_config_size(vfu_ctx_t *ctx)
{
    if (ctx == NULL || ctx->pci.cfg == NULL) {
        return 0;
    }
    return VFU_MIN(ctx->pci.cfg_size, ctx->pci.cfg_alloc);
}

VFU_EXPORT const uint64_t *
vfu_ext_dirty_granule(vfu_ctx_t *ctx)
{
    return ctx == NULL ? NULL : &ctx->dirty_pgsize;
}

VFU_EXPORT int
vfu_ext_dma_transfer(vfu_ctx_t *ctx, uint64_t iova, size_t len, void *data, bool is_write,
                     vfu_ext_dma_done_t *done, void *cookie)
{
    return dma_transfer_start(ctx, iova, len, data, is_write, done, cookie);
}
