/*
 * A client the server cannot trust: one that connects and stalls before or
 * inside VERSION, sends garbage, hangs up half-way, or stops reading its
 * replies. None of them may lock out the next client, make the server spin
 * or let its memory grow without bound.
 */
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user.h"
#include "private.h"

#define BIG_BAR_SIZE (1u << 20)

struct device {
    atomic_int resets[3]; /* by vfu_reset_type_t */
    bool quiesce_async;
};

static ssize_t
big_bar_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    if (!is_write) {
        for (size_t i = 0; i < count; i++) {
            buf[i] = (char)((offset + i) * 7);
        }
    }
    return (ssize_t)count;
}

static int
on_reset(vfu_ctx_t *ctx, vfu_reset_type_t type)
{
    struct device *dev = vfu_get_private(ctx);

    atomic_fetch_add(&dev->resets[type], 1);
    return 0;
}

static int
on_quiesce(vfu_ctx_t *ctx)
{
    struct device *dev = vfu_get_private(ctx);

    if (dev->quiesce_async) {
        errno = EBUSY;
        return -1;
    }
    return 0;
}

static vfu_ctx_t *
make_device(const char *name, struct device *dev)
{
    char path[108];
    vfu_ctx_t *ctx;

    vfu_test_sock_path(path, sizeof(path), name);
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, dev, VFU_DEV_TYPE_PCI);
    if (ctx == NULL) {
        FAIL("vfu_create_ctx(%s): %s", path, strerror(errno));
        return NULL;
    }
    vfu_setup_log(ctx, vfu_test_log_stderr, LOG_DEBUG);
    CHECK_OK(vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0));
    CHECK_OK(vfu_setup_region(ctx, VFU_PCI_DEV_BAR1_REGION_IDX, BIG_BAR_SIZE, big_bar_access,
                              VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0));
    CHECK_OK(vfu_setup_device_reset_cb(ctx, on_reset));
    CHECK_OK(vfu_realize_ctx(ctx));
    return ctx;
}

static const char *
ctx_path(vfu_ctx_t *ctx)
{
    return ctx->sock_path;
}

static void
check_serving(struct vfu_test_client *c)
{
    struct vfio_user_device_info info;

    memset(&info, 0, sizeof(info));
    CHECK_EQ(vfu_test_device_get_info(c, &info), 0);
    CHECK_EQ(info.num_regions, VFU_PCI_DEV_NUM_REGIONS);
}

/* A VERSION message with no capabilities, as raw bytes. */
struct version_msg {
    struct vfio_user_header hdr;
    struct vfio_user_version v;
} __attribute__((packed));

static const struct version_msg version_msg = {
    .hdr = { .msg_id = 1, .cmd = VFIO_USER_VERSION, .msg_size = sizeof(version_msg) },
};

static bool
poll_fd_ready(vfu_ctx_t *ctx)
{
    struct pollfd pfd = { .fd = vfu_get_poll_fd(ctx), .events = POLLIN };

    return poll(&pfd, 1, 0) == 1;
}

/* Whether the server thread holds a connection that has not finished VERSION. */
static int
has_pending_client(vfu_ctx_t *ctx, void *arg)
{
    return ctx->conn.main.fd >= 0 && !ctx->conn.negotiated;
}

struct pending_wait {
    struct vfu_test_server *srv;
};

static bool
pending_client_pred(void *arg)
{
    struct pending_wait *w = arg;

    return vfu_test_server_call(w->srv, has_pending_client, NULL) == 1;
}

static bool
wait_pending_client(struct vfu_test_server *srv)
{
    struct pending_wait w = { srv };

    return vfu_test_wait_until(pending_client_pred, &w, 2000);
}

/*
 * Each way of stalling inside the first message: the server has accepted the
 * client and waits for the rest of VERSION when the next one connects.
 */
static void
test_stalled_first_message(void)
{
    static const struct {
        const char *what;
        size_t len; /* bytes of version_msg sent before stalling */
    } stalls[] = {
        { "nothing", 0 },
        { "half a header", 7 },
        { "a header and part of its body", sizeof(struct vfio_user_header) + 2 },
    };
    struct device dev = { 0 };
    struct vfu_test_server srv;
    vfu_ctx_t *ctx = make_device("stall", &dev);
    int fds_before;

    REQUIRE(ctx != NULL);
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    fds_before = vfu_test_count_open_fds();
    for (size_t i = 0; i < VFU_ARRAY_LEN(stalls); i++) {
        struct vfu_test_client stalled, next;

        REQUIRE_OK(vfu_test_client_connect(&stalled, ctx_path(ctx), -1));
        if (stalls[i].len > 0) {
            CHECK_OK(vfu_test_send_raw(&stalled, &version_msg, stalls[i].len, NULL, 0));
        }
        CHECK_MSG(wait_pending_client(&srv), "stalled on %s: never accepted", stalls[i].what);

        REQUIRE_OK(vfu_test_client_connect(&next, ctx_path(ctx), -1));
        CHECK_MSG(vfu_test_negotiate(&next, 0, 2, VFU_TEST_DEFAULT_JSON) == 0,
                  "client behind one that stalled on %s is not served", stalls[i].what);
        check_serving(&next);
        CHECK_MSG(vfu_test_wait_closed(&stalled, 2000) == 0,
                  "client that stalled on %s is not dropped", stalls[i].what);
        vfu_test_client_close(&stalled);
        vfu_test_client_close(&next);
        CHECK_OK(vfu_test_server_wait_disconnects(&srv, (unsigned)i + 1, 2000));
    }
    CHECK_EQ(vfu_test_server_attaches(&srv), VFU_ARRAY_LEN(stalls));
    /* Only attached clients count as lost connections. */
    CHECK_EQ(atomic_load(&dev.resets[VFU_RESET_LOST_CONN]), VFU_ARRAY_LEN(stalls));
    CHECK_EQ(vfu_test_server_run_errors(&srv), 0);
    CHECK_EQ(vfu_test_count_open_fds(), fds_before);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);
}

/* A crowd of stalled clients in the listen queue still lets the last one in. */
static void
test_many_stalled_clients(void)
{
    enum { STALLED = 6 };
    struct device dev = { 0 };
    struct vfu_test_client stalled[STALLED], good;
    struct vfu_test_server srv;
    vfu_ctx_t *ctx = make_device("crowd", &dev);
    int fds_before;

    REQUIRE(ctx != NULL);
    fds_before = vfu_test_count_open_fds();
    /* They all queue up before the server looks. */
    for (int i = 0; i < STALLED; i++) {
        REQUIRE_OK(vfu_test_client_connect(&stalled[i], ctx_path(ctx), -1));
        CHECK_OK(vfu_test_send_raw(&stalled[i], &version_msg, (size_t)i % 4, NULL, 0));
    }
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&good, ctx_path(ctx)));
    check_serving(&good);
    for (int i = 0; i < STALLED; i++) {
        CHECK_MSG(vfu_test_wait_closed(&stalled[i], 2000) == 0, "stalled client %d is not dropped",
                  i);
        vfu_test_client_close(&stalled[i]);
    }
    vfu_test_client_close(&good);
    CHECK_OK(vfu_test_server_wait_disconnects(&srv, 1, 2000));
    CHECK_EQ(vfu_test_server_attaches(&srv), 1);
    CHECK_EQ(atomic_load(&dev.resets[VFU_RESET_LOST_CONN]), 1);
    vfu_test_server_stop(&srv);
    CHECK_EQ(vfu_test_count_open_fds(), fds_before);
    vfu_destroy_ctx(ctx);
}

/* Every broken first message is dropped and the next client is served. */
static void
test_bad_first_messages(void)
{
    struct vfio_user_header not_version = {
        .msg_id = 9,
        .cmd = VFIO_USER_DEVICE_GET_INFO,
        .msg_size = sizeof(not_version),
    };
    struct vfio_user_header too_short = {
        .msg_id = 9,
        .cmd = VFIO_USER_VERSION,
        .msg_size = 8,
    };
    struct vfio_user_header too_long = {
        .msg_id = 9,
        .cmd = VFIO_USER_VERSION,
        .msg_size = 0xffffffff,
    };
    struct version_msg a_reply = version_msg;
    uint8_t noise[64], sized_noise[64];
    const struct {
        const char *what;
        const void *bytes;
        size_t len;
        bool answered; /* an error reply comes before the close */
    } bad[] = {
        { "connect and close", NULL, 0, false },
        { "half a header and close", &version_msg, 9, false },
        { "a header and half its body, then close", &version_msg, sizeof(version_msg) - 2, false },
        { "a command other than VERSION", &not_version, sizeof(not_version), true },
        { "a size smaller than the header", &too_short, sizeof(too_short), true },
        { "a size past the limit", &too_long, sizeof(too_long), true },
        { "a reply instead of a command", &a_reply, sizeof(a_reply), true },
        { "noise", noise, sizeof(noise), true },
        { "noise with a plausible size", sized_noise, sizeof(sized_noise), true },
    };
    struct device dev = { 0 };
    struct vfu_test_server srv;
    vfu_ctx_t *ctx = make_device("bad-first", &dev);
    int fds_before;

    REQUIRE(ctx != NULL);
    a_reply.hdr.flags = VFIO_USER_F_TYPE_REPLY;
    /* Its size field says 0xa5a5a5a5: past the limit. */
    memset(noise, 0xa5, sizeof(noise));
    /* The same with a size that matches: an unknown command, unknown flags. */
    memset(sized_noise, 0xa5, sizeof(sized_noise));
    sized_noise[4] = sizeof(sized_noise);
    sized_noise[5] = sized_noise[6] = sized_noise[7] = 0;
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    fds_before = vfu_test_count_open_fds();
    for (size_t i = 0; i < VFU_ARRAY_LEN(bad); i++) {
        struct vfu_test_client c, next;

        REQUIRE_OK(vfu_test_client_connect(&c, ctx_path(ctx), -1));
        if (bad[i].len > 0) {
            CHECK_OK(vfu_test_send_raw(&c, bad[i].bytes, bad[i].len, NULL, 0));
        }
        if (bad[i].answered) {
            struct vfio_user_header hdr;
            size_t len;

            if (CHECK_MSG(vfu_test_recv_msg(&c, &hdr, NULL, 0, &len, NULL, NULL) == 0,
                          "no reply to %s", bad[i].what)) {
                CHECK_EQ(hdr.flags, VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR);
                CHECK_EQ(hdr.error_no, EINVAL);
            }
            CHECK_MSG(vfu_test_wait_closed(&c, 2000) == 0, "client that sent %s is not dropped",
                      bad[i].what);
        }
        vfu_test_client_close(&c);

        REQUIRE_OK(vfu_test_client_connect(&next, ctx_path(ctx), -1));
        CHECK_MSG(vfu_test_negotiate(&next, 0, 2, NULL) == 0, "client after %s is not served",
                  bad[i].what);
        check_serving(&next);
        vfu_test_client_close(&next);
        CHECK_OK(vfu_test_server_wait_disconnects(&srv, (unsigned)i + 1, 2000));
    }
    CHECK_EQ(vfu_test_server_attaches(&srv), VFU_ARRAY_LEN(bad));
    CHECK_EQ(atomic_load(&dev.resets[VFU_RESET_LOST_CONN]), VFU_ARRAY_LEN(bad));
    CHECK_EQ(vfu_test_count_open_fds(), fds_before);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);
}

/*
 * Before a client has completed VERSION, a newcomer replaces a silent one;
 * after, a newcomer is told that the device is busy, unless the attached
 * client has just left. One thread plays both sides so each step is exact.
 */
static void
test_poll_set_follows_negotiation(void)
{
    struct device dev = { 0 };
    struct vfu_test_client first, second, third;
    struct vfio_user_header hdr;
    char reply[512];
    size_t len;
    vfu_ctx_t *ctx = make_device("pollset", &dev);

    REQUIRE(ctx != NULL);
    CHECK(!poll_fd_ready(ctx));
    REQUIRE_OK(vfu_test_client_connect(&first, ctx_path(ctx), -1));
    CHECK(poll_fd_ready(ctx));
    CHECK_ERRNO(vfu_attach_ctx(ctx), EAGAIN); /* accepted, nothing sent */
    CHECK(!poll_fd_ready(ctx));

    /* The newcomer wakes the poll fd and replaces the silent one. */
    REQUIRE_OK(vfu_test_client_connect(&second, ctx_path(ctx), -1));
    CHECK(poll_fd_ready(ctx));
    CHECK_ERRNO(vfu_attach_ctx(ctx), EAGAIN);
    CHECK_OK(vfu_test_wait_closed(&first, 1000));
    vfu_test_client_close(&first);
    CHECK_EQ(atomic_load(&dev.resets[VFU_RESET_LOST_CONN]), 0);

    CHECK_OK(vfu_test_send_raw(&second, &version_msg, sizeof(version_msg), NULL, 0));
    CHECK(poll_fd_ready(ctx));
    REQUIRE_OK(vfu_attach_ctx(ctx));
    CHECK_OK(vfu_test_recv_msg(&second, &hdr, reply, sizeof(reply), &len, NULL, NULL));
    CHECK_EQ(hdr.flags, VFIO_USER_F_TYPE_REPLY);

    /* Attached: a third client is told at once that the device is busy. */
    REQUIRE_OK(vfu_test_client_connect(&third, ctx_path(ctx), -1));
    CHECK_OK(vfu_test_send_raw(&third, &version_msg, sizeof(version_msg), NULL, 0));
    vfu_test_sleep_ms(20);
    CHECK(poll_fd_ready(ctx));
    CHECK_EQ(vfu_run_ctx(ctx), 0);
    CHECK_OK(vfu_test_recv_msg(&third, &hdr, NULL, 0, &len, NULL, NULL));
    CHECK_EQ(hdr.flags, VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR);
    CHECK_EQ(hdr.error_no, EBUSY);
    CHECK_OK(vfu_test_wait_closed(&third, 1000));
    vfu_test_client_close(&third);
    CHECK(!poll_fd_ready(ctx));
    CHECK_GE(vfu_test_send_cmd(&second, VFIO_USER_DEVICE_RESET, 0, NULL, 0, NULL, 0), 0);
    vfu_test_sleep_ms(20);
    CHECK(poll_fd_ready(ctx));
    CHECK_EQ(vfu_run_ctx(ctx), 1);
    CHECK_OK(vfu_test_recv_msg(&second, &hdr, NULL, 0, &len, NULL, NULL));
    CHECK_EQ(hdr.cmd, VFIO_USER_DEVICE_RESET);
    CHECK(!poll_fd_ready(ctx));

    /*
     * One that connects just after the attached client left, before the
     * server noticed, is not turned away: it is the next client.
     */
    vfu_test_client_close(&second);
    REQUIRE_OK(vfu_test_client_connect(&third, ctx_path(ctx), -1));
    CHECK_OK(vfu_test_send_raw(&third, &version_msg, sizeof(version_msg), NULL, 0));
    vfu_test_sleep_ms(20);
    CHECK_ERRNO(vfu_run_ctx(ctx), ENOTCONN);
    CHECK_EQ(atomic_load(&dev.resets[VFU_RESET_LOST_CONN]), 1);
    CHECK(poll_fd_ready(ctx));
    CHECK_OK(vfu_attach_ctx(ctx));
    CHECK_OK(vfu_test_recv_msg(&third, &hdr, reply, sizeof(reply), &len, NULL, NULL));
    CHECK_EQ(hdr.flags, VFIO_USER_F_TYPE_REPLY);
    CHECK(!poll_fd_ready(ctx));
    vfu_test_client_close(&third);
    vfu_destroy_ctx(ctx);
}

static uint64_t
cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
queued_bytes(vfu_ctx_t *ctx, void *arg)
{
    return (int)ctx->conn.main.tx_bytes;
}

/*
 * A client that sends many large reads and reads none of the replies: the
 * server stops reading requests while a reply waits, holds at most one reply,
 * sleeps instead of spinning, and serves everything once the client reads.
 */
static void
test_unread_replies(void)
{
    enum { READS = 24 };
    const size_t reply_size =
        sizeof(struct vfio_user_header) + sizeof(struct vfio_user_region_access) + BIG_BAR_SIZE;
    struct vfio_user_region_access ra = {
        .region = VFU_PCI_DEV_BAR1_REGION_IDX,
        .count = BIG_BAR_SIZE,
    };
    struct device dev = { 0 };
    struct vfu_test_server srv;
    struct vfu_test_client c;
    vfu_ctx_t *ctx = make_device("unread", &dev);
    uint8_t *buf = malloc(reply_size);
    int ids[READS];
    uint64_t cpu_before, cpu_used;
    int queued;

    REQUIRE(ctx != NULL && buf != NULL);
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, ctx_path(ctx)));
    for (int i = 0; i < READS; i++) {
        ra.offset = (uint64_t)i;
        ra.count = BIG_BAR_SIZE - (uint32_t)i;
        ids[i] = vfu_test_send_cmd(&c, VFIO_USER_REGION_READ, 0, &ra, sizeof(ra), NULL, 0);
        CHECK_GE(ids[i], 0);
    }
    vfu_test_sleep_ms(200);
    queued = vfu_test_server_call(&srv, queued_bytes, NULL);
    CHECK_GT(queued, 0);
    CHECK_LE(queued, (long long)reply_size);

    cpu_before = cpu_ns();
    vfu_test_sleep_ms(500);
    cpu_used = cpu_ns() - cpu_before;
    CHECK_MSG(cpu_used < 100000000u, "server used %llu ms of CPU waiting for a reader",
              (unsigned long long)(cpu_used / 1000000));
    CHECK(vfu_test_server_is_attached(&srv));

    for (int i = 0; i < READS; i++) {
        struct vfio_user_header hdr;
        size_t len;

        if (!CHECK_OK(vfu_test_recv_msg(&c, &hdr, buf, reply_size, &len, NULL, NULL))) {
            break;
        }
        CHECK_EQ(hdr.msg_id, ids[i]);
        CHECK_EQ(hdr.flags, VFIO_USER_F_TYPE_REPLY);
        CHECK_EQ(len, sizeof(ra) + BIG_BAR_SIZE - (size_t)i);
        CHECK_EQ(buf[sizeof(ra) + 1000], (uint8_t)((i + 1000) * 7));
    }
    check_serving(&c);
    CHECK_EQ(vfu_test_server_call(&srv, queued_bytes, NULL), 0);
    vfu_test_client_close(&c);
    CHECK_OK(vfu_test_server_wait_disconnects(&srv, 1, 2000));
    vfu_test_server_stop(&srv);
    free(buf);
    vfu_destroy_ctx(ctx);
}

/*
 * The queue of unsent replies has a hard bound: past TX_QUEUE_MAX a send
 * fails with ENOBUFS, and a reply that hits it drops the client as a lost
 * connection. Replies normally stop at one, so the queue is filled directly;
 * the reply that overflows it is a parked request finishing its quiesce.
 */
static void
test_reply_queue_bound(void)
{
    const size_t chunk = 1u << 20;
    struct device dev = { .quiesce_async = true };
    struct vfio_user_header hdr = { .cmd = VFIO_USER_REGION_READ, .flags = VFIO_USER_F_TYPE_REPLY };
    struct vfu_test_client c;
    char reply[512];
    size_t len;
    uint8_t *payload = calloc(1, chunk);
    vfu_ctx_t *ctx = make_device("bound", &dev);
    int ret = 0, sends = 0;

    REQUIRE(ctx != NULL && payload != NULL);
    vfu_setup_device_quiesce_cb(ctx, on_quiesce);
    REQUIRE_OK(vfu_test_client_connect(&c, ctx_path(ctx), -1));
    CHECK_OK(vfu_test_send_raw(&c, &version_msg, sizeof(version_msg), NULL, 0));
    vfu_test_sleep_ms(20);
    REQUIRE_OK(vfu_attach_ctx(ctx));
    CHECK_OK(vfu_test_recv_msg(&c, &hdr, reply, sizeof(reply), &len, NULL, NULL));

    /* A reset request waits for the device to quiesce. */
    CHECK_GE(vfu_test_send_cmd(&c, VFIO_USER_DEVICE_RESET, 0, NULL, 0, NULL, 0), 0);
    vfu_test_sleep_ms(20);
    CHECK_ERRNO(vfu_run_ctx(ctx), EBUSY);

    hdr.msg_size = (uint32_t)(sizeof(hdr) + chunk);
    while (sends < 64) {
        ret = tran_send(ctx, &hdr, payload, chunk, NULL, 0);
        if (ret < 0) {
            break;
        }
        sends++;
    }
    CHECK_EQ(ret, -ENOBUFS);
    CHECK_LE(ctx->conn.main.tx_bytes, TX_QUEUE_MAX);
    CHECK_GT(ctx->conn.main.tx_bytes, TX_QUEUE_MAX - chunk - sizeof(hdr));
    /* Exactly full: one more byte does not fit. */
    len = TX_QUEUE_MAX - ctx->conn.main.tx_bytes - sizeof(hdr);
    hdr.msg_size = (uint32_t)(sizeof(hdr) + len);
    CHECK_OK(tran_send(ctx, &hdr, payload, len, NULL, 0));
    CHECK_EQ(ctx->conn.main.tx_bytes, TX_QUEUE_MAX);
    hdr.msg_size = sizeof(hdr);
    CHECK_EQ(tran_send(ctx, &hdr, NULL, 0, NULL, 0), -ENOBUFS);

    /* The parked reset runs and its reply overflows: the client is dropped. */
    dev.quiesce_async = false;
    CHECK_OK(vfu_device_quiesced(ctx, 0));
    CHECK_EQ(atomic_load(&dev.resets[VFU_RESET_DEVICE]), 1);
    CHECK_EQ(atomic_load(&dev.resets[VFU_RESET_LOST_CONN]), 1);
    CHECK_EQ(ctx->conn.main.fd, -1);
    CHECK_EQ(ctx->conn.main.tx_bytes, 0);
    CHECK_OK(vfu_test_wait_closed(&c, 2000));
    vfu_test_client_close(&c);

    /* And the next client is served. */
    REQUIRE_OK(vfu_test_client_connect(&c, ctx_path(ctx), -1));
    CHECK_OK(vfu_test_send_raw(&c, &version_msg, sizeof(version_msg), NULL, 0));
    vfu_test_sleep_ms(20);
    CHECK(poll_fd_ready(ctx));
    CHECK_OK(vfu_attach_ctx(ctx));
    CHECK_OK(vfu_test_recv_msg(&c, &hdr, reply, sizeof(reply), &len, NULL, NULL));
    vfu_test_client_close(&c);
    free(payload);
    vfu_destroy_ctx(ctx);
}

/*
 * Replies queued behind one another all go out, whole and in order, as the
 * client makes room: the queue keeps every message it was given.
 */
static void
test_reply_queue_order(void)
{
    enum { MESSAGES = 40, PAYLOAD = 16 << 10 };
    const size_t msg_size = sizeof(struct vfio_user_header) + PAYLOAD;
    const size_t want = MESSAGES * msg_size;
    struct device dev = { 0 };
    struct vfio_user_header hdr;
    struct vfu_test_client c;
    char reply[512];
    size_t len, got = 0;
    uint8_t *payload = malloc(PAYLOAD), *stream = malloc(want);
    vfu_ctx_t *ctx = make_device("order", &dev);
    int rounds = 0;

    REQUIRE(ctx != NULL && payload != NULL && stream != NULL);
    REQUIRE_OK(vfu_test_client_connect(&c, ctx_path(ctx), -1));
    CHECK_OK(vfu_test_send_raw(&c, &version_msg, sizeof(version_msg), NULL, 0));
    vfu_test_sleep_ms(20);
    REQUIRE_OK(vfu_attach_ctx(ctx));
    CHECK_OK(vfu_test_recv_msg(&c, &hdr, reply, sizeof(reply), &len, NULL, NULL));

    for (int i = 0; i < MESSAGES; i++) {
        struct vfio_user_header out = {
            .msg_id = (uint16_t)i,
            .cmd = VFIO_USER_REGION_READ,
            .msg_size = (uint32_t)msg_size,
            .flags = VFIO_USER_F_TYPE_REPLY,
        };

        memset(payload, i, PAYLOAD);
        CHECK_OK(tran_send(ctx, &out, payload, PAYLOAD, NULL, 0));
    }
    CHECK_GT(ctx->conn.main.tx_bytes, 0);
    while (got < want && rounds++ < 100000) {
        ssize_t n = recv(c.fd, stream + got, want - got, MSG_DONTWAIT);

        if (n > 0) {
            got += (size_t)n;
        }
        tran_flush(ctx);
    }
    REQUIRE_EQ(got, want);
    CHECK_EQ(ctx->conn.main.tx_bytes, 0);
    for (int i = 0; i < MESSAGES; i++) {
        const uint8_t *m = stream + (size_t)i * msg_size;

        memcpy(&hdr, m, sizeof(hdr));
        CHECK_EQ(hdr.msg_id, i);
        CHECK_EQ(hdr.msg_size, msg_size);
        CHECK_EQ(m[sizeof(hdr)], (uint8_t)i);
        CHECK_EQ(m[msg_size - 1], (uint8_t)i);
    }
    vfu_test_client_close(&c);
    free(payload);
    free(stream);
    vfu_destroy_ctx(ctx);
}

int
main(void)
{
    check_watchdog(100);
    RUN_TEST(test_stalled_first_message);
    RUN_TEST(test_many_stalled_clients);
    RUN_TEST(test_bad_first_messages);
    RUN_TEST(test_poll_set_follows_negotiation);
    RUN_TEST(test_unread_replies);
    RUN_TEST(test_reply_queue_bound);
    RUN_TEST(test_reply_queue_order);
    return check_summary();
}
