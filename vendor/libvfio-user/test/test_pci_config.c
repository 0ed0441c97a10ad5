/*
 * PCI config space over the socket: the emulated type-0 header (read-only
 * IDs and class, command and status semantics, BAR and ROM sizing), any
 * access at any offset accepted, accesses past the end refused with EINVAL,
 * and the routing of accesses to the device's config callback (ALWAYS_CB,
 * CALLBACK capabilities, bytes nobody emulates).
 */
#include <stdatomic.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user.h"
#include "pci_model.h"
#include "private.h"

#define GIB (1024ull * 1024 * 1024)

/* The device's own view of config accesses routed to its callback. */
struct device {
    uint8_t cfg[4096]; /* what the callback serves */
    atomic_int calls;
    atomic_ullong last_offset;
    atomic_uint last_count;
    atomic_bool last_write;
    atomic_ullong fail_offset; /* the callback fails here, with ENOTTY */
};

static ssize_t
cfg_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    struct device *dev = vfu_get_private(ctx);

    atomic_fetch_add(&dev->calls, 1);
    atomic_store(&dev->last_offset, (unsigned long long)offset);
    atomic_store(&dev->last_count, (unsigned)count);
    atomic_store(&dev->last_write, is_write);
    if ((unsigned long long)offset == atomic_load(&dev->fail_offset)) {
        errno = ENOTTY;
        return -1;
    }
    if (is_write) {
        memcpy(dev->cfg + offset, buf, count);
    } else {
        memcpy(buf, dev->cfg + offset, count);
    }
    return (ssize_t)count;
}

static ssize_t
bar_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    if (!is_write) {
        memset(buf, 0, count);
    }
    return (ssize_t)count;
}

static void
device_init(struct device *dev)
{
    size_t i;

    memset(dev, 0, sizeof(*dev));
    for (i = 0; i < sizeof(dev->cfg); i++) {
        dev->cfg[i] = (uint8_t)(i ^ 0xa5);
    }
    atomic_store(&dev->fail_offset, ~0ull);
}

static vfu_ctx_t *
new_ctx(const char *name, char *path, size_t len, struct device *dev)
{
    vfu_ctx_t *ctx;

    vfu_test_sock_path(path, len, name);
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, dev, VFU_DEV_TYPE_PCI);
    if (ctx == NULL) {
        FAIL("vfu_create_ctx: %s", strerror(errno));
        return NULL;
    }
    vfu_setup_log(ctx, vfu_test_log_stderr, LOG_DEBUG);
    return ctx;
}

static int
setup_bar(vfu_ctx_t *ctx, int idx, size_t size, int flags)
{
    return vfu_setup_region(ctx, idx, size, bar_cb, VFU_REGION_FLAG_RW | flags, NULL, 0, -1, 0);
}

/* ------------------------------------------------------------- the header */

/*
 * BAR0 32-bit memory 4 KiB, BAR1 I/O 256 bytes, BAR2+3 64-bit prefetchable
 * memory 8 GiB, BAR4 not implemented, BAR5 32-bit prefetchable 16 bytes,
 * ROM 64 KiB, INTx, a PM capability at 0x40.
 */
static vfu_ctx_t *
header_device(char *path, size_t len, struct device *dev)
{
    vfu_pci_config_space_t *cs;
    struct pmcap pm;
    vfu_ctx_t *ctx;

    ctx = new_ctx("cfg-header", path, len, dev);
    if (ctx == NULL) {
        return NULL;
    }
    CHECK_OK(vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0x42));
    vfu_pci_set_id(ctx, 0x1234, 0x5678, 0x9abc, 0xdef0);
    vfu_pci_set_class(ctx, 0x02, 0x80, 0x01);
    cs = vfu_pci_get_config_space(ctx);
    cs->hdr.rid = 0x42;
    cs->hdr.bist.raw = 0x80;
    cs->hdr.mgnt = 0x11;
    cs->hdr.mlat = 0x22;
    cs->hdr.ccptr = 0x12345678;
    cs->raw[0x80] = 0x77; /* nobody's byte */
    CHECK_OK(setup_bar(ctx, 0, 0x1000, VFU_REGION_FLAG_MEM));
    CHECK_OK(setup_bar(ctx, 1, 0x100, 0));
    CHECK_OK(setup_bar(ctx, 2, 8 * GIB,
                       VFU_REGION_FLAG_MEM | VFU_REGION_FLAG_64_BITS | VFU_REGION_FLAG_PREFETCH));
    CHECK_OK(setup_bar(ctx, 5, 16, VFU_REGION_FLAG_MEM | VFU_REGION_FLAG_PREFETCH));
    CHECK_OK(setup_bar(ctx, VFU_PCI_DEV_ROM_REGION_IDX, 0x10000, 0));
    CHECK_OK(vfu_setup_device_nr_irqs(ctx, VFU_DEV_INTX_IRQ, 1));
    memset(&pm, 0, sizeof(pm));
    pm.hdr.id = PCI_CAP_ID_PM;
    pm.pc.vs = 3;
    pm.pc.d1s = 1;
    pm.pc.d2s = 1;
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, &pm), 0x40);
    if (!CHECK_OK(vfu_realize_ctx(ctx))) {
        vfu_destroy_ctx(ctx);
        return NULL;
    }
    return ctx;
}

static int
set_status_errors(vfu_ctx_t *ctx, void *arg)
{
    ((uint8_t *)vfu_pci_get_config_space(ctx))[PCI_STATUS + 1] |= 0xf9;
    return 0;
}

static void
rearm_status(struct cfg_model *m, void *srv)
{
    vfu_test_server_call(srv, set_status_errors, NULL);
    m->cfg[PCI_STATUS + 1] |= 0xf9;
}

static void
test_header_sweep(void)
{
    static const uint32_t bars[6] = { 0xfffff000, 0xffffff00, 0, 0xfffffffe, 0, 0xfffffff0 };
    static struct cfg_model m;
    static struct device dev;
    struct vfu_test_server srv;
    struct vfu_test_client c;
    uint8_t initial[256];
    char path[108];
    vfu_ctx_t *ctx;

    device_init(&dev);
    ctx = header_device(path, sizeof(path), &dev);
    REQUIRE(ctx != NULL);
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, path));

    model_init(&m, 256);
    REQUIRE_OK(model_sync(&c, &m));
    memcpy(initial, m.cfg, sizeof(initial));

    /* What realize and the setters put there. */
    CHECK_EQ(model_get32(m.cfg + PCI_VENDOR_ID), 0x56781234);
    CHECK_EQ(model_get32(m.cfg + PCI_CLASS_REVISION), 0x02800142);
    CHECK_EQ(model_get32(m.cfg + PCI_SUBSYSTEM_VENDOR_ID), 0xdef09abc);
    CHECK_EQ(model_get16(m.cfg + PCI_COMMAND), 0);
    CHECK_EQ(model_get16(m.cfg + PCI_STATUS), PCI_STATUS_CAP_LIST);
    CHECK_EQ(m.cfg[PCI_HEADER_TYPE], PCI_HEADER_TYPE_NORMAL);
    CHECK_EQ(m.cfg[PCI_CAPABILITY_LIST], 0x40);
    CHECK_EQ(m.cfg[PCI_INTERRUPT_PIN], 1);
    CHECK_EQ(model_get32(m.cfg + PCI_BASE_ADDRESS_0), 0x0);
    CHECK_EQ(model_get32(m.cfg + PCI_BASE_ADDRESS_1), 0x1);
    CHECK_EQ(model_get32(m.cfg + PCI_BASE_ADDRESS_2), 0xc);
    CHECK_EQ(model_get32(m.cfg + PCI_BASE_ADDRESS_3), 0x0);
    CHECK_EQ(model_get32(m.cfg + PCI_BASE_ADDRESS_4), 0x0);
    CHECK_EQ(model_get32(m.cfg + PCI_BASE_ADDRESS_5), 0x8);
    CHECK_EQ(model_get32(m.cfg + PCI_ROM_ADDRESS), 0);

    model_header(&m, bars, 0xffff0001);
    model_pm(&m, 0x40);
    /* Every offset of the header, every width, straddling into the PM cap. */
    model_sweep(&c, &m, 0, 0x48, "header", rearm_status, &srv);
    model_check(&c, &m, 0, 256, "final", 0, 1, (const uint8_t *)"\0");

    /* Read-only registers kept the device's values. */
    CHECK_MEM(m.cfg, initial, 4);
    CHECK_MEM(m.cfg + PCI_REVISION_ID, initial + PCI_REVISION_ID, 4);
    CHECK_MEM(m.cfg + PCI_HEADER_TYPE, initial + PCI_HEADER_TYPE, 2);
    CHECK_MEM(m.cfg + PCI_CARDBUS_CIS, initial + PCI_CARDBUS_CIS, 8);
    CHECK_MEM(m.cfg + PCI_CAPABILITY_LIST, initial + PCI_CAPABILITY_LIST, 8);
    CHECK_MEM(m.cfg + PCI_INTERRUPT_PIN, initial + PCI_INTERRUPT_PIN, 3);
    CHECK_MEM(m.cfg + 0x48, initial + 0x48, 256 - 0x48);

    vfu_test_client_close(&c);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);
}

static uint64_t
cfg_rw(struct vfu_test_client *c, size_t off, unsigned width, uint64_t val)
{
    uint64_t got = 0xdeadbeef;

    CHECK_OK(vfu_test_cfg_write_val(c, off, width, val));
    CHECK_OK(vfu_test_cfg_read_val(c, off, width, &got));
    return got;
}

static int
resize_bars(vfu_ctx_t *ctx, void *arg)
{
    if (setup_bar(ctx, 0, 0x10000, VFU_REGION_FLAG_MEM) < 0 || setup_bar(ctx, 1, 4, 0) < 0 ||
        setup_bar(ctx, 4, 0x100000, VFU_REGION_FLAG_MEM) < 0) {
        return -1;
    }
    return 0;
}

static void
test_bar_sizing(void)
{
    static struct device dev;
    struct vfu_test_server srv;
    struct vfu_test_client c;
    char path[108];
    vfu_ctx_t *ctx;

    device_init(&dev);
    ctx = header_device(path, sizeof(path), &dev);
    REQUIRE(ctx != NULL);
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, path));

    /* All ones reads back the size mask with the type bits. */
    CHECK_EQ(cfg_rw(&c, PCI_BASE_ADDRESS_0, 4, 0xffffffff), 0xfffff000);
    CHECK_EQ(cfg_rw(&c, PCI_BASE_ADDRESS_1, 4, 0xffffffff), 0xffffff01);
    CHECK_EQ(cfg_rw(&c, PCI_BASE_ADDRESS_2, 4, 0xffffffff), 0x0000000c);
    CHECK_EQ(cfg_rw(&c, PCI_BASE_ADDRESS_3, 4, 0xffffffff), 0xfffffffe);
    CHECK_EQ(cfg_rw(&c, PCI_BASE_ADDRESS_4, 4, 0xffffffff), 0);
    CHECK_EQ(cfg_rw(&c, PCI_BASE_ADDRESS_5, 4, 0xffffffff), 0xfffffff8);
    /* A 64-bit pair sized with one 8-byte access. */
    CHECK_EQ(cfg_rw(&c, PCI_BASE_ADDRESS_2, 8, ~0ull), 0xfffffffe0000000cull);
    /* Addresses keep the bits above the size. */
    CHECK_EQ(cfg_rw(&c, PCI_BASE_ADDRESS_0, 4, 0xfebc1234), 0xfebc1000);
    CHECK_EQ(cfg_rw(&c, PCI_BASE_ADDRESS_1, 4, 0xc0ff), 0xc001);
    CHECK_EQ(cfg_rw(&c, PCI_BASE_ADDRESS_2, 8, 0x0000000412345678ull), 0x000000040000000cull);
    CHECK_EQ(cfg_rw(&c, PCI_BASE_ADDRESS_5, 4, 0xe000001f), 0xe0000018);
    /* Byte by byte, as some firmware does. */
    CHECK_EQ(cfg_rw(&c, PCI_BASE_ADDRESS_0 + 1, 1, 0xff), 0xf0);
    CHECK_EQ(cfg_rw(&c, PCI_BASE_ADDRESS_0, 1, 0xff), 0x00);

    /* ROM: address bits above its size and the enable bit. */
    CHECK_EQ(cfg_rw(&c, PCI_ROM_ADDRESS, 4, 0xffffffff), 0xffff0001);
    CHECK_EQ(cfg_rw(&c, PCI_ROM_ADDRESS, 4, 0xfffff800), 0xffff0000);
    CHECK_EQ(cfg_rw(&c, PCI_ROM_ADDRESS, 4, 0x000a07ff), 0x000a0001);
    CHECK_EQ(cfg_rw(&c, PCI_ROM_ADDRESS, 4, 0), 0);

    /* Regions set up again after realize are sized as they are now. */
    CHECK_OK(vfu_test_server_call(&srv, resize_bars, NULL));
    CHECK_EQ(cfg_rw(&c, PCI_BASE_ADDRESS_0, 4, 0xffffffff), 0xffff0000);
    CHECK_EQ(cfg_rw(&c, PCI_BASE_ADDRESS_1, 4, 0xffffffff), 0xfffffffd);
    CHECK_EQ(cfg_rw(&c, PCI_BASE_ADDRESS_4, 4, 0xffffffff), 0xfff00000);
    /* Address bits below the new size read as 0, not as left over. */
    CHECK_EQ(cfg_rw(&c, PCI_BASE_ADDRESS_0 + 1, 1, 0), 0);

    vfu_test_client_close(&c);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);
}

static void
test_command_status(void)
{
    static struct device dev;
    struct vfu_test_server srv;
    struct vfu_test_client c;
    char path[108];
    uint64_t v;
    vfu_ctx_t *ctx;

    device_init(&dev);
    ctx = header_device(path, sizeof(path), &dev);
    REQUIRE(ctx != NULL);
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, path));

    CHECK_EQ(cfg_rw(&c, PCI_COMMAND, 2, 0xffff), 0x0557);
    CHECK_EQ(cfg_rw(&c, PCI_COMMAND, 2, 0x0406), 0x0406);
    CHECK_EQ(cfg_rw(&c, PCI_COMMAND, 2, 0x0000), 0);

    vfu_test_server_call(&srv, set_status_errors, NULL);
    CHECK_EQ(cfg_rw(&c, PCI_STATUS, 2, 0x0000), 0xf910);
    CHECK_EQ(cfg_rw(&c, PCI_STATUS, 2, 0x00ff), 0xf910);
    CHECK_EQ(cfg_rw(&c, PCI_STATUS, 2, 0x0100), 0xf810);
    CHECK_EQ(cfg_rw(&c, PCI_STATUS, 1, 0xff), 0x10);
    CHECK_EQ(cfg_rw(&c, PCI_STATUS + 1, 1, 0x88), 0x70);
    CHECK_EQ(cfg_rw(&c, PCI_STATUS, 2, 0xffff), 0x0010);
    /* Command and status in one dword. */
    vfu_test_server_call(&srv, set_status_errors, NULL);
    CHECK_EQ(cfg_rw(&c, PCI_COMMAND, 4, 0xffffffff), 0x00100557);

    /* Read-only registers: the writes succeed and change nothing. */
    CHECK_EQ(cfg_rw(&c, PCI_VENDOR_ID, 4, 0xffffffff), 0x56781234);
    CHECK_EQ(cfg_rw(&c, PCI_REVISION_ID, 4, 0), 0x02800142);
    CHECK_EQ(cfg_rw(&c, PCI_SUBSYSTEM_VENDOR_ID, 4, 0), 0xdef09abc);
    CHECK_EQ(cfg_rw(&c, PCI_CARDBUS_CIS, 4, 0), 0x12345678);
    CHECK_EQ(cfg_rw(&c, PCI_HEADER_TYPE, 2, 0xffff), 0x8000);
    CHECK_EQ(cfg_rw(&c, PCI_CAPABILITY_LIST, 1, 0x80), 0x40);
    CHECK_EQ(cfg_rw(&c, PCI_INTERRUPT_LINE, 4, 0xffffffff), 0x221101ff);
    /* Cache line size and latency timer are plain storage. */
    CHECK_EQ(cfg_rw(&c, PCI_CACHE_LINE_SIZE, 2, 0x4010), 0x4010);
    /* Bytes no one emulates, without a callback: writes ignored. */
    CHECK_EQ(cfg_rw(&c, 0x80, 1, 0x00), 0x77);
    CHECK_OK(vfu_test_cfg_read_val(&c, 0x7d, 4, &v));
    CHECK_EQ(v, 0x77000000);

    vfu_test_client_close(&c);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);
}

static void
test_bounds(void)
{
    static struct device dev;
    struct vfu_test_server srv;
    struct vfu_test_client c;
    char path[108];
    uint8_t buf[512];
    vfu_ctx_t *ctx;

    device_init(&dev);
    ctx = header_device(path, sizeof(path), &dev);
    REQUIRE(ctx != NULL);

    /* Directly: bounds of the config access itself. */
    CHECK_EQ(pci_config_access(ctx, (char *)buf, 0, 256, false), 0);
    CHECK_EQ(pci_config_access(ctx, (char *)buf, 1, 256, false), -EINVAL);
    CHECK_EQ(pci_config_access(ctx, (char *)buf, 2, 255, true), -EINVAL);
    CHECK_EQ(pci_config_access(ctx, (char *)buf, 257, 0, false), -EINVAL);
    CHECK_EQ(pci_config_access(ctx, (char *)buf, 1, UINT64_MAX, false), -EINVAL);
    CHECK_EQ(pci_config_access(ctx, (char *)buf, 256, 0, false), 256);

    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, path));
    CHECK_EQ(vfu_test_cfg_read(&c, 0x100, 1, buf), EINVAL);
    CHECK_EQ(vfu_test_cfg_read(&c, 0xff, 2, buf), EINVAL);
    CHECK_EQ(vfu_test_cfg_read(&c, 0, 257, buf), EINVAL);
    CHECK_EQ(vfu_test_cfg_read(&c, UINT64_MAX, 1, buf), EINVAL);
    CHECK_EQ(vfu_test_cfg_write(&c, 0xfe, 4, "\xff\xff\xff\xff"), EINVAL);
    CHECK_EQ(vfu_test_cfg_write(&c, 0x100, 1, "\xff"), EINVAL);
    CHECK_EQ(vfu_test_cfg_write(&c, UINT64_MAX - 1, 4, "\xff\xff\xff\xff"), EINVAL);
    CHECK_EQ(vfu_test_cfg_read(&c, 0xfc, 4, buf), 0);
    CHECK_EQ(vfu_test_cfg_read(&c, 0, 256, buf), 0);
    CHECK_EQ(vfu_test_cfg_read(&c, 0x10, 0, buf), 0);
    CHECK_EQ(vfu_test_cfg_write(&c, 0x04, 0, buf), 0);
    /* Large writes over everything are accepted and follow the same rules. */
    memset(buf, 0xff, 256);
    CHECK_EQ(vfu_test_cfg_write(&c, 0, 256, buf), 0);
    CHECK_EQ(vfu_test_cfg_read(&c, 0, 256, buf), 0);
    CHECK_EQ(pci_get32(buf + PCI_VENDOR_ID), 0x56781234);
    CHECK_EQ(pci_get16(buf + PCI_COMMAND), 0x0557);
    CHECK_EQ(pci_get32(buf + PCI_BASE_ADDRESS_0), 0xfffff000);
    CHECK_EQ(buf[0x80], 0x77);

    vfu_test_client_close(&c);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);

    /* No config space at all. */
    ctx = new_ctx("cfg-none", path, sizeof(path), &dev);
    REQUIRE(ctx != NULL);
    CHECK_EQ(pci_config_access(ctx, (char *)buf, 1, 0, false), -EINVAL);
    CHECK(!pci_config_write_needs_quiesce(ctx, 0, buf, 1));
    vfu_destroy_ctx(ctx);
}

/* ------------------------------------------------------------- routing */

static void
check_call(struct device *dev, int calls, uint64_t off, unsigned count, bool is_write)
{
    CHECK_EQ(atomic_load(&dev->calls), calls);
    CHECK_EQ(atomic_load(&dev->last_offset), off);
    CHECK_EQ(atomic_load(&dev->last_count), count);
    CHECK_EQ(atomic_load(&dev->last_write), is_write);
}

static void
test_always_cb(void)
{
    static struct device dev;
    struct vfu_test_server srv;
    struct vfu_test_client c;
    char path[108];
    uint64_t v;
    vfu_ctx_t *ctx;

    device_init(&dev);
    ctx = new_ctx("cfg-always", path, sizeof(path), &dev);
    REQUIRE(ctx != NULL);
    CHECK_OK(vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0));
    vfu_pci_set_id(ctx, 0x1111, 0x2222, 0, 0);
    CHECK_OK(setup_bar(ctx, 0, 0x1000, VFU_REGION_FLAG_MEM));
    CHECK_OK(vfu_setup_region(ctx, VFU_PCI_DEV_CFG_REGION_IDX, 256, cfg_cb,
                              VFU_REGION_FLAG_RW | VFU_REGION_FLAG_ALWAYS_CB, NULL, 0, -1, 0));
    REQUIRE_OK(vfu_realize_ctx(ctx));
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, path));

    /* Every access, header included, is the device's, verbatim. */
    CHECK_OK(vfu_test_cfg_read_val(&c, 0, 4, &v));
    CHECK_EQ(v, 0xa6a7a4a5);
    check_call(&dev, 1, 0, 4, false);
    CHECK_OK(vfu_test_cfg_write_val(&c, PCI_BASE_ADDRESS_0, 4, 0xffffffff));
    check_call(&dev, 2, PCI_BASE_ADDRESS_0, 4, true);
    CHECK_OK(vfu_test_cfg_read_val(&c, PCI_BASE_ADDRESS_0, 4, &v));
    CHECK_EQ(v, 0xffffffff);
    CHECK_OK(vfu_test_cfg_read_val(&c, 0x3f, 1, &v));
    check_call(&dev, 4, 0x3f, 1, false);
    /* Its errors reach the client. */
    atomic_store(&dev.fail_offset, 0x10);
    CHECK_EQ(vfu_test_cfg_read_val(&c, 0x10, 4, &v), ENOTTY);
    CHECK_EQ(vfu_test_cfg_read(&c, 0x100, 1, &v), EINVAL);

    vfu_test_client_close(&c);
    vfu_test_server_stop(&srv);
    /* The library's own copy was not touched. */
    CHECK_EQ(pci_get32((uint8_t *)vfu_pci_get_config_space(ctx)), 0x22221111);
    CHECK_EQ(pci_get32((uint8_t *)vfu_pci_get_config_space(ctx) + 0x10), 0);
    vfu_destroy_ctx(ctx);
}

static void
test_callback_cap(void)
{
    static struct device dev;
    struct vfu_test_server srv;
    struct vfu_test_client c;
    char path[108];
    uint8_t vsc[8] = { PCI_CAP_ID_VNDR, 0, 8, 1, 2, 3, 4, 5 };
    struct pmcap pm;
    uint8_t buf[8];
    uint64_t v;
    vfu_ctx_t *ctx;

    device_init(&dev);
    ctx = new_ctx("cfg-capcb", path, sizeof(path), &dev);
    REQUIRE(ctx != NULL);
    CHECK_OK(vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0));
    vfu_pci_set_id(ctx, 0x1111, 0x2222, 0, 0);
    CHECK_OK(vfu_setup_region(ctx, VFU_PCI_DEV_CFG_REGION_IDX, 256, cfg_cb, VFU_REGION_FLAG_RW,
                              NULL, 0, -1, 0));
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, VFU_CAP_FLAG_CALLBACK, vsc), 0x40);
    memset(&pm, 0, sizeof(pm));
    pm.hdr.id = PCI_CAP_ID_PM;
    pm.pc.vs = 3;
    CHECK_EQ(vfu_pci_add_capability(ctx, 0, 0, &pm), 0x48);
    REQUIRE_OK(vfu_realize_ctx(ctx));
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, path));

    /* The header is emulated: no callback. */
    CHECK_OK(vfu_test_cfg_read_val(&c, 0, 4, &v));
    CHECK_EQ(v, 0x22221111);
    CHECK_OK(vfu_test_cfg_write_val(&c, PCI_COMMAND, 2, 0x6));
    CHECK_EQ(atomic_load(&dev.calls), 0);

    /* The CALLBACK capability's bytes go to the device at their offsets. */
    CHECK_OK(vfu_test_cfg_read(&c, 0x40, 8, buf));
    check_call(&dev, 1, 0x40, 8, false);
    CHECK_MEM(buf, dev.cfg + 0x40, 8);
    CHECK_OK(vfu_test_cfg_write_val(&c, 0x44, 4, 0x01020304));
    check_call(&dev, 2, 0x44, 4, true);
    CHECK_EQ(pci_get32(dev.cfg + 0x44), 0x01020304);

    /* Straddling into the emulated PM capability: split at 0x48. */
    CHECK_OK(vfu_test_cfg_read(&c, 0x46, 4, buf));
    check_call(&dev, 3, 0x46, 2, false);
    CHECK_EQ(buf[0], dev.cfg[0x46]);
    CHECK_EQ(buf[1], dev.cfg[0x47]);
    CHECK_EQ(buf[2], PCI_CAP_ID_PM);
    CHECK_EQ(buf[3], 0);
    CHECK_OK(vfu_test_cfg_write_val(&c, 0x46, 4, 0xffffffff));
    check_call(&dev, 4, 0x46, 2, true);
    CHECK_OK(vfu_test_cfg_read_val(&c, 0x48, 2, &v));
    CHECK_EQ(atomic_load(&dev.calls), 4);
    CHECK_EQ(v, PCI_CAP_ID_PM);

    /* PM is ours; bytes no one emulates are the device's. */
    CHECK_OK(vfu_test_cfg_write_val(&c, 0x4c, 2, 0x0103));
    CHECK_OK(vfu_test_cfg_read_val(&c, 0x4c, 2, &v));
    CHECK_EQ(v, 0x0103);
    CHECK_EQ(atomic_load(&dev.calls), 4);
    CHECK_OK(vfu_test_cfg_read_val(&c, 0x60, 4, &v));
    check_call(&dev, 5, 0x60, 4, false);
    CHECK_EQ(v, pci_get32(dev.cfg + 0x60));
    CHECK_OK(vfu_test_cfg_write_val(&c, 0x4e, 4, 0xaabbccdd));
    check_call(&dev, 6, 0x50, 2, true);
    CHECK_EQ(pci_get16(dev.cfg + 0x50), 0xaabb);

    /* A failing callback fails the access with its errno. */
    atomic_store(&dev.fail_offset, 0x60);
    CHECK_EQ(vfu_test_cfg_read_val(&c, 0x60, 4, &v), ENOTTY);
    CHECK_EQ(vfu_test_cfg_write_val(&c, 0x60, 1, 0), ENOTTY);
    atomic_store(&dev.fail_offset, 0x40);
    CHECK_EQ(vfu_test_cfg_read_val(&c, 0x40, 2, &v), ENOTTY);

    vfu_test_client_close(&c);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);
}

/* ------------------------------------------------- allocation and sizing */

static int
add_vsc_late(vfu_ctx_t *ctx, void *arg)
{
    uint8_t vsc[4] = { PCI_CAP_ID_VNDR, 0, 4, 0x99 };

    return (int)vfu_pci_add_capability(ctx, 0, 0, vsc);
}

static void
test_config_sizes(void)
{
    static struct device dev;
    struct vfu_test_server srv;
    struct vfu_test_client c;
    char path[108];
    uint8_t buf[4];
    uint64_t v;
    vfu_ctx_t *ctx;

    device_init(&dev);

    /* No vfu_pci_init: realize makes 256 zero bytes. */
    ctx = new_ctx("cfg-default", path, sizeof(path), &dev);
    REQUIRE(ctx != NULL);
    REQUIRE_OK(vfu_realize_ctx(ctx));
    CHECK(vfu_pci_get_config_space(ctx) != NULL);
    CHECK_EQ(ctx->regions[VFU_PCI_DEV_CFG_REGION_IDX].size, 256);
    CHECK_EQ(ctx->regions[VFU_PCI_DEV_CFG_REGION_IDX].flags, VFU_REGION_FLAG_RW);
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, path));
    CHECK_OK(vfu_test_cfg_read_val(&c, 0xfc, 4, &v));
    CHECK_EQ(v, 0);
    CHECK_EQ(vfu_test_cfg_read(&c, 0x100, 1, buf), EINVAL);
    /* Capabilities added after realize are live and linked. */
    CHECK_EQ(vfu_test_server_call(&srv, add_vsc_late, NULL), 0x40);
    CHECK_OK(vfu_test_cfg_read_val(&c, PCI_CAPABILITY_LIST, 1, &v));
    CHECK_EQ(v, 0x40);
    CHECK_OK(vfu_test_cfg_read_val(&c, 0x40, 4, &v));
    CHECK_EQ(v, 0x99040009);
    CHECK_OK(vfu_test_cfg_read_val(&c, PCI_STATUS, 2, &v));
    CHECK_EQ(v, PCI_STATUS_CAP_LIST);
    CHECK_EQ(cfg_rw(&c, 0x43, 1, 0x55), 0x55);
    vfu_test_client_close(&c);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);

    /* A config region resized after vfu_pci_init keeps what was set. */
    ctx = new_ctx("cfg-resize", path, sizeof(path), &dev);
    REQUIRE(ctx != NULL);
    CHECK_OK(vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0));
    vfu_pci_set_id(ctx, 0xabcd, 0x0123, 0, 0);
    CHECK_OK(vfu_setup_region(ctx, VFU_PCI_DEV_CFG_REGION_IDX, 4096, NULL, VFU_REGION_FLAG_RW, NULL,
                              0, -1, 0));
    REQUIRE_OK(vfu_realize_ctx(ctx));
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, path));
    CHECK_OK(vfu_test_cfg_read_val(&c, 0, 4, &v));
    CHECK_EQ(v, 0x0123abcd);
    CHECK_OK(vfu_test_cfg_read_val(&c, 0xffc, 4, &v));
    CHECK_EQ(v, 0);
    CHECK_EQ(cfg_rw(&c, 0x800, 4, 0xffffffff), 0);
    CHECK_EQ(vfu_test_cfg_read(&c, 0x1000, 1, buf), EINVAL);
    vfu_test_client_close(&c);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);

    /* Shrinking below an extended capability is refused at realize. */
    ctx = new_ctx("cfg-shrink", path, sizeof(path), &dev);
    REQUIRE(ctx != NULL);
    CHECK_OK(vfu_pci_init(ctx, VFU_PCI_TYPE_EXPRESS, PCI_HEADER_TYPE_NORMAL, 0));
    {
        struct dsncap dsn = { .hdr = { .id = PCI_EXT_CAP_ID_DSN, .version = 1 } };

        CHECK_EQ(vfu_pci_add_capability(ctx, 0, VFU_CAP_FLAG_EXTENDED, &dsn), 0x100);
    }
    CHECK_OK(vfu_setup_region(ctx, VFU_PCI_DEV_CFG_REGION_IDX, 256, NULL, VFU_REGION_FLAG_RW, NULL,
                              0, -1, 0));
    CHECK_ERRNO(vfu_realize_ctx(ctx), EINVAL);
    vfu_destroy_ctx(ctx);
}

int
main(void)
{
    check_watchdog(100);
    RUN_TEST(test_header_sweep);
    RUN_TEST(test_bar_sizing);
    RUN_TEST(test_command_status);
    RUN_TEST(test_bounds);
    RUN_TEST(test_always_cb);
    RUN_TEST(test_callback_cap);
    RUN_TEST(test_config_sizes);
    return check_summary();
}
