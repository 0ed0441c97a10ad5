/*
 * libvfio-user: vfio-user wire protocol definitions.
 *
 * Every message is a struct vfio_user_header followed by a command-specific
 * payload; file descriptors travel as SCM_RIGHTS ancillary data. Fields are
 * host-endian.
 */

#ifndef VFIO_USER_H
#define VFIO_USER_H

#include <inttypes.h>
#include <linux/vfio.h>
#include <linux/version.h>

/* Compile-time layout check usable from both C and C++. */
#ifndef VFU_STATIC_ASSERT
#ifdef __cplusplus
#define VFU_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define VFU_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Largest data transfer either side uses unless negotiated otherwise. */
#define VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE (1024 * 1024)

/* Command numbers carried in vfio_user_header.cmd. */
enum vfio_user_command {
    VFIO_USER_VERSION                   = 1,
    VFIO_USER_DMA_MAP                   = 2,
    VFIO_USER_DMA_UNMAP                 = 3,
    VFIO_USER_DEVICE_GET_INFO           = 4,
    VFIO_USER_DEVICE_GET_REGION_INFO    = 5,
    VFIO_USER_DEVICE_GET_REGION_IO_FDS  = 6,
    VFIO_USER_DEVICE_GET_IRQ_INFO       = 7,
    VFIO_USER_DEVICE_SET_IRQS           = 8,
    VFIO_USER_REGION_READ               = 9,
    VFIO_USER_REGION_WRITE              = 10,
    VFIO_USER_DMA_READ                  = 11,
    VFIO_USER_DMA_WRITE                 = 12,
    VFIO_USER_DEVICE_RESET              = 13,
    /* 14 is not used */
    VFIO_USER_REGION_WRITE_MULTI        = 15,
    VFIO_USER_DEVICE_FEATURE            = 16,
    VFIO_USER_MIG_DATA_READ             = 17,
    VFIO_USER_MIG_DATA_WRITE            = 18,
    VFIO_USER_MAX,
};

/* Message kind, as encoded in the low bits of vfio_user_header.flags. */
enum vfio_user_message_type {
    VFIO_USER_MESSAGE_COMMAND = 0,
    VFIO_USER_MESSAGE_REPLY   = 1,
};

#define VFIO_USER_FLAGS_NO_REPLY (0x1)

/* Header that starts every message (16 bytes). */
struct vfio_user_header {
    uint16_t msg_id;
    uint16_t cmd;
    uint32_t msg_size;      /* header plus payload, in bytes */
    uint32_t flags;
#define VFIO_USER_F_TYPE_MASK       (0xf)
#define VFIO_USER_F_TYPE_COMMAND    (0x0)
#define VFIO_USER_F_TYPE_REPLY      (0x1)
#define VFIO_USER_F_NO_REPLY        (0x10)
#define VFIO_USER_F_ERROR           (0x20)
    uint32_t error_no;      /* errno, when VFIO_USER_F_ERROR is set */
} __attribute__((packed));

/* VFIO_USER_VERSION payload: protocol version plus optional JSON text. */
struct vfio_user_version {
    uint16_t major;
    uint16_t minor;
    uint8_t data[];
} __attribute__((packed));

/* VFIO_USER_DEVICE_GET_INFO payload. */
struct vfio_user_device_info {
    uint32_t argsz;
    uint32_t flags;         /* VFIO_DEVICE_FLAGS_* */
    uint32_t num_regions;
    uint32_t num_irqs;
} __attribute__((packed));

/* Dirty page bitmap descriptor (DMA_UNMAP with GET_DIRTY_BITMAP). */
struct vfio_user_bitmap {
    uint64_t pgsize;
    uint64_t size;
    char data[];
} __attribute__((packed));

/* vfio_user_dma_map.flags */
#define VFIO_USER_F_DMA_REGION_READ     (1 << 0)
#define VFIO_USER_F_DMA_REGION_WRITE    (1 << 1)
#define VFIO_USER_F_DMA_REGION_MMAP     (1 << 2)    /* fd must be mmap()ed */
#define VFIO_USER_F_DMA_REGION_FILE_IO  (1 << 3)    /* use pread/pwrite on fd */

/* VFIO_USER_DMA_MAP payload. */
struct vfio_user_dma_map {
    uint32_t argsz;
    uint32_t flags;
    uint64_t offset;        /* offset into the passed fd */
    uint64_t addr;          /* client IOVA */
    uint64_t size;
} __attribute__((packed));

/* vfio_user_dma_unmap.flags (normally provided by <linux/vfio.h>) */
#ifndef VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP
#define VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP (1 << 0)
#endif
#ifndef VFIO_DMA_UNMAP_FLAG_ALL
#define VFIO_DMA_UNMAP_FLAG_ALL (1 << 1)
#endif

/* VFIO_USER_DMA_UNMAP payload (deliberately not packed). */
struct vfio_user_dma_unmap {
    uint32_t argsz;
    uint32_t flags;
    uint64_t addr;
    uint64_t size;
    struct vfio_user_bitmap bitmap[];
};

/* VFIO_USER_REGION_READ / VFIO_USER_REGION_WRITE payload. */
struct vfio_user_region_access {
    uint64_t offset;
    uint32_t region;
    uint32_t count;
    uint8_t data[];
} __attribute__((packed));

/* VFIO_USER_DMA_READ / VFIO_USER_DMA_WRITE payload (server to client). */
struct vfio_user_dma_region_access {
    uint64_t addr;
    uint64_t count;
    uint8_t data[];
} __attribute__((packed));

/* IRQ notification payload (not used by the server). */
struct vfio_user_irq_info {
    uint32_t subindex;
} __attribute__((packed));

/* VFIO_USER_DEVICE_GET_REGION_IO_FDS request. */
typedef struct vfio_user_region_io_fds_request {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t count;
} __attribute__((packed)) vfio_user_region_io_fds_request_t;

/* Kinds of sub-region I/O fd (vfio_user_sub_region_*.type). */
#define VFIO_USER_IO_FD_TYPE_IOEVENTFD          0
#define VFIO_USER_IO_FD_TYPE_IOREGIONFD         1
#define VFIO_USER_IO_FD_TYPE_IOEVENTFD_SHADOW   2

/* One ioeventfd entry of a GET_REGION_IO_FDS reply. */
typedef struct vfio_user_sub_region_ioeventfd {
    uint64_t gpa_offset;
    uint64_t size;
    uint32_t fd_index;
    uint32_t type;
    uint32_t flags;
    uint32_t shadow_mem_fd_index;
    uint64_t shadow_offset;
    uint64_t datamatch;
} __attribute__((packed)) vfio_user_sub_region_ioeventfd_t;

/* One ioregionfd entry of a GET_REGION_IO_FDS reply. */
typedef struct vfio_user_sub_region_ioregionfd {
    uint64_t offset;
    uint64_t size;
    uint32_t fd_index;
    uint32_t type;
    uint32_t flags;
    uint32_t padding;
    uint64_t user_data;
} __attribute__((packed)) vfio_user_sub_region_ioregionfd_t;

/* A reply entry: either kind of sub-region. */
union sub_region {
    vfio_user_sub_region_ioeventfd_t ioeventfd;
    vfio_user_sub_region_ioregionfd_t ioregionfd;
} __attribute__((packed));

/* VFIO_USER_DEVICE_GET_REGION_IO_FDS reply. */
typedef struct vfio_user_region_io_fds_reply {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t count;
    union sub_region sub_regions[];
} __attribute__((packed)) vfio_user_region_io_fds_reply_t;

/* Dirty-logging feature numbers (same values as the kernel's). */
#ifndef VFIO_DEVICE_FEATURE_DMA_LOGGING_START
#define VFIO_DEVICE_FEATURE_DMA_LOGGING_START 6
#define VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP 7
#define VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT 8
#endif

/* One IOVA range to track, for DMA_LOGGING_START. */
struct vfio_user_device_feature_dma_logging_range {
    uint64_t iova;
    uint64_t length;
} __attribute__((packed));

/* DMA_LOGGING_START / DMA_LOGGING_STOP data. */
struct vfio_user_device_feature_dma_logging_control {
    uint64_t page_size;
    uint32_t num_ranges;
    uint32_t reserved;
    struct vfio_user_device_feature_dma_logging_range ranges[];
} __attribute__((packed));

/* DMA_LOGGING_REPORT data: a range and the bitmap returned for it. */
struct vfio_user_device_feature_dma_logging_report {
    uint64_t iova;
    uint64_t length;
    uint64_t page_size;
    uint8_t bitmap[];
} __attribute__((packed));

/* vfio_user_device_feature.flags: feature index plus operation bits. */
#ifndef VFIO_DEVICE_FEATURE_MASK
#define VFIO_DEVICE_FEATURE_MASK (0xffff)
#define VFIO_DEVICE_FEATURE_GET (1 << 16)
#define VFIO_DEVICE_FEATURE_SET (1 << 17)
#define VFIO_DEVICE_FEATURE_PROBE (1 << 18)
#endif

/* VFIO_USER_DEVICE_FEATURE payload. */
struct vfio_user_device_feature {
    uint32_t argsz;
    uint32_t flags;
    uint8_t data[];
} __attribute__((packed));

/* Migration feature flags and numbers, for kernel headers without them. */
#ifndef VFIO_REGION_TYPE_MIGRATION_DEPRECATED
#define VFIO_MIGRATION_STOP_COPY (1 << 0)
#define VFIO_MIGRATION_P2P (1 << 1)
#endif
#ifndef VFIO_MIGRATION_PRE_COPY
#define VFIO_MIGRATION_PRE_COPY (1 << 2)
#endif

/* VFIO_DEVICE_FEATURE_MIGRATION data. */
struct vfio_user_device_feature_migration {
    uint64_t flags;         /* VFIO_MIGRATION_* */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct vfio_user_device_feature_migration) == 8,
                  "bad vfio_user_device_feature_migration size");

#ifndef VFIO_REGION_TYPE_MIGRATION_DEPRECATED
#define VFIO_DEVICE_FEATURE_MIGRATION 1
#endif

/* VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE data. */
struct vfio_user_device_feature_mig_state {
    uint32_t device_state;  /* enum vfio_user_device_mig_state */
    uint32_t data_fd;
} __attribute__((packed));

#ifndef VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE
#define VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE 2
#endif

/* Device migration states (v2 migration protocol). */
enum vfio_user_device_mig_state {
    VFIO_USER_DEVICE_STATE_ERROR = 0,
    VFIO_USER_DEVICE_STATE_STOP = 1,
    VFIO_USER_DEVICE_STATE_RUNNING = 2,
    VFIO_USER_DEVICE_STATE_STOP_COPY = 3,
    VFIO_USER_DEVICE_STATE_RESUMING = 4,
    VFIO_USER_DEVICE_STATE_RUNNING_P2P = 5,
    VFIO_USER_DEVICE_STATE_PRE_COPY = 6,
    VFIO_USER_DEVICE_STATE_PRE_COPY_P2P = 7,
    VFIO_USER_DEVICE_NUM_STATES = 8,
};

/* VFIO_USER_MIG_DATA_READ / VFIO_USER_MIG_DATA_WRITE payload. */
struct vfio_user_mig_data {
    uint32_t argsz;
    uint32_t size;
    uint8_t data[];
} __attribute__((packed));

#ifdef __cplusplus
}
#endif

#endif /* VFIO_USER_H */
