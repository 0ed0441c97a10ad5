/*
 * vfu_create_ioeventfd: its validation, and the client receiving working
 * eventfds through DEVICE_GET_REGION_IO_FDS.
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user.h"
#include "private.h"

#define BAR0_SIZE 0x1000

struct reply {
    vfio_user_region_io_fds_reply_t head;
    vfio_user_sub_region_ioeventfd_t entries[4];
};

static ssize_t
bar_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    (void)ctx;
    (void)offset;
    if (!is_write) {
        memset(buf, 0, count);
    }
    return (ssize_t)count;
}

static vfu_ctx_t *
make_device(const char *path)
{
    vfu_ctx_t *ctx =
        vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, NULL, VFU_DEV_TYPE_PCI);

    if (!CHECK(ctx != NULL)) {
        return NULL;
    }
    vfu_setup_log(ctx, vfu_test_log_stderr, LOG_DEBUG);
    CHECK_OK(vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, BAR0_SIZE, bar_access,
                              VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0));
    CHECK_OK(vfu_setup_region(ctx, VFU_PCI_DEV_BAR2_REGION_IDX, BAR0_SIZE, bar_access,
                              VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0));
    return ctx;
}

static void
test_create_errors(void)
{
    char path[108];
    vfu_ctx_t *ctx;
    int efd = vfu_test_eventfd_new();

    REQUIRE(efd >= 0);
    vfu_test_sock_path(path, sizeof(path), "ioefd-errors");
    ctx = make_device(path);
    REQUIRE(ctx != NULL);

    CHECK_ERRNO(vfu_create_ioeventfd(NULL, 0, efd, 0, 4, 0, 0, -1, 0), EINVAL);
    CHECK_ERRNO(vfu_create_ioeventfd(ctx, VFU_PCI_DEV_NUM_REGIONS, efd, 0, 4, 0, 0, -1, 0), EINVAL);
    CHECK_ERRNO(vfu_create_ioeventfd(ctx, UINT32_MAX, efd, 0, 4, 0, 0, -1, 0), EINVAL);
    /* No shadow ioeventfd support. */
    CHECK_ERRNO(vfu_create_ioeventfd(ctx, 0, efd, 0, 4, 0, 0, efd, 0), EINVAL);
    CHECK_ERRNO(vfu_create_ioeventfd(ctx, 0, efd, 0, 4, 0, 0, 0, 0), EINVAL);
    /* Not an fd at all; -1 is accepted (below), as upstream accepts it. */
    CHECK_ERRNO(vfu_create_ioeventfd(ctx, 0, -2, 0, 4, 0, 0, -1, 0), EINVAL);
    /* Outside the region, including by overflow. */
    CHECK_ERRNO(vfu_create_ioeventfd(ctx, 0, efd, BAR0_SIZE - 2, 4, 0, 0, -1, 0), EINVAL);
    CHECK_ERRNO(vfu_create_ioeventfd(ctx, 0, efd, BAR0_SIZE + 1, 0, 0, 0, -1, 0), EINVAL);
    CHECK_ERRNO(vfu_create_ioeventfd(ctx, 0, efd, SIZE_MAX, 4, 0, 0, -1, 0), EINVAL);
    CHECK_ERRNO(vfu_create_ioeventfd(ctx, 0, efd, 0, BAR0_SIZE + 1, 0, 0, -1, 0), EINVAL);
    /* A region that was never set up has no room at all. */
    CHECK_ERRNO(vfu_create_ioeventfd(ctx, VFU_PCI_DEV_BAR1_REGION_IDX, efd, 0, 4, 0, 0, -1, 0),
                EINVAL);
    CHECK(ctx->ioeventfds == NULL);

    /* The edges themselves are fine. */
    CHECK_OK(vfu_create_ioeventfd(ctx, 0, efd, BAR0_SIZE - 4, 4, 0, 0, -1, 0));
    CHECK_OK(vfu_create_ioeventfd(ctx, 0, efd, 0, BAR0_SIZE, 0, 0, -1, 0));
    CHECK_OK(vfu_create_ioeventfd(ctx, 0, efd, BAR0_SIZE, 0, 0, 0, -1, 0));
    /* Newest first. */
    REQUIRE(ctx->ioeventfds != NULL);
    CHECK_EQ(ctx->ioeventfds->gpa_offset, BAR0_SIZE);
    CHECK_EQ(ctx->ioeventfds->next->size, BAR0_SIZE);

    vfu_destroy_ctx(ctx);
    /* The eventfd is the device's: the library did not close it. */
    CHECK(fcntl(efd, F_GETFD) >= 0);
    close(efd);
}

static void
test_region_io_fds(void)
{
    char path[108];
    struct vfu_test_server srv;
    struct vfu_test_client c;
    struct reply reply;
    size_t len = 0, nfds = 0;
    int fds[VFU_TEST_MAX_FDS];
    vfu_ctx_t *ctx;
    int efd_a = vfu_test_eventfd_new();
    int efd_b = vfu_test_eventfd_new();

    REQUIRE(efd_a >= 0 && efd_b >= 0);
    vfu_test_sock_path(path, sizeof(path), "ioefd");
    ctx = make_device(path);
    REQUIRE(ctx != NULL);
    /* Two on BAR0 (the second with datamatch), one on BAR2 sharing an fd. */
    CHECK_OK(vfu_create_ioeventfd(ctx, 0, efd_a, 0x10, 4, 0, 0, -1, 0));
    CHECK_OK(
        vfu_create_ioeventfd(ctx, 0, efd_b, 0x20, 8, KVM_IOEVENTFD_FLAG_DATAMATCH, 0x1234, -1, 0));
    CHECK_OK(vfu_create_ioeventfd(ctx, 2, efd_a, 0x30, 2, 0, 0, -1, 0));
    /* Without an fd: recorded, but nothing a client could use, so not sent. */
    CHECK_OK(vfu_create_ioeventfd(ctx, 0, -1, 0x40, 4, 0, 0, -1, 0));
    CHECK_OK(vfu_realize_ctx(ctx));
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, path));

    /* argsz covering only the header: the count and size needed. */
    memset(&reply, 0, sizeof(reply));
    CHECK_EQ(vfu_test_get_region_io_fds(&c, 0, sizeof(reply.head), &reply, sizeof(reply), &len, fds,
                                        &nfds),
             0);
    CHECK_EQ(len, sizeof(reply.head));
    CHECK_EQ(reply.head.count, 2);
    CHECK_EQ(reply.head.argsz, sizeof(reply.head) + 2 * 48);
    CHECK_EQ(nfds, 0);

    /* Enough room: the entries, newest first, with their fds. */
    memset(&reply, 0, sizeof(reply));
    CHECK_EQ(
        vfu_test_get_region_io_fds(&c, 0, sizeof(reply), &reply, sizeof(reply), &len, fds, &nfds),
        0);
    CHECK_EQ(len, sizeof(reply.head) + 2 * 48);
    CHECK_EQ(reply.head.count, 2);
    CHECK_EQ(reply.head.index, 0);
    REQUIRE_EQ(nfds, 2);
    CHECK_EQ(reply.entries[0].gpa_offset, 0x20);
    CHECK_EQ(reply.entries[0].size, 8);
    CHECK_EQ(reply.entries[0].type, VFIO_USER_IO_FD_TYPE_IOEVENTFD);
    CHECK_EQ(reply.entries[0].flags, KVM_IOEVENTFD_FLAG_DATAMATCH);
    CHECK_EQ(reply.entries[0].datamatch, 0x1234);
    CHECK_EQ(reply.entries[1].gpa_offset, 0x10);
    CHECK_EQ(reply.entries[1].size, 4);
    CHECK_NE(reply.entries[0].fd_index, reply.entries[1].fd_index);
    REQUIRE(reply.entries[0].fd_index < 2 && reply.entries[1].fd_index < 2);

    /* Each received fd signals the device's own eventfd. */
    CHECK_OK(vfu_test_eventfd_signal(fds[reply.entries[0].fd_index], 3));
    CHECK_EQ(vfu_test_eventfd_wait(efd_b, 1000), 3);
    CHECK_EQ(vfu_test_eventfd_read(efd_a), 0);
    CHECK_OK(vfu_test_eventfd_signal(fds[reply.entries[1].fd_index], 5));
    CHECK_EQ(vfu_test_eventfd_wait(efd_a, 1000), 5);
    for (size_t i = 0; i < nfds; i++) {
        close(fds[i]);
    }

    /* The other region's list is its own. */
    memset(&reply, 0, sizeof(reply));
    CHECK_EQ(
        vfu_test_get_region_io_fds(&c, 2, sizeof(reply), &reply, sizeof(reply), &len, fds, &nfds),
        0);
    CHECK_EQ(reply.head.count, 1);
    REQUIRE_EQ(nfds, 1);
    CHECK_EQ(reply.entries[0].gpa_offset, 0x30);
    CHECK_OK(vfu_test_eventfd_signal(fds[0], 1));
    CHECK_EQ(vfu_test_eventfd_wait(efd_a, 1000), 1);
    close(fds[0]);

    /* A set-up region without any: count 0, no fds. */
    memset(&reply, 0, sizeof(reply));
    CHECK_EQ(vfu_test_get_region_io_fds(&c, VFU_PCI_DEV_CFG_REGION_IDX, sizeof(reply), &reply,
                                        sizeof(reply), &len, fds, &nfds),
             0);
    CHECK_EQ(reply.head.count, 0);
    CHECK_EQ(nfds, 0);

    vfu_test_client_close(&c);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);
    close(efd_a);
    close(efd_b);
}

int
main(void)
{
    check_watchdog(60);
    RUN_TEST(test_create_errors);
    RUN_TEST(test_region_io_fds);
    return check_summary();
}
