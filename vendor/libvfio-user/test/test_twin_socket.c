/*
 * The twin socket (VERSION capability twin_socket): granted to a client that
 * asks for it and can take an fd, it carries our DMA_READ / DMA_WRITE and the
 * client's replies to them, blocking and asynchronous transfers alike, so
 * that the main socket holds only the client's requests and our replies.
 * Anything else arriving on it is refused there, and the device keeps
 * serving.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user.h"
#include "private.h"

#define IOVA 0x10000
#define DMA_LEN 0x3000     /* several messages at the client's 4 KiB */
#define DOORBELL_READ 0x0  /* the device reads client memory, blocking */
#define DOORBELL_WRITE 0x4 /* the device writes it, blocking */
#define TWIN_JSON                                                       \
    "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":4096," \
    "\"twin_socket\":{\"supported\":true}}}"

struct device {
    uint8_t data[DMA_LEN];
    int io_ret;
    atomic_int done;       /* asynchronous transfers ended... */
    atomic_int done_error; /* ...and the last one's error */
};

static int
device_dma(vfu_ctx_t *ctx, struct device *d, bool is_write)
{
    dma_sg_t *sg = calloc(1, dma_sg_size());
    int ret;

    if (sg == NULL) {
        return -1;
    }
    ret = vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)(uintptr_t)IOVA, DMA_LEN, sg, 1,
                          is_write ? PROT_WRITE : PROT_READ);
    if (ret == 1) {
        ret =
            is_write ? vfu_sgl_write(ctx, sg, 1, d->data, 0) : vfu_sgl_read(ctx, sg, 1, d->data, 0);
    }
    free(sg);
    return ret;
}

static ssize_t
bar_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    struct device *d = vfu_get_private(ctx);

    if (!is_write) {
        memset(buf, 0, count);
        return (ssize_t)count;
    }
    d->io_ret = device_dma(ctx, d, offset == DOORBELL_WRITE);
    return (ssize_t)count;
}

struct fixture {
    char path[108];
    struct device dev;
    vfu_ctx_t *ctx;
    struct vfu_test_server srv;
    struct vfu_test_client c;
    uint8_t memory[DMA_LEN];   /* the client's memory at IOVA */
    unsigned on_twin, on_main; /* our commands, by the socket they came on */
};

static int
count_and_serve(struct vfu_test_client *c, int fd, const struct vfio_user_header *hdr,
                const void *payload, size_t len, const int *fds, size_t nfds, void *opaque)
{
    struct fixture *f = opaque;

    (void)fds;
    (void)nfds;
    if (fd == c->twin_fd) {
        f->on_twin++;
    } else {
        f->on_main++;
    }
    return vfu_test_serve_dma_cmd(c, fd, hdr, payload, len);
}

static bool
fixture_open(struct fixture *f, const char *name, const char *json)
{
    memset(f, 0, sizeof(*f));
    vfu_test_client_init(&f->c);
    vfu_test_sock_path(f->path, sizeof(f->path), name);
    f->ctx = vfu_create_ctx(VFU_TRANS_SOCK, f->path, LIBVFIO_USER_FLAG_ATTACH_NB, &f->dev,
                            VFU_DEV_TYPE_PCI);
    if (!CHECK(f->ctx != NULL)) {
        return false;
    }
    vfu_setup_log(f->ctx, vfu_test_log_stderr, LOG_DEBUG);
    if (!(CHECK_OK(vfu_pci_init(f->ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0)) &&
          CHECK_OK(vfu_setup_region(f->ctx, VFU_PCI_DEV_BAR0_REGION_IDX, 0x1000, bar_access,
                                    VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0)) &&
          CHECK_OK(vfu_setup_device_dma(f->ctx, 16, NULL, NULL)) &&
          CHECK_OK(vfu_realize_ctx(f->ctx)) && CHECK_OK(vfu_test_server_start(&f->srv, f->ctx)) &&
          CHECK_OK(vfu_test_client_connect(&f->c, f->path, -1)) &&
          CHECK_EQ(vfu_test_negotiate(&f->c, 0, 1, json), 0))) {
        return false;
    }
    f->c.server_cmd_fn = count_and_serve;
    f->c.server_cmd_opaque = f;
    /* Client memory without an fd: every access is a message. */
    return CHECK_OK(vfu_test_client_add_dma_window(&f->c, IOVA, f->memory, DMA_LEN)) &&
           CHECK_EQ(vfu_test_dma_map(&f->c,
                                     VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE, 0,
                                     IOVA, DMA_LEN, -1),
                    0);
}

static void
fixture_close(struct fixture *f)
{
    vfu_test_client_close(&f->c);
    CHECK_EQ(vfu_test_server_run_errors(&f->srv), 0);
    vfu_test_server_stop(&f->srv);
    vfu_destroy_ctx(f->ctx);
}

static void
test_granted_only_when_asked(void)
{
    static const char *const not_granted[] = {
        VFU_TEST_DEFAULT_JSON,
        "{\"capabilities\":{\"twin_socket\":{\"supported\":false}}}",
        /* It comes as an fd, which a client taking none cannot receive. */
        "{\"capabilities\":{\"max_msg_fds\":0,\"twin_socket\":{\"supported\":true}}}",
    };
    struct fixture f;
    bool supported = false;
    uint64_t fd_index = 99;

    REQUIRE(fixture_open(&f, "twin-grant", TWIN_JSON));
    CHECK(f.c.twin_fd >= 0);
    CHECK_OK(vfu_test_json_get_bool(f.c.server_json, "supported", &supported));
    CHECK(supported);
    CHECK_OK(vfu_test_json_get_u64(f.c.server_json, "fd_index", &fd_index));
    CHECK_EQ(fd_index, 0);
    fixture_close(&f);

    for (size_t i = 0; i < sizeof(not_granted) / sizeof(not_granted[0]); i++) {
        REQUIRE(fixture_open(&f, "twin-refused", not_granted[i]));
        CHECK_EQ(f.c.twin_fd, -1);
        CHECK(!vfu_test_json_has_key(f.c.server_json, "twin_socket"));
        fixture_close(&f);
    }
}

static void
test_blocking_transfers_use_it(void)
{
    struct fixture f;

    REQUIRE(fixture_open(&f, "twin-blocking", TWIN_JSON));
    for (size_t i = 0; i < DMA_LEN; i++) {
        f.memory[i] = (uint8_t)(i * 13 + 1);
    }
    CHECK_EQ(vfu_test_region_write_val(&f.c, 0, DOORBELL_READ, 4, 1), 0);
    CHECK_EQ(f.dev.io_ret, 0);
    CHECK_MEM(f.dev.data, f.memory, DMA_LEN);
    CHECK_EQ(f.on_twin, 3);
    CHECK_EQ(f.on_main, 0);

    for (size_t i = 0; i < DMA_LEN; i++) {
        f.dev.data[i] = (uint8_t)(i * 7 + 5);
    }
    CHECK_EQ(vfu_test_region_write_val(&f.c, 0, DOORBELL_WRITE, 4, 1), 0);
    CHECK_EQ(f.dev.io_ret, 0);
    CHECK_MEM(f.memory, f.dev.data, DMA_LEN);
    CHECK_EQ(f.on_twin, 6);
    CHECK_EQ(f.on_main, 0);
    fixture_close(&f);
}

/* Without a twin socket the same transfers share the main socket. */
static void
test_main_socket_without_it(void)
{
    struct fixture f;

    REQUIRE(fixture_open(&f, "twin-none",
                         "{\"capabilities\":{\"max_msg_fds\":8,"
                         "\"max_data_xfer_size\":4096}}"));
    memset(f.memory, 0x5a, DMA_LEN);
    CHECK_EQ(vfu_test_region_write_val(&f.c, 0, DOORBELL_READ, 4, 1), 0);
    CHECK_EQ(f.dev.io_ret, 0);
    CHECK_MEM(f.dev.data, f.memory, DMA_LEN);
    CHECK_EQ(f.on_twin, 0);
    CHECK_EQ(f.on_main, 3);
    fixture_close(&f);
}

static void
on_done(vfu_ctx_t *ctx, void *cookie, int error)
{
    struct device *d = vfu_get_private(ctx);

    (void)cookie;
    atomic_store(&d->done_error, error);
    atomic_fetch_add(&d->done, 1);
}

static int
start_async_write(vfu_ctx_t *ctx, void *arg)
{
    struct device *d = vfu_get_private(ctx);

    (void)arg;
    return dma_transfer_start(ctx, IOVA, DMA_LEN, d->data, true, on_done, NULL);
}

static bool
async_done(void *arg)
{
    struct fixture *f = arg;

    /* The replies reach the server only once the client has served them. */
    vfu_test_client_serve(&f->c, 0);
    return atomic_load(&f->dev.done) > 0;
}

/* The run loop takes the replies of an asynchronous transfer from it. */
static void
test_async_transfer_replies_come_back_on_it(void)
{
    struct fixture f;

    REQUIRE(fixture_open(&f, "twin-async", TWIN_JSON));
    memset(f.dev.data, 0xc3, DMA_LEN);
    CHECK_OK(vfu_test_server_call(&f.srv, start_async_write, NULL));
    CHECK(vfu_test_wait_until(async_done, &f, 5000));
    CHECK_EQ(atomic_load(&f.dev.done_error), 0);
    CHECK_MEM(f.memory, f.dev.data, DMA_LEN);
    CHECK_EQ(f.on_twin, 3);
    CHECK_EQ(f.on_main, 0);
    fixture_close(&f);
}

/* A command on the twin socket is refused there; the device keeps serving. */
static void
test_command_on_it_is_refused(void)
{
    struct vfio_user_header hdr = {
        .msg_id = 0x77,
        .cmd = VFIO_USER_DEVICE_GET_INFO,
        .msg_size = 32,
    };
    struct vfio_user_device_info info = { .argsz = sizeof(info) };
    struct vfio_user_header reply;
    uint8_t msg[32];
    size_t len = 0;
    struct fixture f;

    REQUIRE(fixture_open(&f, "twin-command", TWIN_JSON));
    memcpy(msg, &hdr, sizeof(hdr));
    memcpy(msg + sizeof(hdr), &info, sizeof(info));
    REQUIRE_OK(vfu_test_send_raw_fd(f.c.twin_fd, 1000, msg, sizeof(msg), NULL, 0));
    REQUIRE_OK(vfu_test_recv_msg_fd(f.c.twin_fd, 5000, &reply, NULL, 0, &len, NULL, NULL));
    CHECK_EQ(reply.msg_id, 0x77);
    CHECK_EQ(reply.flags, VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR);
    CHECK_EQ(reply.error_no, EINVAL);
    CHECK_EQ(vfu_test_device_get_info(&f.c, &info), 0);
    memset(f.memory, 0x11, DMA_LEN);
    CHECK_EQ(vfu_test_region_write_val(&f.c, 0, DOORBELL_READ, 4, 1), 0);
    CHECK_MEM(f.dev.data, f.memory, DMA_LEN);
    fixture_close(&f);
}

/* The client closing its end counts as the client leaving. */
static void
test_closed_twin_ends_the_connection(void)
{
    struct fixture f;

    REQUIRE(fixture_open(&f, "twin-closed", TWIN_JSON));
    close(f.c.twin_fd);
    f.c.twin_fd = -1;
    CHECK_OK(vfu_test_server_wait_disconnects(&f.srv, 1, 5000));
    CHECK_OK(vfu_test_wait_closed(&f.c, 5000));
    fixture_close(&f);
}

int
main(void)
{
    check_watchdog(60);
    RUN_TEST(test_granted_only_when_asked);
    RUN_TEST(test_blocking_transfers_use_it);
    RUN_TEST(test_main_socket_without_it);
    RUN_TEST(test_async_transfer_replies_come_back_on_it);
    RUN_TEST(test_command_on_it_is_refused);
    RUN_TEST(test_closed_twin_ends_the_connection);
    return check_summary();
}
