/*
 * libFuzzer harness for the whole request path.
 *
 * Input: one byte of FUZZ_OPT_* options, then the bytes a client sends after
 * its VERSION, fd-less and taken as they are (headers, sizes and payloads
 * alike). Each input gets a fresh device (fuzz_device.h) and a fresh
 * connection over its UNIX socket. Before the input the harness maps a memfd
 * for DMA twice (mmap and file I/O) and installs MSI-X eventfds, so that
 * requests and device-side DMA and interrupts have something real to reach.
 * It then writes the input, half-closes the socket and runs vfu_run_ctx until
 * the connection ends, reading every reply meanwhile.
 *
 * Beyond the sanitizers it checks that the server always reaches the end of
 * the stream, that vfu_run_ctx only fails the documented ways, that a client
 * leaving mid-migration leaves the device running with dirty-page logging
 * off, and that every DMA mapping is gone when the connection is
 * (fuzz_device_destroy).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuzz_device.h"
#include "private.h"

#define DMA_IOVA 0x100000         /* mapped into the server */
#define DMA_FILE_IO_IOVA 0x300000 /* the same memory, reached by pread/pwrite */
#define DMA_SIZE 0x10000
#define PROLOGUE_EVENTFDS 4
/* Far more rounds than any input needs: reaching it means the server stalls. */
#define MAX_ROUNDS 100000

static char sock_path[108];
static int bar_memfd = -1;
static int dma_memfd = -1;
static int irq_eventfd = -1;

static void
die(const char *what)
{
    fprintf(stderr, "fuzz_requests: %s: %s\n", what, strerror(errno));
    abort();
}

static int
new_memfd(const char *name, size_t size)
{
    int fd = memfd_create(name, MFD_CLOEXEC);

    if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
        die("memfd");
    }
    return fd;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(sock_path, sizeof(sock_path), "/tmp/vfu-fuzz-requests-%d.sock", (int)getpid());
    bar_memfd = new_memfd("fuzz-bar4", 0x2000);
    dma_memfd = new_memfd("fuzz-dma", DMA_SIZE);
    irq_eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (irq_eventfd < 0) {
        die("eventfd");
    }
    return 0;
}

/* Sends one small message of the harness's own, with fds. */
static void
send_msg(int fd, const void *buf, size_t len, const int *fds, size_t nr_fds)
{
    union {
        char buf[CMSG_SPACE(PROLOGUE_EVENTFDS * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    ssize_t n;

    if (nr_fds > 0) {
        struct cmsghdr *cm;

        memset(&control, 0, sizeof(control));
        mh.msg_control = control.buf;
        mh.msg_controllen = CMSG_SPACE(nr_fds * sizeof(int));
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(nr_fds * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, nr_fds * sizeof(int));
    }
    /* A fresh socket takes them whole. */
    n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    if (n != (ssize_t)len) {
        die("sendmsg");
    }
}

/* Reads and drops whatever the server sent, closing any fds that came. */
static void
drain(int fd)
{
    static char buf[1 << 16];
    union {
        char buf[CMSG_SPACE(253 * sizeof(int))];
        struct cmsghdr align;
    } control;

    for (;;) {
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
        struct msghdr mh = {
            .msg_iov = &iov,
            .msg_iovlen = 1,
            .msg_control = control.buf,
            .msg_controllen = sizeof(control.buf),
        };
        ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

        if (n <= 0) {
            return;
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                size_t nr = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

                for (size_t i = 0; i < nr; i++) {
                    int received;

                    memcpy(&received, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                    close(received);
                }
            }
        }
    }
}

static int
connect_client(void)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0) {
        die("socket");
    }
    strcpy(addr.sun_path, sock_path);
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        die("connect");
    }
    return fd;
}

static void
negotiate(vfu_ctx_t *ctx, int fd)
{
    static const char json[] =
        "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":1048576,"
        "\"max_dma_maps\":16,\"pgsizes\":4096,\"write_multiple\":true}}";
    struct vfio_user_version version = { .major = 0, .minor = 2 };
    struct vfio_user_header hdr = {
        .cmd = VFIO_USER_VERSION,
        .msg_size = sizeof(hdr) + sizeof(version) + sizeof(json),
    };
    uint8_t msg[sizeof(hdr) + sizeof(version) + sizeof(json)];

    memcpy(msg, &hdr, sizeof(hdr));
    memcpy(msg + sizeof(hdr), &version, sizeof(version));
    memcpy(msg + sizeof(hdr) + sizeof(version), json, sizeof(json));
    send_msg(fd, msg, sizeof(msg), NULL, 0);
    if (vfu_attach_ctx(ctx) != 0) {
        die("vfu_attach_ctx");
    }
}

/* A DMA mapping and MSI-X eventfds for the input to play with. */
static void
prologue(int fd)
{
    struct {
        struct vfio_user_header hdr;
        struct vfio_user_dma_map map;
    } __attribute__((packed)) map = {
        .hdr = { .msg_id = 1, .cmd = VFIO_USER_DMA_MAP, .msg_size = sizeof(map) },
        .map = {
            .argsz = sizeof(map.map),
            .flags = VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE,
            .addr = DMA_IOVA, .size = DMA_SIZE,
        },
    };
    struct {
        struct vfio_user_header hdr;
        struct vfio_user_dma_map map;
    } __attribute__((packed)) file_io = {
        .hdr = { .msg_id = 2, .cmd = VFIO_USER_DMA_MAP, .msg_size = sizeof(file_io) },
        .map = {
            .argsz = sizeof(file_io.map),
            .flags = VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE |
                     VFIO_USER_F_DMA_REGION_FILE_IO,
            .addr = DMA_FILE_IO_IOVA, .size = DMA_SIZE,
        },
    };
    struct {
        struct vfio_user_header hdr;
        struct vfio_irq_set set;
    } __attribute__((packed)) irqs = {
        .hdr = { .msg_id = 3, .cmd = VFIO_USER_DEVICE_SET_IRQS,
                 .msg_size = sizeof(irqs) },
        .set = {
            .argsz = sizeof(irqs.set),
            .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
            .index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 0, .count = PROLOGUE_EVENTFDS,
        },
    };
    int efds[PROLOGUE_EVENTFDS];

    for (int i = 0; i < PROLOGUE_EVENTFDS; i++) {
        efds[i] = irq_eventfd;
    }
    send_msg(fd, &map, sizeof(map), &dma_memfd, 1);
    send_msg(fd, &file_io, sizeof(file_io), &dma_memfd, 1);
    send_msg(fd, &irqs, sizeof(irqs), efds, PROLOGUE_EVENTFDS);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_device dev;
    unsigned options;
    vfu_ctx_t *ctx;
    size_t sent = 0;
    bool shut = false, server_done = false;
    int fd;

    if (size < 1) {
        return -1;
    }
    options = data[0];
    data++;
    size--;

    ctx = fuzz_device_create(&dev, sock_path, options, bar_memfd, irq_eventfd);
    fd = connect_client();
    negotiate(ctx, fd);
    if (options & FUZZ_OPT_SMALL_SNDBUF) {
        int sndbuf = 4096; /* the kernel's minimum, doubled */

        setsockopt(ctx->conn.main.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    }
    prologue(fd);

    for (int round = 0; !server_done; round++) {
        int ret;

        if (round == MAX_ROUNDS) {
            fprintf(stderr,
                    "the server stopped consuming the stream: %zu of %zu "
                    "bytes sent\n",
                    sent, size);
            abort();
        }
        if (sent < size) {
            ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);

            if (n > 0) {
                sent += (size_t)n;
            } else if (errno == EPIPE || errno == ECONNRESET) {
                sent = size; /* the server hung up: the rest goes nowhere */
            }
        } else if (!shut) {
            shutdown(fd, SHUT_WR);
            shut = true;
        }

        ret = vfu_run_ctx(ctx);
        if (ret < 0) {
            if (errno == EBUSY) {
                vfu_device_quiesced(ctx, (options & FUZZ_OPT_QUIESCE_FAILS) ? EIO : 0);
            } else if (errno == ENOTCONN) {
                server_done = true;
            } else {
                die("vfu_run_ctx failed an undocumented way");
            }
        }
        drain(fd);
    }
    if (ctx->migr_state != VFIO_USER_DEVICE_STATE_RUNNING ||
        dev.migr_state != VFU_MIGR_STATE_RUNNING || ctx->dirty_pgsize != 0) {
        fprintf(stderr,
                "client gone, device left in state %u (device says %d), "
                "logging at %llu\n",
                ctx->migr_state, (int)dev.migr_state, (unsigned long long)ctx->dirty_pgsize);
        abort();
    }
    close(fd);
    fuzz_device_destroy(&dev, ctx);
    return 0;
}
