/*
 * Dirty-page logging over the wire: DMA_LOGGING_START / STOP / REPORT, the
 * pages the device writes through the scatter-gather API showing up, a
 * report clearing them, reports at other page sizes, mappings made while
 * logging, and every error the feature answers.
 */
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user.h"
#include "private.h"

#define GET VFIO_DEVICE_FEATURE_GET
#define SET VFIO_DEVICE_FEATURE_SET
#define REPORT VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT

/* Client memory: an mmap mapping, a file-I/O one, a message-mode one. */
#define MMAP_IOVA 0x100000
#define MMAP_PAGES 80
#define FILE_IOVA 0x200000
#define FILE_PAGES 8
#define MSG_IOVA 0x300000
#define LATE_IOVA 0x400000

static size_t page;

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
    (void)ctx;
    (void)buf;
    (void)count;
    return 0;
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

struct bed {
    char path[108];
    vfu_ctx_t *ctx;
    struct vfu_test_server srv;
    struct vfu_test_client c;
    int fds[3];
};

static bool
bed_start(struct bed *b, const char *name, bool with_dma)
{
    vfu_test_sock_path(b->path, sizeof(b->path), name);
    b->ctx = vfu_create_ctx(VFU_TRANS_SOCK, b->path, LIBVFIO_USER_FLAG_ATTACH_NB, NULL,
                            VFU_DEV_TYPE_PCI);
    if (b->ctx == NULL) {
        FAIL("vfu_create_ctx: %s", strerror(errno));
        return false;
    }
    vfu_setup_log(b->ctx, vfu_test_log_stderr, LOG_DEBUG);
    CHECK_OK(vfu_setup_device_migration_callbacks(b->ctx, &callbacks));
    if (with_dma) {
        CHECK_OK(vfu_setup_device_dma(b->ctx, 16, NULL, NULL));
    }
    if (!CHECK_OK(vfu_realize_ctx(b->ctx)) || !CHECK_OK(vfu_test_server_start(&b->srv, b->ctx)) ||
        !CHECK_OK(vfu_test_client_open(&b->c, b->path))) {
        vfu_destroy_ctx(b->ctx);
        return false;
    }
    for (int i = 0; i < 3; i++) {
        b->fds[i] = -1;
    }
    return true;
}

static void
bed_stop(struct bed *b)
{
    vfu_test_client_close(&b->c);
    CHECK_EQ(vfu_test_server_run_errors(&b->srv), 0);
    vfu_test_server_stop(&b->srv);
    vfu_destroy_ctx(b->ctx);
    for (int i = 0; i < 3; i++) {
        if (b->fds[i] >= 0) {
            close(b->fds[i]);
        }
    }
}

static const uint32_t rw = VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE;

/* The three kinds of mapping; the memfds stay open for the test's life. */
static void
map_all(struct bed *b)
{
    b->fds[0] = vfu_test_memfd(MMAP_PAGES * page);
    b->fds[1] = vfu_test_memfd(FILE_PAGES * page);
    REQUIRE(b->fds[0] >= 0 && b->fds[1] >= 0);
    CHECK_EQ(vfu_test_dma_map(&b->c, rw, 0, MMAP_IOVA, MMAP_PAGES * page, b->fds[0]), 0);
    CHECK_EQ(vfu_test_dma_map(&b->c, rw | VFIO_USER_F_DMA_REGION_FILE_IO, 0, FILE_IOVA,
                              FILE_PAGES * page, b->fds[1]),
             0);
    CHECK_EQ(vfu_test_dma_map(&b->c, rw, 0, MSG_IOVA, 4 * page, -1), 0);
}

enum dma_op { OP_WRITE, OP_READ, OP_MARK, OP_GET_PUT };

struct dma_call {
    enum dma_op op;
    uint64_t iova;
    size_t len;
    int prot;
};

/* Runs on the server thread, as a device touching guest memory would. */
static int
device_dma(vfu_ctx_t *ctx, void *arg)
{
    struct dma_call *d = arg;
    _Alignas(8) uint8_t sg[4 * 40];
    static uint8_t data[16 * 4096 + 4096];
    struct iovec iov[4];
    int n;

    n = vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)(uintptr_t)d->iova, d->len, (dma_sg_t *)sg, 4,
                        d->prot);
    if (n != 1 || d->len > sizeof(data)) {
        return -1;
    }
    memset(data, 0xa5, d->len);
    switch (d->op) {
    case OP_WRITE:
        return vfu_sgl_write(ctx, (dma_sg_t *)sg, 1, data, VFU_SGL_DIRECT_ACCESS);
    case OP_READ:
        return vfu_sgl_read(ctx, (dma_sg_t *)sg, 1, data, VFU_SGL_DIRECT_ACCESS);
    case OP_MARK:
        vfu_sgl_mark_dirty(ctx, (dma_sg_t *)sg, 1);
        return 0;
    case OP_GET_PUT:
        if (vfu_sgl_get(ctx, (dma_sg_t *)sg, iov, 1, 0) < 0) {
            return -1;
        }
        if (d->prot & PROT_WRITE) {
            memset(iov[0].iov_base, 0x3c, iov[0].iov_len);
        }
        vfu_sgl_put(ctx, (dma_sg_t *)sg, iov, 1);
        return 0;
    }
    return -1;
}

static void
dma(struct bed *b, enum dma_op op, uint64_t iova, size_t len, int prot)
{
    struct dma_call d = { op, iova, len, prot };

    CHECK_MSG(vfu_test_server_call(&b->srv, device_dma, &d) == 0, "device DMA op %d at %#llx: %s",
              op, (unsigned long long)iova, strerror(errno));
}

/* The report of a mapping at report_page, with the bits it must hold set. */
static void
check_report(struct bed *b, uint64_t iova, uint64_t len, uint64_t report_page, const unsigned *bits,
             size_t nr)
{
    uint8_t got[64], want[64];
    uint64_t pages = len / report_page + (len % report_page != 0);
    size_t bytes = (size_t)((pages + 63) / 64 * 8);

    memset(got, 0xee, sizeof(got));
    memset(want, 0, sizeof(want));
    for (size_t i = 0; i < nr; i++) {
        want[bits[i] / 8] |= (uint8_t)(1u << (bits[i] % 8));
    }
    if (CHECK_EQ(vfu_test_dma_logging_report(&b->c, iova, len, report_page, got, sizeof(got)), 0)) {
        CHECK_MEM(got, want, bytes);
    }
}

static void
test_writes_show_up(void)
{
    struct bed b;
    uint64_t chosen = 0;
    uint64_t range[2] = { MMAP_IOVA, MMAP_PAGES * page };

    REQUIRE(bed_start(&b, "dirty-writes", true));
    map_all(&b);
    CHECK_EQ(vfu_test_dma_logging_start(&b.c, page, range, 1, &chosen), 0);
    CHECK_EQ(chosen, page);
    check_report(&b, MMAP_IOVA, MMAP_PAGES * page, page, NULL, 0);

    /* A direct write over a page boundary marks both pages. */
    dma(&b, OP_WRITE, MMAP_IOVA + 2 * page + 100, page, PROT_WRITE);
    /* vfu_sgl_mark_dirty on a writeable entry; not on a read-only one. */
    dma(&b, OP_MARK, MMAP_IOVA + 9 * page, 1, PROT_READ | PROT_WRITE);
    dma(&b, OP_MARK, MMAP_IOVA + 11 * page, page, PROT_READ);
    /* vfu_sgl_put after writing through vfu_sgl_get. */
    dma(&b, OP_GET_PUT, MMAP_IOVA + 12 * page, 2 * page, PROT_READ | PROT_WRITE);
    /* Reads mark nothing. */
    dma(&b, OP_READ, MMAP_IOVA + 20 * page, page, PROT_READ);
    dma(&b, OP_GET_PUT, MMAP_IOVA + 21 * page, page, PROT_READ);
    /* The last page: bit 70 of 80, in the second word. */
    dma(&b, OP_WRITE, MMAP_IOVA + 70 * page, 8, PROT_WRITE);
    {
        const unsigned bits[] = { 2, 3, 9, 12, 13, 70 };

        check_report(&b, MMAP_IOVA, MMAP_PAGES * page, page, bits, 6);
    }
    /* Reading the report cleared it. */
    check_report(&b, MMAP_IOVA, MMAP_PAGES * page, page, NULL, 0);

    /* File-I/O mappings are logged as well. */
    dma(&b, OP_WRITE, FILE_IOVA + 5 * page, 16, PROT_WRITE);
    {
        const unsigned bits[] = { 5 };

        check_report(&b, FILE_IOVA, FILE_PAGES * page, page, bits, 1);
    }

    /* A mapping made while logging is logged from the start. */
    b.fds[2] = vfu_test_memfd(4 * page);
    REQUIRE(b.fds[2] >= 0);
    CHECK_EQ(vfu_test_dma_map(&b.c, rw, 0, LATE_IOVA, 4 * page, b.fds[2]), 0);
    dma(&b, OP_WRITE, LATE_IOVA + 3 * page, 1, PROT_WRITE);
    {
        const unsigned bits[] = { 3 };

        check_report(&b, LATE_IOVA, 4 * page, page, bits, 1);
    }
    /* Gone with its mapping. */
    CHECK_EQ(vfu_test_dma_unmap(&b.c, 0, LATE_IOVA, 4 * page), 0);
    {
        uint8_t bm[8];

        CHECK_EQ(vfu_test_dma_logging_report(&b.c, LATE_IOVA, 4 * page, page, bm, sizeof(bm)),
                 ENOENT);
    }

    /* Stopped: no reports; writes are not recorded. */
    CHECK_EQ(vfu_test_dma_logging_stop(&b.c), 0);
    {
        uint8_t bm[16];

        CHECK_EQ(
            vfu_test_dma_logging_report(&b.c, MMAP_IOVA, MMAP_PAGES * page, page, bm, sizeof(bm)),
            EINVAL);
    }
    dma(&b, OP_WRITE, MMAP_IOVA, page, PROT_WRITE);
    CHECK_EQ(vfu_test_dma_logging_stop(&b.c), 0);
    /* Started again: a clean slate. */
    CHECK_EQ(vfu_test_dma_logging_start(&b.c, page, NULL, 0, NULL), 0);
    check_report(&b, MMAP_IOVA, MMAP_PAGES * page, page, NULL, 0);
    bed_stop(&b);
}

/* Reports at another page size: larger ones OR bits, smaller ones repeat. */
static void
test_report_page_sizes(void)
{
    struct bed b;
    uint64_t chosen = 0;

    REQUIRE(bed_start(&b, "dirty-sizes", true));
    map_all(&b);
    /* A hint below the host page size gets the host page size. */
    CHECK_EQ(vfu_test_dma_logging_start(&b.c, 512, NULL, 0, &chosen), 0);
    CHECK_EQ(chosen, page);

    dma(&b, OP_WRITE, MMAP_IOVA + 2 * page, 2 * page, PROT_WRITE);
    dma(&b, OP_WRITE, MMAP_IOVA + 9 * page, 1, PROT_WRITE);
    {
        /* Two host pages a bit: pages 2 and 3 -> 1, page 9 -> 4. */
        const unsigned bits[] = { 1, 4 };

        check_report(&b, MMAP_IOVA, MMAP_PAGES * page, 2 * page, bits, 2);
    }
    dma(&b, OP_WRITE, MMAP_IOVA + 79 * page, 1, PROT_WRITE);
    {
        /* 16 host pages a bit: 80 pages are 5 bits. */
        const unsigned bits[] = { 4 };

        check_report(&b, MMAP_IOVA, MMAP_PAGES * page, 16 * page, bits, 1);
    }
    dma(&b, OP_WRITE, MMAP_IOVA + page, 1, PROT_WRITE);
    dma(&b, OP_WRITE, MMAP_IOVA + 5 * page, 1, PROT_WRITE);
    {
        /* Half a host page a bit: each logged bit twice. */
        const unsigned bits[] = { 2, 3, 10, 11 };

        check_report(&b, FILE_IOVA, FILE_PAGES * page, page, NULL, 0);
        check_report(&b, MMAP_IOVA, MMAP_PAGES * page, page / 2, bits, 4);
    }
    bed_stop(&b);
}

static int
feature_raw(struct vfu_test_client *c, uint32_t argsz, uint32_t flags, const void *data, size_t len)
{
    uint8_t reply[256];
    size_t got = 0;

    return vfu_test_device_feature(c, argsz, flags, data, len, reply, sizeof(reply), &got);
}

static void
test_errors(void)
{
    struct bed b, nodma;
    uint8_t bm[64];
    uint64_t ctl[4];

    REQUIRE(bed_start(&b, "dirty-errors", true));
    map_all(&b);

    /* Reports need logging on. */
    CHECK_EQ(vfu_test_dma_logging_report(&b.c, MMAP_IOVA, MMAP_PAGES * page, page, bm, sizeof(bm)),
             EINVAL);
    /* START: page size 0 or not a power of two; ranges the payload lacks. */
    CHECK_EQ(vfu_test_dma_logging_start(&b.c, 0, NULL, 0, NULL), EINVAL);
    CHECK_EQ(vfu_test_dma_logging_start(&b.c, 3 * page, NULL, 0, NULL), EINVAL);
    ctl[0] = page;
    ctl[1] = 2; /* num_ranges 2, one present */
    ctl[2] = MMAP_IOVA;
    ctl[3] = page;
    CHECK_EQ(feature_raw(&b.c, 40, SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, ctl, sizeof(ctl)),
             EINVAL);
    CHECK_EQ(feature_raw(&b.c, 16, SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, ctl, 8), EINVAL);
    {
        uint64_t bad[2] = { UINT64_MAX - 10, 100 };
        uint64_t empty[2] = { MMAP_IOVA, 0 };

        CHECK_EQ(vfu_test_dma_logging_start(&b.c, page, bad, 1, NULL), EINVAL);
        CHECK_EQ(vfu_test_dma_logging_start(&b.c, page, empty, 1, NULL), EINVAL);
    }
    CHECK_EQ(vfu_test_dma_logging_start(&b.c, page, NULL, 0, NULL), 0);
    /* Again with the same page size is fine; another one is not. */
    CHECK_EQ(vfu_test_dma_logging_start(&b.c, page, NULL, 0, NULL), 0);
    CHECK_EQ(vfu_test_dma_logging_start(&b.c, 2 * page, NULL, 0, NULL), EINVAL);

    /* REPORT: nothing mapped there, or not all of the range. */
    CHECK_EQ(vfu_test_dma_logging_report(&b.c, 0x900000, page, page, bm, sizeof(bm)), ENOENT);
    CHECK_EQ(
        vfu_test_dma_logging_report(&b.c, FILE_IOVA, (FILE_PAGES + 1) * page, page, bm, sizeof(bm)),
        ENOENT);
    /* Part of a mapping that does not start it, or more than one. */
    CHECK_EQ(vfu_test_dma_logging_report(&b.c, MMAP_IOVA + page, (MMAP_PAGES - 1) * page, page, bm,
                                         sizeof(bm)),
             ENOTSUP);
    {
        int fd = vfu_test_memfd(page);

        REQUIRE(fd >= 0);
        CHECK_EQ(vfu_test_dma_map(&b.c, rw, 0, FILE_IOVA + FILE_PAGES * page, page, fd), 0);
        CHECK_EQ(vfu_test_dma_logging_report(&b.c, FILE_IOVA, (FILE_PAGES + 1) * page, page, bm,
                                             sizeof(bm)),
                 ENOTSUP);
        close(fd);
    }
    /* A message-mode mapping keeps no bitmap. */
    CHECK_EQ(vfu_test_dma_logging_report(&b.c, MSG_IOVA, 4 * page, page, bm, sizeof(bm)), EINVAL);
    /* Page size 0, not a power of two, larger than the range. */
    CHECK_EQ(vfu_test_dma_logging_report(&b.c, FILE_IOVA, FILE_PAGES * page, 0, bm, sizeof(bm)),
             EINVAL);
    CHECK_EQ(
        vfu_test_dma_logging_report(&b.c, FILE_IOVA, FILE_PAGES * page, 3 * page, bm, sizeof(bm)),
        EINVAL);
    CHECK_EQ(
        vfu_test_dma_logging_report(&b.c, FILE_IOVA, FILE_PAGES * page, 16 * page, bm, sizeof(bm)),
        EINVAL);
    /* argsz without room for the bitmap; a request without the range. */
    {
        uint64_t rep[3] = { FILE_IOVA, FILE_PAGES * page, page };

        CHECK_EQ(feature_raw(&b.c, 8 + 24 + 7, GET | REPORT, rep, sizeof(rep)), EINVAL);
        CHECK_EQ(feature_raw(&b.c, 8 + 24 + 8, GET | REPORT, rep, sizeof(rep)), 0);
        CHECK_EQ(feature_raw(&b.c, 8 + 24 + 8, GET | REPORT, rep, 16), EINVAL);
        /* A bitmap bigger than the server sends at once. */
        rep[0] = 0x10000000;
        rep[1] = 64u << 20;
        rep[2] = 1;
        CHECK_EQ(feature_raw(&b.c, UINT32_MAX, GET | REPORT, rep, sizeof(rep)), EINVAL);
    }
    CHECK_EQ(vfu_test_dma_logging_stop(&b.c), 0);

    /* Logging needs DMA set up. */
    REQUIRE(bed_start(&nodma, "dirty-nodma", false));
    CHECK_EQ(vfu_test_dma_logging_start(&nodma.c, page, NULL, 0, NULL), EINVAL);
    CHECK_EQ(vfu_test_dma_logging_stop(&nodma.c), 0);
    bed_stop(&nodma);
    bed_stop(&b);
}

/* Logging ends with the client: the next one finds it off. */
static void
test_logging_ends_with_client(void)
{
    struct bed b;
    uint8_t bm[16];

    REQUIRE(bed_start(&b, "dirty-drop", true));
    map_all(&b);
    CHECK_EQ(vfu_test_dma_logging_start(&b.c, page, NULL, 0, NULL), 0);
    dma(&b, OP_WRITE, MMAP_IOVA, page, PROT_WRITE);
    vfu_test_client_close(&b.c);
    CHECK_OK(vfu_test_server_wait_disconnects(&b.srv, 1, 5000));
    REQUIRE_OK(vfu_test_client_open(&b.c, b.path));
    close(b.fds[0]);
    close(b.fds[1]);
    map_all(&b);
    CHECK_EQ(vfu_test_dma_logging_report(&b.c, MMAP_IOVA, MMAP_PAGES * page, page, bm, sizeof(bm)),
             EINVAL);
    CHECK_EQ(vfu_test_dma_logging_start(&b.c, 2 * page, NULL, 0, NULL), 0);
    check_report(&b, MMAP_IOVA, MMAP_PAGES * page, page, NULL, 0);
    bed_stop(&b);
}

/*
 * A report over the start of a mapping, shorter than it, as upstream
 * answers: it takes the bits of those pages and leaves the others.
 */
static void
test_report_of_mapping_start(void)
{
    struct bed b;

    REQUIRE(bed_start(&b, "dirty-start", true));
    map_all(&b);
    CHECK_EQ(vfu_test_dma_logging_start(&b.c, page, NULL, 0, NULL), 0);
    dma(&b, OP_WRITE, MMAP_IOVA + page, 8, PROT_WRITE);
    dma(&b, OP_WRITE, MMAP_IOVA + 5 * page, 8, PROT_WRITE);
    dma(&b, OP_WRITE, MMAP_IOVA + 9 * page, 8, PROT_WRITE);
    {
        const unsigned first[] = { 1, 5 };
        const unsigned rest[] = { 9 };

        /* Six pages: bits 1 and 5; page 9 (same bitmap byte) stays logged. */
        check_report(&b, MMAP_IOVA, 6 * page, page, first, 2);
        check_report(&b, MMAP_IOVA, 6 * page, page, NULL, 0);
        check_report(&b, MMAP_IOVA, MMAP_PAGES * page, page, rest, 1);
    }
    CHECK_EQ(vfu_test_dma_logging_stop(&b.c), 0);
    bed_stop(&b);
}

int
main(void)
{
    page = (size_t)sysconf(_SC_PAGESIZE);
    check_watchdog(60);
    RUN_TEST(test_writes_show_up);
    RUN_TEST(test_report_page_sizes);
    RUN_TEST(test_errors);
    RUN_TEST(test_report_of_mapping_start);
    RUN_TEST(test_logging_ends_with_client);
    return check_summary();
}
