/*
 * Test client (see client.h): serving the server's DMA_READ / DMA_WRITE from
 * registered memory windows, and waiting for a reply meanwhile.
 */
#include "client_internal.h"

/* Payload of DMA_READ / DMA_WRITE (server to client) and their replies. */
struct dma_rw_hdr {
    uint64_t addr;
    uint64_t count;
};

/* Server-to-client commands bigger than this are drained, not served. */
#define SERVER_CMD_MAX_PAYLOAD (64u << 20)

/* ------------------------------------------------------------------------ */
/* Server-to-client commands.                                               */

static struct vfu_test_dma_window *
find_window(struct vfu_test_client *c, uint64_t addr, uint64_t count)
{
    for (unsigned i = 0; i < c->nr_dma_windows; i++) {
        struct vfu_test_dma_window *w = &c->dma_windows[i];

        if (addr >= w->iova && count <= w->size && addr - w->iova <= w->size - count) {
            return w;
        }
    }
    return NULL;
}

int
vfu_test_client_add_dma_window(struct vfu_test_client *c, uint64_t iova, void *ptr, uint64_t size)
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
vfu_test_serve_dma_cmd(struct vfu_test_client *c, int fd, const struct vfio_user_header *hdr,
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
            return want_reply ? vfu_test_send_reply(c, fd, hdr->msg_id, hdr->cmd, EFAULT, NULL, 0)
                              : 0;
        }
        memcpy((char *)w->ptr + (rw.addr - w->iova), (const char *)payload + sizeof(rw), rw.count);
        return want_reply ? vfu_test_send_reply(c, fd, hdr->msg_id, hdr->cmd, 0, &rw, sizeof(rw))
                          : 0;
    }

    /* DMA_READ */
    if (len != sizeof(rw) || rw.count > SERVER_CMD_MAX_PAYLOAD) {
        goto fail_einval;
    }
    w = find_window(c, rw.addr, rw.count);
    if (w == NULL) {
        return want_reply ? vfu_test_send_reply(c, fd, hdr->msg_id, hdr->cmd, EFAULT, NULL, 0) : 0;
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
        return tc_send_iov(fd, tc_deadline_after(c->timeout_ms), iov, 3, NULL, 0);
    }

fail_einval:
    return want_reply ? vfu_test_send_reply(c, fd, hdr->msg_id, hdr->cmd, EINVAL, NULL, 0) : 0;
}

/*
 * Reads the body of a message whose header was already read from `fd` and
 * which is not the reply being waited for: serves it if it is a command,
 * drops it (as stray) if it is a reply.  Returns 1 if a command was served,
 * 0 if a stray message was dropped, -1/errno on transport errors.
 */
static int
handle_other_msg(struct vfu_test_client *c, int fd, uint64_t deadline,
                 const struct vfio_user_header *hdr, struct tc_fdbag *bag)
{
    size_t plen = hdr->msg_size - VFU_TEST_HDR_SIZE;
    bool is_cmd = (hdr->flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_COMMAND;
    void *buf = NULL;
    int ret;

    if (is_cmd && plen <= SERVER_CMD_MAX_PAYLOAD) {
        buf = malloc(plen > 0 ? plen : 1);
        if (buf == NULL) {
            return -1;
        }
        ret = tc_recv_body(fd, deadline, plen, buf, plen, bag);
    } else {
        ret = tc_recv_body(fd, deadline, plen, NULL, 0, bag);
        if (ret < 0 && errno == EMSGSIZE) {
            ret = 0;
        }
        if (ret == 0 && is_cmd) {
            /* too big to serve: refuse it */
            int err = 0;

            if (!(hdr->flags & VFIO_USER_F_NO_REPLY)) {
                err = vfu_test_send_reply(c, fd, hdr->msg_id, hdr->cmd, EINVAL, NULL, 0);
            }
            tc_close_fds(bag->fds, bag->n);
            bag->n = 0;
            c->server_cmds++;
            return err < 0 ? -1 : 1;
        }
    }
    if (ret < 0) {
        int err = errno;

        free(buf);
        tc_close_fds(bag->fds, bag->n);
        bag->n = 0;
        errno = err;
        return -1;
    }

    if (!is_cmd) {
        tc_close_fds(bag->fds, bag->n);
        bag->n = 0;
        c->stray_msgs++;
        return 0;
    }

    c->server_cmds++;
    if (c->server_cmd_fn != NULL) {
        ret = c->server_cmd_fn(c, fd, hdr, buf, plen, bag->fds, bag->n, c->server_cmd_opaque);
    } else {
        ret = vfu_test_serve_dma_cmd(c, fd, hdr, buf, plen);
    }
    {
        int err = errno;

        free(buf);
        tc_close_fds(bag->fds, bag->n);
        bag->n = 0;
        errno = err;
    }
    return ret < 0 ? -1 : 1;
}

/* Reads and handles one message from the twin socket. */
static int
serve_twin(struct vfu_test_client *c, uint64_t deadline)
{
    struct tc_fdbag bag = { .n = 0 };
    struct vfio_user_header hdr;

    if (tc_recv_hdr(c->twin_fd, deadline, &hdr, &bag) < 0) {
        int err = errno;

        tc_close_fds(bag.fds, bag.n);
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
wait_reply(struct vfu_test_client *c, int id, int timeout_ms, void *reply, size_t cap,
           size_t *reply_len, int *reply_fds, size_t *reply_nfds, int *served)
{
    uint64_t deadline = tc_deadline_after(timeout_ms);

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
        ret = poll(pfd, npfd, tc_ms_left(deadline));
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
                deadline = tc_deadline_after(timeout_ms);
            }
            continue;
        }

        if (pfd[0].revents != 0) {
            struct tc_fdbag bag = { .n = 0 };
            struct vfio_user_header hdr;
            int err;

            if (tc_recv_hdr(c->fd, deadline, &hdr, &bag) < 0) {
                err = errno;
                tc_close_fds(bag.fds, bag.n);
                errno = err;
                return -1;
            }
            if (id >= 0 && hdr.msg_id == (uint16_t)id &&
                (hdr.flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_REPLY) {
                size_t plen = hdr.msg_size - VFU_TEST_HDR_SIZE;

                c->last_hdr = hdr;
                if (reply_len != NULL) {
                    *reply_len = plen;
                }
                ret = tc_recv_body(c->fd, deadline, plen, reply, cap, &bag);
                err = errno;
                tc_fdbag_give(&bag, reply_fds, reply_nfds);
                if (ret < 0 && !(err == EMSGSIZE && (hdr.flags & VFIO_USER_F_ERROR))) {
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
                deadline = tc_deadline_after(timeout_ms);
            }
        }
    }
}

int
tc_request_v(struct vfu_test_client *c, uint16_t cmd, const struct iovec *parts, int nparts,
             const int *fds, size_t nfds, void *reply, size_t cap, size_t *reply_len,
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
    id = tc_send_cmd_v(c, cmd, 0, parts, nparts, fds, nfds);
    if (id < 0) {
        return -1;
    }
    return wait_reply(c, id, c->timeout_ms, reply, cap, reply_len, reply_fds, reply_nfds, &served);
}

int
vfu_test_request(struct vfu_test_client *c, uint16_t cmd, const void *req, size_t req_len,
                 const int *fds, size_t nfds, void *reply, size_t cap, size_t *reply_len,
                 int *reply_fds, size_t *reply_nfds)
{
    struct iovec part = { .iov_base = (void *)req, .iov_len = req_len };

    return tc_request_v(c, cmd, &part, req_len > 0 ? 1 : 0, fds, nfds, reply, cap, reply_len,
                        reply_fds, reply_nfds);
}

int
vfu_test_client_serve(struct vfu_test_client *c, int timeout_ms)
{
    int served = 0;
    int ret;

    ret = wait_reply(c, -1, timeout_ms < 0 ? 0 : timeout_ms, NULL, 0, NULL, NULL, NULL, &served);
    if (ret < 0 && errno == ETIMEDOUT) {
        return served;
    }
    return ret < 0 ? -1 : served;
}
