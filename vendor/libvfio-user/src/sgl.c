/*
 * The scatter-gather API devices reach client memory with: vfu_addr_to_sgl
 * cuts a range into entries, one per mapping; vfu_sgl_get / vfu_sgl_put give
 * direct access to mmap-mode mappings; vfu_sgl_read / vfu_sgl_write copy,
 * directly or by DMA_READ / DMA_WRITE messages (dma_transfer.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dma.h"
#include "private.h"

int
dma_check_range(vfu_ctx_t *ctx, uint64_t iova, uint64_t len, bool is_write)
{
    struct vfu_dma *dma = ctx->dma;
    uint64_t end;
    size_t i;

    if (dma == NULL) {
        return -EINVAL;
    }
    if (iova > UINT64_MAX - len) {
        return -ENOENT;
    }
    end = iova + len;
    for (i = dma_first_ending_after(dma, iova); iova < end; i++) {
        if (i >= dma->nr_regions || region_start(dma->regions[i]) > iova) {
            return -ENOENT;
        }
        if (is_write && !(dma->regions[i]->info.prot & PROT_WRITE)) {
            return -EACCES;
        }
        iova = region_end(dma->regions[i]);
    }
    return 0;
}

VFU_EXPORT int
vfu_addr_to_sgl(vfu_ctx_t *ctx, vfu_dma_addr_t dma_addr, size_t len, dma_sg_t *sgl,
                size_t max_nr_sgs, int prot)
{
    uint64_t addr = (uint64_t)(uintptr_t)dma_addr;
    uint64_t end;
    size_t needed = 0;
    struct vfu_dma *dma;
    size_t i;

    if (ctx == NULL || ctx->dma == NULL || (sgl == NULL && max_nr_sgs > 0)) {
        errno = EINVAL;
        return -1;
    }
    dma = ctx->dma;
    if (len == 0) {
        return 0;
    }
    if (addr > UINT64_MAX - len) {
        errno = ENOENT;
        return -1;
    }
    end = addr + len;

    i = dma_first_ending_after(dma, addr);
    while (addr < end) {
        struct dma_region *r;

        /* The next mapping must start exactly where the range continues. */
        if (i >= dma->nr_regions || region_start(dma->regions[i]) > addr) {
            errno = ENOENT;
            return -1;
        }
        r = dma->regions[i];
        if ((prot & PROT_WRITE) && !(r->info.prot & PROT_WRITE)) {
            errno = EACCES;
            return -1;
        }
        if (needed < max_nr_sgs) {
            struct dma_sg *sg = &sgl[needed];
            sg->dma_addr = r->info.iova.iov_base;
            sg->region = r;
            sg->offset = addr - region_start(r);
            sg->length = VFU_MIN(end, region_end(r)) - addr;
            sg->writeable = (prot & PROT_WRITE) != 0;
            sg->mapping_id = r->id;
        }
        needed++;
        addr = VFU_MIN(end, region_end(r));
        i++;
    }

    if (needed > max_nr_sgs) {
        /* Too small an array: tell the caller how many entries it needs. */
        errno = 0;
        return -(int)needed - 1;
    }
    return (int)needed;
}

/*
 * The mapping an entry refers to, checked against the live mappings so that
 * an entry outliving its DMA_UNMAP is refused rather than followed.
 */
static int
sg_region(vfu_ctx_t *ctx, const dma_sg_t *sg, struct dma_region **out)
{
    struct dma_region *r;

    if (sg->region == NULL || ctx->dma == NULL) {
        return -EINVAL;
    }
    r = dma_find_containing(ctx->dma, (uint64_t)(uintptr_t)sg->dma_addr);
    if (r != sg->region || r->id != sg->mapping_id ||
        region_start(r) != (uint64_t)(uintptr_t)sg->dma_addr) {
        return -ENOENT;
    }
    if (sg->offset > r->info.iova.iov_len || sg->length > r->info.iova.iov_len - sg->offset) {
        return -EINVAL;
    }
    *out = r;
    return 0;
}

VFU_EXPORT int
vfu_sgl_get(vfu_ctx_t *ctx, dma_sg_t *sgl, struct iovec *iov, size_t cnt, int flags)
{
    size_t i;

    if (ctx == NULL || flags != 0 || (cnt > 0 && (sgl == NULL || iov == NULL))) {
        errno = EINVAL;
        return -1;
    }
    for (i = 0; i < cnt; i++) {
        struct dma_region *r;
        int ret = sg_region(ctx, &sgl[i], &r);

        if (ret < 0) {
            errno = -ret;
            return -1;
        }
        /* Only mmap mode has memory in this process to point at. */
        if (r->mode != DMA_ACCESS_MMAP) {
            errno = EFAULT;
            return -1;
        }
        iov[i].iov_base = (char *)r->info.vaddr + sgl[i].offset;
        iov[i].iov_len = sgl[i].length;
    }
    return 0;
}

/* Only entries asked for with PROT_WRITE can have written anything. */
VFU_EXPORT void
vfu_sgl_mark_dirty(vfu_ctx_t *ctx, dma_sg_t *sgl, size_t cnt)
{
    if (ctx == NULL || sgl == NULL || ctx->dirty_pgsize == 0) {
        return;
    }
    for (size_t i = 0; i < cnt; i++) {
        struct dma_region *r;

        if (sgl[i].writeable && sg_region(ctx, &sgl[i], &r) == 0) {
            dirty_mark(ctx, r->dirty, sgl[i].offset, sgl[i].length);
        }
    }
}

/* Nothing is pinned by vfu_sgl_get, so only the dirty marking is left. */
VFU_EXPORT void
vfu_sgl_put(vfu_ctx_t *ctx, dma_sg_t *sgl, struct iovec *iov, size_t cnt)
{
    (void)iov;
    vfu_sgl_mark_dirty(ctx, sgl, cnt);
}

/*
 * Upstream ignores ctx here, so some callers pass NULL: then the entry's
 * region is trusted as it is.
 */
VFU_EXPORT bool
vfu_sg_is_mappable(vfu_ctx_t *ctx, dma_sg_t *sg)
{
    struct dma_region *r;

    if (sg == NULL) {
        return false;
    }
    if (ctx == NULL) {
        return sg->region != NULL && sg->region->mode == DMA_ACCESS_MMAP;
    }
    return sg_region(ctx, sg, &r) == 0 && r->mode == DMA_ACCESS_MMAP;
}

static int
file_io(int fd, void *buf, size_t len, uint64_t offset, bool is_write)
{
    while (len > 0) {
        ssize_t n =
            is_write ? pwrite(fd, buf, len, (off_t)offset) : pread(fd, buf, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            return -EIO;
        }
        buf = (char *)buf + n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

/*
 * Copies one entry in or out of memory this process can reach. sgl_access
 * has checked the entry, so a write marks r dirty without a second lookup.
 */
static int
direct_access(vfu_ctx_t *ctx, dma_sg_t *sg, struct dma_region *r, void *data, bool is_write)
{
    if (r->mode == DMA_ACCESS_FILE_IO) {
        int ret = file_io(r->fd, data, sg->length, r->file_offset + sg->offset, is_write);
        if (ret == 0 && is_write) {
            dirty_mark(ctx, r->dirty, sg->offset, sg->length);
        }
        return ret;
    }
    if (is_write) {
        memcpy((char *)r->info.vaddr + sg->offset, data, sg->length);
        dirty_mark(ctx, r->dirty, sg->offset, sg->length);
    } else {
        memcpy(data, (char *)r->info.vaddr + sg->offset, sg->length);
    }
    return 0;
}

/*
 * Entries follow each other in data. With VFU_SGL_DIRECT_ACCESS, mapped and
 * file I/O memory is copied here; without it, and always for message mode,
 * data travels by DMA_READ / DMA_WRITE messages, as upstream. Upstream takes
 * one entry only; we take any number (a range spanning adjacent mappings).
 */
static int
sgl_access(vfu_ctx_t *ctx, dma_sg_t *sg, size_t sg_cnt, void *data, int flags, bool is_write)
{
    char *p = data;
    size_t i;

    if (ctx == NULL || (sg_cnt > 0 && (sg == NULL || data == NULL)) ||
        (flags & ~VFU_SGL_DIRECT_ACCESS) != 0) {
        return -EINVAL;
    }
    /* Every entry is checked before any byte moves. */
    for (i = 0; i < sg_cnt; i++) {
        struct dma_region *r;
        int ret = sg_region(ctx, &sg[i], &r);

        if (ret < 0) {
            return ret;
        }
        if (is_write && (!sg[i].writeable || !(r->info.prot & PROT_WRITE))) {
            return -EPERM;
        }
    }
    for (i = 0; i < sg_cnt; i++) {
        struct dma_region *r = sg[i].region;
        int ret;

        if ((flags & VFU_SGL_DIRECT_ACCESS) && r->mode != DMA_ACCESS_MESSAGE) {
            ret = direct_access(ctx, &sg[i], r, p, is_write);
        } else {
            /* Message writes mark nothing dirty: the client wrote the memory. */
            ret = dma_transfer_wait(ctx, region_start(r) + sg[i].offset, sg[i].length, p, is_write);
        }
        if (ret < 0) {
            return ret;
        }
        p += sg[i].length;
    }
    return 0;
}

VFU_EXPORT int
vfu_sgl_read(vfu_ctx_t *ctx, dma_sg_t *sg, size_t sg_cnt, void *data, int flags)
{
    int ret = sgl_access(ctx, sg, sg_cnt, data, flags, false);

    if (ret < 0) {
        errno = -ret;
        return -1;
    }
    return 0;
}

VFU_EXPORT int
vfu_sgl_write(vfu_ctx_t *ctx, dma_sg_t *sg, size_t sg_cnt, void *data, int flags)
{
    int ret = sgl_access(ctx, sg, sg_cnt, data, flags, true);

    if (ret < 0) {
        errno = -ret;
        return -1;
    }
    return 0;
}
