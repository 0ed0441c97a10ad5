/*
 * The regression this project started from: a client restoring MSI-X state
 * writes Message Control as ONE 2-byte REGION_WRITE at msix_cap + 3, so the
 * write covers the high byte of Message Control (Enable, Function Mask) and
 * the low byte of the read-only Table Offset/BIR register. Per PCI the write
 * must succeed, set the two bits and leave every read-only bit alone.
 */
#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user.h"
#include "private.h"

static ssize_t
bar_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    if (!is_write) {
        memset(buf, 0, count);
    }
    return (ssize_t)count;
}

struct layout {
    uint16_t vectors;
    int bar;
    uint32_t table_off;
    uint32_t pba_off;
    size_t bar_size;
};

/* A device with PM, MSI, then MSI-X, then a PCIe capability after it. */
static vfu_ctx_t *
make_device(char *path, size_t len, const struct layout *l, size_t *msix_off)
{
    struct pmcap pm;
    struct msicap msi;
    struct msixcap msix;
    struct pxcap px;
    uint32_t table = l->table_off | (uint32_t)l->bar;
    uint32_t pba = l->pba_off | (uint32_t)l->bar;
    vfu_ctx_t *ctx;
    ssize_t off;

    vfu_test_sock_path(path, len, "msix-restore");
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, NULL, VFU_DEV_TYPE_PCI);
    if (ctx == NULL) {
        FAIL("vfu_create_ctx: %s", strerror(errno));
        return NULL;
    }
    vfu_setup_log(ctx, vfu_test_log_stderr, LOG_DEBUG);
    CHECK_OK(vfu_pci_init(ctx, VFU_PCI_TYPE_EXPRESS, PCI_HEADER_TYPE_NORMAL, 0));
    CHECK_OK(vfu_setup_region(ctx, l->bar, l->bar_size, bar_access,
                              VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0));
    CHECK_OK(vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSI_IRQ, 1));
    CHECK_OK(vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, l->vectors));

    memset(&pm, 0, sizeof(pm));
    pm.hdr.id = PCI_CAP_ID_PM;
    pm.pc.vs = 3;
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, &pm), 0x40);
    memset(&msi, 0, sizeof(msi));
    msi.hdr.id = PCI_CAP_ID_MSI;
    msi.mc.c64 = 1;
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, &msi), 0x48);

    memset(&msix, 0, sizeof(msix));
    msix.hdr.id = PCI_CAP_ID_MSIX;
    msix.mxc.ts = (uint16_t)(l->vectors - 1);
    memcpy(&msix.mtab, &table, 4);
    memcpy(&msix.mpba, &pba, 4);
    off = vfu_pci_add_capability(ctx, 0, 0, &msix);
    CHECK_EQ(off, 0x60);

    memset(&px, 0, sizeof(px));
    px.hdr.id = PCI_CAP_ID_EXP;
    px.pxcaps.ver = 2;
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, &px), 0x6c);

    if (!CHECK_OK(vfu_realize_ctx(ctx)) || off < 0) {
        vfu_destroy_ctx(ctx);
        return NULL;
    }
    *msix_off = (size_t)off;
    return ctx;
}

/* The capability as the device defined it, plus the control bits. */
static void
expected_cap(const struct layout *l, uint8_t ctrl_bits, uint8_t *cap)
{
    uint16_t mc = (uint16_t)((l->vectors - 1) | ctrl_bits << 8);
    uint32_t table = l->table_off | (uint32_t)l->bar;
    uint32_t pba = l->pba_off | (uint32_t)l->bar;

    cap[0] = PCI_CAP_ID_MSIX;
    cap[1] = 0x6c;
    pci_put16(cap + 2, mc);
    pci_put32(cap + 4, table);
    pci_put32(cap + 8, pba);
}

static void
restore(const struct layout *l)
{
    static const uint8_t second[] = { 0x00, 0xff, 0x5a };
    struct vfu_test_server srv;
    struct vfu_test_client c;
    char path[108];
    uint8_t before[256], after[256], want[12], data[2];
    size_t msix, i;
    vfu_ctx_t *ctx;

    ctx = make_device(path, sizeof(path), l, &msix);
    REQUIRE(ctx != NULL);
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, path));
    REQUIRE_OK(vfu_test_cfg_read(&c, 0, sizeof(before), before));
    expected_cap(l, 0, want);
    CHECK_MEM(before + msix, want, sizeof(want));

    for (i = 0; i < sizeof(second); i++) {
        /* Restore: Enable and Function Mask in one 2-byte write. */
        data[0] = 0xc0;
        data[1] = second[i];
        CHECK_EQ(vfu_test_cfg_write(&c, msix + 3, 2, data), 0);
        REQUIRE_OK(vfu_test_cfg_read(&c, 0, sizeof(after), after));
        expected_cap(l, 0xc0, want);
        CHECK_MSG(memcmp(after + msix, want, sizeof(want)) == 0,
                  "second byte %#x: MSI-X cap %02x%02x %08x %08x", second[i], after[msix + 3],
                  after[msix + 2], pci_get32(after + msix + 4), pci_get32(after + msix + 8));
        /* Nothing else in config space moved. */
        CHECK_MEM(after, before, msix);
        CHECK_MEM(after + msix + 12, before + msix + 12, sizeof(after) - msix - 12);

        /* Clearing them the same way. */
        data[0] = 0x00;
        CHECK_EQ(vfu_test_cfg_write(&c, msix + 3, 2, data), 0);
        REQUIRE_OK(vfu_test_cfg_read(&c, 0, sizeof(after), after));
        CHECK_MEM(after, before, sizeof(after));
    }

    /* Each bit alone, and through other access shapes. */
    data[0] = 0x80;
    data[1] = 0xff;
    CHECK_EQ(vfu_test_cfg_write(&c, msix + 3, 2, data), 0);
    REQUIRE_OK(vfu_test_cfg_read(&c, 0, sizeof(after), after));
    expected_cap(l, 0x80, want);
    CHECK_MEM(after + msix, want, sizeof(want));
    CHECK_EQ(vfu_test_cfg_write_val(&c, msix + 2, 4, 0xffffffff), 0);
    REQUIRE_OK(vfu_test_cfg_read(&c, 0, sizeof(after), after));
    expected_cap(l, 0xc0, want);
    CHECK_MEM(after + msix, want, sizeof(want));
    CHECK_EQ(vfu_test_cfg_write_val(&c, msix, 4, 0x40000000), 0);
    REQUIRE_OK(vfu_test_cfg_read(&c, 0, sizeof(after), after));
    expected_cap(l, 0x40, want);
    CHECK_MEM(after + msix, want, sizeof(want));
    CHECK_EQ(vfu_test_cfg_write_val(&c, msix + 1, 4, 0), 0);
    REQUIRE_OK(vfu_test_cfg_read(&c, 0, sizeof(after), after));
    CHECK_MEM(after, before, sizeof(after));

    /* A posted write (no reply) is applied just the same. */
    data[0] = 0xc0;
    data[1] = 0x5a;
    CHECK_EQ(vfu_test_region_write_posted(&c, VFU_TEST_CFG_REGION, msix + 3, 2, data), 0);
    REQUIRE_OK(vfu_test_cfg_read(&c, 0, sizeof(after), after));
    expected_cap(l, 0xc0, want);
    CHECK_MEM(after + msix, want, sizeof(want));

    vfu_test_client_close(&c);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);
}

static void
test_restore_8_vectors(void)
{
    /* 8 vectors, table at BAR1 + 0, PBA at BAR1 + 0x1000. */
    const struct layout l = { 8, 1, 0, 0x1000, 0x2000 };

    restore(&l);
}

static void
test_restore_512_vectors(void)
{
    /* Table size 0x1ff puts a table-size bit in the byte next to the flags. */
    const struct layout l = { 512, 2, 0x2000, 0x800, 0x4000 };

    restore(&l);
}

int
main(void)
{
    check_watchdog(60);
    RUN_TEST(test_restore_8_vectors);
    RUN_TEST(test_restore_512_vectors);
    return check_summary();
}
