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
    *masked = control < irqs->msix_table_len &&
              (irqs->msix_table[control] & PCI_MSIX_ENTRY_CTRL_MASKBIT) != 0;
    *pending = vector < irqs->nr_vectors[VFU_DEV_MSIX_IRQ] &&
               irqs->pending[VFU_DEV_MSIX_IRQ][vector] != 0;
    return 0;
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
