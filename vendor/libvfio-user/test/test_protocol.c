/*
 * The transport and the request loop: creating the listening socket,
 * negotiation, malformed messages of every kind, disconnects, quiesce, and
 * that a long run of connections leaks neither fds nor memory.
 */
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user.h"
#include "private.h"

struct device {
    uint32_t scratch;
    int resets[3]; /* by vfu_reset_type_t */
    int quiesces;
    bool quiesce_async;
};

static ssize_t
bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    struct device *dev = vfu_get_private(ctx);

    if (offset != 0 || count != 4) {
        errno = EINVAL;
        return -1;
    }
    if (is_write) {
        memcpy(&dev->scratch, buf, 4);
    } else {
        memcpy(buf, &dev->scratch, 4);
    }
    return 4;
}

static int
on_reset(vfu_ctx_t *ctx, vfu_reset_type_t type)
{
    struct device *dev = vfu_get_private(ctx);

    dev->resets[type]++;
    return 0;
}

static int
on_quiesce(vfu_ctx_t *ctx)
{
    struct device *dev = vfu_get_private(ctx);

    dev->quiesces++;
    if (dev->quiesce_async) {
        errno = EBUSY;
        return -1;
    }
    return 0;
}

static vfu_ctx_t *
make_device(const char *path, struct device *dev, int flags)
{
    vfu_ctx_t *ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, flags, dev, VFU_DEV_TYPE_PCI);

    if (ctx == NULL) {
        FAIL("vfu_create_ctx(%s): %s", path, strerror(errno));
        return NULL;
    }
    CHECK_OK(vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0));
    CHECK_OK(vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, 0x1000, bar0_access,
                              VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0));
    CHECK_OK(vfu_setup_device_reset_cb(ctx, on_reset));
    CHECK_OK(vfu_realize_ctx(ctx));
    return ctx;
}

/* A request that must still work after whatever came before it. */
static void
check_serving(struct vfu_test_client *c)
{
    struct vfio_user_device_info info;

    memset(&info, 0, sizeof(info));
    CHECK_EQ(vfu_test_device_get_info(c, &info), 0);
    CHECK_EQ(info.num_regions, VFU_PCI_DEV_NUM_REGIONS);
}

static void
test_create_errors(void)
{
    char path[108], longpath[200];
    struct stat st;
    vfu_ctx_t *ctx, *other;
    int fd;

    vfu_test_sock_path(path, sizeof(path), "create");
    CHECK_ERRNO(vfu_create_ctx(VFU_TRANS_SOCK, path, 0x2, NULL, VFU_DEV_TYPE_PCI) ? 0 : -1, EINVAL);
    CHECK_ERRNO(vfu_create_ctx(VFU_TRANS_MAX, path, 0, NULL, VFU_DEV_TYPE_PCI) ? 0 : -1, ENOTSUP);
    CHECK_ERRNO(vfu_create_ctx(VFU_TRANS_SOCK, path, 0, NULL, (vfu_dev_type_t)1) ? 0 : -1, ENOTSUP);
    memset(longpath, 'x', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    CHECK_ERRNO(vfu_create_ctx(VFU_TRANS_SOCK, longpath, 0, NULL, VFU_DEV_TYPE_PCI) ? 0 : -1,
                ENAMETOOLONG);

    /* A regular file is never replaced. */
    fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    close(fd);
    CHECK_ERRNO(vfu_create_ctx(VFU_TRANS_SOCK, path, 0, NULL, VFU_DEV_TYPE_PCI) ? 0 : -1, EEXIST);
    unlink(path);

    /* A live server is not replaced; its socket is private to its owner. */
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, NULL, VFU_DEV_TYPE_PCI);
    REQUIRE(ctx != NULL);
    CHECK_OK(stat(path, &st));
    CHECK(S_ISSOCK(st.st_mode));
    CHECK_EQ(st.st_mode & 0777, 0600);
    other = vfu_create_ctx(VFU_TRANS_SOCK, path, 0, NULL, VFU_DEV_TYPE_PCI);
    CHECK(other == NULL && errno == EADDRINUSE);

    /* A socket whose server is gone is stale and gets replaced. */
    tran_close_listener(ctx);
    other = vfu_create_ctx(VFU_TRANS_SOCK, path, 0, NULL, VFU_DEV_TYPE_PCI);
    CHECK(other != NULL);
    vfu_destroy_ctx(other);
    CHECK(access(path, F_OK) != 0);
    vfu_destroy_ctx(ctx);
    vfu_destroy_ctx(NULL);
}

static void
test_negotiation(void)
{
    struct device dev = { 0 };
    struct vfu_test_server srv;
    struct vfu_test_client c;
    char path[108];
    vfu_ctx_t *ctx;
    uint64_t v;

    vfu_test_sock_path(path, sizeof(path), "negotiate");
    ctx = make_device(path, &dev, LIBVFIO_USER_FLAG_ATTACH_NB);
    REQUIRE(ctx != NULL);
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));

    /* Good: minor is the lower of the two, our limits are announced. */
    REQUIRE_OK(vfu_test_client_connect(&c, path, -1));
    CHECK_EQ(vfu_test_negotiate(&c, 0, 7,
                                "{\"capabilities\":{\"max_msg_fds\":4,"
                                "\"pgsizes\":4096,\"unknown\":[1,{\"a\":null}]}}"),
             0);
    CHECK_EQ(c.major, 0);
    CHECK_EQ(c.minor, 2);
    CHECK(c.server_json != NULL);
    CHECK(vfu_test_json_get_u64(c.server_json, "max_msg_fds", &v) == 0 && v == 8);
    CHECK(vfu_test_json_get_u64(c.server_json, "max_data_xfer_size", &v) == 0 && v == 1048576);
    CHECK(vfu_test_json_get_u64(c.server_json, "pgsizes", &v) == 0 && v == 4096);
    CHECK(!vfu_test_json_has_key(c.server_json, "migration"));
    CHECK(!vfu_test_json_has_key(c.server_json, "write_multiple"));
    check_serving(&c);
    vfu_test_client_close(&c);

    /* No JSON at all, and an older minor. */
    REQUIRE_OK(vfu_test_client_connect(&c, path, -1));
    CHECK_EQ(vfu_test_negotiate(&c, 0, 1, NULL), 0);
    CHECK_EQ(c.minor, 1);
    check_serving(&c);
    vfu_test_client_close(&c);

    /* Each bad VERSION is answered EINVAL and the connection closed. */
    static const char *const bad_json[] = {
        "garbage",
        "{",
        "{\"capabilities\":{\"max_msg_fds\":2000}}",
        "{\"capabilities\":{\"max_msg_fds\":\"8\"}}",
        "{\"capabilities\":{\"max_msg_fds\":-1}}",
        "{\"capabilities\":{\"max_msg_fds\":1.5}}",
        "{\"capabilities\":[]}",
        "{\"capabilities\":{},}",
        "{} {}",
        "{\"capabilities\":{\"twin_socket\":{\"supported\":1}}}",
        "{\"a\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}",
        "{\"a\":\"\\x\"}",
    };
    for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++) {
        REQUIRE_OK(vfu_test_client_connect(&c, path, -1));
        CHECK_MSG(vfu_test_negotiate(&c, 0, 1, bad_json[i]) == EINVAL, "json %s", bad_json[i]);
        CHECK_OK(vfu_test_wait_closed(&c, 2000));
        vfu_test_client_close(&c);
    }
    /* Wrong major. */
    REQUIRE_OK(vfu_test_client_connect(&c, path, -1));
    CHECK_EQ(vfu_test_negotiate(&c, 1, 0, NULL), EINVAL);
    vfu_test_client_close(&c);
    /* JSON without its terminating NUL, and a first message that is not VERSION. */
    {
        struct {
            struct vfio_user_header hdr;
            struct vfio_user_version v;
            char json[2];
        } __attribute__((packed)) m = {
            .hdr = { .msg_id = 1, .cmd = VFIO_USER_VERSION, .msg_size = sizeof(m) },
            .json = { '{', '}' },
        };
        struct vfio_user_header reply;
        size_t len;

        REQUIRE_OK(vfu_test_client_connect(&c, path, -1));
        CHECK_OK(vfu_test_send_raw(&c, &m, sizeof(m), NULL, 0));
        CHECK_OK(vfu_test_recv_msg(&c, &reply, NULL, 0, &len, NULL, NULL));
        CHECK(reply.flags & VFIO_USER_F_ERROR);
        CHECK_EQ(reply.error_no, EINVAL);
        vfu_test_client_close(&c);

        m.hdr.cmd = VFIO_USER_DEVICE_GET_INFO;
        REQUIRE_OK(vfu_test_client_connect(&c, path, -1));
        CHECK_OK(vfu_test_send_raw(&c, &m, sizeof(m), NULL, 0));
        CHECK_OK(vfu_test_recv_msg(&c, &reply, NULL, 0, &len, NULL, NULL));
        CHECK_EQ(reply.error_no, EINVAL);
        vfu_test_client_close(&c);
    }
    /* A client that connects and leaves at once, then one that is served. */
    REQUIRE_OK(vfu_test_client_connect(&c, path, -1));
    vfu_test_client_close(&c);
    REQUIRE_OK(vfu_test_client_open(&c, path));
    check_serving(&c);
    vfu_test_client_close(&c);

    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);
}

/* Sends raw bytes and expects an error reply carrying err. */
static void
expect_error_reply(struct vfu_test_client *c, const void *msg, size_t len, const int *fds,
                   size_t nfds, uint32_t err)
{
    struct vfio_user_header hdr;
    size_t reply_len;

    CHECK_OK(vfu_test_send_raw(c, msg, len, fds, nfds));
    if (!CHECK_OK(vfu_test_recv_msg(c, &hdr, NULL, 0, &reply_len, NULL, NULL))) {
        return;
    }
    CHECK_EQ(hdr.flags, VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR);
    CHECK_EQ(hdr.error_no, err);
    CHECK_EQ(hdr.msg_size, sizeof(hdr));
}

static void
test_malformed_requests(void)
{
    struct device dev = { 0 };
    struct vfu_test_server srv;
    struct vfu_test_client c;
    char path[108];
    vfu_ctx_t *ctx;
    struct vfio_user_header hdr;
    int fds[9];
    int before;

    vfu_test_sock_path(path, sizeof(path), "malformed");
    ctx = make_device(path, &dev, LIBVFIO_USER_FLAG_ATTACH_NB);
    REQUIRE(ctx != NULL);
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, path));

    /* A header that claims to be shorter than itself. */
    hdr = (struct vfio_user_header){ .msg_id = 7, .cmd = VFIO_USER_DEVICE_GET_INFO, .msg_size = 8 };
    expect_error_reply(&c, &hdr, sizeof(hdr), NULL, 0, EINVAL);
    check_serving(&c);

    /* Oversized: answered, its body skipped, the stream stays in step. */
    {
        size_t big = 2u << 20;
        uint8_t *buf = calloc(1, big);
        struct vfio_user_header *h = (struct vfio_user_header *)buf;

        REQUIRE(buf != NULL);
        *h = (struct vfio_user_header){ .msg_id = 8,
                                        .cmd = VFIO_USER_REGION_WRITE,
                                        .msg_size = (uint32_t)big };
        expect_error_reply(&c, buf, big, NULL, 0, EINVAL);
        free(buf);
        check_serving(&c);
    }

    /* Unknown commands, server-to-client commands, replies, bare payloads. */
    static const uint16_t bad_cmds[] = {
        0, 14, 99, VFIO_USER_MAX, VFIO_USER_VERSION, VFIO_USER_DMA_READ, VFIO_USER_DMA_WRITE
    };
    for (size_t i = 0; i < sizeof(bad_cmds) / sizeof(bad_cmds[0]); i++) {
        struct {
            struct vfio_user_header hdr;
            uint32_t payload[4];
        } __attribute__((packed)) m = {
            .hdr = { .msg_id = 9, .cmd = bad_cmds[i], .msg_size = sizeof(m) },
        };
        expect_error_reply(&c, &m, sizeof(m), NULL, 0, EINVAL);
    }
    hdr = (struct vfio_user_header){ .msg_id = 10,
                                     .cmd = VFIO_USER_DEVICE_GET_INFO,
                                     .msg_size = sizeof(hdr) };
    expect_error_reply(&c, &hdr, sizeof(hdr), NULL, 0, EINVAL);
    {
        struct {
            struct vfio_user_header hdr;
            struct vfio_user_device_info info;
        } __attribute__((packed)) m = {
            .hdr = { .msg_id = 11,
                     .cmd = VFIO_USER_DEVICE_GET_INFO,
                     .msg_size = sizeof(m),
                     .flags = VFIO_USER_F_TYPE_REPLY },
            .info = { .argsz = sizeof(m.info) },
        };
        expect_error_reply(&c, &m, sizeof(m), NULL, 0, EINVAL);

        /* More fds than we accept: refused, and every one of them closed. */
        for (int i = 0; i < 9; i++) {
            fds[i] = vfu_test_eventfd_new();
        }
        before = vfu_test_count_open_fds();
        m.hdr.flags = 0;
        expect_error_reply(&c, &m, sizeof(m), fds, 9, EINVAL);
        check_serving(&c);
        CHECK_EQ(vfu_test_count_open_fds(), before);
        for (int i = 0; i < 9; i++) {
            close(fds[i]);
        }

        /* NO_REPLY is honoured even for a request that fails. */
        m.hdr.flags = VFIO_USER_F_NO_REPLY;
        m.hdr.msg_id = 12;
        m.info.argsz = 4;
        CHECK_OK(vfu_test_send_raw(&c, &m, sizeof(m), NULL, 0));
        check_serving(&c);
        CHECK_EQ(c.stray_msgs, 0);
    }
    /* A message sent in pieces is reassembled. */
    {
        struct {
            struct vfio_user_header hdr;
            struct vfio_user_device_info info;
        } __attribute__((packed)) m = {
            .hdr = { .msg_id = 13, .cmd = VFIO_USER_DEVICE_GET_INFO, .msg_size = sizeof(m) },
            .info = { .argsz = sizeof(m.info) },
        };
        struct vfio_user_device_info info;
        size_t len;

        CHECK_OK(vfu_test_send_raw(&c, &m, 5, NULL, 0));
        vfu_test_sleep_ms(20);
        CHECK_OK(vfu_test_send_raw(&c, (char *)&m + 5, 14, NULL, 0));
        vfu_test_sleep_ms(20);
        CHECK_OK(vfu_test_send_raw(&c, (char *)&m + 19, sizeof(m) - 19, NULL, 0));
        CHECK_OK(vfu_test_recv_msg(&c, &hdr, &info, sizeof(info), &len, NULL, NULL));
        CHECK_EQ(hdr.msg_id, 13);
        CHECK_EQ(hdr.flags, VFIO_USER_F_TYPE_REPLY);
        CHECK_EQ(len, sizeof(info));
    }
    check_serving(&c);
    CHECK_EQ(vfu_test_server_disconnects(&srv), 0);
    vfu_test_client_close(&c);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);
}

static void
test_disconnect_keeps_device(void)
{
    struct device dev = { 0 };
    struct vfu_test_server srv;
    struct vfu_test_client c;
    char path[108];
    vfu_ctx_t *ctx;
    uint64_t v = 0;

    vfu_test_sock_path(path, sizeof(path), "disconnect");
    ctx = make_device(path, &dev, LIBVFIO_USER_FLAG_ATTACH_NB);
    REQUIRE(ctx != NULL);
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, path));
    CHECK_EQ(vfu_test_region_write_val(&c, 0, 0, 4, 0xfeedbeef), 0);
    vfu_test_client_close(&c);
    CHECK_OK(vfu_test_server_wait_disconnects(&srv, 1, 2000));
    CHECK_EQ(dev.resets[VFU_RESET_LOST_CONN], 1);

    REQUIRE_OK(vfu_test_client_open(&c, path));
    CHECK_EQ(vfu_test_region_read_val(&c, 0, 0, 4, &v), 0);
    CHECK_EQ(v, 0xfeedbeef);
    CHECK_EQ(vfu_test_device_reset(&c), 0);
    CHECK_EQ(dev.resets[VFU_RESET_DEVICE], 1);
    vfu_test_client_close(&c);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);
}

/* Many clients in a row leave no fd and no memory behind. */
static void
test_connection_cycles(void)
{
    struct device dev = { 0 };
    struct vfu_test_server srv;
    char path[108];
    vfu_ctx_t *ctx;
    int fds_before;
    size_t heap_before;
    const unsigned cycles = 1000;

    vfu_test_sock_path(path, sizeof(path), "cycles");
    ctx = make_device(path, &dev, LIBVFIO_USER_FLAG_ATTACH_NB);
    REQUIRE(ctx != NULL);
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    /* Warm up allocator caches and thread state before measuring. */
    for (int i = 0; i < 10; i++) {
        struct vfu_test_client c;
        REQUIRE_OK(vfu_test_client_open(&c, path));
        check_serving(&c);
        vfu_test_client_close(&c);
    }
    REQUIRE_OK(vfu_test_server_wait_disconnects(&srv, 10, 5000));
    fds_before = vfu_test_count_open_fds();
    heap_before = mallinfo2().uordblks;
    for (unsigned i = 0; i < cycles; i++) {
        struct vfu_test_client c;
        uint64_t v;

        if (vfu_test_client_open(&c, path) != 0) {
            FAIL("cycle %u: connect failed: %s", i, strerror(errno));
            break;
        }
        if (vfu_test_region_read_val(&c, 0, 0, 4, &v) != 0) {
            FAIL("cycle %u: read failed", i);
        }
        vfu_test_client_close(&c);
        /* One at a time, as a real client reconnects. */
        vfu_test_server_wait_disconnects(&srv, 10 + i + 1, 2000);
    }
    CHECK_OK(vfu_test_server_wait_disconnects(&srv, 10 + cycles, 10000));
    CHECK_EQ(dev.resets[VFU_RESET_LOST_CONN], 10 + cycles);
    CHECK_EQ(vfu_test_count_open_fds(), fds_before);
    /* Under ASan mallinfo sees nothing; LeakSanitizer checks at exit instead. */
    CHECK_LE((long long)mallinfo2().uordblks, (long long)heap_before + 4096);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);
}

/* Quiesce: a device that needs time parks the request until it is ready. */
static void
test_async_quiesce(void)
{
    struct device dev = { .quiesce_async = true };
    struct vfu_test_client c;
    struct vfio_user_header hdr;
    char path[108];
    vfu_ctx_t *ctx;
    size_t len;
    int id;

    vfu_test_sock_path(path, sizeof(path), "quiesce");
    ctx = make_device(path, &dev, LIBVFIO_USER_FLAG_ATTACH_NB);
    REQUIRE(ctx != NULL);
    vfu_setup_device_quiesce_cb(ctx, on_quiesce);
    CHECK_ERRNO(vfu_device_quiesced(ctx, 0), EINVAL);

    /* One thread plays both sides, so the order of events is exact. */
    REQUIRE_OK(vfu_test_client_connect(&c, path, -1));
    {
        struct {
            struct vfio_user_header hdr;
            struct vfio_user_version v;
        } __attribute__((packed)) m = {
            .hdr = { .msg_id = 1, .cmd = VFIO_USER_VERSION, .msg_size = sizeof(m) },
        };
        CHECK_OK(vfu_test_send_raw(&c, &m, sizeof(m), NULL, 0));
    }
    vfu_test_sleep_ms(20);
    REQUIRE_OK(vfu_attach_ctx(ctx));
    {
        char version_reply[512];
        CHECK_OK(
            vfu_test_recv_msg(&c, &hdr, version_reply, sizeof(version_reply), &len, NULL, NULL));
    }

    id = vfu_test_send_cmd(&c, VFIO_USER_DEVICE_RESET, 0, NULL, 0, NULL, 0);
    CHECK_GE(id, 0);
    vfu_test_sleep_ms(20);
    CHECK_ERRNO(vfu_run_ctx(ctx), EBUSY);
    CHECK_EQ(dev.quiesces, 1);
    CHECK_EQ(dev.resets[VFU_RESET_DEVICE], 0);
    CHECK_ERRNO(vfu_run_ctx(ctx), EBUSY);
    CHECK_OK(vfu_device_quiesced(ctx, 0));
    CHECK_EQ(dev.resets[VFU_RESET_DEVICE], 1);
    CHECK_OK(vfu_test_recv_msg(&c, &hdr, NULL, 0, &len, NULL, NULL));
    CHECK_EQ(hdr.msg_id, id);
    CHECK_EQ(hdr.flags, VFIO_USER_F_TYPE_REPLY);

    /* A device that fails to quiesce fails the request with its errno. */
    id = vfu_test_send_cmd(&c, VFIO_USER_DEVICE_RESET, 0, NULL, 0, NULL, 0);
    vfu_test_sleep_ms(20);
    CHECK_ERRNO(vfu_run_ctx(ctx), EBUSY);
    CHECK_OK(vfu_device_quiesced(ctx, ENOTTY));
    CHECK_OK(vfu_test_recv_msg(&c, &hdr, NULL, 0, &len, NULL, NULL));
    CHECK_EQ(hdr.msg_id, id);
    CHECK_EQ(hdr.error_no, ENOTTY);
    CHECK_EQ(dev.resets[VFU_RESET_DEVICE], 1);

    /* The client leaving also waits for the device to quiesce. */
    vfu_test_client_close(&c);
    vfu_test_sleep_ms(20);
    CHECK_ERRNO(vfu_run_ctx(ctx), EBUSY);
    CHECK_EQ(dev.resets[VFU_RESET_LOST_CONN], 0);
    CHECK_ERRNO(vfu_attach_ctx(ctx), EBUSY);
    CHECK_OK(vfu_device_quiesced(ctx, 0));
    CHECK_EQ(dev.resets[VFU_RESET_LOST_CONN], 1);
    CHECK_ERRNO(vfu_run_ctx(ctx), ENOTCONN);
    CHECK_EQ(vfu_get_poll_fd(ctx), ctx->epoll_fd);
    vfu_destroy_ctx(ctx);
}

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

static bool
poll_fd_ready(vfu_ctx_t *ctx)
{
    struct pollfd pfd = { .fd = vfu_get_poll_fd(ctx), .events = POLLIN };

    return poll(&pfd, 1, 0) == 1;
}

/*
 * A reply larger than the socket can hold must not block a non-blocking
 * server, even when its client runs on the same thread: the rest is queued,
 * the poll fd wakes when the client makes room, and requests that arrive
 * meanwhile wait their turn.
 */
static void
test_large_reply_never_blocks(void)
{
    const uint32_t size = 1u << 20;
    struct vfu_test_client c;
    struct vfio_user_region_access ra = {
        .offset = 0,
        .region = VFU_PCI_DEV_BAR1_REGION_IDX,
        .count = size,
    };
    struct vfio_user_header hdr;
    struct device dev = { 0 };
    char path[108];
    uint8_t *reply;
    size_t want = sizeof(hdr) + sizeof(ra) + size, got = 0;
    vfu_ctx_t *ctx;
    int rounds = 0;

    vfu_test_sock_path(path, sizeof(path), "large-reply");
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, &dev, VFU_DEV_TYPE_PCI);
    REQUIRE(ctx != NULL);
    CHECK_OK(vfu_setup_region(ctx, VFU_PCI_DEV_BAR1_REGION_IDX, size, big_bar_access,
                              VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0));
    CHECK_OK(vfu_setup_device_reset_cb(ctx, on_reset));
    REQUIRE_OK(vfu_realize_ctx(ctx));
    reply = malloc(want);
    REQUIRE(reply != NULL);

    REQUIRE_OK(vfu_test_client_connect(&c, path, -1));
    {
        struct {
            struct vfio_user_header hdr;
            struct vfio_user_version v;
        } __attribute__((packed)) m = {
            .hdr = { .msg_id = 1, .cmd = VFIO_USER_VERSION, .msg_size = sizeof(m) },
        };
        char version_reply[512];
        size_t len;

        CHECK_OK(vfu_test_send_raw(&c, &m, sizeof(m), NULL, 0));
        vfu_test_sleep_ms(10);
        REQUIRE_OK(vfu_attach_ctx(ctx));
        CHECK_OK(
            vfu_test_recv_msg(&c, &hdr, version_reply, sizeof(version_reply), &len, NULL, NULL));
    }
    CHECK_GE(vfu_test_send_cmd(&c, VFIO_USER_REGION_READ, 0, &ra, sizeof(ra), NULL, 0), 0);
    CHECK_GE(vfu_test_send_cmd(&c, VFIO_USER_DEVICE_RESET, 0, NULL, 0, NULL, 0), 0);
    vfu_test_sleep_ms(10);
    CHECK_EQ(vfu_run_ctx(ctx), 1); /* the read, not the reset behind it */
    CHECK(!poll_fd_ready(ctx));    /* the socket is full: nothing to do */
    CHECK_EQ(dev.resets[VFU_RESET_DEVICE], 0);

    while (got < want && rounds++ < 100000) {
        ssize_t n = recv(c.fd, reply + got, want - got, MSG_DONTWAIT);

        if (n > 0) {
            got += (size_t)n;
        }
        if (poll_fd_ready(ctx)) {
            CHECK_GE(vfu_run_ctx(ctx), 0);
        }
    }
    CHECK_EQ(got, want);
    memcpy(&hdr, reply, sizeof(hdr));
    CHECK_EQ(hdr.msg_size, want);
    CHECK_EQ(hdr.flags, VFIO_USER_F_TYPE_REPLY);
    CHECK_EQ(reply[sizeof(hdr) + sizeof(ra) + 12345], (uint8_t)(12345 * 7));
    free(reply);

    /* Now the reset behind it is served. */
    if (poll_fd_ready(ctx)) {
        vfu_run_ctx(ctx);
    }
    {
        size_t len;
        CHECK_OK(vfu_test_recv_msg(&c, &hdr, NULL, 0, &len, NULL, NULL));
        CHECK_EQ(hdr.cmd, VFIO_USER_DEVICE_RESET);
        CHECK_EQ(dev.resets[VFU_RESET_DEVICE], 1);
    }
    vfu_test_client_close(&c);
    vfu_destroy_ctx(ctx);
}

struct blocking_run {
    vfu_ctx_t *ctx;
    int attach_ret;
    int run_ret;
    int run_errno;
};

static void *
serve_blocking(void *arg)
{
    struct blocking_run *run = arg;

    run->attach_ret = vfu_attach_ctx(run->ctx);
    run->run_ret = vfu_run_ctx(run->ctx);
    run->run_errno = errno;
    return NULL;
}

/* Without ATTACH_NB, attach waits for a client and run serves until it leaves. */
static void
test_blocking_mode(void)
{
    struct device dev = { 0 };
    struct blocking_run run = { 0 };
    struct vfu_test_client c;
    char path[108];
    pthread_t thread;

    vfu_test_sock_path(path, sizeof(path), "blocking");
    run.ctx = make_device(path, &dev, 0);
    REQUIRE(run.ctx != NULL);
    CHECK_ERRNO(vfu_run_ctx(run.ctx), ENOTCONN);
    REQUIRE(pthread_create(&thread, NULL, serve_blocking, &run) == 0);
    REQUIRE_OK(vfu_test_client_open(&c, path));
    check_serving(&c);
    CHECK_EQ(vfu_test_region_write_val(&c, 0, 0, 4, 42), 0);
    vfu_test_client_close(&c);
    pthread_join(thread, NULL);
    CHECK_EQ(run.attach_ret, 0);
    CHECK_EQ(run.run_ret, -1);
    CHECK_EQ(run.run_errno, ENOTCONN);
    CHECK_EQ(dev.scratch, 42);
    vfu_destroy_ctx(run.ctx);
}

static int log_calls;
static char last_log[256];

static void
capture_log(vfu_ctx_t *ctx, int level, const char *msg)
{
    log_calls++;
    snprintf(last_log, sizeof(last_log), "%d:%s", level, msg);
}

static void
test_logging(void)
{
    char path[108];
    vfu_ctx_t *ctx;

    vfu_test_sock_path(path, sizeof(path), "log");
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, 0, NULL, VFU_DEV_TYPE_PCI);
    REQUIRE(ctx != NULL);
    CHECK_ERRNO(vfu_setup_log(ctx, capture_log, LOG_DEBUG + 1), EINVAL);
    CHECK_ERRNO(vfu_setup_log(ctx, capture_log, -1), EINVAL);
    CHECK_OK(vfu_setup_log(ctx, capture_log, LOG_INFO));
    vfu_log(ctx, LOG_DEBUG, "hidden %d", 1);
    CHECK_EQ(log_calls, 0);
    errno = EXDEV;
    vfu_log(ctx, LOG_ERR, "shown %d", 2);
    CHECK_EQ(errno, EXDEV);
    CHECK_EQ(log_calls, 1);
    CHECK_STR(last_log, "3:shown 2");
    CHECK_OK(vfu_setup_log(ctx, NULL, LOG_DEBUG));
    vfu_log(ctx, LOG_ERR, "nobody listens");
    CHECK_EQ(log_calls, 1);
    CHECK(vfu_get_private(ctx) == NULL);
    CHECK_ERRNO(vfu_run_ctx(ctx), EINVAL); /* not realized */
    vfu_destroy_ctx(ctx);
}

int
main(void)
{
    check_watchdog(100);
    RUN_TEST(test_create_errors);
    RUN_TEST(test_logging);
    RUN_TEST(test_negotiation);
    RUN_TEST(test_malformed_requests);
    RUN_TEST(test_disconnect_keeps_device);
    RUN_TEST(test_async_quiesce);
    RUN_TEST(test_large_reply_never_blocks);
    RUN_TEST(test_blocking_mode);
    RUN_TEST(test_connection_cycles);
    return check_summary();
}
