/*
 * Behaviours that upstream's own sample client and tests rely on, checked
 * from the wire: a signal ends a blocking vfu_run_ctx with EINTR, a
 * MIG_DATA_READ reply is as long as the request asked, DEVICE_FEATURE
 * refuses an argsz smaller than its own structure even for a PROBE, and a
 * reply that fails after a quiesce resets the device without quiescing it
 * twice.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user.h"

#define MIG_BYTES 10 /* what read_data produces per call */

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
    size_t n = count < MIG_BYTES ? (size_t)count : MIG_BYTES;

    (void)ctx;
    memset(buf, 0xa5, n);
    return (ssize_t)n;
}

static ssize_t
write_data(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    (void)ctx;
    (void)buf;
    return (ssize_t)count;
}

static const vfu_migration_callbacks_t callbacks = {
    .version = VFU_MIGR_CALLBACKS_VERS,
    .transition = transition,
    .read_data = read_data,
    .write_data = write_data,
};

static vfu_ctx_t *
make_device(const char *path, int flags)
{
    vfu_ctx_t *ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, flags, NULL, VFU_DEV_TYPE_PCI);

    if (!CHECK(ctx != NULL)) {
        return NULL;
    }
    vfu_setup_log(ctx, vfu_test_log_stderr, LOG_DEBUG);
    CHECK_OK(vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0));
    CHECK_OK(vfu_setup_device_migration_callbacks(ctx, &callbacks));
    CHECK_OK(vfu_realize_ctx(ctx));
    return ctx;
}

/* ----------------------------------------------------- blocking and signals */

struct blocking_server {
    vfu_ctx_t *ctx;
    pthread_t thread;
    atomic_int interrupted; /* vfu_run_ctx returned -1/EINTR */
    atomic_int last_errno;  /* the errno that ended the loop */
    atomic_bool running;    /* between attach and the end of the loop */
};

static void
on_signal(int sig)
{
    (void)sig;
}

static void *
serve_blocking(void *arg)
{
    struct blocking_server *s = arg;

    if (vfu_attach_ctx(s->ctx) < 0) {
        atomic_store(&s->last_errno, errno);
        return NULL;
    }
    atomic_store(&s->running, true);
    for (;;) {
        /* Blocking: it returns only to report something. */
        if (vfu_run_ctx(s->ctx) >= 0) {
            continue;
        }
        if (errno == EINTR) {
            atomic_fetch_add(&s->interrupted, 1);
            continue;
        }
        atomic_store(&s->last_errno, errno);
        break;
    }
    atomic_store(&s->running, false);
    return NULL;
}

static void
test_blocking_run_returns_on_signal(void)
{
    struct sigaction sa = { .sa_handler = on_signal };
    struct blocking_server s = { 0 };
    struct vfio_user_device_info info;
    struct vfu_test_client c;
    char path[108];

    /* No SA_RESTART: the signal interrupts the wait, as for upstream's sample. */
    sigemptyset(&sa.sa_mask);
    REQUIRE_OK(sigaction(SIGUSR1, &sa, NULL));
    vfu_test_sock_path(path, sizeof(path), "blocking-eintr");
    s.ctx = make_device(path, 0);
    REQUIRE(s.ctx != NULL);
    REQUIRE_EQ(pthread_create(&s.thread, NULL, serve_blocking, &s), 0);
    REQUIRE_OK(vfu_test_client_open(&c, path));
    CHECK_EQ(vfu_test_device_get_info(&c, &info), 0);

    /* The signal may land between two waits: send it until one is cut. */
    for (int i = 0; i < 500 && atomic_load(&s.interrupted) == 0; i++) {
        pthread_kill(s.thread, SIGUSR1);
        vfu_test_sleep_ms(10);
    }
    CHECK_GT(atomic_load(&s.interrupted), 0);
    /* The caller got control back and the client is still served. */
    CHECK_EQ(vfu_test_device_get_info(&c, &info), 0);
    CHECK_EQ(info.num_regions, VFU_PCI_DEV_NUM_REGIONS);
    CHECK(atomic_load(&s.running));

    vfu_test_client_close(&c);
    pthread_join(s.thread, NULL);
    CHECK_EQ(atomic_load(&s.last_errno), ENOTCONN);
    vfu_destroy_ctx(s.ctx);
    signal(SIGUSR1, SIG_DFL);
}

/* ------------------------------------------------------------- migration */

struct bed {
    char path[108];
    vfu_ctx_t *ctx;
    struct vfu_test_server srv;
    struct vfu_test_client c;
};

static bool
bed_start(struct bed *b, const char *name)
{
    vfu_test_sock_path(b->path, sizeof(b->path), name);
    b->ctx = make_device(b->path, LIBVFIO_USER_FLAG_ATTACH_NB);
    if (b->ctx == NULL || vfu_test_server_start(&b->srv, b->ctx) < 0) {
        return false;
    }
    return CHECK_OK(vfu_test_client_open(&b->c, b->path));
}

static void
bed_stop(struct bed *b)
{
    vfu_test_client_close(&b->c);
    CHECK_EQ(vfu_test_server_run_errors(&b->srv), 0);
    vfu_test_server_stop(&b->srv);
    vfu_destroy_ctx(b->ctx);
}

static void
test_mig_data_read_reply_has_the_size_asked(void)
{
    const uint32_t asked = 64;
    uint32_t req[2] = { 8 + asked, asked };
    uint8_t reply[8 + 64 + 8];
    struct bed b;
    uint32_t argsz, size;
    size_t len = 0;

    REQUIRE(bed_start(&b, "mig-read-padded"));
    CHECK_EQ(vfu_test_mig_set_state(&b.c, VFIO_USER_DEVICE_STATE_PRE_COPY), 0);
    memset(reply, 0xee, sizeof(reply));
    CHECK_EQ(vfu_test_request(&b.c, VFIO_USER_MIG_DATA_READ, req, sizeof(req), NULL, 0, reply,
                              sizeof(reply), &len, NULL, NULL),
             0);
    /* All the bytes asked for; size and argsz say how many are data. */
    CHECK_EQ(len, 8 + asked);
    memcpy(&argsz, reply, sizeof(argsz));
    memcpy(&size, reply + 4, sizeof(size));
    CHECK_EQ(size, MIG_BYTES);
    CHECK_EQ(argsz, 8 + MIG_BYTES);
    CHECK_EQ(reply[8], 0xa5);
    CHECK_EQ(reply[8 + MIG_BYTES - 1], 0xa5);
    for (size_t i = 8 + MIG_BYTES; i < len; i++) {
        if (!CHECK_EQ(reply[i], 0)) {
            break;
        }
    }
    /* Our own client reads the stream as before. */
    {
        uint8_t buf[64];
        uint32_t got = 0;

        CHECK_EQ(vfu_test_mig_data_read(&b.c, sizeof(buf), buf, &got), 0);
        CHECK_EQ(got, MIG_BYTES);
    }
    CHECK_EQ(vfu_test_mig_set_state(&b.c, VFIO_USER_DEVICE_STATE_RUNNING), 0);
    bed_stop(&b);
}

static void
test_feature_argsz_below_its_structure(void)
{
    const uint32_t probe = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_MIGRATION;
    uint8_t reply[64];
    size_t len = 0;
    struct bed b;

    REQUIRE(bed_start(&b, "feature-argsz"));
    for (uint32_t argsz = 0; argsz < 8; argsz++) {
        CHECK_EQ(vfu_test_device_feature(&b.c, argsz, probe, NULL, 0, reply, sizeof(reply), &len),
                 EINVAL);
    }
    CHECK_EQ(vfu_test_device_feature(&b.c, 8, probe, NULL, 0, reply, sizeof(reply), &len), 0);
    /* Still serving after the refusals. */
    CHECK_EQ(vfu_test_mig_set_state(&b.c, VFIO_USER_DEVICE_STATE_STOP), 0);
    CHECK_EQ(vfu_test_mig_set_state(&b.c, VFIO_USER_DEVICE_STATE_RUNNING), 0);
    bed_stop(&b);
}

/* ---------------------------------------------------------------- quiesce */

struct counts {
    unsigned quiesces;
    unsigned resets[3];
};

static int
quiesce_later(vfu_ctx_t *ctx)
{
    struct counts *n = vfu_get_private(ctx);

    n->quiesces++;
    errno = EBUSY;
    return -1;
}

static int
count_reset(vfu_ctx_t *ctx, vfu_reset_type_t type)
{
    struct counts *n = vfu_get_private(ctx);

    n->resets[type]++;
    return 0;
}

static void
test_failed_reply_after_quiesce_resets_once(void)
{
    struct {
        struct vfio_user_header hdr;
        struct vfio_user_version v;
    } __attribute__((packed)) version = {
        .hdr = { .msg_id = 1, .cmd = VFIO_USER_VERSION, .msg_size = sizeof(version) },
    };
    struct vfio_user_header hdr;
    struct vfu_test_client c;
    struct counts n = { 0 };
    char reply[512];
    char path[108];
    size_t len;
    vfu_ctx_t *ctx;

    vfu_test_sock_path(path, sizeof(path), "quiesce-failed-reply");
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, &n, VFU_DEV_TYPE_PCI);
    REQUIRE(ctx != NULL);
    vfu_setup_log(ctx, vfu_test_log_stderr, LOG_DEBUG);
    vfu_setup_device_quiesce_cb(ctx, quiesce_later);
    CHECK_OK(vfu_setup_device_reset_cb(ctx, count_reset));
    CHECK_OK(vfu_realize_ctx(ctx));

    /* One thread plays both sides, so the order of events is exact. */
    REQUIRE_OK(vfu_test_client_connect(&c, path, -1));
    CHECK_OK(vfu_test_send_raw(&c, &version, sizeof(version), NULL, 0));
    vfu_test_sleep_ms(20);
    REQUIRE_OK(vfu_attach_ctx(ctx));
    CHECK_OK(vfu_test_recv_msg(&c, &hdr, reply, sizeof(reply), &len, NULL, NULL));
    CHECK_GE(vfu_test_send_cmd(&c, VFIO_USER_DEVICE_RESET, 0, NULL, 0, NULL, 0), 0);
    vfu_test_sleep_ms(20);
    CHECK_ERRNO(vfu_run_ctx(ctx), EBUSY);
    CHECK_EQ(n.quiesces, 1);

    /* The client leaves before the device is ready: the reply cannot go. */
    vfu_test_client_close(&c);
    CHECK_OK(vfu_device_quiesced(ctx, 0));
    CHECK_EQ(n.resets[VFU_RESET_DEVICE], 1);
    CHECK_EQ(n.resets[VFU_RESET_LOST_CONN], 1);
    CHECK_EQ(n.quiesces, 1);
    CHECK_ERRNO(vfu_run_ctx(ctx), ENOTCONN);
    CHECK_EQ(n.quiesces, 1);
    vfu_destroy_ctx(ctx);
}

int
main(void)
{
    check_watchdog(60);
    RUN_TEST(test_blocking_run_returns_on_signal);
    RUN_TEST(test_mig_data_read_reply_has_the_size_asked);
    RUN_TEST(test_feature_argsz_below_its_structure);
    RUN_TEST(test_failed_reply_after_quiesce_resets_once);
    return check_summary();
}
