/*
 * Device regions: their definition by the device, what the client learns
 * about them (GET_INFO, GET_REGION_INFO; their ioeventfds are ioeventfd.c's)
 * and the client's accesses to them (REGION_READ, REGION_WRITE,
 * REGION_WRITE_MULTI).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "private.h"

static bool
is_bar(int idx)
{
    return idx >= VFU_PCI_DEV_BAR0_REGION_IDX && idx <= VFU_PCI_DEV_BAR5_REGION_IDX;
}

static bool
is_power_of_two(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

static int
check_region_setup(vfu_ctx_t *ctx, int idx, size_t size, vfu_region_access_cb_t *cb, int flags,
                   const struct iovec *mmap_areas, uint32_t nr_mmap_areas, int fd)
{
    if (idx < 0 || idx >= VFU_PCI_DEV_NUM_REGIONS) {
        return -EINVAL;
    }
    if ((flags & ~VFU_REGION_FLAG_MASK) != 0 || (flags & VFU_REGION_FLAG_RW) == 0) {
        return -EINVAL;
    }
    if ((flags & VFU_REGION_FLAG_ALWAYS_CB) && cb == NULL) {
        return -EINVAL;
    }
    if ((mmap_areas == NULL) != (nr_mmap_areas == 0)) {
        return -EINVAL;
    }
    if (mmap_areas != NULL && fd == -1) {
        return -EINVAL;
    }
    for (uint32_t i = 0; i < nr_mmap_areas; i++) {
        uint64_t start = (uintptr_t)mmap_areas[i].iov_base;
        uint64_t len = mmap_areas[i].iov_len;

        if (start > size || len > size - start) {
            return -EINVAL;
        }
    }
    if (idx == VFU_PCI_DEV_CFG_REGION_IDX &&
        ((flags & VFU_REGION_FLAG_RW) != VFU_REGION_FLAG_RW || (flags & VFU_REGION_FLAG_MEM))) {
        return -EINVAL;
    }
    if (!is_bar(idx)) {
        return 0;
    }
    if (size > 0 && (!is_power_of_two(size) || size < ((flags & VFU_REGION_FLAG_MEM) ? 16u : 4u))) {
        return -EINVAL;
    }
    /* A 64-bit BAR takes its odd neighbour as the upper half. */
    if (idx % 2 == 1) {
        if (flags & VFU_REGION_FLAG_64_BITS) {
            return -EINVAL;
        }
        if (ctx->regions[idx - 1].flags & VFU_REGION_FLAG_64_BITS) {
            return -EINVAL;
        }
    } else if ((flags & VFU_REGION_FLAG_64_BITS) && ctx->regions[idx + 1].size > 0) {
        return -EINVAL;
    }
    return 0;
}

VFU_EXPORT int
vfu_setup_region(vfu_ctx_t *vfu_ctx, int region_idx, size_t size,
                 vfu_region_access_cb_t *region_access, int flags, struct iovec *mmap_areas,
                 uint32_t nr_mmap_areas, int fd, uint64_t offset)
{
    struct vfu_region *region;
    struct iovec *areas = NULL;
    uint32_t nr_areas = nr_mmap_areas;
    int ret;

    if (vfu_ctx == NULL) {
        errno = EINVAL;
        return -1;
    }
    ret = check_region_setup(vfu_ctx, region_idx, size, region_access, flags, mmap_areas,
                             nr_mmap_areas, fd);
    if (ret < 0) {
        vfu_err(vfu_ctx, "region %d: invalid setup", region_idx);
        errno = -ret;
        return -1;
    }
    /* With an fd but no areas, the whole region is mappable. */
    if (fd != -1 && nr_areas == 0) {
        nr_areas = 1;
    }
    if (nr_areas > 0) {
        areas = calloc(nr_areas, sizeof(*areas));
        if (areas == NULL) {
            errno = ENOMEM;
            return -1;
        }
        if (mmap_areas != NULL) {
            memcpy(areas, mmap_areas, nr_areas * sizeof(*areas));
        } else {
            areas[0].iov_base = NULL;
            areas[0].iov_len = size;
        }
    }

    region = &vfu_ctx->regions[region_idx];
    free(region->mmap_areas);
    region->size = size;
    region->flags = flags;
    region->cb = region_access;
    region->fd = fd;
    region->offset = offset;
    region->mmap_areas = areas;
    region->nr_mmap_areas = nr_areas;
    return 0;
}

void
region_free(vfu_ctx_t *ctx)
{
    /* The fds belong to the device: it passed them in and closes them. */
    for (size_t i = 0; i < VFU_ARRAY_LEN(ctx->regions); i++) {
        free(ctx->regions[i].mmap_areas);
        ctx->regions[i].mmap_areas = NULL;
        ctx->regions[i].nr_mmap_areas = 0;
    }
}

/* Whether [offset, offset + count) may be accessed in region idx. */
static int
check_access(vfu_ctx_t *ctx, uint64_t idx, uint64_t offset, uint64_t count)
{
    if (count > SERVER_MAX_DATA_XFER_SIZE) {
        vfu_err(ctx, "region access of %" PRIu64 " bytes is too large", count);
        return -EINVAL;
    }
    if (idx >= VFU_PCI_DEV_NUM_REGIONS) {
        vfu_err(ctx, "bad region index %" PRIu64, idx);
        return -EINVAL;
    }
    if (offset > ctx->regions[idx].size || count > ctx->regions[idx].size - offset) {
        vfu_err(ctx,
                "region %" PRIu64 ": access of %" PRIu64 " bytes at %#" PRIx64 " is out of range",
                idx, count, offset);
        return -EINVAL;
    }
    return 0;
}

/*
 * A BAR, ROM or VGA access, split where the MSI-X table or PBA begin and
 * end: those bytes are emulated (msix.c), the rest go to the device's
 * callback. An entry unmasked by the write lets its pending vector out.
 */
static int
bar_access(vfu_ctx_t *ctx, int idx, char *buf, size_t count, uint64_t offset, bool is_write)
{
    bool unmasked = false;
    size_t done = 0;

    while (done < count) {
        uint64_t len = count - done;
        enum msix_part part = msix_part_at(ctx, idx, offset + done, &len);

        if (part != MSIX_NONE) {
            msix_access(ctx, part, buf + done, len, offset + done, is_write, &unmasked);
        } else {
            ssize_t ret = ctx_call_region_cb(ctx, idx, buf + done, len, offset + done, is_write);

            if (ret < 0) {
                return (int)ret;
            }
        }
        done += len;
    }
    if (unmasked) {
        irq_msix_control_changed(ctx);
    }
    return 0;
}

/*
 * One access already passed by check_access: 0 or -errno. Both handlers
 * return count or an error, never a short count.
 */
static int
region_access(vfu_ctx_t *ctx, int idx, char *buf, size_t count, uint64_t offset, bool is_write)
{
    ssize_t ret;

    if (count == 0) {
        return 0;
    }
    if (idx == VFU_PCI_DEV_CFG_REGION_IDX) {
        ret = pci_config_access(ctx, buf, count, offset, is_write);
        return ret < 0 ? (int)ret : 0;
    }
    return bar_access(ctx, idx, buf, count, offset, is_write);
}

int
handle_device_get_info(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfio_user_device_info req;
    struct vfio_user_device_info *reply;

    if (msg->in_len < sizeof(req)) {
        return -EINVAL;
    }
    memcpy(&req, msg->in, sizeof(req));
    if (req.argsz < sizeof(req)) {
        return -EINVAL;
    }
    reply = msg_reply_alloc(msg, sizeof(*reply));
    if (reply == NULL) {
        return -ENOMEM;
    }
    reply->argsz = sizeof(*reply);
    reply->flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
    reply->num_regions = VFU_PCI_DEV_NUM_REGIONS;
    reply->num_irqs = VFU_DEV_NUM_IRQS;
    return 0;
}

int
handle_device_get_region_info(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfio_region_info req;
    struct vfio_region_info info = { 0 };
    const struct vfu_region *region;
    size_t caps_len = 0;
    size_t full_len, reply_len;
    bool with_caps;
    uint8_t *reply;

    if (msg->in_len < sizeof(req)) {
        return -EINVAL;
    }
    memcpy(&req, msg->in, sizeof(req));
    if (req.argsz < sizeof(req) || req.index >= VFU_PCI_DEV_NUM_REGIONS) {
        return -EINVAL;
    }
    region = &ctx->regions[req.index];

    if (region->size > 0 && region->nr_mmap_areas > 0) {
        caps_len = sizeof(struct vfio_region_info_cap_sparse_mmap) +
                   region->nr_mmap_areas * sizeof(struct vfio_region_sparse_mmap_area);
    }
    full_len = sizeof(info) + caps_len;
    /* The capability and the fd come only when the whole reply fits. */
    with_caps = caps_len > 0 && req.argsz >= full_len;
    reply_len = VFU_MIN(full_len, (size_t)req.argsz);

    info.argsz = (uint32_t)full_len;
    info.index = req.index;
    info.size = region->size;
    info.offset = region->offset;
    if (region->size > 0) {
        if (region->flags & VFU_REGION_FLAG_READ) {
            info.flags |= VFIO_REGION_INFO_FLAG_READ;
        }
        if (region->flags & VFU_REGION_FLAG_WRITE) {
            info.flags |= VFIO_REGION_INFO_FLAG_WRITE;
        }
        if (region->fd != -1) {
            info.flags |= VFIO_REGION_INFO_FLAG_MMAP;
        }
    }
    if (with_caps) {
        info.flags |= VFIO_REGION_INFO_FLAG_CAPS;
        info.cap_offset = sizeof(info);
    }

    reply = msg_reply_alloc(msg, reply_len);
    if (reply == NULL) {
        return -ENOMEM;
    }
    memcpy(reply, &info, sizeof(info));
    if (with_caps) {
        struct vfio_region_info_cap_sparse_mmap sparse = {
            .header = {
                .id = VFIO_REGION_INFO_CAP_SPARSE_MMAP,
                .version = 1,
                .next = 0,
            },
            .nr_areas = region->nr_mmap_areas,
        };
        uint8_t *pos = reply + sizeof(info);

        memcpy(pos, &sparse, sizeof(sparse));
        pos += sizeof(sparse);
        for (uint32_t i = 0; i < region->nr_mmap_areas; i++) {
            struct vfio_region_sparse_mmap_area area = {
                .offset = (uintptr_t)region->mmap_areas[i].iov_base,
                .size = region->mmap_areas[i].iov_len,
            };

            memcpy(pos, &area, sizeof(area));
            pos += sizeof(area);
        }
        return msg_reply_add_fd(msg, region->fd);
    }
    return 0;
}

int
handle_region_read(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfio_user_region_access req;
    uint8_t *reply;
    int ret;

    if (msg->in_len < sizeof(req)) {
        return -EINVAL;
    }
    memcpy(&req, msg->in, sizeof(req));
    ret = check_access(ctx, req.region, req.offset, req.count);
    if (ret < 0 || req.count == 0) {
        return ret;
    }
    reply = msg_reply_alloc(msg, sizeof(req) + req.count);
    if (reply == NULL) {
        return -ENOMEM;
    }
    memcpy(reply, &req, sizeof(req));
    return region_access(ctx, (int)req.region, (char *)reply + sizeof(req), req.count, req.offset,
                         false);
}

int
handle_region_write(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfio_user_region_access req;
    uint8_t *reply;
    int ret;

    if (msg->in_len < sizeof(req)) {
        return -EINVAL;
    }
    memcpy(&req, msg->in, sizeof(req));
    if (msg->in_len - sizeof(req) != req.count) {
        vfu_err(ctx, "region write of %u bytes carries %zu", req.count, msg->in_len - sizeof(req));
        return -EINVAL;
    }
    ret = check_access(ctx, req.region, req.offset, req.count);
    if (ret < 0 || req.count == 0) {
        return ret;
    }
    ret = region_access(ctx, (int)req.region, (char *)msg->in + sizeof(req), req.count, req.offset,
                        true);
    if (ret < 0) {
        return ret;
    }
    reply = msg_reply_alloc(msg, sizeof(req));
    if (reply == NULL) {
        return -ENOMEM;
    }
    memcpy(reply, &req, sizeof(req));
    return 0;
}

/*
 * Every entry is checked before any write is made, so a malformed request
 * changes nothing. The writes then run in order; the first that fails stops
 * the rest and its errno is the reply, so success always means all of them.
 */
/* One write of a REGION_WRITE_MULTI request, as laid out on the wire. */
struct write_multi_entry {
    uint64_t offset;
    uint32_t region;
    uint32_t count;
    uint8_t data[8];
} __attribute__((packed));

_Static_assert(sizeof(struct write_multi_entry) == 24, "REGION_WRITE_MULTI entries are 24 bytes");

/* A config write that starts a function-level reset waits for the quiesce. */
bool
region_write_needs_quiesce(vfu_ctx_t *ctx, const struct vfu_msg *msg)
{
    struct vfio_user_region_access ra;

    if (msg->in_len < sizeof(ra)) {
        return false;
    }
    memcpy(&ra, msg->in, sizeof(ra));
    return ra.region == VFU_PCI_DEV_CFG_REGION_IDX && msg->in_len - sizeof(ra) == ra.count &&
           pci_config_write_needs_quiesce(ctx, ra.offset, msg->in + sizeof(ra), ra.count);
}

bool
region_write_multi_needs_quiesce(vfu_ctx_t *ctx, const struct vfu_msg *msg)
{
    const size_t entry_size = sizeof(struct write_multi_entry);

    for (size_t off = sizeof(uint64_t); off + entry_size <= msg->in_len; off += entry_size) {
        struct write_multi_entry wr;

        memcpy(&wr, msg->in + off, sizeof(wr));
        if (wr.region == VFU_PCI_DEV_CFG_REGION_IDX && wr.count <= sizeof(wr.data) &&
            pci_config_write_needs_quiesce(ctx, wr.offset, wr.data, wr.count)) {
            return true;
        }
    }
    return false;
}

int
handle_region_write_multi(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    const size_t entry_size = sizeof(struct write_multi_entry);
    uint64_t wr_cnt;
    uint64_t *reply;

    if (msg->in_len < sizeof(wr_cnt)) {
        return -EINVAL;
    }
    memcpy(&wr_cnt, msg->in, sizeof(wr_cnt));
    if (wr_cnt > (msg->in_len - sizeof(wr_cnt)) / entry_size ||
        wr_cnt * entry_size != msg->in_len - sizeof(wr_cnt)) {
        vfu_err(ctx, "REGION_WRITE_MULTI: %" PRIu64 " writes in %zu bytes", wr_cnt, msg->in_len);
        return -EINVAL;
    }
    for (uint64_t i = 0; i < wr_cnt; i++) {
        struct write_multi_entry wr;
        int ret;

        memcpy(&wr, msg->in + sizeof(wr_cnt) + i * entry_size, sizeof(wr));
        if (wr.count > sizeof(wr.data)) {
            vfu_err(ctx, "REGION_WRITE_MULTI: write %" PRIu64 " of %u bytes", i, wr.count);
            return -EINVAL;
        }
        ret = check_access(ctx, wr.region, wr.offset, wr.count);
        if (ret < 0) {
            return ret;
        }
    }
    for (uint64_t i = 0; i < wr_cnt; i++) {
        uint8_t *entry = msg->in + sizeof(wr_cnt) + i * entry_size;
        struct write_multi_entry wr;
        int ret;

        memcpy(&wr, entry, sizeof(wr));
        ret = region_access(ctx, (int)wr.region,
                            (char *)entry + offsetof(struct write_multi_entry, data), wr.count,
                            wr.offset, true);
        if (ret < 0) {
            return ret;
        }
    }
    reply = msg_reply_alloc(msg, sizeof(*reply));
    if (reply == NULL) {
        return -ENOMEM;
    }
    *reply = wr_cnt;
    return 0;
}
