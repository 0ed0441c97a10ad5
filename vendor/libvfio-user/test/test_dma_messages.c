/*
 * Client memory reached by DMA_READ / DMA_WRITE messages: vfu_sgl_read and
 * vfu_sgl_write (blocking) and the asynchronous dma_transfer_start, over a
 * real socket. The device acts when the client writes its BAR, as a real
 * device starts DMA on a doorbell: the client serves the DMA messages from
 * its own memory while it waits for that write's reply.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user.h"
#include "private.h"

#define PAGE 4096
#define MAX_SGS 8
#define MAX_DONE 16

/* Doorbells in BAR0, written by the client. */
enum {
    DOORBELL_MAKE_SGL = 0, /* vfu_addr_to_sgl(op.iova, op.len, op.prot) */
    DOORBELL_SGL_IO = 4,   /* vfu_sgl_read/write of that list */
    DOORBELL_ASYNC = 8,    /* dma_transfer_start(op...) */
    DOORBELL_LOG = 12,     /* recorded in the write log, nothing else */
};

struct dma_op {
    uint64_t iova;
    size_t len;
    int prot;
    int flags;
    bool is_write;
    uint8_t *buf;
};

struct done_record {
    int error;
    unsigned seq; /* of the device's events */
};

struct device {
    struct dma_op op;
    _Alignas(8) uint8_t sgl[MAX_SGS * 40];
    int nr_sgs;
    int sgl_errno;
    int io_ret, io_errno;
    unsigned io_seq;
    int async_ret;
    atomic_uint nr_done;
    struct done_record done[MAX_DONE];
    unsigned seq;
    uint32_t log[64]; /* values written to DOORBELL_LOG */
    unsigned nr_log;
};

static void on_done(vfu_ctx_t *ctx, void *cookie, int error);

/*
 * Starts the device's operation as an asynchronous transfer; the cookie is
 * an allocation that on_done frees, so that a leak or a second call shows.
 */
static int
start_async(vfu_ctx_t *ctx, struct device *dev)
{
    void *cookie = malloc(1);
    int ret = dma_transfer_start(ctx, dev->op.iova, dev->op.len, dev->op.buf, dev->op.is_write,
                                 on_done, cookie);

    if (ret < 0) {
        free(cookie);
    }
    return ret;
}

static void
on_done(vfu_ctx_t *ctx, void *cookie, int error)
{
    struct device *dev = vfu_get_private(ctx);
    unsigned n = atomic_load(&dev->nr_done);

    if (n < MAX_DONE) {
        dev->done[n].error = error;
        dev->done[n].seq = ++dev->seq;
    }
    free(cookie);
    atomic_store(&dev->nr_done, n + 1);
}

static ssize_t
bar_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    struct device *dev = vfu_get_private(ctx);
    uint32_t value;

    if (!is_write || count != 4) {
        memset(buf, 0, count);
        return (ssize_t)count;
    }
    memcpy(&value, buf, 4);
    switch (offset) {
    case DOORBELL_MAKE_SGL:
        errno = 0;
        dev->nr_sgs = vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)(uintptr_t)dev->op.iova, dev->op.len,
                                      (dma_sg_t *)dev->sgl, MAX_SGS, dev->op.prot);
        dev->sgl_errno = errno;
        break;
    case DOORBELL_SGL_IO:
        errno = 0;
        dev->io_ret = dev->op.is_write
                          ? vfu_sgl_write(ctx, (dma_sg_t *)dev->sgl, (size_t)dev->nr_sgs,
                                          dev->op.buf, dev->op.flags)
                          : vfu_sgl_read(ctx, (dma_sg_t *)dev->sgl, (size_t)dev->nr_sgs,
                                         dev->op.buf, dev->op.flags);
        dev->io_errno = errno;
        dev->io_seq = ++dev->seq;
        break;
    case DOORBELL_ASYNC:
        dev->async_ret = start_async(ctx, dev);
        break;
    case DOORBELL_LOG:
        if (dev->nr_log < VFU_ARRAY_LEN(dev->log)) {
            dev->log[dev->nr_log++] = value;
        }
        break;
    }
    return (ssize_t)count;
}

struct fixture {
    char path[108];
    struct device dev;
    vfu_ctx_t *ctx;
    struct vfu_test_server srv;
    struct vfu_test_client c;
};

/* json: the client's VERSION capabilities (NULL: the default ones). */
static bool
fixture_open(struct fixture *f, const char *name, const char *json)
{
    memset(f, 0, sizeof(*f));
    f->c.fd = -1;
    f->c.twin_fd = -1;
    vfu_test_sock_path(f->path, sizeof(f->path), name);
    f->ctx = vfu_create_ctx(VFU_TRANS_SOCK, f->path, LIBVFIO_USER_FLAG_ATTACH_NB, &f->dev,
                            VFU_DEV_TYPE_PCI);
    if (!CHECK(f->ctx != NULL)) {
        return false;
    }
    vfu_setup_log(f->ctx, vfu_test_log_stderr, LOG_DEBUG);
    return CHECK_OK(vfu_pci_init(f->ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0)) &&
           CHECK_OK(vfu_setup_region(f->ctx, VFU_PCI_DEV_BAR0_REGION_IDX, PAGE, bar_access,
                                     VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0)) &&
           CHECK_OK(vfu_setup_device_dma(f->ctx, 16, NULL, NULL)) &&
           CHECK_OK(vfu_realize_ctx(f->ctx)) && CHECK_OK(vfu_test_server_start(&f->srv, f->ctx)) &&
           CHECK_OK(vfu_test_client_connect(&f->c, f->path, -1)) &&
           CHECK_EQ(vfu_test_negotiate(&f->c, 0, 1, json ? json : VFU_TEST_DEFAULT_JSON), 0);
}

static void
fixture_close(struct fixture *f)
{
    vfu_test_client_close(&f->c);
    if (f->ctx != NULL) {
        vfu_test_server_stop(&f->srv);
        vfu_destroy_ctx(f->ctx);
    }
}

static int
noop(vfu_ctx_t *ctx, void *arg)
{
    return 0;
}

/* After this the test thread sees everything the server thread did. */
static void
sync_with_server(struct fixture *f)
{
    vfu_test_server_call(&f->srv, noop, NULL);
}

/* Starts an asynchronous transfer of the device's operation, on the server thread. */
static int
call_async_start(vfu_ctx_t *ctx, void *arg)
{
    return start_async(ctx, vfu_get_private(ctx));
}

static int
call_set_timeout(vfu_ctx_t *ctx, void *arg)
{
    ctx->xfers.reply_timeout_ms = *(int *)arg;
    return 0;
}

static int
ring(struct fixture *f, unsigned doorbell)
{
    return vfu_test_region_write_val(&f->c, VFU_PCI_DEV_BAR0_REGION_IDX, doorbell, 4, 1);
}

/* Client memory at iova: served by messages (fd < 0) or mapped from a memfd. */
struct client_mem {
    uint8_t *ptr;
    size_t size;
    int fd;
};

static bool
client_mem_map(struct fixture *f, struct client_mem *m, uint64_t iova, size_t size, bool with_fd,
               bool writable, uint8_t seed)
{
    uint32_t flags = VFIO_USER_F_DMA_REGION_READ | (writable ? VFIO_USER_F_DMA_REGION_WRITE : 0);

    m->size = size;
    m->fd = with_fd ? vfu_test_memfd(size) : -1;
    m->ptr =
        with_fd ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0) : malloc(size);
    if (!CHECK(m->ptr != NULL && m->ptr != MAP_FAILED)) {
        return false;
    }
    for (size_t i = 0; i < size; i++) {
        m->ptr[i] = (uint8_t)(seed + i * 3 + (i >> 8));
    }
    /* The client serves DMA messages from every mapping, fd or not. */
    return CHECK_OK(vfu_test_client_add_dma_window(&f->c, iova, m->ptr, size)) &&
           CHECK_EQ(vfu_test_dma_map(&f->c, flags, 0, iova, size, m->fd), 0);
}

static void
client_mem_free(struct client_mem *m)
{
    if (m->fd >= 0) {
        munmap(m->ptr, m->size);
        close(m->fd);
    } else {
        free(m->ptr);
    }
}

/* Sets the device's operation; the buffer is the device's (server side). */
static void
set_op(struct fixture *f, uint64_t iova, size_t len, bool is_write, int flags, uint8_t *buf)
{
    f->dev.op = (struct dma_op){
        .iova = iova,
        .len = len,
        .is_write = is_write,
        .flags = flags,
        .buf = buf,
        .prot = PROT_READ | (is_write ? PROT_WRITE : 0),
    };
}

/* Builds the list and runs the blocking transfer; the number of messages served. */
static unsigned long
sgl_io(struct fixture *f)
{
    unsigned long before = f->c.server_cmds;

    CHECK_OK(ring(f, DOORBELL_MAKE_SGL));
    CHECK_OK(ring(f, DOORBELL_SGL_IO));
    sync_with_server(f);
    return f->c.server_cmds - before;
}

static void
fill(uint8_t *p, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)(seed ^ (i * 5) ^ (i >> 9));
    }
}

/* ------------------------------------------------------------------ tests */

static void
test_sgl_through_messages(void)
{
    struct fixture f;
    struct client_mem mem = { 0 };
    uint8_t *buf = malloc(PAGE);

    REQUIRE(buf != NULL);
    if (!fixture_open(&f, "dmamsg-single", NULL) ||
        !client_mem_map(&f, &mem, 0x10000, 4 * PAGE, false, true, 0x21)) {
        goto out;
    }
    /* Message mode goes by messages with or without VFU_SGL_DIRECT_ACCESS. */
    for (int flags = 0; flags <= VFU_SGL_DIRECT_ACCESS; flags++) {
        memset(buf, 0, PAGE);
        set_op(&f, 0x10010, 100, false, flags, buf);
        CHECK_EQ(sgl_io(&f), 1);
        CHECK_EQ(f.dev.nr_sgs, 1);
        CHECK_EQ(f.dev.io_ret, 0);
        CHECK_MEM(buf, mem.ptr + 0x10, 100);

        fill(buf, PAGE, (uint8_t)(0x40 + flags));
        set_op(&f, 0x10800 + (uint64_t)flags * PAGE, PAGE, true, flags, buf);
        CHECK_EQ(sgl_io(&f), 1);
        CHECK_EQ(f.dev.io_ret, 0);
        CHECK_MEM(mem.ptr + 0x800 + flags * PAGE, buf, PAGE);
    }
out:
    fixture_close(&f);
    client_mem_free(&mem);
    free(buf);
}

/*
 * Transfers are cut at the client's max_data_xfer_size, and reads also at
 * DMA_READ_CHUNK_MAX (replies QEMU sends whole).
 */
static void
test_chunks(void)
{
    const size_t big = (3u << 20) + 5;
    struct fixture f;
    struct client_mem mem = { 0 }, large = { 0 };
    uint8_t *buf = malloc(big);

    REQUIRE(buf != NULL);
    if (!fixture_open(&f, "dmamsg-chunks",
                      "{\"capabilities\":{\"max_msg_fds\":16,"
                      "\"max_data_xfer_size\":4096}}") ||
        !client_mem_map(&f, &mem, 0x100000, 16 * PAGE, false, true, 0x33)) {
        goto out;
    }
    set_op(&f, 0x100003, 40000, false, 0, buf);
    CHECK_EQ(sgl_io(&f), 10);
    CHECK_EQ(f.dev.io_ret, 0);
    CHECK_MEM(buf, mem.ptr + 3, 40000);
    fill(buf, 40000, 0x5c);
    set_op(&f, 0x100005, 40000, true, 0, buf);
    CHECK_EQ(sgl_io(&f), 10);
    CHECK_EQ(f.dev.io_ret, 0);
    CHECK_MEM(mem.ptr + 5, buf, 40000);
    fixture_close(&f);

    /* With the default 1 MiB, a transfer larger than the in-flight window. */
    if (!fixture_open(&f, "dmamsg-chunks-big", NULL) ||
        !client_mem_map(&f, &large, 0x1000000, 4u << 20, false, true, 0x44)) {
        goto out;
    }
    set_op(&f, 0x1000000, big, false, 0, buf);
    CHECK_EQ(sgl_io(&f), VFU_ROUND_UP(big, DMA_READ_CHUNK_MAX) / DMA_READ_CHUNK_MAX);
    CHECK_EQ(f.dev.io_ret, 0);
    CHECK_MEM(buf, large.ptr, big);
    fill(buf, big, 0x17);
    set_op(&f, 0x1000001, big, true, 0, buf);
    CHECK_EQ(sgl_io(&f), 4);
    CHECK_EQ(f.dev.io_ret, 0);
    CHECK_MEM(large.ptr + 1, buf, big);
out:
    fixture_close(&f);
    client_mem_free(&mem);
    client_mem_free(&large);
    free(buf);
}

/*
 * A list spanning two adjacent mappings, one without an fd and one with:
 * without VFU_SGL_DIRECT_ACCESS both go by messages, with it only the first.
 */
static void
test_sgl_spanning_mixed_mappings(void)
{
    struct fixture f;
    struct client_mem msg_mem = { 0 }, fd_mem = { 0 };
    uint8_t buf[2 * PAGE];

    if (!fixture_open(&f, "dmamsg-span", NULL) ||
        !client_mem_map(&f, &msg_mem, 0x20000, PAGE, false, true, 0x50) ||
        !client_mem_map(&f, &fd_mem, 0x21000, PAGE, true, true, 0x60)) {
        goto out;
    }
    set_op(&f, 0x20800, PAGE, false, 0, buf);
    CHECK_EQ(sgl_io(&f), 2);
    CHECK_EQ(f.dev.nr_sgs, 2);
    CHECK_EQ(f.dev.io_ret, 0);
    CHECK_MEM(buf, msg_mem.ptr + 0x800, 0x800);
    CHECK_MEM(buf + 0x800, fd_mem.ptr, 0x800);
    set_op(&f, 0x20800, PAGE, false, VFU_SGL_DIRECT_ACCESS, buf);
    memset(buf, 0, sizeof(buf));
    CHECK_EQ(sgl_io(&f), 1);
    CHECK_EQ(f.dev.io_ret, 0);
    CHECK_MEM(buf, msg_mem.ptr + 0x800, 0x800);
    CHECK_MEM(buf + 0x800, fd_mem.ptr, 0x800);

    for (int flags = 0; flags <= VFU_SGL_DIRECT_ACCESS; flags++) {
        fill(buf, sizeof(buf), (uint8_t)(0x70 + flags));
        set_op(&f, 0x20400, 2 * PAGE - 0x800, true, flags, buf);
        CHECK_EQ(sgl_io(&f), flags ? 1 : 2);
        CHECK_EQ(f.dev.io_ret, 0);
        CHECK_MEM(msg_mem.ptr + 0x400, buf, PAGE - 0x400);
        CHECK_MEM(fd_mem.ptr, buf + PAGE - 0x400, PAGE - 0x400);
    }
out:
    fixture_close(&f);
    client_mem_free(&msg_mem);
    client_mem_free(&fd_mem);
}

static void
test_refusals(void)
{
    struct fixture f;
    struct client_mem rw = { 0 }, ro = { 0 }, again = { 0 };
    uint8_t buf[64] = { 0 };

    if (!fixture_open(&f, "dmamsg-refuse", NULL) ||
        !client_mem_map(&f, &rw, 0x30000, PAGE, false, true, 0x01) ||
        !client_mem_map(&f, &ro, 0x31000, PAGE, false, false, 0x02)) {
        goto out;
    }
    /* Unmapped, and running into a gap. */
    set_op(&f, 0x40000, 8, false, 0, buf);
    CHECK_EQ(sgl_io(&f), 0);
    CHECK_EQ(f.dev.nr_sgs, -1);
    CHECK_EQ(f.dev.sgl_errno, ENOENT);
    CHECK_OK(ring(&f, DOORBELL_ASYNC));
    sync_with_server(&f);
    CHECK_EQ(f.dev.async_ret, -ENOENT);
    set_op(&f, 0x31800, PAGE, false, 0, buf);
    CHECK_OK(ring(&f, DOORBELL_ASYNC));
    sync_with_server(&f);
    CHECK_EQ(f.dev.async_ret, -ENOENT);

    /* Writing a read-only mapping. */
    set_op(&f, 0x31000, 8, true, 0, buf);
    CHECK_EQ(sgl_io(&f), 0);
    CHECK_EQ(f.dev.sgl_errno, EACCES);
    CHECK_OK(ring(&f, DOORBELL_ASYNC));
    sync_with_server(&f);
    CHECK_EQ(f.dev.async_ret, -EACCES);
    /* Writing through entries asked for without PROT_WRITE. */
    set_op(&f, 0x30ff8, 16, false, 0, buf);
    CHECK_OK(ring(&f, DOORBELL_MAKE_SGL));
    f.dev.op.is_write = true;
    CHECK_OK(ring(&f, DOORBELL_SGL_IO));
    sync_with_server(&f);
    CHECK_EQ(f.dev.nr_sgs, 2);
    CHECK_EQ(f.dev.io_ret, -1);
    CHECK_EQ(f.dev.io_errno, EPERM);
    CHECK_MEM(ro.ptr, (uint8_t[]){ 0x02 }, 1);

    /* A list outliving its mapping, even one mapped again at the same place. */
    set_op(&f, 0x30000, 8, false, 0, buf);
    CHECK_OK(ring(&f, DOORBELL_MAKE_SGL));
    CHECK_EQ(vfu_test_dma_unmap(&f.c, 0, 0x30000, PAGE), 0);
    CHECK_OK(ring(&f, DOORBELL_SGL_IO));
    sync_with_server(&f);
    CHECK_EQ(f.dev.io_errno, ENOENT);
    vfu_test_client_del_dma_window(&f.c, 0x30000);
    REQUIRE(client_mem_map(&f, &again, 0x30000, PAGE, false, true, 0x03));
    CHECK_OK(ring(&f, DOORBELL_SGL_IO));
    sync_with_server(&f);
    CHECK_EQ(f.dev.io_errno, ENOENT);
    CHECK_EQ(sgl_io(&f), 1);
    CHECK_EQ(f.dev.io_ret, 0);

    /* The client answers with an error: EFAULT outside its windows. */
    vfu_test_client_del_dma_window(&f.c, 0x30000);
    CHECK_EQ(sgl_io(&f), 1);
    CHECK_EQ(f.dev.io_ret, -1);
    CHECK_EQ(f.dev.io_errno, EFAULT);
out:
    fixture_close(&f);
    client_mem_free(&rw);
    client_mem_free(&ro);
    client_mem_free(&again);
}

/* Replies that do not answer the request. */
enum bad_reply { WRONG_ADDR, SHORT_COUNT, LARGER_COUNT, SHORT_PAYLOAD, WRONG_CMD };

static int
serve_badly(struct vfu_test_client *c, int fd, const struct vfio_user_header *hdr,
            const void *payload, size_t len, const int *fds, size_t nfds, void *opaque)
{
    enum bad_reply how = *(enum bad_reply *)opaque;
    struct {
        uint64_t addr, count;
        uint8_t data[64];
    } reply;
    size_t reply_len = 16;

    memcpy(&reply, payload, 16);
    memset(reply.data, 0xee, sizeof(reply.data));
    if (hdr->cmd == VFIO_USER_DMA_READ) {
        reply_len += reply.count;
    }
    switch (how) {
    case WRONG_ADDR:
        reply.addr++;
        break;
    case SHORT_COUNT:
        reply.count--;
        reply_len -= hdr->cmd == VFIO_USER_DMA_READ ? 1 : 0;
        break;
    case LARGER_COUNT:
        reply.count++;
        reply_len += hdr->cmd == VFIO_USER_DMA_READ ? 1 : 0;
        break;
    case SHORT_PAYLOAD:
        reply_len = 8;
        break;
    case WRONG_CMD:
        return vfu_test_send_reply(c, fd, hdr->msg_id,
                                   hdr->cmd == VFIO_USER_DMA_READ ? VFIO_USER_DMA_WRITE
                                                                  : VFIO_USER_DMA_READ,
                                   0, &reply, 16);
    }
    return vfu_test_send_reply(c, fd, hdr->msg_id, hdr->cmd, 0, &reply, reply_len);
}

static void
test_malformed_replies(void)
{
    static const struct {
        enum bad_reply how;
        int err;
    } cases[] = {
        { WRONG_ADDR, EINVAL },    { SHORT_COUNT, EIO },  { LARGER_COUNT, EINVAL },
        { SHORT_PAYLOAD, EINVAL }, { WRONG_CMD, EINVAL },
    };
    struct fixture f;
    struct client_mem mem = { 0 };
    uint8_t buf[32];

    if (!fixture_open(&f, "dmamsg-malformed", NULL) ||
        !client_mem_map(&f, &mem, 0x10000, PAGE, false, true, 0x0f)) {
        goto out;
    }
    for (size_t i = 0; i < VFU_ARRAY_LEN(cases); i++) {
        enum bad_reply how = cases[i].how;

        for (int is_write = 0; is_write < 2; is_write++) {
            f.c.server_cmd_fn = serve_badly;
            f.c.server_cmd_opaque = &how;
            memset(buf, 0, sizeof(buf));
            set_op(&f, 0x10020, sizeof(buf), is_write, 0, buf);
            CHECK_EQ(sgl_io(&f), 1);
            CHECK_MSG(f.dev.io_ret == -1 && f.dev.io_errno == cases[i].err,
                      "bad reply %d, %s: %d/%d", how, is_write ? "write" : "read", f.dev.io_ret,
                      f.dev.io_errno);
            if (!is_write) {
                CHECK_EQ(buf[0], 0); /* nothing taken from it */
            }
            /* The device keeps serving, and good replies work again. */
            f.c.server_cmd_fn = NULL;
            CHECK_EQ(sgl_io(&f), 1);
            CHECK_EQ(f.dev.io_ret, 0);
        }
    }
out:
    fixture_close(&f);
    client_mem_free(&mem);
}

/* Sends posted doorbell-log writes first, then answers. */
static int
serve_after_writes(struct vfu_test_client *c, int fd, const struct vfio_user_header *hdr,
                   const void *payload, size_t len, const int *fds, size_t nfds, void *opaque)
{
    unsigned *next_value = opaque;

    for (int i = 0; i < 3; i++) {
        uint32_t value = (*next_value)++;

        if (vfu_test_region_write_posted(c, VFU_PCI_DEV_BAR0_REGION_IDX, DOORBELL_LOG, 4, &value) <
            0) {
            return -1;
        }
    }
    return vfu_test_serve_dma_cmd(c, fd, hdr, payload, len);
}

/* Requests sent during the wait are served afterwards, in order. */
static void
test_requests_during_wait(void)
{
    struct fixture f;
    struct client_mem mem = { 0 };
    uint8_t buf[3 * PAGE];
    unsigned next_value = 1;

    if (!fixture_open(&f, "dmamsg-during",
                      "{\"capabilities\":{\"max_msg_fds\":16,"
                      "\"max_data_xfer_size\":4096}}") ||
        !client_mem_map(&f, &mem, 0x10000, 4 * PAGE, false, true, 0x0f)) {
        goto out;
    }
    f.c.server_cmd_fn = serve_after_writes;
    f.c.server_cmd_opaque = &next_value;
    set_op(&f, 0x10000, sizeof(buf), false, 0, buf);
    CHECK_EQ(sgl_io(&f), 3);
    CHECK_EQ(f.dev.io_ret, 0);
    CHECK_MEM(buf, mem.ptr, sizeof(buf));
    f.c.server_cmd_fn = NULL;
    /* One more round trip: the posted writes came before it. */
    CHECK_OK(ring(&f, DOORBELL_LOG));
    sync_with_server(&f);
    REQUIRE_EQ(f.dev.nr_log, 10);
    for (unsigned i = 0; i < 9; i++) {
        CHECK_EQ(f.dev.log[i], i + 1);
    }
    CHECK_EQ(f.dev.log[9], 1);
out:
    fixture_close(&f);
    client_mem_free(&mem);
}

/* Floods the server with 9 MiB of posted writes before answering. */
static int
serve_after_flood(struct vfu_test_client *c, int fd, const struct vfio_user_header *hdr,
                  const void *payload, size_t len, const int *fds, size_t nfds, void *opaque)
{
    const uint8_t *junk = opaque;

    for (int i = 0; i < 9; i++) {
        if (vfu_test_region_write_posted(c, VFU_PCI_DEV_BAR0_REGION_IDX, 0, 1u << 20, junk) < 0) {
            return -1;
        }
    }
    return vfu_test_serve_dma_cmd(c, fd, hdr, payload, len);
}

/* What a wait keeps for later is bounded: past it the transfer fails. */
static void
test_flood_during_wait(void)
{
    struct fixture f;
    struct client_mem mem = { 0 };
    uint8_t *junk = calloc(1, 1u << 20);
    uint8_t buf[16];

    REQUIRE(junk != NULL);
    if (!fixture_open(&f, "dmamsg-flood", NULL) ||
        !client_mem_map(&f, &mem, 0x10000, PAGE, false, true, 0x0f)) {
        goto out;
    }
    f.c.server_cmd_fn = serve_after_flood;
    f.c.server_cmd_opaque = junk;
    set_op(&f, 0x10000, sizeof(buf), false, 0, buf);
    CHECK_EQ(sgl_io(&f), 1);
    CHECK_EQ(f.dev.io_ret, -1);
    CHECK_EQ(f.dev.io_errno, ENOBUFS);
    /* The kept writes are served in turn (refused: too big for the BAR), and
     * the device works on. */
    f.c.server_cmd_fn = NULL;
    CHECK_EQ(sgl_io(&f), 1);
    CHECK_EQ(f.dev.io_ret, 0);
    CHECK_EQ(vfu_test_server_disconnects(&f.srv), 0);
out:
    fixture_close(&f);
    client_mem_free(&mem);
    free(junk);
}

/* Does not answer; remembers the request to answer it later. */
struct held_reply {
    struct vfio_user_header hdr;
    uint64_t access[2];
    bool held;
    bool hang_up;
};

static int
hold_reply(struct vfu_test_client *c, int fd, const struct vfio_user_header *hdr,
           const void *payload, size_t len, const int *fds, size_t nfds, void *opaque)
{
    struct held_reply *h = opaque;

    h->hdr = *hdr;
    memcpy(h->access, payload, sizeof(h->access));
    h->held = true;
    if (h->hang_up) {
        errno = ECONNRESET;
        return -1;
    }
    return 0;
}

static void
test_timeout_and_late_reply(void)
{
    struct fixture f;
    struct client_mem mem = { 0 };
    struct held_reply h = { 0 };
    uint8_t buf[16];
    uint64_t start;

    if (!fixture_open(&f, "dmamsg-timeout", NULL) ||
        !client_mem_map(&f, &mem, 0x10000, PAGE, false, true, 0x0f)) {
        goto out;
    }
    CHECK_OK(vfu_test_server_call(&f.srv, call_set_timeout, &(int){ 300 }));
    f.c.server_cmd_fn = hold_reply;
    f.c.server_cmd_opaque = &h;
    set_op(&f, 0x10000, sizeof(buf), false, 0, buf);
    start = vfu_test_now_ns();
    CHECK_EQ(sgl_io(&f), 1);
    CHECK_GE(vfu_test_now_ns() - start, 300000000ull);
    CHECK(h.held);
    CHECK_EQ(f.dev.io_ret, -1);
    CHECK_EQ(f.dev.io_errno, ETIMEDOUT);
    /* The reply comes after all: dropped, and the device serves on. */
    CHECK_OK(
        vfu_test_send_reply(&f.c, f.c.fd, h.hdr.msg_id, h.hdr.cmd, 0, h.access, sizeof(h.access)));
    f.c.server_cmd_fn = NULL;
    CHECK_EQ(sgl_io(&f), 1);
    CHECK_EQ(f.dev.io_ret, 0);
    CHECK_EQ(vfu_test_server_run_errors(&f.srv), 0);
    CHECK_EQ(vfu_test_server_disconnects(&f.srv), 0);
out:
    fixture_close(&f);
    client_mem_free(&mem);
}

static void
test_client_leaves_during_wait(void)
{
    struct fixture f;
    struct client_mem mem = { 0 };
    struct held_reply h = { .hang_up = true };
    uint8_t buf[16];

    if (!fixture_open(&f, "dmamsg-leave", NULL) ||
        !client_mem_map(&f, &mem, 0x10000, PAGE, false, true, 0x0f)) {
        goto out;
    }
    f.c.server_cmd_fn = hold_reply;
    f.c.server_cmd_opaque = &h;
    set_op(&f, 0x10000, sizeof(buf), false, 0, buf);
    CHECK_OK(ring(&f, DOORBELL_MAKE_SGL));
    CHECK_EQ(ring(&f, DOORBELL_SGL_IO), -1);
    CHECK(h.held);
    vfu_test_client_close(&f.c);
    CHECK_OK(vfu_test_server_wait_disconnects(&f.srv, 1, 2000));
    sync_with_server(&f);
    CHECK_EQ(f.dev.io_ret, -1);
    CHECK_EQ(f.dev.io_errno, ENOTCONN);
    /* The next client is served. */
    REQUIRE_OK(vfu_test_client_open(&f.c, f.path));
    CHECK_OK(ring(&f, DOORBELL_LOG));
out:
    fixture_close(&f);
    client_mem_free(&mem);
}

static bool
done_at_least(void *arg)
{
    struct fixture *f = arg;

    return atomic_load(&f->dev.nr_done) >= 3;
}

static void
test_async(void)
{
    struct fixture f;
    struct client_mem mem = { 0 };
    uint8_t *bufs[3];
    unsigned long served;

    for (int i = 0; i < 3; i++) {
        bufs[i] = calloc(1, 3 * PAGE);
        REQUIRE(bufs[i] != NULL);
    }
    if (!fixture_open(&f, "dmamsg-async",
                      "{\"capabilities\":{\"max_msg_fds\":16,"
                      "\"max_data_xfer_size\":4096}}") ||
        !client_mem_map(&f, &mem, 0x10000, 8 * PAGE, false, true, 0x0f)) {
        goto out;
    }
    /*
     * Three in flight before the client reads anything: a read, a write, and
     * a read whose second message the client refuses.
     */
    set_op(&f, 0x10001, 3 * PAGE, false, 0, bufs[0]);
    CHECK_OK(vfu_test_server_call(&f.srv, call_async_start, NULL));
    fill(bufs[1], 2 * PAGE, 0x99);
    set_op(&f, 0x14000, 2 * PAGE, true, 0, bufs[1]);
    CHECK_OK(vfu_test_server_call(&f.srv, call_async_start, NULL));
    set_op(&f, 0x15000, 2 * PAGE, false, 0, bufs[2]);
    CHECK_OK(vfu_test_server_call(&f.srv, call_async_start, NULL));
    CHECK_EQ(atomic_load(&f.dev.nr_done), 0);
    CHECK_OK(vfu_test_client_del_dma_window(&f.c, 0x10000));
    REQUIRE_OK(vfu_test_client_add_dma_window(&f.c, 0x10000, mem.ptr, 6 * PAGE));

    served = f.c.server_cmds;
    CHECK_EQ(vfu_test_client_serve(&f.c, 100), 3 + 2 + 2);
    CHECK_EQ(f.c.server_cmds - served, 7);
    CHECK(vfu_test_wait_until(done_at_least, &f, 2000));
    sync_with_server(&f);
    REQUIRE_EQ(atomic_load(&f.dev.nr_done), 3);
    CHECK_EQ(f.dev.done[0].error, 0);
    CHECK_EQ(f.dev.done[1].error, 0);
    CHECK_EQ(f.dev.done[2].error, EFAULT);
    CHECK_MEM(bufs[0], mem.ptr + 1, 3 * PAGE);
    CHECK_MEM(mem.ptr + 4 * PAGE, bufs[1], 2 * PAGE);
    CHECK_MEM(bufs[2], mem.ptr + 5 * PAGE, PAGE);
    CHECK_EQ(vfu_test_server_run_errors(&f.srv), 0);
    /* The device serves on. */
    CHECK_OK(ring(&f, DOORBELL_LOG));
out:
    fixture_close(&f);
    client_mem_free(&mem);
    for (int i = 0; i < 3; i++) {
        free(bufs[i]);
    }
}

static bool
done_at_least_four(void *arg)
{
    struct fixture *f = arg;

    return atomic_load(&f->dev.nr_done) >= 4;
}

/*
 * A burst of asynchronous transfers larger than the window (DMA_INFLIGHT_MAX)
 * and than the socket's buffer: messages queue and go out in batches, the
 * ones the window held back go as replies come (oldest transfer first), and
 * every transfer ends once, in order, with its data.
 */
static void
test_async_burst(void)
{
    const size_t part = (3u << 20) / 2;
    const uint64_t base = 0x100000;
    struct fixture f;
    struct client_mem mem = { 0 };
    uint8_t *bufs[4];
    unsigned long served;

    for (int i = 0; i < 4; i++) {
        bufs[i] = malloc(part);
        REQUIRE(bufs[i] != NULL);
        fill(bufs[i], part, (uint8_t)(0x31 * (i + 1)));
    }
    if (!fixture_open(&f, "dmamsg-burst",
                      "{\"capabilities\":{\"max_msg_fds\":16,"
                      "\"max_data_xfer_size\":4096}}") ||
        !client_mem_map(&f, &mem, base, 4 * part, false, true, 0x5c)) {
        goto out;
    }
    /* Writes to parts 0 and 2, reads of parts 1 and 3: 6 MiB, three windows. */
    for (int i = 0; i < 4; i++) {
        set_op(&f, base + i * part, part, i % 2 == 0, 0, bufs[i]);
        CHECK_OK(vfu_test_server_call(&f.srv, call_async_start, NULL));
        CHECK_EQ(f.dev.async_ret, 0);
    }
    CHECK_EQ(atomic_load(&f.dev.nr_done), 0);
    served = f.c.server_cmds;
    CHECK_EQ(vfu_test_client_serve(&f.c, 500), 4 * part / 4096);
    CHECK_EQ(f.c.server_cmds - served, 4 * part / 4096);
    CHECK(vfu_test_wait_until(done_at_least_four, &f, 5000));
    sync_with_server(&f);
    REQUIRE_EQ(atomic_load(&f.dev.nr_done), 4);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(f.dev.done[i].error, 0);
        CHECK_EQ(f.dev.done[i].seq, (unsigned)i + 1);
    }
    for (int i = 0; i < 4; i += 2) {
        CHECK_MEM(mem.ptr + i * part, bufs[i], part);
        CHECK_MEM(bufs[i + 1], mem.ptr + (i + 1) * part, part);
    }
    CHECK_EQ(vfu_test_server_run_errors(&f.srv), 0);
    /* Nothing is left in flight: the device serves on. */
    CHECK_OK(ring(&f, DOORBELL_LOG));
out:
    fixture_close(&f);
    client_mem_free(&mem);
    for (int i = 0; i < 4; i++) {
        free(bufs[i]);
    }
}

/* Holds the first DMA command, and answers it just before the second. */
struct pair {
    bool holding;
    struct vfio_user_header hdr;
    uint8_t payload[16];
};

static int
answer_in_pairs(struct vfu_test_client *c, int fd, const struct vfio_user_header *hdr,
                const void *payload, size_t len, const int *fds, size_t nfds, void *opaque)
{
    struct pair *p = opaque;

    if (!p->holding) {
        p->holding = true;
        p->hdr = *hdr;
        memcpy(p->payload, payload, sizeof(p->payload));
        return 0;
    }
    p->holding = false;
    if (vfu_test_serve_dma_cmd(c, fd, &p->hdr, p->payload, sizeof(p->payload)) < 0) {
        return -1;
    }
    return vfu_test_serve_dma_cmd(c, fd, hdr, payload, len);
}

/*
 * A blocking transfer that sees replies meant for an asynchronous one
 * leaves them to the run loop: that one's callback runs after it.
 */
static void
test_async_replies_during_blocking_wait(void)
{
    struct fixture f;
    struct client_mem mem = { 0 };
    struct pair pair = { 0 };
    uint8_t async_buf[64], sync_buf[64];

    if (!fixture_open(&f, "dmamsg-mixed", NULL) ||
        !client_mem_map(&f, &mem, 0x10000, PAGE, false, true, 0x0f)) {
        goto out;
    }
    f.c.server_cmd_fn = answer_in_pairs;
    f.c.server_cmd_opaque = &pair;
    set_op(&f, 0x10100, sizeof(async_buf), false, 0, async_buf);
    CHECK_OK(vfu_test_server_call(&f.srv, call_async_start, NULL));
    set_op(&f, 0x10200, sizeof(sync_buf), false, 0, sync_buf);
    /* The async reply reaches the server first, during the blocking wait. */
    CHECK_EQ(sgl_io(&f), 2);
    CHECK_EQ(f.dev.io_ret, 0);
    CHECK_MEM(sync_buf, mem.ptr + 0x200, sizeof(sync_buf));
    CHECK_OK(ring(&f, DOORBELL_LOG));
    sync_with_server(&f);
    REQUIRE_EQ(atomic_load(&f.dev.nr_done), 1);
    CHECK_EQ(f.dev.done[0].error, 0);
    CHECK_GT(f.dev.done[0].seq, f.dev.io_seq);
    CHECK_MEM(async_buf, mem.ptr + 0x100, sizeof(async_buf));
out:
    fixture_close(&f);
    client_mem_free(&mem);
}

static void
test_async_ends_with_the_client(void)
{
    struct fixture f;
    struct client_mem mem = { 0 }, mem2 = { 0 };
    uint8_t buf[64];

    if (!fixture_open(&f, "dmamsg-async-end", NULL) ||
        !client_mem_map(&f, &mem, 0x10000, PAGE, false, true, 0x0f)) {
        goto out;
    }
    /* The client leaves without answering. */
    set_op(&f, 0x10000, sizeof(buf), false, 0, buf);
    CHECK_OK(vfu_test_server_call(&f.srv, call_async_start, NULL));
    vfu_test_client_close(&f.c);
    CHECK_OK(vfu_test_server_wait_disconnects(&f.srv, 1, 2000));
    sync_with_server(&f);
    REQUIRE_EQ(atomic_load(&f.dev.nr_done), 1);
    CHECK_EQ(f.dev.done[0].error, ENOTCONN);
    /* No client: refused at once. */
    CHECK_EQ(vfu_test_server_call(&f.srv, call_async_start, NULL), -ENOTCONN);

    /* The context goes away with a transfer in flight. */
    REQUIRE_OK(vfu_test_client_open(&f.c, f.path));
    REQUIRE(client_mem_map(&f, &mem2, 0x10000, PAGE, false, true, 0x0f));
    CHECK_OK(vfu_test_server_call(&f.srv, call_async_start, NULL));
    vfu_test_server_stop(&f.srv);
    CHECK_EQ(atomic_load(&f.dev.nr_done), 1);
    vfu_destroy_ctx(f.ctx);
    f.ctx = NULL;
    CHECK_EQ(atomic_load(&f.dev.nr_done), 2);
    CHECK_EQ(f.dev.done[1].error, ENOTCONN);
out:
    fixture_close(&f);
    client_mem_free(&mem);
    client_mem_free(&mem2);
}

static void
test_async_argument_errors(void)
{
    struct fixture f;
    struct client_mem ro = { 0 };
    uint8_t buf[8];

    if (!fixture_open(&f, "dmamsg-async-args", NULL) ||
        !client_mem_map(&f, &ro, 0x10000, PAGE, false, false, 0x0f)) {
        goto out;
    }
    vfu_test_server_stop(&f.srv);
    CHECK_EQ(dma_transfer_start(f.ctx, 0x10000, 0, buf, false, on_done, NULL), -EINVAL);
    CHECK_EQ(dma_transfer_start(f.ctx, 0x10000, 8, NULL, false, on_done, NULL), -EINVAL);
    CHECK_EQ(dma_transfer_start(f.ctx, 0x10000, 8, buf, false, NULL, NULL), -EINVAL);
    CHECK_EQ(dma_transfer_start(f.ctx, 0x10000, 8, buf, true, on_done, NULL), -EACCES);
    CHECK_EQ(dma_transfer_start(f.ctx, 0x10ff9, 8, buf, false, on_done, NULL), -ENOENT);
    CHECK_EQ(dma_transfer_start(f.ctx, UINT64_MAX - 3, 8, buf, false, on_done, NULL), -ENOENT);
    CHECK_EQ(atomic_load(&f.dev.nr_done), 0);
out:
    fixture_close(&f);
    client_mem_free(&ro);
}

/*
 * Without the harness: a blocking transfer outside vfu_run_ctx leaves the
 * requests it received waiting, and the poll fd must say so even though the
 * socket has nothing new.
 */
struct client_thread {
    struct vfu_test_client *c;
    int served;
};

static void *
client_serves(void *arg)
{
    struct client_thread *t = arg;

    t->served = vfu_test_client_serve(t->c, 500);
    return NULL;
}

static bool
poll_fd_readable(vfu_ctx_t *ctx)
{
    struct pollfd pfd = { .fd = vfu_get_poll_fd(ctx), .events = POLLIN };

    return poll(&pfd, 1, 0) == 1;
}

static void
test_poll_fd_wakes_for_deferred_requests(void)
{
    static const struct {
        struct vfio_user_header hdr;
        struct vfio_user_version v;
    } __attribute__((packed)) version = {
        .hdr = { .msg_id = 1, .cmd = VFIO_USER_VERSION, .msg_size = sizeof(version) },
    };
    struct fixture f;
    struct client_mem mem = { 0 };
    struct client_thread t = { .c = &f.c };
    unsigned next_value = 1;
    pthread_t thread;
    uint8_t buf[32];
    char reply[512];
    size_t len;
    struct vfio_user_header hdr;

    memset(&f, 0, sizeof(f));
    vfu_test_sock_path(f.path, sizeof(f.path), "dmamsg-wake");
    f.ctx = vfu_create_ctx(VFU_TRANS_SOCK, f.path, LIBVFIO_USER_FLAG_ATTACH_NB, &f.dev,
                           VFU_DEV_TYPE_PCI);
    REQUIRE(f.ctx != NULL);
    vfu_setup_log(f.ctx, vfu_test_log_stderr, LOG_DEBUG);
    REQUIRE_OK(vfu_pci_init(f.ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0));
    REQUIRE_OK(vfu_setup_region(f.ctx, VFU_PCI_DEV_BAR0_REGION_IDX, PAGE, bar_access,
                                VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0));
    REQUIRE_OK(vfu_setup_device_dma(f.ctx, 4, NULL, NULL));
    REQUIRE_OK(vfu_realize_ctx(f.ctx));
    REQUIRE_OK(vfu_test_client_connect(&f.c, f.path, -1));
    REQUIRE_OK(vfu_test_send_raw(&f.c, &version, sizeof(version), NULL, 0));
    vfu_test_sleep_ms(10);
    REQUIRE_OK(vfu_attach_ctx(f.ctx));
    REQUIRE_OK(vfu_test_recv_msg(&f.c, &hdr, reply, sizeof(reply), &len, NULL, NULL));
    mem.fd = -1;
    mem.size = PAGE;
    mem.ptr = calloc(1, PAGE);
    REQUIRE(mem.ptr != NULL);
    mem.ptr[5] = 0x5a;
    REQUIRE_OK(vfu_test_client_add_dma_window(&f.c, 0x10000, mem.ptr, PAGE));
    {
        struct vfio_user_dma_map map = {
            .argsz = sizeof(map),
            .addr = 0x10000,
            .size = PAGE,
            .flags = VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE,
        };

        REQUIRE(vfu_test_send_cmd(&f.c, VFIO_USER_DMA_MAP, 0, &map, sizeof(map), NULL, 0) >= 0);
        vfu_test_sleep_ms(10);
        CHECK_EQ(vfu_run_ctx(f.ctx), 1);
        REQUIRE_OK(vfu_test_recv_msg(&f.c, &hdr, NULL, 0, &len, NULL, NULL));
    }
    CHECK(!poll_fd_readable(f.ctx));

    f.c.server_cmd_fn = serve_after_writes;
    f.c.server_cmd_opaque = &next_value;
    REQUIRE_OK(pthread_create(&thread, NULL, client_serves, &t));
    CHECK_EQ(dma_transfer_wait(f.ctx, 0x10000, sizeof(buf), buf, false), 0);
    pthread_join(thread, NULL);
    CHECK_EQ(t.served, 1);
    CHECK_EQ(buf[5], 0x5a);
    /* Three posted writes wait in the library, none in the socket. */
    CHECK(poll_fd_readable(f.ctx));
    CHECK_EQ(f.dev.nr_log, 0);
    CHECK_EQ(vfu_run_ctx(f.ctx), 3);
    CHECK_EQ(f.dev.nr_log, 3);
    CHECK(!poll_fd_readable(f.ctx));
    vfu_test_client_close(&f.c);
    vfu_destroy_ctx(f.ctx);
    free(mem.ptr);
}

/* A context in blocking mode, served by a thread of its own. */
struct blocking_server {
    vfu_ctx_t *ctx;
    int attach_ret;
    int run_errno;
};

static void *
serve_blocking(void *arg)
{
    struct blocking_server *b = arg;

    b->attach_ret = vfu_attach_ctx(b->ctx);
    if (b->attach_ret == 0 && vfu_run_ctx(b->ctx) < 0) {
        b->run_errno = errno;
    }
    return NULL;
}

static void
test_blocking_mode(void)
{
    struct fixture f;
    struct client_mem mem = { 0 };
    struct blocking_server b = { 0 };
    pthread_t thread;
    uint8_t buf[3 * PAGE];

    memset(&f, 0, sizeof(f));
    f.c.fd = -1;
    vfu_test_sock_path(f.path, sizeof(f.path), "dmamsg-blocking");
    b.ctx = vfu_create_ctx(VFU_TRANS_SOCK, f.path, 0, &f.dev, VFU_DEV_TYPE_PCI);
    REQUIRE(b.ctx != NULL);
    vfu_setup_log(b.ctx, vfu_test_log_stderr, LOG_DEBUG);
    REQUIRE_OK(vfu_pci_init(b.ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0));
    REQUIRE_OK(vfu_setup_region(b.ctx, VFU_PCI_DEV_BAR0_REGION_IDX, PAGE, bar_access,
                                VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0));
    REQUIRE_OK(vfu_setup_device_dma(b.ctx, 4, NULL, NULL));
    REQUIRE_OK(vfu_realize_ctx(b.ctx));
    REQUIRE_OK(pthread_create(&thread, NULL, serve_blocking, &b));
    if (CHECK_OK(vfu_test_client_connect(&f.c, f.path, -1)) &&
        CHECK_EQ(vfu_test_negotiate(&f.c, 0, 1,
                                    "{\"capabilities\":{\"max_msg_fds\":16,"
                                    "\"max_data_xfer_size\":4096}}"),
                 0) &&
        client_mem_map(&f, &mem, 0x10000, 4 * PAGE, false, true, 0x2b)) {
        unsigned long before = f.c.server_cmds;

        /* The device's fields are read by the client thread after each reply. */
        set_op(&f, 0x10010, sizeof(buf), false, 0, buf);
        CHECK_OK(ring(&f, DOORBELL_MAKE_SGL));
        CHECK_OK(ring(&f, DOORBELL_SGL_IO));
        CHECK_EQ(f.c.server_cmds - before, 3);
        CHECK_EQ(f.dev.io_ret, 0);
        CHECK_MEM(buf, mem.ptr + 0x10, sizeof(buf));
    }
    vfu_test_client_close(&f.c);
    pthread_join(thread, NULL);
    CHECK_EQ(b.attach_ret, 0);
    CHECK_EQ(b.run_errno, ENOTCONN);
    vfu_destroy_ctx(b.ctx);
    client_mem_free(&mem);
}

int
main(void)
{
    check_watchdog(120);
    RUN_TEST(test_sgl_through_messages);
    RUN_TEST(test_chunks);
    RUN_TEST(test_sgl_spanning_mixed_mappings);
    RUN_TEST(test_refusals);
    RUN_TEST(test_malformed_replies);
    RUN_TEST(test_requests_during_wait);
    RUN_TEST(test_flood_during_wait);
    RUN_TEST(test_timeout_and_late_reply);
    RUN_TEST(test_client_leaves_during_wait);
    RUN_TEST(test_async);
    RUN_TEST(test_async_burst);
    RUN_TEST(test_async_replies_during_blocking_wait);
    RUN_TEST(test_async_ends_with_the_client);
    RUN_TEST(test_async_argument_errors);
    RUN_TEST(test_poll_fd_wakes_for_deferred_requests);
    RUN_TEST(test_blocking_mode);
    return check_summary();
}
