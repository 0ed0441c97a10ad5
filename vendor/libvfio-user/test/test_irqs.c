/*
 * Interrupts over a real socket: GET_IRQ_INFO, SET_IRQS (eventfds, masks,
 * client triggers, every bad request), INTx's Interrupt Status and
 * Interrupt Disable bits, vfu_irq_trigger on the type config
 * space enables (or, without MSI/MSI-X capabilities, on the type installed
 * last), pending interrupts held back by SET_IRQS masks and by the
 * function's own MSI/MSI-X state, the emulated MSI-X table and PBA, what
 * DEVICE_RESET resets, and eventfds closed when the client leaves.
 */
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user.h"
#include "private.h"

#define NR_VECTORS 8
#define BAR_SIZE 0x1000u
#define TABLE_BAR 1
#define TABLE_OFF 0x800u
#define PBA_BAR 2
#define PBA_OFF 0x0u
#define WAIT_MS 2000
/* MSI Enable with all NR_VECTORS vectors (Multiple Message Enable = log2 8). */
#define MSI_ON (PCI_MSI_FLAGS_ENABLE | (3u << 4))

#define TRIGGER_NONE (VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_NONE)
#define TRIGGER_BOOL (VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_BOOL)
#define TRIGGER_EVENTFD (VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD)
#define MASK_NONE (VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_DATA_NONE)
#define MASK_BOOL (VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_DATA_BOOL)
#define UNMASK_NONE (VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_DATA_NONE)
#define UNMASK_BOOL (VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_DATA_BOOL)

struct state_call {
    int type;
    uint32_t start;
    uint32_t count;
    bool mask;
};

struct device {
    uint8_t bar[3][BAR_SIZE];
    int bar_calls[3];
    uint64_t bar_offset[3]; /* of the last access */
    size_t bar_count[3];
    struct state_call calls[32];
    int nr_calls;
    size_t msix_cap;
    size_t msi_cap;
    int resets[VFU_RESET_PCI_FLR + 1];
    int reset_errno; /* the reset callback fails with it if set */
};

/* Everything one test needs. */
struct fixture {
    struct device dev;
    vfu_ctx_t *ctx;
    struct vfu_test_server srv;
    struct vfu_test_client c;
    char path[108];
};

static ssize_t
bar_access(vfu_ctx_t *ctx, int idx, char *buf, size_t count, loff_t offset, bool is_write)
{
    struct device *dev = vfu_get_private(ctx);

    dev->bar_calls[idx]++;
    dev->bar_offset[idx] = (uint64_t)offset;
    dev->bar_count[idx] = count;
    if (is_write) {
        memcpy(dev->bar[idx] + offset, buf, count);
    } else {
        memcpy(buf, dev->bar[idx] + offset, count);
    }
    return (ssize_t)count;
}

static ssize_t
bar1_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    return bar_access(ctx, 1, buf, count, offset, is_write);
}

static ssize_t
bar2_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    return bar_access(ctx, 2, buf, count, offset, is_write);
}

static void
record_state(vfu_ctx_t *ctx, int type, uint32_t start, uint32_t count, bool mask)
{
    struct device *dev = vfu_get_private(ctx);

    if (dev->nr_calls < (int)VFU_ARRAY_LEN(dev->calls)) {
        dev->calls[dev->nr_calls++] = (struct state_call){ type, start, count, mask };
    }
}

static void
intx_state(vfu_ctx_t *ctx, uint32_t start, uint32_t count, bool mask)
{
    record_state(ctx, VFU_DEV_INTX_IRQ, start, count, mask);
}

static void
msi_state(vfu_ctx_t *ctx, uint32_t start, uint32_t count, bool mask)
{
    record_state(ctx, VFU_DEV_MSI_IRQ, start, count, mask);
}

static void
msix_state(vfu_ctx_t *ctx, uint32_t start, uint32_t count, bool mask)
{
    record_state(ctx, VFU_DEV_MSIX_IRQ, start, count, mask);
}

static int
on_reset(vfu_ctx_t *ctx, vfu_reset_type_t type)
{
    struct device *dev = vfu_get_private(ctx);

    dev->resets[type]++;
    if (dev->reset_errno != 0) {
        errno = dev->reset_errno;
        return -1;
    }
    return 0;
}

/*
 * INTx, 8 MSI and 8 MSI-X vectors. With msi_caps, an MSI-X capability (table
 * in BAR1 at 0x800, PBA at the start of BAR2) and an MSI capability (64-bit
 * addresses, per-vector masks); without, no capability at all.
 */
static bool
fixture_start(struct fixture *f, const char *name, bool msi_caps)
{
    struct msixcap msix = {
        .hdr = { .id = PCI_CAP_ID_MSIX },
        .mxc = { .ts = NR_VECTORS - 1 },
        .mtab = { .tbir = TABLE_BAR, .to = TABLE_OFF >> 3 },
        .mpba = { .pbir = PBA_BAR, .pbao = PBA_OFF >> 3 },
    };
    struct msicap msi = {
        .hdr = { .id = PCI_CAP_ID_MSI },
        .mc = { .mmc = 3, .c64 = 1, .pvm = 1 },
    };
    const int mem = VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM;
    vfu_ctx_t *ctx;
    ssize_t pos;

    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i < BAR_SIZE; i++) {
        f->dev.bar[1][i] = (uint8_t)(0xa0 + i % 16);
        f->dev.bar[2][i] = (uint8_t)(0x50 + i % 16);
    }
    vfu_test_sock_path(f->path, sizeof(f->path), name);
    ctx = f->ctx = vfu_create_ctx(VFU_TRANS_SOCK, f->path, LIBVFIO_USER_FLAG_ATTACH_NB, &f->dev,
                                  VFU_DEV_TYPE_PCI);
    if (ctx == NULL) {
        FAIL("vfu_create_ctx: %s", strerror(errno));
        return false;
    }
    vfu_setup_log(ctx, vfu_test_log_stderr, LOG_DEBUG);
    if (!CHECK_OK(vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0)) ||
        !CHECK_OK(vfu_setup_region(ctx, TABLE_BAR, BAR_SIZE, bar1_cb, mem, NULL, 0, -1, 0)) ||
        !CHECK_OK(vfu_setup_region(ctx, PBA_BAR, BAR_SIZE, bar2_cb, mem, NULL, 0, -1, 0))) {
        return false;
    }
    if (msi_caps) {
        pos = vfu_pci_add_capability(ctx, 0, 0, &msix);
        CHECK_GT(pos, 0);
        f->dev.msix_cap = (size_t)pos;
        pos = vfu_pci_add_capability(ctx, 0, 0, &msi);
        CHECK_GT(pos, 0);
        f->dev.msi_cap = (size_t)pos;
    }
    CHECK_OK(vfu_setup_device_reset_cb(ctx, on_reset));
    CHECK_OK(vfu_setup_device_nr_irqs(ctx, VFU_DEV_INTX_IRQ, 1));
    CHECK_OK(vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSI_IRQ, NR_VECTORS));
    CHECK_OK(vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, NR_VECTORS));
    CHECK_OK(vfu_setup_irq_state_callback(ctx, VFU_DEV_INTX_IRQ, intx_state));
    CHECK_OK(vfu_setup_irq_state_callback(ctx, VFU_DEV_MSI_IRQ, msi_state));
    CHECK_OK(vfu_setup_irq_state_callback(ctx, VFU_DEV_MSIX_IRQ, msix_state));
    return CHECK_OK(vfu_realize_ctx(ctx)) && CHECK_OK(vfu_test_server_start(&f->srv, ctx)) &&
           CHECK_OK(vfu_test_client_open(&f->c, f->path));
}

static void
fixture_stop(struct fixture *f)
{
    vfu_test_client_close(&f->c);
    vfu_test_server_stop(&f->srv);
    vfu_destroy_ctx(f->ctx);
}

static int
do_trigger(vfu_ctx_t *ctx, void *arg)
{
    return vfu_irq_trigger(ctx, *(uint32_t *)arg);
}

/* vfu_irq_trigger on the server thread. */
static int
trigger(struct fixture *f, uint32_t subindex)
{
    return vfu_test_server_call(&f->srv, do_trigger, &subindex);
}

static int
set_irqs(struct fixture *f, uint32_t index, uint32_t flags, uint32_t start, uint32_t count,
         const void *data, size_t len)
{
    return vfu_test_set_irqs(&f->c, index, flags, start, count, data, len, NULL, 0);
}

static bool
new_eventfds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fds[i] = vfu_test_eventfd_new();
        if (fds[i] < 0) {
            FAIL("eventfd: %s", strerror(errno));
            return false;
        }
    }
    return true;
}

static void
close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        close(fds[i]);
    }
}

/* Counter of each eventfd: only vector `which` (or none, -1) signalled once. */
static void
check_signalled(const int *fds, size_t n, int which)
{
    for (size_t i = 0; i < n; i++) {
        CHECK_MSG(vfu_test_eventfd_read(fds[i]) == ((int)i == which ? 1u : 0u),
                  "eventfd %zu (expected %d)", i, which);
    }
}

static uint64_t
pba(struct fixture *f)
{
    uint64_t val = UINT64_MAX;

    CHECK_EQ(vfu_test_region_read_val(&f->c, PBA_BAR, PBA_OFF, 8, &val), 0);
    return val;
}

static uint64_t
cfg_read(struct fixture *f, size_t offset, unsigned width)
{
    uint64_t val = UINT64_MAX;

    CHECK_EQ(vfu_test_cfg_read_val(&f->c, offset, width, &val), 0);
    return val;
}

/* What a driver writes to turn MSI-X (or MSI) on and off. */
static void
msix_control(struct fixture *f, uint16_t flags)
{
    CHECK_EQ(vfu_test_cfg_write_val(&f->c, f->dev.msix_cap + PCI_MSIX_FLAGS, 2, flags), 0);
}

static void
msi_control(struct fixture *f, uint16_t flags)
{
    CHECK_EQ(vfu_test_cfg_write_val(&f->c, f->dev.msi_cap + PCI_MSI_FLAGS, 2, flags), 0);
}

static uint64_t
table_read(struct fixture *f, uint32_t vector, unsigned field, unsigned width)
{
    uint64_t val = UINT64_MAX;

    CHECK_EQ(
        vfu_test_region_read_val(&f->c, TABLE_BAR, TABLE_OFF + vector * 16 + field, width, &val),
        0);
    return val;
}

static void
table_write(struct fixture *f, uint32_t vector, unsigned field, unsigned width, uint64_t val)
{
    CHECK_EQ(
        vfu_test_region_write_val(&f->c, TABLE_BAR, TABLE_OFF + vector * 16 + field, width, val),
        0);
}

static bool
state_call_is(struct device *dev, int i, int type, uint32_t start, uint32_t count, bool mask)
{
    return i < dev->nr_calls && dev->calls[i].type == type && dev->calls[i].start == start &&
           dev->calls[i].count == count && dev->calls[i].mask == mask;
}

static void
test_setup_errors(void)
{
    char path[108];
    vfu_ctx_t *ctx;

    vfu_test_sock_path(path, sizeof(path), "irq-setup");
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, 0, NULL, VFU_DEV_TYPE_PCI);
    REQUIRE(ctx != NULL);
    CHECK_ERRNO(vfu_setup_device_nr_irqs(NULL, VFU_DEV_MSI_IRQ, 1), EINVAL);
    CHECK_ERRNO(vfu_setup_irq_state_callback(NULL, VFU_DEV_MSI_IRQ, msi_state), EINVAL);
    CHECK_ERRNO(vfu_irq_trigger(NULL, 0), EINVAL);
    CHECK_ERRNO(vfu_setup_device_nr_irqs(ctx, VFU_DEV_NUM_IRQS, 1), EINVAL);
    CHECK_ERRNO(vfu_setup_device_nr_irqs(ctx, (enum vfu_dev_irq_type) - 1, 1), EINVAL);
    CHECK_ERRNO(vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, 2049), EINVAL);
    CHECK_OK(vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, 2048));
    CHECK_OK(vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, 0));
    CHECK_ERRNO(vfu_setup_irq_state_callback(ctx, VFU_DEV_NUM_IRQS, msix_state), EINVAL);
    CHECK_OK(vfu_setup_irq_state_callback(ctx, VFU_DEV_REQ_IRQ, msix_state));
    /*
     * No capabilities, nothing installed: INTx, which has no vectors. ERR and
     * REQ have one each, so vector 0 exists (ENOENT, as upstream); 1 does not.
     */
    CHECK_ERRNO(vfu_irq_trigger(ctx, 0), ENOENT);
    CHECK_ERRNO(vfu_irq_trigger(ctx, 1), EINVAL);
    CHECK_OK(vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, 4));
    CHECK_ERRNO(vfu_irq_trigger(ctx, 3), ENOENT);
    CHECK_ERRNO(vfu_irq_trigger(ctx, 4), EINVAL);
    CHECK_OK(vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, 0));
    CHECK_OK(vfu_setup_device_nr_irqs(ctx, VFU_DEV_INTX_IRQ, 1));
    CHECK_ERRNO(vfu_irq_trigger(ctx, 0), ENOENT);
    vfu_destroy_ctx(ctx);
}

static void
test_irq_info(void)
{
    static const uint32_t counts[VFU_DEV_NUM_IRQS] = { 1, NR_VECTORS, NR_VECTORS, 1, 1 };
    struct vfio_irq_info info;
    struct fixture f;

    if (!fixture_start(&f, "irq-info", true)) {
        return;
    }
    for (uint32_t i = 0; i < VFU_DEV_NUM_IRQS; i++) {
        memset(&info, 0xee, sizeof(info));
        CHECK_EQ(vfu_test_get_irq_info(&f.c, i, &info), 0);
        CHECK_EQ(info.argsz, 16);
        CHECK_EQ(info.flags, VFIO_IRQ_INFO_EVENTFD);
        CHECK_EQ(info.index, i);
        CHECK_EQ(info.count, counts[i]);
    }
    CHECK_EQ(vfu_test_get_irq_info(&f.c, VFU_DEV_NUM_IRQS, &info), EINVAL);
    CHECK_EQ(vfu_test_get_irq_info(&f.c, UINT32_MAX, &info), EINVAL);
    {
        struct vfio_irq_info req = { .argsz = 15, .index = 0 };

        CHECK_EQ(vfu_test_request(&f.c, VFIO_USER_DEVICE_GET_IRQ_INFO, &req, sizeof(req), NULL, 0,
                                  NULL, 0, NULL, NULL, NULL),
                 EINVAL);
        req.argsz = 16;
        CHECK_EQ(vfu_test_request(&f.c, VFIO_USER_DEVICE_GET_IRQ_INFO, &req, 12, NULL, 0, NULL, 0,
                                  NULL, NULL, NULL),
                 EINVAL);
    }
    CHECK_EQ(vfu_test_get_irq_info(&f.c, VFU_DEV_INTX_IRQ, &info), 0);
    fixture_stop(&f);
}

static void
test_intx(void)
{
    static const uint8_t yes = 1, no = 0;
    struct fixture f;
    int base, efd[2];

    if (!fixture_start(&f, "intx", true)) {
        return;
    }
    /* MSI and MSI-X stay disabled: the function signals INTx. */
    base = vfu_test_count_open_fds();
    REQUIRE(new_eventfds(efd, 2));
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_INTX_IRQ, 0, 1, &efd[0]), 0);
    CHECK_EQ(vfu_test_count_open_fds(), base + 3);

    CHECK_OK(trigger(&f, 0));
    CHECK_EQ(vfu_test_eventfd_wait(efd[0], WAIT_MS), 1);
    CHECK_ERRNO(trigger(&f, 1), ENOENT); /* another type has it */

    /* Masked: held pending, delivered on unmask, once. */
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, MASK_NONE, 0, 1, NULL, 0), 0);
    CHECK(state_call_is(&f.dev, 0, VFU_DEV_INTX_IRQ, 0, 1, true));
    CHECK_OK(trigger(&f, 0));
    CHECK_OK(trigger(&f, 0));
    CHECK_EQ(vfu_test_eventfd_read(efd[0]), 0);
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, UNMASK_NONE, 0, 1, NULL, 0), 0);
    CHECK(state_call_is(&f.dev, 1, VFU_DEV_INTX_IRQ, 0, 1, false));
    CHECK_EQ(vfu_test_eventfd_read(efd[0]), 1);
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, UNMASK_NONE, 0, 1, NULL, 0), 0);
    CHECK_EQ(vfu_test_eventfd_read(efd[0]), 0);
    CHECK_EQ(f.dev.nr_calls, 3);

    /* The client triggers it itself, without and with data. */
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, TRIGGER_NONE, 0, 1, NULL, 0), 0);
    CHECK_EQ(vfu_test_eventfd_read(efd[0]), 1);
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, TRIGGER_BOOL, 0, 1, &yes, 1), 0);
    CHECK_EQ(vfu_test_eventfd_read(efd[0]), 1);
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, TRIGGER_BOOL, 0, 1, &no, 1), 0);
    CHECK_EQ(vfu_test_eventfd_read(efd[0]), 0);
    /* A masked vector holds the client's trigger too. */
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, MASK_BOOL, 0, 1, &yes, 1), 0);
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, TRIGGER_NONE, 0, 1, NULL, 0), 0);
    CHECK_EQ(vfu_test_eventfd_read(efd[0]), 0);
    /* A false bool selects nothing: no callback, still masked. */
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, UNMASK_BOOL, 0, 1, &no, 1), 0);
    CHECK_EQ(f.dev.nr_calls, 4);
    CHECK_EQ(vfu_test_eventfd_read(efd[0]), 0);
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, UNMASK_BOOL, 0, 1, &yes, 1), 0);
    CHECK_EQ(f.dev.nr_calls, 5);
    CHECK_EQ(vfu_test_eventfd_read(efd[0]), 1);

    /* A new eventfd replaces (and closes) the old one. */
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_INTX_IRQ, 0, 1, &efd[1]), 0);
    CHECK_EQ(vfu_test_count_open_fds(), base + 3);
    CHECK_OK(trigger(&f, 0));
    CHECK_EQ(vfu_test_eventfd_read(efd[0]), 0);
    CHECK_EQ(vfu_test_eventfd_read(efd[1]), 1);

    /* No fds de-assigns; count 0 disables the type. Both close. */
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_INTX_IRQ, 0, 1, NULL), 0);
    CHECK_EQ(vfu_test_count_open_fds(), base + 2);
    CHECK_ERRNO(trigger(&f, 0), ENOENT);
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, TRIGGER_NONE, 0, 1, NULL, 0), 0);
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_INTX_IRQ, 0, 1, &efd[0]), 0);
    CHECK_EQ(vfu_test_count_open_fds(), base + 3);
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, TRIGGER_NONE, 0, 0, NULL, 0), 0);
    CHECK_EQ(vfu_test_count_open_fds(), base + 2);
    CHECK_ERRNO(trigger(&f, 0), ENOENT);
    close_fds(efd, 2);
    fixture_stop(&f);
}

/* Status bit 3 (Interrupt Status) as the client reads it. */
static bool
intx_status(struct fixture *f)
{
    uint64_t status = 0;

    CHECK_EQ(vfu_test_cfg_read_val(&f->c, PCI_STATUS, 2, &status), 0);
    return (status & PCI_STATUS_INTERRUPT) != 0;
}

static void
set_command(struct fixture *f, uint16_t command)
{
    CHECK_EQ(vfu_test_cfg_write_val(&f->c, PCI_COMMAND, 2, command), 0);
}

static void
test_intx_status(void)
{
    struct fixture f;
    int efd;

    if (!fixture_start(&f, "intx-status", true)) {
        return;
    }
    REQUIRE(new_eventfds(&efd, 1));
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_INTX_IRQ, 0, 1, &efd), 0);
    CHECK(!intx_status(&f));

    /* Asserted from the trigger until the client unmasks after the EOI. */
    CHECK_OK(trigger(&f, 0));
    CHECK_EQ(vfu_test_eventfd_wait(efd, WAIT_MS), 1);
    CHECK(intx_status(&f));
    /* Read-only to the client, even written as 1. */
    CHECK_EQ(vfu_test_cfg_write_val(&f.c, PCI_STATUS, 2, PCI_STATUS_INTERRUPT), 0);
    CHECK(intx_status(&f));
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, UNMASK_NONE, 0, 1, NULL, 0), 0);
    CHECK(!intx_status(&f));
    CHECK_EQ(vfu_test_eventfd_read(efd), 0);

    /* Command bit 10: status shows the interrupt, nothing is signalled
     * until the driver clears the bit, then exactly once. */
    set_command(&f, PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE);
    CHECK_OK(trigger(&f, 0));
    CHECK(intx_status(&f));
    CHECK_EQ(vfu_test_eventfd_read(efd), 0);
    set_command(&f, PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE);
    CHECK_EQ(vfu_test_eventfd_read(efd), 0);
    set_command(&f, PCI_COMMAND_MEMORY);
    CHECK_EQ(vfu_test_eventfd_read(efd), 1);
    CHECK(intx_status(&f));
    set_command(&f, PCI_COMMAND_MEMORY);
    CHECK_EQ(vfu_test_eventfd_read(efd), 0);
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, UNMASK_NONE, 0, 1, NULL, 0), 0);
    CHECK(!intx_status(&f));

    /* Raised again before the EOI while masked: the unmask delivers it and
     * status stays set for that new assertion; the next unmask clears it. */
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, MASK_NONE, 0, 1, NULL, 0), 0);
    CHECK_OK(trigger(&f, 0));
    CHECK_EQ(vfu_test_eventfd_read(efd), 0);
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, UNMASK_NONE, 0, 1, NULL, 0), 0);
    CHECK_EQ(vfu_test_eventfd_read(efd), 1);
    CHECK(intx_status(&f));
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, UNMASK_NONE, 0, 1, NULL, 0), 0);
    CHECK(!intx_status(&f));

    /* A reset de-asserts, also an interrupt held by command bit 10. */
    set_command(&f, PCI_COMMAND_INTX_DISABLE);
    CHECK_OK(trigger(&f, 0));
    CHECK(intx_status(&f));
    CHECK_EQ(vfu_test_device_reset(&f.c), 0);
    CHECK(!intx_status(&f));
    set_command(&f, 0);
    CHECK_EQ(vfu_test_eventfd_read(efd), 0);
    close_fds(&efd, 1);
    fixture_stop(&f);
}

static void
test_msix(void)
{
    static const uint8_t sel_mask[4] = { 1, 1, 0, 1 };
    static const uint8_t sel_unmask[4] = { 0, 1, 0, 0 };
    uint8_t buf[16];
    struct fixture f;
    int efd[NR_VECTORS];
    int base, calls;

    if (!fixture_start(&f, "msix", true)) {
        return;
    }
    REQUIRE(new_eventfds(efd, NR_VECTORS));
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_MSIX_IRQ, 0, NR_VECTORS, efd), 0);

    /* While MSI-X is disabled the function signals INTx, which has no eventfd. */
    CHECK_EQ(pba(&f), 0);
    CHECK_ERRNO(trigger(&f, 0), ENOENT);
    check_signalled(efd, NR_VECTORS, -1);
    CHECK_EQ(pba(&f), 0);
    /* The client's own MSI-X trigger is held in the PBA until MSI-X is enabled. */
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, TRIGGER_NONE, 0, 1, NULL, 0), 0);
    check_signalled(efd, NR_VECTORS, -1);
    CHECK_EQ(pba(&f), 0x1);
    msix_control(&f, PCI_MSIX_FLAGS_ENABLE);
    CHECK_EQ(pba(&f), 0);
    check_signalled(efd, NR_VECTORS, 0);
    CHECK_OK(trigger(&f, 1));
    check_signalled(efd, NR_VECTORS, 1);
    CHECK_ERRNO(trigger(&f, NR_VECTORS), EINVAL);

    /* Function mask. */
    msix_control(&f, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    CHECK_OK(trigger(&f, 1));
    CHECK_EQ(pba(&f), 0x2);
    check_signalled(efd, NR_VECTORS, -1);
    msix_control(&f, PCI_MSIX_FLAGS_ENABLE);
    CHECK_EQ(pba(&f), 0);
    check_signalled(efd, NR_VECTORS, 1);

    /* The table starts zeroed and unmasked. */
    CHECK_EQ(vfu_test_region_read(&f.c, TABLE_BAR, TABLE_OFF, sizeof(buf), buf), 0);
    CHECK_MEM(buf, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
    /* A whole entry written at once; the vector's mask bit holds it. */
    {
        uint32_t entry[4] = { 0xfee00000, 0x1, 0x4022, 0x1 };

        CHECK_EQ(vfu_test_region_write(&f.c, TABLE_BAR, TABLE_OFF + 2 * 16, 16, entry), 0);
        CHECK_EQ(vfu_test_region_read(&f.c, TABLE_BAR, TABLE_OFF + 2 * 16, 16, buf), 0);
        CHECK_MEM(buf, entry, 16);
    }
    CHECK_OK(trigger(&f, 2));
    CHECK_EQ(pba(&f), 0x4);
    check_signalled(efd, NR_VECTORS, -1);
    table_write(&f, 2, PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
    CHECK_EQ(pba(&f), 0);
    check_signalled(efd, NR_VECTORS, 2);
    CHECK_EQ(table_read(&f, 2, PCI_MSIX_ENTRY_DATA, 4), 0x4022);

    /* Only the mask bit of vector control is writable. */
    table_write(&f, 3, PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0xffffffff);
    CHECK_EQ(table_read(&f, 3, PCI_MSIX_ENTRY_VECTOR_CTRL, 4), 1);
    table_write(&f, 3, PCI_MSIX_ENTRY_VECTOR_CTRL, 1, 0);
    CHECK_EQ(table_read(&f, 3, PCI_MSIX_ENTRY_VECTOR_CTRL, 4), 0);
    /* Any size at any alignment: the data's top byte and the mask together. */
    {
        uint8_t two[2] = { 0xab, 0x01 };

        CHECK_EQ(vfu_test_region_write(&f.c, TABLE_BAR, TABLE_OFF + 4 * 16 + 11, 2, two), 0);
        CHECK_EQ(table_read(&f, 4, PCI_MSIX_ENTRY_DATA, 4), 0xab000000);
        CHECK_EQ(table_read(&f, 4, PCI_MSIX_ENTRY_VECTOR_CTRL, 4), 1);
        CHECK_OK(trigger(&f, 4));
        CHECK_EQ(pba(&f), 0x10);
        table_write(&f, 4, PCI_MSIX_ENTRY_VECTOR_CTRL, 1, 0);
        check_signalled(efd, NR_VECTORS, 4);
        CHECK_EQ(pba(&f), 0);
    }

    /* Bytes beside the table and the PBA belong to the device. */
    calls = f.dev.bar_calls[TABLE_BAR];
    CHECK_EQ(vfu_test_region_read(&f.c, TABLE_BAR, TABLE_OFF - 8, 16, buf), 0);
    CHECK_EQ(f.dev.bar_calls[TABLE_BAR], calls + 1);
    CHECK_EQ(f.dev.bar_offset[TABLE_BAR], TABLE_OFF - 8);
    CHECK_EQ(f.dev.bar_count[TABLE_BAR], 8);
    CHECK_MEM(buf, f.dev.bar[TABLE_BAR] + TABLE_OFF - 8, 8);
    CHECK_MEM(buf + 8, "\0\0\0\0\0\0\0\0", 8);
    memset(buf, 0x77, sizeof(buf));
    CHECK_EQ(vfu_test_region_write(&f.c, TABLE_BAR, TABLE_OFF + 8 * 16 - 8, 16, buf), 0);
    CHECK_EQ(f.dev.bar_offset[TABLE_BAR], TABLE_OFF + 8 * 16);
    CHECK_EQ(f.dev.bar_count[TABLE_BAR], 8);
    CHECK_EQ(f.dev.bar[TABLE_BAR][TABLE_OFF + 8 * 16], 0x77);
    CHECK_EQ(f.dev.bar[TABLE_BAR][TABLE_OFF + 8 * 16 - 1], 0xa0 + 15);
    CHECK_EQ(table_read(&f, 7, PCI_MSIX_ENTRY_DATA, 4), 0x77777777);
    CHECK_EQ(table_read(&f, 7, PCI_MSIX_ENTRY_VECTOR_CTRL, 4), 1);
    table_write(&f, 7, PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
    calls = f.dev.bar_calls[PBA_BAR];
    memset(buf, 0xff, sizeof(buf));
    CHECK_EQ(vfu_test_region_write(&f.c, PBA_BAR, PBA_OFF, 8, buf), 0);
    CHECK_EQ(f.dev.bar_calls[PBA_BAR], calls);
    CHECK_EQ(pba(&f), 0);
    CHECK_EQ(vfu_test_region_read(&f.c, PBA_BAR, PBA_OFF, 12, buf), 0);
    CHECK_EQ(f.dev.bar_calls[PBA_BAR], calls + 1);
    CHECK_EQ(f.dev.bar_offset[PBA_BAR], PBA_OFF + 8);
    CHECK_EQ(f.dev.bar_count[PBA_BAR], 4);

    /* SET_IRQS masks: callback, pending, delivered on unmask. */
    f.dev.nr_calls = 0;
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, MASK_NONE, 3, 1, NULL, 0), 0);
    CHECK(state_call_is(&f.dev, 0, VFU_DEV_MSIX_IRQ, 3, 1, true));
    CHECK_OK(trigger(&f, 3));
    CHECK_EQ(pba(&f), 0x8);
    check_signalled(efd, NR_VECTORS, -1);
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, UNMASK_NONE, 3, 1, NULL, 0), 0);
    CHECK(state_call_is(&f.dev, 1, VFU_DEV_MSIX_IRQ, 3, 1, false));
    check_signalled(efd, NR_VECTORS, 3);
    CHECK_EQ(pba(&f), 0);
    /* Bool data: one callback per run of selected vectors. */
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, MASK_BOOL, 4, 4, sel_mask, 4), 0);
    CHECK_EQ(f.dev.nr_calls, 4);
    CHECK(state_call_is(&f.dev, 2, VFU_DEV_MSIX_IRQ, 4, 2, true));
    CHECK(state_call_is(&f.dev, 3, VFU_DEV_MSIX_IRQ, 7, 1, true));
    CHECK_OK(trigger(&f, 6));
    check_signalled(efd, NR_VECTORS, 6);
    CHECK_OK(trigger(&f, 5));
    CHECK_OK(trigger(&f, 7));
    CHECK_EQ(pba(&f), 0xa0);
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, UNMASK_BOOL, 4, 4, sel_unmask, 4), 0);
    CHECK(state_call_is(&f.dev, 4, VFU_DEV_MSIX_IRQ, 5, 1, false));
    check_signalled(efd, NR_VECTORS, 5);
    CHECK_EQ(pba(&f), 0x80);
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, UNMASK_NONE, 0, NR_VECTORS, NULL, 0), 0);
    CHECK(state_call_is(&f.dev, 5, VFU_DEV_MSIX_IRQ, 0, NR_VECTORS, false));
    check_signalled(efd, NR_VECTORS, 7);
    CHECK_EQ(pba(&f), 0);
    /* Client triggers through SET_IRQS also respect the table's masks. */
    table_write(&f, 1, PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 1);
    {
        static const uint8_t sel[2] = { 1, 1 };

        CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, TRIGGER_BOOL, 0, 2, sel, 2), 0);
        check_signalled(efd, NR_VECTORS, 0);
        CHECK_EQ(pba(&f), 0x2);
    }

    /* A device reset disables MSI-X, forgets pending interrupts and resets the
     * table; enabled again, nothing old is delivered. */
    CHECK_EQ(vfu_test_device_reset(&f.c), 0);
    CHECK_EQ(cfg_read(&f, f.dev.msix_cap + PCI_MSIX_FLAGS, 2), NR_VECTORS - 1);
    CHECK_EQ(pba(&f), 0);
    CHECK_EQ(table_read(&f, 1, PCI_MSIX_ENTRY_VECTOR_CTRL, 4), 0);
    CHECK_EQ(table_read(&f, 2, PCI_MSIX_ENTRY_LOWER_ADDR, 4), 0);
    check_signalled(efd, NR_VECTORS, -1);
    msix_control(&f, PCI_MSIX_FLAGS_ENABLE);
    check_signalled(efd, NR_VECTORS, -1);

    /* De-assigning part of the range, then disabling the rest. */
    base = vfu_test_count_open_fds();
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_MSIX_IRQ, 0, 4, NULL), 0);
    CHECK_EQ(vfu_test_count_open_fds(), base - 4);
    CHECK_ERRNO(trigger(&f, 0), ENOENT);
    CHECK_OK(trigger(&f, 4));
    check_signalled(efd, NR_VECTORS, 4);
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, TRIGGER_NONE, 0, 0, NULL, 0), 0);
    CHECK_EQ(vfu_test_count_open_fds(), base - 8);
    CHECK_ERRNO(trigger(&f, 4), ENOENT);
    close_fds(efd, NR_VECTORS);
    fixture_stop(&f);
}

/* A pending vector whose eventfd comes later is delivered when it comes. */
static void
test_pending_until_eventfd(void)
{
    struct fixture f;
    int efd[NR_VECTORS];

    if (!fixture_start(&f, "pending", true)) {
        return;
    }
    REQUIRE(new_eventfds(efd, NR_VECTORS));
    msix_control(&f, PCI_MSIX_FLAGS_ENABLE);
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_MSIX_IRQ, 0, 5, efd), 0);
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, MASK_NONE, 5, 1, NULL, 0), 0);
    CHECK_OK(trigger(&f, 5));
    CHECK_EQ(pba(&f), 0x20);
    /* Unmasked, but with nowhere to deliver: still pending. */
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, UNMASK_NONE, 5, 1, NULL, 0), 0);
    CHECK_EQ(pba(&f), 0x20);
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_MSIX_IRQ, 5, 3, efd + 5), 0);
    check_signalled(efd, NR_VECTORS, 5);
    CHECK_EQ(pba(&f), 0);
    /* Without a mask or an eventfd the interrupt is lost, as upstream. */
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_MSIX_IRQ, 6, 1, NULL), 0);
    CHECK_ERRNO(trigger(&f, 6), ENOENT);
    CHECK_EQ(pba(&f), 0);
    close_fds(efd, NR_VECTORS);
    fixture_stop(&f);
}

static void
test_msi(void)
{
    struct fixture f;
    int efd[NR_VECTORS];
    uint64_t val;
    size_t mask_reg, pending_reg;

    if (!fixture_start(&f, "msi", true)) {
        return;
    }
    mask_reg = f.dev.msi_cap + PCI_MSI_MASK_64;
    pending_reg = f.dev.msi_cap + PCI_MSI_PENDING_64;
    REQUIRE(new_eventfds(efd, NR_VECTORS));
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_MSI_IRQ, 0, NR_VECTORS, efd), 0);
    msi_control(&f, MSI_ON);
    CHECK_OK(trigger(&f, 0));
    check_signalled(efd, NR_VECTORS, 0);
    CHECK_ERRNO(trigger(&f, NR_VECTORS), EINVAL);

    /* The capability's per-vector mask holds it in the pending bits. */
    CHECK_EQ(vfu_test_cfg_write_val(&f.c, mask_reg, 4, 0x2), 0);
    CHECK_OK(trigger(&f, 1));
    check_signalled(efd, NR_VECTORS, -1);
    CHECK_EQ(vfu_test_cfg_read_val(&f.c, pending_reg, 4, &val), 0);
    CHECK_EQ(val, 0x2);
    CHECK_EQ(vfu_test_cfg_write_val(&f.c, mask_reg, 4, 0), 0);
    check_signalled(efd, NR_VECTORS, 1);
    CHECK_EQ(vfu_test_cfg_read_val(&f.c, pending_reg, 4, &val), 0);
    CHECK_EQ(val, 0);

    /* SET_IRQS masks show in the pending bits too. */
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSI_IRQ, MASK_NONE, 2, 1, NULL, 0), 0);
    CHECK(state_call_is(&f.dev, 0, VFU_DEV_MSI_IRQ, 2, 1, true));
    CHECK_OK(trigger(&f, 2));
    CHECK_EQ(vfu_test_cfg_read_val(&f.c, pending_reg, 4, &val), 0);
    CHECK_EQ(val, 0x4);
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSI_IRQ, UNMASK_NONE, 2, 1, NULL, 0), 0);
    check_signalled(efd, NR_VECTORS, 2);
    CHECK_EQ(vfu_test_cfg_read_val(&f.c, pending_reg, 4, &val), 0);
    CHECK_EQ(val, 0);

    /* A reset disables MSI, clears the masks and forgets what they held. */
    CHECK_EQ(vfu_test_cfg_write_val(&f.c, mask_reg, 4, 0x8), 0);
    CHECK_OK(trigger(&f, 3));
    CHECK_EQ(vfu_test_cfg_read_val(&f.c, pending_reg, 4, &val), 0);
    CHECK_EQ(val, 0x8);
    CHECK_EQ(vfu_test_device_reset(&f.c), 0);
    CHECK_EQ(cfg_read(&f, f.dev.msi_cap + PCI_MSI_FLAGS, 2) & PCI_MSI_FLAGS_ENABLE, 0);
    CHECK_EQ(cfg_read(&f, mask_reg, 4), 0);
    CHECK_EQ(cfg_read(&f, pending_reg, 4), 0);
    check_signalled(efd, NR_VECTORS, -1);
    msi_control(&f, MSI_ON);
    check_signalled(efd, NR_VECTORS, -1);
    CHECK_OK(trigger(&f, 3));
    check_signalled(efd, NR_VECTORS, 3);
    close_fds(efd, NR_VECTORS);
    fixture_stop(&f);
}

/*
 * With MSI/MSI-X capabilities vfu_irq_trigger fires what config space
 * enables, as hardware does: MSI-X, else MSI, else INTx, whatever eventfds
 * the client installed and in whatever order.
 */
static void
test_type_from_config(void)
{
    struct fixture f;
    int intx, msi[NR_VECTORS], msix[NR_VECTORS], err, req;

    if (!fixture_start(&f, "type-config", true)) {
        return;
    }
    REQUIRE(new_eventfds(&intx, 1) && new_eventfds(msi, NR_VECTORS) &&
            new_eventfds(msix, NR_VECTORS) && new_eventfds(&err, 1) && new_eventfds(&req, 1));
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_MSIX_IRQ, 0, NR_VECTORS, msix), 0);
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_MSI_IRQ, 0, NR_VECTORS, msi), 0);
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_INTX_IRQ, 0, 1, &intx), 0);

    /* Neither enabled: INTx, which has one vector. */
    CHECK_OK(trigger(&f, 0));
    CHECK_EQ(vfu_test_eventfd_read(intx), 1);
    check_signalled(msi, NR_VECTORS, -1);
    check_signalled(msix, NR_VECTORS, -1);
    CHECK_ERRNO(trigger(&f, 5), ENOENT); /* another type has it */

    /* MSI enabled, MSI-X not: MSI. */
    msi_control(&f, MSI_ON);
    CHECK_OK(trigger(&f, 5));
    check_signalled(msi, NR_VECTORS, 5);
    check_signalled(msix, NR_VECTORS, -1);
    CHECK_EQ(vfu_test_eventfd_read(intx), 0);

    /* MSI-X enabled goes first, with MSI enabled too or not. */
    msix_control(&f, PCI_MSIX_FLAGS_ENABLE);
    CHECK_OK(trigger(&f, 5));
    check_signalled(msix, NR_VECTORS, 5);
    check_signalled(msi, NR_VECTORS, -1);
    msi_control(&f, 0);
    CHECK_OK(trigger(&f, 6));
    check_signalled(msix, NR_VECTORS, 6);
    CHECK_ERRNO(trigger(&f, NR_VECTORS), EINVAL);

    /* Eventfds installed later for another type change nothing. */
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_INTX_IRQ, 0, 1, &intx), 0);
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_MSI_IRQ, 0, 1, msi), 0);
    CHECK_OK(trigger(&f, 0));
    check_signalled(msix, NR_VECTORS, 0);
    check_signalled(msi, NR_VECTORS, -1);
    CHECK_EQ(vfu_test_eventfd_read(intx), 0);

    /* MSI-X disabled: back to INTx. */
    msix_control(&f, 0);
    CHECK_OK(trigger(&f, 0));
    CHECK_EQ(vfu_test_eventfd_read(intx), 1);
    check_signalled(msix, NR_VECTORS, -1);

    /* The enabled type without eventfds does not fall back to another. */
    msi_control(&f, MSI_ON);
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSI_IRQ, TRIGGER_NONE, 0, 0, NULL, 0), 0);
    CHECK_ERRNO(trigger(&f, 0), ENOENT);
    CHECK_EQ(vfu_test_eventfd_read(intx), 0);
    check_signalled(msix, NR_VECTORS, -1);

    /* ERR and REQ have their own eventfd, signalled by the client. */
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_ERR_IRQ, 0, 1, &err), 0);
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_REQ_IRQ, 0, 1, &req), 0);
    CHECK_ERRNO(trigger(&f, 0), ENOENT);
    CHECK_EQ(set_irqs(&f, VFU_DEV_ERR_IRQ, TRIGGER_NONE, 0, 1, NULL, 0), 0);
    CHECK_EQ(vfu_test_eventfd_read(err), 1);
    CHECK_EQ(vfu_test_eventfd_read(req), 0);
    CHECK_EQ(set_irqs(&f, VFU_DEV_REQ_IRQ, TRIGGER_NONE, 0, 1, NULL, 0), 0);
    CHECK_EQ(vfu_test_eventfd_read(req), 1);

    close_fds(&intx, 1);
    close_fds(msi, NR_VECTORS);
    close_fds(msix, NR_VECTORS);
    close_fds(&err, 1);
    close_fds(&req, 1);
    fixture_stop(&f);
}

/*
 * A device without MSI and MSI-X capabilities has no config state to go by:
 * vfu_irq_trigger fires the type whose eventfds the client installed last.
 */
static void
test_type_from_eventfds(void)
{
    struct fixture f;
    int intx, msi, msix[NR_VECTORS];

    if (!fixture_start(&f, "type-eventfds", false)) {
        return;
    }
    REQUIRE(new_eventfds(&intx, 1) && new_eventfds(&msi, 1) && new_eventfds(msix, NR_VECTORS));
    /* Nothing installed yet: INTx. */
    CHECK_ERRNO(trigger(&f, 0), ENOENT);
    CHECK_ERRNO(trigger(&f, 1), ENOENT); /* another type has it */

    /* MSI-X needs no enable here; SET_IRQS masks still hold it. */
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_MSIX_IRQ, 0, NR_VECTORS, msix), 0);
    CHECK_OK(trigger(&f, 5));
    check_signalled(msix, NR_VECTORS, 5);
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, MASK_NONE, 5, 1, NULL, 0), 0);
    CHECK_OK(trigger(&f, 5));
    check_signalled(msix, NR_VECTORS, -1);
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, UNMASK_NONE, 5, 1, NULL, 0), 0);
    check_signalled(msix, NR_VECTORS, 5);

    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_INTX_IRQ, 0, 1, &intx), 0);
    CHECK_OK(trigger(&f, 0));
    CHECK_EQ(vfu_test_eventfd_read(intx), 1);
    check_signalled(msix, NR_VECTORS, -1);
    CHECK_ERRNO(trigger(&f, 5), ENOENT); /* another type has it */

    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_MSI_IRQ, 0, 1, &msi), 0);
    CHECK_OK(trigger(&f, 0));
    CHECK_EQ(vfu_test_eventfd_read(msi), 1);
    CHECK_EQ(vfu_test_eventfd_read(intx), 0);
    /* Disabling a type or de-assigning vectors does not change the type. */
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSI_IRQ, TRIGGER_NONE, 0, 0, NULL, 0), 0);
    CHECK_ERRNO(trigger(&f, 0), ENOENT);
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_MSIX_IRQ, 0, 1, NULL), 0);
    CHECK_ERRNO(trigger(&f, 0), ENOENT);
    CHECK_EQ(vfu_test_eventfd_read(intx), 0);
    check_signalled(msix, NR_VECTORS, -1);
    /* MSI-X eventfds installed again make MSI-X the type again. */
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_MSIX_IRQ, 0, 1, msix), 0);
    CHECK_OK(trigger(&f, 7));
    check_signalled(msix, NR_VECTORS, 7);

    close_fds(&intx, 1);
    close_fds(&msi, 1);
    close_fds(msix, NR_VECTORS);
    fixture_stop(&f);
}

/*
 * What QEMU does as a driver enables MSI-X: Enable and Function Mask set
 * together, the INTx eventfd removed, and no MSI-X eventfd until vectors are
 * unmasked. An interrupt meanwhile belongs in the PBA, not on INTx.
 */
static void
test_masked_without_eventfds(void)
{
    struct fixture f;
    int intx, efd[NR_VECTORS];

    if (!fixture_start(&f, "masked-no-eventfds", true)) {
        return;
    }
    REQUIRE(new_eventfds(&intx, 1) && new_eventfds(efd, NR_VECTORS));
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_INTX_IRQ, 0, 1, &intx), 0);
    CHECK_OK(trigger(&f, 0));
    CHECK_EQ(vfu_test_eventfd_read(intx), 1);

    msix_control(&f, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, TRIGGER_NONE, 0, 0, NULL, 0), 0);
    CHECK_OK(trigger(&f, 3));
    CHECK_EQ(pba(&f), 0x8);
    CHECK_EQ(vfu_test_eventfd_read(intx), 0);
    CHECK_ERRNO(trigger(&f, NR_VECTORS), EINVAL);

    /* Eventfds while the function is still masked: still held. */
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_MSIX_IRQ, 0, NR_VECTORS, efd), 0);
    check_signalled(efd, NR_VECTORS, -1);
    CHECK_EQ(pba(&f), 0x8);
    msix_control(&f, PCI_MSIX_FLAGS_ENABLE);
    check_signalled(efd, NR_VECTORS, 3);
    CHECK_EQ(pba(&f), 0);

    /* Unmasked before its eventfd comes: delivered when it comes. */
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_MSIX_IRQ, 6, 1, NULL), 0);
    msix_control(&f, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    CHECK_OK(trigger(&f, 6));
    CHECK_EQ(pba(&f), 0x40);
    msix_control(&f, PCI_MSIX_FLAGS_ENABLE);
    check_signalled(efd, NR_VECTORS, -1);
    CHECK_EQ(pba(&f), 0x40);
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_MSIX_IRQ, 6, 1, efd + 6), 0);
    check_signalled(efd, NR_VECTORS, 6);
    CHECK_EQ(pba(&f), 0);
    CHECK_EQ(vfu_test_eventfd_read(intx), 0);
    close_fds(&intx, 1);
    close_fds(efd, NR_VECTORS);
    fixture_stop(&f);
}

/*
 * DEVICE_RESET resets the function as FLR does: the reset callback runs,
 * then decoding, MSI and MSI-X are off, masks cleared and nothing pending.
 * The client's eventfds and SET_IRQS masks are its own and stay.
 */
static void
test_device_reset(void)
{
    struct fixture f;
    int intx, efd[NR_VECTORS];
    size_t msi_flags, msi_mask, msi_pending, msix_flags;

    if (!fixture_start(&f, "device-reset", true)) {
        return;
    }
    msi_flags = f.dev.msi_cap + PCI_MSI_FLAGS;
    msi_mask = f.dev.msi_cap + PCI_MSI_MASK_64;
    msi_pending = f.dev.msi_cap + PCI_MSI_PENDING_64;
    msix_flags = f.dev.msix_cap + PCI_MSIX_FLAGS;
    REQUIRE(new_eventfds(&intx, 1) && new_eventfds(efd, NR_VECTORS));
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_INTX_IRQ, 0, 1, &intx), 0);
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_MSIX_IRQ, 0, NR_VECTORS, efd), 0);

    /* What a driver leaves behind: all on, and interrupts held everywhere. */
    CHECK_EQ(vfu_test_cfg_write_val(&f.c, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER),
             0);
    CHECK_EQ(cfg_read(&f, PCI_COMMAND, 2), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    msi_control(&f, MSI_ON);
    CHECK_EQ(cfg_read(&f, msi_flags, 2) & (PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE), MSI_ON);
    CHECK_EQ(vfu_test_cfg_write_val(&f.c, msi_mask, 4, 0x4), 0);
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSI_IRQ, TRIGGER_NONE, 2, 1, NULL, 0), 0);
    CHECK_EQ(cfg_read(&f, msi_pending, 4), 0x4);
    msix_control(&f, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    CHECK_OK(trigger(&f, 1));
    CHECK_EQ(pba(&f), 0x2);
    table_write(&f, 2, PCI_MSIX_ENTRY_LOWER_ADDR, 4, 0xfee00000);
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, MASK_NONE, 0, 1, NULL, 0), 0);
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, TRIGGER_NONE, 0, 1, NULL, 0), 0);
    CHECK_EQ(vfu_test_eventfd_read(intx), 0);
    CHECK_EQ(f.dev.resets[VFU_RESET_DEVICE], 0);

    CHECK_EQ(vfu_test_device_reset(&f.c), 0);
    CHECK_EQ(f.dev.resets[VFU_RESET_DEVICE], 1);
    CHECK_EQ(f.dev.resets[VFU_RESET_PCI_FLR], 0);
    CHECK_EQ(cfg_read(&f, PCI_COMMAND, 2), 0);
    CHECK_EQ(cfg_read(&f, msi_flags, 2) & (PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE), 0);
    CHECK_EQ(cfg_read(&f, msi_mask, 4), 0);
    CHECK_EQ(cfg_read(&f, msi_pending, 4), 0);
    CHECK_EQ(cfg_read(&f, msix_flags, 2), NR_VECTORS - 1);
    CHECK_EQ(pba(&f), 0);
    CHECK_EQ(table_read(&f, 2, PCI_MSIX_ENTRY_LOWER_ADDR, 4), 0);
    check_signalled(efd, NR_VECTORS, -1);
    CHECK_EQ(vfu_test_eventfd_read(intx), 0);

    /* Nothing held comes out later: not on INTx unmask, not on MSI-X enable. */
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, UNMASK_NONE, 0, 1, NULL, 0), 0);
    CHECK_EQ(vfu_test_eventfd_read(intx), 0);
    /* With MSI-X and MSI off again, the function signals INTx. */
    CHECK_OK(trigger(&f, 0));
    CHECK_EQ(vfu_test_eventfd_read(intx), 1);
    check_signalled(efd, NR_VECTORS, -1);
    msix_control(&f, PCI_MSIX_FLAGS_ENABLE);
    check_signalled(efd, NR_VECTORS, -1);
    CHECK_OK(trigger(&f, 1));
    check_signalled(efd, NR_VECTORS, 1);

    /* A reset the device refuses fails and resets nothing. */
    msix_control(&f, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    CHECK_OK(trigger(&f, 4));
    f.dev.reset_errno = EBUSY;
    CHECK_EQ(vfu_test_device_reset(&f.c), EBUSY);
    CHECK_EQ(f.dev.resets[VFU_RESET_DEVICE], 2);
    CHECK_EQ(cfg_read(&f, msix_flags, 2),
             PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL | (NR_VECTORS - 1));
    CHECK_EQ(pba(&f), 0x10);
    f.dev.reset_errno = 0;
    msix_control(&f, PCI_MSIX_FLAGS_ENABLE);
    check_signalled(efd, NR_VECTORS, 4);
    close_fds(&intx, 1);
    close_fds(efd, NR_VECTORS);
    fixture_stop(&f);
}

static void
test_set_irqs_errors(void)
{
    static const uint8_t bools[3] = { 1, 1, 1 };
    struct fixture f;
    int efd[3], base;

    if (!fixture_start(&f, "set-irqs-errors", true)) {
        return;
    }
    REQUIRE(new_eventfds(efd, 3));
    base = vfu_test_count_open_fds();

    /* Too short, argsz too small, bad index. */
    {
        struct vfio_irq_set req = { .argsz = 20, .flags = TRIGGER_NONE, .count = 1 };

        CHECK_EQ(vfu_test_request(&f.c, VFIO_USER_DEVICE_SET_IRQS, &req, 16, NULL, 0, NULL, 0, NULL,
                                  NULL, NULL),
                 EINVAL);
        req.argsz = 19;
        CHECK_EQ(vfu_test_request(&f.c, VFIO_USER_DEVICE_SET_IRQS, &req, sizeof(req), NULL, 0, NULL,
                                  0, NULL, NULL, NULL),
                 EINVAL);
        req.argsz = 20;
        CHECK_EQ(vfu_test_request(&f.c, VFIO_USER_DEVICE_SET_IRQS, &req, sizeof(req), NULL, 0, NULL,
                                  0, NULL, NULL, NULL),
                 0);
    }
    CHECK_EQ(set_irqs(&f, VFU_DEV_NUM_IRQS, TRIGGER_NONE, 0, 1, NULL, 0), EINVAL);
    CHECK_EQ(set_irqs(&f, UINT32_MAX, TRIGGER_NONE, 0, 1, NULL, 0), EINVAL);
    /* Exactly one action and one data type, and no other bits. */
    CHECK_EQ(set_irqs(&f, 0, VFIO_IRQ_SET_DATA_NONE, 0, 1, NULL, 0), EINVAL);
    CHECK_EQ(set_irqs(&f, 0, VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, NULL, 0), EINVAL);
    CHECK_EQ(set_irqs(&f, 0, MASK_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, 1, NULL, 0), EINVAL);
    CHECK_EQ(set_irqs(&f, 0, TRIGGER_NONE | VFIO_IRQ_SET_DATA_BOOL, 0, 1, bools, 1), EINVAL);
    CHECK_EQ(set_irqs(&f, 0, TRIGGER_NONE | (1u << 6), 0, 1, NULL, 0), EINVAL);
    CHECK_EQ(set_irqs(&f, 0, TRIGGER_NONE | (1u << 31), 0, 1, NULL, 0), EINVAL);
    /* The range must lie within the type's vectors. */
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, TRIGGER_NONE, NR_VECTORS, 1, NULL, 0), EINVAL);
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, TRIGGER_NONE, NR_VECTORS - 1, 2, NULL, 0), EINVAL);
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, MASK_NONE, UINT32_MAX, 2, NULL, 0), EINVAL);
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, MASK_NONE, 1, UINT32_MAX, NULL, 0), EINVAL);
    CHECK_EQ(set_irqs(&f, VFU_DEV_INTX_IRQ, TRIGGER_NONE, 0, 2, NULL, 0), EINVAL);
    /* ERR and REQ: one vector, triggers only. */
    CHECK_EQ(set_irqs(&f, VFU_DEV_ERR_IRQ, MASK_NONE, 0, 1, NULL, 0), EINVAL);
    CHECK_EQ(set_irqs(&f, VFU_DEV_REQ_IRQ, UNMASK_NONE, 0, 1, NULL, 0), EINVAL);
    CHECK_EQ(set_irqs(&f, VFU_DEV_ERR_IRQ, TRIGGER_NONE, 0, 2, NULL, 0), EINVAL);
    /* Count 0 means only "disable the type". */
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, TRIGGER_NONE, 1, 0, NULL, 0), EINVAL);
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, MASK_NONE, 0, 0, NULL, 0), EINVAL);
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, TRIGGER_BOOL, 0, 0, NULL, 0), EINVAL);
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, TRIGGER_EVENTFD, 0, 0, NULL, 0), EINVAL);
    /* Bool data: one byte per vector, exactly. */
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, TRIGGER_BOOL, 0, 2, bools, 1), EINVAL);
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, TRIGGER_BOOL, 0, 2, bools, 3), EINVAL);
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, MASK_BOOL, 0, 2, NULL, 0), EINVAL);
    /* Fds only with eventfd data, exactly one per vector; all are closed. */
    CHECK_EQ(vfu_test_set_irqs(&f.c, VFU_DEV_MSIX_IRQ, TRIGGER_NONE, 0, 1, NULL, 0, efd, 1),
             EINVAL);
    CHECK_EQ(vfu_test_set_irqs(&f.c, VFU_DEV_MSIX_IRQ, TRIGGER_BOOL, 0, 1, bools, 1, efd, 1),
             EINVAL);
    CHECK_EQ(vfu_test_set_irqs(&f.c, VFU_DEV_MSIX_IRQ, TRIGGER_EVENTFD, 0, 3, NULL, 0, efd, 2),
             EINVAL);
    CHECK_EQ(vfu_test_set_irqs(&f.c, VFU_DEV_MSIX_IRQ, TRIGGER_EVENTFD, 0, 1, NULL, 0, efd, 2),
             EINVAL);
    CHECK_EQ(vfu_test_set_irqs(&f.c, VFU_DEV_MSIX_IRQ, TRIGGER_NONE, 0, 0, NULL, 0, efd, 1),
             EINVAL);
    /* Eventfds told of mask changes are not supported. */
    CHECK_EQ(vfu_test_set_irqs(&f.c, VFU_DEV_INTX_IRQ,
                               VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_DATA_EVENTFD, 0, 1, NULL,
                               0, efd, 1),
             ENOTSUP);
    CHECK_EQ(vfu_test_set_irqs(&f.c, VFU_DEV_MSIX_IRQ,
                               VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_DATA_EVENTFD, 0, 1, NULL, 0,
                               NULL, 0),
             ENOTSUP);
    CHECK_EQ(vfu_test_count_open_fds(), base);
    CHECK_EQ(f.dev.nr_calls, 0);

    /* Still serving, and what was refused changed nothing. */
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_INTX_IRQ, 0, 1, efd), 0);
    CHECK_OK(trigger(&f, 0));
    CHECK_EQ(vfu_test_eventfd_read(efd[0]), 1);
    close_fds(efd, 3);
    fixture_stop(&f);
}

static int
count_installed(vfu_ctx_t *ctx, void *arg)
{
    int n = 0;

    for (int t = 0; t < VFU_DEV_NUM_IRQS; t++) {
        for (uint32_t v = 0; v < ctx->irqs.nr_vectors[t]; v++) {
            n += ctx->irqs.efds[t][v] >= 0;
        }
    }
    return n;
}

/* A client that leaves takes its eventfds; the device keeps its state. */
static void
test_disconnect(void)
{
    struct fixture f;
    int intx, efd[NR_VECTORS], before;

    if (!fixture_start(&f, "irq-disconnect", true)) {
        return;
    }
    REQUIRE(new_eventfds(&intx, 1) && new_eventfds(efd, NR_VECTORS));
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_INTX_IRQ, 0, 1, &intx), 0);
    msix_control(&f, PCI_MSIX_FLAGS_ENABLE);
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_MSIX_IRQ, 0, NR_VECTORS, efd), 0);
    CHECK_EQ(vfu_test_server_call(&f.srv, count_installed, NULL), 1 + NR_VECTORS);
    table_write(&f, 1, PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 1);
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, MASK_NONE, 2, 1, NULL, 0), 0);
    CHECK_OK(trigger(&f, 1));
    CHECK_EQ(pba(&f), 0x2);

    /* The two ends of the connection and the server's 9 eventfds go. */
    before = vfu_test_count_open_fds();
    vfu_test_client_close(&f.c);
    CHECK_OK(vfu_test_server_wait_disconnects(&f.srv, 1, WAIT_MS));
    CHECK_EQ(vfu_test_server_call(&f.srv, count_installed, NULL), 0);
    CHECK_EQ(vfu_test_count_open_fds(), before - 2 - (1 + NR_VECTORS));
    CHECK_ERRNO(trigger(&f, 0), ENOENT);

    /* The next client finds masks, table and pending interrupts as they were. */
    REQUIRE_OK(vfu_test_client_open(&f.c, f.path));
    CHECK_EQ(pba(&f), 0x2);
    CHECK_EQ(table_read(&f, 1, PCI_MSIX_ENTRY_VECTOR_CTRL, 4), 1);
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_MSIX_IRQ, 0, NR_VECTORS, efd), 0);
    check_signalled(efd, NR_VECTORS, -1);
    CHECK_OK(trigger(&f, 2));
    check_signalled(efd, NR_VECTORS, -1);
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, UNMASK_NONE, 2, 1, NULL, 0), 0);
    check_signalled(efd, NR_VECTORS, 2);
    table_write(&f, 1, PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
    check_signalled(efd, NR_VECTORS, 1);
    CHECK_EQ(pba(&f), 0);
    close_fds(&intx, 1);
    close_fds(efd, NR_VECTORS);
    fixture_stop(&f);
}

static int
shrink_msix(vfu_ctx_t *ctx, void *arg)
{
    return vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, *(uint32_t *)arg);
}

/* Fewer vectors after realize: those removed lose their eventfds. */
static void
test_resize(void)
{
    struct vfio_irq_info info;
    struct fixture f;
    int efd[NR_VECTORS], base;
    uint32_t n = 4;

    if (!fixture_start(&f, "irq-resize", true)) {
        return;
    }
    REQUIRE(new_eventfds(efd, NR_VECTORS));
    msix_control(&f, PCI_MSIX_FLAGS_ENABLE);
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_MSIX_IRQ, 0, NR_VECTORS, efd), 0);
    base = vfu_test_count_open_fds();
    CHECK_OK(vfu_test_server_call(&f.srv, shrink_msix, &n));
    CHECK_EQ(vfu_test_count_open_fds(), base - 4);
    CHECK_EQ(vfu_test_get_irq_info(&f.c, VFU_DEV_MSIX_IRQ, &info), 0);
    CHECK_EQ(info.count, 4);
    CHECK_OK(trigger(&f, 3));
    check_signalled(efd, NR_VECTORS, 3);
    CHECK_ERRNO(trigger(&f, 4), ENOENT); /* another type has it */
    CHECK_EQ(set_irqs(&f, VFU_DEV_MSIX_IRQ, TRIGGER_NONE, 4, 1, NULL, 0), EINVAL);
    n = NR_VECTORS;
    CHECK_OK(vfu_test_server_call(&f.srv, shrink_msix, &n));
    CHECK_ERRNO(trigger(&f, 7), ENOENT);
    close_fds(efd, NR_VECTORS);
    fixture_stop(&f);
}

int
main(void)
{
    check_watchdog(100);
    RUN_TEST(test_setup_errors);
    RUN_TEST(test_irq_info);
    RUN_TEST(test_intx);
    RUN_TEST(test_intx_status);
    RUN_TEST(test_msix);
    RUN_TEST(test_pending_until_eventfd);
    RUN_TEST(test_msi);
    RUN_TEST(test_type_from_config);
    RUN_TEST(test_type_from_eventfds);
    RUN_TEST(test_masked_without_eventfds);
    RUN_TEST(test_device_reset);
    RUN_TEST(test_set_irqs_errors);
    RUN_TEST(test_disconnect);
    RUN_TEST(test_resize);
    return check_summary();
}
