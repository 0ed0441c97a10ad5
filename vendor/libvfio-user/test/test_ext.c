/*
 * Our extensions (include/libvfio-user-ext.h), one test each, over a real
 * socket: the interrupt mode config space selects, triggering only in a
 * given mode, a vector's mask and pending state, the emulated MSI-X table
 * and its restore, the config-space size, the dirty-logging granule and the
 * asynchronous DMA transfer, each with the arguments it refuses.
 */
#include <stdatomic.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user-ext.h"
#include "libvfio-user.h"
#include "private.h"

#define MSIX_VECTORS 4
#define TABLE_BAR 1
#define TABLE_OFF 0x0u
#define PBA_OFF 0x800u
#define BAR_SIZE 0x1000u
#define WAIT_MS 2000
#define IOVA 0x100000u
#define DMA_LEN 256u

struct device {
    size_t msix_cap;
    size_t msi_cap;
    atomic_int done_error; /* of the last DMA transfer, -1 until done */
    atomic_int done_calls;
};

struct fixture {
    struct device dev;
    vfu_ctx_t *ctx;
    struct vfu_test_server srv;
    struct vfu_test_client c;
    char path[108];
};

static ssize_t
bar_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    (void)ctx;
    (void)offset;
    if (!is_write) {
        memset(buf, 0, count);
    }
    return (ssize_t)count;
}

static int
transition(vfu_ctx_t *ctx, vfu_migr_state_t state)
{
    (void)ctx;
    (void)state;
    return 0;
}

static ssize_t
read_data(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    (void)ctx;
    (void)buf;
    (void)count;
    return 0;
}

static ssize_t
write_data(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    (void)ctx;
    (void)buf;
    return (ssize_t)count;
}

/* Dirty-page logging is offered to migratable devices only. */
static const vfu_migration_callbacks_t migration = {
    .version = VFU_MIGR_CALLBACKS_VERS,
    .transition = transition,
    .read_data = read_data,
    .write_data = write_data,
};

/*
 * INTx, one MSI vector (per-vector mask), four MSI-X vectors (table and PBA
 * in BAR1), ERR, no REQ (which a context has by default); DMA and
 * migration; a client connected.
 */
static bool
fixture_start(struct fixture *f, const char *name)
{
    struct msixcap msix = {
        .hdr = { .id = PCI_CAP_ID_MSIX },
        .mxc = { .ts = MSIX_VECTORS - 1 },
        .mtab = { .tbir = TABLE_BAR, .to = TABLE_OFF >> 3 },
        .mpba = { .pbir = TABLE_BAR, .pbao = PBA_OFF >> 3 },
    };
    struct msicap msi = {
        .hdr = { .id = PCI_CAP_ID_MSI },
        .mc = { .c64 = 1, .pvm = 1 },
    };
    ssize_t pos;

    memset(f, 0, sizeof(*f));
    atomic_store(&f->dev.done_error, -1);
    vfu_test_sock_path(f->path, sizeof(f->path), name);
    f->ctx = vfu_create_ctx(VFU_TRANS_SOCK, f->path, LIBVFIO_USER_FLAG_ATTACH_NB, &f->dev,
                            VFU_DEV_TYPE_PCI);
    if (f->ctx == NULL) {
        FAIL("vfu_create_ctx: %s", strerror(errno));
        return false;
    }
    vfu_setup_log(f->ctx, vfu_test_log_stderr, LOG_DEBUG);
    if (!CHECK_OK(vfu_pci_init(f->ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0)) ||
        !CHECK_OK(vfu_setup_region(f->ctx, TABLE_BAR, BAR_SIZE, bar_access,
                                   VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0))) {
        return false;
    }
    pos = vfu_pci_add_capability(f->ctx, 0, 0, &msix);
    CHECK_GT(pos, 0);
    f->dev.msix_cap = (size_t)pos;
    pos = vfu_pci_add_capability(f->ctx, 0, 0, &msi);
    CHECK_GT(pos, 0);
    f->dev.msi_cap = (size_t)pos;
    CHECK_OK(vfu_setup_device_nr_irqs(f->ctx, VFU_DEV_INTX_IRQ, 1));
    CHECK_OK(vfu_setup_device_nr_irqs(f->ctx, VFU_DEV_MSI_IRQ, 1));
    CHECK_OK(vfu_setup_device_nr_irqs(f->ctx, VFU_DEV_MSIX_IRQ, MSIX_VECTORS));
    CHECK_OK(vfu_setup_device_nr_irqs(f->ctx, VFU_DEV_ERR_IRQ, 1));
    CHECK_OK(vfu_setup_device_nr_irqs(f->ctx, VFU_DEV_REQ_IRQ, 0));
    CHECK_OK(vfu_setup_device_dma(f->ctx, 16, NULL, NULL));
    CHECK_OK(vfu_setup_device_migration_callbacks(f->ctx, &migration));
    return CHECK_OK(vfu_realize_ctx(f->ctx)) && CHECK_OK(vfu_test_server_start(&f->srv, f->ctx)) &&
           CHECK_OK(vfu_test_client_open(&f->c, f->path));
}

static void
fixture_stop(struct fixture *f)
{
    vfu_test_client_close(&f->c);
    CHECK_EQ(vfu_test_server_run_errors(&f->srv), 0);
    vfu_test_server_stop(&f->srv);
    vfu_destroy_ctx(f->ctx);
}

/* What a driver writes to turn MSI-X or MSI on and off. */
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

static void
table_write(struct fixture *f, uint32_t vector, unsigned field, unsigned width, uint64_t val)
{
    CHECK_EQ(
        vfu_test_region_write_val(&f->c, TABLE_BAR, TABLE_OFF + vector * 16 + field, width, val),
        0);
}

static int
call_mode(vfu_ctx_t *ctx, void *arg)
{
    (void)arg;
    return (int)vfu_ext_irq_mode(ctx);
}

/* vfu_ext_irq_mode on the server thread. */
static int
mode(struct fixture *f)
{
    return vfu_test_server_call(&f->srv, call_mode, NULL);
}

struct vector {
    enum vfu_dev_irq_type type;
    uint32_t vector;
    bool masked;
    bool pending;
};

static int
call_trigger(vfu_ctx_t *ctx, void *arg)
{
    struct vector *v = arg;

    return vfu_ext_irq_trigger(ctx, v->type, v->vector);
}

/* vfu_ext_irq_trigger on the server thread; errno as it left it. */
static int
trigger(struct fixture *f, enum vfu_dev_irq_type type, uint32_t vector)
{
    struct vector v = { .type = type, .vector = vector };

    return vfu_test_server_call(&f->srv, call_trigger, &v);
}

static int
call_state(vfu_ctx_t *ctx, void *arg)
{
    struct vector *v = arg;

    return vfu_ext_irq_vector_state(ctx, v->type, v->vector, &v->masked, &v->pending);
}

/* vfu_ext_irq_vector_state on the server thread into *v. */
static int
state(struct fixture *f, struct vector *v)
{
    return vfu_test_server_call(&f->srv, call_state, v);
}

static int
install(struct fixture *f, uint32_t index, int *fds, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++) {
        fds[i] = vfu_test_eventfd_new();
    }
    return vfu_test_set_irqs_eventfds(&f->c, index, 0, count, fds);
}

static void
close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        close(fds[i]);
    }
}

static void
test_irq_mode(void)
{
    struct fixture f;

    REQUIRE(fixture_start(&f, "ext-mode"));
    /* Neither MSI nor MSI-X enabled: INTx, as on hardware. */
    CHECK_EQ(mode(&f), VFU_DEV_INTX_IRQ);
    msi_control(&f, PCI_MSI_FLAGS_ENABLE);
    CHECK_EQ(mode(&f), VFU_DEV_MSI_IRQ);
    /* MSI-X wins over MSI while both are on. */
    msix_control(&f, PCI_MSIX_FLAGS_ENABLE);
    CHECK_EQ(mode(&f), VFU_DEV_MSIX_IRQ);
    msix_control(&f, 0);
    CHECK_EQ(mode(&f), VFU_DEV_MSI_IRQ);
    msi_control(&f, 0);
    CHECK_EQ(mode(&f), VFU_DEV_INTX_IRQ);
    fixture_stop(&f);

    errno = 0;
    CHECK_EQ((int)vfu_ext_irq_mode(NULL), -1);
    CHECK_EQ(errno, EINVAL);
}

static void
test_irq_trigger(void)
{
    struct fixture f;
    int intx[1], msix[MSIX_VECTORS], err[1];

    REQUIRE(fixture_start(&f, "ext-trigger"));
    CHECK_EQ(install(&f, VFU_DEV_INTX_IRQ, intx, 1), 0);
    CHECK_EQ(install(&f, VFU_DEV_MSIX_IRQ, msix, MSIX_VECTORS), 0);
    CHECK_EQ(install(&f, VFU_DEV_ERR_IRQ, err, 1), 0);

    /* INTx mode: an MSI-X trigger does nothing, an INTx one signals. */
    CHECK_EQ(trigger(&f, VFU_DEV_MSIX_IRQ, 1), 0);
    CHECK_EQ(vfu_test_eventfd_read(msix[1]), 0);
    CHECK_EQ(trigger(&f, VFU_DEV_INTX_IRQ, 0), 1);
    CHECK_EQ(vfu_test_eventfd_read(intx[0]), 1);

    /* MSI-X mode, entry 1 unmasked: now the other way round. */
    msix_control(&f, PCI_MSIX_FLAGS_ENABLE);
    table_write(&f, 1, PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
    CHECK_EQ(trigger(&f, VFU_DEV_MSIX_IRQ, 1), 1);
    CHECK_EQ(vfu_test_eventfd_read(msix[1]), 1);
    CHECK_EQ(trigger(&f, VFU_DEV_INTX_IRQ, 0), 0);
    /* (A BAR access ends INTx, so the line's earlier signal is all there is.) */
    CHECK_EQ(vfu_test_eventfd_read(intx[0]), 0);

    /* ERR is signalled whatever the mode. */
    CHECK_EQ(trigger(&f, VFU_DEV_ERR_IRQ, 0), 1);
    CHECK_EQ(vfu_test_eventfd_read(err[0]), 1);

    /* Refused: a vector no type has, a type the device lacks, no eventfd. */
    CHECK_EQ(trigger(&f, VFU_DEV_MSIX_IRQ, MSIX_VECTORS), -1);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(trigger(&f, VFU_DEV_REQ_IRQ, 0), -1);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(vfu_test_set_irqs_eventfds(&f.c, VFU_DEV_ERR_IRQ, 0, 1, NULL), 0);
    CHECK_EQ(trigger(&f, VFU_DEV_ERR_IRQ, 0), -1);
    CHECK_EQ(errno, ENOENT);
    /* The device serves on after every refusal. */
    CHECK_EQ(trigger(&f, VFU_DEV_MSIX_IRQ, 1), 1);
    CHECK_EQ(vfu_test_eventfd_read(msix[1]), 1);
    fixture_stop(&f);
    close_fds(intx, 1);
    close_fds(msix, MSIX_VECTORS);
    close_fds(err, 1);

    errno = 0;
    CHECK_EQ(vfu_ext_irq_trigger(NULL, VFU_DEV_INTX_IRQ, 0), -1);
    CHECK_EQ(errno, EINVAL);
}

static void
test_irq_vector_state(void)
{
    struct fixture f;
    int msix[MSIX_VECTORS];
    struct vector v = { .type = VFU_DEV_MSIX_IRQ, .vector = 2 };
    bool masked, pending;
    const uint8_t on = 1;

    REQUIRE(fixture_start(&f, "ext-state"));
    CHECK_EQ(install(&f, VFU_DEV_MSIX_IRQ, msix, MSIX_VECTORS), 0);
    msix_control(&f, PCI_MSIX_FLAGS_ENABLE);
    /* A table entry starts unmasked (msix.c says why); its mask bit is the vector's. */
    CHECK_EQ(state(&f, &v), 0);
    CHECK(!v.masked && !v.pending);
    table_write(&f, 2, PCI_MSIX_ENTRY_VECTOR_CTRL, 4, PCI_MSIX_ENTRY_CTRL_MASKBIT);
    CHECK_EQ(state(&f, &v), 0);
    CHECK(v.masked && !v.pending);
    table_write(&f, 2, PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
    CHECK_EQ(state(&f, &v), 0);
    CHECK(!v.masked && !v.pending);

    /* The client's mask: the vector is held, then delivered on unmask. */
    CHECK_EQ(vfu_test_set_irqs(&f.c, VFU_DEV_MSIX_IRQ,
                               VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_DATA_BOOL, 2, 1, &on, 1,
                               NULL, 0),
             0);
    CHECK_EQ(trigger(&f, VFU_DEV_MSIX_IRQ, 2), 1);
    CHECK_EQ(state(&f, &v), 0);
    CHECK(v.masked && v.pending);
    CHECK_EQ(vfu_test_eventfd_read(msix[2]), 0);
    CHECK_EQ(vfu_test_set_irqs(&f.c, VFU_DEV_MSIX_IRQ,
                               VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_DATA_NONE, 2, 1, NULL, 0,
                               NULL, 0),
             0);
    CHECK_EQ(vfu_test_eventfd_read(msix[2]), 1);
    CHECK_EQ(state(&f, &v), 0);
    CHECK(!v.masked && !v.pending);

    /* INTx: command bit 10 is its mask. */
    v.type = VFU_DEV_INTX_IRQ;
    v.vector = 0;
    CHECK_EQ(vfu_test_cfg_write_val(&f.c, PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE), 0);
    CHECK_EQ(state(&f, &v), 0);
    CHECK(v.masked);

    /* Refused: a vector beyond the count, a type the device lacks, no type. */
    v = (struct vector){ .type = VFU_DEV_MSIX_IRQ, .vector = MSIX_VECTORS };
    CHECK_EQ(state(&f, &v), -EINVAL);
    v = (struct vector){ .type = VFU_DEV_REQ_IRQ, .vector = 0 };
    CHECK_EQ(state(&f, &v), -EINVAL);
    v = (struct vector){ .type = (enum vfu_dev_irq_type)VFU_DEV_NUM_IRQS };
    CHECK_EQ(state(&f, &v), -EINVAL);
    fixture_stop(&f);
    close_fds(msix, MSIX_VECTORS);

    CHECK_EQ(vfu_ext_irq_vector_state(NULL, VFU_DEV_INTX_IRQ, 0, &masked, &pending), -EINVAL);
}

static int
call_table(vfu_ctx_t *ctx, void *arg)
{
    uint8_t *copy = arg;
    size_t len;
    const uint8_t *table = vfu_ext_msix_table(ctx, &len);

    if (table == NULL) {
        return -1;
    }
    memcpy(copy, table, len);
    return (int)len;
}

/* A device with no capability at all, not served. */
static vfu_ctx_t *
plain_device(char *path, size_t len, vfu_pci_type_t type)
{
    vfu_ctx_t *ctx;

    vfu_test_sock_path(path, len, "ext-plain");
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, NULL, VFU_DEV_TYPE_PCI);
    if (ctx != NULL && type != (vfu_pci_type_t)-1) {
        CHECK_OK(vfu_pci_init(ctx, type, PCI_HEADER_TYPE_NORMAL, 0));
    }
    return ctx;
}

static void
test_msix_table(void)
{
    struct fixture f;
    uint8_t table[MSIX_VECTORS * 16];
    char path[108];
    size_t len = 99;
    vfu_ctx_t *ctx;

    REQUIRE(fixture_start(&f, "ext-table"));
    table_write(&f, 1, PCI_MSIX_ENTRY_LOWER_ADDR, 4, 0xfee01000);
    table_write(&f, 1, PCI_MSIX_ENTRY_DATA, 4, 0x51);
    table_write(&f, 1, PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
    CHECK_EQ(vfu_test_server_call(&f.srv, call_table, table), sizeof(table));
    CHECK_EQ(pci_get32(table + 16 + PCI_MSIX_ENTRY_LOWER_ADDR), 0xfee01000);
    CHECK_EQ(pci_get32(table + 16 + PCI_MSIX_ENTRY_DATA), 0x51);
    CHECK_EQ(pci_get32(table + 16 + PCI_MSIX_ENTRY_VECTOR_CTRL), 0);
    /* The other entries as reset left them (zero: unmasked, see msix.c). */
    CHECK_EQ(pci_get32(table + PCI_MSIX_ENTRY_DATA), 0);
    fixture_stop(&f);

    /* Without MSI-X, without a context, without a length. */
    ctx = plain_device(path, sizeof(path), VFU_PCI_TYPE_CONVENTIONAL);
    REQUIRE(ctx != NULL);
    CHECK_OK(vfu_realize_ctx(ctx));
    CHECK(vfu_ext_msix_table(ctx, &len) == NULL);
    CHECK_EQ(len, 0);
    vfu_destroy_ctx(ctx);
    len = 99;
    CHECK(vfu_ext_msix_table(NULL, &len) == NULL);
    CHECK_EQ(len, 0);
    CHECK(vfu_ext_msix_table(NULL, NULL) == NULL);
}

struct restore {
    const uint8_t *table;
    size_t table_len;
    const uint8_t *pending;
    size_t nr_pending;
};

static int
call_restore(vfu_ctx_t *ctx, void *arg)
{
    struct restore *r = arg;

    return vfu_ext_msix_restore(ctx, r->table, r->table_len, r->pending, r->nr_pending);
}

static void
test_msix_restore(void)
{
    struct fixture f;
    int msix[MSIX_VECTORS];
    uint8_t table[MSIX_VECTORS * 16], now[MSIX_VECTORS * 16];
    uint8_t pending[MSIX_VECTORS + 1] = { 0 };
    struct restore r = { table, sizeof(table), pending, MSIX_VECTORS };
    struct vector v = { .type = VFU_DEV_MSIX_IRQ, .vector = 3 };

    memset(table, 0, sizeof(table));
    for (uint32_t i = 0; i < MSIX_VECTORS; i++) {
        pci_put32(table + i * 16 + PCI_MSIX_ENTRY_DATA, 0x30 + i);
        pci_put32(table + i * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL,
                  i == 3 ? 0 : PCI_MSIX_ENTRY_CTRL_MASKBIT);
    }
    pending[3] = 1;

    REQUIRE(fixture_start(&f, "ext-restore"));
    CHECK_EQ(install(&f, VFU_DEV_MSIX_IRQ, msix, MSIX_VECTORS), 0);
    msix_control(&f, PCI_MSIX_FLAGS_ENABLE);

    /* Refused, nothing changed: a table of another length, too many vectors. */
    r.table_len = sizeof(table) - 16;
    CHECK_EQ(vfu_test_server_call(&f.srv, call_restore, &r), -EINVAL);
    r.table_len = sizeof(table);
    r.nr_pending = MSIX_VECTORS + 1;
    CHECK_EQ(vfu_test_server_call(&f.srv, call_restore, &r), -EINVAL);
    r.nr_pending = MSIX_VECTORS;
    r.table = NULL;
    CHECK_EQ(vfu_test_server_call(&f.srv, call_restore, &r), -EINVAL);
    r.table = table;
    CHECK_EQ(vfu_test_server_call(&f.srv, call_table, now), sizeof(now));
    CHECK_EQ(pci_get32(now + 3 * 16 + PCI_MSIX_ENTRY_DATA), 0);
    CHECK_EQ(vfu_test_eventfd_read(msix[3]), 0);

    /* Restored: the table is back and vector 3, pending and unmasked, goes out. */
    CHECK_EQ(vfu_test_server_call(&f.srv, call_restore, &r), 0);
    CHECK_EQ(vfu_test_server_call(&f.srv, call_table, now), sizeof(now));
    CHECK_MEM(now, table, sizeof(table));
    CHECK_EQ(vfu_test_eventfd_read(msix[3]), 1);
    CHECK_EQ(state(&f, &v), 0);
    CHECK(!v.masked && !v.pending);
    fixture_stop(&f);
    close_fds(msix, MSIX_VECTORS);

    CHECK_EQ(vfu_ext_msix_restore(NULL, table, sizeof(table), pending, 1), -EINVAL);
}

static void
test_config_size(void)
{
    char path[108];
    vfu_ctx_t *ctx;

    ctx = plain_device(path, sizeof(path), (vfu_pci_type_t)-1);
    REQUIRE(ctx != NULL);
    CHECK_EQ(vfu_ext_config_size(ctx), 0);
    vfu_destroy_ctx(ctx);
    ctx = plain_device(path, sizeof(path), VFU_PCI_TYPE_CONVENTIONAL);
    REQUIRE(ctx != NULL);
    CHECK_EQ(vfu_ext_config_size(ctx), PCI_CFG_SPACE_SIZE);
    vfu_destroy_ctx(ctx);
    ctx = plain_device(path, sizeof(path), VFU_PCI_TYPE_EXPRESS);
    REQUIRE(ctx != NULL);
    CHECK_EQ(vfu_ext_config_size(ctx), PCI_CFG_SPACE_EXP_SIZE);
    vfu_destroy_ctx(ctx);
    CHECK_EQ(vfu_ext_config_size(NULL), 0);
}

static int
call_granule(vfu_ctx_t *ctx, void *arg)
{
    const uint64_t **where = arg;

    *where = vfu_ext_dirty_granule(ctx);
    return *where == NULL ? -1 : (int)**where;
}

static void
test_dirty_granule(void)
{
    struct fixture f;
    const uint64_t *first = NULL, *again = NULL;
    uint64_t chosen = 0;
    int page = (int)sysconf(_SC_PAGESIZE);

    REQUIRE(fixture_start(&f, "ext-granule"));
    CHECK_EQ(vfu_test_server_call(&f.srv, call_granule, &first), 0);
    CHECK_EQ(vfu_test_dma_logging_start(&f.c, (uint64_t)page, NULL, 0, &chosen), 0);
    CHECK_EQ(chosen, (uint64_t)page);
    /* The same place, now holding the granule the server chose. */
    CHECK_EQ(vfu_test_server_call(&f.srv, call_granule, &again), page);
    CHECK(again == first);
    CHECK_EQ(vfu_test_dma_logging_stop(&f.c), 0);
    CHECK_EQ(vfu_test_server_call(&f.srv, call_granule, &again), 0);
    fixture_stop(&f);
    CHECK(vfu_ext_dirty_granule(NULL) == NULL);
}

static void
on_done(vfu_ctx_t *ctx, void *cookie, int error)
{
    struct device *dev = vfu_get_private(ctx);

    CHECK(cookie == dev);
    atomic_store(&dev->done_error, error);
    atomic_fetch_add(&dev->done_calls, 1);
}

struct transfer {
    uint64_t iova;
    size_t len;
    void *data;
    bool is_write;
    vfu_ext_dma_done_t *done;
};

static int
call_transfer(vfu_ctx_t *ctx, void *arg)
{
    struct transfer *t = arg;

    return vfu_ext_dma_transfer(ctx, t->iova, t->len, t->data, t->is_write, t->done,
                                vfu_get_private(ctx));
}

/* Serves the device's DMA messages until its transfer is done. */
static bool
serve_until_done(struct fixture *f)
{
    uint64_t deadline = vfu_test_now_ns() + (uint64_t)WAIT_MS * 1000000;

    while (atomic_load(&f->dev.done_error) < 0 && vfu_test_now_ns() < deadline) {
        if (vfu_test_client_serve(&f->c, 10) < 0) {
            return false;
        }
    }
    return atomic_load(&f->dev.done_error) >= 0;
}

static void
test_dma_transfer(void)
{
    struct fixture f;
    static uint8_t guest[DMA_LEN];
    uint8_t out[DMA_LEN], in[DMA_LEN];
    struct transfer t = { IOVA, DMA_LEN, out, true, on_done };
    char path[108];
    vfu_ctx_t *ctx;

    for (size_t i = 0; i < DMA_LEN; i++) {
        out[i] = (uint8_t)(i * 3 + 1);
    }
    memset(guest, 0, sizeof(guest));
    REQUIRE(fixture_start(&f, "ext-dma"));
    /* Client memory without an fd: reached by DMA messages only. */
    REQUIRE_OK(vfu_test_client_add_dma_window(&f.c, IOVA, guest, DMA_LEN));
    REQUIRE_EQ(vfu_test_dma_map(&f.c, VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE, 0,
                                IOVA, DMA_LEN, -1),
               0);

    /* A write, then a read back, each done exactly once with no error. */
    CHECK_EQ(vfu_test_server_call(&f.srv, call_transfer, &t), 0);
    CHECK(serve_until_done(&f));
    CHECK_EQ(atomic_load(&f.dev.done_error), 0);
    CHECK_MEM(guest, out, DMA_LEN);
    atomic_store(&f.dev.done_error, -1);
    t.data = in;
    t.is_write = false;
    CHECK_EQ(vfu_test_server_call(&f.srv, call_transfer, &t), 0);
    CHECK(serve_until_done(&f));
    CHECK_EQ(atomic_load(&f.dev.done_error), 0);
    CHECK_MEM(in, out, DMA_LEN);
    CHECK_EQ(atomic_load(&f.dev.done_calls), 2);

    /* Refused with nothing started: bad arguments, a gap, a read-only range. */
    t = (struct transfer){ IOVA, 0, in, false, on_done };
    CHECK_EQ(vfu_test_server_call(&f.srv, call_transfer, &t), -EINVAL);
    t = (struct transfer){ IOVA, DMA_LEN, NULL, false, on_done };
    CHECK_EQ(vfu_test_server_call(&f.srv, call_transfer, &t), -EINVAL);
    t = (struct transfer){ IOVA, DMA_LEN, in, false, NULL };
    CHECK_EQ(vfu_test_server_call(&f.srv, call_transfer, &t), -EINVAL);
    t = (struct transfer){ IOVA, DMA_LEN + 1, in, false, on_done };
    CHECK_EQ(vfu_test_server_call(&f.srv, call_transfer, &t), -ENOENT);
    CHECK_EQ(vfu_test_dma_unmap(&f.c, 0, IOVA, DMA_LEN), 0);
    REQUIRE_EQ(vfu_test_dma_map(&f.c, VFIO_USER_F_DMA_REGION_READ, 0, IOVA, DMA_LEN, -1), 0);
    t = (struct transfer){ IOVA, DMA_LEN, out, true, on_done };
    CHECK_EQ(vfu_test_server_call(&f.srv, call_transfer, &t), -EACCES);
    CHECK_EQ(atomic_load(&f.dev.done_calls), 2);
    fixture_stop(&f);

    /* No client yet. */
    ctx = plain_device(path, sizeof(path), VFU_PCI_TYPE_CONVENTIONAL);
    REQUIRE(ctx != NULL);
    CHECK_OK(vfu_setup_device_dma(ctx, 16, NULL, NULL));
    CHECK_OK(vfu_realize_ctx(ctx));
    CHECK_EQ(vfu_ext_dma_transfer(ctx, IOVA, DMA_LEN, in, false, on_done, NULL), -ENOTCONN);
    vfu_destroy_ctx(ctx);
    CHECK_EQ(vfu_ext_dma_transfer(NULL, IOVA, DMA_LEN, in, false, on_done, NULL), -EINVAL);
}

int
main(void)
{
    check_watchdog(60);
    RUN_TEST(test_irq_mode);
    RUN_TEST(test_irq_trigger);
    RUN_TEST(test_irq_vector_state);
    RUN_TEST(test_msix_table);
    RUN_TEST(test_msix_restore);
    RUN_TEST(test_config_size);
    RUN_TEST(test_dirty_granule);
    RUN_TEST(test_dma_transfer);
    return check_summary();
}
