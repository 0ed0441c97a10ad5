/*
 * No client request makes the server touch memory outside what it owns, shown
 * with guard pages rather than taken on trust: each BAR's memory ends right
 * before a page that cannot be accessed, so a callback handed an access past
 * its region would fault, in the plain build as much as under ASan. The BARs
 * cover a plain callback BAR, one with sparse mmap areas and one holding the
 * MSI-X table and PBA the library emulates. DMA mappings get exactly the
 * protection the client granted: a write through a read-only mapping faults.
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user.h"
#include "pci_caps/msix.h"

#define PAGE 0x1000u
#define BAR0_SIZE 0x1000u
#define BAR1_SIZE 0x4000u
#define BAR2_SIZE 0x1000u
#define MSIX_VECTORS 16u
#define MSIX_TABLE_END (MSIX_VECTORS * 16u)
#define MSIX_PBA 0x800u
#define MSIX_PBA_END (MSIX_PBA + 8u)
#define NBARS 3

struct bar {
    uint8_t *mem; /* size bytes, then a PROT_NONE page */
    size_t size;
    unsigned calls;
    unsigned outside; /* accesses that reached past the region */
};

struct device {
    struct bar bars[NBARS];
    int memfd; /* BAR1's mmap-able backing */
};

/* size bytes that end exactly where an inaccessible page begins. */
static uint8_t *
guarded_alloc(size_t size)
{
    uint8_t *base =
        mmap(NULL, size + PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (base == MAP_FAILED) {
        return NULL;
    }
    if (mprotect(base + size, PAGE, PROT_NONE) != 0) {
        munmap(base, size + PAGE);
        return NULL;
    }
    return base;
}

static ssize_t
bar_access(vfu_ctx_t *ctx, int idx, char *buf, size_t count, loff_t offset, bool is_write)
{
    struct device *dev = vfu_get_private(ctx);
    struct bar *bar = &dev->bars[idx];

    bar->calls++;
    if (offset < 0 || (size_t)offset > bar->size || count > bar->size - (size_t)offset) {
        bar->outside++;
    }
    /* Copied even when outside: the guard page is the proof. */
    if (is_write) {
        memcpy(bar->mem + offset, buf, count);
    } else {
        memcpy(buf, bar->mem + offset, count);
    }
    return (ssize_t)count;
}

static ssize_t
bar0_cb(vfu_ctx_t *c, char *b, size_t n, loff_t o, bool w)
{
    return bar_access(c, 0, b, n, o, w);
}
static ssize_t
bar1_cb(vfu_ctx_t *c, char *b, size_t n, loff_t o, bool w)
{
    return bar_access(c, 1, b, n, o, w);
}
static ssize_t
bar2_cb(vfu_ctx_t *c, char *b, size_t n, loff_t o, bool w)
{
    return bar_access(c, 2, b, n, o, w);
}

struct fixture {
    char path[108];
    struct device dev;
    vfu_ctx_t *ctx;
    struct vfu_test_server srv;
    struct vfu_test_client c;
};

static bool
fixture_open(struct fixture *f, const char *name)
{
    static const size_t sizes[NBARS] = { BAR0_SIZE, BAR1_SIZE, BAR2_SIZE };
    struct iovec bar1_areas[] = {
        { .iov_base = (void *)(uintptr_t)0x1000, .iov_len = 0x1000 },
        { .iov_base = (void *)(uintptr_t)0x3000, .iov_len = 0x1000 },
    };
    struct msixcap msix = {
        .hdr.id = PCI_CAP_ID_MSIX,
        .mxc.ts = MSIX_VECTORS - 1,
        .mtab = { .tbir = 2, .to = 0 },
        .mpba = { .pbir = 2, .pbao = MSIX_PBA >> 3 },
    };

    memset(f, 0, sizeof(*f));
    f->c.fd = -1;
    f->dev.memfd = -1;
    for (int i = 0; i < NBARS; i++) {
        f->dev.bars[i].size = sizes[i];
        f->dev.bars[i].mem = guarded_alloc(sizes[i]);
        if (!CHECK(f->dev.bars[i].mem != NULL)) {
            return false;
        }
    }
    f->dev.memfd = vfu_test_memfd(BAR1_SIZE);
    vfu_test_sock_path(f->path, sizeof(f->path), name);
    f->ctx = vfu_create_ctx(VFU_TRANS_SOCK, f->path, LIBVFIO_USER_FLAG_ATTACH_NB, &f->dev,
                            VFU_DEV_TYPE_PCI);
    if (!CHECK(f->ctx != NULL) || !CHECK(f->dev.memfd >= 0)) {
        return false;
    }
    vfu_setup_log(f->ctx, vfu_test_log_stderr, LOG_ERR);
    return CHECK_OK(vfu_pci_init(f->ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0)) &&
           CHECK_OK(vfu_setup_region(f->ctx, VFU_PCI_DEV_BAR0_REGION_IDX, BAR0_SIZE, bar0_cb,
                                     VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0)) &&
           CHECK_OK(vfu_setup_region(f->ctx, VFU_PCI_DEV_BAR1_REGION_IDX, BAR1_SIZE, bar1_cb,
                                     VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, bar1_areas, 2,
                                     f->dev.memfd, 0)) &&
           CHECK_OK(vfu_setup_region(f->ctx, VFU_PCI_DEV_BAR2_REGION_IDX, BAR2_SIZE, bar2_cb,
                                     VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0)) &&
           CHECK_GE(vfu_pci_add_capability(f->ctx, 0, 0, &msix), 0) &&
           CHECK_OK(vfu_setup_device_nr_irqs(f->ctx, VFU_DEV_MSIX_IRQ, MSIX_VECTORS)) &&
           CHECK_OK(vfu_setup_device_dma(f->ctx, 8, NULL, NULL)) &&
           CHECK_OK(vfu_realize_ctx(f->ctx)) && CHECK_OK(vfu_test_server_start(&f->srv, f->ctx)) &&
           CHECK_OK(vfu_test_client_open(&f->c, f->path));
}

static void
fixture_close(struct fixture *f)
{
    vfu_test_client_close(&f->c);
    if (f->ctx != NULL) {
        vfu_test_server_stop(&f->srv);
        vfu_destroy_ctx(f->ctx);
    }
    for (int i = 0; i < NBARS; i++) {
        if (f->dev.bars[i].mem != NULL) {
            munmap(f->dev.bars[i].mem, f->dev.bars[i].size + PAGE);
        }
    }
    if (f->dev.memfd >= 0) {
        close(f->dev.memfd);
    }
}

/* A REGION_READ/WRITE with any header; a write carries `data_len` bytes. */
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
    ret = vfu_test_request(c, cmd, req, len, NULL, 0, NULL, 0, NULL, NULL, NULL);
    free(req);
    return ret;
}

/*
 * Around every boundary of every BAR (its ends, the sparse areas', the MSI-X
 * table's and PBA's), reads and writes of many sizes: exactly those inside
 * the region succeed, the rest get EINVAL, and no callback sees past its end.
 */
static void
test_boundaries(void)
{
    static const uint64_t points[NBARS][6] = {
        { 0, BAR0_SIZE },
        { 0, 0x1000, 0x2000, 0x3000, BAR1_SIZE },
        { 0, MSIX_TABLE_END, MSIX_PBA, MSIX_PBA_END, BAR2_SIZE },
    };
    static const uint32_t counts[] = { 1, 2, 3, 4, 8, 16, 64, 65, PAGE, BAR1_SIZE };
    static uint8_t buf[BAR1_SIZE];
    struct fixture f;
    unsigned wrong = 0;

    if (!fixture_open(&f, "memsafe-bounds")) {
        goto out;
    }
    for (uint32_t bar = 0; bar < NBARS; bar++) {
        uint64_t size = f.dev.bars[bar].size;

        for (size_t p = 0; p < 6 && (p == 0 || points[bar][p] != 0); p++) {
            for (int64_t delta = -9; delta <= 9; delta++) {
                int64_t off = (int64_t)points[bar][p] + delta;

                for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]) && off >= 0; k++) {
                    uint32_t n = counts[k];
                    int want = (uint64_t)off + n <= size ? 0 : EINVAL;

                    memset(buf, 0x5a, n);
                    if (vfu_test_region_write(&f.c, bar, (uint64_t)off, n, buf) != want ||
                        vfu_test_region_read(&f.c, bar, (uint64_t)off, n, buf) != want) {
                        if (wrong++ < 10) {
                            FAIL("BAR%u offset %#llx count %u: expected errno %d", bar,
                                 (unsigned long long)off, n, want);
                        }
                    }
                }
            }
        }
    }
    CHECK_EQ(wrong, 0);
    for (int i = 0; i < NBARS; i++) {
        CHECK_GT(f.dev.bars[i].calls, 0);
        CHECK_EQ(f.dev.bars[i].outside, 0);
    }
out:
    fixture_close(&f);
}

/* Offsets that wrap, counts up to 2^32 - 1, multi-writes out of range. */
static void
test_overflows(void)
{
    const uint16_t rd = VFIO_USER_REGION_READ, wr = VFIO_USER_REGION_WRITE;
    struct fixture f;
    unsigned calls[NBARS];

    if (!fixture_open(&f, "memsafe-overflow")) {
        goto out;
    }
    for (int i = 0; i < NBARS; i++) {
        calls[i] = f.dev.bars[i].calls;
    }
    for (uint32_t bar = 0; bar < NBARS; bar++) {
        CHECK_EQ(access_request(&f.c, rd, bar, UINT64_MAX, 1, 0), EINVAL);
        CHECK_EQ(access_request(&f.c, rd, bar, UINT64_MAX - 3, 8, 0), EINVAL);
        CHECK_EQ(access_request(&f.c, wr, bar, UINT64_MAX - 1, 4, 4), EINVAL);
        CHECK_EQ(access_request(&f.c, rd, bar, (uint64_t)1 << 63, 4, 0), EINVAL);
        CHECK_EQ(access_request(&f.c, rd, bar, 0, UINT32_MAX, 0), EINVAL);
        CHECK_EQ(access_request(&f.c, rd, bar, 8, UINT32_MAX - 7, 0), EINVAL);
        CHECK_EQ(access_request(&f.c, rd, bar, 0, 1u << 20, 0), EINVAL);
        CHECK_EQ(access_request(&f.c, wr, bar, 0, UINT32_MAX, 16), EINVAL);
    }
    {
        struct vfu_test_write_entry wrs[3] = {
            { .offset = 0, .region = 0, .count = 4 },
            { .offset = BAR2_SIZE - 4, .region = 2, .count = 8 },
            { .offset = MSIX_TABLE_END - 4, .region = 2, .count = 8 },
        };
        uint64_t done = 0;

        CHECK_EQ(vfu_test_region_write_multi(&f.c, wrs, 2, &done), EINVAL);
        wrs[1].offset = UINT64_MAX - 6;
        CHECK_EQ(vfu_test_region_write_multi(&f.c, wrs, 2, &done), EINVAL);
        wrs[1].offset = BAR1_SIZE;
        wrs[1].region = 1;
        CHECK_EQ(vfu_test_region_write_multi(&f.c, wrs, 2, &done), EINVAL);
        /* Straddling the MSI-X table's end inside its BAR is fine. */
        CHECK_EQ(vfu_test_region_write_multi(&f.c, &wrs[2], 1, &done), 0);
        CHECK_EQ(done, 1);
    }
    /* Only the last multi-write reached a callback: its bytes after the table. */
    CHECK_EQ(f.dev.bars[0].calls, calls[0]);
    CHECK_EQ(f.dev.bars[1].calls, calls[1]);
    CHECK_LE(f.dev.bars[2].calls, calls[2] + 1);
    for (int i = 0; i < NBARS; i++) {
        CHECK_EQ(f.dev.bars[i].outside, 0);
    }
out:
    fixture_close(&f);
}

struct sgl_call {
    uint64_t addr;
    size_t len;
    int prot;
    _Alignas(8) uint8_t sgl[64];
    struct iovec iov;
};

/* In the server thread: the device's pointer to [addr, addr + len). */
static int
call_sgl_get(vfu_ctx_t *ctx, void *arg)
{
    struct sgl_call *a = arg;

    if (vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)(uintptr_t)a->addr, a->len, (dma_sg_t *)a->sgl, 1,
                        a->prot) != 1) {
        return -1;
    }
    return vfu_sgl_get(ctx, (dma_sg_t *)a->sgl, &a->iov, 1, 0);
}

/*
 * Writes one byte at p in a child process: the signal that ended it, or 0
 * if the write went through. The child restores the default SIGSEGV action
 * so that ASan's handler does not turn the fault into a report.
 */
static int
write_in_child(volatile uint8_t *p, uint8_t value)
{
    pid_t pid = fork();
    int status;

    if (pid == 0) {
        struct sigaction dfl = { .sa_handler = SIG_DFL };

        sigaction(SIGSEGV, &dfl, NULL);
        sigaction(SIGBUS, &dfl, NULL);
        *p = value;
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        return -1;
    }
    if (WIFSIGNALED(status)) {
        return WTERMSIG(status);
    }
    return WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void
test_dma_protection(void)
{
    struct fixture f;
    struct sgl_call a;
    uint8_t *mem;
    int fd;

    if (!fixture_open(&f, "memsafe-dma")) {
        goto out;
    }
    fd = vfu_test_memfd(2 * PAGE);
    REQUIRE(fd >= 0);
    mem = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    REQUIRE(mem != MAP_FAILED);
    memset(mem, 0x11, 2 * PAGE);
    CHECK_EQ(vfu_test_dma_map(&f.c, VFIO_USER_F_DMA_REGION_READ, 0, 0x10000, PAGE, fd), 0);
    CHECK_EQ(vfu_test_dma_map(&f.c, VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE,
                              PAGE, 0x20000, PAGE, fd),
             0);

    /* Read-only: asking to write is refused, and the mapping itself faults. */
    memset(&a, 0, sizeof(a));
    a.addr = 0x10000;
    a.len = 16;
    a.prot = PROT_READ | PROT_WRITE;
    CHECK_ERRNO(vfu_test_server_call(&f.srv, call_sgl_get, &a), EACCES);
    a.prot = PROT_READ;
    REQUIRE_OK(vfu_test_server_call(&f.srv, call_sgl_get, &a));
    CHECK_EQ(*(volatile uint8_t *)a.iov.iov_base, 0x11);
    CHECK_EQ(write_in_child(a.iov.iov_base, 0x99), SIGSEGV);
    CHECK_EQ(mem[0], 0x11);

    /* Read-write, for contrast: the same write goes through to the client. */
    memset(&a, 0, sizeof(a));
    a.addr = 0x20000;
    a.len = 16;
    a.prot = PROT_READ | PROT_WRITE;
    REQUIRE_OK(vfu_test_server_call(&f.srv, call_sgl_get, &a));
    CHECK_EQ(write_in_child(a.iov.iov_base, 0x99), 0);
    CHECK_EQ(mem[PAGE], 0x99);

    /* Nothing outside the mappings, not one byte past either end. */
    a.prot = PROT_READ;
    for (uint64_t addr = 0x10000 - 1; addr <= 0x10000 + PAGE; addr += PAGE) {
        a.addr = addr;
        a.len = 2;
        CHECK_ERRNO(vfu_test_server_call(&f.srv, call_sgl_get, &a), ENOENT);
    }
    a.addr = 0x20000;
    a.len = SIZE_MAX;
    CHECK_EQ(vfu_test_server_call(&f.srv, call_sgl_get, &a), -1);
    a.addr = UINT64_MAX;
    a.len = 2;
    CHECK_EQ(vfu_test_server_call(&f.srv, call_sgl_get, &a), -1);

    munmap(mem, 2 * PAGE);
    close(fd);
out:
    fixture_close(&f);
}

int
main(void)
{
    check_watchdog(100);
    RUN_TEST(test_boundaries);
    RUN_TEST(test_overflows);
    RUN_TEST(test_dma_protection);
    return check_summary();
}
