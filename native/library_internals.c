/* Reading and driving the vendored library's internals for the addon. */
#include "library_internals.h"

#include <errno.h>

#include "private.h"

int
vfu_addon_msix_state(vfu_ctx_t *ctx, uint32_t vector, bool *masked,
                     bool *pending)
{
    const struct vfu_irqs *irqs = &ctx->irqs;
    size_t control = (size_t)vector * PCI_MSIX_ENTRY_SIZE +
                     PCI_MSIX_ENTRY_VECTOR_CTRL;

    if (vector >= irqs->count[VFU_DEV_MSIX_IRQ]) {
        return -EINVAL;
    }
    /* Entries the client never wrote are in their unmasked reset state. */
    *masked = control < ctx->msix.table_len &&
              (ctx->msix.table[control] & PCI_MSIX_ENTRY_CTRL_MASKBIT) != 0;
    *pending = vector < irqs->nr_vectors[VFU_DEV_MSIX_IRQ] &&
               irqs->pending[VFU_DEV_MSIX_IRQ][vector] != 0;
    return 0;
}

uint64_t *
vfu_addon_dirty_granule(vfu_ctx_t *ctx)
{
    return &ctx->dirty_pgsize;
}

size_t
vfu_addon_config_size(vfu_ctx_t *ctx)
{
    if (ctx->pci.cfg == NULL) {
        return 0;
    }
    return ctx->pci.cfg_size < ctx->pci.cfg_alloc ? ctx->pci.cfg_size
                                                  : ctx->pci.cfg_alloc;
}

int
vfu_addon_dma_transfer_start(vfu_ctx_t *ctx, uint64_t iova, size_t len,
                             void *data, bool is_write,
                             void (*done)(vfu_ctx_t *, void *, int),
                             void *cookie)
{
    return dma_transfer_start(ctx, iova, len, data, is_write, done, cookie);
}

uint8_t *
vfu_addon_msix_table(vfu_ctx_t *ctx, size_t *len)
{
    *len = ctx->msix.table == NULL ? 0 : ctx->msix.table_len;
    return ctx->msix.table;
}

int
vfu_addon_set_msix_pending(vfu_ctx_t *ctx, uint32_t vector, bool pending)
{
    struct vfu_irqs *irqs = &ctx->irqs;

    if (vector >= irqs->nr_vectors[VFU_DEV_MSIX_IRQ]) {
        return -EINVAL;
    }
    irqs->pending[VFU_DEV_MSIX_IRQ][vector] = pending;
    return 0;
}

void
vfu_addon_release_msix(vfu_ctx_t *ctx)
{
    irq_msix_control_changed(ctx);
}
