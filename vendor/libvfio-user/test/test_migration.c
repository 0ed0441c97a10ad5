/*
 * Migration over the wire: DEVICE_FEATURE (query, PROBE, device state),
 * every transition between the five states and the callbacks each one
 * makes, the commands each state refuses, the data stream in chunks from
 * one server to another, a client that leaves mid-migration, quiescing
 * before a state change, and the MSI-X restore this project started from,
 * after a real migration.
 */
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user.h"
#include "private.h"

#define BAR0_SIZE 0x4000
/* Device state: BAR0 plus registers a client cannot see. */
#define STATE_LEN (BAR0_SIZE + 64)
#define PRECOPY_LEN 0x1800
#define SMALL_XFER 4096
#define SMALL_XFER_JSON "{\"capabilities\":{\"max_msg_fds\":16,\"max_data_xfer_size\":4096}}"
#define LOG_MAX 16
#define NO_STATE (-1)

/* A device whose migration data is its memory, and which logs transitions. */
struct mig_dev {
    uint8_t state[STATE_LEN];
    uint8_t incoming[STATE_LEN]; /* loaded while RESUMING */
    size_t read_pos;
    size_t write_pos;
    vfu_migr_state_t cur;
    bool strict; /* refuse to leave RESUMING half-loaded */
    vfu_migr_state_t log[LOG_MAX];
    size_t nr_log;
    int fail_state;    /* a transition to it fails... */
    int fail_errno;    /* ...with this errno */
    int read_errno;    /* read_data fails with it when set */
    bool short_write;  /* write_data takes one byte too few */
    bool quiesce_busy; /* quiesce finishes later */
    unsigned quiesces;
};

static int
transition(vfu_ctx_t *ctx, vfu_migr_state_t state)
{
    struct mig_dev *d = vfu_get_private(ctx);

    if (d->nr_log < LOG_MAX) {
        d->log[d->nr_log++] = state;
    }
    if ((int)state == d->fail_state) {
        errno = d->fail_errno;
        return -1;
    }
    switch (state) {
    case VFU_MIGR_STATE_PRE_COPY:
        d->read_pos = 0;
        break;
    case VFU_MIGR_STATE_STOP_AND_COPY:
        if (d->cur != VFU_MIGR_STATE_PRE_COPY) {
            d->read_pos = 0;
        }
        break;
    case VFU_MIGR_STATE_RESUME:
        d->write_pos = 0;
        break;
    case VFU_MIGR_STATE_STOP:
        if (d->cur == VFU_MIGR_STATE_RESUME) {
            if (d->strict && d->write_pos != STATE_LEN) {
                errno = EBADMSG;
                return -1;
            }
            memcpy(d->state, d->incoming, d->write_pos);
        }
        break;
    default:
        break;
    }
    d->cur = state;
    return 0;
}

static ssize_t
read_data(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct mig_dev *d = vfu_get_private(ctx);
    size_t end = d->cur == VFU_MIGR_STATE_PRE_COPY ? PRECOPY_LEN : STATE_LEN;
    size_t n;

    if (d->read_errno != 0) {
        errno = d->read_errno;
        return -1;
    }
    n = d->read_pos < end ? VFU_MIN(end - d->read_pos, count) : 0;
    memcpy(buf, d->state + d->read_pos, n);
    d->read_pos += n;
    return (ssize_t)n;
}

static ssize_t
write_data(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct mig_dev *d = vfu_get_private(ctx);

    if (count > STATE_LEN - d->write_pos) {
        errno = ENOSPC;
        return -1;
    }
    memcpy(d->incoming + d->write_pos, buf, count);
    d->write_pos += count;
    return d->short_write ? (ssize_t)count - 1 : (ssize_t)count;
}

static ssize_t
bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    struct mig_dev *d = vfu_get_private(ctx);

    if (is_write) {
        memcpy(d->state + offset, buf, count);
    } else {
        memcpy(buf, d->state + offset, count);
    }
    return (ssize_t)count;
}

/* The MSI-X BAR: the library serves the table and PBA; nothing else. */
static ssize_t
msix_bar_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    (void)ctx;
    (void)offset;
    if (!is_write) {
        memset(buf, 0, count);
    }
    return (ssize_t)count;
}

static int
quiesce(vfu_ctx_t *ctx)
{
    struct mig_dev *d = vfu_get_private(ctx);

    d->quiesces++;
    if (d->quiesce_busy) {
        errno = EBUSY;
        return -1;
    }
    return 0;
}

static const vfu_migration_callbacks_t callbacks = {
    .version = VFU_MIGR_CALLBACKS_VERS,
    .transition = transition,
    .read_data = read_data,
    .write_data = write_data,
};

/* MSI-X in BAR1: 8 vectors, table at 0, PBA at 0x1000. */
#define MSIX_VECTORS 8
#define MSIX_BAR 1
#define MSIX_PBA 0x1000

struct bed {
    char path[108];
    vfu_ctx_t *ctx;
    struct vfu_test_server srv;
    struct mig_dev dev;
    size_t msix_cap;
};

static void
dev_init(struct mig_dev *d, uint8_t seed)
{
    memset(d, 0, sizeof(*d));
    for (size_t i = 0; i < STATE_LEN; i++) {
        d->state[i] = (uint8_t)(i * 7 + seed);
    }
    d->cur = VFU_MIGR_STATE_RUNNING;
    d->fail_state = NO_STATE;
}

/* Starts a device; with_migration false leaves the callbacks out. */
static bool
bed_start(struct bed *b, const char *name, bool with_migration, bool with_quiesce, uint8_t seed)
{
    struct msixcap msix;
    uint32_t table = MSIX_BAR, pba = MSIX_PBA | MSIX_BAR;
    ssize_t off;

    dev_init(&b->dev, seed);
    vfu_test_sock_path(b->path, sizeof(b->path), name);
    b->ctx = vfu_create_ctx(VFU_TRANS_SOCK, b->path, LIBVFIO_USER_FLAG_ATTACH_NB, &b->dev,
                            VFU_DEV_TYPE_PCI);
    if (b->ctx == NULL) {
        FAIL("vfu_create_ctx: %s", strerror(errno));
        return false;
    }
    vfu_setup_log(b->ctx, vfu_test_log_stderr, LOG_DEBUG);
    CHECK_OK(vfu_pci_init(b->ctx, VFU_PCI_TYPE_EXPRESS, PCI_HEADER_TYPE_NORMAL, 0));
    CHECK_OK(vfu_setup_region(b->ctx, VFU_PCI_DEV_BAR0_REGION_IDX, BAR0_SIZE, bar0_access,
                              VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0));
    CHECK_OK(vfu_setup_region(b->ctx, MSIX_BAR, 0x2000, msix_bar_access,
                              VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0));
    CHECK_OK(vfu_setup_device_nr_irqs(b->ctx, VFU_DEV_MSIX_IRQ, MSIX_VECTORS));
    memset(&msix, 0, sizeof(msix));
    msix.hdr.id = PCI_CAP_ID_MSIX;
    msix.mxc.ts = MSIX_VECTORS - 1;
    memcpy(&msix.mtab, &table, 4);
    memcpy(&msix.mpba, &pba, 4);
    off = vfu_pci_add_capability(b->ctx, 0, 0, &msix);
    CHECK_GT(off, 0);
    b->msix_cap = off > 0 ? (size_t)off : 0;
    CHECK_OK(vfu_setup_device_dma(b->ctx, 16, NULL, NULL));
    if (with_migration) {
        CHECK_OK(vfu_setup_device_migration_callbacks(b->ctx, &callbacks));
    }
    if (with_quiesce) {
        vfu_setup_device_quiesce_cb(b->ctx, quiesce);
    }
    if (!CHECK_OK(vfu_realize_ctx(b->ctx)) || !CHECK_OK(vfu_test_server_start(&b->srv, b->ctx))) {
        vfu_destroy_ctx(b->ctx);
        return false;
    }
    return true;
}

static void
bed_stop(struct bed *b)
{
    CHECK_EQ(vfu_test_server_run_errors(&b->srv), 0);
    vfu_test_server_stop(&b->srv);
    vfu_destroy_ctx(b->ctx);
}

static int
open_client(struct vfu_test_client *c, const char *path, const char *json)
{
    if (vfu_test_client_connect(c, path, -1) < 0) {
        return -1;
    }
    return vfu_test_negotiate(c, 0, 1, json);
}

/* Requests with a raw payload; returns the reply's errno (0 on success). */
static int
raw(struct vfu_test_client *c, uint16_t cmd, const void *p, size_t len)
{
    return vfu_test_request(c, cmd, p, len, NULL, 0, NULL, 0, NULL, NULL, NULL);
}

static int
feature(struct vfu_test_client *c, uint32_t flags)
{
    uint8_t data[16] = { 0 };
    uint8_t reply[64];
    size_t len = 0;

    return vfu_test_device_feature(c, 8 + sizeof(data), flags, data, sizeof(data), reply,
                                   sizeof(reply), &len);
}

static uint32_t
get_state(struct vfu_test_client *c)
{
    uint32_t state = 0xdead;

    CHECK_EQ(vfu_test_mig_get_state(c, &state), 0);
    return state;
}

static void
check_serving(struct vfu_test_client *c)
{
    struct vfio_user_device_info info;

    memset(&info, 0, sizeof(info));
    CHECK_EQ(vfu_test_device_get_info(c, &info), 0);
    CHECK_EQ(info.num_regions, VFU_PCI_DEV_NUM_REGIONS);
}

/* ------------------------------------------------------------ registration */

static void
test_setup_validation(void)
{
    char path[108];
    vfu_migration_callbacks_t cbs;
    vfu_ctx_t *ctx;

    vfu_test_sock_path(path, sizeof(path), "migr-setup");
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, 0, NULL, VFU_DEV_TYPE_PCI);
    REQUIRE(ctx != NULL);

    CHECK_ERRNO(vfu_setup_device_migration_callbacks(ctx, NULL), EINVAL);
    CHECK_ERRNO(vfu_setup_device_migration_callbacks(NULL, &callbacks), EINVAL);
    cbs = callbacks;
    cbs.version = 1;
    CHECK_ERRNO(vfu_setup_device_migration_callbacks(ctx, &cbs), EINVAL);
    cbs.version = VFU_MIGR_CALLBACKS_VERS + 1;
    CHECK_ERRNO(vfu_setup_device_migration_callbacks(ctx, &cbs), EINVAL);
    cbs = callbacks;
    cbs.transition = NULL;
    CHECK_ERRNO(vfu_setup_device_migration_callbacks(ctx, &cbs), EINVAL);
    cbs = callbacks;
    cbs.read_data = NULL;
    CHECK_ERRNO(vfu_setup_device_migration_callbacks(ctx, &cbs), EINVAL);
    cbs = callbacks;
    cbs.write_data = NULL;
    CHECK_ERRNO(vfu_setup_device_migration_callbacks(ctx, &cbs), EINVAL);
    CHECK(!ctx->migration_enabled);

    /* The struct is copied: the caller's may change afterwards. */
    cbs = callbacks;
    CHECK_OK(vfu_setup_device_migration_callbacks(ctx, &cbs));
    memset(&cbs, 0, sizeof(cbs));
    CHECK(ctx->migration_enabled);
    CHECK_EQ(ctx->migr_state, VFIO_USER_DEVICE_STATE_RUNNING);
    CHECK(ctx->migr_cbs.transition == transition);
    CHECK(ctx->migr_cbs.read_data == read_data);
    CHECK(ctx->migr_cbs.write_data == write_data);
    /* Also allowed after realize. */
    CHECK_OK(vfu_realize_ctx(ctx));
    CHECK_OK(vfu_setup_device_migration_callbacks(ctx, &callbacks));
    vfu_destroy_ctx(ctx);
}

/* Without migration every feature and both data commands are invalid. */
static void
test_commands_without_migration(void)
{
    struct bed b;
    struct vfu_test_client c;
    uint8_t reply[64], buf[16] = { 0 };
    size_t len = 0;
    uint32_t state = 0, got = 0;

    REQUIRE(bed_start(&b, "no-migr", false, false, 0));
    REQUIRE_OK(vfu_test_client_open(&c, b.path));
    CHECK(!vfu_test_json_has_key(c.server_json, "migration"));
    for (uint32_t f = 0; f <= 9; f++) {
        CHECK_EQ(feature(&c, VFIO_DEVICE_FEATURE_PROBE | f), EINVAL);
    }
    CHECK_EQ(vfu_test_device_feature(&c, 16,
                                     VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, NULL,
                                     0, reply, sizeof(reply), &len),
             EINVAL);
    CHECK_EQ(vfu_test_mig_get_state(&c, &state), EINVAL);
    CHECK_EQ(vfu_test_mig_set_state(&c, VFIO_USER_DEVICE_STATE_STOP), EINVAL);
    CHECK_EQ(vfu_test_mig_data_read(&c, sizeof(buf), buf, &got), EINVAL);
    CHECK_EQ(vfu_test_mig_data_write(&c, buf, sizeof(buf)), EINVAL);
    CHECK_EQ(vfu_test_dma_logging_start(&c, 4096, NULL, 0, NULL), EINVAL);
    check_serving(&c);
    vfu_test_client_close(&c);
    bed_stop(&b);
}

/* ---------------------------------------------------------------- features */

static uint32_t
supported_ops(uint32_t f)
{
    const uint32_t get = VFIO_DEVICE_FEATURE_GET, set = VFIO_DEVICE_FEATURE_SET,
                   probe = VFIO_DEVICE_FEATURE_PROBE;

    switch (f) {
    case 1: /* MIGRATION */
    case 8: /* DMA_LOGGING_REPORT */
        return get | probe;
    case 2: /* MIG_DEVICE_STATE */
        return get | set | probe;
    case 6: /* DMA_LOGGING_START */
    case 7: /* DMA_LOGGING_STOP */
        return set | probe;
    default:
        return 0;
    }
}

static void
test_feature_query_and_probe(void)
{
    static const uint32_t features[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xffff };
    struct bed b;
    struct vfu_test_client c;
    uint8_t reply[64];
    uint32_t hdr[4];
    uint64_t flags = 0;
    size_t len = 0;

    REQUIRE(bed_start(&b, "migr-feature", true, false, 0));
    REQUIRE_OK(vfu_test_client_open(&c, b.path));
    CHECK(vfu_test_json_has_key(c.server_json, "migration"));

    /* MIGRATION: stop-and-copy and pre-copy, no P2P. */
    CHECK_EQ(vfu_test_mig_get_flags(&c, &flags), 0);
    CHECK_EQ(flags, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY);
    CHECK_EQ(vfu_test_device_feature(&c, 16, VFIO_DEVICE_FEATURE_GET | 1, NULL, 0, reply,
                                     sizeof(reply), &len),
             0);
    CHECK_EQ(len, 16);
    memcpy(hdr, reply, 8);
    CHECK_EQ(hdr[0], 16);
    CHECK_EQ(hdr[1], VFIO_DEVICE_FEATURE_GET | 1);
    /* A GET whose argsz leaves no room for the data. */
    CHECK_EQ(vfu_test_device_feature(&c, 15, VFIO_DEVICE_FEATURE_GET | 1, NULL, 0, reply,
                                     sizeof(reply), &len),
             EINVAL);
    CHECK_EQ(vfu_test_device_feature(&c, 15, VFIO_DEVICE_FEATURE_GET | 2, NULL, 0, reply,
                                     sizeof(reply), &len),
             EINVAL);
    CHECK_EQ(get_state(&c), VFIO_USER_DEVICE_STATE_RUNNING);

    /* PROBE: success exactly when every operation named is supported. */
    for (size_t i = 0; i < VFU_ARRAY_LEN(features); i++) {
        uint32_t f = features[i];

        for (uint32_t ops = 0; ops < 4; ops++) {
            uint32_t asked = VFIO_DEVICE_FEATURE_PROBE | ((ops & 1) ? VFIO_DEVICE_FEATURE_GET : 0) |
                             ((ops & 2) ? VFIO_DEVICE_FEATURE_SET : 0);
            bool ok = supported_ops(f) != 0 && (asked & ~supported_ops(f)) == 0;
            uint8_t data[16] = { 1, 2, 3, 4 };
            int ret;

            len = 0;
            ret = vfu_test_device_feature(&c, 24, asked | f, data, sizeof(data), reply,
                                          sizeof(reply), &len);
            CHECK_MSG(ret == (ok ? 0 : EINVAL), "feature %u ops %#x: %d", f, asked, ret);
            if (ok) {
                /* The reply is the request. */
                CHECK_EQ(len, 24);
                memcpy(hdr, reply, 8);
                CHECK_EQ(hdr[0], 24);
                CHECK_EQ(hdr[1], asked | f);
                CHECK_MEM(reply + 8, data, sizeof(data));
            }
        }
    }
    /* An operation the feature lacks, without PROBE. */
    CHECK_EQ(feature(&c, VFIO_DEVICE_FEATURE_SET | 1), EINVAL);
    CHECK_EQ(feature(&c, VFIO_DEVICE_FEATURE_GET | 6), EINVAL);
    CHECK_EQ(feature(&c, VFIO_DEVICE_FEATURE_SET | 8), EINVAL);
    /* GET and SET together, or no operation at all. */
    CHECK_EQ(feature(&c, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | 2), EINVAL);
    CHECK_EQ(feature(&c, 2), EINVAL);
    /* Flag bits no operation has. */
    CHECK_EQ(feature(&c, VFIO_DEVICE_FEATURE_PROBE | (1u << 19) | 2), EINVAL);
    CHECK_EQ(feature(&c, VFIO_DEVICE_FEATURE_GET | (1u << 31) | 1), EINVAL);
    /* SET with argsz shorter than the request, or with no state in it. */
    {
        uint32_t st[2] = { VFIO_USER_DEVICE_STATE_STOP, 0 };

        CHECK_EQ(vfu_test_device_feature(&c, 15, VFIO_DEVICE_FEATURE_SET | 2, st, sizeof(st), reply,
                                         sizeof(reply), &len),
                 EINVAL);
        CHECK_EQ(vfu_test_device_feature(&c, 12, VFIO_DEVICE_FEATURE_SET | 2, st, 4, reply,
                                         sizeof(reply), &len),
                 EINVAL);
        CHECK_EQ(vfu_test_device_feature(&c, 8, VFIO_DEVICE_FEATURE_SET | 2, NULL, 0, reply,
                                         sizeof(reply), &len),
                 EINVAL);
        /* A good SET echoes the request. */
        CHECK_EQ(vfu_test_device_feature(&c, 16, VFIO_DEVICE_FEATURE_SET | 2, st, sizeof(st), reply,
                                         sizeof(reply), &len),
                 0);
        CHECK_EQ(len, 16);
        CHECK_MEM(reply + 8, st, sizeof(st));
    }
    CHECK_EQ(get_state(&c), VFIO_USER_DEVICE_STATE_STOP);
    CHECK_EQ(b.dev.nr_log, 1);
    /* Shorter than the feature header. */
    {
        const uint8_t short_payload[4] = { 8, 0, 0, 0 };

        CHECK_EQ(raw(&c, VFIO_USER_DEVICE_FEATURE, short_payload, sizeof(short_payload)), EINVAL);
    }
    CHECK_EQ(vfu_test_mig_set_state(&c, VFIO_USER_DEVICE_STATE_RUNNING), 0);
    check_serving(&c);
    vfu_test_client_close(&c);
    bed_stop(&b);
}

/* ------------------------------------------------------------ transitions */

enum { S = 1, R = 2, SC = 3, RES = 4, PC = 6 };

/* The device's name for each state, as its transition callback hears it. */
static int
cb_name(int state)
{
    switch (state) {
    case S:
        return VFU_MIGR_STATE_STOP;
    case R:
        return VFU_MIGR_STATE_RUNNING;
    case SC:
        return VFU_MIGR_STATE_STOP_AND_COPY;
    case RES:
        return VFU_MIGR_STATE_RESUME;
    default:
        return VFU_MIGR_STATE_PRE_COPY;
    }
}

struct arc_case {
    int from, to;
    int path[4]; /* states passed through, 0-terminated */
    bool refused;
};

/*
 * Every pair of the five states: the shortest way along the protocol's
 * arcs whose interior avoids PRE_COPY and STOP_COPY; STOP_COPY to PRE_COPY
 * is forbidden outright.
 */
static const struct arc_case arc_cases[] = {
    { S, S, { 0 }, false },     { S, R, { R }, false },           { S, SC, { SC }, false },
    { S, RES, { RES }, false }, { S, PC, { R, PC }, false },      { R, S, { S }, false },
    { R, R, { 0 }, false },     { R, SC, { S, SC }, false },      { R, RES, { S, RES }, false },
    { R, PC, { PC }, false },   { SC, S, { S }, false },          { SC, R, { S, R }, false },
    { SC, SC, { 0 }, false },   { SC, RES, { S, RES }, false },   { SC, PC, { 0 }, true },
    { RES, S, { S }, false },   { RES, R, { S, R }, false },      { RES, SC, { S, SC }, false },
    { RES, RES, { 0 }, false }, { RES, PC, { S, R, PC }, false }, { PC, S, { R, S }, false },
    { PC, R, { R }, false },    { PC, SC, { SC }, false },        { PC, RES, { R, S, RES }, false },
    { PC, PC, { 0 }, false },
};

/* From RUNNING to state, by a path the table above already checks. */
static void
reach(struct vfu_test_client *c, int state)
{
    CHECK_EQ(vfu_test_mig_set_state(c, (uint32_t)state), 0);
    CHECK_EQ(get_state(c), state);
}

static void
test_every_transition(void)
{
    /* Targets that are never accepted: ERROR, the P2P states, past the end. */
    static const uint32_t invalid[] = { 0, 5, 7, 8, 9, 0xffffffff };
    struct bed b;
    struct vfu_test_client c;

    REQUIRE(bed_start(&b, "migr-arcs", true, false, 0));
    REQUIRE_OK(vfu_test_client_open(&c, b.path));
    for (size_t i = 0; i < VFU_ARRAY_LEN(arc_cases); i++) {
        const struct arc_case *a = &arc_cases[i];
        size_t n = 0;
        int ret;

        reach(&c, a->from);
        b.dev.nr_log = 0;
        ret = vfu_test_mig_set_state(&c, (uint32_t)a->to);
        CHECK_MSG(ret == (a->refused ? EINVAL : 0), "%d -> %d: %d", a->from, a->to, ret);
        CHECK_EQ(get_state(&c), a->refused ? a->from : a->to);
        while (n < 4 && a->path[n] != 0) {
            n++;
        }
        CHECK_MSG(b.dev.nr_log == n, "%d -> %d: %zu callbacks, want %zu", a->from, a->to,
                  b.dev.nr_log, n);
        for (size_t k = 0; k < n && k < b.dev.nr_log; k++) {
            CHECK_MSG((int)b.dev.log[k] == cb_name(a->path[k]), "%d -> %d step %zu: %d", a->from,
                      a->to, k, (int)b.dev.log[k]);
        }
        for (size_t k = 0; k < VFU_ARRAY_LEN(invalid); k++) {
            b.dev.nr_log = 0;
            CHECK_EQ(vfu_test_mig_set_state(&c, invalid[k]), EINVAL);
            CHECK_EQ(b.dev.nr_log, 0);
            CHECK_EQ(get_state(&c), a->refused ? a->from : a->to);
        }
        CHECK_EQ(vfu_test_mig_set_state(&c, R), 0);
    }
    check_serving(&c);
    vfu_test_client_close(&c);
    bed_stop(&b);
}

/* A step the device refuses ends the walk there, its errno verbatim. */
static void
test_refused_step(void)
{
    struct bed b;
    struct vfu_test_client c;

    REQUIRE(bed_start(&b, "migr-refuse", true, false, 0));
    REQUIRE_OK(vfu_test_client_open(&c, b.path));
    b.dev.fail_state = VFU_MIGR_STATE_STOP_AND_COPY;
    b.dev.fail_errno = 0xbeef;
    CHECK_EQ(vfu_test_mig_set_state(&c, SC), 0xbeef);
    CHECK_EQ(get_state(&c), S);
    CHECK_EQ(b.dev.nr_log, 2);
    /* The first step fails: nothing moves. */
    b.dev.fail_state = VFU_MIGR_STATE_RUNNING;
    b.dev.fail_errno = EIO;
    b.dev.nr_log = 0;
    CHECK_EQ(vfu_test_mig_set_state(&c, PC), EIO);
    CHECK_EQ(get_state(&c), S);
    b.dev.fail_state = NO_STATE;
    CHECK_EQ(vfu_test_mig_set_state(&c, PC), 0);
    CHECK_EQ(vfu_test_mig_set_state(&c, R), 0);
    check_serving(&c);
    vfu_test_client_close(&c);
    bed_stop(&b);
}

/* STOP keeps the registers reachable; STOP_COPY only the migration. */
static void
test_commands_by_state(void)
{
    struct bed b;
    struct vfu_test_client c;
    struct vfio_user_device_info info;
    uint32_t val = 0, got = 0;
    uint8_t buf[64];

    REQUIRE(bed_start(&b, "migr-filter", true, false, 0));
    REQUIRE_OK(vfu_test_client_open(&c, b.path));

    reach(&c, S);
    CHECK_EQ(vfu_test_region_read(&c, 0, 0, 4, &val), 0);
    CHECK_EQ(vfu_test_region_write(&c, 0, 0, 4, &val), 0);
    CHECK_EQ(vfu_test_cfg_read(&c, 0, 4, &val), 0);
    CHECK_EQ(vfu_test_device_get_info(&c, &info), EINVAL);
    CHECK_EQ(vfu_test_device_reset(&c), EINVAL);
    CHECK_EQ(vfu_test_dma_unmap(&c, VFIO_DMA_UNMAP_FLAG_ALL, 0, 0), EINVAL);
    CHECK_EQ(vfu_test_mig_data_write(&c, buf, 8), EINVAL);

    CHECK_EQ(vfu_test_mig_set_state(&c, SC), 0);
    CHECK_EQ(vfu_test_region_read(&c, 0, 0, 4, &val), EINVAL);
    CHECK_EQ(vfu_test_region_write(&c, 0, 0, 4, &val), EINVAL);
    CHECK_EQ(vfu_test_device_get_info(&c, &info), EINVAL);
    CHECK_EQ(vfu_test_mig_data_read(&c, sizeof(buf), buf, &got), 0);
    CHECK_EQ(got, sizeof(buf));
    CHECK_EQ(get_state(&c), SC);

    /* Everything is back once the device runs. */
    CHECK_EQ(vfu_test_mig_set_state(&c, R), 0);
    CHECK_EQ(vfu_test_device_get_info(&c, &info), 0);
    CHECK_EQ(vfu_test_region_read(&c, 0, 0, 4, &val), 0);
    reach(&c, RES);
    CHECK_EQ(vfu_test_device_get_info(&c, &info), 0);
    CHECK_EQ(vfu_test_cfg_read(&c, 0, 4, &val), 0);
    CHECK_EQ(vfu_test_mig_set_state(&c, R), 0);
    vfu_test_client_close(&c);
    bed_stop(&b);
}

/* ------------------------------------------------------------------- data */

static void
test_data_in_wrong_states(void)
{
    struct bed b;
    struct vfu_test_client c;
    uint8_t buf[SMALL_XFER + 8];
    uint32_t got = 0, req[2];

    memset(buf, 0x5a, sizeof(buf));
    REQUIRE(bed_start(&b, "migr-data-state", true, false, 0));
    REQUIRE_OK(open_client(&c, b.path, SMALL_XFER_JSON));

    /* Reads only in PRE_COPY and STOP_COPY, writes only in RESUMING. */
    CHECK_EQ(vfu_test_mig_data_read(&c, 16, buf, &got), EINVAL);
    CHECK_EQ(vfu_test_mig_data_write(&c, buf, 16), EINVAL);
    reach(&c, S);
    CHECK_EQ(vfu_test_mig_data_read(&c, 16, buf, &got), EINVAL);
    CHECK_EQ(vfu_test_mig_data_write(&c, buf, 16), EINVAL);
    CHECK_EQ(vfu_test_mig_set_state(&c, RES), 0);
    CHECK_EQ(vfu_test_mig_data_read(&c, 16, buf, &got), EINVAL);
    CHECK_EQ(vfu_test_mig_data_write(&c, buf, 16), 0);
    /* More than the client's transfer size, in either direction. */
    CHECK_EQ(vfu_test_mig_data_write(&c, buf, SMALL_XFER + 1), EINVAL);
    /* argsz short of the data, or a payload that is not the size said. */
    req[0] = 8 + 15;
    req[1] = 16;
    {
        uint8_t msg[8 + 16];

        memcpy(msg, req, 8);
        memset(msg + 8, 1, 16);
        CHECK_EQ(raw(&c, VFIO_USER_MIG_DATA_WRITE, msg, sizeof(msg)), EINVAL);
        req[0] = 8 + 16;
        memcpy(msg, req, 8);
        CHECK_EQ(raw(&c, VFIO_USER_MIG_DATA_WRITE, msg, sizeof(msg) - 1), EINVAL);
        CHECK_EQ(raw(&c, VFIO_USER_MIG_DATA_WRITE, msg, 4), EINVAL);
    }
    /* write_data must take every byte; its errors come back verbatim. */
    b.dev.short_write = true;
    CHECK_EQ(vfu_test_mig_data_write(&c, buf, 16), EINVAL);
    b.dev.short_write = false;
    CHECK_EQ(vfu_test_mig_data_write(&c, buf, SMALL_XFER), 0);
    CHECK_EQ(vfu_test_mig_data_write(&c, buf, SMALL_XFER), 0);
    CHECK_EQ(vfu_test_mig_data_write(&c, buf, SMALL_XFER), 0);
    CHECK_EQ(vfu_test_mig_data_write(&c, buf, SMALL_XFER), 0);
    CHECK_EQ(vfu_test_mig_data_write(&c, buf, SMALL_XFER), ENOSPC);

    CHECK_EQ(vfu_test_mig_set_state(&c, R), 0);
    reach(&c, PC);
    CHECK_EQ(vfu_test_mig_data_write(&c, buf, 16), EINVAL);
    CHECK_EQ(vfu_test_mig_data_read(&c, SMALL_XFER + 1, buf, &got), EINVAL);
    req[0] = 8 + 15;
    req[1] = 16;
    CHECK_EQ(raw(&c, VFIO_USER_MIG_DATA_READ, req, sizeof(req)), EINVAL);
    CHECK_EQ(raw(&c, VFIO_USER_MIG_DATA_READ, req, 4), EINVAL);
    b.dev.read_errno = 0xbeef;
    CHECK_EQ(vfu_test_mig_data_read(&c, 16, buf, &got), 0xbeef);
    b.dev.read_errno = 0;
    CHECK_EQ(vfu_test_mig_data_read(&c, 16, buf, &got), 0);
    CHECK_EQ(got, 16);
    CHECK_EQ(vfu_test_mig_set_state(&c, SC), 0);
    CHECK_EQ(vfu_test_mig_data_write(&c, buf, 16), EINVAL);
    CHECK_EQ(vfu_test_mig_set_state(&c, R), 0);
    check_serving(&c);
    vfu_test_client_close(&c);
    bed_stop(&b);
}

/*
 * Reads the data stream until a short chunk ends it; the reply carries
 * exactly the bytes produced. Returns the bytes read.
 */
static size_t
read_stream(struct vfu_test_client *c, uint8_t *buf, size_t cap, unsigned *chunks)
{
    size_t total = 0;

    for (;;) {
        uint32_t got = 0;

        if (!CHECK_EQ(vfu_test_mig_data_read(c, SMALL_XFER, buf + total, &got), 0) ||
            !CHECK_LE(total + got, cap)) {
            return total;
        }
        total += got;
        (*chunks)++;
        if (got < SMALL_XFER) {
            return total;
        }
    }
}

static void
write_stream(struct vfu_test_client *c, const uint8_t *buf, size_t len)
{
    for (size_t off = 0; off < len; off += SMALL_XFER) {
        CHECK_EQ(vfu_test_mig_data_write(c, buf + off, (uint32_t)VFU_MIN(SMALL_XFER, len - off)),
                 0);
    }
}

/* A -> B with the state in max_data_xfer_size chunks: pre-copy, then the rest. */
static void
test_migrate_in_chunks(void)
{
    static uint8_t stream[STATE_LEN + SMALL_XFER];
    struct bed a, b;
    struct vfu_test_client ca, cb;
    unsigned chunks = 0;
    size_t pre, rest;

    REQUIRE(bed_start(&a, "migr-src", true, false, 1));
    REQUIRE(bed_start(&b, "migr-dst", true, false, 2));
    b.dev.strict = true;
    REQUIRE_OK(open_client(&ca, a.path, SMALL_XFER_JSON));
    REQUIRE_OK(open_client(&cb, b.path, SMALL_XFER_JSON));

    CHECK_EQ(vfu_test_mig_set_state(&ca, PC), 0);
    pre = read_stream(&ca, stream, sizeof(stream), &chunks);
    CHECK_EQ(pre, PRECOPY_LEN);
    /* Pre-copy drained: more reads say so with no data. */
    {
        uint32_t got = 1;

        CHECK_EQ(vfu_test_mig_data_read(&ca, SMALL_XFER, stream + pre, &got), 0);
        CHECK_EQ(got, 0);
    }
    CHECK_EQ(vfu_test_mig_set_state(&ca, SC), 0);
    rest = read_stream(&ca, stream + pre, sizeof(stream) - pre, &chunks);
    CHECK_EQ(pre + rest, STATE_LEN);
    CHECK_GE(chunks, STATE_LEN / SMALL_XFER + 1);
    CHECK_EQ(vfu_test_mig_set_state(&ca, S), 0);

    /* Half the data, then an attempt to finish: the device refuses. */
    CHECK_EQ(vfu_test_mig_set_state(&cb, RES), 0);
    write_stream(&cb, stream, SMALL_XFER);
    CHECK_EQ(vfu_test_mig_set_state(&cb, R), EBADMSG);
    CHECK_EQ(get_state(&cb), RES);
    CHECK(memcmp(b.dev.state, a.dev.state, STATE_LEN) != 0);
    /* From the start again, all of it. */
    CHECK_EQ(vfu_test_mig_set_state(&cb, S), EBADMSG);
    b.dev.strict = false;
    CHECK_EQ(vfu_test_mig_set_state(&cb, S), 0);
    b.dev.strict = true;
    CHECK_EQ(vfu_test_mig_set_state(&cb, RES), 0);
    write_stream(&cb, stream, pre + rest);
    CHECK_EQ(vfu_test_mig_set_state(&cb, R), 0);
    CHECK_MEM(b.dev.state, a.dev.state, STATE_LEN);
    /* The BAR a client sees says the same. */
    {
        uint8_t bar[256];

        CHECK_EQ(vfu_test_region_read(&cb, 0, 0x100, sizeof(bar), bar), 0);
        CHECK_MEM(bar, a.dev.state + 0x100, sizeof(bar));
    }
    vfu_test_client_close(&ca);
    vfu_test_client_close(&cb);
    bed_stop(&a);
    bed_stop(&b);
}

/* --------------------------------------------------------- interruptions */

static int
read_migr_state(vfu_ctx_t *ctx, void *arg)
{
    *(uint32_t *)arg = ctx->migr_state;
    return 0;
}

/* A client that leaves mid-migration leaves a running device behind. */
static void
test_disconnect_mid_migration(void)
{
    static uint8_t stream[STATE_LEN + SMALL_XFER];
    struct bed a;
    struct vfu_test_client c;
    uint32_t got = 0, state = 0;
    unsigned chunks = 0;

    REQUIRE(bed_start(&a, "migr-drop", true, false, 3));
    for (int target = SC; target != 0; target = target == SC ? RES : 0) {
        REQUIRE_OK(open_client(&c, a.path, SMALL_XFER_JSON));
        CHECK_EQ(vfu_test_mig_set_state(&c, (uint32_t)target), 0);
        if (target == SC) {
            CHECK_EQ(vfu_test_mig_data_read(&c, 100, stream, &got), 0);
        } else {
            CHECK_EQ(vfu_test_mig_data_write(&c, stream, 100), 0);
        }
        a.dev.nr_log = 0;
        vfu_test_client_close(&c);
        CHECK_OK(vfu_test_server_wait_disconnects(&a.srv, target == SC ? 1 : 2, 5000));
        /* Told RUNNING straight away, not walked through STOP. */
        CHECK_EQ(a.dev.nr_log, 1);
        CHECK_EQ(a.dev.log[0], VFU_MIGR_STATE_RUNNING);
        vfu_test_server_call(&a.srv, read_migr_state, &state);
        CHECK_EQ(state, R);
    }

    /* The next client finds it running and can migrate it whole. */
    REQUIRE_OK(open_client(&c, a.path, SMALL_XFER_JSON));
    CHECK_EQ(get_state(&c), R);
    check_serving(&c);
    CHECK_EQ(vfu_test_mig_set_state(&c, SC), 0);
    CHECK_EQ(read_stream(&c, stream, sizeof(stream), &chunks), STATE_LEN);
    CHECK_MEM(stream, a.dev.state, STATE_LEN);
    CHECK_EQ(vfu_test_mig_set_state(&c, R), 0);
    vfu_test_client_close(&c);
    bed_stop(&a);
}

/* DEVICE_RESET abandons a migration too. */
static void
test_reset_abandons_migration(void)
{
    struct bed a;
    struct vfu_test_client c;

    REQUIRE(bed_start(&a, "migr-reset", true, false, 0));
    REQUIRE_OK(vfu_test_client_open(&c, a.path));
    for (int target = PC; target != 0; target = target == PC ? RES : 0) {
        CHECK_EQ(vfu_test_mig_set_state(&c, (uint32_t)target), 0);
        a.dev.nr_log = 0;
        CHECK_EQ(vfu_test_device_reset(&c), 0);
        CHECK_EQ(get_state(&c), R);
        CHECK_EQ(a.dev.nr_log, 1);
        CHECK_EQ(a.dev.log[0], VFU_MIGR_STATE_RUNNING);
    }
    /* A running device hears nothing. */
    a.dev.nr_log = 0;
    CHECK_EQ(vfu_test_device_reset(&c), 0);
    CHECK_EQ(a.dev.nr_log, 0);
    vfu_test_client_close(&c);
    bed_stop(&a);
}

static int
call_quiesced(vfu_ctx_t *ctx, void *arg)
{
    (void)arg;
    return vfu_device_quiesced(ctx, 0);
}

static bool
server_busy(void *arg)
{
    return atomic_load(&((struct vfu_test_server *)arg)->busy) > 0;
}

/* A state change waits for the device to quiesce; GET and PROBE do not. */
static void
test_quiesce_before_set(void)
{
    struct bed a;
    struct vfu_test_client c;
    struct vfio_user_header hdr;
    uint8_t reply[64];
    uint32_t st[2] = { S, 0 };
    uint32_t req[4] = { 16, VFIO_DEVICE_FEATURE_SET | 2, S, 0 };
    size_t len = 0;

    REQUIRE(bed_start(&a, "migr-quiesce", true, true, 0));
    REQUIRE_OK(vfu_test_client_open(&c, a.path));
    a.dev.quiesce_busy = true;
    CHECK_EQ(get_state(&c), R);
    CHECK_EQ(vfu_test_device_feature(&c, 16,
                                     VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET | 2, st,
                                     sizeof(st), reply, sizeof(reply), &len),
             0);
    CHECK_EQ(a.dev.quiesces, 0);

    REQUIRE(vfu_test_send_cmd(&c, VFIO_USER_DEVICE_FEATURE, 0, req, sizeof(req), NULL, 0) >= 0);
    CHECK(vfu_test_wait_until(server_busy, &a.srv, 5000));
    CHECK_EQ(a.dev.quiesces, 1);
    CHECK_EQ(a.dev.nr_log, 0);
    CHECK_OK(vfu_test_server_call(&a.srv, call_quiesced, NULL));
    len = 0;
    CHECK_OK(vfu_test_recv_msg(&c, &hdr, reply, sizeof(reply), &len, NULL, NULL));
    CHECK_EQ(hdr.flags, VFIO_USER_F_TYPE_REPLY);
    CHECK_EQ(len, 16);
    CHECK_EQ(a.dev.nr_log, 1);
    CHECK_EQ(a.dev.log[0], VFU_MIGR_STATE_STOP);
    CHECK_EQ(get_state(&c), S);

    /* Quiesced at once: no parking. */
    a.dev.quiesce_busy = false;
    CHECK_EQ(vfu_test_mig_set_state(&c, R), 0);
    CHECK_EQ(a.dev.quiesces, 2);
    vfu_test_client_close(&c);
    bed_stop(&a);
}

/* ------------------------------------------------------------------- seed */

static int
trigger_vector(vfu_ctx_t *ctx, void *arg)
{
    return vfu_irq_trigger(ctx, *(uint32_t *)arg);
}

static void
open_eventfds(int *efds)
{
    for (int i = 0; i < MSIX_VECTORS; i++) {
        efds[i] = vfu_test_eventfd_new();
        REQUIRE(efds[i] >= 0);
    }
}

static void
close_eventfds(int *efds)
{
    for (int i = 0; i < MSIX_VECTORS; i++) {
        close(efds[i]);
    }
}

/*
 * The project's seed: a device with MSI-X enabled and one vector unmasked,
 * state in its BARs, migrated A -> B; the client replays config space as
 * QEMU restores it, with the 2-byte write at MSI-X cap + 3 carrying Enable
 * and Function Mask. B then matches A and delivers an interrupt.
 */
static void
test_seed_msix_migration(void)
{
    static uint8_t stream[STATE_LEN + SMALL_XFER];
    struct bed a, b;
    struct vfu_test_client ca, cb;
    uint8_t cfg_a[256], cfg_b[256], table_a[MSIX_VECTORS * 16], table_b[MSIX_VECTORS * 16],
        pba_a[8], pba_b[8], bar_b[BAR0_SIZE];
    int efd_a[MSIX_VECTORS], efd_b[MSIX_VECTORS];
    size_t cap, pre, rest;
    unsigned chunks = 0;
    uint32_t vec;
    uint8_t two[2];

    REQUIRE(bed_start(&a, "seed-a", true, false, 4));
    REQUIRE(bed_start(&b, "seed-b", true, false, 5));
    b.dev.strict = true;
    cap = a.msix_cap;
    REQUIRE_OK(open_client(&ca, a.path, SMALL_XFER_JSON));
    REQUIRE_OK(open_client(&cb, b.path, SMALL_XFER_JSON));

    /* A as a guest left it: BARs placed, memory on, MSI-X on, vector 0 live. */
    open_eventfds(efd_a);
    CHECK_EQ(vfu_test_cfg_write_val(&ca, PCI_BASE_ADDRESS_0, 4, 0xfe000000), 0);
    CHECK_EQ(vfu_test_cfg_write_val(&ca, PCI_BASE_ADDRESS_1, 4, 0xfd000000), 0);
    CHECK_EQ(vfu_test_cfg_write_val(&ca, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER),
             0);
    CHECK_EQ(vfu_test_set_irqs_eventfds(&ca, VFU_DEV_MSIX_IRQ, 0, MSIX_VECTORS, efd_a), 0);
    CHECK_EQ(vfu_test_cfg_write_val(&ca, cap + 3, 1, 0x80), 0);
    for (uint32_t v = 0; v < MSIX_VECTORS; v++) {
        uint32_t entry[4] = { 0xfee00000 + v * 0x10, 0, 0x4000 + v, v == 0 ? 0 : 1 };

        CHECK_EQ(vfu_test_region_write(&ca, MSIX_BAR, v * 16, 16, entry), 0);
    }
    for (size_t off = 0; off < BAR0_SIZE; off += 1024) {
        uint8_t chunk[1024];

        for (size_t i = 0; i < sizeof(chunk); i++) {
            chunk[i] = (uint8_t)((off + i) * 13);
        }
        CHECK_EQ(vfu_test_region_write(&ca, 0, off, sizeof(chunk), chunk), 0);
    }
    vec = 0;
    CHECK_OK(vfu_test_server_call(&a.srv, trigger_vector, &vec));
    CHECK_EQ(vfu_test_eventfd_wait(efd_a[0], 2000), 1);
    REQUIRE_OK(vfu_test_cfg_read(&ca, 0, sizeof(cfg_a), cfg_a));
    REQUIRE_OK(vfu_test_region_read(&ca, MSIX_BAR, 0, sizeof(table_a), table_a));
    REQUIRE_OK(vfu_test_region_read(&ca, MSIX_BAR, MSIX_PBA, sizeof(pba_a), pba_a));
    CHECK_EQ(cfg_a[cap + 3] & 0xc0, 0x80);

    /* Migrate: pre-copy, stop-and-copy, stop. */
    CHECK_EQ(vfu_test_mig_set_state(&ca, PC), 0);
    pre = read_stream(&ca, stream, sizeof(stream), &chunks);
    CHECK_EQ(vfu_test_mig_set_state(&ca, SC), 0);
    rest = read_stream(&ca, stream + pre, sizeof(stream) - pre, &chunks);
    CHECK_EQ(vfu_test_mig_set_state(&ca, S), 0);
    CHECK_EQ(pre + rest, STATE_LEN);

    /* B: load the state, then restore config space as QEMU does. */
    CHECK_EQ(vfu_test_mig_set_state(&cb, RES), 0);
    write_stream(&cb, stream, pre + rest);
    for (size_t off = 0; off < sizeof(cfg_a); off += 4) {
        uint32_t dw;

        if (off == PCI_COMMAND || off == cap) {
            continue;
        }
        memcpy(&dw, cfg_a + off, 4);
        CHECK_MSG(vfu_test_cfg_write(&cb, off, 4, &dw) == 0, "config %#zx", off);
    }
    for (size_t off = 0; off < sizeof(table_a); off += 16) {
        CHECK_EQ(vfu_test_region_write(&cb, MSIX_BAR, off, 16, table_a + off), 0);
    }
    two[0] = 0xc0;
    two[1] = cfg_a[cap + 4];
    CHECK_EQ(vfu_test_cfg_write(&cb, cap + 3, 2, two), 0);
    CHECK_EQ(vfu_test_cfg_write(&cb, cap + 2, 2, cfg_a + cap + 2), 0);
    CHECK_EQ(vfu_test_cfg_write(&cb, PCI_COMMAND, 2, cfg_a + PCI_COMMAND), 0);
    open_eventfds(efd_b);
    CHECK_EQ(vfu_test_set_irqs_eventfds(&cb, VFU_DEV_MSIX_IRQ, 0, MSIX_VECTORS, efd_b), 0);
    CHECK_EQ(vfu_test_mig_set_state(&cb, R), 0);

    /* B is A: config space, table, PBA, BAR and the state behind it. */
    REQUIRE_OK(vfu_test_cfg_read(&cb, 0, sizeof(cfg_b), cfg_b));
    CHECK_MEM(cfg_b, cfg_a, sizeof(cfg_a));
    CHECK_EQ(cfg_b[cap + 3] & 0xc0, 0x80);
    REQUIRE_OK(vfu_test_region_read(&cb, MSIX_BAR, 0, sizeof(table_b), table_b));
    CHECK_MEM(table_b, table_a, sizeof(table_a));
    REQUIRE_OK(vfu_test_region_read(&cb, MSIX_BAR, MSIX_PBA, sizeof(pba_b), pba_b));
    CHECK_MEM(pba_b, pba_a, sizeof(pba_a));
    REQUIRE_OK(vfu_test_region_read(&cb, 0, 0, sizeof(bar_b), bar_b));
    CHECK_MEM(bar_b, a.dev.state, BAR0_SIZE);
    CHECK_MEM(b.dev.state, a.dev.state, STATE_LEN);

    /* The unmasked vector reaches the client; a masked one waits in the PBA. */
    vec = 0;
    CHECK_OK(vfu_test_server_call(&b.srv, trigger_vector, &vec));
    CHECK_EQ(vfu_test_eventfd_wait(efd_b[0], 2000), 1);
    vec = 1;
    CHECK_OK(vfu_test_server_call(&b.srv, trigger_vector, &vec));
    CHECK_EQ(vfu_test_eventfd_wait(efd_b[1], 100), 0);
    REQUIRE_OK(vfu_test_region_read(&cb, MSIX_BAR, MSIX_PBA, sizeof(pba_b), pba_b));
    CHECK_EQ(pba_b[0], 0x02);

    vfu_test_client_close(&ca);
    vfu_test_client_close(&cb);
    close_eventfds(efd_a);
    close_eventfds(efd_b);
    bed_stop(&a);
    bed_stop(&b);
}

int
main(void)
{
    check_watchdog(120);
    RUN_TEST(test_setup_validation);
    RUN_TEST(test_commands_without_migration);
    RUN_TEST(test_feature_query_and_probe);
    RUN_TEST(test_every_transition);
    RUN_TEST(test_refused_step);
    RUN_TEST(test_commands_by_state);
    RUN_TEST(test_data_in_wrong_states);
    RUN_TEST(test_migrate_in_chunks);
    RUN_TEST(test_disconnect_mid_migration);
    RUN_TEST(test_reset_abandons_migration);
    RUN_TEST(test_quiesce_before_set);
    RUN_TEST(test_seed_msix_migration);
    return check_summary();
}
