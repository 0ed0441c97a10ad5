/*
 * DMA_MAP / DMA_UNMAP over a real socket, the device's register and
 * unregister callbacks, and the scatter-gather API on the mappings.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user.h"
#include "private.h"

#define PAGE 4096
#define MAX_EVENTS 32
/* dma_sg_t fields as upstream's Python tests read them. */
#define SG_SIZE 40
#define SG_DMA_ADDR 0
#define SG_REGION 8
#define SG_LENGTH 16
#define SG_OFFSET 24
#define SG_WRITEABLE 32

struct dma_event {
    vfu_dma_info_t info;
    int first_byte; /* of vaddr at callback time, -1 if none */
};

struct device {
    struct dma_event reg[MAX_EVENTS];
    unsigned nr_reg;
    struct dma_event unreg[MAX_EVENTS];
    unsigned nr_unreg;
};

static void
record(struct dma_event *ev, vfu_dma_info_t *info)
{
    ev->info = *info;
    ev->first_byte =
        info->vaddr != NULL && (info->prot & PROT_READ) ? *(volatile uint8_t *)info->vaddr : -1;
}

static void
on_register(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    struct device *dev = vfu_get_private(ctx);

    if (dev->nr_reg < MAX_EVENTS) {
        record(&dev->reg[dev->nr_reg], info);
    }
    dev->nr_reg++;
}

static void
on_unregister(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    struct device *dev = vfu_get_private(ctx);

    /* Reading the memory here proves it is still mapped. */
    if (dev->nr_unreg < MAX_EVENTS) {
        record(&dev->unreg[dev->nr_unreg], info);
    }
    dev->nr_unreg++;
}

struct fixture {
    char path[108];
    struct device dev;
    vfu_ctx_t *ctx;
    struct vfu_test_server srv;
    struct vfu_test_client c;
};

/*
 * A device with DMA (max_regions maps) unless max_regions is 0, served, and
 * a client negotiated with json (NULL: the client's default).
 */
static bool
fixture_open(struct fixture *f, const char *name, size_t max_regions, const char *json)
{
    memset(f, 0, sizeof(*f));
    f->c.fd = -1;
    vfu_test_sock_path(f->path, sizeof(f->path), name);
    f->ctx = vfu_create_ctx(VFU_TRANS_SOCK, f->path, LIBVFIO_USER_FLAG_ATTACH_NB, &f->dev,
                            VFU_DEV_TYPE_PCI);
    if (!CHECK(f->ctx != NULL)) {
        return false;
    }
    vfu_setup_log(f->ctx, vfu_test_log_stderr, LOG_DEBUG);
    if (max_regions > 0 &&
        !CHECK_OK(vfu_setup_device_dma(f->ctx, max_regions, on_register, on_unregister))) {
        return false;
    }
    if (!CHECK_OK(vfu_realize_ctx(f->ctx)) || !CHECK_OK(vfu_test_server_start(&f->srv, f->ctx)) ||
        !CHECK_OK(vfu_test_client_connect(&f->c, f->path, -1))) {
        return false;
    }
    return CHECK_EQ(vfu_test_negotiate(&f->c, 0, 1, json ? json : VFU_TEST_DEFAULT_JSON), 0);
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

/* A memfd of size bytes, mapped here as the client sees it, filled with a
 * pattern derived from seed. */
static int
client_memory(size_t size, uint8_t seed, uint8_t **mem)
{
    int fd = vfu_test_memfd(size);

    *mem = NULL;
    if (fd < 0) {
        return -1;
    }
    *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (*mem == MAP_FAILED) {
        close(fd);
        *mem = NULL;
        return -1;
    }
    for (size_t i = 0; i < size; i++) {
        (*mem)[i] = (uint8_t)(seed + i * 7);
    }
    return fd;
}

static uint64_t
sg_u64(const uint8_t *sg, size_t off)
{
    uint64_t v;

    memcpy(&v, sg + off, sizeof(v));
    return v;
}

/* The permissions column of /proc/self/maps for addr ("" if unmapped). */
static void
maps_perms(const void *addr, char perms[5])
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    uintptr_t a = (uintptr_t)addr;

    perms[0] = '\0';
    if (f == NULL) {
        return;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        uintptr_t start, end;
        char p[5];
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %4s", &start, &end, p) == 3 && a >= start &&
            a < end) {
            memcpy(perms, p, 5);
            break;
        }
    }
    fclose(f);
}

/*
 * Open fds once the server is done with the last request: it closes the fds
 * a request brought after replying, so one more round trip settles that.
 */
static int
open_fds(struct vfu_test_client *c)
{
    struct vfio_user_device_info info;

    if (!CHECK_EQ(vfu_test_device_get_info(c, &info), 0)) {
        return -1;
    }
    return vfu_test_count_open_fds();
}

static bool
is_mapped(const void *addr)
{
    char perms[5];

    maps_perms(addr, perms);
    return perms[0] != '\0';
}

/* ----------------------------------------------- server-thread helpers */

struct sgl_call {
    uint64_t addr;
    size_t len;
    size_t max;
    int prot;
    _Alignas(8) uint8_t sgl[8 * SG_SIZE];
    struct iovec iov[8];
    size_t cnt;
    int flags;
    void *data;
};

static int
call_addr_to_sgl(vfu_ctx_t *ctx, void *arg)
{
    struct sgl_call *a = arg;

    errno = 0;
    return vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)(uintptr_t)a->addr, a->len, (dma_sg_t *)a->sgl,
                           a->max, a->prot);
}

static int
call_sgl_get(vfu_ctx_t *ctx, void *arg)
{
    struct sgl_call *a = arg;

    return vfu_sgl_get(ctx, (dma_sg_t *)a->sgl, a->iov, a->cnt, a->flags);
}

static int
call_sgl_read(vfu_ctx_t *ctx, void *arg)
{
    struct sgl_call *a = arg;

    return vfu_sgl_read(ctx, (dma_sg_t *)a->sgl, a->cnt, a->data, a->flags);
}

static int
call_sgl_write(vfu_ctx_t *ctx, void *arg)
{
    struct sgl_call *a = arg;

    return vfu_sgl_write(ctx, (dma_sg_t *)a->sgl, a->cnt, a->data, a->flags);
}

static int
call_is_mappable(vfu_ctx_t *ctx, void *arg)
{
    struct sgl_call *a = arg;

    return vfu_sg_is_mappable(ctx, (dma_sg_t *)a->sgl);
}

static int
call_sgl_put(vfu_ctx_t *ctx, void *arg)
{
    struct sgl_call *a = arg;

    vfu_sgl_mark_dirty(ctx, (dma_sg_t *)a->sgl, a->cnt);
    vfu_sgl_put(ctx, (dma_sg_t *)a->sgl, a->iov, a->cnt);
    return 0;
}

/* One entry for [addr, addr + len) with prot, or a failed check. */
static bool
sgl_of(struct fixture *f, struct sgl_call *a, uint64_t addr, size_t len, int prot)
{
    memset(a, 0, sizeof(*a));
    a->addr = addr;
    a->len = len;
    a->max = 8;
    a->prot = prot;
    a->cnt = 1;
    return CHECK_EQ(vfu_test_server_call(&f->srv, call_addr_to_sgl, a), 1);
}

/* ------------------------------------------------------------------ tests */

static void
test_map_memfd(void)
{
    struct fixture f;
    uint8_t *mem;
    int fd, nfds;
    const vfu_dma_info_t *info;

    if (!fixture_open(&f, "dma-memfd", 16, NULL)) {
        goto out;
    }
    fd = client_memory(4 * PAGE, 0x11, &mem);
    REQUIRE(fd >= 0);

    /* Page-aligned offset: the mapping is exactly the range. */
    nfds = open_fds(&f.c);
    CHECK_EQ(vfu_test_dma_map(&f.c, VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE,
                              PAGE, 0x100000, 2 * PAGE, fd),
             0);
    /* mmap mode keeps no fd: the received one was closed. */
    CHECK_EQ(open_fds(&f.c), nfds);
    REQUIRE_EQ(f.dev.nr_reg, 1);
    info = &f.dev.reg[0].info;
    CHECK_EQ((uintptr_t)info->iova.iov_base, 0x100000);
    CHECK_EQ(info->iova.iov_len, 2 * PAGE);
    CHECK(info->vaddr != NULL);
    CHECK(info->mapping.iov_base == info->vaddr);
    CHECK_EQ(info->mapping.iov_len, 2 * PAGE);
    CHECK_EQ(info->page_size, PAGE);
    CHECK_EQ(info->prot, PROT_READ | PROT_WRITE);
    CHECK_EQ(f.dev.reg[0].first_byte, mem[PAGE]);
    if (info->vaddr != NULL) {
        CHECK_MEM(info->vaddr, mem + PAGE, 2 * PAGE);
        /* Shared both ways. */
        ((uint8_t *)info->vaddr)[5] = 0xa5;
        CHECK_EQ(mem[PAGE + 5], 0xa5);
    }

    /* An offset inside a page: whole pages are mapped, vaddr points in. */
    CHECK_EQ(vfu_test_dma_map(&f.c, VFIO_USER_F_DMA_REGION_READ, 0x800, 0x200000, PAGE, fd), 0);
    REQUIRE_EQ(f.dev.nr_reg, 2);
    info = &f.dev.reg[1].info;
    CHECK_EQ((uintptr_t)info->vaddr - (uintptr_t)info->mapping.iov_base, 0x800);
    CHECK_EQ(info->mapping.iov_len, 2 * PAGE);
    CHECK_EQ(info->prot, PROT_READ);
    CHECK_EQ((uintptr_t)info->mapping.iov_base % PAGE, 0);
    if (info->vaddr != NULL) {
        CHECK_MEM(info->vaddr, mem + 0x800, PAGE);
    }

    /* Explicit MMAP mode behaves the same. */
    CHECK_EQ(vfu_test_dma_map(&f.c, VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_MMAP, 0,
                              0x300000, PAGE, fd),
             0);
    REQUIRE_EQ(f.dev.nr_reg, 3);
    CHECK(f.dev.reg[2].info.vaddr != NULL);
    CHECK_EQ(open_fds(&f.c), nfds);

    munmap(mem, 4 * PAGE);
    close(fd);
out:
    fixture_close(&f);
}

static void
test_map_message_mode(void)
{
    struct fixture f;
    const vfu_dma_info_t *info;

    if (!fixture_open(&f, "dma-msg", 16, NULL)) {
        goto out;
    }
    CHECK_EQ(vfu_test_dma_map(&f.c, VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE, 0,
                              0x10000, 0x3000, -1),
             0);
    REQUIRE_EQ(f.dev.nr_reg, 1);
    info = &f.dev.reg[0].info;
    CHECK_EQ((uintptr_t)info->iova.iov_base, 0x10000);
    CHECK_EQ(info->iova.iov_len, 0x3000);
    CHECK(info->vaddr == NULL);
    CHECK(info->mapping.iov_base == NULL);
    CHECK_EQ(info->mapping.iov_len, 0);
    CHECK_EQ(info->page_size, (size_t)sysconf(_SC_PAGESIZE));
    CHECK_EQ(info->prot, PROT_READ | PROT_WRITE);

    /* No prot at all is a mapping nobody can use, but a valid one. */
    CHECK_EQ(vfu_test_dma_map(&f.c, 0, 0, 0x20000, 0x1000, -1), 0);
    REQUIRE_EQ(f.dev.nr_reg, 2);
    CHECK_EQ(f.dev.reg[1].info.prot, 0);
out:
    fixture_close(&f);
}

/* Sends DMA_MAP with an arbitrary payload length. */
static int
raw_map(struct vfu_test_client *c, const struct vfio_user_dma_map *req, size_t len, int fd)
{
    return vfu_test_request(c, VFIO_USER_DMA_MAP, req, len, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0,
                            NULL, 0, NULL, NULL, NULL);
}

static void
test_map_errors(void)
{
    struct fixture f;
    struct vfio_user_dma_map req = {
        .argsz = sizeof(req),
        .flags = VFIO_USER_F_DMA_REGION_READ,
        .offset = 0,
        .addr = 0x10000,
        .size = PAGE,
    };
    uint8_t *mem;
    int fd, ro_fd, efd, nfds;
    char procpath[64];

    if (!fixture_open(&f, "dma-errors", 16, NULL)) {
        goto out;
    }
    fd = client_memory(2 * PAGE, 1, &mem);
    REQUIRE(fd >= 0);
    nfds = open_fds(&f.c);

    CHECK_EQ(raw_map(&f.c, &req, sizeof(req) - 1, -1), EINVAL);
    req.argsz = sizeof(req) - 1;
    CHECK_EQ(raw_map(&f.c, &req, sizeof(req), -1), EINVAL);
    req.argsz = sizeof(req);
    /* A longer payload is fine: only argsz's minimum is fixed. */
    {
        uint8_t longer[sizeof(req) + 8] = { 0 };
        memcpy(longer, &req, sizeof(req));
        CHECK_EQ(vfu_test_request(&f.c, VFIO_USER_DMA_MAP, longer, sizeof(longer), NULL, 0, NULL, 0,
                                  NULL, NULL, NULL),
                 0);
        CHECK_EQ(vfu_test_dma_unmap(&f.c, 0, 0x10000, PAGE), 0);
    }

    CHECK_EQ(vfu_test_dma_map(&f.c, VFIO_USER_F_DMA_REGION_READ | (1u << 4), 0, 0x10000, PAGE, -1),
             EINVAL);
    CHECK_EQ(vfu_test_dma_map(&f.c, 0x80000000u, 0, 0x10000, PAGE, -1), EINVAL);
    /* An access mode that needs an fd, without one. */
    CHECK_EQ(vfu_test_dma_map(&f.c, VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_MMAP, 0,
                              0x10000, PAGE, -1),
             EINVAL);
    CHECK_EQ(vfu_test_dma_map(&f.c, VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_FILE_IO, 0,
                              0x10000, PAGE, -1),
             EINVAL);
    /* Two access modes at once. */
    CHECK_EQ(vfu_test_dma_map(&f.c,
                              VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_MMAP |
                                  VFIO_USER_F_DMA_REGION_FILE_IO,
                              0, 0x10000, PAGE, fd),
             EINVAL);
    /* Empty, wrapping and oversized ranges. */
    CHECK_EQ(vfu_test_dma_map(&f.c, VFIO_USER_F_DMA_REGION_READ, 0, 0x10000, 0, -1), EINVAL);
    CHECK_EQ(
        vfu_test_dma_map(&f.c, VFIO_USER_F_DMA_REGION_READ, 0, UINT64_MAX - PAGE + 2, PAGE, -1),
        EINVAL);
    CHECK_EQ(
        vfu_test_dma_map(&f.c, VFIO_USER_F_DMA_REGION_READ, 0, 0, (UINT64_C(8) << 40) + PAGE, -1),
        ENOSPC);
    CHECK_EQ(
        vfu_test_dma_map(&f.c, VFIO_USER_F_DMA_REGION_READ, UINT64_MAX - 10, 0x10000, PAGE, fd),
        EINVAL);
    /* Past the end of the file: touching it would raise SIGBUS. */
    CHECK_EQ(vfu_test_dma_map(&f.c, VFIO_USER_F_DMA_REGION_READ, PAGE, 0x10000, 2 * PAGE, fd),
             EINVAL);
    /* An fd that cannot be mapped. */
    efd = vfu_test_eventfd_new();
    REQUIRE(efd >= 0);
    CHECK_NE(vfu_test_dma_map(&f.c, VFIO_USER_F_DMA_REGION_READ, 0, 0x10000, PAGE, efd), 0);
    close(efd);
    /* A read-only fd: readable mappings only. */
    snprintf(procpath, sizeof(procpath), "/proc/self/fd/%d", fd);
    ro_fd = open(procpath, O_RDONLY);
    REQUIRE(ro_fd >= 0);
    CHECK_EQ(vfu_test_dma_map(&f.c, VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE, 0,
                              0x10000, PAGE, ro_fd),
             EACCES);
    CHECK_EQ(f.dev.nr_reg, 1);
    CHECK_EQ(vfu_test_dma_map(&f.c, VFIO_USER_F_DMA_REGION_READ, 0, 0x10000, PAGE, ro_fd), 0);
    CHECK_EQ(f.dev.nr_reg, 2);
    close(ro_fd);

    /* No fd leaked by any of the failures. */
    CHECK_EQ(open_fds(&f.c), nfds);
    munmap(mem, 2 * PAGE);
    close(fd);
out:
    fixture_close(&f);
}

static void
test_overlap_and_duplicates(void)
{
    struct fixture f;
    uint8_t *mem, *mem2;
    int fd, fd2;
    const uint32_t rw = VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE;

    if (!fixture_open(&f, "dma-overlap", 16, NULL)) {
        goto out;
    }
    fd = client_memory(4 * PAGE, 2, &mem);
    fd2 = client_memory(4 * PAGE, 3, &mem2);
    REQUIRE(fd >= 0 && fd2 >= 0);

    CHECK_EQ(vfu_test_dma_map(&f.c, rw, 0, 0x10000, 0x2000, -1), 0);
    /* Overlaps from either side, inside, around: EEXIST (the spec). */
    CHECK_EQ(vfu_test_dma_map(&f.c, rw, 0, 0x11000, 0x2000, -1), EEXIST);
    CHECK_EQ(vfu_test_dma_map(&f.c, rw, 0, 0xf000, 0x1001, -1), EEXIST);
    CHECK_EQ(vfu_test_dma_map(&f.c, rw, 0, 0x10800, 0x100, -1), EEXIST);
    CHECK_EQ(vfu_test_dma_map(&f.c, rw, 0, 0x8000, 0x10000, -1), EEXIST);
    CHECK_EQ(vfu_test_dma_map(&f.c, rw, 0, 0x10000, 0x1000, -1), EEXIST);
    /* Touching is not overlapping. */
    CHECK_EQ(vfu_test_dma_map(&f.c, rw, 0, 0x12000, 0x1000, -1), 0);
    CHECK_EQ(vfu_test_dma_map(&f.c, rw, 0, 0xf000, 0x1000, -1), 0);
    CHECK_EQ(f.dev.nr_reg, 3);

    /* Exact repeat of a message-mode mapping: success, nothing new. */
    CHECK_EQ(vfu_test_dma_map(&f.c, rw, 0, 0x10000, 0x2000, -1), 0);
    CHECK_EQ(f.dev.nr_reg, 3);
    /* Same range, different prot or backing: EEXIST. */
    CHECK_EQ(vfu_test_dma_map(&f.c, VFIO_USER_F_DMA_REGION_READ, 0, 0x10000, 0x2000, -1), EEXIST);
    CHECK_EQ(vfu_test_dma_map(&f.c, rw, 0, 0x10000, 0x2000, fd), EEXIST);

    /* fd-backed: same file and offset succeeds, anything else does not. */
    CHECK_EQ(vfu_test_dma_map(&f.c, rw, PAGE, 0x40000, 2 * PAGE, fd), 0);
    CHECK_EQ(f.dev.nr_reg, 4);
    CHECK_EQ(vfu_test_dma_map(&f.c, rw, PAGE, 0x40000, 2 * PAGE, fd), 0);
    CHECK_EQ(vfu_test_dma_map(&f.c, rw | VFIO_USER_F_DMA_REGION_MMAP, PAGE, 0x40000, 2 * PAGE, fd),
             0);
    CHECK_EQ(f.dev.nr_reg, 4);
    CHECK_EQ(vfu_test_dma_map(&f.c, rw, 0, 0x40000, 2 * PAGE, fd), EEXIST);
    CHECK_EQ(vfu_test_dma_map(&f.c, rw, PAGE, 0x40000, 2 * PAGE, fd2), EEXIST);
    CHECK_EQ(vfu_test_dma_map(&f.c, rw, 0, 0x40000, 2 * PAGE, -1), EEXIST);
    CHECK_EQ(
        vfu_test_dma_map(&f.c, rw | VFIO_USER_F_DMA_REGION_FILE_IO, PAGE, 0x40000, 2 * PAGE, fd),
        EEXIST);
    CHECK_EQ(f.dev.nr_reg, 4);
    CHECK_EQ(f.dev.nr_unreg, 0);

    munmap(mem, 4 * PAGE);
    munmap(mem2, 4 * PAGE);
    close(fd);
    close(fd2);
out:
    fixture_close(&f);
}

static void
test_max_maps(void)
{
    struct fixture f;

    /* The device's limit. */
    if (fixture_open(&f, "dma-max", 2, NULL)) {
        CHECK_EQ(vfu_test_dma_map(&f.c, 1, 0, 0x1000, 0x1000, -1), 0);
        CHECK_EQ(vfu_test_dma_map(&f.c, 1, 0, 0x2000, 0x1000, -1), 0);
        CHECK_EQ(vfu_test_dma_map(&f.c, 1, 0, 0x3000, 0x1000, -1), EINVAL);
        /* Repeating an existing one is still fine at the limit. */
        CHECK_EQ(vfu_test_dma_map(&f.c, 1, 0, 0x2000, 0x1000, -1), 0);
        CHECK_EQ(vfu_test_dma_unmap(&f.c, 0, 0x1000, 0x1000), 0);
        CHECK_EQ(vfu_test_dma_map(&f.c, 1, 0, 0x3000, 0x1000, -1), 0);
        CHECK_EQ(f.dev.nr_reg, 3);
    }
    fixture_close(&f);

    /* The client's own announcement is a limit too. */
    if (fixture_open(&f, "dma-max-client", 100,
                     "{\"capabilities\":{\"max_msg_fds\":4,\"max_dma_maps\":1}}")) {
        CHECK_EQ(vfu_test_dma_map(&f.c, 1, 0, 0x1000, 0x1000, -1), 0);
        CHECK_EQ(vfu_test_dma_map(&f.c, 1, 0, 0x2000, 0x1000, -1), EINVAL);
        CHECK_EQ(f.dev.nr_reg, 1);
    }
    fixture_close(&f);
}

static int
raw_unmap(struct vfu_test_client *c, const void *req, size_t len)
{
    return vfu_test_request(c, VFIO_USER_DMA_UNMAP, req, len, NULL, 0, NULL, 0, NULL, NULL, NULL);
}

static void
test_unmap(void)
{
    struct fixture f;
    struct vfio_user_dma_unmap req = { .argsz = sizeof(req), .addr = 0x10000, .size = 0x2000 };
    struct vfio_user_dma_unmap echo;
    size_t len = 0;
    uint8_t *mem;
    int fd;
    void *vaddr;

    if (!fixture_open(&f, "dma-unmap", 16, NULL)) {
        goto out;
    }
    fd = client_memory(2 * PAGE, 0x40, &mem);
    REQUIRE(fd >= 0);
    CHECK_EQ(vfu_test_dma_map(&f.c, 3, 0, 0x10000, 0x2000, fd), 0);
    CHECK_EQ(vfu_test_dma_map(&f.c, 3, 0, 0x20000, 0x1000, -1), 0);
    CHECK_EQ(vfu_test_dma_map(&f.c, 3, 0, 0x30000, 0x1000, -1), 0);
    REQUIRE_EQ(f.dev.nr_reg, 3);
    vaddr = f.dev.reg[0].info.vaddr;
    CHECK(is_mapped(vaddr));

    /* Not exactly a mapping: ENOENT. */
    CHECK_EQ(vfu_test_dma_unmap(&f.c, 0, 0x10000, 0x1000), ENOENT);
    CHECK_EQ(vfu_test_dma_unmap(&f.c, 0, 0x11000, 0x1000), ENOENT);
    CHECK_EQ(vfu_test_dma_unmap(&f.c, 0, 0x10000, 0x3000), ENOENT);
    CHECK_EQ(vfu_test_dma_unmap(&f.c, 0, 0x10000, 0x11000), ENOENT);
    CHECK_EQ(vfu_test_dma_unmap(&f.c, 0, 0x50000, 0x1000), ENOENT);
    CHECK_EQ(vfu_test_dma_unmap(&f.c, 0, 0, 0), ENOENT);
    /* Malformed requests. */
    CHECK_EQ(raw_unmap(&f.c, &req, sizeof(req) - 1), EINVAL);
    req.argsz = sizeof(req) - 1;
    CHECK_EQ(raw_unmap(&f.c, &req, sizeof(req)), EINVAL);
    req.argsz = 1024 * 1024 + 1;
    CHECK_EQ(raw_unmap(&f.c, &req, sizeof(req)), EINVAL);
    req.argsz = sizeof(req);
    CHECK_EQ(vfu_test_dma_unmap(&f.c, 4, 0x10000, 0x2000), EINVAL);
    CHECK_EQ(vfu_test_dma_unmap(&f.c, 3, 0, 0), EINVAL);
    CHECK_EQ(vfu_test_dma_unmap(&f.c, VFIO_DMA_UNMAP_FLAG_ALL, 0x10000, 0), EINVAL);
    CHECK_EQ(vfu_test_dma_unmap(&f.c, VFIO_DMA_UNMAP_FLAG_ALL, 0, 0x2000), EINVAL);
    /* Dirty-page logging does not exist yet. */
    CHECK_EQ(vfu_test_dma_unmap(&f.c, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, 0x10000, 0x2000),
             ENOTSUP);
    CHECK_EQ(f.dev.nr_unreg, 0);

    /* Exact: the reply echoes the request; unregister runs while mapped. */
    req.argsz = 64;
    CHECK_EQ(vfu_test_request(&f.c, VFIO_USER_DMA_UNMAP, &req, sizeof(req), NULL, 0, &echo,
                              sizeof(echo), &len, NULL, NULL),
             0);
    CHECK_EQ(len, sizeof(req));
    CHECK_MEM(&echo, &req, sizeof(req));
    REQUIRE_EQ(f.dev.nr_unreg, 1);
    CHECK(f.dev.unreg[0].info.vaddr == vaddr);
    CHECK_EQ((uintptr_t)f.dev.unreg[0].info.iova.iov_base, 0x10000);
    CHECK_EQ(f.dev.unreg[0].info.iova.iov_len, 0x2000);
    CHECK_EQ(f.dev.unreg[0].first_byte, mem[0]);
    CHECK(!is_mapped(vaddr));
    /* Gone: a second unmap fails, a new map of the range succeeds. */
    CHECK_EQ(vfu_test_dma_unmap(&f.c, 0, 0x10000, 0x2000), ENOENT);
    CHECK_EQ(vfu_test_dma_map(&f.c, 3, 0, 0x10000, 0x1000, -1), 0);

    /* ALL removes every mapping, each with its callback. */
    CHECK_EQ(vfu_test_dma_unmap(&f.c, VFIO_DMA_UNMAP_FLAG_ALL, 0, 0), 0);
    CHECK_EQ(f.dev.nr_unreg, 4);
    CHECK_EQ(vfu_test_dma_unmap(&f.c, 0, 0x20000, 0x1000), ENOENT);
    CHECK_EQ(vfu_test_dma_unmap(&f.c, VFIO_DMA_UNMAP_FLAG_ALL, 0, 0), 0);
    CHECK_EQ(f.dev.nr_unreg, 4);
    CHECK_EQ(vfu_test_dma_map(&f.c, 3, 0, 0x20000, 0x1000, -1), 0);

    munmap(mem, 2 * PAGE);
    close(fd);
out:
    fixture_close(&f);
}

static void
test_disconnect(void)
{
    struct fixture f;
    struct sgl_call a;
    uint8_t *mem;
    int fd;
    void *vaddr;

    if (!fixture_open(&f, "dma-disconnect", 16, NULL)) {
        goto out;
    }
    fd = client_memory(PAGE, 0x77, &mem);
    REQUIRE(fd >= 0);
    CHECK_EQ(vfu_test_dma_map(&f.c, 3, 0, 0x10000, PAGE, fd), 0);
    CHECK_EQ(vfu_test_dma_map(&f.c, 3, 0, 0x20000, PAGE, -1), 0);
    REQUIRE_EQ(f.dev.nr_reg, 2);
    vaddr = f.dev.reg[0].info.vaddr;

    vfu_test_client_close(&f.c);
    CHECK_OK(vfu_test_server_wait_disconnects(&f.srv, 1, 5000));
    CHECK_EQ(f.dev.nr_unreg, 2);
    CHECK_EQ(f.dev.unreg[0].first_byte == mem[0] || f.dev.unreg[1].first_byte == mem[0], 1);
    CHECK(!is_mapped(vaddr));

    /* A new client starts with no mappings. */
    REQUIRE_OK(vfu_test_client_open(&f.c, f.path));
    memset(&a, 0, sizeof(a));
    a.addr = 0x10000;
    a.len = 1;
    a.max = 1;
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_addr_to_sgl, &a), ENOENT);
    CHECK_EQ(vfu_test_dma_unmap(&f.c, 0, 0x20000, PAGE), ENOENT);
    CHECK_EQ(vfu_test_dma_map(&f.c, 3, 0, 0x10000, PAGE, fd), 0);
    CHECK_EQ(f.dev.nr_reg, 3);

    munmap(mem, PAGE);
    close(fd);
out:
    fixture_close(&f);
    /* Destroying the context tells the device about the last mapping. */
    CHECK_EQ(f.dev.nr_unreg, 3);
}

static void
test_without_dma_setup(void)
{
    struct fixture f;
    struct sgl_call a;
    uint8_t *mem;
    int fd, nfds;

    if (!fixture_open(&f, "dma-none", 0, NULL)) {
        goto out;
    }
    fd = client_memory(PAGE, 0, &mem);
    REQUIRE(fd >= 0);
    nfds = open_fds(&f.c);
    /* Accepted and ignored; the fd is not kept. */
    CHECK_EQ(vfu_test_dma_map(&f.c, 3, 0, 0x10000, PAGE, fd), 0);
    CHECK_EQ(vfu_test_dma_map(&f.c, 3, 0, 0x10000, PAGE, fd), 0);
    CHECK_EQ(open_fds(&f.c), nfds);
    CHECK_EQ(vfu_test_dma_unmap(&f.c, 0, 0x10000, PAGE), 0);
    CHECK_EQ(vfu_test_dma_unmap(&f.c, 0, 0x99000, PAGE), 0);
    CHECK_EQ(vfu_test_dma_unmap(&f.c, VFIO_DMA_UNMAP_FLAG_ALL, 0, 0), 0);
    /* Still validated. */
    CHECK_EQ(vfu_test_dma_map(&f.c, 1u << 5, 0, 0x10000, PAGE, -1), EINVAL);
    CHECK_EQ(vfu_test_dma_unmap(&f.c, 8, 0, 0), EINVAL);
    /* No controller: the SG API refuses. */
    memset(&a, 0, sizeof(a));
    a.addr = 0x10000;
    a.len = 1;
    a.max = 1;
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_addr_to_sgl, &a), EINVAL);
    a.cnt = 1;
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_sgl_get, &a), EINVAL);
    CHECK_EQ(f.dev.nr_reg, 0);
    munmap(mem, PAGE);
    close(fd);
out:
    fixture_close(&f);
}

static void
test_setup_dma_twice(void)
{
    char path[108];
    struct device dev = { 0 };
    vfu_ctx_t *ctx;

    vfu_test_sock_path(path, sizeof(path), "dma-setup");
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, 0, &dev, VFU_DEV_TYPE_PCI);
    REQUIRE(ctx != NULL);
    CHECK_ERRNO(vfu_setup_device_dma(NULL, 1, NULL, NULL), EINVAL);
    CHECK_OK(vfu_setup_device_dma(ctx, 1, NULL, NULL));
    CHECK_OK(vfu_setup_device_dma(ctx, 5, on_register, NULL));
    CHECK_EQ(dma_sg_size(), SG_SIZE);
    vfu_destroy_ctx(ctx);
}

static void
test_sgl_split_and_errors(void)
{
    struct fixture f;
    struct sgl_call a;
    uint8_t *mem_a, *mem_b;
    int fd_a, fd_b;
    const uint8_t *sg0, *sg1;

    if (!fixture_open(&f, "dma-sgl", 16, NULL)) {
        goto out;
    }
    fd_a = client_memory(PAGE, 0x10, &mem_a);
    fd_b = client_memory(PAGE, 0x20, &mem_b);
    REQUIRE(fd_a >= 0 && fd_b >= 0);
    /* Two adjacent mappings from different files, then a gap, then one. */
    CHECK_EQ(vfu_test_dma_map(&f.c, 3, 0, 0x10000, PAGE, fd_a), 0);
    CHECK_EQ(vfu_test_dma_map(&f.c, 3, 0, 0x11000, PAGE, fd_b), 0);
    CHECK_EQ(vfu_test_dma_map(&f.c, 1, 0, 0x13000, PAGE, -1), 0);

    memset(&a, 0, sizeof(a));
    a.addr = 0x10800;
    a.len = PAGE;
    a.max = 8;
    a.prot = PROT_READ | PROT_WRITE;
    REQUIRE_EQ(vfu_test_server_call(&f.srv, call_addr_to_sgl, &a), 2);
    sg0 = a.sgl;
    sg1 = a.sgl + SG_SIZE;
    CHECK_EQ(sg_u64(sg0, SG_DMA_ADDR), 0x10000);
    CHECK_NE(sg_u64(sg0, SG_REGION), 0);
    CHECK_EQ(sg_u64(sg0, SG_OFFSET), 0x800);
    CHECK_EQ(sg_u64(sg0, SG_LENGTH), 0x800);
    CHECK_EQ(sg0[SG_WRITEABLE], 1);
    CHECK_EQ(sg_u64(sg1, SG_DMA_ADDR), 0x11000);
    CHECK_NE(sg_u64(sg1, SG_REGION), sg_u64(sg0, SG_REGION));
    CHECK_EQ(sg_u64(sg1, SG_OFFSET), 0);
    CHECK_EQ(sg_u64(sg1, SG_LENGTH), 0x800);

    /* Both entries reach the client's two memfds. */
    a.cnt = 2;
    REQUIRE_OK(vfu_test_server_call(&f.srv, call_sgl_get, &a));
    CHECK_EQ(a.iov[0].iov_len, 0x800);
    CHECK_EQ(a.iov[1].iov_len, 0x800);
    CHECK_MEM(a.iov[0].iov_base, mem_a + 0x800, 0x800);
    CHECK_MEM(a.iov[1].iov_base, mem_b, 0x800);
    ((uint8_t *)a.iov[1].iov_base)[3] = 0x5a;
    CHECK_EQ(mem_b[3], 0x5a);
    CHECK_OK(vfu_test_server_call(&f.srv, call_sgl_put, &a));
    CHECK_EQ(vfu_test_server_call(&f.srv, call_is_mappable, &a), 1);
    CHECK_EQ(vfu_sg_is_mappable(NULL, (dma_sg_t *)a.sgl), 1);

    /* Read-only intent: entries are not writeable. */
    a.prot = PROT_READ;
    REQUIRE_EQ(vfu_test_server_call(&f.srv, call_addr_to_sgl, &a), 2);
    CHECK_EQ(a.sgl[SG_WRITEABLE], 0);

    /* Too small an array: -(needed + 1), errno 0, nothing past the end. */
    memset(a.sgl, 0xee, sizeof(a.sgl));
    a.max = 1;
    CHECK_EQ(vfu_test_server_call(&f.srv, call_addr_to_sgl, &a), -3);
    CHECK_EQ(errno, 0);
    CHECK_EQ(a.sgl[SG_SIZE], 0xee);
    a.max = 0;
    CHECK_EQ(vfu_test_server_call(&f.srv, call_addr_to_sgl, &a), -3);
    CHECK_EQ(errno, 0);
    a.max = 2;
    CHECK_EQ(vfu_test_server_call(&f.srv, call_addr_to_sgl, &a), 2);
    /* A range ending exactly at a mapping's end needs no more. */
    a.addr = 0x10000;
    a.len = 2 * PAGE;
    CHECK_EQ(vfu_test_server_call(&f.srv, call_addr_to_sgl, &a), 2);
    a.len = 0;
    CHECK_EQ(vfu_test_server_call(&f.srv, call_addr_to_sgl, &a), 0);

    /* Gaps and unmapped ranges: ENOENT. */
    a.max = 8;
    a.addr = 0x11800;
    a.len = PAGE; /* runs into the gap at 0x12000 */
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_addr_to_sgl, &a), ENOENT);
    a.addr = 0x10000;
    a.len = 4 * PAGE; /* covers the gap */
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_addr_to_sgl, &a), ENOENT);
    a.addr = 0x12000;
    a.len = 1;
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_addr_to_sgl, &a), ENOENT);
    a.addr = 0xf000;
    a.len = 0x1001; /* starts before the first mapping */
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_addr_to_sgl, &a), ENOENT);
    a.addr = 0x13000;
    a.len = PAGE + 1; /* past the end of the last mapping */
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_addr_to_sgl, &a), ENOENT);
    a.addr = UINT64_MAX;
    a.len = 2;
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_addr_to_sgl, &a), ENOENT);
    /* Writing where the client only allows reading: EACCES. */
    a.addr = 0x13000;
    a.len = 8;
    a.prot = PROT_WRITE;
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_addr_to_sgl, &a), EACCES);
    a.prot = PROT_READ;
    CHECK_EQ(vfu_test_server_call(&f.srv, call_addr_to_sgl, &a), 1);

    /* Message mode has no local memory. */
    a.cnt = 1;
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_sgl_get, &a), EFAULT);
    CHECK_EQ(vfu_test_server_call(&f.srv, call_is_mappable, &a), 0);
    /* A zeroed entry, and bad flags. */
    memset(a.sgl, 0, sizeof(a.sgl));
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_sgl_get, &a), EINVAL);
    CHECK_EQ(vfu_test_server_call(&f.srv, call_is_mappable, &a), 0);
    REQUIRE(sgl_of(&f, &a, 0x10000, 16, PROT_READ));
    a.flags = 1;
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_sgl_get, &a), EINVAL);
    a.flags = 0;
    CHECK_OK(vfu_test_server_call(&f.srv, call_sgl_get, &a));

    /* An entry that outlived its mapping is refused, not followed. */
    CHECK_EQ(vfu_test_dma_unmap(&f.c, 0, 0x10000, PAGE), 0);
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_sgl_get, &a), ENOENT);
    CHECK_EQ(vfu_test_server_call(&f.srv, call_is_mappable, &a), 0);

    munmap(mem_a, PAGE);
    munmap(mem_b, PAGE);
    close(fd_a);
    close(fd_b);
out:
    fixture_close(&f);
}

static void
test_sgl_read_write(void)
{
    struct fixture f;
    struct sgl_call a;
    uint8_t *mem, *ro_mem;
    uint8_t buf[64], data[64];
    int fd, ro_fd, nfds;
    char perms[5];

    if (!fixture_open(&f, "dma-sgl-rw", 16, NULL)) {
        goto out;
    }
    fd = client_memory(2 * PAGE, 0x30, &mem);
    ro_fd = client_memory(PAGE, 0x90, &ro_mem);
    REQUIRE(fd >= 0 && ro_fd >= 0);
    CHECK_EQ(vfu_test_dma_map(&f.c, 3, 0, 0x10000, PAGE, fd), 0);
    CHECK_EQ(vfu_test_dma_map(&f.c, 1, 0, 0x20000, PAGE, ro_fd), 0);
    CHECK_EQ(vfu_test_dma_map(&f.c, 3, 0, 0x30000, PAGE, -1), 0);
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)(0xc0 ^ i);
    }

    /* Direct read and write of an mmap-mode mapping. */
    REQUIRE(sgl_of(&f, &a, 0x10100, sizeof(buf), PROT_READ | PROT_WRITE));
    a.data = buf;
    a.flags = VFU_SGL_DIRECT_ACCESS;
    CHECK_OK(vfu_test_server_call(&f.srv, call_sgl_read, &a));
    CHECK_MEM(buf, mem + 0x100, sizeof(buf));
    a.data = data;
    CHECK_OK(vfu_test_server_call(&f.srv, call_sgl_write, &a));
    CHECK_MEM(mem + 0x100, data, sizeof(data));

    /*
     * Bad flags, and a list whose second entry is no entry: refused before
     * anything moves. (Transfers by message: test_dma_messages.)
     */
    a.flags = 2;
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_sgl_read, &a), EINVAL);
    a.flags = VFU_SGL_DIRECT_ACCESS;
    a.cnt = 2;
    a.data = data;
    memset(mem + 0x100, 0, sizeof(data));
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_sgl_write, &a), EINVAL);
    CHECK_EQ(mem[0x100], 0);
    a.cnt = 1;

    /* Entries asked for without PROT_WRITE cannot be written. */
    REQUIRE(sgl_of(&f, &a, 0x10000, sizeof(data), PROT_READ));
    a.data = data;
    a.flags = VFU_SGL_DIRECT_ACCESS;
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_sgl_write, &a), EPERM);

    /*
     * A read-only mapping: PROT_WRITE is refused, reads work, and the memory
     * itself is mapped read-only so not even a stray pointer can write it.
     */
    memset(&a, 0, sizeof(a));
    a.addr = 0x20000;
    a.len = 8;
    a.max = 8;
    a.prot = PROT_READ | PROT_WRITE;
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_addr_to_sgl, &a), EACCES);
    REQUIRE(sgl_of(&f, &a, 0x20000, sizeof(buf), PROT_READ));
    a.data = buf;
    a.flags = VFU_SGL_DIRECT_ACCESS;
    CHECK_OK(vfu_test_server_call(&f.srv, call_sgl_read, &a));
    CHECK_MEM(buf, ro_mem, sizeof(buf));
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_sgl_write, &a), EPERM);
    a.flags = 0;
    CHECK_OK(vfu_test_server_call(&f.srv, call_sgl_get, &a));
    maps_perms(a.iov[0].iov_base, perms);
    CHECK_STR(perms, "r--s");
    CHECK_EQ(memcmp(ro_mem, buf, sizeof(buf)), 0);

    /* File I/O mode: pread/pwrite on the kept fd, nothing to point at. */
    nfds = open_fds(&f.c);
    CHECK_EQ(vfu_test_dma_map(&f.c, 3 | VFIO_USER_F_DMA_REGION_FILE_IO, PAGE, 0x40000, PAGE, fd),
             0);
    CHECK_EQ(open_fds(&f.c), nfds + 1);
    REQUIRE_EQ(f.dev.nr_reg, 4);
    CHECK(f.dev.reg[3].info.vaddr == NULL);
    REQUIRE(sgl_of(&f, &a, 0x40010, sizeof(buf), PROT_READ | PROT_WRITE));
    a.data = buf;
    a.flags = VFU_SGL_DIRECT_ACCESS;
    CHECK_OK(vfu_test_server_call(&f.srv, call_sgl_read, &a));
    CHECK_MEM(buf, mem + PAGE + 0x10, sizeof(buf));
    a.data = data;
    CHECK_OK(vfu_test_server_call(&f.srv, call_sgl_write, &a));
    CHECK_MEM(mem + PAGE + 0x10, data, sizeof(data));
    a.flags = 0;
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_sgl_get, &a), EFAULT);
    CHECK_EQ(vfu_test_server_call(&f.srv, call_is_mappable, &a), 0);
    CHECK_EQ(vfu_test_dma_unmap(&f.c, 0, 0x40000, PAGE), 0);
    CHECK_EQ(open_fds(&f.c), nfds);

    munmap(mem, 2 * PAGE);
    munmap(ro_mem, PAGE);
    close(fd);
    close(ro_fd);
out:
    fixture_close(&f);
}

int
main(void)
{
    check_watchdog(100);
    RUN_TEST(test_setup_dma_twice);
    RUN_TEST(test_map_memfd);
    RUN_TEST(test_map_message_mode);
    RUN_TEST(test_map_errors);
    RUN_TEST(test_overlap_and_duplicates);
    RUN_TEST(test_max_maps);
    RUN_TEST(test_unmap);
    RUN_TEST(test_disconnect);
    RUN_TEST(test_without_dma_setup);
    RUN_TEST(test_sgl_split_and_errors);
    RUN_TEST(test_sgl_read_write);
    return check_summary();
}
