/*
 * The floor of the benchmarks: a trivial AF_UNIX peer that answers each
 * vfio-user-framed request with a reply of the size our library would send,
 * doing nothing else: no negotiation, no library, no allocation. One client
 * at a time.
 *
 *   REGION_READ   reply = header + the 16-byte access header + count zeros
 *   REGION_WRITE  reply = header + the 16-byte access header
 *   other         reply = header + the request's payload
 *
 * usage: echo_peer SOCKET_PATH [recv|poll|epoll|poll1]
 * The last argument says how the peer waits for the next request:
 *   recv   blocked in recv (the default), then the body;
 *   poll   in poll on the socket, then recv of the header, recv of the body
 *          (what an event-driven server reading frame by frame does);
 *   epoll  the same with epoll_wait;
 *   poll1  in poll, then one recv of whatever has arrived: the fewest system
 *          calls a request can cost (poll, recv, send); bench/run.ts uses
 *          it as the floor.
 * Waiting in recv measured slower than in poll on the 2-vCPU machines here,
 * with server and client on one CPU (the wake-ups interleave differently).
 * Runs until SIGTERM or SIGINT.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <vfio-user.h>

#define MAX_BODY (1u << 20)

static volatile sig_atomic_t stop_requested;

/*
 * How the peer waits for a request: in recv itself, or in poll or epoll and
 * then reads the header and the body; or (poll1) in poll and then takes
 * whatever has arrived in one recv.
 */
enum wait_mode { WAIT_RECV, WAIT_POLL, WAIT_EPOLL, WAIT_POLL_ONE_RECV };
static enum wait_mode wait_mode = WAIT_RECV;
static int epoll_fd = -1;

/* Blocks until fd is readable, as an event-driven server would; 0 or -1. */
static int
wait_readable(int fd)
{
    int n;

    do {
        if (wait_mode != WAIT_EPOLL) {
            struct pollfd pfd = { .fd = fd, .events = POLLIN };
            n = poll(&pfd, 1, -1);
        } else {
            struct epoll_event ev;
            n = epoll_wait(epoll_fd, &ev, 1, -1);
        }
    } while (n < 0 && errno == EINTR && !stop_requested);
    return n > 0 ? 0 : -1;
}

static void
on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Reads exactly len bytes; 0, or -1 at end of stream or error. */
static int
read_all(int fd, void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = recv(fd, (char *)buf + got, len - got, MSG_WAITALL);

        if (n <= 0) {
            if (n < 0 && errno == EINTR && !stop_requested) {
                continue;
            }
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

static int
write_all(int fd, struct iovec *iov, int iovcnt)
{
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };

    while (mh.msg_iovlen > 0) {
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR && !stop_requested) {
                continue;
            }
            return -1;
        }
        while (n > 0 && mh.msg_iovlen > 0) {
            size_t step = (size_t)n < mh.msg_iov->iov_len ? (size_t)n : mh.msg_iov->iov_len;

            mh.msg_iov->iov_base = (char *)mh.msg_iov->iov_base + step;
            mh.msg_iov->iov_len -= step;
            n -= (ssize_t)step;
            if (mh.msg_iov->iov_len == 0) {
                mh.msg_iov++;
                mh.msg_iovlen--;
            }
        }
    }
    return 0;
}

/* Sends the reply to the request hdr + body[len]. */
static int
reply(int fd, struct vfio_user_header hdr, uint8_t *body, size_t len, uint8_t *zeros)
{
    struct iovec iov[3];
    int iovcnt = 1;

    if ((hdr.cmd == VFIO_USER_REGION_READ || hdr.cmd == VFIO_USER_REGION_WRITE) &&
        len >= sizeof(struct vfio_user_region_access)) {
        struct vfio_user_region_access ra;

        memcpy(&ra, body, sizeof(ra));
        iov[iovcnt].iov_base = body;
        iov[iovcnt++].iov_len = sizeof(ra);
        if (hdr.cmd == VFIO_USER_REGION_READ && ra.count <= MAX_BODY) {
            iov[iovcnt].iov_base = zeros;
            iov[iovcnt++].iov_len = ra.count;
        }
    } else if (len > 0) {
        iov[iovcnt].iov_base = body;
        iov[iovcnt++].iov_len = len;
    }
    hdr.flags = VFIO_USER_F_TYPE_REPLY;
    hdr.error_no = 0;
    hdr.msg_size = sizeof(hdr);
    for (int i = 1; i < iovcnt; i++) {
        hdr.msg_size += (uint32_t)iov[i].iov_len;
    }
    iov[0].iov_base = &hdr;
    iov[0].iov_len = sizeof(hdr);
    return write_all(fd, iov, iovcnt);
}

/* poll1: one recv per wake-up into buf, then every complete message in it. */
static void
serve_buffered(int fd, uint8_t *buf, uint8_t *zeros)
{
    size_t have = 0;

    for (;;) {
        struct vfio_user_header hdr;
        size_t used = 0;
        ssize_t n;

        if (wait_readable(fd) < 0) {
            return;
        }
        n = recv(fd, buf + have, MAX_BODY - have, MSG_DONTWAIT);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR) && !stop_requested) {
                continue;
            }
            return;
        }
        have += (size_t)n;
        while (have - used >= sizeof(hdr)) {
            memcpy(&hdr, buf + used, sizeof(hdr));
            if (hdr.msg_size < sizeof(hdr) || hdr.msg_size > MAX_BODY) {
                return;
            }
            if (have - used < hdr.msg_size) {
                break;
            }
            if (reply(fd, hdr, buf + used + sizeof(hdr), hdr.msg_size - sizeof(hdr), zeros) < 0) {
                return;
            }
            used += hdr.msg_size;
        }
        memmove(buf, buf + used, have - used);
        have -= used;
    }
}

static void
serve(int fd, uint8_t *body, uint8_t *zeros)
{
    if (wait_mode == WAIT_POLL_ONE_RECV) {
        serve_buffered(fd, body, zeros);
        return;
    }
    for (;;) {
        struct vfio_user_header hdr;
        size_t len;

        if (wait_mode != WAIT_RECV && wait_readable(fd) < 0) {
            return;
        }
        if (read_all(fd, &hdr, sizeof(hdr)) < 0 || hdr.msg_size < sizeof(hdr) ||
            hdr.msg_size - sizeof(hdr) > MAX_BODY) {
            return;
        }
        len = hdr.msg_size - sizeof(hdr);
        if (len > 0 && read_all(fd, body, len) < 0) {
            return;
        }
        if (reply(fd, hdr, body, len, zeros) < 0) {
            return;
        }
    }
}

int
main(int argc, char *argv[])
{
    struct sigaction sa = { .sa_handler = on_signal };
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    uint8_t *body = malloc(MAX_BODY);
    uint8_t *zeros = calloc(1, MAX_BODY);
    int lfd;

    if (argc < 2 || argc > 3 || strlen(argv[1]) >= sizeof(addr.sun_path)) {
        fprintf(stderr, "usage: %s SOCKET_PATH [recv|poll|epoll|poll1]\n", argv[0]);
        return 2;
    }
    if (argc == 3) {
        wait_mode = strcmp(argv[2], "poll") == 0    ? WAIT_POLL
                    : strcmp(argv[2], "epoll") == 0 ? WAIT_EPOLL
                    : strcmp(argv[2], "poll1") == 0 ? WAIT_POLL_ONE_RECV
                                                    : WAIT_RECV;
    }
    if (body == NULL || zeros == NULL) {
        return 1;
    }
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    strcpy(addr.sun_path, argv[1]);
    unlink(addr.sun_path);
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(lfd, 8) < 0) {
        perror("echo_peer");
        return 1;
    }
    while (!stop_requested) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR) {
                continue;
            }
            perror("echo_peer: accept");
            break;
        }
        if (wait_mode == WAIT_EPOLL) {
            struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

            epoll_fd = epoll_create1(EPOLL_CLOEXEC);
            if (epoll_fd < 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                perror("echo_peer: epoll");
                break;
            }
        }
        serve(fd, body, zeros);
        close(fd);
        if (epoll_fd >= 0) {
            close(epoll_fd);
            epoll_fd = -1;
        }
    }
    unlink(addr.sun_path);
    return 0;
}
