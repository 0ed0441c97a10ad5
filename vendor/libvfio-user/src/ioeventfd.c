/*
 * ioeventfds a device offers for sub-ranges of its regions. The library only
 * records them; the client learns of them through GET_REGION_IO_FDS (below)
 * and wires them up itself (for example to KVM), so that writes there signal
 * the device's eventfd without a message.
 *
 * The fd is the device's: it is sent as it is, never duplicated nor closed
 * here, and must stay open while the context exists. An fd of -1 is
 * accepted, as upstream accepts it, and such an entry is never offered to a
 * client: there is nothing it could wire up.
 */
#include <stdlib.h>
#include <string.h>

#include "private.h"

VFU_EXPORT int
vfu_create_ioeventfd(vfu_ctx_t *ctx, uint32_t region_idx, int fd, size_t gpa_offset, uint32_t size,
                     uint32_t flags, uint64_t datamatch, int shadow_fd, size_t shadow_offset)
{
    struct vfu_ioeventfd *entry;

    /* Shadow ioeventfds need kernel support this library does not build. */
    if (ctx == NULL || fd < -1 || shadow_fd != -1 || region_idx >= VFU_PCI_DEV_NUM_REGIONS) {
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

void
ioeventfd_free(vfu_ctx_t *ctx)
{
    while (ctx->ioeventfds != NULL) {
        struct vfu_ioeventfd *entry = ctx->ioeventfds;
        ctx->ioeventfds = entry->next;
        free(entry);
    }
}

/* Index of fd in fds[*nr], added if new; -ENOSPC when more than max. */
static int
fd_table_index(int *fds, size_t *nr, size_t max, int fd)
{
    for (size_t i = 0; i < *nr; i++) {
        if (fds[i] == fd) {
            return (int)i;
        }
    }
    if (*nr >= max) {
        return -ENOSPC;
    }
    fds[*nr] = fd;
    return (int)(*nr)++;
}

int
handle_device_get_region_io_fds(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    vfio_user_region_io_fds_request_t req;
    vfio_user_region_io_fds_reply_t head = { 0 };
    const struct vfu_ioeventfd *ioefd;
    int fds[SERVER_MAX_MSG_FDS];
    size_t nr_fds = 0;
    size_t max_fds = VFU_MIN((size_t)SERVER_MAX_MSG_FDS, (size_t)ctx->conn.client_max_msg_fds);
    uint32_t nr_entries = 0;
    size_t full_len;
    uint8_t *reply;
    size_t i;

    if (msg->in_len < sizeof(req)) {
        return -EINVAL;
    }
    memcpy(&req, msg->in, sizeof(req));
    if (req.flags != 0 || req.count != 0 || req.index >= VFU_PCI_DEV_NUM_REGIONS ||
        ctx->regions[req.index].flags == 0 || req.argsz < sizeof(req) ||
        req.argsz > SERVER_MAX_DATA_XFER_SIZE) {
        return -EINVAL;
    }
    for (ioefd = ctx->ioeventfds; ioefd != NULL; ioefd = ioefd->next) {
        if (ioefd->region == req.index && ioefd->fd >= 0) {
            nr_entries++;
        }
    }
    full_len = sizeof(head) + (size_t)nr_entries * sizeof(union sub_region);
    head.argsz = (uint32_t)full_len;
    head.index = req.index;
    head.count = nr_entries;

    /* Too small for the entries: say how much room they need, nothing else. */
    if (req.argsz < full_len) {
        reply = msg_reply_alloc(msg, sizeof(head));
        if (reply == NULL) {
            return -ENOMEM;
        }
        memcpy(reply, &head, sizeof(head));
        return 0;
    }

    reply = msg_reply_alloc(msg, full_len);
    if (reply == NULL) {
        return -ENOMEM;
    }
    memcpy(reply, &head, sizeof(head));
    i = 0;
    for (ioefd = ctx->ioeventfds; ioefd != NULL; ioefd = ioefd->next) {
        vfio_user_sub_region_ioeventfd_t entry = {
            .gpa_offset = ioefd->gpa_offset,
            .size = ioefd->size,
            .type = VFIO_USER_IO_FD_TYPE_IOEVENTFD,
            .flags = ioefd->flags,
            .datamatch = ioefd->datamatch,
        };
        int idx;

        if (ioefd->region != req.index || ioefd->fd < 0) {
            continue;
        }
        idx = fd_table_index(fds, &nr_fds, max_fds, ioefd->fd);
        if (idx < 0) {
            goto too_many_fds;
        }
        /* vfu_create_ioeventfd accepts no shadow fds, so none to send. */
        entry.fd_index = (uint32_t)idx;
        memcpy(reply + sizeof(head) + i * sizeof(union sub_region), &entry, sizeof(entry));
        i++;
    }
    for (i = 0; i < nr_fds; i++) {
        int ret = msg_reply_add_fd(msg, fds[i]);

        if (ret < 0) {
            return ret;
        }
    }
    return 0;

too_many_fds:
    vfu_err(ctx,
            "region %u: its ioeventfds need more than the %zu fds a "
            "reply may carry",
            req.index, max_fds);
    return -ENOSPC;
}
