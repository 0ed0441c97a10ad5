/*
 * OUR EXTENSIONS to the libvfio-user API: not part of upstream's API, only
 * in this library. A program that must also run on upstream's library
 * checks for this header (or its own build flag) before calling them.
 * A NULL context is refused as each function says (test/test_ext.c).
 *
 * They answer what the upstream API leaves to the library's internals:
 * which interrupt type the function signals, the mask and pending state of
 * a vector, the emulated MSI-X table, the size of config space, the
 * dirty-logging granule, and a DMA transfer that does not block.
 */
#ifndef LIBVFIO_USER_EXT_H
#define LIBVFIO_USER_EXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libvfio-user.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The interrupt type vfu_irq_trigger signals now: the one config space
 * enables (MSI-X before MSI before INTx), as on hardware. A device with
 * neither MSI nor MSI-X follows the type the client installed last.
 * -1 with errno EINVAL for a NULL context.
 */
enum vfu_dev_irq_type vfu_ext_irq_mode(vfu_ctx_t *ctx);

/*
 * Signals a vector like vfu_irq_trigger, but only while type is the
 * function's interrupt type: 1 signalled (or held pending while masked),
 * 0 when another type is the function's (nothing done), -1 with errno set
 * as vfu_irq_trigger sets it. VFU_DEV_ERR_IRQ and VFU_DEV_REQ_IRQ (vector
 * 0) are signalled whatever the interrupt type: 1, or -1 with errno ENOENT
 * when the client gave no eventfd, EINVAL when the device has no such irq.
 */
int vfu_ext_irq_trigger(vfu_ctx_t *ctx, enum vfu_dev_irq_type type,
                        uint32_t vector);

/*
 * The state of one vector of a type. *masked: the client's SET_IRQS mask,
 * or the function's own mask for it (INTx: the command register's
 * Interrupt Disable bit; MSI: its per-vector mask bit; MSI-X: the function
 * mask or its table entry's mask bit). *pending: an interrupt is held back
 * until the vector is unmasked. 0, or -EINVAL when the type has no such
 * vector (or an argument is NULL).
 */
int vfu_ext_irq_vector_state(vfu_ctx_t *ctx, enum vfu_dev_irq_type type,
                             uint32_t vector, bool *masked, bool *pending);

/*
 * The emulated MSI-X table, 16 bytes per vector (what a client wrote to
 * the table in its BAR); its length in *len. NULL and 0 without MSI-X (or
 * without a context; NULL alone when len is NULL).
 */
const uint8_t *vfu_ext_msix_table(vfu_ctx_t *ctx, size_t *len);

/*
 * Puts back an MSI-X table (table_len must be the table's length) and the
 * pending state of the first nr_pending vectors (one byte each, nonzero:
 * pending), then signals the pending vectors nothing masks any more. For a
 * migrated device. 0, or -EINVAL with nothing changed (also for a NULL
 * context, or a NULL table or pending array with a nonzero length).
 */
int vfu_ext_msix_restore(vfu_ctx_t *ctx, const uint8_t *table,
                         size_t table_len, const uint8_t *pending,
                         size_t nr_pending);

/* Bytes of config space a client may access; 0 before vfu_pci_init (or NULL). */
size_t vfu_ext_config_size(vfu_ctx_t *ctx);

/*
 * Where the context keeps its dirty-page logging granule in bytes: 0 while
 * the client logs no dirty pages. Valid as long as the context; a caller
 * may read it at any time instead of asking. NULL for a NULL context.
 */
const uint64_t *vfu_ext_dirty_granule(vfu_ctx_t *ctx);

/* error: 0, or a positive errno. */
typedef void vfu_ext_dma_done_t(vfu_ctx_t *ctx, void *cookie, int error);

/*
 * Moves len bytes between data and client memory at iova by DMA_READ
 * (is_write false) or DMA_WRITE messages, without waiting, for any mapping,
 * with or without an fd. The range must be mapped without a gap (and
 * writable for a write). data must stay valid until done(ctx, cookie,
 * error) runs, exactly once: inside vfu_run_ctx when the transfer ends
 * (error 0, or the client's errno), or with ENOTCONN when the client goes
 * away or the context is reset or destroyed. Returns 0, or -errno
 * (-EINVAL, -ENOTCONN, -ENOENT, -EACCES, -ENOMEM...) with nothing started
 * and done never called.
 */
int vfu_ext_dma_transfer(vfu_ctx_t *ctx, uint64_t iova, size_t len,
                         void *data, bool is_write, vfu_ext_dma_done_t *done,
                         void *cookie);

#ifdef __cplusplus
}
#endif

#endif /* LIBVFIO_USER_EXT_H */
