/*
 * The receive path: several messages per read, messages larger than the
 * receive buffer arriving in pieces, and file descriptors kept with the
 * message they came with however the kernel groups the bytes. One thread
 * plays both sides, so what reaches the socket before each vfu_run_ctx is
 * exact.
 */
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user.h"
#include "private.h"

#define BAR_SIZE (64u << 10)
#define MAX_LOG 256

struct write_record {
    uint64_t offset;
    size_t count;
    uint8_t first, last;
};

struct map_record {
    uint64_t iova;
    bool has_vaddr;
    uint8_t first_byte;
};

struct device {
    uint8_t bar[BAR_SIZE];
    struct write_record writes[MAX_LOG];
    unsigned nr_writes;
    struct map_record maps[MAX_LOG];
    unsigned nr_maps;
};

static ssize_t
bar_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    struct device *dev = vfu_get_private(ctx);

    if (is_write) {
        memcpy(dev->bar + offset, buf, count);
        if (dev->nr_writes < MAX_LOG) {
            dev->writes[dev->nr_writes++] = (struct write_record){
                .offset = (uint64_t)offset,
                .count = count,
                .first = (uint8_t)buf[0],
                .last = (uint8_t)buf[count - 1],
            };
        }
    } else {
        memcpy(buf, dev->bar + offset, count);
    }
    return (ssize_t)count;
}

static void
on_dma_register(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    struct device *dev = vfu_get_private(ctx);

    if (dev->nr_maps < MAX_LOG) {
        dev->maps[dev->nr_maps++] = (struct map_record){
            .iova = (uint64_t)(uintptr_t)info->iova.iov_base,
            .has_vaddr = info->vaddr != NULL,
            .first_byte = info->vaddr != NULL ? *(uint8_t *)info->vaddr : 0,
        };
    }
}

struct fixture {
    char path[108];
    struct device *dev;
    vfu_ctx_t *ctx;
    struct vfu_test_client c;
};

/* A device with a BAR and DMA, and a client attached to it. */
static bool
fixture_open(struct fixture *f, const char *name)
{
    static const struct {
        struct vfio_user_header hdr;
        struct vfio_user_version v;
    } __attribute__((packed)) version = {
        .hdr = { .msg_id = 1, .cmd = VFIO_USER_VERSION, .msg_size = sizeof(version) },
    };
    struct vfio_user_header hdr;
    char reply[512];
    size_t len;

    memset(f, 0, sizeof(*f));
    f->c.fd = -1;
    f->dev = calloc(1, sizeof(*f->dev));
    if (!CHECK(f->dev != NULL)) {
        return false;
    }
    vfu_test_sock_path(f->path, sizeof(f->path), name);
    f->ctx = vfu_create_ctx(VFU_TRANS_SOCK, f->path, LIBVFIO_USER_FLAG_ATTACH_NB, f->dev,
                            VFU_DEV_TYPE_PCI);
    if (!CHECK(f->ctx != NULL)) {
        return false;
    }
    vfu_setup_log(f->ctx, vfu_test_log_stderr, LOG_DEBUG);
    if (!CHECK_OK(vfu_pci_init(f->ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0)) ||
        !CHECK_OK(vfu_setup_region(f->ctx, VFU_PCI_DEV_BAR0_REGION_IDX, BAR_SIZE, bar_access,
                                   VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0)) ||
        !CHECK_OK(vfu_setup_device_dma(f->ctx, 16, on_dma_register, NULL)) ||
        !CHECK_OK(vfu_realize_ctx(f->ctx)) ||
        !CHECK_OK(vfu_test_client_connect(&f->c, f->path, -1)) ||
        !CHECK_OK(vfu_test_send_raw(&f->c, &version, sizeof(version), NULL, 0))) {
        return false;
    }
    vfu_test_sleep_ms(10);
    return CHECK_OK(vfu_attach_ctx(f->ctx)) &&
           CHECK_OK(vfu_test_recv_msg(&f->c, &hdr, reply, sizeof(reply), &len, NULL, NULL));
}

static void
fixture_close(struct fixture *f)
{
    vfu_test_client_close(&f->c);
    vfu_destroy_ctx(f->ctx);
    free(f->dev);
}

/* A REGION_WRITE to BAR0 without a reply, as bytes to send. */
static size_t
posted_write(uint8_t *out, uint16_t id, uint64_t offset, const void *data, uint32_t count)
{
    struct vfio_user_header hdr = {
        .msg_id = id,
        .cmd = VFIO_USER_REGION_WRITE,
        .msg_size = (uint32_t)(sizeof(hdr) + sizeof(struct vfio_user_region_access) + count),
        .flags = VFIO_USER_F_NO_REPLY,
    };
    struct vfio_user_region_access ra = {
        .offset = offset,
        .region = VFU_PCI_DEV_BAR0_REGION_IDX,
        .count = count,
    };

    memcpy(out, &hdr, sizeof(hdr));
    memcpy(out + sizeof(hdr), &ra, sizeof(ra));
    memcpy(out + sizeof(hdr) + sizeof(ra), data, count);
    return hdr.msg_size;
}

static int
send_posted_write(struct fixture *f, uint16_t id, uint64_t offset, uint8_t value)
{
    uint8_t msg[64];

    return vfu_test_send_raw(&f->c, msg, posted_write(msg, id, offset, &value, 1), NULL, 0);
}

/* A DMA_MAP (read/write) of a page at iova, with fd unless it is -1. */
static int
send_dma_map(struct fixture *f, uint16_t id, uint64_t iova, int fd)
{
    struct {
        struct vfio_user_header hdr;
        struct vfio_user_dma_map map;
    } __attribute__((packed)) m = {
        .hdr = { .msg_id = id, .cmd = VFIO_USER_DMA_MAP, .msg_size = sizeof(m) },
        .map = { .argsz = sizeof(m.map),
                 .flags = VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE,
                 .addr = iova,
                 .size = 4096 },
    };

    return vfu_test_send_raw(&f->c, &m, sizeof(m), fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
}

/* A page of client memory whose first byte is tag. */
static int
tagged_memfd(uint8_t tag)
{
    int fd = vfu_test_memfd(4096);

    if (fd >= 0 && pwrite(fd, &tag, 1, 0) != 1) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads n replies and checks they are successes for ids, in order. */
static void
expect_replies(struct fixture *f, const uint16_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct vfio_user_header hdr;
        size_t len;

        if (!CHECK_OK(vfu_test_recv_msg(&f->c, &hdr, NULL, 0, &len, NULL, NULL))) {
            return;
        }
        CHECK_EQ(hdr.msg_id, ids[i]);
        CHECK_EQ(hdr.flags, VFIO_USER_F_TYPE_REPLY);
    }
}

/*
 * The kernel joins the bytes of a message without fds to those of the next
 * message that has some, and ends the read after them: the fds belong to
 * that later message, not to the one the read began with.
 */
static void
test_fds_follow_their_message(void)
{
    static const uint16_t map_ids[] = { 2, 3, 5, 6, 8 };
    struct fixture f;
    int fd_a = tagged_memfd(0xa1), fd_b = tagged_memfd(0xb2);
    int fd_c = tagged_memfd(0xc3), fd_d = tagged_memfd(0xd4);
    int fds_before;

    REQUIRE(fd_a >= 0 && fd_b >= 0 && fd_c >= 0 && fd_d >= 0);
    if (!fixture_open(&f, "rx-fds")) {
        goto out;
    }
    fds_before = vfu_test_count_open_fds();
    /* Everything is in the socket before the server reads anything. */
    CHECK_OK(send_posted_write(&f, 1, 0, 0x11));
    CHECK_OK(send_dma_map(&f, 2, 0x10000, fd_a)); /* after a message without fds */
    CHECK_OK(send_dma_map(&f, 3, 0x20000, fd_b)); /* two with fds back to back */
    CHECK_OK(send_posted_write(&f, 4, 1, 0x22));
    CHECK_OK(send_dma_map(&f, 5, 0x30000, -1)); /* no fd: message mode */
    CHECK_OK(send_dma_map(&f, 6, 0x40000, fd_c));
    CHECK_OK(send_posted_write(&f, 7, 2, 0x33)); /* right behind one with an fd */
    CHECK_OK(send_dma_map(&f, 8, 0x50000, fd_d));
    vfu_test_sleep_ms(10);

    CHECK_EQ(vfu_run_ctx(f.ctx), 8);
    CHECK_EQ(vfu_run_ctx(f.ctx), 0);
    expect_replies(&f, map_ids, VFU_ARRAY_LEN(map_ids));
    REQUIRE_EQ(f.dev->nr_maps, 5);
    CHECK(f.dev->maps[0].has_vaddr);
    CHECK_EQ(f.dev->maps[0].first_byte, 0xa1);
    CHECK(f.dev->maps[1].has_vaddr);
    CHECK_EQ(f.dev->maps[1].first_byte, 0xb2);
    CHECK(!f.dev->maps[2].has_vaddr);
    CHECK_EQ(f.dev->maps[3].first_byte, 0xc3);
    CHECK_EQ(f.dev->maps[4].first_byte, 0xd4);
    REQUIRE_EQ(f.dev->nr_writes, 3);
    CHECK_EQ(f.dev->writes[0].first, 0x11);
    CHECK_EQ(f.dev->writes[1].first, 0x22);
    CHECK_EQ(f.dev->writes[2].first, 0x33);
    /* The mappings hold the files; no received fd stays open. */
    CHECK_EQ(vfu_test_count_open_fds(), fds_before);
out:
    fixture_close(&f);
    close(fd_a);
    close(fd_b);
    close(fd_c);
    close(fd_d);
}

/* Extra fds on a request are closed with it, and the next one gets none. */
static void
test_extra_fds_are_closed(void)
{
    struct fixture f;
    int fds[3];
    int fds_before;

    for (int i = 0; i < 3; i++) {
        fds[i] = tagged_memfd((uint8_t)(0x40 + i));
        REQUIRE(fds[i] >= 0);
    }
    if (!fixture_open(&f, "rx-extra-fds")) {
        goto out;
    }
    fds_before = vfu_test_count_open_fds();
    {
        uint8_t msg[64];
        size_t len = posted_write(msg, 1, 0, "\x55", 1);

        CHECK_OK(vfu_test_send_raw(&f.c, msg, len, fds, 3));
    }
    CHECK_OK(send_dma_map(&f, 2, 0x10000, -1));
    vfu_test_sleep_ms(10);
    CHECK_EQ(vfu_run_ctx(f.ctx), 2);
    expect_replies(&f, (const uint16_t[]){ 2 }, 1);
    REQUIRE_EQ(f.dev->nr_maps, 1);
    CHECK(!f.dev->maps[0].has_vaddr);
    CHECK_EQ(vfu_test_count_open_fds(), fds_before);
out:
    fixture_close(&f);
    for (int i = 0; i < 3; i++) {
        close(fds[i]);
    }
}

/* A burst of small requests is served by one call, in order. */
static void
test_burst(void)
{
    enum { COUNT = 200 };
    struct fixture f;
    uint8_t *stream = malloc(COUNT * 64);
    size_t len = 0;

    REQUIRE(stream != NULL);
    if (!fixture_open(&f, "rx-burst")) {
        goto out;
    }
    for (int i = 0; i < COUNT; i++) {
        uint8_t value = (uint8_t)i;

        len += posted_write(stream + len, (uint16_t)i, (uint64_t)i * 4, &value, 1);
    }
    CHECK_OK(vfu_test_send_raw(&f.c, stream, len, NULL, 0));
    vfu_test_sleep_ms(10);
    CHECK_EQ(vfu_run_ctx(f.ctx), COUNT);
    REQUIRE_EQ(f.dev->nr_writes, COUNT);
    for (int i = 0; i < COUNT; i++) {
        CHECK_EQ(f.dev->writes[i].offset, (uint64_t)i * 4);
        CHECK_EQ(f.dev->writes[i].first, (uint8_t)i);
    }
out:
    fixture_close(&f);
    free(stream);
}

/*
 * Messages around and beyond the receive buffer's size, arriving in pieces
 * between calls, each followed closely by a small one.
 */
static void
test_large_messages_in_pieces(void)
{
    static const uint32_t counts[] = {
        RX_BUF_SIZE - 32, /* exactly fills the buffer */
        RX_BUF_SIZE - 31, /* one byte more than it holds */
        40000,
        BAR_SIZE,
    };
    struct fixture f;
    uint8_t *msg = malloc(BAR_SIZE + 256);
    uint8_t *data = malloc(BAR_SIZE);

    REQUIRE(msg != NULL && data != NULL);
    if (!fixture_open(&f, "rx-large")) {
        goto out;
    }
    for (size_t k = 0; k < VFU_ARRAY_LEN(counts); k++) {
        size_t len, cuts[] = { 7, 100, 5000, 20000 };
        size_t sent = 0;
        unsigned writes = f.dev->nr_writes;

        for (uint32_t i = 0; i < counts[k]; i++) {
            data[i] = (uint8_t)(i * 13 + k);
        }
        len = posted_write(msg, (uint16_t)k, 0, data, counts[k]);
        len += posted_write(msg + len, 100, 8, "\x77", 1);
        for (size_t i = 0; i < VFU_ARRAY_LEN(cuts) && cuts[i] < len; i++) {
            CHECK_OK(vfu_test_send_raw(&f.c, msg + sent, cuts[i] - sent, NULL, 0));
            sent = cuts[i];
            vfu_test_sleep_ms(2);
            CHECK_EQ(vfu_run_ctx(f.ctx), 0);
        }
        CHECK_OK(vfu_test_send_raw(&f.c, msg + sent, len - sent, NULL, 0));
        vfu_test_sleep_ms(5);
        CHECK_MSG(vfu_run_ctx(f.ctx) == 2, "%u-byte write", counts[k]);
        REQUIRE_EQ(f.dev->nr_writes, writes + 2);
        CHECK_EQ(f.dev->writes[writes].count, counts[k]);
        CHECK_MEM(f.dev->bar + 8, "\x77", 1);
        CHECK_MEM(f.dev->bar, data, 8);
        CHECK_MEM(f.dev->bar + 9, data + 9, counts[k] - 9);
    }
out:
    fixture_close(&f);
    free(msg);
    free(data);
}

int
main(void)
{
    check_watchdog(60);
    RUN_TEST(test_fds_follow_their_message);
    RUN_TEST(test_extra_fds_are_closed);
    RUN_TEST(test_burst);
    RUN_TEST(test_large_messages_in_pieces);
    return check_summary();
}
