/*
 * libvfio-user: Device Serial Number extended capability.
 */

#ifndef LIB_VFIO_USER_PCI_CAPS_DSN_H
#define LIB_VFIO_USER_PCI_CAPS_DSN_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* DSN: extended header followed by the 64-bit serial number (low, high). */
struct dsncap {
    struct pcie_ext_cap_hdr hdr;
    uint32_t sn_lo;
    uint32_t sn_hi;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct dsncap) == PCI_EXT_CAP_DSN_SIZEOF,
                  "struct dsncap must be PCI_EXT_CAP_DSN_SIZEOF bytes");

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_PCI_CAPS_DSN_H */
