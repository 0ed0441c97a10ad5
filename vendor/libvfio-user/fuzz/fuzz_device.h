/*
 * The device the fuzz harnesses serve: every kind of region (32- and 64-bit
 * memory BARs, an I/O BAR, a mappable BAR, a read-only BAR, ROM, VGA, config
 * space with a callback), every capability type (PM, MSI, MSI-X, PCI
 * Express with FLR, vendor-specific as plain, callback and read-only;
 * extended: serial number and vendor-specific), INTx/MSI/MSI-X, DMA,
 * an ioeventfd and migration, whose data stream is BAR0's contents.
 *
 * Region callbacks abort if the library ever hands them bytes outside their
 * region, and their backing buffers are exactly the region's size, so
 * AddressSanitizer sees any stray access.
 */
#ifndef VFU_FUZZ_DEVICE_H
#define VFU_FUZZ_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libvfio-user.h"

/* Behaviours the first byte of an input may choose. */
#define FUZZ_OPT_QUIESCE_ASYNC (1u << 0) /* quiesce answers EBUSY */
#define FUZZ_OPT_QUIESCE_FAILS (1u << 1) /* ... and then completes with EIO */
#define FUZZ_OPT_RESET_FAILS (1u << 2)   /* the reset callback fails */
#define FUZZ_OPT_ACCESS_FAILS (1u << 3)  /* BAR callbacks fail */
#define FUZZ_OPT_CONVENTIONAL (1u << 4)  /* 256-byte config space */
#define FUZZ_OPT_SMALL_SNDBUF (1u << 5)  /* replies queue up in the library */
#define FUZZ_OPT_MIGR_FAILS (1u << 6)    /* STOP_COPY refused, short writes */

/* BAR0 registers with side effects; the rest of BAR0 is RAM. */
#define FUZZ_BAR0_IRQ 0x0        /* write: trigger this vector */
#define FUZZ_BAR0_DMA_READ 0x8   /* write an address: read 64 bytes there */
#define FUZZ_BAR0_DMA_WRITE 0x10 /* write an address: write 64 bytes there */
#define FUZZ_BAR0_DMA_ASYNC \
    0x18 /* write an address: an asynchronous transfer of
                                     64 bytes by messages; bit 0 set: a write */
#define FUZZ_BAR0_IOEVENTFD 0x20

enum { FUZZ_NR_BUFS = VFU_PCI_DEV_NUM_REGIONS };

struct fuzz_device {
    unsigned options;
    uint8_t *buf[FUZZ_NR_BUFS]; /* callback backing of each region */
    size_t size[FUZZ_NR_BUFS];
    unsigned resets[3]; /* by vfu_reset_type_t */
    unsigned quiesces;
    unsigned dma_maps;           /* live mappings, per the callbacks */
    vfu_migr_state_t migr_state; /* as the transition callback heard it */
    size_t migr_pos;             /* in the data stream */
};

/*
 * Creates, sets up and realizes the device on a non-blocking context
 * listening at path. memfd backs the mappable BAR, eventfd is the
 * ioeventfd; both stay the caller's. Aborts on any setup failure: the
 * harness is broken, not the input.
 */
vfu_ctx_t *fuzz_device_create(struct fuzz_device *dev, const char *path, unsigned options,
                              int memfd, int eventfd);

/* Destroys the context and frees the device's buffers. */
void fuzz_device_destroy(struct fuzz_device *dev, vfu_ctx_t *ctx);

#endif /* VFU_FUZZ_DEVICE_H */
