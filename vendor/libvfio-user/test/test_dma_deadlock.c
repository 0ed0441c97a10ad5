/*
 * A client that writes large DMA_READ replies before it reads anything, as
 * QEMU does, while our replies to its earlier requests wait in the send
 * queue: the server must keep taking the replies, or both sides wait on each
 * other for ever. Seen with virtio-blk in a real guest without shared
 * memory, where every disk block moves in DMA_READ replies.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user-ext.h"
#include "libvfio-user.h"
#include "private.h"

#define PAGE 4096
#define IOVA 0x100000
/* One transfer of this many bytes: its replies are far larger than a socket buffer. */
#define READ_LEN (1u << 20)
#define NR_CHUNKS (READ_LEN / DMA_READ_CHUNK_MAX)
/* Region reads whose replies overflow the socket towards the client. */
#define NR_READS 256

struct device {
    uint8_t *dest;         /* where the transfer lands */
    atomic_int done_error; /* -1 until done runs */
};

static ssize_t
bar_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    if (!is_write) {
        memset(buf, 0x5a, count);
    }
    return (ssize_t)count;
}

static void
on_done(vfu_ctx_t *ctx, void *cookie, int error)
{
    struct device *dev = vfu_get_private(ctx);

    atomic_store(&dev->done_error, error);
}

static int
start_read(vfu_ctx_t *ctx, void *arg)
{
    struct device *dev = vfu_get_private(ctx);

    return vfu_ext_dma_transfer(ctx, IOVA, READ_LEN, dev->dest, false, on_done, NULL);
}

/*
 * The server thread runs the context only when its poll fd says so, as an
 * event loop does, not also every few milliseconds.
 */
static int
poll_without_timeout(vfu_ctx_t *ctx, void *arg)
{
    struct vfu_test_server *srv = arg;

    srv->poll_timeout_ms = -1;
    return 0;
}

static int
output_queued(vfu_ctx_t *ctx, void *arg)
{
    return ctx->conn.main.tx_head != NULL && ctx->xfers.chunks != NULL;
}

static bool
queue_backed_up(void *arg)
{
    struct vfu_test_server *srv = arg;

    return vfu_test_server_call(srv, output_queued, NULL) == 1;
}

static bool
transfer_done(void *arg)
{
    struct device *dev = arg;

    return atomic_load(&dev->done_error) >= 0;
}

static void
fill(uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)(i * 7 + (i >> 12));
    }
}

/* A device with a BAR and DMA, realized; NULL (a failed check) if not. */
static vfu_ctx_t *
create_device(const char *path, struct device *dev)
{
    vfu_ctx_t *ctx =
        vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, dev, VFU_DEV_TYPE_PCI);

    if (!CHECK(ctx != NULL)) {
        return NULL;
    }
    vfu_setup_log(ctx, vfu_test_log_stderr, LOG_DEBUG);
    if (!CHECK_OK(vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0)) ||
        !CHECK_OK(vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, PAGE, bar_access,
                                   VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0)) ||
        !CHECK_OK(vfu_setup_device_dma(ctx, 16, NULL, NULL)) || !CHECK_OK(vfu_realize_ctx(ctx))) {
        vfu_destroy_ctx(ctx);
        return NULL;
    }
    return ctx;
}

static void
test_reply_taken_while_output_queued(void)
{
    char path[108];
    struct device dev = { .done_error = -1 };
    struct vfu_test_server srv;
    struct vfu_test_client c = { .fd = -1, .twin_fd = -1 };
    struct vfio_user_header hdr;
    struct vfio_user_dma_region_access req;
    const size_t reply_len = sizeof(hdr) + sizeof(req) + DMA_READ_CHUNK_MAX;
    struct vfio_user_region_access rd = {
        .region = VFU_PCI_DEV_BAR0_REGION_IDX,
        .count = PAGE,
    };
    uint8_t *replies_out = malloc(NR_CHUNKS * reply_len);
    uint8_t *data = malloc(READ_LEN);
    uint8_t *scratch = malloc(sizeof(rd) + PAGE);
    vfu_ctx_t *ctx;
    size_t len;
    unsigned replies = 0;

    dev.dest = calloc(1, READ_LEN);
    REQUIRE(replies_out != NULL && data != NULL && scratch != NULL && dev.dest != NULL);
    vfu_test_sock_path(path, sizeof(path), "dma-deadlock");
    ctx = create_device(path, &dev);
    REQUIRE(ctx != NULL);
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_server_call(&srv, poll_without_timeout, &srv));
    REQUIRE_OK(vfu_test_client_open(&c, path));
    /* Memory without an fd: the server reaches it by DMA messages only. */
    REQUIRE_EQ(vfu_test_dma_map(&c, VFIO_USER_F_DMA_REGION_READ, 0, IOVA, READ_LEN, -1), 0);

    /*
     * The device starts a read; its DMA_READs, none larger than a reply QEMU
     * sends whole, are the first things we receive. We answer them in order.
     */
    fill(data, READ_LEN);
    REQUIRE_OK(vfu_test_server_call(&srv, start_read, NULL));
    for (size_t i = 0; i < NR_CHUNKS; i++) {
        uint8_t *out = replies_out + i * reply_len;

        REQUIRE_OK(vfu_test_recv_msg(&c, &hdr, &req, sizeof(req), &len, NULL, NULL));
        REQUIRE_EQ(hdr.cmd, VFIO_USER_DMA_READ);
        REQUIRE_EQ(req.addr, IOVA + i * DMA_READ_CHUNK_MAX);
        REQUIRE_EQ(req.count, DMA_READ_CHUNK_MAX);
        memcpy(out,
               &(struct vfio_user_header){
                   .msg_id = hdr.msg_id,
                   .cmd = hdr.cmd,
                   .flags = VFIO_USER_F_TYPE_REPLY,
                   .msg_size = (uint32_t)reply_len,
               },
               sizeof(hdr));
        memcpy(out + sizeof(hdr), &req, sizeof(req));
        memcpy(out + sizeof(hdr) + sizeof(req), data + i * DMA_READ_CHUNK_MAX, DMA_READ_CHUNK_MAX);
    }

    /* Requests whose replies we leave unread until the server queues them. */
    for (int i = 0; i < NR_READS; i++) {
        REQUIRE(vfu_test_send_cmd(&c, VFIO_USER_REGION_READ, 0, &rd, sizeof(rd), NULL, 0) >= 0);
    }
    CHECK(vfu_test_wait_until(queue_backed_up, &srv, 5000));

    /* The replies, written whole before we read again: the server must take them. */
    CHECK_OK(vfu_test_send_raw_fd(c.fd, 3000, replies_out, NR_CHUNKS * reply_len, NULL, 0));
    CHECK(vfu_test_wait_until(transfer_done, &dev, 3000));
    CHECK_EQ(atomic_load(&dev.done_error), 0);
    CHECK_MEM(dev.dest, data, READ_LEN);

    /* Every region read is answered in turn, and the device serves on. */
    while (replies < NR_READS &&
           vfu_test_recv_msg(&c, &hdr, scratch, sizeof(rd) + PAGE, &len, NULL, NULL) == 0) {
        if (hdr.cmd == VFIO_USER_REGION_READ && len == sizeof(rd) + PAGE) {
            replies++;
        }
    }
    CHECK_EQ(replies, NR_READS);
    CHECK_EQ(vfu_test_region_read(&c, VFU_PCI_DEV_BAR0_REGION_IDX, 0, PAGE, scratch), 0);
    CHECK_EQ(scratch[0], 0x5a);
    CHECK_EQ(vfu_test_server_disconnects(&srv), 0);
    CHECK_EQ(vfu_test_server_run_errors(&srv), 0);

    vfu_test_client_close(&c);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);
    free(dev.dest);
    free(replies_out);
    free(data);
    free(scratch);
}

/*
 * QEMU writes each reply with one non-blocking sendmsg and takes a short
 * count as sent, so a reply the socket takes only in part is cut and the
 * stream never recovers. Answered that way while the server reads nothing,
 * every DMA_READ reply must go whole or not at all (EAGAIN, retried whole
 * once the server has read).
 */
static void
test_replies_go_whole_in_one_write(void)
{
    char path[108];
    struct device dev = { .done_error = -1 };
    struct vfu_test_server srv;
    struct vfu_test_client c = { .fd = -1, .twin_fd = -1 };
    struct vfio_user_header hdr;
    struct vfio_user_dma_region_access req;
    uint8_t *reply = malloc(sizeof(hdr) + sizeof(req) + READ_LEN);
    uint8_t *data = malloc(READ_LEN);
    vfu_ctx_t *ctx;
    size_t len, received = 0;
    unsigned cut = 0, refused = 0;

    dev.dest = calloc(1, READ_LEN);
    REQUIRE(reply != NULL && data != NULL && dev.dest != NULL);
    fill(data, READ_LEN);
    vfu_test_sock_path(path, sizeof(path), "dma-whole-replies");
    ctx = create_device(path, &dev);
    REQUIRE(ctx != NULL);
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, path));
    REQUIRE_EQ(vfu_test_dma_map(&c, VFIO_USER_F_DMA_REGION_READ, 0, IOVA, READ_LEN, -1), 0);
    /* From here this thread is the server too: it runs only when we say. */
    vfu_test_server_stop(&srv);
    REQUIRE_OK(start_read(ctx, NULL));

    while (received < READ_LEN && cut == 0) {
        size_t reply_len;
        ssize_t sent;

        REQUIRE_OK(vfu_test_recv_msg(&c, &hdr, &req, sizeof(req), &len, NULL, NULL));
        REQUIRE_EQ(hdr.cmd, VFIO_USER_DMA_READ);
        REQUIRE(req.addr >= IOVA && req.count <= READ_LEN - (req.addr - IOVA));
        reply_len = sizeof(hdr) + sizeof(req) + req.count;
        memcpy(reply,
               &(struct vfio_user_header){
                   .msg_id = hdr.msg_id,
                   .cmd = hdr.cmd,
                   .flags = VFIO_USER_F_TYPE_REPLY,
                   .msg_size = (uint32_t)reply_len,
               },
               sizeof(hdr));
        memcpy(reply + sizeof(hdr), &req, sizeof(req));
        memcpy(reply + sizeof(hdr) + sizeof(req), data + (req.addr - IOVA), req.count);
        while ((sent = send(c.fd, reply, reply_len, MSG_DONTWAIT)) < 0 &&
               (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* Full: the server reads, then the reply goes again, whole. */
            refused++;
            REQUIRE(vfu_run_ctx(ctx) >= 0);
        }
        REQUIRE(sent >= 0);
        if ((size_t)sent < reply_len) {
            cut++;
        }
        received += req.count;
    }
    CHECK_EQ(cut, 0);
    /* The socket did fill: the replies were tried against a full buffer. */
    CHECK(refused > 0);
    while (cut == 0 && atomic_load(&dev.done_error) < 0) {
        REQUIRE(vfu_run_ctx(ctx) >= 0);
    }
    CHECK_EQ(atomic_load(&dev.done_error), 0);
    CHECK_MEM(dev.dest, data, READ_LEN);

    vfu_test_client_close(&c);
    vfu_destroy_ctx(ctx);
    free(dev.dest);
    free(reply);
    free(data);
}

int
main(void)
{
    check_watchdog(60);
    RUN_TEST(test_reply_taken_while_output_queued);
    RUN_TEST(test_replies_go_whole_in_one_write);
    return check_summary();
}
