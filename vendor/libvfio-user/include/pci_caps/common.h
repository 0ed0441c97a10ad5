/*
 * libvfio-user: generic PCI / PCIe capability headers shared by the
 * per-capability headers in this directory.
 */

#ifndef LIB_VFIO_USER_PCI_CAPS_COMMON_H
#define LIB_VFIO_USER_PCI_CAPS_COMMON_H

#include <linux/pci_regs.h>
#include <stddef.h>
#include <stdint.h>

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

/* First two bytes of every standard capability: ID and next pointer. */
struct cap_hdr {
    uint8_t id;
    uint8_t next;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct cap_hdr) == 0x2, "struct cap_hdr must be 2 bytes");
VFU_STATIC_ASSERT(offsetof(struct cap_hdr, id) == PCI_CAP_LIST_ID,
                  "cap_hdr.id must be at PCI_CAP_LIST_ID");
VFU_STATIC_ASSERT(offsetof(struct cap_hdr, next) == PCI_CAP_LIST_NEXT,
                  "cap_hdr.next must be at PCI_CAP_LIST_NEXT");

/* Standard vendor-specific capability: header, total length, payload. */
struct vsc {
    struct cap_hdr hdr;
    uint8_t size;
    uint8_t data[];
} __attribute__((packed));

/* First dword of every extended (PCIe, offset >= 0x100) capability. */
struct pcie_ext_cap_hdr {
    uint32_t id:16;
    uint32_t version:4;
    uint32_t next:12;
} __attribute__((packed));

/* Extended vendor-specific capability: common header plus VSEC header. */
struct pcie_ext_cap_vsc_hdr {
    struct pcie_ext_cap_hdr hdr;
    uint32_t id:16;
    uint32_t rev:4;
    uint32_t len:12;
    uint8_t data[];
} __attribute__((packed));

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_PCI_CAPS_COMMON_H */
