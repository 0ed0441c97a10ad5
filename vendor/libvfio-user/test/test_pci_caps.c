/*
 * PCI capabilities: vfu_pci_add_capability placement, linking and errors,
 * the find functions, and, over the socket, what every write to every byte
 * of every supported capability does (PCI spec semantics: read-only bits
 * keep their value and the write succeeds, RW1C bits clear), plus FLR.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user.h"
#include "pci_model.h"
#include "private.h"

struct device {
    atomic_int resets[3]; /* by vfu_reset_type_t */
    atomic_int quiesces;
    atomic_int reset_errno; /* non-zero: the reset callback fails */
};

static ssize_t
bar_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    if (!is_write) {
        memset(buf, 0, count);
    }
    return (ssize_t)count;
}

static int
on_reset(vfu_ctx_t *ctx, vfu_reset_type_t type)
{
    struct device *dev = vfu_get_private(ctx);

    atomic_fetch_add(&dev->resets[type], 1);
    if (atomic_load(&dev->reset_errno) != 0) {
        errno = atomic_load(&dev->reset_errno);
        return -1;
    }
    return 0;
}

static int
on_quiesce(vfu_ctx_t *ctx)
{
    struct device *dev = vfu_get_private(ctx);

    atomic_fetch_add(&dev->quiesces, 1);
    return 0;
}

static vfu_ctx_t *
new_ctx(const char *name, char *path, size_t len, struct device *dev, vfu_pci_type_t type)
{
    vfu_ctx_t *ctx;

    vfu_test_sock_path(path, len, name);
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, dev, VFU_DEV_TYPE_PCI);
    if (ctx == NULL) {
        FAIL("vfu_create_ctx: %s", strerror(errno));
        return NULL;
    }
    vfu_setup_log(ctx, vfu_test_log_stderr, LOG_DEBUG);
    if (!CHECK_OK(vfu_pci_init(ctx, type, PCI_HEADER_TYPE_NORMAL, 0))) {
        vfu_destroy_ctx(ctx);
        return NULL;
    }
    return ctx;
}

/* ------------------------------------------------------------ capability data */

static struct pmcap
pm_data(uint16_t pmc, uint16_t pmcsr)
{
    struct pmcap pm;

    memset(&pm, 0, sizeof(pm));
    pm.hdr.id = PCI_CAP_ID_PM;
    pm.hdr.next = 0xee; /* must be replaced by the library */
    memcpy(&pm.pc, &pmc, 2);
    pm.pmcs.raw = pmcsr;
    pm.pmcsr_bse = 0x5a;
    pm.data = 0xa5;
    return pm;
}

/* MSI with the given Message Control; other bytes hold a pattern. */
static struct msicap
msi_data(uint16_t ctrl)
{
    struct msicap msi;
    uint8_t *raw = (uint8_t *)&msi;
    size_t i;

    for (i = 0; i < sizeof(msi); i++) {
        raw[i] = (uint8_t)(0x30 + i);
    }
    msi.hdr.id = PCI_CAP_ID_MSI;
    msi.hdr.next = 0;
    memcpy(&msi.mc, &ctrl, 2);
    return msi;
}

static struct msixcap
msix_data(uint16_t table_size, uint32_t table, uint32_t pba)
{
    struct msixcap msix;

    memset(&msix, 0, sizeof(msix));
    msix.hdr.id = PCI_CAP_ID_MSIX;
    msix.mxc.ts = (uint16_t)(table_size - 1);
    memcpy(&msix.mtab, &table, 4);
    memcpy(&msix.mpba, &pba, 4);
    return msix;
}

/* An endpoint's PCIe capability; every RO register holds a pattern. */
static struct pxcap
exp_data(bool flr)
{
    struct pxcap px;
    uint8_t *raw = (uint8_t *)&px;
    uint32_t devcap;
    size_t i;

    for (i = 0; i < sizeof(px); i++) {
        raw[i] = (uint8_t)(0x91 + 7 * i);
    }
    px.hdr.id = PCI_CAP_ID_EXP;
    px.hdr.next = 0;
    raw[2] = 0x02; /* version 2, endpoint */
    raw[3] = 0x00;
    devcap = pci_get32(raw + PCI_EXP_DEVCAP) & ~PCI_EXP_DEVCAP_FLR;
    if (flr) {
        devcap |= PCI_EXP_DEVCAP_FLR;
    }
    memcpy(raw + PCI_EXP_DEVCAP, &devcap, 4);
    raw[PCI_EXP_DEVCTL + 1] |= 0x80; /* Initiate FLR must read 0 */
    raw[PCI_EXP_DEVSTA] = 0x0f;
    raw[PCI_EXP_DEVSTA + 1] = 0x00;
    raw[PCI_EXP_LNKSTA + 1] = 0xc0;
    return px;
}

/* A standard vendor-specific capability of `size` bytes, patterned. */
static void
vsc_data(uint8_t *buf, uint8_t size)
{
    uint8_t i;

    for (i = 0; i < size; i++) {
        buf[i] = (uint8_t)(0xc0 + i);
    }
    buf[0] = PCI_CAP_ID_VNDR;
    buf[1] = 0;
    buf[2] = size;
}

static struct dsncap
dsn_data(void)
{
    struct dsncap dsn;

    memset(&dsn, 0, sizeof(dsn));
    dsn.hdr.id = PCI_EXT_CAP_ID_DSN;
    dsn.hdr.version = 1;
    dsn.hdr.next = 0x123; /* must be replaced by the library */
    dsn.sn_lo = 0x89abcdef;
    dsn.sn_hi = 0x01234567;
    return dsn;
}

/* An extended vendor-specific capability of len bytes, patterned. */
static void
ext_vsc_data(uint8_t *buf, uint16_t len)
{
    struct pcie_ext_cap_vsc_hdr *hdr = (struct pcie_ext_cap_vsc_hdr *)buf;
    uint16_t i;

    for (i = 0; i < len; i++) {
        buf[i] = (uint8_t)(0x17 * i + 3);
    }
    hdr->hdr.id = PCI_EXT_CAP_ID_VNDR;
    hdr->hdr.version = 1;
    hdr->hdr.next = 0;
    hdr->id = 0xabcd;
    hdr->rev = 2;
    hdr->len = len;
}

/* -------------------------------------------------------- add/find, no socket */

static void
test_add_errors(void)
{
    struct device dev = { 0 };
    char path[108];
    struct pmcap pm = pm_data(0x0003, 0);
    struct dsncap dsn = dsn_data();
    uint8_t vsc[16], bad[8] = { 0x0a };
    vfu_ctx_t *ctx;

    /* No config space yet. */
    vfu_test_sock_path(path, sizeof(path), "caps-noinit");
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, &dev, VFU_DEV_TYPE_PCI);
    REQUIRE(ctx != NULL);
    CHECK(vfu_pci_get_config_space(ctx) == NULL);
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0, 0, &pm), EINVAL);
    CHECK_EQ(vfu_pci_find_capability(ctx, false, PCI_CAP_ID_PM), 0);
    CHECK_EQ(errno, EINVAL);
    /* Without config space these have nothing to write to. */
    vfu_pci_set_id(ctx, 1, 2, 3, 4);
    vfu_pci_set_class(ctx, 1, 2, 3);
    CHECK(vfu_pci_get_config_space(ctx) == NULL);
    CHECK_ERRNO(vfu_pci_init(ctx, (vfu_pci_type_t)4, PCI_HEADER_TYPE_NORMAL, 0), EINVAL);
    CHECK_ERRNO(vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_BRIDGE, 0), EINVAL);
    CHECK(vfu_pci_get_config_space(ctx) == NULL);
    CHECK_OK(vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0));
    CHECK_ERRNO(vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0), EEXIST);
    CHECK_EQ(ctx->regions[VFU_PCI_DEV_CFG_REGION_IDX].size, 256);
    CHECK_EQ(ctx->regions[VFU_PCI_DEV_CFG_REGION_IDX].flags, VFU_REGION_FLAG_RW);

    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0, 0, NULL), EINVAL);
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0, 0x8, &pm), EINVAL);
    /* CALLBACK needs a config-region callback. */
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0, VFU_CAP_FLAG_CALLBACK, &pm), EINVAL);
    /* Extended capabilities need a PCI-X 2.0 or Express device. */
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0, VFU_CAP_FLAG_EXTENDED, &dsn), EINVAL);
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0, 0, bad), ENOTSUP);
    vsc_data(vsc, 2); /* shorter than its own header */
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0, 0, vsc), EINVAL);
    /* Inside the header, misaligned, past 256, overlapping. */
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0x3c, 0, &pm), EINVAL);
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0x41, 0, &pm), EINVAL);
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0xfc, 0, &pm), EINVAL);
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0x1000, 0, &pm), EINVAL);
    CHECK_ERRNO(vfu_pci_add_capability(ctx, SIZE_MAX - 3, 0, &pm), EINVAL);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0xf8, 0, &pm), 0xf8); /* ends at 256 */
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0xf4, 0, &pm), EINVAL);
    CHECK_EQ(ctx->pci.nr_caps, 1);
    vfu_destroy_ctx(ctx);
}

static void
test_add_placement(void)
{
    struct device dev = { 0 };
    char path[108];
    struct pmcap pm = pm_data(0x0003, 0);
    struct msixcap msix = msix_data(4, 1, 0x801);
    struct pxcap px = exp_data(false);
    uint8_t vsc[16], *cfg;
    vfu_ctx_t *ctx;

    ctx = new_ctx("caps-place", path, sizeof(path), &dev, VFU_PCI_TYPE_CONVENTIONAL);
    REQUIRE(ctx != NULL);
    cfg = (uint8_t *)vfu_pci_get_config_space(ctx);
    REQUIRE(cfg != NULL);

    CHECK_EQ(vfu_pci_find_capability(ctx, false, PCI_CAP_ID_PM), 0);
    CHECK_EQ(errno, ENOENT);

    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, &pm), 0x40);
    vsc_data(vsc, 6);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, vsc), 0x48);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, &msix), 0x50);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0x90, 0, vsc), 0x90);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0x80, 0, &pm), 0x80);
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0x84, 0, &pm), EINVAL);
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0x8c, 0, vsc), EINVAL);
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0x4c, 0, vsc), EINVAL);
    /* Automatic placement follows the list's tail and skips what is taken. */
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, vsc), 0x88);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, &px), 0x98);
    /* 0xd4 + 60 > 256: no room left. */
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0, 0, &px), ENOSPC);

    /* The list, in the order added, in config space. */
    CHECK_EQ(cfg[PCI_CAPABILITY_LIST], 0x40);
    CHECK_EQ(cfg[0x41], 0x48);
    CHECK_EQ(cfg[0x49], 0x50);
    CHECK_EQ(cfg[0x51], 0x90);
    CHECK_EQ(cfg[0x91], 0x80);
    CHECK_EQ(cfg[0x81], 0x88);
    CHECK_EQ(cfg[0x89], 0x98);
    CHECK_EQ(cfg[0x99], 0);
    CHECK(cfg[PCI_STATUS] & PCI_STATUS_CAP_LIST);
    /* Copied as given except the next pointer and Initiate FLR. */
    CHECK_EQ(cfg[0x40], PCI_CAP_ID_PM);
    CHECK_MEM(cfg + 0x42, (uint8_t *)&pm + 2, sizeof(pm) - 2);
    CHECK_MEM(cfg + 0x4a, vsc + 2, 4);
    CHECK_EQ(cfg[0x98 + PCI_EXP_DEVCTL + 1] & 0x80, 0);

    CHECK_EQ(vfu_pci_find_capability(ctx, false, PCI_CAP_ID_PM), 0x40);
    CHECK_EQ(vfu_pci_find_next_capability(ctx, false, 0x40, PCI_CAP_ID_PM), 0x80);
    CHECK_EQ(vfu_pci_find_next_capability(ctx, false, 0x80, PCI_CAP_ID_PM), 0);
    CHECK_EQ(errno, ENOENT);
    CHECK_EQ(vfu_pci_find_capability(ctx, false, PCI_CAP_ID_VNDR), 0x48);
    CHECK_EQ(vfu_pci_find_next_capability(ctx, false, 0x48, PCI_CAP_ID_VNDR), 0x90);
    CHECK_EQ(vfu_pci_find_next_capability(ctx, false, 0x90, PCI_CAP_ID_VNDR), 0x88);
    CHECK_EQ(vfu_pci_find_next_capability(ctx, false, 0x88, PCI_CAP_ID_VNDR), 0);
    CHECK_EQ(errno, ENOENT);
    CHECK_EQ(vfu_pci_find_capability(ctx, false, PCI_CAP_ID_MSIX), 0x50);
    CHECK_EQ(vfu_pci_find_capability(ctx, false, PCI_CAP_ID_EXP), 0x98);
    CHECK_EQ(vfu_pci_find_capability(ctx, false, PCI_CAP_ID_MSI), 0);
    CHECK_EQ(errno, ENOENT);
    CHECK_EQ(vfu_pci_find_next_capability(ctx, false, 0xff, PCI_CAP_ID_PM), 0);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(vfu_pci_find_next_capability(ctx, false, SIZE_MAX, PCI_CAP_ID_PM), 0);
    CHECK_EQ(errno, EINVAL);
    /* No extended space on a conventional device. */
    CHECK_EQ(vfu_pci_find_capability(ctx, true, PCI_EXT_CAP_ID_DSN), 0);
    CHECK_EQ(errno, ENOENT);
    /* A loop made by the device is not followed forever. */
    cfg[0x99] = 0x40;
    CHECK_EQ(vfu_pci_find_capability(ctx, false, PCI_CAP_ID_MSI), 0);
    CHECK_EQ(errno, ENOENT);
    vfu_destroy_ctx(ctx);
}

static void
test_add_limits(void)
{
    struct device dev = { 0 };
    char path[108];
    uint8_t vsc[8], ext[4096];
    struct dsncap dsn = dsn_data();
    vfu_ctx_t *ctx;
    int i;

    /* Standard space holds 48 four-byte capabilities. */
    ctx = new_ctx("caps-full", path, sizeof(path), &dev, VFU_PCI_TYPE_CONVENTIONAL);
    REQUIRE(ctx != NULL);
    vsc_data(vsc, 4);
    for (i = 0; i < 48; i++) {
        CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, vsc), 0x40 + 4 * i);
    }
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0, 0, vsc), ENOSPC);
    vfu_destroy_ctx(ctx);

    /* 128 extended capabilities at most. */
    ctx = new_ctx("caps-ext128", path, sizeof(path), &dev, VFU_PCI_TYPE_EXPRESS);
    REQUIRE(ctx != NULL);
    ext_vsc_data(ext, 8);
    for (i = 0; i < 128; i++) {
        if (!CHECK_EQ(vfu_pci_add_capability(ctx, 0, VFU_CAP_FLAG_EXTENDED, ext), 0x100 + 8 * i)) {
            break;
        }
    }
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0, VFU_CAP_FLAG_EXTENDED, ext), ENOSPC);
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0xf00, VFU_CAP_FLAG_EXTENDED, ext), ENOSPC);
    vfu_destroy_ctx(ctx);

    /* Extended placement, linking and errors. */
    ctx = new_ctx("caps-ext", path, sizeof(path), &dev, VFU_PCI_TYPE_EXPRESS);
    REQUIRE(ctx != NULL);
    CHECK_EQ(ctx->regions[VFU_PCI_DEV_CFG_REGION_IDX].size, 4096);
    CHECK_EQ(vfu_pci_find_capability(ctx, true, PCI_EXT_CAP_ID_DSN), 0);
    CHECK_EQ(errno, ENOENT);
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0x104, VFU_CAP_FLAG_EXTENDED, &dsn),
                EINVAL); /* the first one must be at 0x100 */
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0x80, VFU_CAP_FLAG_EXTENDED, &dsn), EINVAL);
    ext_vsc_data(ext, 4095);
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0, VFU_CAP_FLAG_EXTENDED, ext), ENOSPC);
    ext_vsc_data(ext, 7);
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0, VFU_CAP_FLAG_EXTENDED, ext), EINVAL);
    ext[0] = 0x01; /* AER: not supported */
    ext[1] = 0x00;
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0, VFU_CAP_FLAG_EXTENDED, ext), ENOTSUP);

    CHECK_EQ(vfu_pci_add_capability(ctx, 0, VFU_CAP_FLAG_EXTENDED, &dsn), 0x100);
    ext_vsc_data(ext, 13);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, VFU_CAP_FLAG_EXTENDED, ext), 0x10c);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, VFU_CAP_FLAG_EXTENDED, ext), 0x11c);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0x400, VFU_CAP_FLAG_EXTENDED, &dsn), 0x400);
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0x120, VFU_CAP_FLAG_EXTENDED, &dsn),
                EINVAL); /* overlaps 0x11c..0x128 */
    CHECK_ERRNO(vfu_pci_add_capability(ctx, 0xff8, VFU_CAP_FLAG_EXTENDED, &dsn),
                EINVAL); /* past the end */
    {
        uint8_t *cfg = (uint8_t *)vfu_pci_get_config_space(ctx);

        CHECK_EQ(pci_get32(cfg + 0x100) >> 20, 0x10c);
        CHECK_EQ(pci_get32(cfg + 0x100) & 0xfffff, 0x10003);
        CHECK_EQ(pci_get32(cfg + 0x10c) >> 20, 0x11c);
        CHECK_EQ(pci_get32(cfg + 0x11c) >> 20, 0x400);
        CHECK_EQ(pci_get32(cfg + 0x400) >> 20, 0);
        CHECK_EQ(pci_get32(cfg + 0x104), dsn.sn_lo);
        /* Standard space is untouched by extended capabilities. */
        CHECK_EQ(cfg[PCI_CAPABILITY_LIST], 0);
    }
    CHECK_EQ(vfu_pci_find_capability(ctx, true, PCI_EXT_CAP_ID_DSN), 0x100);
    CHECK_EQ(vfu_pci_find_next_capability(ctx, true, 0x100, PCI_EXT_CAP_ID_DSN), 0x400);
    CHECK_EQ(vfu_pci_find_capability(ctx, true, PCI_EXT_CAP_ID_VNDR), 0x10c);
    CHECK_EQ(vfu_pci_find_next_capability(ctx, true, 0x10c, PCI_EXT_CAP_ID_VNDR), 0x11c);
    CHECK_EQ(vfu_pci_find_next_capability(ctx, true, 0x11c, PCI_EXT_CAP_ID_VNDR), 0);
    CHECK_EQ(errno, ENOENT);
    CHECK_EQ(vfu_pci_find_next_capability(ctx, true, 0xffc, PCI_EXT_CAP_ID_VNDR), 0);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(vfu_pci_find_capability(ctx, false, PCI_CAP_ID_PM), 0);
    CHECK_EQ(errno, ENOENT);
    vfu_destroy_ctx(ctx);
}

/* ---------------------------------------------------------- the write sweep */

/* Where sweep_device put each capability (checked against placement). */
enum {
    PM_OFF = 0x40,
    MSI32_OFF = 0x48,
    MSI64_OFF = 0x60,
    MSI32PVM_OFF = 0x78,
    MSI64PVM_OFF = 0x90,
    MSIX_OFF = 0xa8,
    EXP_OFF = 0xb4,
    VSC_OFF = 0xf0,
    ROVSC_OFF = 0xfc,
    DSN_OFF = 0x100,
    EXTVSC_OFF = 0x10c,
    ROEXT_OFF = 0x120,
    CAPS_END = 0x12c,
};

static vfu_ctx_t *
sweep_device(char *path, size_t len, struct device *dev)
{
    /* PM: D1 supported, D2 not; PME_Status set. */
    struct pmcap pm = pm_data(0xc803 | PCI_PM_CAP_D1, PCI_PM_CTRL_PME_STATUS | 0x0008);
    struct msicap msi32 = msi_data(2 << 1);
    struct msicap msi64 = msi_data(PCI_MSI_FLAGS_64BIT);
    struct msicap msi32pvm = msi_data(PCI_MSI_FLAGS_MASKBIT | 3 << 1);
    struct msicap msi64pvm = msi_data(PCI_MSI_FLAGS_MASKBIT | PCI_MSI_FLAGS_64BIT | 5 << 1);
    struct msixcap msix = msix_data(8, 1, 0x1000 | 1);
    struct pxcap px = exp_data(false);
    struct dsncap dsn = dsn_data();
    uint8_t vsc[12], rovsc[4], ext[20], roext[12];
    vfu_ctx_t *ctx;

    ctx = new_ctx("caps-sweep", path, len, dev, VFU_PCI_TYPE_EXPRESS);
    if (ctx == NULL) {
        return NULL;
    }
    vsc_data(vsc, sizeof(vsc));
    vsc_data(rovsc, sizeof(rovsc));
    ext_vsc_data(ext, sizeof(ext));
    ext_vsc_data(roext, sizeof(roext));
    CHECK_OK(vfu_setup_region(ctx, VFU_PCI_DEV_BAR1_REGION_IDX, 0x2000, bar_access,
                              VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0));
    CHECK_OK(vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSI_IRQ, 32));
    CHECK_OK(vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, 8));
    CHECK_OK(vfu_setup_device_reset_cb(ctx, on_reset));
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, &pm), PM_OFF);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, &msi32), MSI32_OFF);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, &msi64), MSI64_OFF);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, &msi32pvm), MSI32PVM_OFF);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, &msi64pvm), MSI64PVM_OFF);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, &msix), MSIX_OFF);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, &px), EXP_OFF);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, vsc), VSC_OFF);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, VFU_CAP_FLAG_READONLY, rovsc), ROVSC_OFF);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, VFU_CAP_FLAG_EXTENDED, &dsn), DSN_OFF);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, VFU_CAP_FLAG_EXTENDED, ext), EXTVSC_OFF);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, VFU_CAP_FLAG_EXTENDED | VFU_CAP_FLAG_READONLY, roext),
             ROEXT_OFF);
    if (!CHECK_OK(vfu_realize_ctx(ctx))) {
        vfu_destroy_ctx(ctx);
        return NULL;
    }
    return ctx;
}

/* Sets every RW1C bit on the server, between requests. */
static int
set_w1c_bits(vfu_ctx_t *ctx, void *arg)
{
    uint8_t *cfg = (uint8_t *)vfu_pci_get_config_space(ctx);

    cfg[PCI_STATUS + 1] |= 0xf9;
    cfg[PM_OFF + PCI_PM_CTRL + 1] |= 0x80;
    cfg[EXP_OFF + PCI_EXP_DEVSTA] |= 0x0f;
    cfg[EXP_OFF + PCI_EXP_LNKSTA + 1] |= 0xc0;
    return 0;
}

static void
rearm(struct cfg_model *m, void *arg)
{
    vfu_test_server_call(arg, set_w1c_bits, NULL);
    m->cfg[PCI_STATUS + 1] |= 0xf9;
    m->cfg[PM_OFF + PCI_PM_CTRL + 1] |= 0x80;
    m->cfg[EXP_OFF + PCI_EXP_DEVSTA] |= 0x0f;
    m->cfg[EXP_OFF + PCI_EXP_LNKSTA + 1] |= 0xc0;
}

static void
test_sweep(void)
{
    static struct cfg_model m;
    static const uint32_t bars[6] = { 0, 0xffffe000, 0, 0, 0, 0 };
    struct device dev = { 0 };
    struct vfu_test_server srv;
    struct vfu_test_client c;
    char path[108];
    uint8_t initial[4096];
    vfu_ctx_t *ctx;

    ctx = sweep_device(path, sizeof(path), &dev);
    REQUIRE(ctx != NULL);
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, path));

    model_init(&m, 4096);
    REQUIRE_OK(model_sync(&c, &m));
    memcpy(initial, m.cfg, sizeof(initial));
    model_header(&m, bars, 0);
    model_pm(&m, PM_OFF);
    model_msi(&m, MSI32_OFF);
    model_msi(&m, MSI64_OFF);
    model_msi(&m, MSI32PVM_OFF);
    model_msi(&m, MSI64PVM_OFF);
    model_msix(&m, MSIX_OFF);
    model_exp(&m, EXP_OFF);
    model_rw_bytes(&m, VSC_OFF + 3, 12 - 3);
    model_rw_bytes(&m, EXTVSC_OFF + 8, 20 - 8);

    /* What the library did to the data at add time. */
    CHECK_EQ(m.cfg[PM_OFF + 1], MSI32_OFF);
    CHECK_EQ(m.cfg[ROVSC_OFF + 1], 0);
    CHECK_EQ(m.cfg[EXP_OFF + PCI_EXP_DEVCTL + 1] & 0x80, 0);
    CHECK_EQ(model_get32(m.cfg + DSN_OFF) >> 20, EXTVSC_OFF);
    CHECK_EQ(model_get32(m.cfg + ROEXT_OFF) >> 20, 0);
    CHECK(m.cfg[PCI_STATUS] & PCI_STATUS_CAP_LIST);

    model_sweep(&c, &m, 0x3c, CAPS_END + 8, "capabilities", rearm, &srv);
    model_sweep(&c, &m, 0xff0, 0x1000, "end of extended space", rearm, &srv);

    /* Whole space once more: nothing far away changed either. */
    model_check(&c, &m, 0, 4096, "final", 0, 1, (const uint8_t *)"\0");
    /* Read-only capabilities, DSN and unowned bytes never changed. */
    CHECK_MEM(m.cfg + ROVSC_OFF, initial + ROVSC_OFF, 4);
    CHECK_MEM(m.cfg + DSN_OFF, initial + DSN_OFF, EXTVSC_OFF + 8 - DSN_OFF);
    CHECK_MEM(m.cfg + ROEXT_OFF, initial + ROEXT_OFF, CAPS_END - ROEXT_OFF);
    CHECK_MEM(m.cfg + CAPS_END, initial + CAPS_END, 4096 - CAPS_END);
    /* Without FLR capability, Initiate FLR does nothing. */
    CHECK_EQ(atomic_load(&dev.resets[VFU_RESET_PCI_FLR]), 0);

    vfu_test_client_close(&c);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);
}

/* Single registers whose writes are discarded when out of range. */
static void
test_discarded_values(void)
{
    struct device dev = { 0 };
    struct vfu_test_server srv;
    struct vfu_test_client c;
    char path[108];
    uint64_t v;
    vfu_ctx_t *ctx;

    ctx = sweep_device(path, sizeof(path), &dev);
    REQUIRE(ctx != NULL);
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, path));

    /* PM: D3hot always, D1 supported, D2 not. */
    CHECK_OK(vfu_test_cfg_write_val(&c, PM_OFF + PCI_PM_CTRL, 1, 3));
    CHECK_OK(vfu_test_cfg_read_val(&c, PM_OFF + PCI_PM_CTRL, 1, &v));
    CHECK_EQ(v & 3, 3);
    CHECK_OK(vfu_test_cfg_write_val(&c, PM_OFF + PCI_PM_CTRL, 1, 2));
    CHECK_OK(vfu_test_cfg_read_val(&c, PM_OFF + PCI_PM_CTRL, 1, &v));
    CHECK_EQ(v & 3, 3);
    CHECK_OK(vfu_test_cfg_write_val(&c, PM_OFF + PCI_PM_CTRL, 1, 1));
    CHECK_OK(vfu_test_cfg_read_val(&c, PM_OFF + PCI_PM_CTRL, 1, &v));
    CHECK_EQ(v & 3, 1);
    /* PME_En alongside an unsupported state: PME_En still changes. */
    CHECK_OK(vfu_test_cfg_write_val(&c, PM_OFF + PCI_PM_CTRL, 2, 0x0102));
    CHECK_OK(vfu_test_cfg_read_val(&c, PM_OFF + PCI_PM_CTRL, 2, &v));
    CHECK_EQ(v & 0x0103, 0x0101);

    /* MSI with MMC 3 (8 vectors): MME up to 3. */
    CHECK_OK(vfu_test_cfg_write_val(&c, MSI32PVM_OFF + PCI_MSI_FLAGS, 1, 3 << 4));
    CHECK_OK(vfu_test_cfg_read_val(&c, MSI32PVM_OFF + PCI_MSI_FLAGS, 2, &v));
    CHECK_EQ(v, PCI_MSI_FLAGS_MASKBIT | 3 << 1 | 3 << 4);
    CHECK_OK(vfu_test_cfg_write_val(&c, MSI32PVM_OFF + PCI_MSI_FLAGS, 1, 4 << 4 | 1));
    CHECK_OK(vfu_test_cfg_read_val(&c, MSI32PVM_OFF + PCI_MSI_FLAGS, 2, &v));
    CHECK_EQ(v, PCI_MSI_FLAGS_MASKBIT | 3 << 1 | 3 << 4 | 1);
    /* Mask bits exist for the 8 vectors only. */
    CHECK_OK(vfu_test_cfg_write_val(&c, MSI32PVM_OFF + PCI_MSI_MASK_32, 4, 0xffffffff));
    CHECK_OK(vfu_test_cfg_read_val(&c, MSI32PVM_OFF + PCI_MSI_MASK_32, 4, &v));
    CHECK_EQ(v, 0xff | (0x3f3e3d3cu & ~0xffu));
    CHECK_OK(vfu_test_cfg_write_val(&c, MSI32PVM_OFF + PCI_MSI_FLAGS, 2, 0));
    CHECK_OK(vfu_test_cfg_read_val(&c, MSI32PVM_OFF + PCI_MSI_FLAGS, 2, &v));
    CHECK_EQ(v, PCI_MSI_FLAGS_MASKBIT | 3 << 1);
    /* A 32-bit MSI has its data at +8, not an upper address. */
    CHECK_OK(vfu_test_cfg_write_val(&c, MSI32_OFF + 8, 4, 0xffffffff));
    CHECK_OK(vfu_test_cfg_read_val(&c, MSI32_OFF + 8, 4, &v));
    CHECK_EQ(v, 0x3b3affffu);
    CHECK_OK(vfu_test_cfg_write_val(&c, MSI64_OFF + 8, 4, 0xfedcba98));
    CHECK_OK(vfu_test_cfg_read_val(&c, MSI64_OFF + 8, 4, &v));
    CHECK_EQ(v, 0xfedcba98);

    vfu_test_client_close(&c);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);
}

/* ------------------------------------------------------------------- FLR */

enum { FLR_MSI = 0x48, FLR_MSIX = 0x60, FLR_EXP = 0x6c };

static vfu_ctx_t *
flr_device(char *path, size_t len, struct device *dev, bool flr)
{
    struct pmcap pm = pm_data(0x0003, 0);
    struct msicap msi = msi_data(PCI_MSI_FLAGS_MASKBIT | PCI_MSI_FLAGS_64BIT | 3 << 1);
    struct msixcap msix = msix_data(8, 1, 0x1000 | 1);
    struct pxcap px = exp_data(flr);
    vfu_ctx_t *ctx;

    ctx = new_ctx(flr ? "caps-flr" : "caps-noflr", path, len, dev, VFU_PCI_TYPE_EXPRESS);
    if (ctx == NULL) {
        return NULL;
    }
    CHECK_OK(vfu_setup_region(ctx, VFU_PCI_DEV_BAR1_REGION_IDX, 0x2000, bar_access,
                              VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0));
    CHECK_OK(vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSI_IRQ, 8));
    CHECK_OK(vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, 8));
    CHECK_OK(vfu_setup_device_reset_cb(ctx, on_reset));
    vfu_setup_device_quiesce_cb(ctx, on_quiesce);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, &pm), 0x40);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, &msi), FLR_MSI);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, &msix), FLR_MSIX);
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, &px), FLR_EXP);
    if (!CHECK_OK(vfu_realize_ctx(ctx))) {
        vfu_destroy_ctx(ctx);
        return NULL;
    }
    return ctx;
}

static void
enable_everything(struct vfu_test_client *c)
{
    CHECK_OK(vfu_test_cfg_write_val(c, PCI_COMMAND, 2, 0x0407));
    CHECK_OK(vfu_test_cfg_write_val(c, FLR_MSI + PCI_MSI_FLAGS, 1, 0x01));
    CHECK_OK(vfu_test_cfg_write_val(c, FLR_MSIX + PCI_MSIX_FLAGS + 1, 1, 0xc0));
}

static void
check_state(struct vfu_test_client *c, bool enabled, const char *what)
{
    uint64_t cmd = 0, msi = 0, msix = 0;

    CHECK_OK(vfu_test_cfg_read_val(c, PCI_COMMAND, 2, &cmd));
    CHECK_OK(vfu_test_cfg_read_val(c, FLR_MSI + PCI_MSI_FLAGS, 2, &msi));
    CHECK_OK(vfu_test_cfg_read_val(c, FLR_MSIX + PCI_MSIX_FLAGS, 2, &msix));
    CHECK_MSG(cmd == (enabled ? 0x0407u : 0), "%s: command %#" PRIx64, what, cmd);
    CHECK_MSG((msi & 1) == enabled, "%s: MSI control %#" PRIx64, what, msi);
    CHECK_MSG((msix & 0xc000) == (enabled ? 0xc000u : 0) && (msix & 0x7ff) == 7,
              "%s: MSI-X control %#" PRIx64, what, msix);
}

static void
test_flr(void)
{
    struct device dev = { 0 };
    struct vfu_test_server srv;
    struct vfu_test_client c;
    char path[108];
    uint8_t data[4];
    uint64_t v;
    vfu_ctx_t *ctx;
    size_t devctl = FLR_EXP + PCI_EXP_DEVCTL;
    int q;

    ctx = flr_device(path, sizeof(path), &dev, true);
    REQUIRE(ctx != NULL);

    /* Which writes need the device quiesced first. */
    data[0] = 0x00;
    data[1] = 0x80;
    CHECK(pci_config_write_needs_quiesce(ctx, devctl, data, 2));
    CHECK(pci_config_write_needs_quiesce(ctx, devctl + 1, data + 1, 1));
    CHECK(!pci_config_write_needs_quiesce(ctx, devctl, data, 1));
    CHECK(!pci_config_write_needs_quiesce(ctx, devctl - 1, data, 2));
    CHECK(!pci_config_write_needs_quiesce(ctx, devctl + 1, data, 1));
    memcpy(data, "\x00\x00\x00\x80", 4);
    CHECK(pci_config_write_needs_quiesce(ctx, devctl - 2, data, 4));
    CHECK(!pci_config_write_needs_quiesce(ctx, devctl + 2, data, 2));
    CHECK(!pci_config_write_needs_quiesce(ctx, 4094, data, 4));

    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, path));

    enable_everything(&c);
    check_state(&c, true, "enabled");
    CHECK_OK(vfu_test_cfg_write_val(&c, devctl, 2, 0x2810));
    CHECK_EQ(atomic_load(&dev.resets[VFU_RESET_PCI_FLR]), 0);
    check_state(&c, true, "devctl without FLR");
    q = atomic_load(&dev.quiesces);

    /* Initiate FLR: the device resets, then the function's state clears. */
    CHECK_OK(vfu_test_cfg_write_val(&c, devctl, 2, 0x8000 | 0x2810));
    CHECK_EQ(atomic_load(&dev.resets[VFU_RESET_PCI_FLR]), 1);
    CHECK_EQ(atomic_load(&dev.resets[VFU_RESET_DEVICE]), 0);
    CHECK_EQ(atomic_load(&dev.quiesces), q + 1);
    check_state(&c, false, "after FLR");
    CHECK_OK(vfu_test_cfg_read_val(&c, devctl, 2, &v));
    CHECK_EQ(v, 0x2810);

    /* One byte, and as part of a 4-byte write that also clears status. */
    enable_everything(&c);
    CHECK_OK(vfu_test_cfg_write_val(&c, devctl + 1, 1, 0x80));
    CHECK_EQ(atomic_load(&dev.resets[VFU_RESET_PCI_FLR]), 2);
    check_state(&c, false, "after 1-byte FLR");
    enable_everything(&c);
    CHECK_OK(vfu_test_cfg_write_val(&c, devctl, 4, 0x000f8000));
    CHECK_EQ(atomic_load(&dev.resets[VFU_RESET_PCI_FLR]), 3);
    check_state(&c, false, "after 4-byte FLR");
    CHECK_OK(vfu_test_cfg_read_val(&c, devctl, 4, &v));
    CHECK_EQ(v, 0);
    CHECK_EQ(atomic_load(&dev.quiesces), q + 3);

    /* A failing reset fails the write and leaves config space alone. */
    enable_everything(&c);
    atomic_store(&dev.reset_errno, ENODEV);
    CHECK_EQ(vfu_test_cfg_write_val(&c, devctl, 2, 0x8000 | 0x0010), ENODEV);
    CHECK_EQ(atomic_load(&dev.resets[VFU_RESET_PCI_FLR]), 4);
    check_state(&c, true, "after failed FLR");
    CHECK_OK(vfu_test_cfg_read_val(&c, devctl, 2, &v));
    CHECK_EQ(v, 0);
    atomic_store(&dev.reset_errno, 0);

    vfu_test_client_close(&c);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);

    /* Without FLR capability the bit is ignored and nothing resets. */
    memset(&dev, 0, sizeof(dev));
    ctx = flr_device(path, sizeof(path), &dev, false);
    REQUIRE(ctx != NULL);
    data[0] = 0x00;
    data[1] = 0x80;
    CHECK(!pci_config_write_needs_quiesce(ctx, devctl, data, 2));
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, path));
    enable_everything(&c);
    CHECK_OK(vfu_test_cfg_write_val(&c, devctl, 2, 0x8010));
    CHECK_EQ(atomic_load(&dev.resets[VFU_RESET_PCI_FLR]), 0);
    CHECK_EQ(atomic_load(&dev.quiesces), 0);
    check_state(&c, true, "no FLR capability");
    CHECK_OK(vfu_test_cfg_read_val(&c, devctl, 2, &v));
    CHECK_EQ(v, 0x0010);
    vfu_test_client_close(&c);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);
}

int
main(void)
{
    check_watchdog(100);
    RUN_TEST(test_add_errors);
    RUN_TEST(test_add_placement);
    RUN_TEST(test_add_limits);
    RUN_TEST(test_sweep);
    RUN_TEST(test_discarded_values);
    RUN_TEST(test_flr);
    return check_summary();
}
