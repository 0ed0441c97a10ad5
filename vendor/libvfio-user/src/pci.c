/*
 * PCI config space: allocation, the type-0 standard header, and the routing
 * of client accesses to their owner (header, one capability, the device's
 * callback, or nobody).
 *
 * Writes follow the PCI spec rather than upstream libvfio-user: an access of
 * any size at any offset is split into runs of bytes with one owner; in each
 * run writable bits take the written value, read-only bits keep theirs (the
 * write still succeeds) and write-1-to-clear bits clear. Only an access past
 * the end of config space is an error.
 */
#include <stdlib.h>
#include <string.h>

#include "private.h"

#define CFG_IDX VFU_PCI_DEV_CFG_REGION_IDX

/* Command bits a driver may set; the others are hardwired to 0. */
#define COMMAND_WRITABLE                                                                 \
    (PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INVALIDATE | \
     PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE)

/* Status error bits, cleared by writing 1; the rest of status is read-only. */
#define STATUS_W1C                                                                   \
    (PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT | PCI_STATUS_REC_TARGET_ABORT | \
     PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_SIG_SYSTEM_ERROR | PCI_STATUS_DETECTED_PARITY)

static bool
bar_is_64bit(const struct vfu_region *r)
{
    return (r->flags & VFU_REGION_FLAG_MEM) && (r->flags & VFU_REGION_FLAG_64_BITS);
}

/* Whether BAR i holds the upper dword of a 64-bit pair started by BAR i - 1. */
static bool
bar_is_upper_half(vfu_ctx_t *ctx, int i)
{
    return i % 2 == 1 && bar_is_64bit(&ctx->regions[i - 1]);
}

/*
 * Address bits of BAR i a client may write: those above the BAR's size, so
 * that writing all ones reads back the size. Computed from the region as it
 * is now, so a vfu_setup_region after realize is honoured.
 */
static uint32_t
bar_writable_bits(vfu_ctx_t *ctx, int i)
{
    const struct vfu_region *r = &ctx->regions[i];
    uint64_t addr_bits;

    if (bar_is_upper_half(ctx, i)) {
        /* Upper dword of a 64-bit pair: sized by the lower BAR's region. */
        const struct vfu_region *low = &ctx->regions[i - 1];

        if (low->size == 0) {
            return 0;
        }
        return (uint32_t)(~((uint64_t)low->size - 1) >> 32);
    }
    if (r->size == 0) {
        return 0;
    }
    addr_bits = ~((uint64_t)r->size - 1);
    if (r->flags & VFU_REGION_FLAG_MEM) {
        return (uint32_t)(addr_bits & PCI_BASE_ADDRESS_MEM_MASK);
    }
    return (uint32_t)(addr_bits & PCI_BASE_ADDRESS_IO_MASK);
}

static uint32_t
rom_writable_bits(vfu_ctx_t *ctx)
{
    size_t size = ctx->regions[VFU_PCI_DEV_ROM_REGION_IDX].size;

    if (size == 0) {
        return 0;
    }
    return ((uint32_t) ~((uint64_t)size - 1) & PCI_ROM_ADDRESS_MASK) | PCI_ROM_ADDRESS_ENABLE;
}

/* The header's fixed masks; BARs and ROM are filled in at each write. */
static void
header_init_masks(struct vfu_pci *pci)
{
    memset(pci->wmask, 0, PCI_STD_HEADER_SIZEOF);
    memset(pci->w1cmask, 0, PCI_STD_HEADER_SIZEOF);
    pci_put16(pci->wmask + PCI_COMMAND, COMMAND_WRITABLE);
    pci_put16(pci->w1cmask + PCI_STATUS, STATUS_W1C);
    pci->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    pci->wmask[PCI_LATENCY_TIMER] = 0xff;
    pci->wmask[PCI_INTERRUPT_LINE] = 0xff;
}

/*
 * Makes the config buffer hold `size` accessible bytes, keeping its content.
 * At least 256 bytes are allocated whatever the size, because the public
 * vfu_pci_config_space_t the device writes through is that large.
 */
static int
cfg_resize(struct vfu_pci *pci, size_t size)
{
    size_t alloc = VFU_MAX(size, (size_t)PCI_CFG_SPACE_SIZE);
    uint8_t *cfg, *wmask, *w1cmask;
    size_t i;

    for (i = 0; i < pci->nr_caps; i++) {
        if (pci->caps[i].off + pci->caps[i].size > size) {
            return -EINVAL;
        }
    }
    for (i = 0; i < pci->nr_ext_caps; i++) {
        if (pci->ext_caps[i].off + pci->ext_caps[i].size > size) {
            return -EINVAL;
        }
    }
    if (pci->cfg != NULL && alloc == pci->cfg_alloc) {
        pci->cfg_size = size;
        return 0;
    }

    cfg = calloc(1, alloc);
    wmask = calloc(1, alloc);
    w1cmask = calloc(1, alloc);
    if (cfg == NULL || wmask == NULL || w1cmask == NULL) {
        free(cfg);
        free(wmask);
        free(w1cmask);
        return -ENOMEM;
    }
    if (pci->cfg != NULL) {
        size_t keep = VFU_MIN(alloc, pci->cfg_alloc);

        memcpy(cfg, pci->cfg, keep);
        memcpy(wmask, pci->wmask, keep);
        memcpy(w1cmask, pci->w1cmask, keep);
        free(pci->cfg);
        free(pci->wmask);
        free(pci->w1cmask);
    }
    pci->cfg = cfg;
    pci->wmask = wmask;
    pci->w1cmask = w1cmask;
    if (pci->cfg_alloc == 0) {
        header_init_masks(pci);
    }
    pci->cfg_alloc = alloc;
    pci->cfg_size = size;
    return 0;
}

VFU_EXPORT int
vfu_pci_init(vfu_ctx_t *vfu_ctx, vfu_pci_type_t pci_type, int hdr_type, int revision)
{
    size_t size;
    int ret;

    /* Upstream ignores revision too; the device sets hdr.rid itself. */
    (void)revision;

    if (vfu_ctx == NULL) {
        errno = EINVAL;
        return -1;
    }
    switch ((int)pci_type) {
    case VFU_PCI_TYPE_CONVENTIONAL:
    case VFU_PCI_TYPE_PCI_X_1:
        size = PCI_CFG_SPACE_SIZE;
        break;
    case VFU_PCI_TYPE_PCI_X_2:
    case VFU_PCI_TYPE_EXPRESS:
        size = PCI_CFG_SPACE_EXP_SIZE;
        break;
    default:
        errno = EINVAL;
        return -1;
    }
    if (hdr_type != PCI_HEADER_TYPE_NORMAL) {
        errno = EINVAL;
        return -1;
    }
    if (vfu_ctx->pci.cfg != NULL) {
        errno = EEXIST;
        return -1;
    }
    ret = cfg_resize(&vfu_ctx->pci, size);
    if (ret < 0) {
        errno = -ret;
        return -1;
    }
    vfu_ctx->pci.type = pci_type;
    vfu_ctx->regions[CFG_IDX].size = size;
    vfu_ctx->regions[CFG_IDX].flags = VFU_REGION_FLAG_RW;
    return 0;
}

VFU_EXPORT void
vfu_pci_set_id(vfu_ctx_t *vfu_ctx, uint16_t vid, uint16_t did, uint16_t ssvid, uint16_t ssid)
{
    uint8_t *cfg = vfu_ctx->pci.cfg;

    if (cfg == NULL) {
        vfu_err(vfu_ctx, "vfu_pci_set_id: no config space yet");
        return;
    }
    pci_put16(cfg + PCI_VENDOR_ID, vid);
    pci_put16(cfg + PCI_DEVICE_ID, did);
    pci_put16(cfg + PCI_SUBSYSTEM_VENDOR_ID, ssvid);
    pci_put16(cfg + PCI_SUBSYSTEM_ID, ssid);
}

VFU_EXPORT void
vfu_pci_set_class(vfu_ctx_t *vfu_ctx, uint8_t base, uint8_t sub, uint8_t pi)
{
    uint8_t *cfg = vfu_ctx->pci.cfg;

    if (cfg == NULL) {
        vfu_err(vfu_ctx, "vfu_pci_set_class: no config space yet");
        return;
    }
    cfg[PCI_CLASS_PROG] = pi;
    cfg[PCI_CLASS_DEVICE] = sub;
    cfg[PCI_CLASS_DEVICE + 1] = base;
}

VFU_EXPORT vfu_pci_config_space_t *
vfu_pci_get_config_space(vfu_ctx_t *vfu_ctx)
{
    return (vfu_pci_config_space_t *)vfu_ctx->pci.cfg;
}

/* Type bits of each implemented BAR, from its region's flags. */
static void
bar_set_types(vfu_ctx_t *ctx)
{
    int i;

    for (i = 0; i < PCI_BARS_NR; i++) {
        const struct vfu_region *r = &ctx->regions[i];
        uint8_t *bar = ctx->pci.cfg + PCI_BASE_ADDRESS_0 + 4 * i;
        uint32_t val = pci_get32(bar);

        /*
         * Upstream also marks unimplemented BARs (and the upper half of a
         * 64-bit pair) as I/O; per PCI an unimplemented BAR reads as 0 and
         * an upper half holds only address bits, so we leave them alone.
         */
        if (r->size == 0 || bar_is_upper_half(ctx, i)) {
            continue;
        }
        if (r->flags & VFU_REGION_FLAG_MEM) {
            val &= (uint32_t)PCI_BASE_ADDRESS_MEM_MASK;
            if (r->flags & VFU_REGION_FLAG_64_BITS) {
                val |= PCI_BASE_ADDRESS_MEM_TYPE_64;
            }
            if (r->flags & VFU_REGION_FLAG_PREFETCH) {
                val |= PCI_BASE_ADDRESS_MEM_PREFETCH;
            }
        } else {
            val = (val & (uint32_t)PCI_BASE_ADDRESS_IO_MASK) | PCI_BASE_ADDRESS_SPACE_IO;
        }
        pci_put32(bar, val);
    }
}

int
pci_realize(vfu_ctx_t *ctx)
{
    struct vfu_region *r = &ctx->regions[CFG_IDX];
    struct vfu_pci *pci = &ctx->pci;
    int ret;

    if (r->size == 0) {
        r->size = PCI_CFG_SPACE_SIZE;
        r->flags = VFU_REGION_FLAG_RW;
    }
    /* The region may have been resized since vfu_pci_init. */
    ret = cfg_resize(pci, r->size);
    if (ret < 0) {
        return ret;
    }
    bar_set_types(ctx);
    if (ctx->irqs.count[VFU_DEV_INTX_IRQ] != 0) {
        pci->cfg[PCI_INTERRUPT_PIN] = 1; /* INTA# */
    }
    if (pci->nr_caps > 0) {
        pci->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
    }
    return 0;
}

void
pci_free(vfu_ctx_t *ctx)
{
    free(ctx->pci.cfg);
    free(ctx->pci.wmask);
    free(ctx->pci.w1cmask);
    memset(&ctx->pci, 0, sizeof(ctx->pci));
}

void
pci_merge_write(struct vfu_pci *pci, size_t off, const uint8_t *val, size_t count)
{
    size_t i;

    for (i = 0; i < count; i++) {
        uint8_t wm = pci->wmask[off + i];
        uint8_t merged = (uint8_t)((pci->cfg[off + i] & ~wm) | (val[i] & wm));

        pci->cfg[off + i] = (uint8_t)(merged & ~(val[i] & pci->w1cmask[off + i]));
    }
}

/* Type bits of BAR i, which keep the value realize gave them. */
static uint32_t
bar_type_bits(vfu_ctx_t *ctx, int i)
{
    const struct vfu_region *r = &ctx->regions[i];

    if (r->size == 0 || bar_is_upper_half(ctx, i)) {
        return 0;
    }
    return (r->flags & VFU_REGION_FLAG_MEM) ? (uint32_t)~PCI_BASE_ADDRESS_MEM_MASK
                                            : (uint32_t)~PCI_BASE_ADDRESS_IO_MASK;
}

/*
 * Sets the masks of an address register (BAR or ROM) for the region as it is
 * now. Address bits that are not writable are hardwired to 0, so a region
 * that grew after realize must not keep stale low address bits: they are
 * cleared when the register is written.
 */
static void
address_reg_prepare(struct vfu_pci *pci, size_t reg, uint32_t writable, uint32_t fixed, size_t off,
                    size_t count)
{
    pci_put32(pci->wmask + reg, writable);
    if (off < reg + 4 && reg < off + count) {
        pci_put32(pci->cfg + reg, pci_get32(pci->cfg + reg) & (writable | fixed));
    }
}

static void
header_write(vfu_ctx_t *ctx, size_t off, const uint8_t *val, size_t count)
{
    struct vfu_pci *pci = &ctx->pci;
    uint16_t command = pci_get16(pci->cfg + PCI_COMMAND);
    int i;

    for (i = 0; i < PCI_BARS_NR; i++) {
        address_reg_prepare(pci, PCI_BASE_ADDRESS_0 + 4 * i, bar_writable_bits(ctx, i),
                            bar_type_bits(ctx, i), off, count);
    }
    address_reg_prepare(pci, PCI_ROM_ADDRESS, rom_writable_bits(ctx), 0, off, count);
    pci_merge_write(pci, off, val, count);
    if ((command & PCI_COMMAND_INTX_DISABLE) &&
        !(pci_get16(pci->cfg + PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE)) {
        irq_intx_control_changed(ctx);
    }
}

/* One run of bytes with a single owner; 0 or -errno. */
static int
run_access(vfu_ctx_t *ctx, struct vfu_pci_cap *cap, bool header, char *buf, size_t count,
           size_t off, bool is_write)
{
    struct vfu_pci *pci = &ctx->pci;
    bool to_callback;
    ssize_t ret;

    if (header) {
        to_callback = false;
    } else if (cap != NULL) {
        to_callback = cap->flags & VFU_CAP_FLAG_CALLBACK;
    } else {
        /* Bytes nobody emulates belong to the device if it has a callback. */
        to_callback = ctx->regions[CFG_IDX].cb != NULL;
    }

    if (to_callback) {
        ret = ctx_call_region_cb(ctx, CFG_IDX, buf, count, off, is_write);
        return ret < 0 ? (int)ret : 0;
    }
    if (!is_write) {
        memcpy(buf, pci->cfg + off, count);
        return 0;
    }
    if (header) {
        header_write(ctx, off, (const uint8_t *)buf, count);
        return 0;
    }
    if (cap != NULL) {
        return pci_cap_write(ctx, cap, off, (const uint8_t *)buf, count);
    }
    /* Unowned and no callback: reads as stored, writes are ignored. */
    return 0;
}

ssize_t
pci_config_access(vfu_ctx_t *ctx, char *buf, size_t count, uint64_t offset, bool is_write)
{
    struct vfu_pci *pci = &ctx->pci;
    size_t done = 0;

    if (count == 0) {
        return 0;
    }
    if (pci->cfg == NULL || offset > pci->cfg_size || count > pci->cfg_size - offset) {
        return -EINVAL;
    }
    if (ctx->regions[CFG_IDX].flags & VFU_REGION_FLAG_ALWAYS_CB) {
        return ctx_call_region_cb(ctx, CFG_IDX, buf, count, offset, is_write);
    }

    while (done < count) {
        size_t off = offset + done;
        size_t left = count - done;
        struct vfu_pci_cap *cap = NULL;
        bool header = off < PCI_STD_HEADER_SIZEOF;
        size_t len;
        int ret;

        if (header) {
            len = VFU_MIN(left, PCI_STD_HEADER_SIZEOF - off);
        } else if ((cap = pci_cap_owning(ctx, off)) != NULL) {
            len = VFU_MIN(left, cap->off + cap->size - off);
        } else {
            len = VFU_MIN(left, pci_cap_next_start(ctx, off) - off);
        }
        ret = run_access(ctx, cap, header, buf + done, len, off, is_write);
        if (ret < 0) {
            return ret;
        }
        done += len;
    }
    return (ssize_t)count;
}

bool
pci_config_write_needs_quiesce(vfu_ctx_t *ctx, uint64_t offset, const void *data, size_t count)
{
    struct vfu_pci *pci = &ctx->pci;
    size_t i;

    if (pci->cfg == NULL || count == 0 || offset > pci->cfg_size ||
        count > pci->cfg_size - offset ||
        (ctx->regions[CFG_IDX].flags & VFU_REGION_FLAG_ALWAYS_CB)) {
        return false;
    }
    for (i = 0; i < pci->nr_caps; i++) {
        if (pci_cap_write_starts_flr(ctx, &pci->caps[i], offset, data, count)) {
            return true;
        }
    }
    return false;
}
