/*
 * libvfio-user: server-side API for implementing a vfio-user device.
 *
 * A device program creates a context with vfu_create_ctx(), describes the
 * device (PCI config space, regions, IRQs, DMA, migration), realizes it with
 * vfu_realize_ctx(), waits for a client with vfu_attach_ctx() and then
 * serves requests with vfu_run_ctx().
 *
 * Unless stated otherwise, functions returning int return 0 (or a
 * non-negative value) on success and -1 with errno set on failure.
 */

#ifndef LIB_VFIO_USER_H
#define LIB_VFIO_USER_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>
#include <syslog.h>
#include <sys/queue.h>

#include "pci_caps/dsn.h"
#include "pci_caps/msi.h"
#include "pci_caps/msix.h"
#include "pci_caps/pm.h"
#include "pci_caps/px.h"
#include "pci_defs.h"
#include "vfio-user.h"

/*
 * glibc only exposes loff_t with its default/GNU feature set; provide it in
 * strict ISO modes (-std=c99/c11) from the always-present __loff_t.
 */
#if defined(__GLIBC__) && !defined(__USE_MISC)
typedef __loff_t loff_t;
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Protocol version implemented by this library. */
#define LIB_VFIO_USER_MAJOR 0
#define LIB_VFIO_USER_MINOR 2

/* ---------------------------------------------------------------------- */
/* DMA address and scatter/gather types                                    */
/* ---------------------------------------------------------------------- */

/* A client IOVA. It is an address in the client's space: never dereference. */
typedef void *vfu_dma_addr_t;

/* One scatter/gather entry; opaque, size it with dma_sg_size(). */
typedef struct dma_sg dma_sg_t;

/* Size in bytes of one dma_sg_t (array stride for SG lists). */
size_t
dma_sg_size(void);

/* ---------------------------------------------------------------------- */
/* Context lifecycle                                                       */
/* ---------------------------------------------------------------------- */

/* vfu_create_ctx() flag: make attach and run non-blocking. */
#define LIBVFIO_USER_FLAG_ATTACH_NB (1 << 0)

/* Transport used to talk to the client. */
typedef enum {
    VFU_TRANS_SOCK,     /* AF_UNIX stream socket bound to a path */
    VFU_TRANS_PIPE,     /* internal testing only */
    VFU_TRANS_MAX
} vfu_trans_t;

/* Kind of device being emulated. */
typedef enum {
    VFU_DEV_TYPE_PCI
} vfu_dev_type_t;

/* Opaque library context, one per emulated device. */
typedef struct vfu_ctx vfu_ctx_t;

/*
 * Creates a context listening on @path. @flags is 0 or
 * LIBVFIO_USER_FLAG_ATTACH_NB; @pvt is returned by vfu_get_private().
 * Returns the context, or NULL with errno set.
 */
vfu_ctx_t *
vfu_create_ctx(vfu_trans_t trans, const char *path, int flags, void *pvt,
               vfu_dev_type_t dev_type);

/* Finalises the device setup; must precede vfu_run_ctx(). */
int
vfu_realize_ctx(vfu_ctx_t *vfu_ctx);

/*
 * Accepts a client and negotiates the protocol version. In non-blocking mode
 * fails with EAGAIN when no client is pending.
 */
int
vfu_attach_ctx(vfu_ctx_t *vfu_ctx);

/* File descriptor to poll for client activity (re-query after attach). */
int
vfu_get_poll_fd(vfu_ctx_t *vfu_ctx);

/*
 * Handles client requests. Returns the number of requests handled, or -1
 * with errno set (ENOTCONN: client gone, EBUSY: quiesce pending).
 */
int
vfu_run_ctx(vfu_ctx_t *vfu_ctx);

/* Tears down the context and removes its socket; NULL is a no-op. */
void
vfu_destroy_ctx(vfu_ctx_t *vfu_ctx);

/* Returns the private pointer given to vfu_create_ctx(). */
void *
vfu_get_private(vfu_ctx_t *vfu_ctx);

/* ---------------------------------------------------------------------- */
/* Logging                                                                 */
/* ---------------------------------------------------------------------- */

/* Log sink: receives one formatted message (no trailing newline). */
typedef void (vfu_log_fn_t)(vfu_ctx_t *vfu_ctx, int level, const char *msg);

/* Logs through the context's sink if @level is within the configured one. */
void
vfu_log(vfu_ctx_t *vfu_ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets the log sink (NULL disables logging) and a LOG_* level. */
int
vfu_setup_log(vfu_ctx_t *vfu_ctx, vfu_log_fn_t *log, int level);

/* ---------------------------------------------------------------------- */
/* Regions                                                                 */
/* ---------------------------------------------------------------------- */

/*
 * Region access handler: copy @count bytes at @offset into (read) or out of
 * (write) @buf. Returns @count, or -1 with errno set.
 */
typedef ssize_t (vfu_region_access_cb_t)(vfu_ctx_t *vfu_ctx, char *buf,
                                         size_t count, loff_t offset,
                                         bool is_write);

/* vfu_setup_region() flags. */
#define VFU_REGION_FLAG_READ        (1 << 0)
#define VFU_REGION_FLAG_WRITE       (1 << 1)
#define VFU_REGION_FLAG_RW          (VFU_REGION_FLAG_READ | VFU_REGION_FLAG_WRITE)
#define VFU_REGION_FLAG_MEM         (1 << 2)    /* memory BAR, else I/O BAR */
#define VFU_REGION_FLAG_ALWAYS_CB   (1 << 3)    /* config: every access to cb */
#define VFU_REGION_FLAG_64_BITS     (1 << 4)    /* 64-bit memory BAR */
#define VFU_REGION_FLAG_PREFETCH    (1 << 5)    /* prefetchable BAR */
#define VFU_REGION_FLAG_MASK        (VFU_REGION_FLAG_RW | \
                                     VFU_REGION_FLAG_MEM | \
                                     VFU_REGION_FLAG_ALWAYS_CB | \
                                     VFU_REGION_FLAG_64_BITS | \
                                     VFU_REGION_FLAG_PREFETCH)

/* Region indices of a PCI device. */
enum {
    VFU_PCI_DEV_BAR0_REGION_IDX,
    VFU_PCI_DEV_BAR1_REGION_IDX,
    VFU_PCI_DEV_BAR2_REGION_IDX,
    VFU_PCI_DEV_BAR3_REGION_IDX,
    VFU_PCI_DEV_BAR4_REGION_IDX,
    VFU_PCI_DEV_BAR5_REGION_IDX,
    VFU_PCI_DEV_ROM_REGION_IDX,
    VFU_PCI_DEV_CFG_REGION_IDX,
    VFU_PCI_DEV_VGA_REGION_IDX,
    VFU_PCI_DEV_NUM_REGIONS,
};

/*
 * Defines region @region_idx of @size bytes. @mmap_areas (offsets within the
 * region) and @fd/@offset describe the parts the client may mmap directly.
 */
int
vfu_setup_region(vfu_ctx_t *vfu_ctx, int region_idx, size_t size,
                 vfu_region_access_cb_t *region_access, int flags,
                 struct iovec *mmap_areas, uint32_t nr_mmap_areas,
                 int fd, uint64_t offset);

/* ---------------------------------------------------------------------- */
/* Quiesce and reset                                                       */
/* ---------------------------------------------------------------------- */

/*
 * Asks the device to stop DMA and interrupts. Returns 0 when quiesced, or -1
 * with errno EBUSY to finish later via vfu_device_quiesced().
 */
typedef int (vfu_device_quiesce_cb_t)(vfu_ctx_t *vfu_ctx);

/* Registers the quiesce callback (NULL: none). */
void
vfu_setup_device_quiesce_cb(vfu_ctx_t *vfu_ctx,
                            vfu_device_quiesce_cb_t *quiesce_cb);

/* Completes an asynchronous quiesce; non-zero @quiesce_errno aborts it. */
int
vfu_device_quiesced(vfu_ctx_t *vfu_ctx, int quiesce_errno);

/* Why the device is being reset. */
typedef enum vfu_reset_type {
    VFU_RESET_DEVICE,       /* client sent VFIO_USER_DEVICE_RESET */
    VFU_RESET_LOST_CONN,    /* client disconnected, or context destroyed */
    VFU_RESET_PCI_FLR,      /* client initiated a function level reset */
} vfu_reset_type_t;

/* Device reset handler: returns 0, or -1 with errno set. */
typedef int (vfu_reset_cb_t)(vfu_ctx_t *vfu_ctx, vfu_reset_type_t type);

/* Registers the reset callback. */
int
vfu_setup_device_reset_cb(vfu_ctx_t *vfu_ctx, vfu_reset_cb_t *reset);

/* ---------------------------------------------------------------------- */
/* DMA                                                                     */
/* ---------------------------------------------------------------------- */

/* A client DMA region as seen by the (un)register callbacks. */
typedef struct vfu_dma_info {
    struct iovec iova;      /* client IOVA range */
    void *vaddr;            /* local address of iova start, or NULL */
    struct iovec mapping;   /* actual mmap()ed span, or {NULL, 0} */
    size_t page_size;
    uint32_t prot;          /* PROT_READ / PROT_WRITE */
} vfu_dma_info_t;

/* Called after a client DMA region is added. */
typedef void (vfu_dma_register_cb_t)(vfu_ctx_t *vfu_ctx, vfu_dma_info_t *info);

/* Called before a client DMA region is removed. */
typedef void (vfu_dma_unregister_cb_t)(vfu_ctx_t *vfu_ctx,
                                       vfu_dma_info_t *info);

/* Suggested max_regions for vfu_setup_device_dma(). */
#define LIBVFIO_USER_MAX_DMA_REGIONS (1000 * 1000)

/* Enables client DMA with at most @max_regions regions; callbacks optional. */
int
vfu_setup_device_dma(vfu_ctx_t *vfu_ctx, size_t max_regions,
                     vfu_dma_register_cb_t *dma_register,
                     vfu_dma_unregister_cb_t *dma_unregister);

/* ---------------------------------------------------------------------- */
/* Interrupts                                                              */
/* ---------------------------------------------------------------------- */

/* IRQ types; the values are the VFIO IRQ indices used on the wire. */
enum vfu_dev_irq_type {
    VFU_DEV_INTX_IRQ,
    VFU_DEV_MSI_IRQ,
    VFU_DEV_MSIX_IRQ,
    VFU_DEV_ERR_IRQ,
    VFU_DEV_REQ_IRQ,
    VFU_DEV_NUM_IRQS
};

/* Sets the number of vectors of an IRQ type (before realize). */
int
vfu_setup_device_nr_irqs(vfu_ctx_t *vfu_ctx, enum vfu_dev_irq_type type,
                         uint32_t count);

/* Mask (@mask true) or unmask vectors [@start, @start + @count). */
typedef void (vfu_dev_irq_state_cb_t)(vfu_ctx_t *vfu_ctx, uint32_t start,
                                      uint32_t count, bool mask);

/* Registers the mask/unmask callback of one IRQ type. */
int
vfu_setup_irq_state_callback(vfu_ctx_t *vfu_ctx, enum vfu_dev_irq_type type,
                             vfu_dev_irq_state_cb_t *cb);

/* ---------------------------------------------------------------------- */
/* Migration                                                               */
/* ---------------------------------------------------------------------- */

/* Device-side migration states passed to the transition callback. */
typedef enum {
    VFU_MIGR_STATE_STOP,
    VFU_MIGR_STATE_RUNNING,
    VFU_MIGR_STATE_STOP_AND_COPY,
    VFU_MIGR_STATE_PRE_COPY,
    VFU_MIGR_STATE_RESUME
} vfu_migr_state_t;

/* Required value of vfu_migration_callbacks_t.version. */
#define VFU_MIGR_CALLBACKS_VERS 2

/* Migration callbacks; all three are required. */
typedef struct {
    int version;    /* VFU_MIGR_CALLBACKS_VERS */

    /* Moves the device to @state; 0, or -1 with errno sent to the client. */
    int (*transition)(vfu_ctx_t *vfu_ctx, vfu_migr_state_t state);

    /* Produces up to @count bytes of state; returns bytes (0: done) or -1. */
    ssize_t (*read_data)(vfu_ctx_t *vfu_ctx, void *buf, uint64_t count);

    /* Consumes @count bytes of state; must return @count, or -1. */
    ssize_t (*write_data)(vfu_ctx_t *vfu_ctx, void *buf, uint64_t count);
} vfu_migration_callbacks_t;

/* Enables migration; @callbacks is copied. */
int
vfu_setup_device_migration_callbacks(vfu_ctx_t *vfu_ctx,
                                     const vfu_migration_callbacks_t *callbacks);

/* Signals interrupt vector @subindex through its eventfd. */
int
vfu_irq_trigger(vfu_ctx_t *vfu_ctx, uint32_t subindex);

/* ---------------------------------------------------------------------- */
/* Scatter/gather access to client memory                                  */
/* ---------------------------------------------------------------------- */

/*
 * Translates [@dma_addr, @dma_addr + @len) into at most @max_nr_sgs entries
 * of @sgl. Returns the number of entries used, -1 with errno set, or
 * -(n + 1) when n entries would be needed but @max_nr_sgs is too small.
 */
int
vfu_addr_to_sgl(vfu_ctx_t *vfu_ctx, vfu_dma_addr_t dma_addr, size_t len,
                dma_sg_t *sgl, size_t max_nr_sgs, int prot);

/* Maps @cnt entries of @sgl to local addresses in @iov (mmap regions only). */
int
vfu_sgl_get(vfu_ctx_t *vfu_ctx, dma_sg_t *sgl, struct iovec *iov, size_t cnt,
            int flags);

/* Marks the writeable entries of @sgl dirty (when dirty logging is on). */
void
vfu_sgl_mark_dirty(vfu_ctx_t *vfu_ctx, dma_sg_t *sgl, size_t cnt);

/* Releases entries obtained with vfu_sgl_get(), marking them dirty. */
void
vfu_sgl_put(vfu_ctx_t *vfu_ctx, dma_sg_t *sgl, struct iovec *iov, size_t cnt);

/* vfu_sgl_read()/vfu_sgl_write() flag: access mapped memory directly. */
#define VFU_SGL_DIRECT_ACCESS (1)

/* Copies client memory described by @sg into @data. */
int
vfu_sgl_read(vfu_ctx_t *vfu_ctx, dma_sg_t *sg, size_t sg_cnt, void *data,
             int flags);

/* Copies @data into client memory described by @sg. */
int
vfu_sgl_write(vfu_ctx_t *vfu_ctx, dma_sg_t *sg, size_t sg_cnt, void *data,
              int flags);

/* ---------------------------------------------------------------------- */
/* PCI                                                                     */
/* ---------------------------------------------------------------------- */

/* Region indices of a generic (non-PCI) device; unused by the library. */
enum {
    VFU_GENERIC_DEV_MIGR_REGION_IDX,
    VFU_GENERIC_DEV_NUM_REGIONS
};

/* PCI flavour; selects a 256-byte or 4096-byte config space. */
typedef enum {
    VFU_PCI_TYPE_CONVENTIONAL,
    VFU_PCI_TYPE_PCI_X_1,
    VFU_PCI_TYPE_PCI_X_2,
    VFU_PCI_TYPE_EXPRESS,
} vfu_pci_type_t;

/* Allocates the config space. @hdr_type must be PCI_HEADER_TYPE_NORMAL. */
int
vfu_pci_init(vfu_ctx_t *vfu_ctx, vfu_pci_type_t pci_type, int hdr_type,
             int revision);

/* Sets vendor, device, subsystem vendor and subsystem IDs. */
void
vfu_pci_set_id(vfu_ctx_t *vfu_ctx, uint16_t vid, uint16_t did,
               uint16_t ssvid, uint16_t ssid);

/* Sets the class code (base class, sub-class, programming interface). */
void
vfu_pci_set_class(vfu_ctx_t *vfu_ctx, uint8_t base, uint8_t sub, uint8_t pi);

/* Returns the config space buffer, or NULL if none exists yet. */
vfu_pci_config_space_t *
vfu_pci_get_config_space(vfu_ctx_t *vfu_ctx);

/* vfu_pci_add_capability() flags. */
#define VFU_CAP_FLAG_EXTENDED   (1 << 0)    /* PCIe extended capability */
#define VFU_CAP_FLAG_CALLBACK   (1 << 1)    /* accesses go to the cfg callback */
#define VFU_CAP_FLAG_READONLY   (1 << 2)    /* client writes fail with EPERM */

/*
 * Copies capability @data into config space at @pos (0: next free place)
 * and links it. Returns its offset, or -1 with errno set.
 */
ssize_t
vfu_pci_add_capability(vfu_ctx_t *vfu_ctx, size_t pos, int flags, void *data);

/* Offset of the first capability @cap_id, or 0 with errno set. */
size_t
vfu_pci_find_capability(vfu_ctx_t *vfu_ctx, bool extended, int cap_id);

/* Offset of the next capability @cap_id after @pos, or 0 with errno set. */
size_t
vfu_pci_find_next_capability(vfu_ctx_t *vfu_ctx, bool extended, size_t pos,
                             int cap_id);

/* True if @sg lies in a region that vfu_sgl_get() can map. */
bool
vfu_sg_is_mappable(vfu_ctx_t *vfu_ctx, dma_sg_t *sg);

/*
 * Registers an ioeventfd for @size bytes at @gpa_offset of region
 * @region_idx, reported to the client via GET_REGION_IO_FDS.
 * @shadow_fd is -1 unless shadow ioeventfds are supported.
 */
int
vfu_create_ioeventfd(vfu_ctx_t *vfu_ctx, uint32_t region_idx, int fd,
                     size_t gpa_offset, uint32_t size, uint32_t flags,
                     uint64_t datamatch, int shadow_fd, size_t shadow_offset);

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_H */
