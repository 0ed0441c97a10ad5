/*
 * Interrupts: the eventfds a client installs per vector, masking (by the
 * client's SET_IRQS and by the function's own MSI/MSI-X state) and pending
 * interrupts held back while masked. The MSI-X table and PBA are msix.c's,
 * the GET_IRQ_INFO and SET_IRQS messages irq_messages.c's.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "private.h"

/* Most vectors a type may have: the size of the largest MSI-X table. */
#define IRQ_MAX_VECTORS 2048

/* The MSI-X capability's control bits. */
struct msix_control {
    bool enabled;
    bool function_masked;
};

/* The MSI capability's per-vector mask and pending registers, if any. */
struct msi_layout {
    bool per_vector_mask;
    size_t mask_off; /* config-space offsets */
    size_t pending_off;
};

/* The function's own masking state, read once per operation. */
struct cfg_masks {
    bool has_msix;
    struct msix_control msix;
    bool has_msi;
    struct msi_layout msi;
};

static bool
is_irq_type(int type)
{
    return type >= 0 && type < VFU_DEV_NUM_IRQS;
}

/* Offset of a standard capability, or 0; errno is left as it was. */
static size_t
find_cap(vfu_ctx_t *ctx, int id, size_t size)
{
    int saved_errno = errno;
    size_t pos;

    if (ctx->pci.cfg == NULL) {
        return 0;
    }
    pos = vfu_pci_find_capability(ctx, false, id);
    errno = saved_errno;
    if (pos == 0 || pos + size > ctx->pci.cfg_alloc) {
        return 0;
    }
    return pos;
}

static bool
read_msix_control(vfu_ctx_t *ctx, struct msix_control *c)
{
    uint16_t control = msix_message_control(ctx);

    c->enabled = (control & PCI_MSIX_FLAGS_ENABLE) != 0;
    c->function_masked = (control & PCI_MSIX_FLAGS_MASKALL) != 0;
    return msix_present(ctx);
}

static bool
read_msi_layout(vfu_ctx_t *ctx, struct msi_layout *l)
{
    size_t pos = find_cap(ctx, PCI_CAP_ID_MSI, VFIO_USER_PCI_CAP_MSI_SIZEOF);
    struct mc mc;

    if (pos == 0) {
        return false;
    }
    memcpy(&mc, ctx->pci.cfg + pos + offsetof(struct msicap, mc), sizeof(mc));
    l->per_vector_mask = mc.pvm;
    /* Without 64-bit addressing the registers sit one dword lower (PCI). */
    if (mc.c64) {
        l->mask_off = pos + offsetof(struct msicap, mmask);
        l->pending_off = pos + offsetof(struct msicap, mpend);
    } else {
        l->mask_off = pos + PCI_MSI_MASK_32;
        l->pending_off = pos + PCI_MSI_PENDING_32;
    }
    return true;
}

static void
read_cfg_masks(vfu_ctx_t *ctx, int type, struct cfg_masks *m)
{
    memset(m, 0, sizeof(*m));
    if (type == VFU_DEV_MSIX_IRQ) {
        m->has_msix = read_msix_control(ctx, &m->msix);
    } else if (type == VFU_DEV_MSI_IRQ) {
        m->has_msi = read_msi_layout(ctx, &m->msi);
    }
}

/* Command bit 10: the driver forbids the function to assert INTx. */
static bool
intx_disabled(vfu_ctx_t *ctx)
{
    return ctx->pci.cfg != NULL &&
           (pci_get16(ctx->pci.cfg + PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE);
}

/*
 * Status bit 3 (Interrupt Status) shows whether the function asserts INTx,
 * whatever command bit 10 says: drivers that share a line (uio_pci_generic)
 * read it to tell whether an interrupt is theirs.
 */
static void
set_intx_status(vfu_ctx_t *ctx, bool asserted)
{
    if (ctx->pci.cfg == NULL) {
        return;
    }
    if (asserted) {
        ctx->pci.cfg[PCI_STATUS] |= PCI_STATUS_INTERRUPT;
    } else {
        ctx->pci.cfg[PCI_STATUS] &= (uint8_t)~PCI_STATUS_INTERRUPT;
    }
}

static bool
vector_masked(vfu_ctx_t *ctx, const struct cfg_masks *m, int type, uint32_t v)
{
    if (ctx->irqs.masked[type][v]) {
        return true;
    }
    if (type == VFU_DEV_INTX_IRQ) {
        return intx_disabled(ctx);
    }
    if (m->has_msix) {
        return !m->msix.enabled || m->msix.function_masked || msix_entry_masked(ctx, v);
    }
    if (m->has_msi && m->msi.per_vector_mask && v < 32) {
        return (pci_get32(ctx->pci.cfg + m->msi.mask_off) >> v) & 1;
    }
    return false;
}

/* Records or clears a held-back interrupt, mirrored in MSI's pending bits. */
static void
set_pending(vfu_ctx_t *ctx, const struct cfg_masks *m, int type, uint32_t v, bool pending)
{
    ctx->irqs.pending[type][v] = pending;
    if (m->has_msi && m->msi.per_vector_mask && v < 32) {
        uint32_t bits = pci_get32(ctx->pci.cfg + m->msi.pending_off);

        bits = pending ? bits | (1u << v) : bits & ~(1u << v);
        pci_put32(ctx->pci.cfg + m->msi.pending_off, bits);
    }
}

static int
signal_vector(vfu_ctx_t *ctx, int type, uint32_t v)
{
    int fd = ctx->irqs.efds[type][v];
    uint64_t one = 1;
    ssize_t ret;

    if (fd < 0) {
        return -ENOENT;
    }
    ret = write(fd, &one, sizeof(one));
    if (ret < 0) {
        return -errno;
    }
    return ret == sizeof(one) ? 0 : -EIO;
}

/* Raises vector v: signalled now, or held pending while masked. */
static int
trigger_vector(vfu_ctx_t *ctx, const struct cfg_masks *m, int type, uint32_t v)
{
    if (type == VFU_DEV_INTX_IRQ) {
        set_intx_status(ctx, true);
    }
    if (vector_masked(ctx, m, type, v)) {
        set_pending(ctx, m, type, v, true);
        return 0;
    }
    return signal_vector(ctx, type, v);
}

void
irq_release_pending(vfu_ctx_t *ctx, int type, uint32_t start, uint32_t count)
{
    uint32_t end = VFU_MIN((uint64_t)start + count, ctx->irqs.nr_vectors[type]);
    struct cfg_masks m;

    read_cfg_masks(ctx, type, &m);
    for (uint32_t v = start; v < end; v++) {
        if (ctx->irqs.pending[type][v] && ctx->irqs.efds[type][v] >= 0 &&
            !vector_masked(ctx, &m, type, v) && signal_vector(ctx, type, v) == 0) {
            set_pending(ctx, &m, type, v, false);
        }
    }
}

void
irq_close_vectors(vfu_ctx_t *ctx, int type, uint32_t start, uint32_t count)
{
    uint32_t end = VFU_MIN((uint64_t)start + count, ctx->irqs.nr_vectors[type]);

    for (uint32_t v = start; v < end; v++) {
        if (ctx->irqs.efds[type][v] >= 0) {
            close(ctx->irqs.efds[type][v]);
            ctx->irqs.efds[type][v] = -1;
        }
    }
}

/* Gives a type n vectors, keeping the state of those that remain. */
static int
resize_vectors(vfu_ctx_t *ctx, int type, uint32_t n)
{
    struct vfu_irqs *irqs = &ctx->irqs;
    uint32_t old = irqs->nr_vectors[type];
    uint32_t keep = VFU_MIN(old, n);
    int *efds = NULL;
    uint8_t *masked = NULL;
    uint8_t *pending = NULL;

    if (n == old) {
        return 0;
    }
    if (n > 0) {
        efds = malloc(n * sizeof(*efds));
        masked = calloc(n, 1);
        pending = calloc(n, 1);
        if (efds == NULL || masked == NULL || pending == NULL) {
            free(efds);
            free(masked);
            free(pending);
            return -ENOMEM;
        }
        for (uint32_t v = 0; v < n; v++) {
            efds[v] = v < keep ? irqs->efds[type][v] : -1;
        }
        if (keep > 0) {
            memcpy(masked, irqs->masked[type], keep);
            memcpy(pending, irqs->pending[type], keep);
        }
    }
    irq_close_vectors(ctx, type, keep, old - keep);
    free(irqs->efds[type]);
    free(irqs->masked[type]);
    free(irqs->pending[type]);
    irqs->efds[type] = efds;
    irqs->masked[type] = masked;
    irqs->pending[type] = pending;
    irqs->nr_vectors[type] = n;
    return 0;
}

VFU_EXPORT int
vfu_setup_device_nr_irqs(vfu_ctx_t *vfu_ctx, enum vfu_dev_irq_type type, uint32_t count)
{
    int ret;

    if (vfu_ctx == NULL || !is_irq_type((int)type) || count > IRQ_MAX_VECTORS) {
        errno = EINVAL;
        return -1;
    }
    ret = resize_vectors(vfu_ctx, (int)type, count);
    if (ret < 0) {
        errno = -ret;
        return -1;
    }
    vfu_ctx->irqs.count[type] = count;
    return 0;
}

VFU_EXPORT int
vfu_setup_irq_state_callback(vfu_ctx_t *vfu_ctx, enum vfu_dev_irq_type type,
                             vfu_dev_irq_state_cb_t *cb)
{
    if (vfu_ctx == NULL || !is_irq_type((int)type)) {
        errno = EINVAL;
        return -1;
    }
    vfu_ctx->irqs.state_cb[type] = cb;
    return 0;
}

/*
 * The interrupt mode the function is in is what its config space enables,
 * as on hardware: a client may already have removed the eventfds of the mode
 * it left. Only a device without MSI and MSI-X capabilities, whose client
 * merely installs eventfds, follows the type installed last.
 */
int
irq_mode(vfu_ctx_t *ctx)
{
    const uint8_t *cfg = ctx->pci.cfg;
    /* Found once at realize; only the MSI capability is walked to here. */
    size_t msix =
        ctx->msix.cap != 0 ? ctx->msix.cap : find_cap(ctx, PCI_CAP_ID_MSIX, sizeof(struct msixcap));
    size_t msi;

    if (msix != 0 && (pci_get16(cfg + msix + PCI_MSIX_FLAGS) & PCI_MSIX_FLAGS_ENABLE)) {
        return VFU_DEV_MSIX_IRQ;
    }
    msi = find_cap(ctx, PCI_CAP_ID_MSI, VFIO_USER_PCI_CAP_MSI_SIZEOF);
    if (msix == 0 && msi == 0) {
        return (int)ctx->irqs.active;
    }
    if (msi != 0 && (pci_get16(cfg + msi + PCI_MSI_FLAGS) & PCI_MSI_FLAGS_ENABLE)) {
        return VFU_DEV_MSI_IRQ;
    }
    return VFU_DEV_INTX_IRQ;
}

VFU_EXPORT int
vfu_irq_trigger(vfu_ctx_t *vfu_ctx, uint32_t subindex)
{
    if (vfu_ctx == NULL) {
        errno = EINVAL;
        return -1;
    }
    return irq_trigger_in_mode(vfu_ctx, irq_mode(vfu_ctx), subindex);
}

int
irq_trigger_in_mode(vfu_ctx_t *ctx, int type, uint32_t subindex)
{
    struct cfg_masks m;
    int ret;

    if (subindex >= ctx->irqs.count[type] || subindex >= ctx->irqs.nr_vectors[type]) {
        /*
         * As upstream, whose vectors share one table as large as the
         * largest count: a vector the device has in some type is ENOENT
         * (no eventfd for it in the mode the function is in), beyond
         * every type's count EINVAL.
         */
        bool exists = false;

        for (int t = 0; t < VFU_DEV_NUM_IRQS; t++) {
            exists |= subindex < ctx->irqs.count[t];
        }
        vfu_err(ctx, "IRQ type %d has no vector %u", type, subindex);
        errno = exists ? ENOENT : EINVAL;
        return -1;
    }
    read_cfg_masks(ctx, type, &m);
    ret = trigger_vector(ctx, &m, type, subindex);
    if (ret < 0) {
        errno = -ret;
        return -1;
    }
    return 0;
}

int
irq_signal_event(vfu_ctx_t *ctx, int type)
{
    /* ERR and REQ have one vector, no mask and no config-space mode. */
    if (ctx->irqs.count[type] == 0 || ctx->irqs.nr_vectors[type] == 0) {
        return -EINVAL;
    }
    return signal_vector(ctx, type, 0);
}

int
irq_vector_state(vfu_ctx_t *ctx, int type, uint32_t v, bool *masked, bool *pending)
{
    struct cfg_masks m;

    if (!is_irq_type(type) || v >= ctx->irqs.count[type] || v >= ctx->irqs.nr_vectors[type]) {
        return -EINVAL;
    }
    read_cfg_masks(ctx, type, &m);
    /* The vector's own bits only: a disabled MSI-X is not a mask of it. */
    m.msix.enabled = true;
    *masked = vector_masked(ctx, &m, type, v);
    *pending = ctx->irqs.pending[type][v] != 0;
    return 0;
}

int
irq_realize(vfu_ctx_t *ctx)
{
    for (int type = 0; type < VFU_DEV_NUM_IRQS; type++) {
        int ret = resize_vectors(ctx, type, ctx->irqs.count[type]);

        if (ret < 0) {
            return ret;
        }
    }
    return msix_realize(ctx);
}

void
irq_disconnect(vfu_ctx_t *ctx)
{
    for (int type = 0; type < VFU_DEV_NUM_IRQS; type++) {
        irq_close_vectors(ctx, type, 0, ctx->irqs.nr_vectors[type]);
    }
}

void
irq_reset(vfu_ctx_t *ctx)
{
    for (int type = 0; type < VFU_DEV_NUM_IRQS; type++) {
        struct cfg_masks m;

        read_cfg_masks(ctx, type, &m);
        for (uint32_t v = 0; v < ctx->irqs.nr_vectors[type]; v++) {
            set_pending(ctx, &m, type, v, false);
        }
    }
    msix_reset(ctx);
    set_intx_status(ctx, false);
}

void
irq_free(vfu_ctx_t *ctx)
{
    for (int type = 0; type < VFU_DEV_NUM_IRQS; type++) {
        resize_vectors(ctx, type, 0);
    }
    msix_free(ctx);
}

void
irq_msix_control_changed(vfu_ctx_t *ctx)
{
    irq_release_pending(ctx, VFU_DEV_MSIX_IRQ, 0, ctx->irqs.nr_vectors[VFU_DEV_MSIX_IRQ]);
}

void
irq_msi_control_changed(vfu_ctx_t *ctx)
{
    irq_release_pending(ctx, VFU_DEV_MSI_IRQ, 0, ctx->irqs.nr_vectors[VFU_DEV_MSI_IRQ]);
}

void
irq_intx_control_changed(vfu_ctx_t *ctx)
{
    irq_release_pending(ctx, VFU_DEV_INTX_IRQ, 0, ctx->irqs.nr_vectors[VFU_DEV_INTX_IRQ]);
}

/*
 * The assertion signalled is over, and Interrupt Status clears, unless an
 * interrupt raised meanwhile was held back, which this unmask delivers (or
 * keeps holding while command bit 10 forbids it).
 */
void
irq_intx_unmasked(vfu_ctx_t *ctx)
{
    bool held =
        ctx->irqs.nr_vectors[VFU_DEV_INTX_IRQ] > 0 && ctx->irqs.pending[VFU_DEV_INTX_IRQ][0];

    irq_release_pending(ctx, VFU_DEV_INTX_IRQ, 0, 1);
    if (!held) {
        set_intx_status(ctx, false);
    }
}

int
irq_trigger_selected(vfu_ctx_t *ctx, int type, uint32_t start, uint32_t count, const uint8_t *bools)
{
    struct cfg_masks m;

    read_cfg_masks(ctx, type, &m);
    for (uint32_t i = 0; i < count; i++) {
        int ret;

        if (bools != NULL && bools[i] == 0) {
            continue;
        }
        ret = trigger_vector(ctx, &m, type, start + i);
        /* Vectors without an eventfd have nowhere to go, as in VFIO. */
        if (ret < 0 && ret != -ENOENT) {
            return ret;
        }
    }
    return 0;
}
