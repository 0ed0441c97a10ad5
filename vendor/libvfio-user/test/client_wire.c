/*
 * Test client (see client.h): deadlines, and moving whole messages with their fds.
 */
#include "client_internal.h"

_Static_assert(sizeof(struct vfio_user_header) == VFU_TEST_HDR_SIZE,
               "vfio_user_header must be 16 bytes");
_Static_assert(sizeof(struct vfu_test_write_entry) == 24,
               "REGION_WRITE_MULTI entry must be 24 bytes");

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
uint64_t
tc_deadline_after(int timeout_ms)
{
    if (timeout_ms < 0) {
        return 0;
    }
    return vfu_test_now_ns() + (uint64_t)timeout_ms * 1000000ull + 1;
}

/* Milliseconds left until the deadline, rounded up; -1 for no deadline. */
int
tc_ms_left(uint64_t deadline)
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
int
tc_wait_fd(int fd, short events, uint64_t deadline)
{
    struct pollfd pfd = { .fd = fd, .events = events };
    int ret;

    for (;;) {
        ret = poll(&pfd, 1, tc_ms_left(deadline));
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

void
tc_close_fds(const int *fds, size_t n)
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
int
tc_send_iov(int fd, uint64_t deadline, struct iovec *iov, int iovcnt, const int *fds, size_t nfds)
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
                if (tc_wait_fd(fd, POLLOUT, deadline) < 0) {
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
vfu_test_send_raw_fd(int fd, int timeout_ms, const void *buf, size_t len, const int *fds,
                     size_t nfds)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

    return tc_send_iov(fd, tc_deadline_after(timeout_ms), &iov, 1, fds, nfds);
}

int
vfu_test_send_raw(struct vfu_test_client *c, const void *buf, size_t len, const int *fds,
                  size_t nfds)
{
    return vfu_test_send_raw_fd(c->fd, c->timeout_ms, buf, len, fds, nfds);
}

/* Sends header + payload parts; returns the msg_id used or -1. */
int
tc_send_cmd_v(struct vfu_test_client *c, uint16_t cmd, uint32_t flags, const struct iovec *parts,
              int nparts, const int *fds, size_t nfds)
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

    if (tc_send_iov(c->fd, tc_deadline_after(c->timeout_ms), iov, nparts + 1, fds, nfds) < 0) {
        return -1;
    }
    return id;
}

int
vfu_test_send_cmd(struct vfu_test_client *c, uint16_t cmd, uint32_t flags, const void *payload,
                  size_t len, const int *fds, size_t nfds)
{
    struct iovec part = { .iov_base = (void *)payload, .iov_len = len };

    return tc_send_cmd_v(c, cmd, flags, &part, len > 0 ? 1 : 0, fds, nfds);
}

int
vfu_test_send_reply(struct vfu_test_client *c, int fd, uint16_t msg_id, uint16_t cmd,
                    uint32_t error_no, const void *payload, size_t len)
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
    return tc_send_iov(fd, tc_deadline_after(c->timeout_ms), iov, 2, NULL, 0);
}

/* ------------------------------------------------------------------------ */
/* Receiving.                                                               */

static void
fdbag_take(struct tc_fdbag *bag, struct msghdr *msg)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR(msg, cm)) {
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
void
tc_fdbag_give(struct tc_fdbag *bag, int *fds, size_t *nfds)
{
    if (fds != NULL) {
        memcpy(fds, bag->fds, bag->n * sizeof(int));
    } else {
        tc_close_fds(bag->fds, bag->n);
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
recv_exact(int fd, uint64_t deadline, void *buf, size_t len, struct tc_fdbag *bag)
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
            iov.iov_len = len - done < sizeof(scratch) ? len - done : sizeof(scratch);
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
                if (tc_wait_fd(fd, POLLIN, deadline) < 0) {
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
int
tc_recv_hdr(int fd, uint64_t deadline, struct vfio_user_header *hdr, struct tc_fdbag *bag)
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
int
tc_recv_body(int fd, uint64_t deadline, size_t plen, void *buf, size_t cap, struct tc_fdbag *bag)
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
vfu_test_recv_msg_fd(int fd, int timeout_ms, struct vfio_user_header *hdr, void *buf, size_t cap,
                     size_t *len, int *fds, size_t *nfds)
{
    uint64_t deadline = tc_deadline_after(timeout_ms);
    struct tc_fdbag bag = { .n = 0 };
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
    ret = tc_recv_hdr(fd, deadline, &h, &bag);
    if (ret == 0) {
        if (hdr != NULL) {
            *hdr = h;
        }
        plen = h.msg_size - VFU_TEST_HDR_SIZE;
        if (len != NULL) {
            *len = plen;
        }
        ret = tc_recv_body(fd, deadline, plen, buf, cap, &bag);
    } else if (hdr != NULL) {
        *hdr = h;
    }
    err = errno;
    tc_fdbag_give(&bag, fds, nfds);
    errno = err;
    return ret;
}

int
vfu_test_recv_msg(struct vfu_test_client *c, struct vfio_user_header *hdr, void *buf, size_t cap,
                  size_t *len, int *fds, size_t *nfds)
{
    return vfu_test_recv_msg_fd(c->fd, c->timeout_ms, hdr, buf, cap, len, fds, nfds);
}

int
vfu_test_wait_closed(struct vfu_test_client *c, int timeout_ms)
{
    uint64_t deadline = tc_deadline_after(timeout_ms < 0 ? c->timeout_ms : timeout_ms);
    struct tc_fdbag bag = { .n = 0 };
    char buf[4096];

    for (;;) {
        int ret = recv_exact(c->fd, deadline, buf, sizeof(buf), &bag);
        int err = errno;

        tc_close_fds(bag.fds, bag.n);
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
