/*
 * Guest-side helper for the guest tests, built with gcc -static: BAR access
 * through sysfs resource files, capability walks through the config file,
 * and edu's DMA and INTx (through uio_pci_generic) as a driver would do them.
 *
 *   pci-tool read DEV BAR OFFSET WIDTH           prints the value in hex
 *   pci-tool write DEV BAR OFFSET WIDTH VALUE
 *   pci-tool caps DEV                            prints "cap ID@OFFSET" lines
 *   pci-tool edu-dma DEV                         copies RAM->card->RAM, checks both
 *   pci-tool uio-irqs DEV UIODEV COUNT           COUNT edu raises, one uio event each
 *   pci-tool uio-wait UIODEV                     prints "uio-waiting" once listening, waits
 *                                                for one uio event, prints the count
 *   pci-tool intx-enable DEV                     clears command bit 10 (INTx disable)
 *
 * DEV is a sysfs device directory, e.g. /sys/bus/pci/devices/0000:00:01.0.
 * Exit status 0 means every check held; failures say why on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK 0x64
#define EDU_IRQ_STATUS 0x24
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_COUNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_BUFFER 0x40000
#define PAGE 4096

static void
die(const char *what)
{
    fprintf(stderr, "pci-tool: %s: %s\n", what, errno ? strerror(errno) : "failed");
    exit(1);
}

static int
open_in(const char *dev, const char *file, int flags)
{
    char path[512];
    int fd;

    snprintf(path, sizeof(path), "%s/%s", dev, file);
    fd = open(path, flags);
    if (fd < 0) {
        die(path);
    }
    return fd;
}

/* A BAR: mapped when it is memory, read and written through the file when I/O. */
struct bar {
    int fd;
    volatile uint8_t *map;
    size_t size;
};

static struct bar
open_bar(const char *dev, int index)
{
    char name[32];
    struct bar b = { .map = NULL };
    struct stat st;

    snprintf(name, sizeof(name), "resource%d", index);
    b.fd = open_in(dev, name, O_RDWR | O_SYNC);
    if (fstat(b.fd, &st) < 0) {
        die(name);
    }
    b.size = (size_t)st.st_size;
    void *m = mmap(NULL, b.size, PROT_READ | PROT_WRITE, MAP_SHARED, b.fd, 0);
    if (m != MAP_FAILED) {
        b.map = m;
    }
    return b;
}

static uint64_t
bar_read(struct bar *b, uint64_t off, int width)
{
    uint64_t v = 0;

    if (b->map == NULL) {
        if (pread(b->fd, &v, (size_t)width, (off_t)off) != width) {
            die("I/O BAR read");
        }
        return v;
    }
    switch (width) {
    case 1: return *(volatile uint8_t *)(b->map + off);
    case 2: return *(volatile uint16_t *)(b->map + off);
    case 4: return *(volatile uint32_t *)(b->map + off);
    case 8: return *(volatile uint64_t *)(b->map + off);
    }
    errno = EINVAL;
    die("width");
    return 0;
}

static void
bar_write(struct bar *b, uint64_t off, int width, uint64_t v)
{
    if (b->map == NULL) {
        if (pwrite(b->fd, &v, (size_t)width, (off_t)off) != width) {
            die("I/O BAR write");
        }
        return;
    }
    switch (width) {
    case 1: *(volatile uint8_t *)(b->map + off) = (uint8_t)v; return;
    case 2: *(volatile uint16_t *)(b->map + off) = (uint16_t)v; return;
    case 4: *(volatile uint32_t *)(b->map + off) = (uint32_t)v; return;
    case 8: *(volatile uint64_t *)(b->map + off) = v; return;
    }
    errno = EINVAL;
    die("width");
}

static uint16_t
config16(int cfg, off_t off)
{
    uint16_t v;

    if (pread(cfg, &v, 2, off) != 2) {
        die("config read");
    }
    return v;
}

static void
set_config16(int cfg, off_t off, uint16_t v)
{
    if (pwrite(cfg, &v, 2, off) != 2) {
        die("config write");
    }
}

static int
caps(const char *dev)
{
    int cfg = open_in(dev, "config", O_RDONLY);
    uint8_t space[4096];
    ssize_t n = pread(cfg, space, sizeof(space), 0);
    unsigned pos, guard;

    if (n < 64) {
        die("config read");
    }
    if (space[6] & 0x10) {
        for (pos = space[0x34] & ~3u, guard = 0; pos != 0 && guard < 48; guard++) {
            printf("cap %#04x@%#04x\n", space[pos], pos);
            pos = space[pos + 1] & ~3u;
        }
    }
    /* Extended capabilities: only visible when the config file is 4 KiB. */
    for (pos = 0x100, guard = 0; n >= 4096 && pos != 0 && guard < 480; guard++) {
        uint32_t h;

        memcpy(&h, space + pos, 4);
        if (h == 0 || h == 0xffffffffu) {
            break;
        }
        printf("ecap %#06x@%#05x\n", h & 0xffff, pos);
        pos = (h >> 20) & ~3u;
    }
    return 0;
}

/* A locked page of this process and its guest-physical address. */
static uint8_t *
dma_page(uint64_t *phys)
{
    uint8_t *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED | MAP_POPULATE, -1, 0);
    uint64_t entry;
    int fd;

    if (p == MAP_FAILED) {
        die("mmap");
    }
    memset(p, 0, PAGE);
    fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0 || pread(fd, &entry, 8, (off_t)((uintptr_t)p / PAGE) * 8) != 8) {
        die("pagemap");
    }
    close(fd);
    if (!(entry >> 63)) {
        errno = EFAULT;
        die("page not present");
    }
    *phys = (entry & ((1ull << 55) - 1)) * PAGE;
    return p;
}

static void
enable_bus_master(const char *dev)
{
    int cfg = open_in(dev, "config", O_RDWR);

    set_config16(cfg, 4, config16(cfg, 4) | 0x6);
    close(cfg);
}

static int
edu_dma_wait(struct bar *b)
{
    for (int i = 0; i < 100000; i++) {
        if (!(bar_read(b, EDU_DMA_CMD, 4) & 1)) {
            return 0;
        }
        usleep(100);
    }
    fprintf(stderr, "pci-tool: DMA did not finish\n");
    return 1;
}

static int
edu_dma(const char *dev)
{
    struct bar b = open_bar(dev, 0);
    uint64_t src_phys, dst_phys;
    uint8_t *src = dma_page(&src_phys), *dst = dma_page(&dst_phys);
    int bad = 0;

    enable_bus_master(dev);
    for (int i = 0; i < 256; i++) {
        src[i] = (uint8_t)(i * 7 + 1);
    }
    /* RAM to the card's buffer at 0x100. */
    bar_write(&b, EDU_DMA_SRC, 8, src_phys);
    bar_write(&b, EDU_DMA_DST, 8, EDU_BUFFER + 0x100);
    bar_write(&b, EDU_DMA_COUNT, 8, 256);
    bar_write(&b, EDU_DMA_CMD, 8, 1);
    if (edu_dma_wait(&b)) {
        return 1;
    }
    for (int i = 0; i < 256; i++) {
        if (bar_read(&b, EDU_BUFFER + 0x100 + i, 1) != src[i]) {
            bad++;
        }
    }
    printf("to card: %d of 256 bytes differ\n", bad);
    /* The card's buffer back to another page. */
    bar_write(&b, EDU_DMA_SRC, 8, EDU_BUFFER + 0x100);
    bar_write(&b, EDU_DMA_DST, 8, dst_phys + 0x80);
    bar_write(&b, EDU_DMA_COUNT, 8, 256);
    bar_write(&b, EDU_DMA_CMD, 8, 1 | 2);
    if (edu_dma_wait(&b)) {
        return 1;
    }
    bad = memcmp(dst + 0x80, src, 256) != 0 || dst[0x7f] != 0 || dst[0x180] != 0;
    printf("to RAM at %#" PRIx64 ": %s\n", dst_phys + 0x80, bad ? "differs" : "same");
    return bad;
}

static int
uio_irqs(const char *dev, const char *uio_dev, int count)
{
    struct bar b = open_bar(dev, 0);
    int cfg = open_in(dev, "config", O_RDWR);
    int uio = open(uio_dev, O_RDONLY);
    uint32_t events = 0, last = 0;

    if (uio < 0) {
        die(uio_dev);
    }
    for (int i = 0; i < count; i++) {
        struct pollfd p = { .fd = uio, .events = POLLIN };

        bar_write(&b, EDU_IRQ_RAISE, 4, 1);
        if (poll(&p, 1, 20000) != 1) {
            fprintf(stderr, "pci-tool: interrupt %d did not arrive\n", i);
            return 1;
        }
        if (read(uio, &events, 4) != 4) {
            die("uio read");
        }
        /* uio_pci_generic masked INTx with command bit 10 when it claimed it:
         * acknowledge the card, then unmask as its users must. */
        bar_write(&b, EDU_IRQ_ACK, 4, bar_read(&b, EDU_IRQ_STATUS, 4));
        set_config16(cfg, 4, config16(cfg, 4) & ~0x400);
        printf("interrupt %d: uio event count %u (+%u)\n", i, events, events - last);
        last = events;
    }
    /* Nothing further may arrive once acknowledged. */
    usleep(300000);
    struct pollfd p = { .fd = uio, .events = POLLIN };
    printf("after: %s\n", poll(&p, 1, 0) == 0 ? "quiet" : "more interrupts");
    return 0;
}

static int
uio_wait(const char *uio_dev)
{
    int uio = open(uio_dev, O_RDONLY);
    struct pollfd p = { .fd = uio, .events = POLLIN };
    uint32_t events;

    if (uio < 0) {
        die(uio_dev);
    }
    /* Events before the open are not reported: only now may the host act. */
    printf("uio-waiting\n");
    fflush(stdout);
    if (poll(&p, 1, 60000) != 1 || read(uio, &events, 4) != 4) {
        fprintf(stderr, "pci-tool: no interrupt on %s\n", uio_dev);
        return 1;
    }
    printf("uio event count %u\n", events);
    return 0;
}

static int
intx_enable(const char *dev)
{
    int cfg = open_in(dev, "config", O_RDWR);

    set_config16(cfg, 4, config16(cfg, 4) & ~0x400);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "read") == 0) {
        struct bar b = open_bar(argv[2], atoi(argv[3]));
        printf("%#" PRIx64 "\n", bar_read(&b, strtoull(argv[4], NULL, 0), atoi(argv[5])));
        return 0;
    }
    if (argc >= 7 && strcmp(argv[1], "write") == 0) {
        struct bar b = open_bar(argv[2], atoi(argv[3]));
        bar_write(&b, strtoull(argv[4], NULL, 0), atoi(argv[5]), strtoull(argv[6], NULL, 0));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "caps") == 0) {
        return caps(argv[2]);
    }
    if (argc == 3 && strcmp(argv[1], "edu-dma") == 0) {
        return edu_dma(argv[2]);
    }
    if (argc == 5 && strcmp(argv[1], "uio-irqs") == 0) {
        return uio_irqs(argv[2], argv[3], atoi(argv[4]));
    }
    if (argc == 3 && strcmp(argv[1], "uio-wait") == 0) {
        return uio_wait(argv[2]);
    }
    if (argc == 3 && strcmp(argv[1], "intx-enable") == 0) {
        return intx_enable(argv[2]);
    }
    fprintf(stderr, "usage: see the comment at the top of pci-tool.c\n");
    return 2;
}
