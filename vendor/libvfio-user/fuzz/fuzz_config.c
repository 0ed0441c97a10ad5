/*
 * libFuzzer harness for config-space accesses: pci_config_access, as the
 * REGION_READ/REGION_WRITE handlers call it, with every size and offset and
 * any value, on the device of fuzz_device.h (every capability type, as
 * plain, callback and read-only capabilities).
 *
 * Input: one byte of FUZZ_OPT_* options (conventional or PCIe config space,
 * a reset callback that fails), then accesses, each:
 *   kind    1 byte: bit 0 write; bits 1-3 size: 1, 2, 4, 8, a 16-bit count,
 *           an 8-bit count, 3, or up to the end of config space (bit 7: one
 *           byte more); bit 4: a 64-bit offset instead of a 16-bit one
 *   offset  2 bytes, reduced to the config size + 16, or 8 bytes as they are
 *   data    count bytes to write (zeros when the input runs out)
 *
 * After each access it checks, beyond what the sanitizers see:
 *   - the result: count, or EINVAL exactly when the access passes the end
 *     (or EIO when a function-level reset is refused by the device);
 *   - a read returns the emulated bytes as stored, and the device's bytes
 *     (callback capabilities, bytes no capability owns) from its callback,
 *     and changes nothing;
 *   - a write never changes a bit its write mask makes read-only, except a
 *     write-1-to-clear bit going from 1 to 0; bytes outside the access stay
 *     as they were unless the write started a function-level reset; the
 *     masks themselves only change where BAR and ROM sizing puts them; the
 *     device's callback sees exactly the bytes written to it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_device.h"
#include "private.h"

#define CFG_IDX VFU_PCI_DEV_CFG_REGION_IDX

static int bar_memfd = -1;
static int irq_eventfd = -1;

struct input {
    const uint8_t *p;
    size_t left;
};

static uint64_t
take(struct input *in, size_t bytes)
{
    uint64_t v = 0;

    for (size_t i = 0; i < bytes && in->left > 0; i++, in->left--) {
        v |= (uint64_t)*in->p++ << (8 * i);
    }
    return v;
}

static void
fail(const char *what, uint64_t offset, size_t count, bool is_write, size_t at)
{
    fprintf(stderr, "fuzz_config: %s (%s of %zu bytes at %#llx; byte %#zx)\n", what,
            is_write ? "write" : "read", count, (unsigned long long)offset, at);
    abort();
}

/*
 * One device per config-space size, made once: creating a context per input
 * would cost most of the time. Each input starts from the state realize left
 * (config space, masks, the callback's bytes, no interrupt pending).
 */
struct config_device {
    struct fuzz_device dev;
    vfu_ctx_t *ctx;
    size_t size;
    uint8_t *cfg, *wmask, *w1cmask, *shadow; /* as realized */
    bool *owned;                             /* bytes the device's callback owns */
};

static struct config_device devices[2];

/* Removes the socket files when libFuzzer exits. */
static void
destroy_devices(void)
{
    for (size_t i = 0; i < 2; i++) {
        struct config_device *d = &devices[i];

        if (d->ctx != NULL) {
            fuzz_device_destroy(&d->dev, d->ctx);
            free(d->cfg);
            free(d->wmask);
            free(d->w1cmask);
            free(d->shadow);
            free(d->owned);
            memset(d, 0, sizeof(*d));
        }
    }
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    atexit(destroy_devices);
    bar_memfd = memfd_create("fuzz-bar4", MFD_CLOEXEC);
    irq_eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (bar_memfd < 0 || ftruncate(bar_memfd, 0x2000) < 0 || irq_eventfd < 0) {
        abort();
    }
    return 0;
}

/* Which config bytes the device's callback owns rather than the library. */
static void
callback_owned(vfu_ctx_t *ctx, bool *owned, size_t size)
{
    const struct vfu_pci *pci = &ctx->pci;

    for (size_t b = 0; b < size; b++) {
        owned[b] = b >= PCI_STD_HEADER_SIZEOF;
    }
    for (size_t i = 0; i < pci->nr_caps + pci->nr_ext_caps; i++) {
        const struct vfu_pci_cap *cap =
            i < pci->nr_caps ? &pci->caps[i] : &pci->ext_caps[i - pci->nr_caps];

        for (size_t b = cap->off; b < cap->off + cap->size; b++) {
            owned[b] = cap->flags & VFU_CAP_FLAG_CALLBACK;
        }
    }
}

/* Whether byte b of the write masks may change: BARs and ROM are sized at each write. */
static bool
mask_may_change(size_t b)
{
    return (b >= PCI_BASE_ADDRESS_0 && b < PCI_BASE_ADDRESS_5 + 4) ||
           (b >= PCI_ROM_ADDRESS && b < PCI_ROM_ADDRESS + 4);
}

static size_t
access_count(struct input *in, unsigned kind, uint64_t offset, size_t cfg_size)
{
    static const size_t fixed[] = { 1, 2, 4, 8 };
    unsigned size_class = (kind >> 1) & 7;

    switch (size_class) {
    case 4:
        return (size_t)take(in, 2);
    case 5:
        return (size_t)take(in, 1);
    case 6:
        return 3;
    case 7:
        return (offset < cfg_size ? cfg_size - (size_t)offset : 0) + (kind >> 7);
    default:
        return fixed[size_class];
    }
}

/* Most checks compare whole ranges first: per-byte loops would dominate. */
static bool
same(const uint8_t *a, const uint8_t *b, size_t from, size_t to)
{
    return from >= to || memcmp(a + from, b + from, to - from) == 0;
}

static void
check_masks(struct config_device *d, const uint8_t *wmask_before, const uint8_t *w1c_before,
            uint64_t offset, size_t count, bool is_write)
{
    if (!same(d->ctx->pci.w1cmask, w1c_before, 0, d->size)) {
        fail("a write-1-to-clear mask changed", offset, count, is_write, 0);
    }
    if (same(d->ctx->pci.wmask, wmask_before, 0, d->size)) {
        return;
    }
    for (size_t b = 0; b < d->size; b++) {
        if (!mask_may_change(b) && d->ctx->pci.wmask[b] != wmask_before[b]) {
            fail("a write mask changed", offset, count, is_write, b);
        }
    }
}

/* A read-only bit may only change by a write-1-to-clear going from 1 to 0. */
static void
check_read_only(struct config_device *d, const uint8_t *before, const uint8_t *w1c_before, size_t b,
                uint64_t offset, size_t count)
{
    uint8_t now = d->ctx->pci.cfg[b];
    uint8_t cleared = (uint8_t)(w1c_before[b] & before[b] & ~now);

    if ((now ^ before[b]) & ~d->ctx->pci.wmask[b] & ~cleared) {
        fail("a read-only bit changed", offset, count, true, b);
    }
}

/* Outside the access nothing changes, unless a write started a function reset. */
static void
check_outside(struct config_device *d, const uint8_t *before, const uint8_t *w1c_before,
              const uint8_t *shadow_before, bool in_range, uint64_t offset, size_t count,
              bool is_write, bool flr)
{
    size_t start = in_range ? (size_t)offset : d->size;
    size_t end = in_range ? (size_t)offset + count : d->size;
    const uint8_t *cfg = d->ctx->pci.cfg;

    if (!same(d->dev.buf[CFG_IDX], shadow_before, 0, start) ||
        !same(d->dev.buf[CFG_IDX], shadow_before, end, d->size)) {
        fail("the callback got a byte outside the access", offset, count, is_write, 0);
    }
    if (same(cfg, before, 0, start) && same(cfg, before, end, d->size)) {
        return;
    }
    if (!is_write || !flr) {
        fail("a byte outside the access changed", offset, count, is_write, 0);
    }
    for (size_t b = 0; b < d->size; b++) {
        if (b < start || b >= end) {
            check_read_only(d, before, w1c_before, b, offset, count);
        }
    }
}

static void
check_inside(struct config_device *d, const uint8_t *before, const uint8_t *w1c_before,
             const uint8_t *buf, uint64_t offset, size_t count, bool is_write, bool succeeded)
{
    const uint8_t *shadow = d->dev.buf[CFG_IDX];

    if (!is_write && !same(d->ctx->pci.cfg, before, (size_t)offset, (size_t)offset + count)) {
        fail("a read changed config space", offset, count, false, 0);
    }
    for (size_t i = 0; i < count; i++) {
        size_t b = (size_t)offset + i;

        if (is_write) {
            check_read_only(d, before, w1c_before, b, offset, count);
        }
        if (!succeeded) {
            continue;
        }
        if (d->owned[b] && is_write && shadow[b] != buf[i]) {
            fail("the callback did not get a written byte", offset, count, true, b);
        }
        if (!is_write && buf[i] != (d->owned[b] ? shadow[b] : before[b])) {
            fail("a read returned the wrong byte", offset, count, false, b);
        }
    }
}

static uint8_t *
copy_of(const void *src, size_t size)
{
    uint8_t *copy = malloc(size);

    if (copy == NULL) {
        abort();
    }
    memcpy(copy, src, size);
    return copy;
}

static struct config_device *
device_for(unsigned options)
{
    struct config_device *d = &devices[(options & FUZZ_OPT_CONVENTIONAL) ? 1 : 0];

    if (d->ctx == NULL) {
        char path[108];

        snprintf(path, sizeof(path), "/tmp/vfu-fuzz-config-%d-%u.sock", (int)getpid(),
                 options & FUZZ_OPT_CONVENTIONAL);
        d->ctx = fuzz_device_create(&d->dev, path, options & FUZZ_OPT_CONVENTIONAL, bar_memfd,
                                    irq_eventfd);
        d->size = d->ctx->pci.cfg_size;
        d->cfg = copy_of(d->ctx->pci.cfg, d->size);
        d->wmask = copy_of(d->ctx->pci.wmask, d->size);
        d->w1cmask = copy_of(d->ctx->pci.w1cmask, d->size);
        d->shadow = copy_of(d->dev.buf[CFG_IDX], d->size);
        d->owned = malloc(d->size * sizeof(*d->owned));
        if (d->owned == NULL) {
            abort();
        }
        callback_owned(d->ctx, d->owned, d->size);
    } else {
        memcpy(d->ctx->pci.cfg, d->cfg, d->size);
        memcpy(d->ctx->pci.wmask, d->wmask, d->size);
        memcpy(d->ctx->pci.w1cmask, d->w1cmask, d->size);
        memcpy(d->dev.buf[CFG_IDX], d->shadow, d->size);
        irq_reset(d->ctx);
        memset(d->dev.resets, 0, sizeof(d->dev.resets));
    }
    d->dev.options = options;
    return d;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = { data, size };
    struct config_device *d;
    vfu_ctx_t *ctx;
    size_t cfg_size;
    unsigned options;
    uint8_t *before, *wmask_before, *w1c_before, *shadow_before;

    if (size < 1) {
        return -1;
    }
    options = (unsigned)take(&in, 1) & (FUZZ_OPT_CONVENTIONAL | FUZZ_OPT_RESET_FAILS);
    d = device_for(options);
    ctx = d->ctx;
    cfg_size = d->size;
    before = malloc(cfg_size);
    wmask_before = malloc(cfg_size);
    w1c_before = malloc(cfg_size);
    shadow_before = malloc(cfg_size);
    if (before == NULL || wmask_before == NULL || w1c_before == NULL || shadow_before == NULL) {
        abort();
    }

    while (in.left > 0) {
        unsigned kind = (unsigned)take(&in, 1);
        bool is_write = kind & 1;
        uint64_t offset = (kind & 0x10) ? take(&in, 8) : take(&in, 2) % (cfg_size + 16);
        size_t count = access_count(&in, kind, offset, cfg_size);
        bool in_range = offset <= cfg_size && count <= cfg_size - offset;
        /* Exactly count bytes, so that any access past them is caught. */
        char *buf = malloc(count > 0 ? count : 1);
        const uint8_t *shadow = d->dev.buf[CFG_IDX];
        unsigned flrs = d->dev.resets[VFU_RESET_PCI_FLR];
        bool flr;
        ssize_t ret;

        if (buf == NULL) {
            abort();
        }
        for (size_t i = 0; i < count; i++) {
            buf[i] = (char)take(&in, 1);
        }
        memcpy(before, ctx->pci.cfg, cfg_size);
        memcpy(wmask_before, ctx->pci.wmask, cfg_size);
        memcpy(w1c_before, ctx->pci.w1cmask, cfg_size);
        memcpy(shadow_before, shadow, cfg_size);

        ret = pci_config_access(ctx, buf, count, offset, is_write);
        flr = d->dev.resets[VFU_RESET_PCI_FLR] != flrs;

        if (count == 0) {
            if (ret != 0) {
                fail("an empty access did not return 0", offset, count, is_write, 0);
            }
        } else if (!in_range) {
            if (ret != -EINVAL) {
                fail("an access past the end was not EINVAL", offset, count, is_write, 0);
            }
        } else if (ret != (ssize_t)count &&
                   !(ret == -EIO && flr && (options & FUZZ_OPT_RESET_FAILS))) {
            fail("an access in range failed", offset, count, is_write, 0);
        }

        check_masks(d, wmask_before, w1c_before, offset, count, is_write);
        check_outside(d, before, w1c_before, shadow_before, in_range, offset, count, is_write, flr);
        if (in_range) {
            check_inside(d, before, w1c_before, (const uint8_t *)buf, offset, count, is_write,
                         ret == (ssize_t)count);
        }
        free(buf);
    }

    free(before);
    free(wmask_before);
    free(w1c_before);
    free(shadow_before);
    return 0;
}
