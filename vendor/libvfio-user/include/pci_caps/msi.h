/*
 * libvfio-user: MSI capability.
 */

#ifndef LIB_VFIO_USER_PCI_CAPS_MSI_H
#define LIB_VFIO_USER_PCI_CAPS_MSI_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Message Control register. */
struct mc {
    unsigned int msie:1;    /* MSI enable */
    unsigned int mmc:3;     /* multiple message capable (log2) */
    unsigned int mme:3;     /* multiple message enable (log2) */
    unsigned int c64:1;     /* 64-bit address capable */
    unsigned int pvm:1;     /* per-vector masking capable */
    unsigned int res1:7;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct mc) == 0x2, "struct mc must be 2 bytes");

/* Message Address register (low dword, dword aligned). */
struct ma {
    unsigned int res1:2;
    unsigned int addr:30;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct ma) == 0x4, "struct ma must be 4 bytes");

/* Full MSI capability in its 64-bit, per-vector-masking form. */
struct msicap {
    struct cap_hdr hdr;
    struct mc mc;
    struct ma ma;
    uint32_t mua;       /* message upper address */
    uint16_t md;        /* message data */
    uint16_t padding;
    uint32_t mmask;     /* mask bits */
    uint32_t mpend;     /* pending bits */
} __attribute__((packed));

/* Size of struct msicap. */
#define VFIO_USER_PCI_CAP_MSI_SIZEOF (0x18)

VFU_STATIC_ASSERT(sizeof(struct msicap) == VFIO_USER_PCI_CAP_MSI_SIZEOF,
                  "struct msicap must be VFIO_USER_PCI_CAP_MSI_SIZEOF bytes");
VFU_STATIC_ASSERT(offsetof(struct msicap, hdr) == 0,
                  "msicap.hdr must be at offset 0");

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_PCI_CAPS_MSI_H */
