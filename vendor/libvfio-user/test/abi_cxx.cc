/*
 * Build-only check that the public libvfio-user headers (including the
 * pci_caps headers and vfio-user.h pulled in by libvfio-user.h) compile as
 * C++ and keep their layout there.
 */

#include <libvfio-user.h>

static_assert(sizeof(vfu_pci_hdr_t) == 0x40, "vfu_pci_hdr_t layout");
static_assert(sizeof(struct pxcap) == VFIO_USER_PCI_CAP_EXP_SIZEOF, "struct pxcap layout");
static_assert(sizeof(struct vfio_user_header) == 16, "struct vfio_user_header layout");
static_assert(sizeof(vfu_dma_info_t) == 56, "vfu_dma_info_t layout");

int abi_cxx_anchor(void);

int
abi_cxx_anchor(void)
{
    return sizeof(vfu_pci_config_space_t) == 256 ? 0 : 1;
}
