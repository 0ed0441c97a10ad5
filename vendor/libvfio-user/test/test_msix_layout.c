/*
 * Where the MSI-X table and PBA are is read from the capability once, at
 * realize, or when the capability is added after realize: from then on the
 * library serves those BAR bytes and the device's callback gets the rest.
 */
#include <stdint.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user.h"

#define MSIX_BAR VFU_PCI_DEV_BAR1_REGION_IDX
#define PBA_OFFSET 0x800
#define DEVICE_BYTE 0xab

static ssize_t
bar_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    (void)ctx;
    (void)offset;
    if (!is_write) {
        memset(buf, DEVICE_BYTE, count);
    }
    return (ssize_t)count;
}

static void
add_msix(vfu_ctx_t *ctx)
{
    struct msixcap cap = { .hdr = { .id = PCI_CAP_ID_MSIX } };

    cap.mxc.ts = 3; /* four vectors */
    cap.mtab.tbir = MSIX_BAR;
    cap.mpba.pbir = MSIX_BAR;
    cap.mpba.pbao = PBA_OFFSET >> 3;
    CHECK_GT(vfu_pci_add_capability(ctx, 0, 0, &cap), 0);
}

static void
check_emulated(struct vfu_test_client *c)
{
    uint64_t v = 0;

    /* Entry 2's data: stored by the library, read back. */
    CHECK_EQ(vfu_test_region_write_val(c, MSIX_BAR, 2 * 16 + 8, 4, 0x4242), 0);
    CHECK_EQ(vfu_test_region_read_val(c, MSIX_BAR, 2 * 16 + 8, 4, &v), 0);
    CHECK_EQ(v, 0x4242);
    /* Nothing pending: the PBA reads 0; past both, the device answers. */
    CHECK_EQ(vfu_test_region_read_val(c, MSIX_BAR, PBA_OFFSET, 8, &v), 0);
    CHECK_EQ(v, 0);
    CHECK_EQ(vfu_test_region_read_val(c, MSIX_BAR, 0x1000, 1, &v), 0);
    CHECK_EQ(v, DEVICE_BYTE);
}

static void
run(bool add_after_realize)
{
    struct vfu_test_server srv;
    struct vfu_test_client c;
    char path[108];
    vfu_ctx_t *ctx;

    vfu_test_sock_path(path, sizeof(path), "msix-layout");
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, NULL, VFU_DEV_TYPE_PCI);
    REQUIRE(ctx != NULL);
    vfu_setup_log(ctx, vfu_test_log_stderr, LOG_DEBUG);
    CHECK_OK(vfu_pci_init(ctx, VFU_PCI_TYPE_EXPRESS, PCI_HEADER_TYPE_NORMAL, 0));
    CHECK_OK(vfu_setup_region(ctx, MSIX_BAR, 0x2000, bar_access,
                              VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0));
    CHECK_OK(vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, 4));
    if (!add_after_realize) {
        add_msix(ctx);
    }
    CHECK_OK(vfu_realize_ctx(ctx));
    if (add_after_realize) {
        add_msix(ctx);
    }
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, path));
    check_emulated(&c);
    vfu_test_client_close(&c);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);
}

static void
test_capability_added_before_realize(void)
{
    run(false);
}

static void
test_capability_added_after_realize(void)
{
    run(true);
}

int
main(void)
{
    check_watchdog(60);
    RUN_TEST(test_capability_added_before_realize);
    RUN_TEST(test_capability_added_after_realize);
    return check_summary();
}
