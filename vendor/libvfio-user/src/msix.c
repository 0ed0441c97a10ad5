/*
 * The MSI-X table and PBA, emulated by the library in the BARs the MSI-X
 * capability names. Where they are is read from the capability once, when
 * the device is realized (or the capability added later), not on every BAR
 * access. This file only keeps the table and answers accesses to it; what a
 * mask means for delivery is irq.c's, which region.c tells when a vector
 * was unmasked.
 */
#include <stdlib.h>
#include <string.h>

#include "private.h"

/* Bits a client may change in each byte of a table entry. */
static const uint8_t entry_wmask[PCI_MSIX_ENTRY_SIZE] = {
    0xff,
    0xff,
    0xff,
    0xff, /* message address */
    0xff,
    0xff,
    0xff,
    0xff, /* message upper address */
    0xff,
    0xff,
    0xff,
    0xff, /* message data */
    PCI_MSIX_ENTRY_CTRL_MASKBIT,
    0,
    0,
    0, /* vector control */
};

int
msix_realize(vfu_ctx_t *ctx)
{
    struct vfu_msix *m = &ctx->msix;
    int saved_errno = errno;
    size_t pos = ctx->pci.cfg == NULL ? 0 : vfu_pci_find_capability(ctx, false, PCI_CAP_ID_MSIX);
    struct msixcap cap;
    size_t need;

    errno = saved_errno;
    if (pos == 0 || pos + sizeof(cap) > ctx->pci.cfg_alloc) {
        m->cap = 0;
        return 0;
    }
    memcpy(&cap, ctx->pci.cfg + pos, sizeof(cap));
    /* No capability until its table exists: accesses never pass its end. */
    m->cap = 0;
    m->nr_entries = cap.mxc.ts + 1u;
    m->table_bar = cap.mtab.tbir;
    m->table_start = (uint64_t)cap.mtab.to << 3;
    m->table_end = m->table_start + (uint64_t)m->nr_entries * PCI_MSIX_ENTRY_SIZE;
    m->pba_bar = cap.mpba.pbir;
    m->pba_start = (uint64_t)cap.mpba.pbao << 3;
    /* One bit per vector, in whole qwords. */
    m->pba_end = m->pba_start + VFU_ROUND_UP(m->nr_entries, 64) / 8;

    need = (size_t)m->nr_entries * PCI_MSIX_ENTRY_SIZE;
    if (m->table_len < need) {
        uint8_t *table = realloc(m->table, need);

        if (table == NULL) {
            return -ENOMEM;
        }
        /*
         * Vectors start unmasked, although PCI says masked at reset: QEMU
         * emulates the table itself and never forwards table writes, so a
         * server whose table started masked would never deliver an interrupt
         * under QEMU.
         */
        memset(table + m->table_len, 0, need - m->table_len);
        m->table = table;
        m->table_len = (uint32_t)need;
    }
    m->cap = pos;
    return 0;
}

void
msix_reset(vfu_ctx_t *ctx)
{
    if (ctx->msix.table != NULL) {
        memset(ctx->msix.table, 0, ctx->msix.table_len);
    }
}

void
msix_free(vfu_ctx_t *ctx)
{
    free(ctx->msix.table);
    ctx->msix.table = NULL;
    ctx->msix.table_len = 0;
}

bool
msix_present(const vfu_ctx_t *ctx)
{
    return ctx->msix.cap != 0;
}

uint16_t
msix_message_control(const vfu_ctx_t *ctx)
{
    return ctx->msix.cap == 0 ? 0 : pci_get16(ctx->pci.cfg + ctx->msix.cap + PCI_MSIX_FLAGS);
}

bool
msix_entry_masked(const vfu_ctx_t *ctx, uint32_t v)
{
    size_t ctrl = (size_t)v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL;

    /* Entries never written are still in their unmasked reset state. */
    return v < ctx->msix.nr_entries && ctrl < ctx->msix.table_len &&
           (ctx->msix.table[ctrl] & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

static bool
in_range(uint64_t pos, uint64_t start, uint64_t end)
{
    return pos >= start && pos < end;
}

enum msix_part
msix_part_at(const vfu_ctx_t *ctx, int bar, uint64_t pos, uint64_t *len)
{
    const struct vfu_msix *m = &ctx->msix;
    bool table_here = m->cap != 0 && m->table_bar == bar;
    bool pba_here = m->cap != 0 && m->pba_bar == bar;

    if (table_here && in_range(pos, m->table_start, m->table_end)) {
        *len = VFU_MIN(*len, m->table_end - pos);
        return MSIX_TABLE;
    }
    if (pba_here && in_range(pos, m->pba_start, m->pba_end)) {
        *len = VFU_MIN(*len, m->pba_end - pos);
        return MSIX_PBA;
    }
    /* The device's own bytes, up to where the table or PBA begins. */
    if (table_here && m->table_start > pos) {
        *len = VFU_MIN(*len, m->table_start - pos);
    }
    if (pba_here && m->pba_start > pos) {
        *len = VFU_MIN(*len, m->pba_start - pos);
    }
    return MSIX_NONE;
}

static void
table_access(vfu_ctx_t *ctx, char *buf, size_t count, uint64_t off, bool is_write, bool *unmasked)
{
    uint8_t *table = ctx->msix.table;

    if (!is_write) {
        memcpy(buf, table + off, count);
        return;
    }
    for (size_t i = 0; i < count; i++) {
        size_t pos = off + i;
        uint8_t wmask = entry_wmask[pos % PCI_MSIX_ENTRY_SIZE];
        uint8_t old = table[pos];

        table[pos] = (uint8_t)((old & ~wmask) | ((uint8_t)buf[i] & wmask));
        if (pos % PCI_MSIX_ENTRY_SIZE == PCI_MSIX_ENTRY_VECTOR_CTRL &&
            (old & PCI_MSIX_ENTRY_CTRL_MASKBIT) && !(table[pos] & PCI_MSIX_ENTRY_CTRL_MASKBIT)) {
            *unmasked = true;
        }
    }
}

/* The PBA is read-only: it shows the vectors held back, writes are dropped. */
static void
pba_access(vfu_ctx_t *ctx, char *buf, size_t count, uint64_t off, bool is_write)
{
    const struct vfu_irqs *irqs = &ctx->irqs;
    uint32_t nr = irqs->nr_vectors[VFU_DEV_MSIX_IRQ];

    if (is_write) {
        return;
    }
    for (size_t i = 0; i < count; i++) {
        uint8_t bits = 0;

        for (uint32_t bit = 0; bit < 8; bit++) {
            uint64_t v = (off + i) * 8 + bit;

            if (v < nr && irqs->pending[VFU_DEV_MSIX_IRQ][v]) {
                bits |= (uint8_t)(1u << bit);
            }
        }
        buf[i] = (char)bits;
    }
}

void
msix_access(vfu_ctx_t *ctx, enum msix_part part, char *buf, size_t count, uint64_t pos,
            bool is_write, bool *unmasked)
{
    if (part == MSIX_TABLE) {
        table_access(ctx, buf, count, pos - ctx->msix.table_start, is_write, unmasked);
    } else {
        pba_access(ctx, buf, count, pos - ctx->msix.pba_start, is_write);
    }
}
