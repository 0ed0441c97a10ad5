/*
 * ioeventfds a device offers for sub-ranges of its regions. The library only
 * records them; the client learns of them through GET_REGION_IO_FDS (region.c)
 * and wires them up itself (for example to KVM), so that writes there signal
 * the device's eventfd without a message.
 *
 * The fd is the device's: it is sent as it is, never duplicated nor closed
 * here, and must stay open while the context exists. An fd of -1 is
 * accepted, as upstream accepts it, and such an entry is never offered to a
 * client: there is nothing it could wire up.
 */
#include <stdlib.h>

#include "private.h"

VFU_EXPORT int vfu_create_ioeventfd(vfu_ctx_t *ctx, uint32_t region_idx,
                                    int fd, size_t gpa_offset, uint32_t size,
                                    uint32_t flags, uint64_t datamatch,
                                    int shadow_fd, size_t shadow_offset)
{
    struct vfu_ioeventfd *entry;

    /* Shadow ioeventfds need kernel support this library does not build. */
    if (ctx == NULL || fd < -1 || shadow_fd != -1 ||
        region_idx >= VFU_PCI_DEV_NUM_REGIONS) {
        errno = EINVAL;
        return -1;
    }
    if (gpa_offset > ctx->regions[region_idx].size ||
        size > ctx->regions[region_idx].size - gpa_offset) {
        errno = EINVAL;
        return -1;
    }
    entry = calloc(1, sizeof(*entry));
    if (entry == NULL) {
        errno = ENOMEM;
        return -1;
    }
    entry->region = region_idx;
    entry->fd = fd;
    entry->gpa_offset = gpa_offset;
    entry->size = size;
    entry->flags = flags;
    entry->datamatch = datamatch;
    /* Newest first, as upstream lists them. */
    entry->next = ctx->ioeventfds;
    ctx->ioeventfds = entry;
    return 0;
}

void ioeventfd_free(vfu_ctx_t *ctx)
{
    while (ctx->ioeventfds != NULL) {
        struct vfu_ioeventfd *entry = ctx->ioeventfds;
        ctx->ioeventfds = entry->next;
        free(entry);
    }
}
