/*
 * The fuzzed device: see fuzz_device.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "fuzz_device.h"
#include "private.h"

#define BAR0_SIZE 0x1000
#define BAR1_SIZE 0x100  /* I/O */
#define BAR2_SIZE 0x4000 /* 64-bit: MSI-X table at 0, PBA at 0x2000 */
#define BAR4_SIZE 0x2000 /* mappable from 0x1000 */
#define BAR5_SIZE 0x10   /* read-only */
#define ROM_SIZE 0x800
#define VGA_SIZE 0x1000
#define MSI_VECTORS 4
#define MSIX_VECTORS 16
#define DMA_PROBE_LEN 64

static void
die(const char *what)
{
    fprintf(stderr, "fuzz device setup: %s: %s\n", what, strerror(errno));
    abort();
}

/* The library must never pass bytes outside a region to its callback. */
static uint8_t *
backing(vfu_ctx_t *ctx, int idx, size_t count, loff_t offset)
{
    struct fuzz_device *dev = vfu_get_private(ctx);

    if (offset < 0 || (size_t)offset > dev->size[idx] || count > dev->size[idx] - (size_t)offset) {
        fprintf(stderr, "region %d callback got %zu bytes at %#llx of %#zx\n", idx, count,
                (unsigned long long)offset, dev->size[idx]);
        abort();
    }
    return dev->buf[idx] + offset;
}

static ssize_t
ram_access(vfu_ctx_t *ctx, int idx, char *buf, size_t count, loff_t offset, bool is_write)
{
    struct fuzz_device *dev = vfu_get_private(ctx);
    uint8_t *mem = backing(ctx, idx, count, offset);

    if (idx != VFU_PCI_DEV_CFG_REGION_IDX && (dev->options & FUZZ_OPT_ACCESS_FAILS)) {
        errno = EIO;
        return -1;
    }
    if (is_write) {
        memcpy(mem, buf, count);
    } else {
        memcpy(buf, mem, count);
    }
    return (ssize_t)count;
}

/*
 * Reads or writes DMA_PROBE_LEN bytes of client memory at addr, as a device
 * would, entry by entry: every entry gets a buffer of exactly
 * DMA_PROBE_LEN bytes, which no entry of this range may exceed.
 */
static void
dma_probe(vfu_ctx_t *ctx, uint64_t addr, bool is_write)
{
    enum { MAX_SGS = 4 };
    uint8_t(*data)[DMA_PROBE_LEN] = calloc(MAX_SGS, DMA_PROBE_LEN);
    dma_sg_t *sgl = calloc(MAX_SGS, dma_sg_size());
    struct iovec iov[MAX_SGS];
    int nr;

    if (sgl == NULL || data == NULL) {
        abort();
    }
    nr = vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)(uintptr_t)addr, DMA_PROBE_LEN, sgl, MAX_SGS,
                         is_write ? PROT_READ | PROT_WRITE : PROT_READ);
    for (int i = 0; i < nr; i++) {
        dma_sg_t *sg = (dma_sg_t *)((char *)sgl + (size_t)i * dma_sg_size());

        vfu_sg_is_mappable(ctx, sg);
        if (is_write) {
            vfu_sgl_write(ctx, sg, 1, data[i], VFU_SGL_DIRECT_ACCESS);
        } else {
            vfu_sgl_read(ctx, sg, 1, data[i], VFU_SGL_DIRECT_ACCESS);
        }
    }
    /* The whole list at once by messages (answered only if the input does). */
    if (nr > 0) {
        if (is_write) {
            vfu_sgl_write(ctx, sgl, (size_t)nr, data, 0);
        } else {
            vfu_sgl_read(ctx, sgl, (size_t)nr, data, 0);
        }
    }
    if (nr > 0 && vfu_sgl_get(ctx, sgl, iov, (size_t)nr, 0) == 0) {
        /* Touch every byte the library says is mapped. */
        for (int i = 0; i < nr; i++) {
            volatile uint8_t *p = iov[i].iov_base;

            for (size_t j = 0; j < iov[i].iov_len; j++) {
                p[j] = p[j];
            }
        }
        vfu_sgl_mark_dirty(ctx, sgl, (size_t)nr);
        vfu_sgl_put(ctx, sgl, iov, (size_t)nr);
    }
    free(sgl);
    free(data);
}

static void
on_transfer_done(vfu_ctx_t *ctx, void *cookie, int error)
{
    free(cookie);
}

/* Starts an asynchronous transfer; its buffer lives until the callback. */
static void
dma_start(vfu_ctx_t *ctx, uint64_t value)
{
    void *data = calloc(1, DMA_PROBE_LEN);

    if (data == NULL) {
        abort();
    }
    if (dma_transfer_start(ctx, value & ~UINT64_C(1), DMA_PROBE_LEN, data, (value & 1) != 0,
                           on_transfer_done, data) < 0) {
        free(data);
    }
}

static ssize_t
bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    uint64_t value = 0;
    ssize_t ret = ram_access(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, buf, count, offset, is_write);

    if (ret < 0 || !is_write) {
        return ret;
    }
    memcpy(&value, buf, count < sizeof(value) ? count : sizeof(value));
    switch (offset) {
    case FUZZ_BAR0_IRQ:
        vfu_irq_trigger(ctx, (uint32_t)value);
        break;
    case FUZZ_BAR0_DMA_READ:
        dma_probe(ctx, value, false);
        break;
    case FUZZ_BAR0_DMA_WRITE:
        dma_probe(ctx, value, true);
        break;
    case FUZZ_BAR0_DMA_ASYNC:
        dma_start(ctx, value);
        break;
    }
    return ret;
}

#define RAM_CALLBACK(name, idx)                                                                \
    static ssize_t name(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write) \
    {                                                                                          \
        return ram_access(ctx, idx, buf, count, offset, is_write);                             \
    }

RAM_CALLBACK(bar1_access, VFU_PCI_DEV_BAR1_REGION_IDX)
RAM_CALLBACK(bar2_access, VFU_PCI_DEV_BAR2_REGION_IDX)
RAM_CALLBACK(bar4_access, VFU_PCI_DEV_BAR4_REGION_IDX)
RAM_CALLBACK(bar5_access, VFU_PCI_DEV_BAR5_REGION_IDX)
RAM_CALLBACK(rom_access, VFU_PCI_DEV_ROM_REGION_IDX)
RAM_CALLBACK(cfg_access, VFU_PCI_DEV_CFG_REGION_IDX)
RAM_CALLBACK(vga_access, VFU_PCI_DEV_VGA_REGION_IDX)

static int
on_reset(vfu_ctx_t *ctx, vfu_reset_type_t type)
{
    struct fuzz_device *dev = vfu_get_private(ctx);

    if ((unsigned)type >= 3) {
        abort();
    }
    dev->resets[type]++;
    if (dev->options & FUZZ_OPT_RESET_FAILS) {
        errno = EIO;
        return -1;
    }
    return 0;
}

static int
on_quiesce(vfu_ctx_t *ctx)
{
    struct fuzz_device *dev = vfu_get_private(ctx);

    dev->quiesces++;
    if (dev->options & FUZZ_OPT_QUIESCE_ASYNC) {
        errno = EBUSY;
        return -1;
    }
    return 0;
}

/* Mapped memory is touched only by dma_probe, so that most inputs fault no page in. */
static void
on_dma_register(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    struct fuzz_device *dev = vfu_get_private(ctx);

    dev->dma_maps++;
}

static void
on_dma_unregister(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    struct fuzz_device *dev = vfu_get_private(ctx);

    if (dev->dma_maps == 0) {
        fprintf(stderr, "DMA unregister without a register\n");
        abort();
    }
    dev->dma_maps--;
}

/* Every message is formatted, so that each format meets fuzzed values. */
static void
discard_log(vfu_ctx_t *ctx, int level, const char *msg)
{
    if (strlen(msg) >= BUFSIZ) {
        abort();
    }
}

static void
on_irq_state(vfu_ctx_t *ctx, uint32_t start, uint32_t count, bool mask)
{
}

static int
migr_transition(vfu_ctx_t *ctx, vfu_migr_state_t state)
{
    struct fuzz_device *dev = vfu_get_private(ctx);

    if ((unsigned)state > VFU_MIGR_STATE_RESUME) {
        abort();
    }
    if (state == VFU_MIGR_STATE_STOP_AND_COPY && (dev->options & FUZZ_OPT_MIGR_FAILS)) {
        errno = EIO;
        return -1;
    }
    if (state != VFU_MIGR_STATE_STOP_AND_COPY || dev->migr_state != VFU_MIGR_STATE_PRE_COPY) {
        dev->migr_pos = 0;
    }
    dev->migr_state = state;
    return 0;
}

/* Data flows only in the states the library allows it in. */
static void
check_data_state(const struct fuzz_device *dev, bool is_write)
{
    bool ok = is_write ? dev->migr_state == VFU_MIGR_STATE_RESUME
                       : dev->migr_state == VFU_MIGR_STATE_PRE_COPY ||
                             dev->migr_state == VFU_MIGR_STATE_STOP_AND_COPY;

    if (!ok) {
        fprintf(stderr, "migration data %s in state %d\n", is_write ? "written" : "read",
                (int)dev->migr_state);
        abort();
    }
}

static ssize_t
migr_read(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct fuzz_device *dev = vfu_get_private(ctx);
    size_t left = BAR0_SIZE - dev->migr_pos;
    size_t n = count < left ? (size_t)count : left;

    check_data_state(dev, false);
    /* The whole buffer must be there, whatever is used of it. */
    memset(buf, 0xa5, count);
    memcpy(buf, dev->buf[VFU_PCI_DEV_BAR0_REGION_IDX] + dev->migr_pos, n);
    dev->migr_pos += n;
    return (ssize_t)n;
}

static ssize_t
migr_write(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct fuzz_device *dev = vfu_get_private(ctx);

    check_data_state(dev, true);
    if (count > BAR0_SIZE - dev->migr_pos) {
        errno = ENOSPC;
        return -1;
    }
    memcpy(dev->buf[VFU_PCI_DEV_BAR0_REGION_IDX] + dev->migr_pos, buf, count);
    dev->migr_pos += count;
    if (dev->options & FUZZ_OPT_MIGR_FAILS) {
        return count > 0 ? (ssize_t)count - 1 : 0;
    }
    return (ssize_t)count;
}

static void
add_cap(vfu_ctx_t *ctx, int flags, void *data)
{
    if (vfu_pci_add_capability(ctx, 0, flags, data) < 0) {
        die("vfu_pci_add_capability");
    }
}

static void
add_capabilities(vfu_ctx_t *ctx, bool express)
{
    struct pmcap pm = { .hdr.id = PCI_CAP_ID_PM, .pc = { .vs = 3, .d1s = 1 } };
    struct msicap msi = {
        .hdr.id = PCI_CAP_ID_MSI,
        .mc = { .mmc = 2, .c64 = 1, .pvm = 1 },
    };
    struct msixcap msix = {
        .hdr.id = PCI_CAP_ID_MSIX,
        .mxc.ts = MSIX_VECTORS - 1,
        .mtab = { .tbir = 2, .to = 0 },
        .mpba = { .pbir = 2, .pbao = 0x2000 >> 3 },
    };
    struct pxcap px = { .hdr.id = PCI_CAP_ID_EXP, .pxcaps.ver = 2, .pxdcap.flrc = 1 };
    uint8_t vendor[12] = { 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 };
    struct vsc vendor_hdr = { .hdr.id = PCI_CAP_ID_VNDR, .size = sizeof(vendor) };
    struct dsncap dsn = {
        .hdr = { .id = PCI_EXT_CAP_ID_DSN, .version = 1 },
        .sn_lo = 0x01234567,
        .sn_hi = 0x89abcdef,
    };
    uint8_t ext_vendor[20] = { 0 };
    struct pcie_ext_cap_vsc_hdr ext_vendor_hdr = {
        .hdr = { .id = PCI_EXT_CAP_ID_VNDR, .version = 1 },
        .id = 0x1234,
        .rev = 1,
        .len = sizeof(ext_vendor),
    };

    memcpy(vendor, &vendor_hdr, sizeof(vendor_hdr));
    memcpy(ext_vendor, &ext_vendor_hdr, sizeof(ext_vendor_hdr));

    add_cap(ctx, 0, &pm);
    add_cap(ctx, 0, &msi);
    add_cap(ctx, 0, &msix);
    add_cap(ctx, 0, &px);
    add_cap(ctx, 0, vendor);
    add_cap(ctx, VFU_CAP_FLAG_CALLBACK, vendor);
    add_cap(ctx, VFU_CAP_FLAG_READONLY, vendor);
    if (express) {
        add_cap(ctx, VFU_CAP_FLAG_EXTENDED, &dsn);
        add_cap(ctx, VFU_CAP_FLAG_EXTENDED, ext_vendor);
        add_cap(ctx, VFU_CAP_FLAG_EXTENDED | VFU_CAP_FLAG_CALLBACK, ext_vendor);
        add_cap(ctx, VFU_CAP_FLAG_EXTENDED | VFU_CAP_FLAG_READONLY, ext_vendor);
    }
}

static void
setup_region(struct fuzz_device *dev, vfu_ctx_t *ctx, int idx, size_t size,
             vfu_region_access_cb_t *cb, int flags, struct iovec *areas, uint32_t nr_areas, int fd)
{
    dev->buf[idx] = calloc(1, size);
    dev->size[idx] = size;
    if (dev->buf[idx] == NULL) {
        die("calloc");
    }
    if (vfu_setup_region(ctx, idx, size, cb, flags, areas, nr_areas, fd, 0) < 0) {
        die("vfu_setup_region");
    }
}

vfu_ctx_t *
fuzz_device_create(struct fuzz_device *dev, const char *path, unsigned options, int memfd,
                   int eventfd)
{
    bool express = !(options & FUZZ_OPT_CONVENTIONAL);
    struct iovec bar4_mappable = { .iov_base = (void *)0x1000, .iov_len = 0x1000 };
    vfu_migration_callbacks_t migr = {
        .version = VFU_MIGR_CALLBACKS_VERS,
        .transition = migr_transition,
        .read_data = migr_read,
        .write_data = migr_write,
    };
    vfu_ctx_t *ctx;

    memset(dev, 0, sizeof(*dev));
    dev->options = options;
    dev->migr_state = VFU_MIGR_STATE_RUNNING;
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, dev, VFU_DEV_TYPE_PCI);
    if (ctx == NULL) {
        die("vfu_create_ctx");
    }
    if (vfu_setup_log(ctx, discard_log, LOG_DEBUG) < 0) {
        die("vfu_setup_log");
    }
    if (vfu_pci_init(ctx, express ? VFU_PCI_TYPE_EXPRESS : VFU_PCI_TYPE_CONVENTIONAL,
                     PCI_HEADER_TYPE_NORMAL, 0) < 0) {
        die("vfu_pci_init");
    }
    vfu_pci_set_id(ctx, 0x1b36, 0x10ff, 0x1af4, 0x1100);
    vfu_pci_set_class(ctx, 0xff, 0, 0);

    setup_region(dev, ctx, VFU_PCI_DEV_BAR0_REGION_IDX, BAR0_SIZE, bar0_access,
                 VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1);
    setup_region(dev, ctx, VFU_PCI_DEV_BAR1_REGION_IDX, BAR1_SIZE, bar1_access, VFU_REGION_FLAG_RW,
                 NULL, 0, -1);
    setup_region(dev, ctx, VFU_PCI_DEV_BAR2_REGION_IDX, BAR2_SIZE, bar2_access,
                 VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM | VFU_REGION_FLAG_64_BITS |
                     VFU_REGION_FLAG_PREFETCH,
                 NULL, 0, -1);
    setup_region(dev, ctx, VFU_PCI_DEV_BAR4_REGION_IDX, BAR4_SIZE, bar4_access,
                 VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, &bar4_mappable, 1, memfd);
    setup_region(dev, ctx, VFU_PCI_DEV_BAR5_REGION_IDX, BAR5_SIZE, bar5_access,
                 VFU_REGION_FLAG_READ | VFU_REGION_FLAG_MEM, NULL, 0, -1);
    setup_region(dev, ctx, VFU_PCI_DEV_ROM_REGION_IDX, ROM_SIZE, rom_access, VFU_REGION_FLAG_READ,
                 NULL, 0, -1);
    setup_region(dev, ctx, VFU_PCI_DEV_CFG_REGION_IDX,
                 express ? PCI_CFG_SPACE_EXP_SIZE : PCI_CFG_SPACE_SIZE, cfg_access,
                 VFU_REGION_FLAG_RW, NULL, 0, -1);
    setup_region(dev, ctx, VFU_PCI_DEV_VGA_REGION_IDX, VGA_SIZE, vga_access, VFU_REGION_FLAG_RW,
                 NULL, 0, -1);
    add_capabilities(ctx, express);

    if (vfu_setup_device_nr_irqs(ctx, VFU_DEV_INTX_IRQ, 1) < 0 ||
        vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSI_IRQ, MSI_VECTORS) < 0 ||
        vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, MSIX_VECTORS) < 0 ||
        vfu_setup_irq_state_callback(ctx, VFU_DEV_MSIX_IRQ, on_irq_state) < 0 ||
        vfu_setup_irq_state_callback(ctx, VFU_DEV_MSI_IRQ, on_irq_state) < 0) {
        die("irq setup");
    }
    if (vfu_setup_device_reset_cb(ctx, on_reset) < 0 ||
        vfu_setup_device_dma(ctx, 16, on_dma_register, on_dma_unregister) < 0 ||
        vfu_setup_device_migration_callbacks(ctx, &migr) < 0 ||
        vfu_create_ioeventfd(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, eventfd, FUZZ_BAR0_IOEVENTFD, 4, 0,
                             0, -1, 0) < 0) {
        die("device setup");
    }
    vfu_setup_device_quiesce_cb(ctx, on_quiesce);
    if (vfu_realize_ctx(ctx) < 0) {
        die("vfu_realize_ctx");
    }
    /*
     * The fuzzing client answers DMA messages only when the input happens to:
     * a blocking transfer takes what is already there and gives up at once.
     */
    ctx->xfers.reply_timeout_ms = 0;
    return ctx;
}

void
fuzz_device_destroy(struct fuzz_device *dev, vfu_ctx_t *ctx)
{
    vfu_destroy_ctx(ctx);
    if (dev->dma_maps != 0) {
        fprintf(stderr, "%u DMA mappings outlive the context\n", dev->dma_maps);
        abort();
    }
    for (int i = 0; i < FUZZ_NR_BUFS; i++) {
        free(dev->buf[i]);
    }
    memset(dev, 0, sizeof(*dev));
}
