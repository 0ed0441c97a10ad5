/*
 * The sample device, run as its own process exactly as a user would run it,
 * driven over its socket by the test client: every command the library
 * serves, a migration from one process to another, and a clean exit on
 * SIGTERM.
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user.h"

#ifndef SAMPLE_SERVER
#error "SAMPLE_SERVER must name the sample_server binary"
#endif

static pid_t
start_sample(const char *path)
{
    pid_t pid = fork();

    if (pid == 0) {
        execl(SAMPLE_SERVER, SAMPLE_SERVER, path, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static uint32_t
read32(struct vfu_test_client *c, uint32_t region, uint64_t offset)
{
    uint64_t v = 0;

    CHECK_EQ(vfu_test_region_read_val(c, region, offset, 4, &v), 0);
    return (uint32_t)v;
}

static void
test_sample_device(void)
{
    char path[108];
    struct vfu_test_client c;
    struct vfio_user_device_info info;
    uint8_t reply[256];
    size_t len;
    int status, efd, memfd;
    uint64_t cfg = 0;
    pid_t pid;

    vfu_test_sock_path(path, sizeof(path), "sample");
    pid = start_sample(path);
    REQUIRE(pid > 0);
    REQUIRE_OK(vfu_test_client_open(&c, path));

    /* Identity, as config space and the device describe it. */
    CHECK_EQ(vfu_test_device_get_info(&c, &info), 0);
    CHECK_EQ(info.num_regions, VFU_PCI_DEV_NUM_REGIONS);
    CHECK_EQ(info.num_irqs, VFU_DEV_NUM_IRQS);
    CHECK_EQ(vfu_test_cfg_read_val(&c, 0, 4, &cfg), 0);
    CHECK_EQ(cfg, 0x11001b36);
    CHECK_EQ(vfu_test_get_region_info(&c, VFU_PCI_DEV_BAR0_REGION_IDX, 32, reply, sizeof(reply),
                                      &len, NULL),
             0);
    CHECK_EQ(((struct vfio_region_info *)reply)->size, 0x1000);
    CHECK_EQ(vfu_test_get_region_info(&c, VFU_PCI_DEV_CFG_REGION_IDX, 32, reply, sizeof(reply),
                                      &len, NULL),
             0);
    CHECK_EQ(((struct vfio_region_info *)reply)->size, 4096);

    /* Registers and RAM behind BAR0 and the I/O BAR. */
    CHECK_EQ(read32(&c, 0, 0x0), 0x5c000001);
    CHECK_EQ(vfu_test_region_write_val(&c, 0, 0x4, 4, 0xabcd0123), 0);
    CHECK_EQ(read32(&c, 0, 0x4), 0xabcd0123);
    CHECK_EQ(vfu_test_region_write_val(&c, 0, 0x101, 2, 0xbeef), 0);
    CHECK_EQ(read32(&c, 0, 0x100), 0x00beef00);
    CHECK_EQ(vfu_test_region_write_val(&c, 4, 0x10, 1, 0x7f), 0);
    CHECK_EQ(read32(&c, 4, 0x10), 0x7f);
    /* The device refuses a 2-byte access to a register: the client hears why. */
    CHECK_EQ(vfu_test_region_write_val(&c, 0, 0x4, 2, 1), EINVAL);

    /* An MSI-X interrupt raised by the device's doorbell. */
    efd = vfu_test_eventfd_new();
    REQUIRE(efd >= 0);
    {
        int fds[4] = { -1, efd, -1, -1 };
        CHECK_EQ(vfu_test_set_irqs_eventfds(&c, VFU_DEV_MSIX_IRQ, 1, 1, &fds[1]), 0);
    }
    CHECK_EQ(vfu_test_cfg_write_val(&c, 0x62, 2, 0x8000), 0); /* MSI-X enable */
    CHECK_EQ(vfu_test_region_write_val(&c, 0, 0x8, 4, 1), 0);
    CHECK_EQ(vfu_test_eventfd_wait(efd, 2000), 1);

    /* DMA: the device reads guest memory the client shares. */
    memfd = vfu_test_memfd(4096);
    REQUIRE(memfd >= 0);
    {
        uint8_t *mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        REQUIRE(mem != MAP_FAILED);
        for (int i = 0; i < 4096; i++) {
            mem[i] = (uint8_t)i;
        }
        munmap(mem, 4096);
    }
    CHECK_EQ(vfu_test_dma_map(&c, VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE, 0,
                              0x100000, 4096, memfd),
             0);
    CHECK_EQ(read32(&c, 0, 0x10), 255 * 128 * 16);
    CHECK_EQ(vfu_test_dma_unmap(&c, 0, 0x100000, 4096), 0);
    CHECK_EQ(read32(&c, 0, 0x10), 0);
    close(memfd);

    /* Reset reaches the device and clears its scratch register. */
    CHECK_EQ(vfu_test_device_reset(&c), 0);
    CHECK_EQ(read32(&c, 0, 0x4), 0);
    CHECK_EQ(read32(&c, 0, 0xc), 1);

    /* A second client after the first leaves finds the device as it was. */
    vfu_test_client_close(&c);
    REQUIRE_OK(vfu_test_client_open(&c, path));
    CHECK_EQ(read32(&c, 0, 0x100), 0x00beef00);
    CHECK_EQ(read32(&c, 0, 0xc), 2); /* plus the lost-connection reset */
    vfu_test_client_close(&c);
    close(efd);

    kill(pid, SIGTERM);
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(access(path, F_OK) != 0);
}

/* Reads the migration stream in 1 KiB chunks until a short one. */
static size_t
read_stream(struct vfu_test_client *c, uint8_t *buf, size_t cap)
{
    size_t total = 0;
    uint32_t got;

    do {
        got = 0;
        if (!CHECK_EQ(vfu_test_mig_data_read(c, 1024, buf + total, &got), 0) ||
            !CHECK_LE(total + got + 1024, cap)) {
            break;
        }
        total += got;
    } while (got == 1024);
    return total;
}

/* SCRATCH and the BAR RAM move from one sample process to another. */
static void
test_sample_migration(void)
{
    static uint8_t stream[3 * 8192];
    char path_a[108], path_b[108];
    struct vfu_test_client a, b;
    pid_t pid_a, pid_b;
    size_t pre, len;
    int status;

    vfu_test_sock_path(path_a, sizeof(path_a), "sample-a");
    vfu_test_sock_path(path_b, sizeof(path_b), "sample-b");
    pid_a = start_sample(path_a);
    pid_b = start_sample(path_b);
    REQUIRE(pid_a > 0 && pid_b > 0);
    REQUIRE_OK(vfu_test_client_open(&a, path_a));
    REQUIRE_OK(vfu_test_client_open(&b, path_b));

    CHECK_EQ(vfu_test_region_write_val(&a, 0, 0x4, 4, 0x600df00d), 0);
    CHECK_EQ(vfu_test_region_write_val(&a, 0, 0xffc, 4, 0xcafe0001), 0);
    CHECK_EQ(vfu_test_region_write_val(&a, 4, 0x80, 4, 0x0badc0de), 0);

    CHECK_EQ(vfu_test_mig_set_state(&a, VFIO_USER_DEVICE_STATE_PRE_COPY), 0);
    pre = read_stream(&a, stream, sizeof(stream));
    CHECK_GT(pre, 4096);
    /* Changed during pre-copy: the final image carries it. */
    CHECK_EQ(vfu_test_region_write_val(&a, 0, 0x200, 4, 0x51515151), 0);
    CHECK_EQ(vfu_test_mig_set_state(&a, VFIO_USER_DEVICE_STATE_STOP_COPY), 0);
    len = pre + read_stream(&a, stream + pre, sizeof(stream) - pre);
    CHECK_EQ(len, 2 * pre);
    CHECK_EQ(vfu_test_mig_set_state(&a, VFIO_USER_DEVICE_STATE_STOP), 0);

    CHECK_EQ(vfu_test_mig_set_state(&b, VFIO_USER_DEVICE_STATE_RESUMING), 0);
    /* Stopping with no image is refused; the device waits for one. */
    CHECK_EQ(vfu_test_mig_set_state(&b, VFIO_USER_DEVICE_STATE_RUNNING), EINVAL);
    for (size_t off = 0; off < len; off += 1000) {
        CHECK_EQ(vfu_test_mig_data_write(&b, stream + off,
                                         (uint32_t)(len - off < 1000 ? len - off : 1000)),
                 0);
    }
    CHECK_EQ(vfu_test_mig_set_state(&b, VFIO_USER_DEVICE_STATE_RUNNING), 0);
    CHECK_EQ(read32(&b, 0, 0x4), 0x600df00d);
    CHECK_EQ(read32(&b, 0, 0xffc), 0xcafe0001);
    CHECK_EQ(read32(&b, 0, 0x200), 0x51515151);
    CHECK_EQ(read32(&b, 4, 0x80), 0x0badc0de);

    /* The source, abandoned in STOP by its client, runs again. */
    vfu_test_client_close(&a);
    REQUIRE_OK(vfu_test_client_open(&a, path_a));
    {
        uint32_t state = 0;

        CHECK_EQ(vfu_test_mig_get_state(&a, &state), 0);
        CHECK_EQ(state, VFIO_USER_DEVICE_STATE_RUNNING);
    }
    vfu_test_client_close(&a);
    vfu_test_client_close(&b);
    kill(pid_a, SIGTERM);
    kill(pid_b, SIGTERM);
    CHECK_EQ(waitpid(pid_a, &status, 0), pid_a);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(waitpid(pid_b, &status, 0), pid_b);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int
main(void)
{
    check_watchdog(60);
    RUN_TEST(test_sample_device);
    RUN_TEST(test_sample_migration);
    return check_summary();
}
