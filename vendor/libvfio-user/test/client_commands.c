/*
 * Test client (see client.h): typed commands for regions, interrupts, DMA
 * and reset.
 */
#include "client_internal.h"

int
vfu_test_device_get_info(struct vfu_test_client *c, struct vfio_user_device_info *info)
{
    struct vfio_user_device_info req;
    size_t len = 0;
    int ret;

    memset(&req, 0, sizeof(req));
    req.argsz = sizeof(req);
    memset(info, 0, sizeof(*info));
    ret = vfu_test_request(c, VFIO_USER_DEVICE_GET_INFO, &req, sizeof(req), NULL, 0, info,
                           sizeof(*info), &len, NULL, NULL);
    if (ret == 0 && len < sizeof(*info)) {
        errno = EPROTO;
        return -1;
    }
    return ret;
}

int
vfu_test_get_region_info(struct vfu_test_client *c, uint32_t index, uint32_t argsz, void *reply,
                         size_t cap, size_t *len, int *fd_out)
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
    ret = vfu_test_request(c, VFIO_USER_DEVICE_GET_REGION_INFO, &req, sizeof(req), NULL, 0, reply,
                           cap, len, fds, &nfds);
    if (nfds > 0 && fd_out != NULL) {
        *fd_out = fds[0];
        fds[0] = -1;
    }
    tc_close_fds(fds, nfds);
    return ret;
}

/* Checks a REGION_READ/WRITE reply header against the request. */
static int
check_access_echo(const struct vfio_user_region_access *req, const void *reply)
{
    struct vfio_user_region_access echo;

    memcpy(&echo, reply, sizeof(echo));
    if (echo.offset != req->offset || echo.region != req->region || echo.count != req->count) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

int
vfu_test_region_read(struct vfu_test_client *c, uint32_t region, uint64_t offset, uint32_t count,
                     void *out)
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
    ret = vfu_test_request(c, VFIO_USER_REGION_READ, &req, sizeof(req), NULL, 0, buf, cap, &len,
                           NULL, NULL);
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
region_write_common(struct vfu_test_client *c, uint32_t region, uint64_t offset, uint32_t count,
                    const void *data, bool posted)
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
        return tc_send_cmd_v(c, VFIO_USER_REGION_WRITE, VFIO_USER_F_NO_REPLY, parts, 2, NULL, 0) < 0
                   ? -1
                   : 0;
    }
    ret = tc_request_v(c, VFIO_USER_REGION_WRITE, parts, 2, NULL, 0, &echo, sizeof(echo), &len,
                       NULL, NULL);
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
vfu_test_region_write(struct vfu_test_client *c, uint32_t region, uint64_t offset, uint32_t count,
                      const void *data)
{
    return region_write_common(c, region, offset, count, data, false);
}

int
vfu_test_region_write_posted(struct vfu_test_client *c, uint32_t region, uint64_t offset,
                             uint32_t count, const void *data)
{
    return region_write_common(c, region, offset, count, data, true);
}

int
vfu_test_region_read_val(struct vfu_test_client *c, uint32_t region, uint64_t offset,
                         unsigned width, uint64_t *val)
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
vfu_test_region_write_val(struct vfu_test_client *c, uint32_t region, uint64_t offset,
                          unsigned width, uint64_t val)
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
vfu_test_cfg_read(struct vfu_test_client *c, uint64_t offset, uint32_t count, void *out)
{
    return vfu_test_region_read(c, VFU_TEST_CFG_REGION, offset, count, out);
}

int
vfu_test_cfg_write(struct vfu_test_client *c, uint64_t offset, uint32_t count, const void *data)
{
    return vfu_test_region_write(c, VFU_TEST_CFG_REGION, offset, count, data);
}

int
vfu_test_cfg_read_val(struct vfu_test_client *c, uint64_t offset, unsigned width, uint64_t *val)
{
    return vfu_test_region_read_val(c, VFU_TEST_CFG_REGION, offset, width, val);
}

int
vfu_test_cfg_write_val(struct vfu_test_client *c, uint64_t offset, unsigned width, uint64_t val)
{
    return vfu_test_region_write_val(c, VFU_TEST_CFG_REGION, offset, width, val);
}

int
vfu_test_region_write_multi(struct vfu_test_client *c, const struct vfu_test_write_entry *wrs,
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
    ret = tc_request_v(c, VFIO_USER_REGION_WRITE_MULTI, parts, 2, NULL, 0, &done, sizeof(done),
                       &len, NULL, NULL);
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
vfu_test_get_irq_info(struct vfu_test_client *c, uint32_t index, struct vfio_irq_info *info)
{
    struct vfio_irq_info req;
    size_t len = 0;
    int ret;

    memset(&req, 0, sizeof(req));
    req.argsz = sizeof(req);
    req.index = index;
    memset(info, 0, sizeof(*info));
    ret = vfu_test_request(c, VFIO_USER_DEVICE_GET_IRQ_INFO, &req, sizeof(req), NULL, 0, info,
                           sizeof(*info), &len, NULL, NULL);
    if (ret == 0 && len < sizeof(*info)) {
        errno = EPROTO;
        return -1;
    }
    return ret;
}

int
vfu_test_set_irqs(struct vfu_test_client *c, uint32_t index, uint32_t flags, uint32_t start,
                  uint32_t count, const void *data, size_t data_len, const int *fds, size_t nfds)
{
    struct vfio_irq_set req;
    struct iovec parts[2];

    _Static_assert(sizeof(struct vfio_irq_set) == 20, "vfio_irq_set must be 20 bytes");
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
    return tc_request_v(c, VFIO_USER_DEVICE_SET_IRQS, parts, data_len > 0 ? 2 : 1, fds, nfds, NULL,
                        0, NULL, NULL, NULL);
}

int
vfu_test_set_irqs_eventfds(struct vfu_test_client *c, uint32_t index, uint32_t start,
                           uint32_t count, const int *fds)
{
    return vfu_test_set_irqs(c, index, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                             start, count, NULL, 0, fds, fds != NULL ? count : 0);
}

int
vfu_test_dma_map(struct vfu_test_client *c, uint32_t flags, uint64_t offset, uint64_t addr,
                 uint64_t size, int fd)
{
    struct vfio_user_dma_map req;

    memset(&req, 0, sizeof(req));
    req.argsz = sizeof(req);
    req.flags = flags;
    req.offset = offset;
    req.addr = addr;
    req.size = size;
    return vfu_test_request(c, VFIO_USER_DMA_MAP, &req, sizeof(req), fd >= 0 ? &fd : NULL,
                            fd >= 0 ? 1 : 0, NULL, 0, NULL, NULL, NULL);
}

int
vfu_test_dma_unmap(struct vfu_test_client *c, uint32_t flags, uint64_t addr, uint64_t size)
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
    ret = vfu_test_request(c, VFIO_USER_DMA_UNMAP, &req, sizeof(req), NULL, 0, echo, sizeof(echo),
                           &len, NULL, NULL);
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
    return vfu_test_request(c, VFIO_USER_DEVICE_RESET, NULL, 0, NULL, 0, NULL, 0, NULL, NULL, NULL);
}

int
vfu_test_get_region_io_fds(struct vfu_test_client *c, uint32_t index, uint32_t argsz, void *reply,
                           size_t cap, size_t *len, int *fds, size_t *nfds)
{
    uint32_t req[4] = { argsz, 0, index, 0 };

    return vfu_test_request(c, VFIO_USER_DEVICE_GET_REGION_IO_FDS, req, sizeof(req), NULL, 0, reply,
                            cap, len, fds, nfds);
}

int
vfu_test_device_feature(struct vfu_test_client *c, uint32_t argsz, uint32_t flags, const void *data,
                        size_t data_len, void *reply, size_t cap, size_t *len)
{
    uint32_t hdr[2] = { argsz, flags };
    struct iovec parts[2];

    parts[0].iov_base = hdr;
    parts[0].iov_len = sizeof(hdr);
    parts[1].iov_base = (void *)data;
    parts[1].iov_len = data_len;
    return tc_request_v(c, VFIO_USER_DEVICE_FEATURE, parts, data_len > 0 ? 2 : 1, NULL, 0, reply,
                        cap, len, NULL, NULL);
}
