/*
 * Regions: vfu_setup_region's checks, GET_INFO, GET_REGION_INFO with sparse
 * mmap areas and the region fd, REGION_READ/WRITE of every size and every
 * bad request, REGION_WRITE_MULTI and GET_REGION_IO_FDS, over a real socket.
 */
#include <linux/kvm.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user.h"
#include "private.h"

#define BAR0_SIZE 0x1000u
#define BAR1_SIZE 0x100u
#define BAR2_SIZE (2u << 20)
#define BAR3_SIZE 0x2000u
#define BAR4_SIZE 0x4000u
#define BAR4_FD_OFFSET 0x1000u
#define BAR3_FD_OFFSET (BAR4_FD_OFFSET + BAR4_SIZE)
#define MEMFD_SIZE (BAR3_FD_OFFSET + BAR3_SIZE)
#define PAGE 0x1000u

/* What the device's callbacks saw last, and how they should behave. */
struct access_log {
    int calls;
    uint64_t offset;
    size_t count;
    bool is_write;
};

struct device {
    uint8_t bar0[BAR0_SIZE];
    uint8_t bar1[BAR1_SIZE];
    uint8_t *bar2;
    uint8_t bar4[BAR4_SIZE];
    struct access_log log[VFU_PCI_DEV_NUM_REGIONS];
    int fail_errno;       /* != 0: callbacks fail with it */
    bool short_count;     /* callbacks handle one byte less */
    uint64_t fail_offset; /* only accesses at this offset fail */
    bool fail_at_offset;
    int memfd;
    uint8_t *mem; /* the device's own mapping of memfd */
};

static struct device *
dev_of(vfu_ctx_t *ctx)
{
    return vfu_get_private(ctx);
}

static ssize_t
access_buf(vfu_ctx_t *ctx, int idx, uint8_t *mem, char *buf, size_t count, loff_t offset,
           bool is_write)
{
    struct device *dev = dev_of(ctx);
    struct access_log *log = &dev->log[idx];

    log->calls++;
    log->offset = (uint64_t)offset;
    log->count = count;
    log->is_write = is_write;
    if (dev->fail_errno != 0 && (!dev->fail_at_offset || dev->fail_offset == (uint64_t)offset)) {
        errno = dev->fail_errno;
        return -1;
    }
    if (is_write) {
        memcpy(mem + offset, buf, count);
    } else {
        memcpy(buf, mem + offset, count);
    }
    return dev->short_count ? (ssize_t)count - 1 : (ssize_t)count;
}

static ssize_t
bar0_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    return access_buf(ctx, 0, dev_of(ctx)->bar0, buf, count, offset, is_write);
}

static ssize_t
bar1_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    return access_buf(ctx, 1, dev_of(ctx)->bar1, buf, count, offset, is_write);
}

static ssize_t
bar2_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    return access_buf(ctx, 2, dev_of(ctx)->bar2, buf, count, offset, is_write);
}

static ssize_t
bar4_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    return access_buf(ctx, 4, dev_of(ctx)->bar4, buf, count, offset, is_write);
}

/*
 * BAR0 memory with a callback; BAR1 a read-only I/O BAR; BAR2 2 MiB; BAR3
 * wholly mappable; BAR4 with two sparse areas; BAR5 never set up; ROM of
 * size 0 with an fd; config space; VGA without a callback.
 */
static vfu_ctx_t *
make_device(const char *path, struct device *dev)
{
    struct iovec bar4_areas[] = {
        { .iov_base = (void *)(uintptr_t)0x1000, .iov_len = 0x1000 },
        { .iov_base = (void *)(uintptr_t)0x3000, .iov_len = 0x1000 },
    };
    vfu_ctx_t *ctx;

    dev->memfd = vfu_test_memfd(MEMFD_SIZE);
    if (dev->memfd < 0) {
        FAIL("memfd: %s", strerror(errno));
        return NULL;
    }
    dev->mem = mmap(NULL, MEMFD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, dev->memfd, 0);
    dev->bar2 = calloc(1, BAR2_SIZE);
    if (dev->mem == MAP_FAILED || dev->bar2 == NULL) {
        FAIL("device memory: %s", strerror(errno));
        return NULL;
    }
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, dev, VFU_DEV_TYPE_PCI);
    if (ctx == NULL) {
        FAIL("vfu_create_ctx: %s", strerror(errno));
        return NULL;
    }
    vfu_setup_log(ctx, vfu_test_log_stderr, LOG_DEBUG);
    CHECK_OK(vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0));
    vfu_pci_set_id(ctx, 0x1b36, 0x0100, 0, 0);
    CHECK_OK(vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, BAR0_SIZE, bar0_cb,
                              VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0));
    CHECK_OK(vfu_setup_region(ctx, VFU_PCI_DEV_BAR1_REGION_IDX, BAR1_SIZE, bar1_cb,
                              VFU_REGION_FLAG_READ, NULL, 0, -1, 0));
    CHECK_OK(vfu_setup_region(ctx, VFU_PCI_DEV_BAR2_REGION_IDX, BAR2_SIZE, bar2_cb,
                              VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0));
    CHECK_OK(vfu_setup_region(ctx, VFU_PCI_DEV_BAR3_REGION_IDX, BAR3_SIZE, NULL,
                              VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, dev->memfd,
                              BAR3_FD_OFFSET));
    CHECK_OK(vfu_setup_region(ctx, VFU_PCI_DEV_BAR4_REGION_IDX, BAR4_SIZE, bar4_cb,
                              VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, bar4_areas, 2, dev->memfd,
                              BAR4_FD_OFFSET));
    CHECK_OK(vfu_setup_region(ctx, VFU_PCI_DEV_ROM_REGION_IDX, 0, NULL, VFU_REGION_FLAG_READ, NULL,
                              0, dev->memfd, 0));
    CHECK_OK(vfu_setup_region(ctx, VFU_PCI_DEV_VGA_REGION_IDX, 0x1000, NULL, VFU_REGION_FLAG_RW,
                              NULL, 0, -1, 0));
    return ctx;
}

static void
free_device(vfu_ctx_t *ctx, struct device *dev)
{
    vfu_destroy_ctx(ctx);
    munmap(dev->mem, MEMFD_SIZE);
    close(dev->memfd);
    free(dev->bar2);
}

/* Connects a client to a freshly served device; false on failure. */
static bool
start(struct device *dev, vfu_ctx_t **ctx, struct vfu_test_server *srv, struct vfu_test_client *c,
      const char *name)
{
    char path[108];

    memset(dev, 0, sizeof(*dev));
    vfu_test_sock_path(path, sizeof(path), name);
    *ctx = make_device(path, dev);
    if (*ctx == NULL || !CHECK_OK(vfu_realize_ctx(*ctx)) ||
        !CHECK_OK(vfu_test_server_start(srv, *ctx))) {
        return false;
    }
    return CHECK_OK(vfu_test_client_open(c, path));
}

static void
stop(struct device *dev, vfu_ctx_t *ctx, struct vfu_test_server *srv, struct vfu_test_client *c)
{
    vfu_test_client_close(c);
    vfu_test_server_stop(srv);
    free_device(ctx, dev);
}

/* The server answers a plain request after whatever came before. */
static void
check_serving(struct vfu_test_client *c)
{
    struct vfio_user_device_info info = { 0 };

    CHECK_EQ(vfu_test_device_get_info(c, &info), 0);
    CHECK_EQ(info.num_regions, VFU_PCI_DEV_NUM_REGIONS);
}

/* Sends a raw payload for cmd and returns the reply's errno (0: success). */
static int
raw_request(struct vfu_test_client *c, uint16_t cmd, const void *req, size_t len, void *reply,
            size_t cap, size_t *reply_len)
{
    return vfu_test_request(c, cmd, req, len, NULL, 0, reply, cap, reply_len, NULL, NULL);
}

static int
setup(vfu_ctx_t *ctx, int idx, size_t size, vfu_region_access_cb_t *cb, int flags,
      struct iovec *areas, uint32_t nr, int fd)
{
    return vfu_setup_region(ctx, idx, size, cb, flags, areas, nr, fd, 0);
}

static void
test_setup_region_errors(void)
{
    struct iovec area = { .iov_base = (void *)(uintptr_t)0x800, .iov_len = 0x800 };
    struct iovec past_end = { .iov_base = (void *)(uintptr_t)0x800, .iov_len = 0x801 };
    struct iovec wraps = { .iov_base = (void *)UINTPTR_MAX, .iov_len = 2 };
    const int rw = VFU_REGION_FLAG_RW;
    const int mem = VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM;
    char path[108];
    vfu_ctx_t *ctx;

    vfu_test_sock_path(path, sizeof(path), "setup");
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, 0, NULL, VFU_DEV_TYPE_PCI);
    REQUIRE(ctx != NULL);

    CHECK_ERRNO(vfu_setup_region(NULL, 0, 0x1000, bar0_cb, mem, NULL, 0, -1, 0), EINVAL);
    CHECK_ERRNO(setup(ctx, -1, 0x1000, bar0_cb, mem, NULL, 0, -1), EINVAL);
    CHECK_ERRNO(setup(ctx, VFU_PCI_DEV_NUM_REGIONS, 0x1000, bar0_cb, mem, NULL, 0, -1), EINVAL);
    CHECK_ERRNO(setup(ctx, 0, 0x1000, bar0_cb, 0x40 | rw, NULL, 0, -1), EINVAL);
    CHECK_ERRNO(setup(ctx, 0, 0x1000, bar0_cb, VFU_REGION_FLAG_MEM, NULL, 0, -1), EINVAL);
    CHECK_ERRNO(setup(ctx, 0, 0x1000, NULL, mem | VFU_REGION_FLAG_ALWAYS_CB, NULL, 0, -1), EINVAL);
    CHECK_ERRNO(setup(ctx, 0, 0x1000, bar0_cb, mem, NULL, 1, 3), EINVAL);
    CHECK_ERRNO(setup(ctx, 0, 0x1000, bar0_cb, mem, &area, 0, 3), EINVAL);
    CHECK_ERRNO(setup(ctx, 0, 0x1000, bar0_cb, mem, &area, 1, -1), EINVAL);
    CHECK_ERRNO(setup(ctx, 0, 0x1000, bar0_cb, mem, &past_end, 1, 3), EINVAL);
    CHECK_ERRNO(setup(ctx, 0, 0x1000, bar0_cb, mem, &wraps, 1, 3), EINVAL);
    /* Config space: read-write, never memory. */
    CHECK_ERRNO(
        setup(ctx, VFU_PCI_DEV_CFG_REGION_IDX, 256, NULL, VFU_REGION_FLAG_READ, NULL, 0, -1),
        EINVAL);
    CHECK_ERRNO(setup(ctx, VFU_PCI_DEV_CFG_REGION_IDX, 256, NULL, mem, NULL, 0, -1), EINVAL);
    /* BAR sizes: powers of two, at least 16 (memory) or 4 (I/O). */
    CHECK_ERRNO(setup(ctx, 0, 0x1800, bar0_cb, mem, NULL, 0, -1), EINVAL);
    CHECK_ERRNO(setup(ctx, 0, 8, bar0_cb, mem, NULL, 0, -1), EINVAL);
    CHECK_ERRNO(setup(ctx, 0, 2, bar0_cb, rw, NULL, 0, -1), EINVAL);
    CHECK_OK(setup(ctx, 0, 16, bar0_cb, mem, NULL, 0, -1));
    CHECK_OK(setup(ctx, 0, 4, bar0_cb, rw, NULL, 0, -1));
    CHECK_OK(setup(ctx, 0, 0, bar0_cb, rw, NULL, 0, -1));
    /* Not a BAR: any size. */
    CHECK_OK(setup(ctx, VFU_PCI_DEV_VGA_REGION_IDX, 0x1800, NULL, rw, NULL, 0, -1));
    /* 64-bit BARs take their odd neighbour. */
    CHECK_ERRNO(setup(ctx, 1, 0x1000, bar0_cb, mem | VFU_REGION_FLAG_64_BITS, NULL, 0, -1), EINVAL);
    CHECK_OK(setup(ctx, 0, 0x1000, bar0_cb, mem | VFU_REGION_FLAG_64_BITS, NULL, 0, -1));
    CHECK_ERRNO(setup(ctx, 1, 0x1000, bar0_cb, mem, NULL, 0, -1), EINVAL);
    CHECK_ERRNO(setup(ctx, 1, 0, bar0_cb, mem, NULL, 0, -1), EINVAL);
    CHECK_OK(setup(ctx, 3, 0x1000, bar0_cb, mem, NULL, 0, -1));
    CHECK_ERRNO(setup(ctx, 2, 0x1000, bar0_cb, mem | VFU_REGION_FLAG_64_BITS, NULL, 0, -1), EINVAL);
    CHECK_OK(setup(ctx, 5, 0, bar0_cb, mem, NULL, 0, -1));
    CHECK_OK(setup(ctx, 4, 0x1000, bar0_cb, mem | VFU_REGION_FLAG_64_BITS, NULL, 0, -1));

    /* A failed setup leaves the region as it was; a good one replaces it. */
    CHECK_EQ(ctx->regions[0].size, 0x1000);
    CHECK_OK(vfu_setup_region(ctx, 0, 0x2000, bar1_cb, mem, &area, 1, 7, 0x5000));
    CHECK_EQ(ctx->regions[0].size, 0x2000);
    CHECK(ctx->regions[0].cb == bar1_cb);
    CHECK_EQ(ctx->regions[0].fd, 7);
    CHECK_EQ(ctx->regions[0].offset, 0x5000);
    CHECK_EQ(ctx->regions[0].nr_mmap_areas, 1);
    CHECK_OK(vfu_setup_region(ctx, 0, 0x1000, NULL, mem, NULL, 0, 7, 0));
    REQUIRE_EQ(ctx->regions[0].nr_mmap_areas, 1);
    CHECK(ctx->regions[0].mmap_areas[0].iov_base == NULL);
    CHECK_EQ(ctx->regions[0].mmap_areas[0].iov_len, 0x1000);
    CHECK_OK(vfu_setup_region(ctx, 0, 0x1000, NULL, mem, NULL, 0, -1, 0));
    CHECK_EQ(ctx->regions[0].nr_mmap_areas, 0);
    CHECK(ctx->regions[0].mmap_areas == NULL);
    vfu_destroy_ctx(ctx);
}

static void
test_device_info(void)
{
    struct vfio_user_device_info info = { 0 };
    struct vfu_test_server srv;
    struct vfu_test_client c;
    struct device dev;
    vfu_ctx_t *ctx;
    size_t len;

    if (!start(&dev, &ctx, &srv, &c, "info")) {
        return;
    }
    CHECK_EQ(vfu_test_device_get_info(&c, &info), 0);
    CHECK_EQ(info.argsz, 16);
    CHECK_EQ(info.flags, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET);
    CHECK_EQ(info.num_regions, 9);
    CHECK_EQ(info.num_irqs, 5);

    info.argsz = 15;
    CHECK_EQ(raw_request(&c, VFIO_USER_DEVICE_GET_INFO, &info, sizeof(info), NULL, 0, NULL),
             EINVAL);
    info.argsz = 16;
    CHECK_EQ(raw_request(&c, VFIO_USER_DEVICE_GET_INFO, &info, 8, NULL, 0, NULL), EINVAL);
    /* A larger argsz gets the 16 bytes there are. */
    info.argsz = 4096;
    CHECK_EQ(
        raw_request(&c, VFIO_USER_DEVICE_GET_INFO, &info, sizeof(info), &info, sizeof(info), &len),
        0);
    CHECK_EQ(len, 16);
    CHECK_EQ(info.argsz, 16);
    check_serving(&c);
    stop(&dev, ctx, &srv, &c);
}

struct region_reply {
    struct vfio_region_info info;
    struct vfio_region_info_cap_sparse_mmap sparse;
    struct vfio_region_sparse_mmap_area areas[4];
};

static int
region_info(struct vfu_test_client *c, uint32_t index, uint32_t argsz, struct region_reply *r,
            size_t *len, int *fd)
{
    memset(r, 0xee, sizeof(*r));
    return vfu_test_get_region_info(c, index, argsz, r, sizeof(*r), len, fd);
}

static void
test_region_info(void)
{
    struct vfu_test_server srv;
    struct vfu_test_client c;
    struct region_reply r;
    struct device dev;
    vfu_ctx_t *ctx;
    size_t len;
    int fd;

    if (!start(&dev, &ctx, &srv, &c, "region-info")) {
        return;
    }

    /* BAR0: plain memory BAR, trapped. */
    CHECK_EQ(region_info(&c, 0, 32, &r, &len, &fd), 0);
    CHECK_EQ(len, 32);
    CHECK_EQ(r.info.argsz, 32);
    CHECK_EQ(r.info.flags, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE);
    CHECK_EQ(r.info.index, 0);
    CHECK_EQ(r.info.cap_offset, 0);
    CHECK_EQ(r.info.size, BAR0_SIZE);
    CHECK_EQ(r.info.offset, 0);
    CHECK_EQ(fd, -1);

    /* BAR1: a read-only I/O BAR says so. */
    CHECK_EQ(region_info(&c, 1, 32, &r, &len, &fd), 0);
    CHECK_EQ(r.info.flags, VFIO_REGION_INFO_FLAG_READ);
    CHECK_EQ(r.info.size, BAR1_SIZE);

    /* Config space and VGA. */
    CHECK_EQ(region_info(&c, VFU_PCI_DEV_CFG_REGION_IDX, 32, &r, &len, &fd), 0);
    CHECK_EQ(r.info.flags, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE);
    CHECK_EQ(r.info.size, 256);
    CHECK_EQ(region_info(&c, VFU_PCI_DEV_VGA_REGION_IDX, 32, &r, &len, &fd), 0);
    CHECK_EQ(r.info.size, 0x1000);
    CHECK_EQ(fd, -1);

    /* BAR5 was never set up; the ROM has size 0 although it has an fd. */
    CHECK_EQ(region_info(&c, 5, 32, &r, &len, &fd), 0);
    CHECK_EQ(len, 32);
    CHECK_EQ(r.info.flags, 0);
    CHECK_EQ(r.info.size, 0);
    CHECK_EQ(region_info(&c, VFU_PCI_DEV_ROM_REGION_IDX, 200, &r, &len, &fd), 0);
    CHECK_EQ(len, 32);
    CHECK_EQ(r.info.argsz, 32);
    CHECK_EQ(r.info.flags, 0);
    CHECK_EQ(r.info.size, 0);
    CHECK_EQ(r.info.cap_offset, 0);
    CHECK_EQ(fd, -1);

    /* BAR3: an fd and no areas makes the whole BAR one mappable area. */
    CHECK_EQ(region_info(&c, 3, 64, &r, &len, &fd), 0);
    CHECK_EQ(len, 64);
    CHECK_EQ(r.info.argsz, 64);
    CHECK_EQ(r.info.flags, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
                               VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS);
    CHECK_EQ(r.info.cap_offset, 32);
    CHECK_EQ(r.info.offset, BAR3_FD_OFFSET);
    CHECK_EQ(r.sparse.header.id, VFIO_REGION_INFO_CAP_SPARSE_MMAP);
    CHECK_EQ(r.sparse.header.version, 1);
    CHECK_EQ(r.sparse.header.next, 0);
    CHECK_EQ(r.sparse.nr_areas, 1);
    CHECK_EQ(r.areas[0].offset, 0);
    CHECK_EQ(r.areas[0].size, BAR3_SIZE);
    CHECK(fd >= 0);
    if (fd >= 0) {
        uint8_t *p =
            mmap(NULL, BAR3_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)r.info.offset);

        CHECK(p != MAP_FAILED);
        if (p != MAP_FAILED) {
            p[0x10] = 0x5a;
            CHECK_EQ(dev.mem[BAR3_FD_OFFSET + 0x10], 0x5a);
            munmap(p, BAR3_SIZE);
        }
        close(fd);
    }

    /* BAR4: two sparse areas (upstream's test data: argsz 80). */
    CHECK_EQ(region_info(&c, 4, 80, &r, &len, &fd), 0);
    CHECK_EQ(len, 80);
    CHECK_EQ(r.info.argsz, 80);
    CHECK(r.info.flags & VFIO_REGION_INFO_FLAG_CAPS);
    CHECK_EQ(r.info.offset, BAR4_FD_OFFSET);
    CHECK_EQ(r.sparse.nr_areas, 2);
    CHECK_EQ(r.sparse.reserved, 0);
    CHECK_EQ(r.areas[0].offset, 0x1000);
    CHECK_EQ(r.areas[0].size, 0x1000);
    CHECK_EQ(r.areas[1].offset, 0x3000);
    CHECK_EQ(r.areas[1].size, 0x1000);
    CHECK(fd >= 0);
    if (fd >= 0) {
        for (int i = 0; i < 2; i++) {
            uint64_t off = r.info.offset + r.areas[i].offset;
            uint8_t *p =
                mmap(NULL, r.areas[i].size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)off);

            CHECK(p != MAP_FAILED);
            if (p != MAP_FAILED) {
                dev.mem[off + 7] = (uint8_t)(0x30 + i);
                CHECK_EQ(p[7], 0x30 + i);
                p[8] = (uint8_t)(0x40 + i);
                CHECK_EQ(dev.mem[off + 8], 0x40 + i);
                munmap(p, r.areas[i].size);
            }
        }
        close(fd);
    }

    /* Too small for the capability: no CAPS, no fd, but the size it needs. */
    CHECK_EQ(region_info(&c, 4, 79, &r, &len, &fd), 0);
    CHECK_EQ(len, 79);
    CHECK_EQ(r.info.argsz, 80);
    CHECK_EQ(r.info.flags,
             VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP);
    CHECK_EQ(r.info.cap_offset, 0);
    CHECK_EQ(fd, -1);
    CHECK_EQ(region_info(&c, 4, 32, &r, &len, &fd), 0);
    CHECK_EQ(len, 32);
    CHECK_EQ(r.info.argsz, 80);
    CHECK_EQ(fd, -1);
    /* Larger than needed: the reply is the full size. */
    CHECK_EQ(region_info(&c, 4, 4096, &r, &len, &fd), 0);
    CHECK_EQ(len, 80);
    CHECK(fd >= 0);
    if (fd >= 0) {
        close(fd);
    }

    /* Bad requests. */
    CHECK_EQ(region_info(&c, VFU_PCI_DEV_NUM_REGIONS, 32, &r, &len, &fd), EINVAL);
    CHECK_EQ(region_info(&c, UINT32_MAX, 32, &r, &len, &fd), EINVAL);
    CHECK_EQ(region_info(&c, 0, 31, &r, &len, &fd), EINVAL);
    CHECK_EQ(region_info(&c, 0, 0, &r, &len, &fd), EINVAL);
    {
        struct vfio_region_info req = { .argsz = 32, .index = 0 };

        CHECK_EQ(raw_request(&c, VFIO_USER_DEVICE_GET_REGION_INFO, &req, 31, NULL, 0, NULL),
                 EINVAL);
    }
    check_serving(&c);
    stop(&dev, ctx, &srv, &c);
}

static void
test_read_write_sizes(void)
{
    struct vfu_test_server srv;
    struct vfu_test_client c;
    struct device dev;
    vfu_ctx_t *ctx;
    uint8_t *big_in, *big_out;

    if (!start(&dev, &ctx, &srv, &c, "rw")) {
        return;
    }
    /* 1 to 8 bytes at offsets of every alignment reach the callback as such. */
    for (unsigned size = 1; size <= 8; size++) {
        for (uint64_t off = 0x100; off < 0x108; off++) {
            uint8_t in[8], out[8] = { 0 };

            for (unsigned i = 0; i < size; i++) {
                in[i] = (uint8_t)(size * 16 + off + i);
            }
            CHECK_EQ(vfu_test_region_write(&c, 0, off, size, in), 0);
            CHECK_EQ(dev.log[0].offset, off);
            CHECK_EQ(dev.log[0].count, size);
            CHECK(dev.log[0].is_write);
            CHECK_MEM(dev.bar0 + off, in, size);
            CHECK_EQ(vfu_test_region_read(&c, 0, off, size, out), 0);
            CHECK_EQ(dev.log[0].offset, off);
            CHECK_EQ(dev.log[0].count, size);
            CHECK(!dev.log[0].is_write);
            CHECK_MEM(out, in, size);
        }
    }
    /* The last bytes of a region. */
    CHECK_EQ(vfu_test_region_write_val(&c, 0, BAR0_SIZE - 8, 8, 0x1122334455667788ull), 0);
    CHECK_EQ(dev.log[0].offset, BAR0_SIZE - 8);

    /* Large accesses: 64 KiB and the 1 MiB limit, at an offset. */
    big_in = malloc(1u << 20);
    big_out = malloc(1u << 20);
    REQUIRE(big_in != NULL && big_out != NULL);
    for (size_t i = 0; i < (1u << 20); i++) {
        big_in[i] = (uint8_t)(i * 7 + (i >> 12));
    }
    for (uint32_t size = 1u << 16; size <= (1u << 20); size <<= 4) {
        uint64_t off = BAR2_SIZE - size - 0x1000;

        memset(big_out, 0, size);
        CHECK_EQ(vfu_test_region_write(&c, 2, off, size, big_in), 0);
        CHECK_EQ(dev.log[2].offset, off);
        CHECK_EQ(dev.log[2].count, size);
        CHECK_MEM(dev.bar2 + off, big_in, size);
        CHECK_EQ(vfu_test_region_read(&c, 2, off, size, big_out), 0);
        CHECK_EQ(dev.log[2].count, size);
        CHECK_MEM(big_out, big_in, size);
    }
    free(big_in);
    free(big_out);

    /* Count 0 succeeds with an empty reply and never reaches the device. */
    {
        struct vfio_user_region_access req = { .offset = 0x10, .region = 0 };
        int calls = dev.log[0].calls;
        size_t len = 99;

        CHECK_EQ(raw_request(&c, VFIO_USER_REGION_READ, &req, sizeof(req), NULL, 0, &len), 0);
        CHECK_EQ(len, 0);
        CHECK_EQ(raw_request(&c, VFIO_USER_REGION_WRITE, &req, sizeof(req), NULL, 0, &len), 0);
        CHECK_EQ(len, 0);
        req.region = 5;
        req.offset = 0;
        CHECK_EQ(raw_request(&c, VFIO_USER_REGION_READ, &req, sizeof(req), NULL, 0, &len), 0);
        CHECK_EQ(dev.log[0].calls, calls);
    }

    /* Region flags are reported, not enforced (as upstream): the read-only
     * BAR1's device sees the write. */
    CHECK_EQ(vfu_test_region_write_val(&c, 1, 4, 4, 0xabcd), 0);
    CHECK_EQ(dev.log[1].calls, 1);
    CHECK(dev.log[1].is_write);

    /* Config space goes to the PCI emulation. */
    {
        uint64_t id = 0;

        CHECK_EQ(vfu_test_cfg_read_val(&c, 0, 4, &id), 0);
        CHECK_EQ(id, 0x01001b36);
    }
    stop(&dev, ctx, &srv, &c);
}

/* A REGION_READ/WRITE request with an arbitrary header and data length. */
static int
access_request(struct vfu_test_client *c, uint16_t cmd, uint32_t region, uint64_t offset,
               uint32_t count, size_t data_len)
{
    size_t len = sizeof(struct vfio_user_region_access) + data_len;
    struct vfio_user_region_access *req = calloc(1, len);
    int ret;

    if (req == NULL) {
        return -1;
    }
    req->offset = offset;
    req->region = region;
    req->count = count;
    ret = raw_request(c, cmd, req, len, NULL, 0, NULL);
    free(req);
    return ret;
}

static void
test_read_write_errors(void)
{
    const uint16_t rd = VFIO_USER_REGION_READ;
    const uint16_t wr = VFIO_USER_REGION_WRITE;
    struct vfu_test_server srv;
    struct vfu_test_client c;
    struct device dev;
    vfu_ctx_t *ctx;
    uint8_t buf[8] = { 0 };
    int calls;

    if (!start(&dev, &ctx, &srv, &c, "rw-errors")) {
        return;
    }
    calls = dev.log[0].calls;

    /* Bad region index. */
    CHECK_EQ(vfu_test_region_read(&c, 9, 0, 4, buf), EINVAL);
    CHECK_EQ(vfu_test_region_write(&c, 9, 0, 4, buf), EINVAL);
    CHECK_EQ(vfu_test_region_read(&c, UINT32_MAX, 0, 4, buf), EINVAL);
    /* Out of range, including offsets that wrap. */
    CHECK_EQ(vfu_test_region_read(&c, 0, BAR0_SIZE - 3, 4, buf), EINVAL);
    CHECK_EQ(vfu_test_region_write(&c, 0, BAR0_SIZE - 3, 4, buf), EINVAL);
    CHECK_EQ(vfu_test_region_read(&c, 0, BAR0_SIZE, 1, buf), EINVAL);
    CHECK_EQ(vfu_test_region_read(&c, 0, UINT64_MAX, 1, buf), EINVAL);
    CHECK_EQ(vfu_test_region_write(&c, 0, UINT64_MAX, 4, buf), EINVAL);
    CHECK_EQ(vfu_test_region_read(&c, 0, UINT64_MAX - 2, 4, buf), EINVAL);
    CHECK_EQ(access_request(&c, rd, 0, UINT64_MAX, 0, 0), EINVAL);
    CHECK_EQ(access_request(&c, rd, 0, BAR0_SIZE + 1, 0, 0), EINVAL);
    /* The never set up BAR5 has nothing to access. */
    CHECK_EQ(vfu_test_region_read(&c, 5, 0, 1, buf), EINVAL);
    /* Config space ends at 256. */
    CHECK_EQ(vfu_test_cfg_read(&c, 254, 4, buf), EINVAL);
    /* More than 1 MiB. */
    CHECK_EQ(access_request(&c, rd, 2, 0, (1u << 20) + 1, 0), EINVAL);
    CHECK_EQ(access_request(&c, rd, 2, 0, UINT32_MAX, 0), EINVAL);
    /* A write's count must be the data it carries. */
    CHECK_EQ(access_request(&c, wr, 0, 0, 4, 3), EINVAL);
    CHECK_EQ(access_request(&c, wr, 0, 0, 4, 5), EINVAL);
    CHECK_EQ(access_request(&c, wr, 0, 0, 0, 1), EINVAL);
    CHECK_EQ(access_request(&c, wr, 2, 0, (1u << 20) + 1, 8), EINVAL);
    /* Shorter than the access header. */
    {
        struct vfio_user_region_access req = { .offset = 0, .region = 0, .count = 4 };

        CHECK_EQ(raw_request(&c, rd, &req, 8, NULL, 0, NULL), EINVAL);
        CHECK_EQ(raw_request(&c, rd, &req, 15, NULL, 0, NULL), EINVAL);
        CHECK_EQ(raw_request(&c, wr, &req, 12, NULL, 0, NULL), EINVAL);
    }
    /* A region without a callback cannot be accessed. */
    CHECK_EQ(vfu_test_region_read(&c, VFU_PCI_DEV_VGA_REGION_IDX, 0, 4, buf), EINVAL);
    CHECK_EQ(vfu_test_region_write(&c, VFU_PCI_DEV_VGA_REGION_IDX, 0, 4, buf), EINVAL);
    CHECK_EQ(vfu_test_region_read(&c, 3, 0, 4, buf), EINVAL);
    /* None of that reached the device. */
    CHECK_EQ(dev.log[0].calls, calls);

    /* The device's errno reaches the client verbatim. */
    dev.fail_errno = 0xbeef;
    CHECK_EQ(vfu_test_region_read(&c, 0, 0, 4, buf), 0xbeef);
    CHECK_EQ(vfu_test_region_write(&c, 0, 0, 4, buf), 0xbeef);
    dev.fail_errno = EIO;
    CHECK_EQ(vfu_test_region_write(&c, 2, 0x40, 8, buf), EIO);
    dev.fail_errno = 0;
    /* Handling fewer bytes than asked is an error. */
    dev.short_count = true;
    CHECK_EQ(vfu_test_region_read(&c, 0, 0, 4, buf), EINVAL);
    CHECK_EQ(vfu_test_region_write(&c, 0, 0, 8, buf), EINVAL);
    dev.short_count = false;

    CHECK_EQ(vfu_test_region_write_val(&c, 0, 0, 4, 0x12345678), 0);
    CHECK_EQ(vfu_test_region_read(&c, 0, 0, 4, buf), 0);
    CHECK_MEM(buf, "\x78\x56\x34\x12", 4);
    check_serving(&c);
    stop(&dev, ctx, &srv, &c);
}

/* REGION_WRITE_MULTI with arbitrary wr_cnt and n entries. */
static int
write_multi_raw(struct vfu_test_client *c, uint64_t wr_cnt, const struct vfu_test_write_entry *wrs,
                size_t n, uint64_t *done)
{
    uint8_t buf[8 + 8 * sizeof(*wrs)];
    size_t len;
    int ret;

    memcpy(buf, &wr_cnt, 8);
    if (n > 0) {
        memcpy(buf + 8, wrs, n * sizeof(*wrs));
    }
    ret = raw_request(c, VFIO_USER_REGION_WRITE_MULTI, buf, 8 + n * sizeof(*wrs), done,
                      sizeof(*done), &len);
    if (ret == 0 && len != sizeof(*done)) {
        FAIL("REGION_WRITE_MULTI reply of %zu bytes", len);
        return -1;
    }
    return ret;
}

static void
test_write_multi(void)
{
    struct vfu_test_write_entry wrs[4] = {
        { .offset = 0x10, .region = 0, .count = 1, .data = { 0xa1 } },
        { .offset = 0x21, .region = 0, .count = 4, .data = { 1, 2, 3, 4 } },
        { .offset = 0x38, .region = 2, .count = 8, .data = { 8, 7, 6, 5, 4, 3, 2, 1 } },
        { .offset = 0x40, .region = 0, .count = 2, .data = { 0x55, 0x66 } },
    };
    struct vfu_test_server srv;
    struct vfu_test_client c;
    struct device dev;
    vfu_ctx_t *ctx;
    uint64_t done = 0;
    uint64_t cmd = 0;

    if (!start(&dev, &ctx, &srv, &c, "multi")) {
        return;
    }
    CHECK_EQ(vfu_test_region_write_multi(&c, wrs, 4, &done), 0);
    CHECK_EQ(done, 4);
    CHECK_EQ(dev.bar0[0x10], 0xa1);
    CHECK_MEM(dev.bar0 + 0x21, wrs[1].data, 4);
    CHECK_MEM(dev.bar2 + 0x38, wrs[2].data, 8);
    CHECK_MEM(dev.bar0 + 0x40, wrs[3].data, 2);
    CHECK_EQ(dev.log[0].offset, 0x40);
    CHECK_EQ(dev.log[0].count, 2);
    CHECK_EQ(dev.log[0].calls, 3);
    CHECK_EQ(dev.log[2].calls, 1);

    /* Config space too: memory and bus master enable. */
    {
        struct vfu_test_write_entry cfg = {
            .offset = PCI_COMMAND,
            .region = VFU_PCI_DEV_CFG_REGION_IDX,
            .count = 2,
            .data = { PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER },
        };

        CHECK_EQ(vfu_test_region_write_multi(&c, &cfg, 1, &done), 0);
        CHECK_EQ(done, 1);
        CHECK_EQ(vfu_test_cfg_read_val(&c, PCI_COMMAND, 2, &cmd), 0);
        CHECK_EQ(cmd, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    }
    /* No writes at all. */
    CHECK_EQ(write_multi_raw(&c, 0, NULL, 0, &done), 0);
    CHECK_EQ(done, 0);

    /* Malformed: nothing is written, not even the good entries before. */
    memset(dev.bar0, 0, sizeof(dev.bar0));
    dev.log[0].calls = 0;
    CHECK_EQ(write_multi_raw(&c, 2, wrs, 1, &done), EINVAL);
    CHECK_EQ(write_multi_raw(&c, 1, wrs, 2, &done), EINVAL);
    CHECK_EQ(write_multi_raw(&c, 0, wrs, 1, &done), EINVAL);
    CHECK_EQ(write_multi_raw(&c, UINT64_MAX, wrs, 2, &done), EINVAL);
    /* 24 * (2 + 2^61) wraps to 48, the length of two entries. */
    CHECK_EQ(write_multi_raw(&c, 2 + (1ull << 61), wrs, 2, &done), EINVAL);
    {
        uint8_t partial[8 + 24 + 5];
        uint64_t one = 1;

        memcpy(partial, &one, 8);
        memcpy(partial + 8, wrs, 24);
        CHECK_EQ(
            raw_request(&c, VFIO_USER_REGION_WRITE_MULTI, partial, sizeof(partial), NULL, 0, NULL),
            EINVAL);
        CHECK_EQ(raw_request(&c, VFIO_USER_REGION_WRITE_MULTI, partial, 4, NULL, 0, NULL), EINVAL);
    }
    {
        struct vfu_test_write_entry bad[2] = { wrs[0], wrs[1] };

        bad[1].count = 9;
        CHECK_EQ(write_multi_raw(&c, 2, bad, 2, &done), EINVAL);
        bad[1] = wrs[1];
        bad[1].region = VFU_PCI_DEV_NUM_REGIONS;
        CHECK_EQ(write_multi_raw(&c, 2, bad, 2, &done), EINVAL);
        bad[1] = wrs[1];
        bad[1].offset = BAR0_SIZE - 2;
        CHECK_EQ(write_multi_raw(&c, 2, bad, 2, &done), EINVAL);
        bad[1].offset = UINT64_MAX;
        CHECK_EQ(write_multi_raw(&c, 2, bad, 2, &done), EINVAL);
    }
    CHECK_EQ(dev.log[0].calls, 0);
    CHECK_EQ(dev.bar0[0x10], 0);

    /* A failing write stops the rest and its errno is the answer. */
    dev.fail_errno = ENOSPC;
    dev.fail_at_offset = true;
    dev.fail_offset = 0x21;
    CHECK_EQ(write_multi_raw(&c, 4, wrs, 4, &done), ENOSPC);
    CHECK_EQ(dev.bar0[0x10], 0xa1);
    CHECK_EQ(dev.bar0[0x40], 0);
    CHECK_EQ(dev.log[0].calls, 2);
    dev.fail_errno = 0;
    dev.fail_at_offset = false;
    check_serving(&c);
    stop(&dev, ctx, &srv, &c);
}

static int
io_fds(struct vfu_test_client *c, uint32_t index, uint32_t argsz, void *reply, size_t cap,
       size_t *len, int *fds, size_t *nfds)
{
    return vfu_test_get_region_io_fds(c, index, argsz, reply, cap, len, fds, nfds);
}

static void
test_region_io_fds(void)
{
    struct {
        vfio_user_region_io_fds_reply_t head;
        vfio_user_sub_region_ioeventfd_t entries[3];
    } __attribute__((packed)) r;
    struct vfu_test_server srv;
    struct vfu_test_client c;
    struct device dev;
    char path[108];
    vfu_ctx_t *ctx;
    int efd[2], vga_efd[SERVER_MAX_MSG_FDS + 1], fds[VFU_TEST_MAX_FDS];
    size_t len, nfds;

    memset(&dev, 0, sizeof(dev));
    vfu_test_sock_path(path, sizeof(path), "io-fds");
    ctx = make_device(path, &dev);
    REQUIRE(ctx != NULL);
    efd[0] = vfu_test_eventfd_new();
    efd[1] = vfu_test_eventfd_new();
    REQUIRE(efd[0] >= 0 && efd[1] >= 0);
    /* Two on BAR0 sharing one eventfd, one on BAR2. */
    CHECK_OK(vfu_create_ioeventfd(ctx, 0, efd[0], 0x100, 4, 0, 0, -1, 0));
    CHECK_OK(vfu_create_ioeventfd(ctx, 0, efd[0], 0x200, 8, KVM_IOEVENTFD_FLAG_DATAMATCH, 0x1234,
                                  -1, 0));
    CHECK_OK(vfu_create_ioeventfd(ctx, 2, efd[1], 0x0, 4, 0, 0, -1, 0));
    /* BAR1: two eventfds; VGA: one more than a reply may carry. */
    CHECK_OK(vfu_create_ioeventfd(ctx, 1, efd[0], 0x0, 4, 0, 0, -1, 0));
    CHECK_OK(vfu_create_ioeventfd(ctx, 1, efd[1], 0x4, 4, 0, 0, -1, 0));
    for (int i = 0; i <= SERVER_MAX_MSG_FDS; i++) {
        vga_efd[i] = vfu_test_eventfd_new();
        CHECK_OK(vfu_create_ioeventfd(ctx, VFU_PCI_DEV_VGA_REGION_IDX, vga_efd[i], (size_t)i * 4, 4,
                                      0, 0, -1, 0));
    }
    REQUIRE_OK(vfu_realize_ctx(ctx));
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, path));

    /* Not enough room: the count and the size needed, no fds. */
    memset(&r, 0xee, sizeof(r));
    CHECK_EQ(io_fds(&c, 0, 16, &r, sizeof(r), &len, fds, &nfds), 0);
    CHECK_EQ(len, 16);
    CHECK_EQ(r.head.argsz, 16 + 2 * 48);
    CHECK_EQ(r.head.flags, 0);
    CHECK_EQ(r.head.index, 0);
    CHECK_EQ(r.head.count, 2);
    CHECK_EQ(nfds, 0);
    CHECK_EQ(io_fds(&c, 0, 16 + 2 * 48 - 1, &r, sizeof(r), &len, fds, &nfds), 0);
    CHECK_EQ(len, 16);
    CHECK_EQ(nfds, 0);

    /* Room enough: the entries (newest first) and one fd for both. */
    memset(&r, 0xee, sizeof(r));
    CHECK_EQ(io_fds(&c, 0, 4096, &r, sizeof(r), &len, fds, &nfds), 0);
    CHECK_EQ(len, 16 + 2 * 48);
    CHECK_EQ(r.head.count, 2);
    CHECK_EQ(r.entries[0].gpa_offset, 0x200);
    CHECK_EQ(r.entries[0].size, 8);
    CHECK_EQ(r.entries[0].fd_index, 0);
    CHECK_EQ(r.entries[0].type, VFIO_USER_IO_FD_TYPE_IOEVENTFD);
    CHECK_EQ(r.entries[0].flags, KVM_IOEVENTFD_FLAG_DATAMATCH);
    CHECK_EQ(r.entries[0].datamatch, 0x1234);
    CHECK_EQ(r.entries[0].shadow_offset, 0);
    CHECK_EQ(r.entries[1].gpa_offset, 0x100);
    CHECK_EQ(r.entries[1].size, 4);
    CHECK_EQ(r.entries[1].fd_index, 0);
    REQUIRE_EQ(nfds, 1);
    /* It is the device's eventfd. */
    CHECK_OK(vfu_test_eventfd_signal(fds[0], 3));
    CHECK_EQ(vfu_test_eventfd_read(efd[0]), 3);
    close(fds[0]);

    CHECK_EQ(io_fds(&c, 2, 16 + 48, &r, sizeof(r), &len, fds, &nfds), 0);
    CHECK_EQ(r.head.count, 1);
    CHECK_EQ(r.head.index, 2);
    REQUIRE_EQ(nfds, 1);
    close(fds[0]);

    CHECK_EQ(io_fds(&c, 1, 4096, &r, sizeof(r), &len, fds, &nfds), 0);
    CHECK_EQ(r.head.count, 2);
    CHECK_EQ(r.entries[0].fd_index, 0);
    CHECK_EQ(r.entries[1].fd_index, 1);
    REQUIRE_EQ(nfds, 2);
    close(fds[0]);
    close(fds[1]);
    /* More fds than a reply may carry. */
    CHECK_EQ(io_fds(&c, VFU_PCI_DEV_VGA_REGION_IDX, 4096, &r, sizeof(r), &len, fds, &nfds), ENOSPC);
    CHECK_EQ(io_fds(&c, VFU_PCI_DEV_VGA_REGION_IDX, 16, &r, sizeof(r), &len, fds, &nfds), 0);
    CHECK_EQ(r.head.count, SERVER_MAX_MSG_FDS + 1);

    /* No ioeventfds: an empty answer. */
    CHECK_EQ(io_fds(&c, 3, 4096, &r, sizeof(r), &len, fds, &nfds), 0);
    CHECK_EQ(len, 16);
    CHECK_EQ(r.head.argsz, 16);
    CHECK_EQ(r.head.count, 0);
    CHECK_EQ(nfds, 0);

    /* Bad requests. */
    CHECK_EQ(io_fds(&c, 9, 4096, &r, sizeof(r), &len, fds, &nfds), EINVAL);
    CHECK_EQ(io_fds(&c, 5, 4096, &r, sizeof(r), &len, fds, &nfds), EINVAL);
    CHECK_EQ(io_fds(&c, 0, 15, &r, sizeof(r), &len, fds, &nfds), EINVAL);
    CHECK_EQ(io_fds(&c, 0, (1u << 20) + 1, &r, sizeof(r), &len, fds, &nfds), EINVAL);
    {
        vfio_user_region_io_fds_request_t req = { .argsz = 4096, .index = 0 };

        req.flags = 1;
        CHECK_EQ(
            raw_request(&c, VFIO_USER_DEVICE_GET_REGION_IO_FDS, &req, sizeof(req), NULL, 0, NULL),
            EINVAL);
        req.flags = 0;
        req.count = 1;
        CHECK_EQ(
            raw_request(&c, VFIO_USER_DEVICE_GET_REGION_IO_FDS, &req, sizeof(req), NULL, 0, NULL),
            EINVAL);
        req.count = 0;
        CHECK_EQ(raw_request(&c, VFIO_USER_DEVICE_GET_REGION_IO_FDS, &req, 12, NULL, 0, NULL),
                 EINVAL);
    }
    check_serving(&c);
    vfu_test_client_close(&c);

    /* A client that takes one fd per message cannot get two. */
    REQUIRE_OK(vfu_test_client_connect(&c, path, -1));
    REQUIRE_OK(vfu_test_negotiate(&c, 0, 1, "{\"capabilities\":{\"max_msg_fds\":1}}"));
    CHECK_EQ(io_fds(&c, 0, 4096, &r, sizeof(r), &len, fds, &nfds), 0);
    REQUIRE_EQ(nfds, 1);
    close(fds[0]);
    CHECK_EQ(io_fds(&c, 1, 4096, &r, sizeof(r), &len, fds, &nfds), ENOSPC);
    check_serving(&c);

    vfu_test_client_close(&c);
    vfu_test_server_stop(&srv);
    free_device(ctx, &dev);
    close(efd[0]);
    close(efd[1]);
    for (int i = 0; i <= SERVER_MAX_MSG_FDS; i++) {
        close(vga_efd[i]);
    }
}

int
main(void)
{
    check_watchdog(100);
    RUN_TEST(test_setup_region_errors);
    RUN_TEST(test_device_info);
    RUN_TEST(test_region_info);
    RUN_TEST(test_read_write_sizes);
    RUN_TEST(test_read_write_errors);
    RUN_TEST(test_write_multi);
    RUN_TEST(test_region_io_fds);
    return check_summary();
}
