/*
 * A client-side model of PCI config space for the config tests, written from
 * the PCI specs independently of the library: which bits of each register a
 * write may change, which it clears by writing 1, plus the two registers
 * whose writes are discarded when out of range (PM power state, MSI Multiple
 * Message Enable). The tests write patterns through the real socket and
 * compare what the server then holds with what the model predicts.
 *
 * Header only, used by test_pci_config.c and test_pci_caps.c (which include
 * check.h first).
 */
#ifndef VFU_TEST_PCI_MODEL_H
#define VFU_TEST_PCI_MODEL_H

#include <stdint.h>
#include <string.h>

#include <linux/pci_regs.h>

#include "client.h"

#define MODEL_MAX_FIXUPS 32

enum model_fixup { MODEL_PM, MODEL_MSI };

struct cfg_model {
    uint8_t cfg[PCI_CFG_SPACE_EXP_SIZE];
    uint8_t rw[PCI_CFG_SPACE_EXP_SIZE];
    uint8_t w1c[PCI_CFG_SPACE_EXP_SIZE];
    size_t size;
    struct {
        enum model_fixup kind;
        size_t off;
    } fixups[MODEL_MAX_FIXUPS];
    size_t nr_fixups;
};

static inline uint16_t
model_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t
model_get32(const uint8_t *p)
{
    return (uint32_t)model_get16(p) | (uint32_t)model_get16(p + 2) << 16;
}

/* Starts a model of `size` bytes with everything read-only. */
static inline void
model_init(struct cfg_model *m, size_t size)
{
    memset(m, 0, sizeof(*m));
    m->size = size;
}

/* Declares a register of `width` bytes at off: its RW and RW1C bits. */
static inline void
model_reg(struct cfg_model *m, size_t off, unsigned width, uint32_t rw, uint32_t w1c)
{
    unsigned i;

    for (i = 0; i < width; i++) {
        m->rw[off + i] = (uint8_t)(rw >> (8 * i));
        m->w1c[off + i] = (uint8_t)(w1c >> (8 * i));
    }
}

static inline void
model_rw_bytes(struct cfg_model *m, size_t off, size_t len)
{
    memset(m->rw + off, 0xff, len);
}

/*
 * Type-0 header (PCI 3.0 6.2): command and status bits, cache line size,
 * latency timer, interrupt line; BAR and ROM address bits as given.
 */
static inline void
model_header(struct cfg_model *m, const uint32_t bar_rw[6], uint32_t rom_rw)
{
    unsigned i;

    model_reg(m, PCI_COMMAND, 2, 0x0557, 0);
    model_reg(m, PCI_STATUS, 2, 0, 0xf900);
    model_reg(m, PCI_CACHE_LINE_SIZE, 1, 0xff, 0);
    model_reg(m, PCI_LATENCY_TIMER, 1, 0xff, 0);
    model_reg(m, PCI_INTERRUPT_LINE, 1, 0xff, 0);
    for (i = 0; i < 6; i++) {
        model_reg(m, PCI_BASE_ADDRESS_0 + 4 * i, 4, bar_rw[i], 0);
    }
    model_reg(m, PCI_ROM_ADDRESS, 4, rom_rw, 0);
}

/* PCI PM 1.2: PowerState RW (D1/D2 only if supported), PME_En, PME_Status. */
static inline void
model_pm(struct cfg_model *m, size_t cap)
{
    model_reg(m, cap + PCI_PM_CTRL, 2, PCI_PM_CTRL_STATE_MASK | PCI_PM_CTRL_PME_ENABLE,
              PCI_PM_CTRL_PME_STATUS);
    m->fixups[m->nr_fixups].kind = MODEL_PM;
    m->fixups[m->nr_fixups++].off = cap;
}

/* PCI 3.0 6.8.1: layout depends on the 64-bit and per-vector-mask bits. */
static inline void
model_msi(struct cfg_model *m, size_t cap)
{
    uint16_t ctrl = model_get16(m->cfg + cap + PCI_MSI_FLAGS);
    int is64 = !!(ctrl & PCI_MSI_FLAGS_64BIT);
    unsigned mmc = (ctrl >> 1) & 7;
    unsigned vectors = 1u << (mmc > 5 ? 5 : mmc);

    model_reg(m, cap + PCI_MSI_FLAGS, 2, 0x0071, 0);
    model_reg(m, cap + 4, 4, 0xfffffffc, 0);
    if (is64) {
        model_reg(m, cap + 8, 4, 0xffffffff, 0);
    }
    model_reg(m, cap + (is64 ? 0xc : 0x8), 2, 0xffff, 0);
    if (ctrl & PCI_MSI_FLAGS_MASKBIT) {
        model_reg(m, cap + (is64 ? 0x10 : 0xc), 4, vectors == 32 ? 0xffffffff : (1u << vectors) - 1,
                  0);
    }
    m->fixups[m->nr_fixups].kind = MODEL_MSI;
    m->fixups[m->nr_fixups++].off = cap;
}

/* MSI-X: only Function Mask and Enable. */
static inline void
model_msix(struct cfg_model *m, size_t cap)
{
    model_reg(m, cap + 2, 2, 0xc000, 0);
}

/* PCIe capability of an endpoint (Initiate FLR never reads back as 1). */
static inline void
model_exp(struct cfg_model *m, size_t cap)
{
    model_reg(m, cap + 0x08, 2, 0x7fff, 0); /* Device Control */
    model_reg(m, cap + 0x0a, 2, 0, 0x000f); /* Device Status */
    model_reg(m, cap + 0x10, 2, 0x03cb, 0); /* Link Control */
    model_reg(m, cap + 0x12, 2, 0, 0xc000); /* Link Status */
    model_reg(m, cap + 0x28, 2, 0xffff, 0); /* Device Control 2 */
    model_reg(m, cap + 0x30, 2, 0xffff, 0); /* Link Control 2 */
}

/* What a write of count bytes of val at off does, per the model. */
static inline void
model_write(struct cfg_model *m, size_t off, const uint8_t *val, size_t count)
{
    uint16_t before[MODEL_MAX_FIXUPS];
    size_t i;

    for (i = 0; i < m->nr_fixups; i++) {
        size_t reg =
            m->fixups[i].off + (m->fixups[i].kind == MODEL_PM ? PCI_PM_CTRL : PCI_MSI_FLAGS);
        before[i] = model_get16(m->cfg + reg);
    }
    for (i = 0; i < count; i++) {
        uint8_t *b = &m->cfg[off + i];

        *b = (uint8_t)((*b & ~m->rw[off + i]) | (val[i] & m->rw[off + i]));
        *b = (uint8_t)(*b & ~(val[i] & m->w1c[off + i]));
    }
    for (i = 0; i < m->nr_fixups; i++) {
        size_t cap = m->fixups[i].off;

        if (m->fixups[i].kind == MODEL_PM) {
            uint16_t pmc = model_get16(m->cfg + cap + PCI_PM_PMC);
            uint8_t *ctl = m->cfg + cap + PCI_PM_CTRL;
            unsigned state = ctl[0] & 3;

            if ((state == 1 && !(pmc & PCI_PM_CAP_D1)) || (state == 2 && !(pmc & PCI_PM_CAP_D2))) {
                ctl[0] = (uint8_t)((ctl[0] & ~3) | (before[i] & 3));
            }
        } else {
            uint8_t *ctl = m->cfg + cap + PCI_MSI_FLAGS;
            unsigned mmc = (ctl[0] >> 1) & 7;
            unsigned mme = (ctl[0] >> 4) & 7;

            if (mme > (mmc > 5 ? 5 : mmc)) {
                ctl[0] = (uint8_t)((ctl[0] & ~0x70) | (before[i] & 0x70));
            }
        }
    }
}

/* Loads the model's bytes from the server. */
static inline int
model_sync(struct vfu_test_client *c, struct cfg_model *m)
{
    return vfu_test_cfg_read(c, 0, (uint32_t)m->size, m->cfg);
}

/*
 * Compares the server's bytes [lo, hi) with the model; on a mismatch reports
 * it and takes the server's bytes so that one bug is reported once.
 */
static inline int
model_check(struct vfu_test_client *c, struct cfg_model *m, size_t lo, size_t hi, const char *what,
            size_t woff, size_t wlen, const uint8_t *wval)
{
    uint8_t got[PCI_CFG_SPACE_EXP_SIZE];
    size_t i;
    int ret;

    if (hi > m->size) {
        hi = m->size;
    }
    ret = vfu_test_cfg_read(c, lo, (uint32_t)(hi - lo), got);
    if (!CHECK_EQ(ret, 0)) {
        return -1;
    }
    for (i = lo; i < hi; i++) {
        if (got[i - lo] != m->cfg[i]) {
            FAIL("%s: after writing %zu byte(s) %02x %02x %02x %02x at %#zx, "
                 "byte %#zx is %#04x, expected %#04x",
                 what, wlen, wval[0], wlen > 1 ? wval[1] : 0, wlen > 2 ? wval[2] : 0,
                 wlen > 3 ? wval[3] : 0, woff, i, got[i - lo], m->cfg[i]);
            memcpy(m->cfg + lo, got, hi - lo);
            return -1;
        }
    }
    check_pass_();
    return 0;
}

static inline uint32_t
model_rand(uint32_t *state)
{
    /* xorshift32: reproducible patterns. */
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    return *state;
}

/* Called before each offset: may re-set RW1C bits on both sides. */
typedef void model_rearm_fn(struct cfg_model *m, void *arg);

/*
 * For every offset in [start, end) and every width 1, 2, 4 that stays inside
 * config space: writes all zeros, random bytes, all ones and random bytes,
 * each as one REGION_WRITE, and checks the result and the 8 bytes around it.
 */
static inline void
model_sweep(struct vfu_test_client *c, struct cfg_model *m, size_t start, size_t end,
            const char *what, model_rearm_fn *rearm, void *arg)
{
    static const unsigned widths[] = { 1, 2, 4 };
    uint32_t seed = 0x1234567u ^ (uint32_t)start;
    size_t off;
    unsigned w, p, i;

    for (off = start; off < end; off++) {
        for (w = 0; w < 3; w++) {
            unsigned width = widths[w];

            if (off + width > m->size) {
                continue;
            }
            if (rearm != NULL) {
                rearm(m, arg);
            }
            for (p = 0; p < 4; p++) {
                uint8_t val[4];
                int ret;

                for (i = 0; i < 4; i++) {
                    val[i] = p == 0 ? 0x00 : p == 2 ? 0xff : (uint8_t)model_rand(&seed);
                }
                ret = vfu_test_cfg_write(c, off, width, val);
                if (!CHECK_MSG(ret == 0, "%s: write of %u at %#zx: %d", what, width, off, ret)) {
                    model_sync(c, m);
                    continue;
                }
                model_write(m, off, val, width);
                model_check(c, m, off >= 8 ? off - 8 : 0, off + width + 8, what, off, width, val);
            }
        }
    }
}

#endif /* VFU_TEST_PCI_MODEL_H */
