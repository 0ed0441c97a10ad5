/*
 * Clients that connect while another is attached: turned away at once with
 * EBUSY to their VERSION, or closed when they stall or send garbage, in
 * bounded work that never disturbs the attached client. One thread plays
 * every side so each step is exact.
 */
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user.h"
#include "private.h"

struct version_msg {
    struct vfio_user_header hdr;
    struct vfio_user_version v;
} __attribute__((packed));

static const struct version_msg version_msg = {
    .hdr = { .msg_id = 7, .cmd = VFIO_USER_VERSION, .msg_size = sizeof(version_msg) },
};

/* The library's epoll_wait calls (linked with --wrap=epoll_wait). */
static unsigned epoll_waits;

int __real_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout);
int __wrap_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout);

int
__wrap_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    epoll_waits++;
    return __real_epoll_wait(epfd, events, maxevents, timeout);
}

static bool
poll_fd_ready(vfu_ctx_t *ctx, int timeout_ms)
{
    struct pollfd pfd = { .fd = vfu_get_poll_fd(ctx), .events = POLLIN };

    return poll(&pfd, 1, timeout_ms) == 1;
}

/* A device with its first client attached, served from this thread. */
static vfu_ctx_t *
attached_device(const char *name, struct vfu_test_client *first)
{
    char path[108], reply[512];
    struct vfio_user_header hdr;
    size_t len;
    vfu_ctx_t *ctx;

    vfu_test_sock_path(path, sizeof(path), name);
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, NULL, VFU_DEV_TYPE_PCI);
    if (ctx == NULL) {
        return NULL;
    }
    vfu_setup_log(ctx, vfu_test_log_stderr, LOG_DEBUG);
    if (vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0) < 0 ||
        vfu_realize_ctx(ctx) < 0 || vfu_test_client_connect(first, path, -1) < 0 ||
        vfu_test_send_raw(first, &version_msg, sizeof(version_msg), NULL, 0) < 0 ||
        !poll_fd_ready(ctx, 1000) || vfu_attach_ctx(ctx) < 0) {
        vfu_destroy_ctx(ctx);
        return NULL;
    }
    if (vfu_test_recv_msg(first, &hdr, reply, sizeof(reply), &len, NULL, NULL) != 0) {
        vfu_destroy_ctx(ctx);
        return NULL;
    }
    return ctx;
}

/* The attached client is served as before: a config read round trip. */
static void
check_first_served(vfu_ctx_t *ctx, struct vfu_test_client *first)
{
    struct vfio_user_header hdr;
    uint8_t reply[64];
    struct vfio_user_region_access rd = { .region = VFU_TEST_CFG_REGION, .count = 4 };
    size_t len;

    CHECK_GE(vfu_test_send_cmd(first, VFIO_USER_REGION_READ, 0, &rd, sizeof(rd), NULL, 0), 0);
    CHECK(poll_fd_ready(ctx, 1000));
    CHECK_EQ(vfu_run_ctx(ctx), 1);
    CHECK_OK(vfu_test_recv_msg(first, &hdr, reply, sizeof(reply), &len, NULL, NULL));
    CHECK_EQ(hdr.flags, VFIO_USER_F_TYPE_REPLY);
    CHECK_EQ(len, sizeof(rd) + 4);
}

static void
test_stalled_newcomer_closed(void)
{
    struct vfu_test_client first, silent, partial;
    vfu_ctx_t *ctx = attached_device("busy-stalled", &first);
    uint64_t start;

    REQUIRE(ctx != NULL);
    REQUIRE_OK(vfu_test_client_connect(&silent, ctx->sock_path, -1));
    REQUIRE_OK(vfu_test_client_connect(&partial, ctx->sock_path, -1));
    CHECK_OK(vfu_test_send_raw(&partial, &version_msg, 9, NULL, 0));
    start = vfu_test_now_ns();
    CHECK(poll_fd_ready(ctx, 1000));
    CHECK_EQ(vfu_run_ctx(ctx), 0);
    /* Waiting for them does not keep the poll fd readable (no spinning). */
    CHECK(!poll_fd_ready(ctx, 0));
    check_first_served(ctx, &first);
    /* Their deadline wakes the poll fd, and they are closed. */
    CHECK(poll_fd_ready(ctx, 3 * NEWCOMER_TIMEOUT_MS));
    CHECK_GE(vfu_test_now_ns() - start, (NEWCOMER_TIMEOUT_MS - 50) * 1000000ull);
    CHECK_EQ(vfu_run_ctx(ctx), 0);
    CHECK_OK(vfu_test_wait_closed(&silent, 1000));
    CHECK_OK(vfu_test_wait_closed(&partial, 1000));
    CHECK(!poll_fd_ready(ctx, 0));
    check_first_served(ctx, &first);
    vfu_test_client_close(&silent);
    vfu_test_client_close(&partial);
    vfu_test_client_close(&first);
    vfu_destroy_ctx(ctx);
}

static void
test_garbage_newcomer_closed(void)
{
    struct vfu_test_client first, noisy;
    vfu_ctx_t *ctx = attached_device("busy-garbage", &first);
    struct version_msg not_version = version_msg;

    REQUIRE(ctx != NULL);
    not_version.hdr.cmd = VFIO_USER_DEVICE_RESET;
    REQUIRE_OK(vfu_test_client_connect(&noisy, ctx->sock_path, -1));
    CHECK_OK(vfu_test_send_raw(&noisy, &not_version, sizeof(not_version), NULL, 0));
    vfu_test_sleep_ms(20);
    CHECK(poll_fd_ready(ctx, 0));
    CHECK_EQ(vfu_run_ctx(ctx), 0);
    /* Closed without a reply. */
    CHECK_OK(vfu_test_wait_closed(&noisy, 1000));
    CHECK(!poll_fd_ready(ctx, 0));
    check_first_served(ctx, &first);
    vfu_test_client_close(&noisy);
    vfu_test_client_close(&first);
    vfu_destroy_ctx(ctx);
}

/* More newcomers at once than there are slots: each is answered or closed. */
static void
test_many_newcomers(void)
{
    enum { N = NEWCOMERS_MAX * 2 }; /* within the listen backlog */
    struct vfu_test_client first, others[N];
    vfu_ctx_t *ctx = attached_device("busy-many", &first);
    int fds_before;
    unsigned busy = 0;

    REQUIRE(ctx != NULL);
    fds_before = vfu_test_count_open_fds();
    for (int i = 0; i < N; i++) {
        REQUIRE_OK(vfu_test_client_connect(&others[i], ctx->sock_path, -1));
        CHECK_OK(vfu_test_send_raw(&others[i], &version_msg, sizeof(version_msg), NULL, 0));
    }
    vfu_test_sleep_ms(20);
    for (int round = 0; round < 2 * N && poll_fd_ready(ctx, 0); round++) {
        CHECK_EQ(vfu_run_ctx(ctx), 0);
    }
    CHECK(!poll_fd_ready(ctx, 0));
    for (int i = 0; i < N; i++) {
        struct vfio_user_header hdr;
        size_t len;

        if (vfu_test_recv_msg(&others[i], &hdr, NULL, 0, &len, NULL, NULL) == 0) {
            CHECK_EQ(hdr.error_no, EBUSY);
            busy++;
        }
        CHECK_OK(vfu_test_wait_closed(&others[i], 1000));
        vfu_test_client_close(&others[i]);
    }
    /* At least a slot's worth got the word; none lingers. */
    CHECK_GE(busy, NEWCOMERS_MAX);
    CHECK_EQ(vfu_test_count_open_fds(), fds_before);
    check_first_served(ctx, &first);
    vfu_test_client_close(&first);
    vfu_destroy_ctx(ctx);
}

/*
 * Two wait as the attached client leaves: the first becomes the next client,
 * the second then hears at once that the device is busy.
 */
static void
test_two_waiting_as_client_leaves(void)
{
    struct vfu_test_client first, next, later;
    vfu_ctx_t *ctx = attached_device("busy-two", &first);
    struct vfio_user_header hdr;
    char reply[512];
    size_t len;

    REQUIRE(ctx != NULL);
    vfu_test_client_close(&first);
    REQUIRE_OK(vfu_test_client_connect(&next, ctx->sock_path, -1));
    CHECK_OK(vfu_test_send_raw(&next, &version_msg, sizeof(version_msg), NULL, 0));
    REQUIRE_OK(vfu_test_client_connect(&later, ctx->sock_path, -1));
    CHECK_OK(vfu_test_send_raw(&later, &version_msg, sizeof(version_msg), NULL, 0));
    vfu_test_sleep_ms(20);
    CHECK_ERRNO(vfu_run_ctx(ctx), ENOTCONN);
    CHECK(poll_fd_ready(ctx, 1000));
    CHECK_OK(vfu_attach_ctx(ctx));
    CHECK_OK(vfu_test_recv_msg(&next, &hdr, reply, sizeof(reply), &len, NULL, NULL));
    CHECK_EQ(hdr.flags, VFIO_USER_F_TYPE_REPLY);
    CHECK(poll_fd_ready(ctx, 200));
    CHECK_EQ(vfu_run_ctx(ctx), 0);
    CHECK_OK(vfu_test_recv_msg(&later, &hdr, NULL, 0, &len, NULL, NULL));
    CHECK_EQ(hdr.error_no, EBUSY);
    CHECK_OK(vfu_test_wait_closed(&later, 1000));
    CHECK(!poll_fd_ready(ctx, 0));
    check_first_served(ctx, &next);
    vfu_test_client_close(&later);
    vfu_test_client_close(&next);
    vfu_destroy_ctx(ctx);
}

/*
 * A busy client's requests cost no look for newcomers each (one system
 * call), and one that connects meanwhile is still told within
 * NEWCOMER_LOOK_MS that the device is busy.
 */
static void
test_busy_client_looks_seldom(void)
{
    enum { REQUESTS = 50 };
    struct vfu_test_client first, newcomer;
    vfu_ctx_t *ctx = attached_device("busy-seldom", &first);
    struct vfio_user_header hdr;
    uint64_t start, elapsed_ms, heard_ns = 0;
    size_t len;

    REQUIRE(ctx != NULL);
    check_first_served(ctx, &first);
    epoll_waits = 0;
    start = vfu_test_now_ns();
    for (int i = 0; i < REQUESTS; i++) {
        check_first_served(ctx, &first);
    }
    elapsed_ms = (vfu_test_now_ns() - start) / 1000000;
    /* At most one look per NEWCOMER_LOOK_MS, however slow the machine. */
    CHECK_LE(epoll_waits, elapsed_ms / NEWCOMER_LOOK_MS + 1);
    CHECK_LT(epoll_waits, REQUESTS);

    REQUIRE_OK(vfu_test_client_connect(&newcomer, ctx->sock_path, -1));
    CHECK_OK(vfu_test_send_raw(&newcomer, &version_msg, sizeof(version_msg), NULL, 0));
    start = vfu_test_now_ns();
    while (vfu_test_now_ns() - start < 2000000000ull) {
        struct pollfd pfd = { .fd = newcomer.fd, .events = POLLIN };

        check_first_served(ctx, &first);
        if (poll(&pfd, 1, 0) == 1) {
            heard_ns = vfu_test_now_ns() - start;
            break;
        }
    }
    CHECK_GT(heard_ns, 0);
    CHECK_OK(vfu_test_recv_msg(&newcomer, &hdr, NULL, 0, &len, NULL, NULL));
    CHECK_EQ(hdr.error_no, EBUSY);
    CHECK_OK(vfu_test_wait_closed(&newcomer, 1000));
    vfu_test_client_close(&newcomer);
    vfu_test_client_close(&first);
    vfu_destroy_ctx(ctx);
}

int
main(void)
{
    check_watchdog(60);
    RUN_TEST(test_stalled_newcomer_closed);
    RUN_TEST(test_garbage_newcomer_closed);
    RUN_TEST(test_many_newcomers);
    RUN_TEST(test_two_waiting_as_client_leaves);
    RUN_TEST(test_busy_client_looks_seldom);
    return check_summary();
}
