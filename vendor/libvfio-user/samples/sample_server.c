/*
 * A sample device served over vfio-user, written only against the public API,
 * as a user of libvfio-user would write it.
 *
 * "Scratchpad" card, PCI Express endpoint 0x1b36:0x1100:
 *   BAR0, 4 KiB memory:
 *     0x00  ID        read-only 0x5c000001
 *     0x04  SCRATCH   read/write
 *     0x08  DOORBELL  write N: raise interrupt vector N (MSI-X, MSI or INTx,
 *                     whichever the client enabled)
 *     0x0c  RESETS    read-only: resets seen so far
 *     0x10  DMA_SUM   read-only: byte sum of the first DMA mapping's first
 *                     page (0 when none is mapped into this process)
 *     0x100-0xfff     plain RAM, any access size
 *   BAR2, 8 KiB memory: MSI-X table (0x0) and PBA (0x1000), 4 vectors.
 *   BAR4, 256 bytes of I/O: RAM as well.
 *   Capabilities: PM, MSI (4 vectors, 64-bit, per-vector masking), MSI-X,
 *   PCI Express with FLR, vendor-specific; extended: device serial number.
 *   Migration: SCRATCH and the RAM of BAR0 and BAR4 are the device's state.
 *   Pre-copy sends an image of it, stop-and-copy a final one; the
 *   destination applies the last whole image it received. A stopped device
 *   ignores DOORBELL, so it raises no interrupt.
 *
 * usage: sample_server SOCKET_PATH
 * Serves one client at a time until SIGINT or SIGTERM, then removes SOCKET_PATH.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "libvfio-user.h"

#define SAMPLE_ID 0x5c000001u
#define BAR0_SIZE 0x1000
#define BAR0_RAM 0x100
#define BAR4_SIZE 0x100
#define NR_VECTORS 4
/* Migration image: SCRATCH, then BAR0 and BAR4 as they are. */
#define IMAGE_SIZE (4 + BAR0_SIZE + BAR4_SIZE)

struct sample {
    uint32_t scratch;
    uint32_t resets;
    uint8_t bar0_ram[BAR0_SIZE];
    uint8_t bar4_ram[BAR4_SIZE];
    const uint8_t *dma_page; /* first mapped page, if mapped here */
    vfu_migr_state_t migr_state;
    uint8_t image[IMAGE_SIZE]; /* being sent */
    size_t image_sent;
    uint8_t incoming[IMAGE_SIZE]; /* being received, images back to back */
    size_t received;
};

static volatile sig_atomic_t stop_requested;

static void
on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void
log_to_stderr(vfu_ctx_t *ctx, int level, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "sample_server[%d]: %s\n", level, msg);
}

static uint32_t
dma_sum(const struct sample *s)
{
    uint32_t sum = 0;

    if (s->dma_page != NULL) {
        for (size_t i = 0; i < 4096; i++) {
            sum += s->dma_page[i];
        }
    }
    return sum;
}

static ssize_t
bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    struct sample *s = vfu_get_private(ctx);
    uint32_t value = 0;

    if (offset >= BAR0_RAM) {
        if (is_write) {
            memcpy(s->bar0_ram + offset, buf, count);
        } else {
            memcpy(buf, s->bar0_ram + offset, count);
        }
        return (ssize_t)count;
    }
    if (count != 4 || offset % 4 != 0) {
        errno = EINVAL; /* registers are 32-bit only */
        return -1;
    }
    if (is_write) {
        memcpy(&value, buf, 4);
        switch (offset) {
        case 0x04:
            s->scratch = value;
            break;
        case 0x08:
            if (s->migr_state == VFU_MIGR_STATE_RUNNING ||
                s->migr_state == VFU_MIGR_STATE_PRE_COPY) {
                if (vfu_irq_trigger(ctx, value) < 0) {
                    return -1;
                }
            }
            break;
        default:
            break; /* read-only registers ignore writes */
        }
        return 4;
    }
    switch (offset) {
    case 0x00:
        value = SAMPLE_ID;
        break;
    case 0x04:
        value = s->scratch;
        break;
    case 0x0c:
        value = s->resets;
        break;
    case 0x10:
        value = dma_sum(s);
        break;
    default:
        value = 0;
        break;
    }
    memcpy(buf, &value, 4);
    return 4;
}

static ssize_t
bar4_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    struct sample *s = vfu_get_private(ctx);

    if (is_write) {
        memcpy(s->bar4_ram + offset, buf, count);
    } else {
        memcpy(buf, s->bar4_ram + offset, count);
    }
    return (ssize_t)count;
}

static ssize_t
bar2_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    /* The library emulates the MSI-X table and PBA; the rest reads as 0. */
    (void)ctx;
    (void)offset;
    if (!is_write) {
        memset(buf, 0, count);
    }
    return (ssize_t)count;
}

static int
reset_device(vfu_ctx_t *ctx, vfu_reset_type_t type)
{
    struct sample *s = vfu_get_private(ctx);

    vfu_log(ctx, LOG_INFO, "reset (type %d)", (int)type);
    s->resets++;
    s->scratch = 0;
    return 0;
}

static void
dma_register(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    struct sample *s = vfu_get_private(ctx);

    if (s->dma_page == NULL && info->vaddr != NULL && info->iova.iov_len >= 4096 &&
        (info->prot & PROT_READ)) {
        s->dma_page = info->vaddr;
    }
}

static void
dma_unregister(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    struct sample *s = vfu_get_private(ctx);

    if (info->vaddr == s->dma_page) {
        s->dma_page = NULL;
    }
}

static void
take_image(struct sample *s)
{
    memcpy(s->image, &s->scratch, 4);
    memcpy(s->image + 4, s->bar0_ram, BAR0_SIZE);
    memcpy(s->image + 4 + BAR0_SIZE, s->bar4_ram, BAR4_SIZE);
    s->image_sent = 0;
}

static void
load_image(struct sample *s, const uint8_t *image)
{
    memcpy(&s->scratch, image, 4);
    memcpy(s->bar0_ram, image + 4, BAR0_SIZE);
    memcpy(s->bar4_ram, image + 4 + BAR0_SIZE, BAR4_SIZE);
}

static int
migration_transition(vfu_ctx_t *ctx, vfu_migr_state_t state)
{
    struct sample *s = vfu_get_private(ctx);

    switch (state) {
    case VFU_MIGR_STATE_PRE_COPY:
    case VFU_MIGR_STATE_STOP_AND_COPY:
        take_image(s);
        break;
    case VFU_MIGR_STATE_RESUME:
        s->received = 0;
        break;
    case VFU_MIGR_STATE_STOP:
        if (s->migr_state == VFU_MIGR_STATE_RESUME) {
            if (s->received == 0 || s->received % IMAGE_SIZE != 0) {
                vfu_log(ctx, LOG_ERR, "incomplete migration image (%zu bytes)", s->received);
                errno = EINVAL;
                return -1;
            }
            load_image(s, s->incoming);
        }
        break;
    default:
        break;
    }
    s->migr_state = state;
    return 0;
}

static ssize_t
migration_read(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct sample *s = vfu_get_private(ctx);
    size_t n = IMAGE_SIZE - s->image_sent;

    if (n > count) {
        n = count;
    }
    memcpy(buf, s->image + s->image_sent, n);
    s->image_sent += n;
    return (ssize_t)n;
}

static ssize_t
migration_write(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct sample *s = vfu_get_private(ctx);
    const uint8_t *data = buf;
    uint64_t left = count;

    /* A later image overwrites an earlier one. */
    while (left > 0) {
        size_t off = s->received % IMAGE_SIZE;
        size_t n = IMAGE_SIZE - off;

        if (n > left) {
            n = left;
        }
        memcpy(s->incoming + off, data, n);
        s->received += n;
        data += n;
        left -= n;
    }
    return (ssize_t)count;
}

static const vfu_migration_callbacks_t migration = {
    .version = VFU_MIGR_CALLBACKS_VERS,
    .transition = migration_transition,
    .read_data = migration_read,
    .write_data = migration_write,
};

static int
add_capabilities(vfu_ctx_t *ctx)
{
    struct pmcap pm = { .hdr.id = PCI_CAP_ID_PM, .pc.vs = 3 };
    struct msicap msi = {
        .hdr.id = PCI_CAP_ID_MSI,
        .mc = { .mmc = 2, .c64 = 1, .pvm = 1 },
    };
    struct msixcap msix = {
        .hdr.id = PCI_CAP_ID_MSIX,
        .mxc.ts = NR_VECTORS - 1,
        .mtab = { .tbir = 2, .to = 0 },
        .mpba = { .pbir = 2, .pbao = 0x1000 >> 3 },
    };
    struct pxcap px = {
        .hdr.id = PCI_CAP_ID_EXP,
        .pxcaps.ver = 2,
        .pxdcap.flrc = 1,
    };
    struct {
        struct vsc hdr;
        uint8_t data[5];
    } vendor = { .hdr = { .hdr.id = PCI_CAP_ID_VNDR, .size = sizeof(vendor) },
                 .data = { 's', 'a', 'm', 'p', 'l' } };
    struct dsncap dsn = {
        .hdr = { .id = PCI_EXT_CAP_ID_DSN, .version = 1 },
        .sn_lo = 0x12345678,
        .sn_hi = 0x9abcdef0,
    };

    if (vfu_pci_add_capability(ctx, 0, 0, &pm) < 0 || vfu_pci_add_capability(ctx, 0, 0, &msi) < 0 ||
        vfu_pci_add_capability(ctx, 0, 0, &msix) < 0 ||
        vfu_pci_add_capability(ctx, 0, 0, &px) < 0 ||
        vfu_pci_add_capability(ctx, 0, 0, &vendor) < 0 ||
        vfu_pci_add_capability(ctx, 0, VFU_CAP_FLAG_EXTENDED, &dsn) < 0) {
        return -1;
    }
    return 0;
}

static vfu_ctx_t *
create_device(const char *path, struct sample *s)
{
    vfu_ctx_t *ctx =
        vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, s, VFU_DEV_TYPE_PCI);

    if (ctx == NULL) {
        fprintf(stderr, "sample_server: cannot serve on %s: %s\n", path, strerror(errno));
        return NULL;
    }
    vfu_setup_log(ctx, log_to_stderr, getenv("SAMPLE_DEBUG") ? LOG_DEBUG : LOG_ERR);
    if (vfu_pci_init(ctx, VFU_PCI_TYPE_EXPRESS, PCI_HEADER_TYPE_NORMAL, 0) < 0) {
        goto fail;
    }
    vfu_pci_set_id(ctx, 0x1b36, 0x1100, 0x1af4, 0x1100);
    vfu_pci_set_class(ctx, 0xff, 0x00, 0x00);
    if (vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, BAR0_SIZE, bar0_access,
                         VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0) < 0 ||
        vfu_setup_region(ctx, VFU_PCI_DEV_BAR2_REGION_IDX, 0x2000, bar2_access,
                         VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0) < 0 ||
        vfu_setup_region(ctx, VFU_PCI_DEV_BAR4_REGION_IDX, BAR4_SIZE, bar4_access,
                         VFU_REGION_FLAG_RW, NULL, 0, -1, 0) < 0 ||
        add_capabilities(ctx) < 0 || vfu_setup_device_nr_irqs(ctx, VFU_DEV_INTX_IRQ, 1) < 0 ||
        vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSI_IRQ, NR_VECTORS) < 0 ||
        vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, NR_VECTORS) < 0 ||
        vfu_setup_device_reset_cb(ctx, reset_device) < 0 ||
        vfu_setup_device_dma(ctx, 64, dma_register, dma_unregister) < 0 ||
        vfu_setup_device_migration_callbacks(ctx, &migration) < 0 || vfu_realize_ctx(ctx) < 0) {
        goto fail;
    }
    return ctx;
fail:
    fprintf(stderr, "sample_server: device setup failed: %s\n", strerror(errno));
    vfu_destroy_ctx(ctx);
    return NULL;
}

/* Serves clients one after another until a signal asks us to stop. */
static int
serve(vfu_ctx_t *ctx)
{
    bool attached = false;

    while (!stop_requested) {
        struct pollfd pfd = { .fd = vfu_get_poll_fd(ctx), .events = POLLIN };
        int ret = poll(&pfd, 1, 200);

        if (ret < 0 && errno != EINTR) {
            return -1;
        }
        if (ret <= 0) {
            continue;
        }
        if (!attached) {
            if (vfu_attach_ctx(ctx) == 0) {
                attached = true;
            } else if (errno != EAGAIN) {
                fprintf(stderr, "sample_server: client refused: %s\n", strerror(errno));
            }
            continue;
        }
        if (vfu_run_ctx(ctx) < 0) {
            if (errno == ENOTCONN) {
                attached = false;
            } else if (errno != EBUSY && errno != EAGAIN) {
                fprintf(stderr, "sample_server: %s\n", strerror(errno));
                return -1;
            }
        }
    }
    return 0;
}

int
main(int argc, char *argv[])
{
    static struct sample device = { .migr_state = VFU_MIGR_STATE_RUNNING };
    struct sigaction sa = { .sa_handler = on_signal };
    vfu_ctx_t *ctx;
    int ret;

    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET_PATH\n", argv[0]);
        return 2;
    }
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    ctx = create_device(argv[1], &device);
    if (ctx == NULL) {
        return 1;
    }
    printf("serving on %s\n", argv[1]);
    fflush(stdout);
    ret = serve(ctx);
    vfu_destroy_ctx(ctx);
    return ret == 0 ? 0 : 1;
}
