/*
 * Client memory the device may access: DMA_MAP / DMA_UNMAP, the mappings
 * they make and their dirty-page bitmaps. Devices reach the memory through
 * the scatter-gather API in sgl.c.
 *
 * Every mapping is one struct dma_region, allocated on its own so that its
 * address (held by dma_sg_t entries and by the vfu_dma_info_t handed to the
 * device's callbacks) stays put while other mappings come and go. The
 * controller keeps pointers to them in an array sorted by IOVA; mappings never
 * overlap, so their end addresses are sorted too and one binary search finds
 * the mapping holding an address, the place to insert a new one, or a clash.
 *
 * Access modes (per DMA_MAP):
 *  - mmap: the client's fd is mapped MAP_SHARED with exactly the protection
 *    it granted, so a device cannot write to memory the client made
 *    read-only; the fd itself is not kept (the mapping holds the file);
 *  - file I/O: the fd is kept and accessed with pread/pwrite;
 *  - message: no fd; only bookkeeping here, data goes by DMA_READ/DMA_WRITE
 *    messages (dma_transfer.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dma.h"
#include "private.h"

#define DMA_MAP_KNOWN_FLAGS                                                                     \
    (VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE | VFIO_USER_F_DMA_REGION_MMAP | \
     VFIO_USER_F_DMA_REGION_FILE_IO)

/*
 * Largest mapping accepted, as upstream (8 TiB on 64-bit hosts): it bounds
 * the per-page state a mapping may need, such as dirty-page bitmaps.
 */
#if UINTPTR_MAX == UINT64_MAX
#define DMA_MAX_MAPPING_SIZE (UINT64_C(8) << 40)
#else
#define DMA_MAX_MAPPING_SIZE UINT64_C(0xffffffff)
#endif

size_t
dma_first_ending_after(const struct vfu_dma *dma, uint64_t addr)
{
    size_t lo = 0, hi = dma->nr_regions;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (region_end(dma->regions[mid]) <= addr) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

struct dma_region *
dma_find_containing(const struct vfu_dma *dma, uint64_t addr)
{
    size_t i = dma_first_ending_after(dma, addr);

    if (i < dma->nr_regions && region_start(dma->regions[i]) <= addr) {
        return dma->regions[i];
    }
    return NULL;
}

/*
 * The limit on simultaneous mappings: the device's, and no more than the
 * client said it would create (CLIENT_DEFAULT_MAX_DMA_MAPS when it said
 * nothing).
 */
static size_t
max_mappings(vfu_ctx_t *ctx)
{
    return VFU_MIN(ctx->dma->max_regions, (size_t)ctx->conn.client_max_dma_maps);
}

VFU_EXPORT size_t
dma_sg_size(void)
{
    return sizeof(struct dma_sg);
}

VFU_EXPORT int
vfu_setup_device_dma(vfu_ctx_t *ctx, size_t max_regions, vfu_dma_register_cb_t *dma_register,
                     vfu_dma_unregister_cb_t *dma_unregister)
{
    if (ctx == NULL) {
        errno = EINVAL;
        return -1;
    }
    /* A second call updates the limit and callbacks; mappings are kept. */
    if (ctx->dma == NULL) {
        ctx->dma = calloc(1, sizeof(*ctx->dma));
        if (ctx->dma == NULL) {
            errno = ENOMEM;
            return -1;
        }
    }
    ctx->dma->max_regions = max_regions;
    ctx->dma->register_cb = dma_register;
    ctx->dma->unregister_cb = dma_unregister;
    return 0;
}

static void
region_destroy(struct dma_region *r)
{
    if (r->info.mapping.iov_base != NULL) {
        munmap(r->info.mapping.iov_base, r->info.mapping.iov_len);
    }
    if (r->fd >= 0) {
        close(r->fd);
    }
    free(r->dirty);
    free(r);
}

/* Tells the device, then drops the mapping at index i. */
static void
remove_region_at(vfu_ctx_t *ctx, size_t i)
{
    struct vfu_dma *dma = ctx->dma;
    struct dma_region *r = dma->regions[i];

    /* Still listed during the callback, so the device may finish with it. */
    if (dma->unregister_cb != NULL) {
        dma->unregister_cb(ctx, &r->info);
    }
    memmove(&dma->regions[i], &dma->regions[i + 1],
            (dma->nr_regions - i - 1) * sizeof(dma->regions[0]));
    dma->nr_regions--;
    vfu_dbg(ctx, "DMA unmapped [%#" PRIx64 ", %#" PRIx64 ")", region_start(r), region_end(r));
    region_destroy(r);
}

void
dma_remove_all(vfu_ctx_t *ctx)
{
    if (ctx->dma == NULL) {
        return;
    }
    while (ctx->dma->nr_regions > 0) {
        remove_region_at(ctx, ctx->dma->nr_regions - 1);
    }
}

void
dma_free(vfu_ctx_t *ctx)
{
    if (ctx->dma == NULL) {
        return;
    }
    dma_remove_all(ctx);
    free(ctx->dma->regions);
    free(ctx->dma);
    ctx->dma = NULL;
}

static int
grow_regions(struct vfu_dma *dma)
{
    size_t capacity;
    struct dma_region **regions;

    if (dma->nr_regions < dma->capacity) {
        return 0;
    }
    capacity = dma->capacity == 0 ? 16 : dma->capacity * 2;
    regions = realloc(dma->regions, capacity * sizeof(regions[0]));
    if (regions == NULL) {
        return -ENOMEM;
    }
    dma->regions = regions;
    dma->capacity = capacity;
    return 0;
}

/* Maps the client's file for a region in mmap mode; fills info. */
static int
region_mmap(vfu_ctx_t *ctx, struct dma_region *r, int fd, uint64_t size)
{
    size_t page = r->info.page_size;
    uint64_t map_offset = r->file_offset - r->file_offset % page;
    uint64_t lead = r->file_offset - map_offset;
    size_t map_len;
    void *base;

    /*
     * Whole pages covering [offset, offset + size): an offset that is not
     * page-aligned needs the lead-in counted, or the tail would be cut off.
     */
    if (size > SIZE_MAX - lead - page) {
        return -EINVAL;
    }
    map_len = VFU_ROUND_UP(lead + size, page);
    base = mmap(NULL, map_len, (int)r->info.prot, MAP_SHARED, fd, (off_t)map_offset);
    if (base == MAP_FAILED) {
        int err = errno;
        vfu_err(ctx, "DMA_MAP: mmap of %zu bytes at file offset %#" PRIx64 " failed: %s", map_len,
                map_offset, strerror(err));
        return -err;
    }
    /* Client memory has no business in a core dump of the device. */
    madvise(base, map_len, MADV_DONTDUMP);
    r->info.mapping.iov_base = base;
    r->info.mapping.iov_len = map_len;
    r->info.vaddr = (char *)base + lead;
    return 0;
}

/* Reads the file's identity; page_size per the fd's block size. */
static int
region_set_file(struct dma_region *r, int fd, uint64_t size)
{
    struct stat st;

    if (fstat(fd, &st) != 0) {
        return -errno;
    }
    /*
     * Touching a shared mapping past the end of a file raises SIGBUS, which
     * would kill the device: refuse what a regular file cannot back now.
     */
    if (r->mode == DMA_ACCESS_MMAP && S_ISREG(st.st_mode) &&
        r->file_offset + size > (uint64_t)st.st_size) {
        return -EINVAL;
    }
    r->has_file = true;
    r->file_dev = st.st_dev;
    r->file_ino = st.st_ino;
    if (st.st_blksize > 0 && (size_t)st.st_blksize > r->info.page_size) {
        r->info.page_size = (size_t)st.st_blksize;
    }
    return 0;
}

/* True if a repeated DMA_MAP describes the existing mapping r exactly. */
static bool
same_mapping(const struct dma_region *r, const struct dma_region *req)
{
    if (r->mode != req->mode || r->info.prot != req->info.prot ||
        r->file_offset != req->file_offset || r->has_file != req->has_file) {
        return false;
    }
    return !r->has_file || (r->file_dev == req->file_dev && r->file_ino == req->file_ino);
}

/* Mappings change under a device that might be using them: quiesce it first. */
bool
dma_needs_quiesce(vfu_ctx_t *ctx, const struct vfu_msg *msg)
{
    return ctx->dma != NULL;
}

int
handle_dma_map(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfio_user_dma_map req;
    struct vfu_dma *dma = ctx->dma;
    struct dma_region *r;
    int fd = msg->nr_in_fds > 0 ? msg->in_fds[0] : -1;
    size_t i;
    int ret;

    if (msg->in_len < sizeof(req)) {
        return -EINVAL;
    }
    memcpy(&req, msg->in, sizeof(req));
    if (req.argsz < sizeof(req) || (req.flags & ~DMA_MAP_KNOWN_FLAGS) != 0) {
        return -EINVAL;
    }
    /* The access-mode bits name alternatives; both at once means nothing. */
    if ((req.flags & VFIO_USER_F_DMA_REGION_MMAP) && (req.flags & VFIO_USER_F_DMA_REGION_FILE_IO)) {
        return -EINVAL;
    }
    if ((req.flags & (VFIO_USER_F_DMA_REGION_MMAP | VFIO_USER_F_DMA_REGION_FILE_IO)) && fd < 0) {
        return -EINVAL;
    }
    if (req.size == 0 || req.addr > UINT64_MAX - req.size) {
        return -EINVAL;
    }
    if (fd >= 0 && req.offset > (uint64_t)INT64_MAX - req.size) {
        return -EINVAL;
    }
    if (req.size > DMA_MAX_MAPPING_SIZE) {
        return -ENOSPC;
    }
    if (dma == NULL) {
        /* The device never asked for DMA: accepted and ignored, as upstream. */
        return 0;
    }

    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return -ENOMEM;
    }
    r->fd = -1;
    r->info.iova.iov_base = (void *)(uintptr_t)req.addr;
    r->info.iova.iov_len = req.size;
    r->info.page_size = (size_t)sysconf(_SC_PAGESIZE);
    r->info.prot = ((req.flags & VFIO_USER_F_DMA_REGION_READ) ? PROT_READ : 0) |
                   ((req.flags & VFIO_USER_F_DMA_REGION_WRITE) ? PROT_WRITE : 0);
    if (fd < 0) {
        r->mode = DMA_ACCESS_MESSAGE;
    } else {
        r->mode =
            (req.flags & VFIO_USER_F_DMA_REGION_FILE_IO) ? DMA_ACCESS_FILE_IO : DMA_ACCESS_MMAP;
        r->file_offset = req.offset;
        ret = region_set_file(r, fd, req.size);
        if (ret < 0) {
            goto fail;
        }
    }

    i = dma_first_ending_after(dma, req.addr);
    if (i < dma->nr_regions && region_start(dma->regions[i]) < req.addr + req.size) {
        struct dma_region *old = dma->regions[i];
        /* Repeating a mapping exactly is harmless and succeeds. */
        if (region_start(old) == req.addr && old->info.iova.iov_len == req.size &&
            same_mapping(old, r)) {
            free(r);
            return 0;
        }
        /*
         * Mapping over an existing mapping: EEXIST, as the spec says
         * (upstream answers EINVAL).
         */
        vfu_err(ctx,
                "DMA_MAP [%#" PRIx64 ", %#" PRIx64 ") overlaps "
                "[%#" PRIx64 ", %#" PRIx64 ")",
                req.addr, req.addr + req.size, region_start(old), region_end(old));
        ret = -EEXIST;
        goto fail;
    }
    /*
     * The spec names no errno for too many mappings; EINVAL is what upstream
     * answers.
     */
    if (dma->nr_regions >= max_mappings(ctx)) {
        vfu_err(ctx, "DMA_MAP: limit of %zu mappings reached", max_mappings(ctx));
        ret = -EINVAL;
        goto fail;
    }
    ret = grow_regions(dma);
    if (ret < 0) {
        goto fail;
    }
    /* Mapped while the client logs dirty pages: logged from the start. */
    if (r->mode != DMA_ACCESS_MESSAGE) {
        ret = dirty_bitmap_alloc(ctx, req.size, &r->dirty);
        if (ret < 0) {
            goto fail;
        }
    }
    if (r->mode == DMA_ACCESS_MMAP) {
        ret = region_mmap(ctx, r, fd, req.size);
        if (ret < 0) {
            goto fail;
        }
    } else if (r->mode == DMA_ACCESS_FILE_IO) {
        r->fd = fd;
        msg_take_fd(msg, 0);
    }

    memmove(&dma->regions[i + 1], &dma->regions[i],
            (dma->nr_regions - i) * sizeof(dma->regions[0]));
    /* Ids tell a mapping from a later one that reuses its memory. */
    r->id = ++dma->last_id != 0 ? dma->last_id : ++dma->last_id;
    dma->regions[i] = r;
    dma->nr_regions++;
    vfu_dbg(ctx, "DMA mapped [%#" PRIx64 ", %#" PRIx64 ") prot %#x%s", req.addr,
            req.addr + req.size, r->info.prot,
            r->mode == DMA_ACCESS_MMAP      ? " mmap"
            : r->mode == DMA_ACCESS_FILE_IO ? " file I/O"
                                            : " messages");
    if (dma->register_cb != NULL) {
        dma->register_cb(ctx, &r->info);
    }
    return 0;

fail:
    free(r->dirty);
    free(r);
    return ret;
}

int
handle_dma_unmap(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfio_user_dma_unmap req;
    struct vfu_dma *dma = ctx->dma;
    void *reply;

    if (msg->in_len < sizeof(req)) {
        return -EINVAL;
    }
    memcpy(&req, msg->in, sizeof(req));
    if (req.argsz < sizeof(req) || req.argsz > SERVER_MAX_DATA_XFER_SIZE) {
        return -EINVAL;
    }
    switch (req.flags) {
    case 0:
        break;
    case VFIO_DMA_UNMAP_FLAG_ALL:
        if (req.addr != 0 || req.size != 0) {
            return -EINVAL;
        }
        break;
    case VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP:
        /* Dirty-page logging does not exist yet. */
        return -ENOTSUP;
    default:
        return -EINVAL;
    }

    if (dma != NULL) {
        if (req.flags & VFIO_DMA_UNMAP_FLAG_ALL) {
            dma_remove_all(ctx);
        } else {
            size_t i = dma_first_ending_after(dma, req.addr);
            /* Only a whole mapping can be unmapped, never a part of one. */
            if (i >= dma->nr_regions || region_start(dma->regions[i]) != req.addr ||
                dma->regions[i]->info.iova.iov_len != req.size) {
                return -ENOENT;
            }
            remove_region_at(ctx, i);
        }
    }

    /* The reply is the request's own description of the range. */
    reply = msg_reply_alloc(msg, sizeof(req));
    if (reply == NULL) {
        return -ENOMEM;
    }
    memcpy(reply, &req, sizeof(req));
    return 0;
}

int
dma_dirty_start(vfu_ctx_t *ctx)
{
    struct vfu_dma *dma = ctx->dma;

    for (size_t i = 0; i < dma->nr_regions; i++) {
        struct dma_region *r = dma->regions[i];

        if (r->mode != DMA_ACCESS_MESSAGE && r->dirty == NULL &&
            dirty_bitmap_alloc(ctx, r->info.iova.iov_len, &r->dirty) < 0) {
            dma_dirty_stop(ctx);
            return -ENOMEM;
        }
    }
    return 0;
}

void
dma_dirty_stop(vfu_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->dma->nr_regions; i++) {
        free(ctx->dma->regions[i]->dirty);
        ctx->dma->regions[i]->dirty = NULL;
    }
}

int
dma_dirty_bitmap(vfu_ctx_t *ctx, uint64_t iova, uint64_t len, uint8_t **bitmap)
{
    struct dma_region *r;
    int ret;

    /* dma_check_range accepts an empty range; no mapping is empty. */
    if (len == 0) {
        return -ENOENT;
    }
    ret = dma_check_range(ctx, iova, len, false);
    if (ret < 0) {
        return ret;
    }
    r = ctx->dma->regions[dma_first_ending_after(ctx->dma, iova)];
    /* The first len bytes of a mapping, as upstream answers too. */
    if (region_start(r) != iova || len > r->info.iova.iov_len) {
        return -ENOTSUP;
    }
    if (r->dirty == NULL) {
        return -EINVAL;
    }
    *bitmap = r->dirty;
    return 0;
}
