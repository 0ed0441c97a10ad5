/*
 * PCI capabilities: placing and linking them (vfu_pci_add_capability),
 * finding them, and what a client write means for each kind (PCI 3.0, PCI PM
 * 1.2, PCIe base spec): which bits are writable or write-1-to-clear, and the
 * side effects of MSI/MSI-X control changes and of a function-level reset.
 */
#include <string.h>

#include "private.h"

#define STD_CAP_START PCI_STD_HEADER_SIZEOF
#define EXT_CAP_START PCI_CFG_SPACE_SIZE
#define EXT_CAP_NEXT_SHIFT 20
#define EXT_CAP_NEXT_BITS (0xfffu << EXT_CAP_NEXT_SHIFT)
#define CAP_FLAGS_ALL (VFU_CAP_FLAG_EXTENDED | VFU_CAP_FLAG_CALLBACK | VFU_CAP_FLAG_READONLY)

/* Header bytes of vendor-specific capabilities: id, next, length (+ VSEC). */
#define VSC_HDR_SIZE offsetof(struct vsc, data)
#define EXT_VSC_HDR_SIZE offsetof(struct pcie_ext_cap_vsc_hdr, data)
#define EXT_VSC_LEN_SHIFT 20

#define MSI_MAX_VECTORS_LOG2 5

/* Link Control bits an endpoint implements as read-write. */
#define LNKCTL_WRITABLE                                                                   \
    (PCI_EXP_LNKCTL_ASPMC | PCI_EXP_LNKCTL_RCB | PCI_EXP_LNKCTL_CCC | PCI_EXP_LNKCTL_ES | \
     PCI_EXP_LNKCTL_CLKREQ_EN | PCI_EXP_LNKCTL_HAWD)
#define DEVSTA_W1C \
    (PCI_EXP_DEVSTA_CED | PCI_EXP_DEVSTA_NFED | PCI_EXP_DEVSTA_FED | PCI_EXP_DEVSTA_URD)

/* Size of a standard capability given its data, or -errno. */
static ssize_t
std_cap_size(const uint8_t *data)
{
    switch (data[PCI_CAP_LIST_ID]) {
    case PCI_CAP_ID_PM:
        return PCI_PM_SIZEOF;
    case PCI_CAP_ID_MSI:
        return VFIO_USER_PCI_CAP_MSI_SIZEOF;
    case PCI_CAP_ID_VNDR:
        /* The length byte counts the whole capability, its header too. */
        if (data[offsetof(struct vsc, size)] < VSC_HDR_SIZE) {
            return -EINVAL;
        }
        return data[offsetof(struct vsc, size)];
    case PCI_CAP_ID_EXP:
        return VFIO_USER_PCI_CAP_EXP_SIZEOF;
    case PCI_CAP_ID_MSIX:
        return PCI_CAP_MSIX_SIZEOF;
    default:
        return -ENOTSUP;
    }
}

/* Size of an extended capability given its data, or -errno. */
static ssize_t
ext_cap_size(const uint8_t *data)
{
    size_t len;

    switch (PCI_EXT_CAP_ID(pci_get32(data))) {
    case PCI_EXT_CAP_ID_DSN:
        return PCI_EXT_CAP_DSN_SIZEOF;
    case PCI_EXT_CAP_ID_VNDR:
        len = pci_get32(data + 4) >> EXT_VSC_LEN_SHIFT;
        return len < EXT_VSC_HDR_SIZE ? -EINVAL : (ssize_t)len;
    default:
        return -ENOTSUP;
    }
}

static bool
cap_overlaps(const struct vfu_pci_cap *cap, size_t pos, size_t size)
{
    return pos < cap->off + cap->size && cap->off < pos + size;
}

static bool
any_overlap(const struct vfu_pci_cap *caps, size_t nr, size_t pos, size_t size)
{
    size_t i;

    for (i = 0; i < nr; i++) {
        if (cap_overlaps(&caps[i], pos, size)) {
            return true;
        }
    }
    return false;
}

/* First dword-aligned offset from pos where size bytes overlap nothing. */
static size_t
first_free(const struct vfu_pci_cap *caps, size_t nr, size_t pos, size_t size)
{
    bool moved;
    size_t i;

    do {
        moved = false;
        for (i = 0; i < nr; i++) {
            if (cap_overlaps(&caps[i], pos, size)) {
                pos = VFU_ROUND_UP(caps[i].off + caps[i].size, 4);
                moved = true;
            }
        }
    } while (moved);
    return pos;
}

/* Number of vectors' worth of MSI bits: 2^MMC, reserved values clamped. */
static unsigned
msi_max_log2(uint16_t ctrl)
{
    return VFU_MIN((unsigned)(ctrl & PCI_MSI_FLAGS_QMASK) >> 1, MSI_MAX_VECTORS_LOG2);
}

static size_t
msi_mask_off(uint16_t ctrl)
{
    return (ctrl & PCI_MSI_FLAGS_64BIT) ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32;
}

static void
msi_init_masks(const uint8_t *c, uint8_t *wm)
{
    uint16_t ctrl = pci_get16(c + PCI_MSI_FLAGS);
    bool is64 = ctrl & PCI_MSI_FLAGS_64BIT;
    unsigned vectors = 1u << msi_max_log2(ctrl);

    pci_put16(wm + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
    pci_put32(wm + PCI_MSI_ADDRESS_LO, 0xfffffffc);
    if (is64) {
        pci_put32(wm + PCI_MSI_ADDRESS_HI, 0xffffffff);
    }
    pci_put16(wm + (is64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32), 0xffff);
    if (ctrl & PCI_MSI_FLAGS_MASKBIT) {
        pci_put32(wm + msi_mask_off(ctrl), vectors == 32 ? 0xffffffff : (1u << vectors) - 1);
    }
}

/* Sets what a client may write in a freshly added capability. */
static void
cap_init_masks(struct vfu_pci *pci, const struct vfu_pci_cap *cap)
{
    uint8_t *c = pci->cfg + cap->off;
    uint8_t *wm = pci->wmask + cap->off;
    uint8_t *w1c = pci->w1cmask + cap->off;

    if (cap->flags & (VFU_CAP_FLAG_READONLY | VFU_CAP_FLAG_CALLBACK)) {
        return;
    }
    if (cap->flags & VFU_CAP_FLAG_EXTENDED) {
        if (cap->id == PCI_EXT_CAP_ID_VNDR) {
            memset(wm + EXT_VSC_HDR_SIZE, 0xff, cap->size - EXT_VSC_HDR_SIZE);
        }
        return; /* DSN is read-only */
    }
    switch (cap->id) {
    case PCI_CAP_ID_PM:
        pci_put16(wm + PCI_PM_CTRL, PCI_PM_CTRL_STATE_MASK | PCI_PM_CTRL_PME_ENABLE);
        pci_put16(w1c + PCI_PM_CTRL, PCI_PM_CTRL_PME_STATUS);
        break;
    case PCI_CAP_ID_MSI:
        msi_init_masks(c, wm);
        break;
    case PCI_CAP_ID_MSIX:
        pci_put16(wm + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_MASKALL | PCI_MSIX_FLAGS_ENABLE);
        break;
    case PCI_CAP_ID_EXP:
        /* Initiate FLR is handled apart: it triggers a reset, reads 0. */
        pci_put16(wm + PCI_EXP_DEVCTL, (uint16_t)~PCI_EXP_DEVCTL_BCR_FLR);
        pci_put16(w1c + PCI_EXP_DEVSTA, DEVSTA_W1C);
        pci_put16(wm + PCI_EXP_LNKCTL, LNKCTL_WRITABLE);
        pci_put16(w1c + PCI_EXP_LNKSTA, PCI_EXP_LNKSTA_LBMS | PCI_EXP_LNKSTA_LABS);
        pci_put16(wm + PCI_EXP_DEVCTL2, 0xffff);
        pci_put16(wm + PCI_EXP_LNKCTL2, 0xffff);
        break;
    case PCI_CAP_ID_VNDR:
        memset(wm + VSC_HDR_SIZE, 0xff, cap->size - VSC_HDR_SIZE);
        break;
    }
}

static ssize_t
cap_add(vfu_ctx_t *ctx, size_t pos, int flags, const uint8_t *data)
{
    struct vfu_pci *pci = &ctx->pci;
    bool extended = flags & VFU_CAP_FLAG_EXTENDED;
    struct vfu_pci_cap *caps = extended ? pci->ext_caps : pci->caps;
    size_t *nr = extended ? &pci->nr_ext_caps : &pci->nr_caps;
    size_t start = extended ? EXT_CAP_START : STD_CAP_START;
    /* Standard capabilities live in the first 256 bytes. */
    size_t limit = extended ? pci->cfg_size : VFU_MIN(pci->cfg_size, (size_t)PCI_CFG_SPACE_SIZE);
    struct vfu_pci_cap *cap;
    ssize_t size;

    if (data == NULL || pci->cfg == NULL || (flags & ~CAP_FLAGS_ALL)) {
        return -EINVAL;
    }
    if ((flags & VFU_CAP_FLAG_CALLBACK) && ctx->regions[VFU_PCI_DEV_CFG_REGION_IDX].cb == NULL) {
        return -EINVAL;
    }
    if (extended && pci->type != VFU_PCI_TYPE_PCI_X_2 && pci->type != VFU_PCI_TYPE_EXPRESS) {
        return -EINVAL;
    }
    size = extended ? ext_cap_size(data) : std_cap_size(data);
    if (size < 0) {
        return size;
    }
    if (*nr == PCI_MAX_CAPS) {
        return -ENOSPC;
    }

    if (pos == 0) {
        pos = *nr == 0 ? start : VFU_ROUND_UP(caps[*nr - 1].off + caps[*nr - 1].size, 4);
        pos = first_free(caps, *nr, pos, (size_t)size);
        if (pos > limit || (size_t)size > limit - pos) {
            return -ENOSPC;
        }
    } else if (pos < start || pos > limit || (size_t)size > limit - pos ||
               any_overlap(caps, *nr, pos, (size_t)size) ||
               (extended && *nr == 0 && pos != start)) {
        return -EINVAL;
    } else if (pos % 4 != 0) {
        /*
         * Upstream accepts any offset, but PCI reserves the low two bits of
         * every capability pointer and drivers mask them off, so a
         * misaligned capability could never be found by a guest.
         */
        return -EINVAL;
    }

    memcpy(pci->cfg + pos, data, (size_t)size);
    if (extended) {
        uint32_t hdr = pci_get32(pci->cfg + pos) & ~EXT_CAP_NEXT_BITS;

        pci_put32(pci->cfg + pos, hdr);
        if (*nr > 0) {
            uint8_t *tail = pci->cfg + caps[*nr - 1].off;

            pci_put32(tail,
                      (pci_get32(tail) & ~EXT_CAP_NEXT_BITS) | (uint32_t)pos << EXT_CAP_NEXT_SHIFT);
        }
    } else {
        pci->cfg[pos + PCI_CAP_LIST_NEXT] = 0;
        if (*nr > 0) {
            pci->cfg[caps[*nr - 1].off + PCI_CAP_LIST_NEXT] = (uint8_t)pos;
        } else {
            pci->cfg[PCI_CAPABILITY_LIST] = (uint8_t)pos;
        }
        pci->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
    }

    cap = &caps[(*nr)++];
    cap->off = pos;
    cap->size = (size_t)size;
    cap->flags = flags;
    cap->id =
        extended ? (int)PCI_EXT_CAP_ID(pci_get32(pci->cfg + pos)) : pci->cfg[pos + PCI_CAP_LIST_ID];
    if (!extended && cap->id == PCI_CAP_ID_EXP) {
        /* Initiate FLR always reads as 0. */
        pci->cfg[pos + PCI_EXP_DEVCTL + 1] &= ~(PCI_EXP_DEVCTL_BCR_FLR >> 8);
    }
    cap_init_masks(pci, cap);
    return (ssize_t)pos;
}

VFU_EXPORT ssize_t
vfu_pci_add_capability(vfu_ctx_t *vfu_ctx, size_t pos, int flags, void *data)
{
    ssize_t ret = cap_add(vfu_ctx, pos, flags, data);

    /* A table added after realize is emulated from now on. */
    if (ret > 0 && vfu_ctx->realized && !(flags & VFU_CAP_FLAG_EXTENDED) &&
        ((const uint8_t *)data)[PCI_CAP_LIST_ID] == PCI_CAP_ID_MSIX) {
        int err = msix_realize(vfu_ctx);

        if (err < 0) {
            ret = err;
        }
    }
    if (ret < 0) {
        vfu_err(vfu_ctx, "cannot add capability at %#zx: %s", pos, strerror((int)-ret));
        errno = (int)-ret;
        return -1;
    }
    return ret;
}

/* Walks the list in config space, as a driver would; offset or -errno. */
static ssize_t
find_next(vfu_ctx_t *ctx, bool extended, size_t pos, int cap_id)
{
    struct vfu_pci *pci = &ctx->pci;
    const uint8_t *cfg = pci->cfg;
    size_t steps;

    if (cfg == NULL) {
        return -EINVAL;
    }
    if (!extended) {
        size_t end = VFU_MIN(pci->cfg_size, (size_t)PCI_CFG_SPACE_SIZE);

        if (pos >= pci->cfg_size || pos + 1 >= pci->cfg_size) {
            return -EINVAL;
        }
        pos = pos == 0 ? cfg[PCI_CAPABILITY_LIST] : cfg[pos + PCI_CAP_LIST_NEXT];
        /* More steps than capabilities can exist means a loop. */
        for (steps = 0; pos != 0 && steps <= PCI_MAX_CAPS; steps++) {
            if (pos < STD_CAP_START || pos + 2 > end) {
                return -ENOENT;
            }
            if (cfg[pos + PCI_CAP_LIST_ID] == cap_id) {
                return (ssize_t)pos;
            }
            pos = cfg[pos + PCI_CAP_LIST_NEXT];
        }
        return -ENOENT;
    }

    if (pos >= pci->cfg_size || pos + 4 >= pci->cfg_size) {
        return -EINVAL;
    }
    if (pos == 0) {
        /* An all-zero header at 0x100 means no extended capabilities. */
        pos = EXT_CAP_START;
        if (pos + 4 > pci->cfg_size || pci_get32(cfg + pos) == 0) {
            return -ENOENT;
        }
    } else {
        pos = PCI_EXT_CAP_NEXT(pci_get32(cfg + pos));
    }
    for (steps = 0; pos != 0 && steps <= PCI_MAX_CAPS; steps++) {
        uint32_t hdr;

        if (pos < EXT_CAP_START || pos + 4 > pci->cfg_size) {
            return -ENOENT;
        }
        hdr = pci_get32(cfg + pos);
        if ((int)PCI_EXT_CAP_ID(hdr) == cap_id) {
            return (ssize_t)pos;
        }
        pos = PCI_EXT_CAP_NEXT(hdr);
    }
    return -ENOENT;
}

VFU_EXPORT size_t
vfu_pci_find_next_capability(vfu_ctx_t *vfu_ctx, bool extended, size_t pos, int cap_id)
{
    ssize_t ret = find_next(vfu_ctx, extended, pos, cap_id);

    if (ret < 0) {
        errno = (int)-ret;
        return 0;
    }
    return (size_t)ret;
}

VFU_EXPORT size_t
vfu_pci_find_capability(vfu_ctx_t *vfu_ctx, bool extended, int cap_id)
{
    return vfu_pci_find_next_capability(vfu_ctx, extended, 0, cap_id);
}

struct vfu_pci_cap *
pci_cap_owning(vfu_ctx_t *ctx, size_t off)
{
    struct vfu_pci *pci = &ctx->pci;
    bool extended = off >= EXT_CAP_START;
    struct vfu_pci_cap *caps = extended ? pci->ext_caps : pci->caps;
    size_t nr = extended ? pci->nr_ext_caps : pci->nr_caps;
    size_t i;

    for (i = 0; i < nr; i++) {
        if (off >= caps[i].off && off < caps[i].off + caps[i].size) {
            return &caps[i];
        }
    }
    return NULL;
}

size_t
pci_cap_next_start(vfu_ctx_t *ctx, size_t off)
{
    struct vfu_pci *pci = &ctx->pci;
    size_t next = SIZE_MAX;
    size_t i;

    for (i = 0; i < pci->nr_caps; i++) {
        if (pci->caps[i].off > off) {
            next = VFU_MIN(next, pci->caps[i].off);
        }
    }
    for (i = 0; i < pci->nr_ext_caps; i++) {
        if (pci->ext_caps[i].off > off) {
            next = VFU_MIN(next, pci->ext_caps[i].off);
        }
    }
    return next;
}

bool
pci_cap_write_starts_flr(vfu_ctx_t *ctx, const struct vfu_pci_cap *cap, size_t off,
                         const uint8_t *val, size_t count)
{
    size_t iflr_byte = cap->off + PCI_EXP_DEVCTL + 1;
    const uint8_t *c = ctx->pci.cfg + cap->off;

    return !(cap->flags & CAP_FLAGS_ALL) && cap->id == PCI_CAP_ID_EXP &&
           (pci_get32(c + PCI_EXP_DEVCAP) & PCI_EXP_DEVCAP_FLR) && off <= iflr_byte &&
           iflr_byte - off < count && (val[iflr_byte - off] & (PCI_EXP_DEVCTL_BCR_FLR >> 8));
}

static void
pm_write(struct vfu_pci *pci, uint8_t *c, size_t off, const uint8_t *val, size_t count)
{
    uint16_t pmc = pci_get16(c + PCI_PM_PMC);
    uint16_t before = pci_get16(c + PCI_PM_CTRL);
    uint16_t after;
    unsigned state;

    pci_merge_write(pci, off, val, count);
    after = pci_get16(c + PCI_PM_CTRL);
    state = after & PCI_PM_CTRL_STATE_MASK;
    /* PCI PM 1.2: a write of an unsupported state is discarded. */
    if ((state == 1 && !(pmc & PCI_PM_CAP_D1)) || (state == 2 && !(pmc & PCI_PM_CAP_D2))) {
        pci_put16(c + PCI_PM_CTRL, (uint16_t)((after & ~PCI_PM_CTRL_STATE_MASK) |
                                              (before & PCI_PM_CTRL_STATE_MASK)));
    }
}

static void
msi_write(vfu_ctx_t *ctx, uint8_t *c, size_t off, const uint8_t *val, size_t count)
{
    uint16_t before = pci_get16(c + PCI_MSI_FLAGS);
    bool masking = before & PCI_MSI_FLAGS_MASKBIT;
    size_t mask_off = msi_mask_off(before);
    uint32_t mask_before = masking ? pci_get32(c + mask_off) : 0;
    uint16_t after;

    pci_merge_write(&ctx->pci, off, val, count);
    after = pci_get16(c + PCI_MSI_FLAGS);
    /* More vectors than the function asks for: keep the old value. */
    if ((unsigned)((after & PCI_MSI_FLAGS_QSIZE) >> 4) > msi_max_log2(after)) {
        after = (uint16_t)((after & ~PCI_MSI_FLAGS_QSIZE) | (before & PCI_MSI_FLAGS_QSIZE));
        pci_put16(c + PCI_MSI_FLAGS, after);
    }
    if (((after ^ before) & PCI_MSI_FLAGS_ENABLE) ||
        (masking && pci_get32(c + mask_off) != mask_before)) {
        irq_msi_control_changed(ctx);
    }
}

static void
msix_write(vfu_ctx_t *ctx, uint8_t *c, size_t off, const uint8_t *val, size_t count)
{
    uint16_t before = pci_get16(c + PCI_MSIX_FLAGS);

    pci_merge_write(&ctx->pci, off, val, count);
    if ((pci_get16(c + PCI_MSIX_FLAGS) ^ before) &
        (PCI_MSIX_FLAGS_MASKALL | PCI_MSIX_FLAGS_ENABLE)) {
        irq_msix_control_changed(ctx);
    }
}

/*
 * What a function reset (FLR or the client's DEVICE_RESET) does to the state
 * we emulate: the function stops decoding and mastering, and its MSI/MSI-X
 * are disabled with nothing left pending. MSI's vector count and mask bits
 * return to their reset value 0 too (PCI), as QEMU shows them to its guest.
 */
void
pci_function_reset(vfu_ctx_t *ctx)
{
    struct vfu_pci *pci = &ctx->pci;
    bool msi = false, msix = false;
    size_t i;

    pci_put16(pci->cfg + PCI_COMMAND, 0);
    for (i = 0; i < pci->nr_caps; i++) {
        const struct vfu_pci_cap *cap = &pci->caps[i];
        uint8_t *c = pci->cfg + cap->off;

        if (cap->flags & (VFU_CAP_FLAG_CALLBACK | VFU_CAP_FLAG_READONLY)) {
            continue;
        }
        if (cap->id == PCI_CAP_ID_MSI) {
            uint16_t ctrl = pci_get16(c + PCI_MSI_FLAGS);

            pci_put16(c + PCI_MSI_FLAGS, ctrl & ~(PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE));
            if (ctrl & PCI_MSI_FLAGS_MASKBIT) {
                size_t mask = cap->off + msi_mask_off(ctrl);

                /* Only the bits of vectors the function has are mask bits. */
                pci_put32(pci->cfg + mask,
                          pci_get32(pci->cfg + mask) & ~pci_get32(pci->wmask + mask));
            }
            msi = true;
        } else if (cap->id == PCI_CAP_ID_MSIX) {
            pci_put16(c + PCI_MSIX_FLAGS, pci_get16(c + PCI_MSIX_FLAGS) &
                                              ~(PCI_MSIX_FLAGS_MASKALL | PCI_MSIX_FLAGS_ENABLE));
            msix = true;
        }
    }
    irq_reset(ctx);
    if (msi) {
        irq_msi_control_changed(ctx);
    }
    if (msix) {
        irq_msix_control_changed(ctx);
    }
}

int
pci_cap_write(vfu_ctx_t *ctx, struct vfu_pci_cap *cap, size_t off, const uint8_t *val, size_t count)
{
    uint8_t *c = ctx->pci.cfg + cap->off;
    bool flr;
    int ret;

    /*
     * Upstream answers EPERM here; per PCI, writes to read-only bits
     * complete normally and change nothing.
     */
    if (cap->flags & VFU_CAP_FLAG_READONLY) {
        return 0;
    }
    flr = pci_cap_write_starts_flr(ctx, cap, off, val, count);
    if (flr) {
        /* Reset first, so that a refusal leaves config space untouched. */
        ret = ctx_call_reset(ctx, VFU_RESET_PCI_FLR);
        if (ret < 0) {
            return ret;
        }
    }

    if (cap->flags & VFU_CAP_FLAG_EXTENDED) {
        pci_merge_write(&ctx->pci, off, val, count);
    } else if (cap->id == PCI_CAP_ID_PM) {
        pm_write(&ctx->pci, c, off, val, count);
    } else if (cap->id == PCI_CAP_ID_MSI) {
        msi_write(ctx, c, off, val, count);
    } else if (cap->id == PCI_CAP_ID_MSIX) {
        msix_write(ctx, c, off, val, count);
    } else {
        pci_merge_write(&ctx->pci, off, val, count);
    }

    if (flr) {
        pci_function_reset(ctx);
    }
    return 0;
}
