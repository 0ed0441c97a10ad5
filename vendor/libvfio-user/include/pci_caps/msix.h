/*
 * libvfio-user: MSI-X capability.
 */

#ifndef LIB_VFIO_USER_PCI_CAPS_MSIX_H
#define LIB_VFIO_USER_PCI_CAPS_MSIX_H

#include <stdint.h>
#include <linux/pci_regs.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Message Control register. */
struct mxc {
    uint16_t ts:11;         /* table size minus one */
    uint16_t reserved:3;
    uint16_t fm:1;          /* function mask */
    uint16_t mxe:1;         /* MSI-X enable */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct mxc) == 0x2,
                  "struct mxc must be 2 bytes");

/* Table offset / BAR indicator. */
struct mtab {
    uint32_t tbir:3;        /* BAR holding the table */
    uint32_t to:29;         /* table offset (in qwords) */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct mtab) == 0x4,
                  "struct mtab must be 4 bytes");

/* PBA offset / BAR indicator. */
struct mpba {
    uint32_t pbir:3;        /* BAR holding the PBA */
    uint32_t pbao:29;       /* PBA offset (in qwords) */
} __attribute__((packed));

/* Full MSI-X capability. */
struct msixcap {
    struct cap_hdr hdr;
    struct mxc mxc;
    struct mtab mtab;
    struct mpba mpba;
} __attribute__((packed)) __attribute__((aligned(4)));
VFU_STATIC_ASSERT(sizeof(struct msixcap) == PCI_CAP_MSIX_SIZEOF,
                  "struct msixcap must be PCI_CAP_MSIX_SIZEOF bytes");
VFU_STATIC_ASSERT(offsetof(struct msixcap, hdr) == 0,
                  "msixcap.hdr must be at offset 0");

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_PCI_CAPS_MSIX_H */
