/*
 * Dirty-page logging: while the client has it on (DEVICE_FEATURE
 * DMA_LOGGING_START), every fd-backed mapping keeps one bit per page of the
 * logging granule, set when the device writes there (vfu_sgl_write with
 * VFU_SGL_DIRECT_ACCESS, vfu_sgl_put, vfu_sgl_mark_dirty). DMA_LOGGING_REPORT
 * hands the bits of one whole mapping over at the page size the client asks
 * for, and clears them. Message-mode mappings keep no bitmap: the device
 * cannot write them behind the client's back.
 *
 * Bitmaps are least significant bit first, sized in whole 64-bit words, as
 * the wire carries them. Bits are set and taken with atomic byte operations
 * because devices write guest memory from threads of their own.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "private.h"

/*
 * Largest report bitmap: the reply is queued whole, and past TX_QUEUE_MAX a
 * client counts as gone. 4 MiB covers 128 GiB at 4 KiB pages; a larger
 * mapping is reported at a larger page size.
 */
#define REPORT_BITMAP_MAX (TX_QUEUE_MAX / 2)

static bool
is_power_of_2(uint64_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

/* Bytes of a bitmap with one bit per page of len bytes, in whole u64s. */
static uint64_t
bitmap_bytes(uint64_t len, uint64_t page_size)
{
    uint64_t pages = len / page_size + (len % page_size != 0);

    return (pages + 63) / 64 * sizeof(uint64_t);
}

int
dirty_logging_start(vfu_ctx_t *ctx, const uint8_t *data, size_t len, uint64_t *page_size)
{
    struct vfio_user_device_feature_dma_logging_control ctl;
    const size_t range_size = sizeof(struct vfio_user_device_feature_dma_logging_range);
    uint64_t granule;
    int ret;

    if (ctx->dma == NULL || len < sizeof(ctl)) {
        return -EINVAL;
    }
    memcpy(&ctl, data, sizeof(ctl));
    if (!is_power_of_2(ctl.page_size) || ctl.num_ranges > (len - sizeof(ctl)) / range_size) {
        vfu_err(ctx,
                "DMA_LOGGING_START: page size %#llx, %u ranges in %zu "
                "bytes",
                (unsigned long long)ctl.page_size, ctl.num_ranges, len);
        return -EINVAL;
    }
    for (uint32_t i = 0; i < ctl.num_ranges; i++) {
        struct vfio_user_device_feature_dma_logging_range range;

        memcpy(&range, data + sizeof(ctl) + i * range_size, sizeof(range));
        if (range.length == 0 || range.iova > UINT64_MAX - range.length) {
            return -EINVAL;
        }
    }
    /*
     * The ranges are a hint the spec lets a device ignore: whole mappings
     * are logged. The page size is one too; nothing finer than a host page
     * is kept, which bounds the bitmaps' size.
     */
    granule = VFU_MAX(ctl.page_size, (uint64_t)sysconf(_SC_PAGESIZE));
    if (ctx->dirty_pgsize != 0) {
        /* Already on: the same request again is harmless, another is not. */
        if (granule != ctx->dirty_pgsize) {
            return -EINVAL;
        }
        *page_size = granule;
        return 0;
    }
    ctx->dirty_pgsize = granule;
    ret = dma_dirty_start(ctx);
    if (ret < 0) {
        ctx->dirty_pgsize = 0;
        return ret;
    }
    vfu_dbg(ctx, "dirty-page logging on, %llu-byte pages", (unsigned long long)granule);
    *page_size = granule;
    return 0;
}

void
dirty_logging_stop(vfu_ctx_t *ctx)
{
    if (ctx->dirty_pgsize == 0) {
        return;
    }
    if (ctx->dma != NULL) {
        dma_dirty_stop(ctx);
    }
    ctx->dirty_pgsize = 0;
    vfu_dbg(ctx, "dirty-page logging off");
}

int
dirty_bitmap_alloc(vfu_ctx_t *ctx, uint64_t len, uint8_t **bitmap)
{
    *bitmap = NULL;
    if (ctx->dirty_pgsize == 0) {
        return 0;
    }
    *bitmap = calloc(1, bitmap_bytes(len, ctx->dirty_pgsize));
    return *bitmap != NULL ? 0 : -ENOMEM;
}

void
dirty_mark(vfu_ctx_t *ctx, uint8_t *bitmap, uint64_t offset, uint64_t len)
{
    uint64_t page_size = ctx->dirty_pgsize;

    if (bitmap == NULL || page_size == 0 || len == 0) {
        return;
    }
    for (uint64_t page = offset / page_size; page <= (offset + len - 1) / page_size; page++) {
        __atomic_fetch_or(&bitmap[page / 8], (uint8_t)(1u << (page % 8)), __ATOMIC_RELAXED);
    }
}

static void
set_bit(uint8_t *bitmap, uint64_t bit)
{
    bitmap[bit / 8] |= (uint8_t)(1u << (bit % 8));
}

/*
 * Takes the logged bits of the first len bytes of a mapping (clearing them,
 * and only them) and sets the bits of out, which has one bit per report_size
 * page: a report page larger than the logging granule gathers several logged
 * bits into one; a smaller one repeats a logged bit for each of its pages.
 */
static void
take_bits(uint8_t *logged, uint64_t granule, uint8_t *out, uint64_t report_size, uint64_t len)
{
    uint64_t logged_pages = len / granule + (len % granule != 0);
    uint64_t report_pages = len / report_size + (len % report_size != 0);

    for (uint64_t byte = 0; byte * 8 < logged_pages; byte++) {
        uint64_t left = logged_pages - byte * 8;
        uint8_t mask = left >= 8 ? 0xff : (uint8_t)((1u << left) - 1);
        uint8_t bits = __atomic_fetch_and(&logged[byte], (uint8_t)~mask, __ATOMIC_RELAXED) & mask;

        for (unsigned b = 0; bits != 0; b++, bits >>= 1) {
            uint64_t page = byte * 8 + b;
            uint64_t first, last;

            if (!(bits & 1)) {
                continue;
            }
            if (report_size >= granule) {
                first = last = page / (report_size / granule);
            } else {
                first = page * (granule / report_size);
                last = first + granule / report_size - 1;
            }
            for (uint64_t r = first; r <= last && r < report_pages; r++) {
                set_bit(out, r);
            }
        }
    }
}

int
dirty_logging_report(vfu_ctx_t *ctx, struct vfu_msg *msg,
                     const struct vfio_user_device_feature *req, const uint8_t *data, size_t len)
{
    struct vfio_user_device_feature_dma_logging_report rep;
    struct vfio_user_device_feature *res;
    uint64_t bytes, reply_len;
    uint8_t *logged;
    int ret;

    if (len < sizeof(rep) || ctx->dma == NULL || ctx->dirty_pgsize == 0) {
        return -EINVAL;
    }
    memcpy(&rep, data, sizeof(rep));
    if (!is_power_of_2(rep.page_size) || rep.length < rep.page_size) {
        vfu_err(ctx, "DMA_LOGGING_REPORT: page size %#llx for %#llx bytes",
                (unsigned long long)rep.page_size, (unsigned long long)rep.length);
        return -EINVAL;
    }
    bytes = bitmap_bytes(rep.length, rep.page_size);
    reply_len = sizeof(*req) + sizeof(rep) + bytes;
    if (bytes > REPORT_BITMAP_MAX || req->argsz < reply_len) {
        vfu_err(ctx, "DMA_LOGGING_REPORT: %llu-byte bitmap, argsz %u", (unsigned long long)bytes,
                req->argsz);
        return -EINVAL;
    }
    ret = dma_dirty_bitmap(ctx, rep.iova, rep.length, &logged);
    if (ret < 0) {
        return ret;
    }
    res = msg_reply_alloc(msg, (size_t)reply_len);
    if (res == NULL) {
        return -ENOMEM;
    }
    res->argsz = (uint32_t)reply_len;
    res->flags = req->flags;
    memcpy(res->data, &rep, sizeof(rep));
    take_bits(logged, ctx->dirty_pgsize, res->data + sizeof(rep), rep.page_size, rep.length);
    return 0;
}
