/*
 * libvfio-user: layout of the PCI type-0 configuration header and of the
 * configuration space buffer exposed by vfu_pci_get_config_space().
 */

#ifndef LIBVFIO_USER_PCI_DEFS_H
#define LIBVFIO_USER_PCI_DEFS_H

#include <stdint.h>
#include <stdbool.h>
#include <linux/pci_regs.h>

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

/* Vendor and device ID (offset 0x00). */
typedef union {
    uint32_t raw;
    struct {
        uint16_t vid;
        uint16_t did;
    } __attribute__((packed));
} __attribute__((packed)) vfu_pci_hdr_id_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_id_t) == 0x4, "bad vfu_pci_hdr_id_t size");

/* Command register (offset 0x04). */
typedef union {
    uint16_t raw;
    struct {
        uint8_t iose:1;     /* I/O space enable */
        uint8_t mse:1;      /* memory space enable */
        uint8_t bme:1;      /* bus master enable */
        uint8_t sce:1;      /* special cycle enable */
        uint8_t mwie:1;     /* memory write and invalidate enable */
        uint8_t vga:1;      /* VGA palette snoop */
        uint8_t pee:1;      /* parity error response */
        uint8_t zero:1;
        uint8_t see:1;      /* SERR# enable */
        uint8_t fbe:1;      /* fast back-to-back enable */
        uint8_t id:1;       /* INTx disable */
        uint8_t res1:5;
    } __attribute__((packed));
} __attribute__((packed)) vfu_pci_hdr_cmd_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_cmd_t) == 0x2, "bad vfu_pci_hdr_cmd_t size");

/* Status register (offset 0x06). */
typedef union {
    uint16_t raw;
    struct {
        unsigned int res1:3;
        unsigned int is:1;      /* interrupt status */
        unsigned int cl:1;      /* capabilities list */
        unsigned int c66:1;     /* 66 MHz capable */
        unsigned int res2:1;
        unsigned int fbc:1;     /* fast back-to-back capable */
        unsigned int dpd:1;     /* master data parity error */
        unsigned int devt:2;    /* DEVSEL timing */
        unsigned int sta:1;     /* signaled target abort */
        unsigned int rta:1;     /* received target abort */
        unsigned int rma:1;     /* received master abort */
        unsigned int sse:1;     /* signaled system error */
        unsigned int dpe:1;     /* detected parity error */
    } __attribute__((packed));
} __attribute__((packed)) vfu_pci_hdr_sts_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_sts_t) == 0x2, "bad vfu_pci_hdr_sts_t size");

/* Class code (offset 0x09): programming interface, sub-class, base class. */
typedef union {
    uint8_t raw[3];
    struct {
        uint8_t pi;
        uint8_t scc;
        uint8_t bcc;
    } __attribute__((packed));
} __attribute__((packed)) vfu_pci_hdr_cc_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_cc_t) == 0x3, "bad vfu_pci_hdr_cc_t size");

/* Header type (offset 0x0e). */
typedef union {
    uint8_t raw;
} __attribute__((packed)) vfu_pci_hdr_htype_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_htype_t) == 0x1, "bad vfu_pci_hdr_htype_t size");

/* Built-in self test (offset 0x0f). */
typedef union {
    uint8_t raw;
} __attribute__((packed)) vfu_pci_hdr_bist_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_bist_t) == 0x1, "bad vfu_pci_hdr_bist_t size");

/* Values of vfu_bar_t.mem.locatable (the BAR type bits shifted down). */
#define PCI_BASE_ADDRESS_MEM_TYPE_LOCATABLE_32 (PCI_BASE_ADDRESS_MEM_TYPE_32 >> 1)
#define PCI_BASE_ADDRESS_MEM_TYPE_LOCATABLE_1M (PCI_BASE_ADDRESS_MEM_TYPE_1M >> 1)
#define PCI_BASE_ADDRESS_MEM_TYPE_LOCATABLE_64 (PCI_BASE_ADDRESS_MEM_TYPE_64 >> 1)

/* Base address register, viewed as memory or I/O BAR. */
typedef union {
    uint32_t raw;
    union {
        struct {
            unsigned int region_type:1;     /* 0 = memory */
            unsigned int locatable:2;       /* PCI_BASE_ADDRESS_MEM_TYPE_LOCATABLE_* */
            unsigned int prefetchable:1;
            unsigned int base_address:28;
        } __attribute__((packed)) mem;
        struct {
            unsigned int region_type:1;     /* 1 = I/O */
            unsigned int reserved:1;
            unsigned int base_address:30;
        } __attribute__((packed)) io;
    } __attribute__((packed));
} __attribute__((packed)) vfu_bar_t;
VFU_STATIC_ASSERT(sizeof(vfu_bar_t) == 0x4, "bad vfu_bar_t size");

/* Subsystem vendor ID and subsystem ID (offset 0x2c). */
typedef union {
    uint32_t raw;
    struct {
        uint16_t vid;
        uint16_t sid;
    } __attribute__((packed));
} __attribute__((packed)) vfu_pci_hdr_ss_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_ss_t) == 0x4, "bad vfu_pci_hdr_ss_t size");

/* Interrupt line and pin (offset 0x3c). */
typedef union {
    uint16_t raw;
    struct {
        uint8_t iline;
        uint8_t ipin;
    } __attribute__((packed));
} __attribute__((packed)) vfu_pci_hdr_intr_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_intr_t) == 0x2, "bad vfu_pci_hdr_intr_t size");

/* The 64-byte type-0 standard header. */
typedef union {
    uint8_t raw[PCI_STD_HEADER_SIZEOF];
    struct {
        vfu_pci_hdr_id_t id;            /* 0x00 */
        vfu_pci_hdr_cmd_t cmd;          /* 0x04 */
        vfu_pci_hdr_sts_t sts;          /* 0x06 */
        uint8_t rid;                    /* 0x08 revision ID */
        vfu_pci_hdr_cc_t cc;            /* 0x09 */
        uint8_t cls;                    /* 0x0c cache line size */
        uint8_t mlt;                    /* 0x0d latency timer */
        vfu_pci_hdr_htype_t htype;      /* 0x0e */
        vfu_pci_hdr_bist_t bist;        /* 0x0f */
#define PCI_BARS_NR 6
        vfu_bar_t bars[PCI_BARS_NR];    /* 0x10 */
        uint32_t ccptr;                 /* 0x28 CardBus CIS pointer */
        vfu_pci_hdr_ss_t ss;            /* 0x2c */
        uint32_t erom;                  /* 0x30 expansion ROM base */
        uint8_t cap;                    /* 0x34 capabilities pointer */
        uint8_t res1[7];
        vfu_pci_hdr_intr_t intr;        /* 0x3c */
        uint8_t mgnt;                   /* 0x3e min grant */
        uint8_t mlat;                   /* 0x3f max latency */
    } __attribute__((packed));
} __attribute__((packed)) vfu_pci_hdr_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_t) == 0x40, "bad vfu_pci_hdr_t size");

/*
 * Configuration space: the first 256 bytes (standard header plus standard
 * capabilities), followed by the extended space on PCI-X 2.0 / PCIe devices.
 */
typedef struct {
    union {
        uint8_t raw[PCI_CFG_SPACE_SIZE];
        vfu_pci_hdr_t hdr;
    } __attribute__((packed));
    uint8_t extended[];
} __attribute__((packed)) vfu_pci_config_space_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_config_space_t) == 0x100,
                  "bad vfu_pci_config_space_t size");

#ifdef __cplusplus
}
#endif

#endif /* LIBVFIO_USER_PCI_DEFS_H */
