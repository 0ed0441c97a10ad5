/*
 * vfio-user test client: see client.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "client.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(struct vfio_user_header) == VFU_TEST_HDR_SIZE,
               "vfio_user_header must be 16 bytes");
_Static_assert(sizeof(struct vfu_test_write_entry) == 24,
               "REGION_WRITE_MULTI entry must be 24 bytes");

/* Payload of DMA_READ / DMA_WRITE (server to client) and their replies. */
struct dma_rw_hdr {
    uint64_t addr;
    uint64_t count;
};

/* Server-to-client commands bigger than this are drained, not served. */
#define SERVER_CMD_MAX_PAYLOAD (64u << 20)

/* ------------------------------------------------------------------------ */
/* Time.                                                                    */

uint64_t
vfu_test_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void
vfu_test_sleep_ms(unsigned ms)
{
    struct timespec ts = {
        .tv_sec = ms / 1000,
        .tv_nsec = (long)(ms % 1000) * 1000000L,
    };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Deadline for a timeout in ms; 0 means "never". */
static uint64_t
deadline_after(int timeout_ms)
{
    if (timeout_ms < 0) {
        return 0;
    }
    return vfu_test_now_ns() + (uint64_t)timeout_ms * 1000000ull + 1;
}

/* Milliseconds left until the deadline, rounded up; -1 for no deadline. */
static int
ms_left(uint64_t deadline)
{
    uint64_t now;
    uint64_t left;

    if (deadline == 0) {
        return -1;
    }
    now = vfu_test_now_ns();
    if (now >= deadline) {
        return 0;
    }
    left = (deadline - now + 999999ull) / 1000000ull;
    return left > INT_MAX ? INT_MAX : (int)left;
}

/*
 * Waits until `fd` has one of `events` (or an error/hangup condition).
 * 0 when ready, -1/ETIMEDOUT, or -1/errno from poll.
 */
static int
wait_fd(int fd, short events, uint64_t deadline)
{
    struct pollfd pfd = { .fd = fd, .events = events };
    int ret;

    for (;;) {
        ret = poll(&pfd, 1, ms_left(deadline));
        if (ret > 0) {
            return 0;
        }
        if (ret == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (errno != EINTR) {
            return -1;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Sending.                                                                 */

static void
close_fds(const int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
}

/*
 * Sends all bytes described by iov[0..iovcnt) on `fd`, attaching `fds` to the
 * first chunk that goes out.  The iovec array is modified.
 */
static int
send_iov(int fd, uint64_t deadline, struct iovec *iov, int iovcnt,
         const int *fds, size_t nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * VFU_TEST_MAX_SEND_FDS)];
        struct cmsghdr align;
    } ctl;
    bool fds_sent = (nfds == 0);
    size_t total = 0;

    if (nfds > VFU_TEST_MAX_SEND_FDS) {
        errno = EINVAL;
        return -1;
    }
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    for (int i = 0; i < iovcnt; i++) {
        total += iov[i].iov_len;
    }
    if (total == 0 && nfds > 0) {
        /* ancillary data needs at least one byte of payload */
        errno = EINVAL;
        return -1;
    }

    while (total > 0) {
        struct msghdr msg = { 0 };
        ssize_t n;

        /* skip exhausted iovecs */
        while (iovcnt > 0 && iov->iov_len == 0) {
            iov++;
            iovcnt--;
        }
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)iovcnt;
        if (!fds_sent) {
            struct cmsghdr *cm;

            memset(&ctl, 0, sizeof(ctl));
            msg.msg_control = ctl.buf;
            msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
            cm = CMSG_FIRSTHDR(&msg);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
            memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
        }

        n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (wait_fd(fd, POLLOUT, deadline) < 0) {
                    return -1;
                }
                continue;
            }
            if (errno == EPIPE) {
                errno = ECONNRESET; /* one errno for "peer closed" */
            }
            return -1;
        }
        fds_sent = true;
        total -= (size_t)n;
        /* advance the iovecs past what was written */
        while (n > 0) {
            if ((size_t)n >= iov->iov_len) {
                n -= (ssize_t)iov->iov_len;
                iov->iov_len = 0;
                iov++;
                iovcnt--;
            } else {
                iov->iov_base = (char *)iov->iov_base + n;
                iov->iov_len -= (size_t)n;
                n = 0;
            }
        }
    }
    return 0;
}

int
vfu_test_send_raw_fd(int fd, int timeout_ms, const void *buf, size_t len,
                     const int *fds, size_t nfds)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

    return send_iov(fd, deadline_after(timeout_ms), &iov, 1, fds, nfds);
}

int
vfu_test_send_raw(struct vfu_test_client *c, const void *buf, size_t len,
                  const int *fds, size_t nfds)
{
    return vfu_test_send_raw_fd(c->fd, c->timeout_ms, buf, len, fds, nfds);
}

/* Sends header + payload parts; returns the msg_id used or -1. */
static int
send_cmd_v(struct vfu_test_client *c, uint16_t cmd, uint32_t flags,
           const struct iovec *parts, int nparts, const int *fds, size_t nfds)
{
    struct vfio_user_header hdr;
    struct iovec iov[8];
    size_t len = 0;
    uint16_t id;

    if (nparts > 7) {
        errno = EINVAL;
        return -1;
    }
    for (int i = 0; i < nparts; i++) {
        len += parts[i].iov_len;
        iov[i + 1] = parts[i];
    }
    if (len > UINT32_MAX - VFU_TEST_HDR_SIZE) {
        errno = EMSGSIZE;
        return -1;
    }

    id = c->next_id++;
    memset(&hdr, 0, sizeof(hdr));
    hdr.msg_id = id;
    hdr.cmd = cmd;
    hdr.msg_size = (uint32_t)(VFU_TEST_HDR_SIZE + len);
    hdr.flags = flags;
    hdr.error_no = 0;
    iov[0].iov_base = &hdr;
    iov[0].iov_len = sizeof(hdr);

    if (send_iov(c->fd, deadline_after(c->timeout_ms), iov, nparts + 1,
                 fds, nfds) < 0) {
        return -1;
    }
    return id;
}

int
vfu_test_send_cmd(struct vfu_test_client *c, uint16_t cmd, uint32_t flags,
                  const void *payload, size_t len, const int *fds, size_t nfds)
{
    struct iovec part = { .iov_base = (void *)payload, .iov_len = len };

    return send_cmd_v(c, cmd, flags, &part, len > 0 ? 1 : 0, fds, nfds);
}

int
vfu_test_send_reply(struct vfu_test_client *c, int fd, uint16_t msg_id,
                    uint16_t cmd, uint32_t error_no,
                    const void *payload, size_t len)
{
    struct vfio_user_header hdr;
    struct iovec iov[2];

    memset(&hdr, 0, sizeof(hdr));
    hdr.msg_id = msg_id;
    hdr.cmd = cmd;
    hdr.msg_size = (uint32_t)(VFU_TEST_HDR_SIZE + len);
    hdr.flags = VFIO_USER_F_TYPE_REPLY;
    if (error_no != 0) {
        hdr.flags |= VFIO_USER_F_ERROR;
    }
    hdr.error_no = error_no;
    iov[0].iov_base = &hdr;
    iov[0].iov_len = sizeof(hdr);
    iov[1].iov_base = (void *)payload;
    iov[1].iov_len = len;
    return send_iov(fd, deadline_after(c->timeout_ms), iov, 2, NULL, 0);
}

/* ------------------------------------------------------------------------ */
/* Receiving.                                                               */

/* File descriptors collected while reading one message. */
struct fdbag {
    int fds[VFU_TEST_MAX_FDS];
    size_t n;
};

static void
fdbag_take(struct fdbag *bag, struct msghdr *msg)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm != NULL;
         cm = CMSG_NXTHDR(msg, cm)) {
        size_t cnt;
        const unsigned char *data;

        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        cnt = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        data = CMSG_DATA(cm);
        for (size_t i = 0; i < cnt; i++) {
            int fd;

            memcpy(&fd, data + i * sizeof(int), sizeof(int));
            if (bag->n < VFU_TEST_MAX_FDS) {
                bag->fds[bag->n++] = fd;
            } else {
                close(fd);
            }
        }
    }
}

/* Hands the bag's fds to the caller (room for VFU_TEST_MAX_FDS) or closes
 * them when fds is NULL. */
static void
fdbag_give(struct fdbag *bag, int *fds, size_t *nfds)
{
    if (fds != NULL) {
        memcpy(fds, bag->fds, bag->n * sizeof(int));
    } else {
        close_fds(bag->fds, bag->n);
    }
    if (nfds != NULL) {
        *nfds = fds != NULL ? bag->n : 0;
    }
    bag->n = 0;
}

/*
 * Reads exactly `len` bytes into buf (buf NULL: discard them), collecting
 * fds.  -1/ECONNRESET on EOF, -1/ETIMEDOUT, or -1/errno.
 */
static int
recv_exact(int fd, uint64_t deadline, void *buf, size_t len,
           struct fdbag *bag)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * VFU_TEST_MAX_SEND_FDS)];
        struct cmsghdr align;
    } ctl;
    char scratch[4096];
    size_t done = 0;

    while (done < len) {
        struct msghdr msg = { 0 };
        struct iovec iov;
        ssize_t n;

        if (buf != NULL) {
            iov.iov_base = (char *)buf + done;
            iov.iov_len = len - done;
        } else {
            iov.iov_base = scratch;
            iov.iov_len = len - done < sizeof(scratch) ? len - done
                                                       : sizeof(scratch);
        }
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctl.buf;
        msg.msg_controllen = sizeof(ctl.buf);

        n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (wait_fd(fd, POLLIN, deadline) < 0) {
                    return -1;
                }
                continue;
            }
            return -1;
        }
        if (msg.msg_controllen > 0) {
            fdbag_take(bag, &msg);
        }
        if (n == 0) {
            errno = ECONNRESET;
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

/* Reads a header and validates msg_size. */
static int
recv_hdr(int fd, uint64_t deadline, struct vfio_user_header *hdr,
         struct fdbag *bag)
{
    if (recv_exact(fd, deadline, hdr, sizeof(*hdr), bag) < 0) {
        return -1;
    }
    if (hdr->msg_size < VFU_TEST_HDR_SIZE) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

/* Reads a payload of plen bytes: the first `cap` into buf, the rest is
 * dropped (then -1/EMSGSIZE after the whole payload was consumed). */
static int
recv_body(int fd, uint64_t deadline, size_t plen, void *buf, size_t cap,
          struct fdbag *bag)
{
    size_t keep = plen < cap ? plen : cap;

    if (recv_exact(fd, deadline, buf, keep, bag) < 0) {
        return -1;
    }
    if (plen > keep) {
        if (recv_exact(fd, deadline, NULL, plen - keep, bag) < 0) {
            return -1;
        }
        errno = EMSGSIZE;
        return -1;
    }
    return 0;
}

int
vfu_test_recv_msg_fd(int fd, int timeout_ms, struct vfio_user_header *hdr,
                     void *buf, size_t cap, size_t *len,
                     int *fds, size_t *nfds)
{
    uint64_t deadline = deadline_after(timeout_ms);
    struct fdbag bag = { .n = 0 };
    struct vfio_user_header h;
    size_t plen;
    int ret;
    int err;

    memset(&h, 0, sizeof(h));
    if (len != NULL) {
        *len = 0;
    }
    if (nfds != NULL) {
        *nfds = 0;
    }
    ret = recv_hdr(fd, deadline, &h, &bag);
    if (ret == 0) {
        if (hdr != NULL) {
            *hdr = h;
        }
        plen = h.msg_size - VFU_TEST_HDR_SIZE;
        if (len != NULL) {
            *len = plen;
        }
        ret = recv_body(fd, deadline, plen, buf, cap, &bag);
    } else if (hdr != NULL) {
        *hdr = h;
    }
    err = errno;
    fdbag_give(&bag, fds, nfds);
    errno = err;
    return ret;
}

int
vfu_test_recv_msg(struct vfu_test_client *c, struct vfio_user_header *hdr,
                  void *buf, size_t cap, size_t *len, int *fds, size_t *nfds)
{
    return vfu_test_recv_msg_fd(c->fd, c->timeout_ms, hdr, buf, cap, len,
                                fds, nfds);
}

int
vfu_test_wait_closed(struct vfu_test_client *c, int timeout_ms)
{
    uint64_t deadline = deadline_after(timeout_ms < 0 ? c->timeout_ms
                                                      : timeout_ms);
    struct fdbag bag = { .n = 0 };
    char buf[4096];

    for (;;) {
        int ret = recv_exact(c->fd, deadline, buf, sizeof(buf), &bag);
        int err = errno;

        close_fds(bag.fds, bag.n);
        bag.n = 0;
        if (ret == 0) {
            continue;
        }
        if (err == ECONNRESET || err == EPIPE) {
            return 0;
        }
        errno = err;
        return -1;
    }
}

/* ------------------------------------------------------------------------ */
/* Server-to-client commands.                                               */

static struct vfu_test_dma_window *
find_window(struct vfu_test_client *c, uint64_t addr, uint64_t count)
{
    for (unsigned i = 0; i < c->nr_dma_windows; i++) {
        struct vfu_test_dma_window *w = &c->dma_windows[i];

        if (addr >= w->iova && count <= w->size &&
            addr - w->iova <= w->size - count) {
            return w;
        }
    }
    return NULL;
}

int
vfu_test_client_add_dma_window(struct vfu_test_client *c, uint64_t iova,
                               void *ptr, uint64_t size)
{
    if (c->nr_dma_windows >= VFU_TEST_MAX_DMA_WINDOWS) {
        errno = ENOSPC;
        return -1;
    }
    c->dma_windows[c->nr_dma_windows].iova = iova;
    c->dma_windows[c->nr_dma_windows].ptr = ptr;
    c->dma_windows[c->nr_dma_windows].size = size;
    c->nr_dma_windows++;
    return 0;
}

int
vfu_test_client_del_dma_window(struct vfu_test_client *c, uint64_t iova)
{
    for (unsigned i = 0; i < c->nr_dma_windows; i++) {
        if (c->dma_windows[i].iova == iova) {
            memmove(&c->dma_windows[i], &c->dma_windows[i + 1],
                    (c->nr_dma_windows - i - 1) * sizeof(c->dma_windows[0]));
            c->nr_dma_windows--;
            return 0;
        }
    }
    errno = ENOENT;
    return -1;
}

/* Built-in handler: DMA_READ/DMA_WRITE against the registered windows. */
int
vfu_test_serve_dma_cmd(struct vfu_test_client *c, int fd,
                       const struct vfio_user_header *hdr,
                       const void *payload, size_t len)
{
    bool want_reply = !(hdr->flags & VFIO_USER_F_NO_REPLY);
    struct dma_rw_hdr rw;
    struct vfu_test_dma_window *w;

    if (hdr->cmd != VFIO_USER_DMA_READ && hdr->cmd != VFIO_USER_DMA_WRITE) {
        goto fail_einval;
    }
    if (len < sizeof(rw)) {
        goto fail_einval;
    }
    memcpy(&rw, payload, sizeof(rw));

    if (hdr->cmd == VFIO_USER_DMA_WRITE) {
        if (len - sizeof(rw) != rw.count) {
            goto fail_einval;
        }
        w = find_window(c, rw.addr, rw.count);
        if (w == NULL) {
            return want_reply ? vfu_test_send_reply(c, fd, hdr->msg_id,
                                                    hdr->cmd, EFAULT, NULL, 0)
                              : 0;
        }
        memcpy((char *)w->ptr + (rw.addr - w->iova),
               (const char *)payload + sizeof(rw), rw.count);
        return want_reply ? vfu_test_send_reply(c, fd, hdr->msg_id, hdr->cmd,
                                                0, &rw, sizeof(rw))
                          : 0;
    }

    /* DMA_READ */
    if (len != sizeof(rw) || rw.count > SERVER_CMD_MAX_PAYLOAD) {
        goto fail_einval;
    }
    w = find_window(c, rw.addr, rw.count);
    if (w == NULL) {
        return want_reply ? vfu_test_send_reply(c, fd, hdr->msg_id, hdr->cmd,
                                                EFAULT, NULL, 0)
                          : 0;
    }
    if (!want_reply) {
        return 0;
    } else {
        struct vfio_user_header rh;
        struct iovec iov[3];

        memset(&rh, 0, sizeof(rh));
        rh.msg_id = hdr->msg_id;
        rh.cmd = hdr->cmd;
        rh.msg_size = (uint32_t)(VFU_TEST_HDR_SIZE + sizeof(rw) + rw.count);
        rh.flags = VFIO_USER_F_TYPE_REPLY;
        iov[0].iov_base = &rh;
        iov[0].iov_len = sizeof(rh);
        iov[1].iov_base = &rw;
        iov[1].iov_len = sizeof(rw);
        iov[2].iov_base = (char *)w->ptr + (rw.addr - w->iova);
        iov[2].iov_len = rw.count;
        return send_iov(fd, deadline_after(c->timeout_ms), iov, 3, NULL, 0);
    }

fail_einval:
    return want_reply ? vfu_test_send_reply(c, fd, hdr->msg_id, hdr->cmd,
                                            EINVAL, NULL, 0)
                      : 0;
}

/*
 * Reads the body of a message whose header was already read from `fd` and
 * which is not the reply being waited for: serves it if it is a command,
 * drops it (as stray) if it is a reply.  Returns 1 if a command was served,
 * 0 if a stray message was dropped, -1/errno on transport errors.
 */
static int
handle_other_msg(struct vfu_test_client *c, int fd, uint64_t deadline,
                 const struct vfio_user_header *hdr, struct fdbag *bag)
{
    size_t plen = hdr->msg_size - VFU_TEST_HDR_SIZE;
    bool is_cmd = (hdr->flags & VFIO_USER_F_TYPE_MASK) ==
                  VFIO_USER_F_TYPE_COMMAND;
    void *buf = NULL;
    int ret;

    if (is_cmd && plen <= SERVER_CMD_MAX_PAYLOAD) {
        buf = malloc(plen > 0 ? plen : 1);
        if (buf == NULL) {
            return -1;
        }
        ret = recv_body(fd, deadline, plen, buf, plen, bag);
    } else {
        ret = recv_body(fd, deadline, plen, NULL, 0, bag);
        if (ret < 0 && errno == EMSGSIZE) {
            ret = 0;
        }
        if (ret == 0 && is_cmd) {
            /* too big to serve: refuse it */
            int err = 0;

            if (!(hdr->flags & VFIO_USER_F_NO_REPLY)) {
                err = vfu_test_send_reply(c, fd, hdr->msg_id, hdr->cmd,
                                          EINVAL, NULL, 0);
            }
            close_fds(bag->fds, bag->n);
            bag->n = 0;
            c->server_cmds++;
            return err < 0 ? -1 : 1;
        }
    }
    if (ret < 0) {
        int err = errno;

        free(buf);
        close_fds(bag->fds, bag->n);
        bag->n = 0;
        errno = err;
        return -1;
    }

    if (!is_cmd) {
        close_fds(bag->fds, bag->n);
        bag->n = 0;
        c->stray_msgs++;
        return 0;
    }

    c->server_cmds++;
    if (c->server_cmd_fn != NULL) {
        ret = c->server_cmd_fn(c, fd, hdr, buf, plen, bag->fds, bag->n,
                               c->server_cmd_opaque);
    } else {
        ret = vfu_test_serve_dma_cmd(c, fd, hdr, buf, plen);
    }
    {
        int err = errno;

        free(buf);
        close_fds(bag->fds, bag->n);
        bag->n = 0;
        errno = err;
    }
    return ret < 0 ? -1 : 1;
}

/* Reads and handles one message from the twin socket. */
static int
serve_twin(struct vfu_test_client *c, uint64_t deadline)
{
    struct fdbag bag = { .n = 0 };
    struct vfio_user_header hdr;

    if (recv_hdr(c->twin_fd, deadline, &hdr, &bag) < 0) {
        int err = errno;

        close_fds(bag.fds, bag.n);
        errno = err;
        return -1;
    }
    return handle_other_msg(c, c->twin_fd, deadline, &hdr, &bag);
}

/*
 * Waits for the reply to `id` (id < 0: no reply expected, serve commands
 * until the deadline).  See vfu_test_request for the outputs.
 */
static int
wait_reply(struct vfu_test_client *c, int id, int timeout_ms,
           void *reply, size_t cap, size_t *reply_len,
           int *reply_fds, size_t *reply_nfds, int *served)
{
    uint64_t deadline = deadline_after(timeout_ms);

    for (;;) {
        struct pollfd pfd[2];
        nfds_t npfd = 1;
        int ret;

        pfd[0].fd = c->fd;
        pfd[0].events = POLLIN;
        pfd[0].revents = 0;
        if (c->twin_fd >= 0) {
            pfd[1].fd = c->twin_fd;
            pfd[1].events = POLLIN;
            pfd[1].revents = 0;
            npfd = 2;
        }
        ret = poll(pfd, npfd, ms_left(deadline));
        if (ret < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        if (ret == 0) {
            errno = ETIMEDOUT;
            return -1;
        }

        if (npfd == 2 && pfd[1].revents != 0) {
            ret = serve_twin(c, deadline);
            if (ret < 0) {
                return -1;
            }
            if (ret > 0) {
                (*served)++;
                deadline = deadline_after(timeout_ms);
            }
            continue;
        }

        if (pfd[0].revents != 0) {
            struct fdbag bag = { .n = 0 };
            struct vfio_user_header hdr;
            int err;

            if (recv_hdr(c->fd, deadline, &hdr, &bag) < 0) {
                err = errno;
                close_fds(bag.fds, bag.n);
                errno = err;
                return -1;
            }
            if (id >= 0 && hdr.msg_id == (uint16_t)id &&
                (hdr.flags & VFIO_USER_F_TYPE_MASK) ==
                    VFIO_USER_F_TYPE_REPLY) {
                size_t plen = hdr.msg_size - VFU_TEST_HDR_SIZE;

                c->last_hdr = hdr;
                if (reply_len != NULL) {
                    *reply_len = plen;
                }
                ret = recv_body(c->fd, deadline, plen, reply, cap, &bag);
                err = errno;
                fdbag_give(&bag, reply_fds, reply_nfds);
                if (ret < 0 && !(err == EMSGSIZE &&
                                 (hdr.flags & VFIO_USER_F_ERROR))) {
                    errno = err;
                    return -1;
                }
                if (hdr.flags & VFIO_USER_F_ERROR) {
                    /* an error reply's payload, if any, is not our concern */
                    return hdr.error_no != 0 ? (int)hdr.error_no : EIO;
                }
                return 0;
            }
            ret = handle_other_msg(c, c->fd, deadline, &hdr, &bag);
            if (ret < 0) {
                return -1;
            }
            if (ret > 0) {
                (*served)++;
                deadline = deadline_after(timeout_ms);
            }
        }
    }
}

static int
request_v(struct vfu_test_client *c, uint16_t cmd,
          const struct iovec *parts, int nparts, const int *fds, size_t nfds,
          void *reply, size_t cap, size_t *reply_len,
          int *reply_fds, size_t *reply_nfds)
{
    int served = 0;
    int id;

    if (reply_len != NULL) {
        *reply_len = 0;
    }
    if (reply_nfds != NULL) {
        *reply_nfds = 0;
    }
    id = send_cmd_v(c, cmd, 0, parts, nparts, fds, nfds);
    if (id < 0) {
        return -1;
    }
    return wait_reply(c, id, c->timeout_ms, reply, cap, reply_len,
                      reply_fds, reply_nfds, &served);
}

int
vfu_test_request(struct vfu_test_client *c, uint16_t cmd,
                 const void *req, size_t req_len,
                 const int *fds, size_t nfds,
                 void *reply, size_t cap, size_t *reply_len,
                 int *reply_fds, size_t *reply_nfds)
{
    struct iovec part = { .iov_base = (void *)req, .iov_len = req_len };

    return request_v(c, cmd, &part, req_len > 0 ? 1 : 0, fds, nfds,
                     reply, cap, reply_len, reply_fds, reply_nfds);
}

int
vfu_test_client_serve(struct vfu_test_client *c, int timeout_ms)
{
    int served = 0;
    int ret;

    ret = wait_reply(c, -1, timeout_ms < 0 ? 0 : timeout_ms, NULL, 0, NULL,
                     NULL, NULL, &served);
    if (ret < 0 && errno == ETIMEDOUT) {
        return served;
    }
    return ret < 0 ? -1 : served;
}

/* ------------------------------------------------------------------------ */
/* Connection and negotiation.                                              */

void
vfu_test_client_init(struct vfu_test_client *c)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->twin_fd = -1;
    c->next_id = 1;
    c->max_data_xfer_size = VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE;
    c->max_msg_fds = 1;
    c->timeout_ms = VFU_TEST_DEFAULT_TIMEOUT_MS;
}

int
vfu_test_client_connect(struct vfu_test_client *c, const char *path,
                        int retry_ms)
{
    struct sockaddr_un sun;
    uint64_t deadline;
    int last_err = 0;

    vfu_test_client_init(c);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sun.sun_path, path);
    deadline = deadline_after(retry_ms < 0 ? VFU_TEST_DEFAULT_CONNECT_MS
                                           : retry_ms);

    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                        0);
        int flags;

        if (fd < 0) {
            return -1;
        }
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
            flags = fcntl(fd, F_GETFL);
            if (flags >= 0) {
                (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
            }
            c->fd = fd;
            return 0;
        }
        last_err = errno;
        close(fd);
        if (last_err != ENOENT && last_err != ECONNREFUSED &&
            last_err != EAGAIN && last_err != EINTR) {
            errno = last_err;
            return -1;
        }
        if (ms_left(deadline) == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        vfu_test_sleep_ms(5);
    }
}

void
vfu_test_client_close(struct vfu_test_client *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    if (c->twin_fd >= 0) {
        close(c->twin_fd);
        c->twin_fd = -1;
    }
    free(c->server_json);
    c->server_json = NULL;
    c->server_json_len = 0;
}

/* Points at the value after "key" and ':' (whitespace skipped), or NULL. */
static const char *
json_value(const char *json, const char *key)
{
    size_t klen;
    const char *p;

    if (json == NULL || key == NULL) {
        return NULL;
    }
    klen = strlen(key);
    for (p = json; (p = strchr(p, '"')) != NULL; p++) {
        const char *q;

        if (strncmp(p + 1, key, klen) != 0 || p[1 + klen] != '"') {
            continue;
        }
        q = p + 2 + klen;
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r') {
            q++;
        }
        if (*q != ':') {
            continue;
        }
        q++;
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r') {
            q++;
        }
        return q;
    }
    return NULL;
}

bool
vfu_test_json_has_key(const char *json, const char *key)
{
    return json_value(json, key) != NULL;
}

int
vfu_test_json_get_u64(const char *json, const char *key, uint64_t *out)
{
    const char *v = json_value(json, key);
    char *end;
    unsigned long long val;

    if (v == NULL || *v < '0' || *v > '9') {
        return -1;
    }
    errno = 0;
    val = strtoull(v, &end, 10);
    if (errno != 0 || end == v) {
        return -1;
    }
    *out = (uint64_t)val;
    return 0;
}

int
vfu_test_json_get_bool(const char *json, const char *key, bool *out)
{
    const char *v = json_value(json, key);

    if (v == NULL) {
        return -1;
    }
    if (strncmp(v, "true", 4) == 0) {
        *out = true;
        return 0;
    }
    if (strncmp(v, "false", 5) == 0) {
        *out = false;
        return 0;
    }
    return -1;
}

int
vfu_test_negotiate(struct vfu_test_client *c, uint16_t major, uint16_t minor,
                   const char *json)
{
    struct vfio_user_version ver;
    struct iovec parts[2];
    int nparts = 1;
    size_t cap = 65536;
    char *reply;
    size_t len = 0;
    int fds[VFU_TEST_MAX_FDS];
    size_t nfds = 0;
    int ret;
    uint64_t val;

    memset(&ver, 0, sizeof(ver));
    ver.major = major;
    ver.minor = minor;
    parts[0].iov_base = &ver;
    parts[0].iov_len = sizeof(ver);
    if (json != NULL) {
        parts[1].iov_base = (void *)json;
        parts[1].iov_len = strlen(json) + 1;
        nparts = 2;
    }

    reply = malloc(cap + 1);
    if (reply == NULL) {
        return -1;
    }
    ret = request_v(c, VFIO_USER_VERSION, parts, nparts, NULL, 0,
                    reply, cap, &len, fds, &nfds);
    if (ret != 0) {
        int err = errno;

        close_fds(fds, nfds);
        free(reply);
        errno = err;
        return ret;
    }
    if (len < sizeof(ver)) {
        close_fds(fds, nfds);
        free(reply);
        errno = EPROTO;
        return -1;
    }

    memcpy(&ver, reply, sizeof(ver));
    c->major = ver.major;
    c->minor = ver.minor;

    free(c->server_json);
    c->server_json = NULL;
    c->server_json_len = 0;
    if (len > sizeof(ver)) {
        size_t jlen = strnlen(reply + sizeof(ver), len - sizeof(ver));

        c->server_json = malloc(jlen + 1);
        if (c->server_json == NULL) {
            close_fds(fds, nfds);
            free(reply);
            return -1;
        }
        memcpy(c->server_json, reply + sizeof(ver), jlen);
        c->server_json[jlen] = '\0';
        c->server_json_len = jlen;
    }
    free(reply);

    c->max_msg_fds = 1;
    c->max_data_xfer_size = VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE;
    if (vfu_test_json_get_u64(c->server_json, "max_msg_fds", &val) == 0) {
        c->max_msg_fds = val > UINT32_MAX ? UINT32_MAX : (uint32_t)val;
    }
    if (vfu_test_json_get_u64(c->server_json, "max_data_xfer_size",
                              &val) == 0) {
        c->max_data_xfer_size = val > UINT32_MAX ? UINT32_MAX : (uint32_t)val;
    }

    /* twin socket, if granted; every other fd is closed */
    if (vfu_test_json_get_u64(c->server_json, "fd_index", &val) == 0 &&
        val < nfds) {
        if (c->twin_fd >= 0) {
            close(c->twin_fd);
        }
        c->twin_fd = fds[val];
        fds[val] = -1;
    }
    close_fds(fds, nfds);
    return 0;
}

int
vfu_test_client_open(struct vfu_test_client *c, const char *path)
{
    int ret = vfu_test_client_connect(c, path, -1);

    if (ret != 0) {
        return ret;
    }
    ret = vfu_test_negotiate(c, 0, 1, VFU_TEST_DEFAULT_JSON);
    if (ret != 0) {
        int err = errno;

        vfu_test_client_close(c);
        errno = err;
    }
    return ret;
}

/* ------------------------------------------------------------------------ */
/* Typed commands.                                                          */

int
vfu_test_device_get_info(struct vfu_test_client *c,
                         struct vfio_user_device_info *info)
{
    struct vfio_user_device_info req;
    size_t len = 0;
    int ret;

    memset(&req, 0, sizeof(req));
    req.argsz = sizeof(req);
    memset(info, 0, sizeof(*info));
    ret = vfu_test_request(c, VFIO_USER_DEVICE_GET_INFO, &req, sizeof(req),
                           NULL, 0, info, sizeof(*info), &len, NULL, NULL);
    if (ret == 0 && len < sizeof(*info)) {
        errno = EPROTO;
        return -1;
    }
    return ret;
}

int
vfu_test_get_region_info(struct vfu_test_client *c, uint32_t index,
                         uint32_t argsz, void *reply, size_t cap,
                         size_t *len, int *fd_out)
{
    struct vfio_region_info req;
    int fds[VFU_TEST_MAX_FDS];
    size_t nfds = 0;
    int ret;

    memset(&req, 0, sizeof(req));
    req.argsz = argsz;
    req.index = index;
    if (fd_out != NULL) {
        *fd_out = -1;
    }
    ret = vfu_test_request(c, VFIO_USER_DEVICE_GET_REGION_INFO, &req,
                           sizeof(req), NULL, 0, reply, cap, len, fds, &nfds);
    if (nfds > 0 && fd_out != NULL) {
        *fd_out = fds[0];
        fds[0] = -1;
    }
    close_fds(fds, nfds);
    return ret;
}

/* Checks a REGION_READ/WRITE reply header against the request. */
static int
check_access_echo(const struct vfio_user_region_access *req,
                  const void *reply)
{
    struct vfio_user_region_access echo;

    memcpy(&echo, reply, sizeof(echo));
    if (echo.offset != req->offset || echo.region != req->region ||
        echo.count != req->count) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

int
vfu_test_region_read(struct vfu_test_client *c, uint32_t region,
                     uint64_t offset, uint32_t count, void *out)
{
    struct vfio_user_region_access req;
    char small[sizeof(req) + 256];
    char *buf = small;
    size_t cap = sizeof(req) + (size_t)count;
    size_t len = 0;
    int ret;

    memset(&req, 0, sizeof(req));
    req.offset = offset;
    req.region = region;
    req.count = count;
    if (cap > sizeof(small)) {
        buf = malloc(cap);
        if (buf == NULL) {
            return -1;
        }
    }
    ret = vfu_test_request(c, VFIO_USER_REGION_READ, &req, sizeof(req),
                           NULL, 0, buf, cap, &len, NULL, NULL);
    if (ret == 0) {
        if (count == 0 && len == 0) {
            /* empty reply accepted for a zero-byte read */
        } else if (len != cap) {
            errno = EPROTO;
            ret = -1;
        } else if (check_access_echo(&req, buf) < 0) {
            ret = -1;
        } else if (count > 0) {
            memcpy(out, buf + sizeof(req), count);
        }
    }
    if (buf != small) {
        int err = errno;

        free(buf);
        errno = err;
    }
    return ret;
}

static int
region_write_common(struct vfu_test_client *c, uint32_t region,
                    uint64_t offset, uint32_t count, const void *data,
                    bool posted)
{
    struct vfio_user_region_access req;
    struct vfio_user_region_access echo;
    struct iovec parts[2];
    size_t len = 0;
    int ret;

    memset(&req, 0, sizeof(req));
    req.offset = offset;
    req.region = region;
    req.count = count;
    parts[0].iov_base = &req;
    parts[0].iov_len = sizeof(req);
    parts[1].iov_base = (void *)data;
    parts[1].iov_len = count;

    if (posted) {
        return send_cmd_v(c, VFIO_USER_REGION_WRITE, VFIO_USER_F_NO_REPLY,
                          parts, 2, NULL, 0) < 0 ? -1 : 0;
    }
    ret = request_v(c, VFIO_USER_REGION_WRITE, parts, 2, NULL, 0,
                    &echo, sizeof(echo), &len, NULL, NULL);
    if (ret == 0) {
        if (count == 0 && len == 0) {
            return 0;
        }
        if (len != sizeof(echo)) {
            errno = EPROTO;
            return -1;
        }
        return check_access_echo(&req, &echo);
    }
    return ret;
}

int
vfu_test_region_write(struct vfu_test_client *c, uint32_t region,
                      uint64_t offset, uint32_t count, const void *data)
{
    return region_write_common(c, region, offset, count, data, false);
}

int
vfu_test_region_write_posted(struct vfu_test_client *c, uint32_t region,
                             uint64_t offset, uint32_t count,
                             const void *data)
{
    return region_write_common(c, region, offset, count, data, true);
}

int
vfu_test_region_read_val(struct vfu_test_client *c, uint32_t region,
                         uint64_t offset, unsigned width, uint64_t *val)
{
    uint8_t b[8];
    int ret;

    if (width == 0 || width > 8) {
        errno = EINVAL;
        return -1;
    }
    ret = vfu_test_region_read(c, region, offset, width, b);
    if (ret == 0) {
        uint64_t v = 0;

        for (unsigned i = 0; i < width; i++) {
            v |= (uint64_t)b[i] << (8 * i);
        }
        *val = v;
    }
    return ret;
}

int
vfu_test_region_write_val(struct vfu_test_client *c, uint32_t region,
                          uint64_t offset, unsigned width, uint64_t val)
{
    uint8_t b[8];

    if (width == 0 || width > 8) {
        errno = EINVAL;
        return -1;
    }
    for (unsigned i = 0; i < width; i++) {
        b[i] = (uint8_t)(val >> (8 * i));
    }
    return vfu_test_region_write(c, region, offset, width, b);
}

int
vfu_test_cfg_read(struct vfu_test_client *c, uint64_t offset,
                  uint32_t count, void *out)
{
    return vfu_test_region_read(c, VFU_TEST_CFG_REGION, offset, count, out);
}

int
vfu_test_cfg_write(struct vfu_test_client *c, uint64_t offset,
                   uint32_t count, const void *data)
{
    return vfu_test_region_write(c, VFU_TEST_CFG_REGION, offset, count, data);
}

int
vfu_test_cfg_read_val(struct vfu_test_client *c, uint64_t offset,
                      unsigned width, uint64_t *val)
{
    return vfu_test_region_read_val(c, VFU_TEST_CFG_REGION, offset, width,
                                    val);
}

int
vfu_test_cfg_write_val(struct vfu_test_client *c, uint64_t offset,
                       unsigned width, uint64_t val)
{
    return vfu_test_region_write_val(c, VFU_TEST_CFG_REGION, offset, width,
                                     val);
}

int
vfu_test_region_write_multi(struct vfu_test_client *c,
                            const struct vfu_test_write_entry *wrs,
                            uint64_t n, uint64_t *completed)
{
    struct iovec parts[2];
    uint64_t done = 0;
    size_t len = 0;
    int ret;

    if (n > (SIZE_MAX / sizeof(*wrs))) {
        errno = EINVAL;
        return -1;
    }
    parts[0].iov_base = &n;
    parts[0].iov_len = sizeof(n);
    parts[1].iov_base = (void *)wrs;
    parts[1].iov_len = (size_t)n * sizeof(*wrs);
    ret = request_v(c, VFIO_USER_REGION_WRITE_MULTI, parts, 2, NULL, 0,
                    &done, sizeof(done), &len, NULL, NULL);
    if (ret == 0) {
        if (len != sizeof(done)) {
            errno = EPROTO;
            return -1;
        }
        if (completed != NULL) {
            *completed = done;
        }
    }
    return ret;
}

int
vfu_test_get_irq_info(struct vfu_test_client *c, uint32_t index,
                      struct vfio_irq_info *info)
{
    struct vfio_irq_info req;
    size_t len = 0;
    int ret;

    memset(&req, 0, sizeof(req));
    req.argsz = sizeof(req);
    req.index = index;
    memset(info, 0, sizeof(*info));
    ret = vfu_test_request(c, VFIO_USER_DEVICE_GET_IRQ_INFO, &req,
                           sizeof(req), NULL, 0, info, sizeof(*info), &len,
                           NULL, NULL);
    if (ret == 0 && len < sizeof(*info)) {
        errno = EPROTO;
        return -1;
    }
    return ret;
}

int
vfu_test_set_irqs(struct vfu_test_client *c, uint32_t index, uint32_t flags,
                  uint32_t start, uint32_t count, const void *data,
                  size_t data_len, const int *fds, size_t nfds)
{
    struct vfio_irq_set req;
    struct iovec parts[2];

    _Static_assert(sizeof(struct vfio_irq_set) == 20,
                   "vfio_irq_set must be 20 bytes");
    memset(&req, 0, sizeof(req));
    req.argsz = (uint32_t)(sizeof(req) + data_len);
    req.flags = flags;
    req.index = index;
    req.start = start;
    req.count = count;
    parts[0].iov_base = &req;
    parts[0].iov_len = sizeof(req);
    parts[1].iov_base = (void *)data;
    parts[1].iov_len = data_len;
    return request_v(c, VFIO_USER_DEVICE_SET_IRQS, parts,
                     data_len > 0 ? 2 : 1, fds, nfds, NULL, 0, NULL, NULL,
                     NULL);
}

int
vfu_test_set_irqs_eventfds(struct vfu_test_client *c, uint32_t index,
                           uint32_t start, uint32_t count, const int *fds)
{
    return vfu_test_set_irqs(c, index,
                             VFIO_IRQ_SET_DATA_EVENTFD |
                                 VFIO_IRQ_SET_ACTION_TRIGGER,
                             start, count, NULL, 0, fds,
                             fds != NULL ? count : 0);
}

int
vfu_test_dma_map(struct vfu_test_client *c, uint32_t flags, uint64_t offset,
                 uint64_t addr, uint64_t size, int fd)
{
    struct vfio_user_dma_map req;

    memset(&req, 0, sizeof(req));
    req.argsz = sizeof(req);
    req.flags = flags;
    req.offset = offset;
    req.addr = addr;
    req.size = size;
    return vfu_test_request(c, VFIO_USER_DMA_MAP, &req, sizeof(req),
                            fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0,
                            NULL, 0, NULL, NULL, NULL);
}

int
vfu_test_dma_unmap(struct vfu_test_client *c, uint32_t flags, uint64_t addr,
                   uint64_t size)
{
    struct vfio_user_dma_unmap req;
    char echo[sizeof(req)];
    size_t len = 0;
    int ret;

    memset(&req, 0, sizeof(req));
    req.argsz = sizeof(req);
    req.flags = flags;
    req.addr = addr;
    req.size = size;
    ret = vfu_test_request(c, VFIO_USER_DMA_UNMAP, &req, sizeof(req),
                           NULL, 0, echo, sizeof(echo), &len, NULL, NULL);
    if (ret == 0 && len < sizeof(req)) {
        errno = EPROTO;
        return -1;
    }
    if (ret < 0 && errno == EMSGSIZE) {
        /* a longer echo (e.g. with a bitmap) is fine */
        return 0;
    }
    return ret;
}

int
vfu_test_device_reset(struct vfu_test_client *c)
{
    return vfu_test_request(c, VFIO_USER_DEVICE_RESET, NULL, 0, NULL, 0,
                            NULL, 0, NULL, NULL, NULL);
}

int
vfu_test_get_region_io_fds(struct vfu_test_client *c, uint32_t index,
                           uint32_t argsz, void *reply, size_t cap,
                           size_t *len, int *fds, size_t *nfds)
{
    uint32_t req[4] = { argsz, 0, index, 0 };

    return vfu_test_request(c, VFIO_USER_DEVICE_GET_REGION_IO_FDS, req,
                            sizeof(req), NULL, 0, reply, cap, len, fds, nfds);
}

int
vfu_test_device_feature(struct vfu_test_client *c, uint32_t argsz,
                        uint32_t flags, const void *data, size_t data_len,
                        void *reply, size_t cap, size_t *len)
{
    uint32_t hdr[2] = { argsz, flags };
    struct iovec parts[2];

    parts[0].iov_base = hdr;
    parts[0].iov_len = sizeof(hdr);
    parts[1].iov_base = (void *)data;
    parts[1].iov_len = data_len;
    return request_v(c, VFIO_USER_DEVICE_FEATURE, parts,
                     data_len > 0 ? 2 : 1, NULL, 0, reply, cap, len,
                     NULL, NULL);
}

/* Feature index and GET/SET bits, as in linux/vfio.h. */
#define FEAT_MIG_DEVICE_STATE 2u
#define FEAT_GET (1u << 16)
#define FEAT_SET (1u << 17)

int
vfu_test_mig_set_state(struct vfu_test_client *c, uint32_t state)
{
    uint32_t data[2] = { state, 0 };
    uint8_t reply[64];
    size_t len = 0;

    return vfu_test_device_feature(c, 16, FEAT_SET | FEAT_MIG_DEVICE_STATE,
                                   data, sizeof(data), reply, sizeof(reply),
                                   &len);
}

int
vfu_test_mig_get_state(struct vfu_test_client *c, uint32_t *state)
{
    uint32_t data[2] = { 0, 0 };
    uint8_t reply[64];
    size_t len = 0;
    int ret;

    ret = vfu_test_device_feature(c, 16, FEAT_GET | FEAT_MIG_DEVICE_STATE,
                                  data, sizeof(data), reply, sizeof(reply),
                                  &len);
    if (ret == 0) {
        if (len < 16) {
            errno = EPROTO;
            return -1;
        }
        memcpy(state, reply + 8, sizeof(*state));
    }
    return ret;
}

int
vfu_test_mig_data_read(struct vfu_test_client *c, uint32_t size, void *buf,
                       uint32_t *got)
{
    uint32_t req[2] = { (uint32_t)(8 + (uint64_t)size), size };
    size_t cap = 8 + (size_t)size;
    size_t len = 0;
    uint8_t *reply;
    uint32_t n;
    int ret;

    reply = malloc(cap);
    if (reply == NULL) {
        return -1;
    }
    ret = vfu_test_request(c, VFIO_USER_MIG_DATA_READ, req, sizeof(req),
                           NULL, 0, reply, cap, &len, NULL, NULL);
    if (ret == 0) {
        if (len < 8) {
            errno = EPROTO;
            ret = -1;
        } else {
            memcpy(&n, reply + 4, sizeof(n));
            if (n > size || n > len - 8) {
                errno = EPROTO;
                ret = -1;
            } else {
                memcpy(buf, reply + 8, n);
                if (got != NULL) {
                    *got = n;
                }
            }
        }
    }
    {
        int err = errno;

        free(reply);
        errno = err;
    }
    return ret;
}

int
vfu_test_mig_data_write(struct vfu_test_client *c, const void *data,
                        uint32_t size)
{
    uint32_t hdr[2] = { (uint32_t)(8 + (uint64_t)size), size };
    struct iovec parts[2];

    parts[0].iov_base = hdr;
    parts[0].iov_len = sizeof(hdr);
    parts[1].iov_base = (void *)data;
    parts[1].iov_len = size;
    return request_v(c, VFIO_USER_MIG_DATA_WRITE, parts, size > 0 ? 2 : 1,
                     NULL, 0, NULL, 0, NULL, NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* OS helpers.                                                              */

int
vfu_test_eventfd_new(void)
{
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

uint64_t
vfu_test_eventfd_read(int fd)
{
    uint64_t val = 0;
    ssize_t n;

    do {
        n = read(fd, &val, sizeof(val));
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof(val) ? val : 0;
}

uint64_t
vfu_test_eventfd_wait(int fd, int timeout_ms)
{
    if (wait_fd(fd, POLLIN, deadline_after(timeout_ms)) < 0) {
        return 0;
    }
    return vfu_test_eventfd_read(fd);
}

int
vfu_test_eventfd_signal(int fd, uint64_t val)
{
    ssize_t n;

    do {
        n = write(fd, &val, sizeof(val));
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof(val) ? 0 : -1;
}

int
vfu_test_memfd(size_t size)
{
    int fd = memfd_create("vfu-test", MFD_CLOEXEC);

    if (fd < 0) {
        return -1;
    }
    if (ftruncate(fd, (off_t)size) < 0) {
        int err = errno;

        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

int
vfu_test_count_open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *de;
    int n = 0;

    if (dir == NULL) {
        return -1;
    }
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] != '.') {
            n++;
        }
    }
    closedir(dir);
    return n - 1; /* the directory's own fd */
}
