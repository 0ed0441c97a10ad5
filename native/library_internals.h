/*
 * What the addon reads or drives inside the vendored C library, where its
 * public API has no call for it. Written in C because the library's private header
 * is C only. Not available with a system library (VFIO_USER_VENDORED unset).
 */
#ifndef VFIO_USER_NATIVE_LIBRARY_INTERNALS_H
#define VFIO_USER_NATIVE_LIBRARY_INTERNALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libvfio-user.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The MSI-X state of one vector: the Mask bit of its entry in the emulated
 * table, and whether an interrupt is held pending. 0, or -EINVAL if the
 * device has no such MSI-X vector.
 */
int vfu_addon_msix_state(vfu_ctx_t *ctx, uint32_t vector, bool *masked,
                         bool *pending);

/*
 * The emulated MSI-X table, 16 bytes per vector, owned by the library; its
 * length in *len. NULL (and 0) when the device has no MSI-X.
 */
uint8_t *vfu_addon_msix_table(vfu_ctx_t *ctx, size_t *len);

/* Holds an MSI-X vector pending, or forgets it. 0, or -EINVAL. */
int vfu_addon_set_msix_pending(vfu_ctx_t *ctx, uint32_t vector, bool pending);

/* Delivers the pending MSI-X vectors that nothing masks any more. */
void vfu_addon_release_msix(vfu_ctx_t *ctx);

/* Bytes of config space a client may access (0 when none exists yet). */
size_t vfu_addon_config_size(vfu_ctx_t *ctx);

/*
 * Where the context keeps its dirty-page logging granule: 0 while the
 * client logs no dirty pages. It lives as long as the context.
 */
uint64_t *vfu_addon_dirty_granule(vfu_ctx_t *ctx);

/*
 * Moves len bytes between data and client memory at iova by DMA_READ
 * (is_write false) or DMA_WRITE messages, without waiting: any mapping, with
 * or without an fd. The range must be mapped without a gap (and writable for
 * a write). data must stay valid until done(ctx, cookie, error) runs, which
 * it does exactly once: inside vfu_run_ctx when the transfer ends (error 0 or
 * a positive errno from the client), or with ENOTCONN when the client goes
 * away or the context is destroyed. Returns 0, or -errno (-EINVAL, -ENOTCONN,
 * -ENOENT, -EACCES, -ENOMEM...) with nothing started and done never called.
 */
int vfu_addon_dma_transfer_start(vfu_ctx_t *ctx, uint64_t iova, size_t len,
                                 void *data, bool is_write,
                                 void (*done)(vfu_ctx_t *, void *, int),
                                 void *cookie);

#ifdef __cplusplus
}
#endif

#endif
