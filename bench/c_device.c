/*
 * The C device of the benchmarks: served by our C library, written against
 * its public API only, with the register layout of bench/ts_device.ts so
 * that the same client requests reach the same registers in both.
 *
 * Conventional PCI, 0x1b36:0x11be, MSI-X (1 vector, table in BAR2), DMA.
 *   BAR0, 4 KiB: the registers (see BAR0_* below), a C switch.
 *   BAR1, 4 KiB: 0x4 a read/write register (the TypeScript device serves
 *         this BAR with a RegisterMap; here it is the same switch).
 *   BAR2, 4 KiB: MSI-X table at 0x0, PBA at 0x800 (emulated by the library).
 *
 * usage: c_device SOCKET_PATH   (serves until SIGTERM or SIGINT)
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>

#include "libvfio-user.h"

/* BAR0 registers, all 32-bit. */
#define BAR0_ID          0x00 /* read-only BENCH_ID */
#define BAR0_SCRATCH     0x04 /* read/write */
#define BAR0_IRQ_FIRE    0x08 /* write K: trigger MSI-X vector 0 K times */
#define BAR0_IRQ_FAILED  0x0c /* triggers of the last IRQ_FIRE that failed */
#define BAR0_DMA_LEN     0x10 /* bytes per DMA access */
#define BAR0_DMA_COUNT   0x14 /* accesses per DMA_GO */
#define BAR0_DMA_GO      0x18 /* write an operation (see dma_go); MSI-X 0 when done */
#define BAR0_DMA_ERR     0x1c /* errno of the last DMA_GO, 0 if it worked */
#define BAR0_STARTUP_LO  0x20 /* ns from setup start to the client's attach */
#define BAR0_STARTUP_HI  0x24

/* DMA_GO operations; the numbers are bench_client's. */
enum {
    OP_READ = 1,        /* memcpy out of mapped memory */
    OP_WRITE = 2,       /* memcpy into it */
    OP_VIEW_READ = 3,   /* the same as OP_READ in C */
    OP_ASYNC_READ = 4,  /* the same as OP_READ in C */
    OP_MSG_READ = 5,    /* vfu_sgl_read() of memory without an fd: DMA_READ */
    OP_MSG_WRITE = 6,   /* vfu_sgl_write(): DMA_WRITE */
};

/* Mappings this long are the TypeScript summing loop's; not used here. */
#define SUM_MAPPING (64u << 20)

#define BENCH_ID 0x5c0b0001u
#define BAR_SIZE 0x1000
#define MSIX_PBA 0x800

struct bench {
    uint32_t scratch;
    uint32_t scratch1;
    uint32_t irq_failed;
    uint32_t dma_len;
    uint32_t dma_count;
    uint32_t dma_err;
    uint64_t startup_ns;
    uint8_t *dma;            /* the first mapping with memory, or NULL */
    size_t dma_size;
    uint64_t msg_iova;       /* the first mapping without memory */
    size_t msg_size;         /* 0 if there is none */
    uint8_t *dma_buf;        /* the device's side of a DMA copy */
};

static volatile sig_atomic_t stop_requested;

static void
on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One DMA_READ or DMA_WRITE exchange per call, as upstream's API does it. */
static uint32_t
dma_message(vfu_ctx_t *ctx, struct bench *b, bool write)
{
    char sg[64];
    dma_sg_t *entry = (dma_sg_t *)sg;
    size_t len = b->dma_len;

    if (dma_sg_size() > sizeof(sg)) {
        return ENOMEM;
    }
    if (b->msg_size == 0) {
        return EFAULT;
    }
    if (len > b->msg_size) {
        return EINVAL;
    }
    for (uint32_t i = 0; i < b->dma_count; i++) {
        if (vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)(uintptr_t)b->msg_iova, len, entry, 1,
                            write ? PROT_WRITE : PROT_READ) != 1) {
            return errno != 0 ? (uint32_t)errno : EINVAL;
        }
        if ((write ? vfu_sgl_write(ctx, entry, 1, b->dma_buf, 0)
                   : vfu_sgl_read(ctx, entry, 1, b->dma_buf, 0)) < 0) {
            return (uint32_t)errno;
        }
    }
    return 0;
}

static uint32_t
dma_go(vfu_ctx_t *ctx, struct bench *b, uint32_t op)
{
    size_t len = b->dma_len;

    if (op == OP_MSG_READ || op == OP_MSG_WRITE) {
        return dma_message(ctx, b, op == OP_MSG_WRITE);
    }
    if (op < OP_READ || op > OP_ASYNC_READ) {
        return ENOTSUP;
    }
    if (b->dma == NULL) {
        return EFAULT;
    }
    if (len > b->dma_size || b->dma_buf == NULL) {
        return EINVAL;
    }
    for (uint32_t i = 0; i < b->dma_count; i++) {
        if (op == OP_WRITE) {
            memcpy(b->dma, b->dma_buf, len);
        } else {
            memcpy(b->dma_buf, b->dma, len);
        }
        /* Keep every copy: the compiler may not fold the loop. */
        __asm__ __volatile__("" : : "r"(b->dma_buf), "r"(b->dma) : "memory");
    }
    return 0;
}

static ssize_t
bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    struct bench *b = vfu_get_private(ctx);
    uint32_t value = 0;

    if (count != 4 || offset % 4 != 0) {
        errno = EINVAL;
        return -1;
    }
    if (is_write) {
        memcpy(&value, buf, 4);
        switch (offset) {
        case BAR0_SCRATCH: b->scratch = value; break;
        case BAR0_IRQ_FIRE:
            b->irq_failed = 0;
            for (uint32_t i = 0; i < value; i++) {
                if (vfu_irq_trigger(ctx, 0) < 0) {
                    b->irq_failed++;
                }
            }
            break;
        case BAR0_DMA_LEN: b->dma_len = value; break;
        case BAR0_DMA_COUNT: b->dma_count = value; break;
        case BAR0_DMA_GO:
            b->dma_err = dma_go(ctx, b, value);
            vfu_irq_trigger(ctx, 0);
            break;
        default: break;
        }
        return 4;
    }
    switch (offset) {
    case BAR0_ID: value = BENCH_ID; break;
    case BAR0_SCRATCH: value = b->scratch; break;
    case BAR0_IRQ_FAILED: value = b->irq_failed; break;
    case BAR0_DMA_LEN: value = b->dma_len; break;
    case BAR0_DMA_COUNT: value = b->dma_count; break;
    case BAR0_DMA_ERR: value = b->dma_err; break;
    case BAR0_STARTUP_LO: value = (uint32_t)b->startup_ns; break;
    case BAR0_STARTUP_HI: value = (uint32_t)(b->startup_ns >> 32); break;
    default: break;
    }
    memcpy(buf, &value, 4);
    return 4;
}

static ssize_t
bar1_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    struct bench *b = vfu_get_private(ctx);

    if (count != 4 || offset != 4) {
        if (!is_write) {
            memset(buf, 0, count);
        }
        return (ssize_t)count;
    }
    if (is_write) {
        memcpy(&b->scratch1, buf, 4);
    } else {
        memcpy(buf, &b->scratch1, 4);
    }
    return 4;
}

static ssize_t
bar2_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    (void)ctx;
    (void)offset;
    if (!is_write) {
        memset(buf, 0, count);
    }
    return (ssize_t)count;
}

static void
dma_register(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    struct bench *b = vfu_get_private(ctx);

    if (b->dma == NULL && info->vaddr != NULL && info->iova.iov_len < SUM_MAPPING) {
        b->dma = info->vaddr;
        b->dma_size = info->iova.iov_len;
    }
    if (b->msg_size == 0 && info->vaddr == NULL) {
        b->msg_iova = (uint64_t)(uintptr_t)info->iova.iov_base;
        b->msg_size = info->iova.iov_len;
    }
}

static void
dma_unregister(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    struct bench *b = vfu_get_private(ctx);

    if (info->vaddr != NULL && info->vaddr == b->dma) {
        b->dma = NULL;
        b->dma_size = 0;
    }
    if (info->vaddr == NULL && (uint64_t)(uintptr_t)info->iova.iov_base == b->msg_iova) {
        b->msg_size = 0;
    }
}

static vfu_ctx_t *
create_device(const char *path, struct bench *b)
{
    struct msixcap msix = {
        .hdr.id = PCI_CAP_ID_MSIX,
        .mxc.ts = 0,
        .mtab = { .tbir = 2, .to = 0 },
        .mpba = { .pbir = 2, .pbao = MSIX_PBA >> 3 },
    };
    vfu_ctx_t *ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB,
                                    b, VFU_DEV_TYPE_PCI);

    if (ctx == NULL) {
        return NULL;
    }
    if (vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0) < 0) {
        goto fail;
    }
    vfu_pci_set_id(ctx, 0x1b36, 0x11be, 0, 0);
    vfu_pci_set_class(ctx, 0xff, 0x00, 0x00);
    if (vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, BAR_SIZE, bar0_access,
                         VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0) < 0 ||
        vfu_setup_region(ctx, VFU_PCI_DEV_BAR1_REGION_IDX, BAR_SIZE, bar1_access,
                         VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0) < 0 ||
        vfu_setup_region(ctx, VFU_PCI_DEV_BAR2_REGION_IDX, BAR_SIZE, bar2_access,
                         VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0) < 0 ||
        vfu_pci_add_capability(ctx, 0, 0, &msix) < 0 ||
        vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, 1) < 0 ||
        vfu_setup_device_dma(ctx, 64, dma_register, dma_unregister) < 0 ||
        vfu_realize_ctx(ctx) < 0) {
        goto fail;
    }
    return ctx;
fail:
    vfu_destroy_ctx(ctx);
    return NULL;
}

int
main(int argc, char *argv[])
{
    static struct bench b;
    struct sigaction sa = { .sa_handler = on_signal };
    bool attached = false;
    uint64_t t0;
    vfu_ctx_t *ctx;

    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET_PATH\n", argv[0]);
        return 2;
    }
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    b.dma_buf = malloc(1u << 20);

    t0 = now_ns();
    ctx = create_device(argv[1], &b);
    if (ctx == NULL) {
        fprintf(stderr, "c_device: cannot serve on %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    while (!stop_requested) {
        struct pollfd pfd = { .fd = vfu_get_poll_fd(ctx), .events = POLLIN };

        if (poll(&pfd, 1, -1) <= 0) {
            continue;
        }
        if (!attached) {
            if (vfu_attach_ctx(ctx) == 0) {
                attached = true;
                if (b.startup_ns == 0) {
                    b.startup_ns = now_ns() - t0;
                }
            }
            continue;
        }
        if (vfu_run_ctx(ctx) < 0 && errno == ENOTCONN) {
            attached = false;
        }
    }
    vfu_destroy_ctx(ctx);
    return 0;
}
