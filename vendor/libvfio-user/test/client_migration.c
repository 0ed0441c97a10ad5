/*
 * Test client (see client.h): DEVICE_FEATURE, migration data and dirty-page logging.
 */
#include "client_internal.h"

/* Feature index and GET/SET bits, as in linux/vfio.h. */
#define FEAT_MIGRATION 1u
#define FEAT_MIG_DEVICE_STATE 2u
#define FEAT_DMA_LOGGING_START 6u
#define FEAT_DMA_LOGGING_STOP 7u
#define FEAT_DMA_LOGGING_REPORT 8u
#define FEAT_GET (1u << 16)
#define FEAT_SET (1u << 17)

int
vfu_test_mig_set_state(struct vfu_test_client *c, uint32_t state)
{
    uint32_t data[2] = { state, 0 };
    uint8_t reply[64];
    size_t len = 0;

    return vfu_test_device_feature(c, 16, FEAT_SET | FEAT_MIG_DEVICE_STATE, data, sizeof(data),
                                   reply, sizeof(reply), &len);
}

int
vfu_test_mig_get_state(struct vfu_test_client *c, uint32_t *state)
{
    uint32_t data[2] = { 0, 0 };
    uint8_t reply[64];
    size_t len = 0;
    int ret;

    ret = vfu_test_device_feature(c, 16, FEAT_GET | FEAT_MIG_DEVICE_STATE, data, sizeof(data),
                                  reply, sizeof(reply), &len);
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
vfu_test_mig_data_read(struct vfu_test_client *c, uint32_t size, void *buf, uint32_t *got)
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
    ret = vfu_test_request(c, VFIO_USER_MIG_DATA_READ, req, sizeof(req), NULL, 0, reply, cap, &len,
                           NULL, NULL);
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
vfu_test_mig_data_write(struct vfu_test_client *c, const void *data, uint32_t size)
{
    uint32_t hdr[2] = { (uint32_t)(8 + (uint64_t)size), size };
    struct iovec parts[2];

    parts[0].iov_base = hdr;
    parts[0].iov_len = sizeof(hdr);
    parts[1].iov_base = (void *)data;
    parts[1].iov_len = size;
    return tc_request_v(c, VFIO_USER_MIG_DATA_WRITE, parts, size > 0 ? 2 : 1, NULL, 0, NULL, 0,
                        NULL, NULL, NULL);
}

int
vfu_test_mig_get_flags(struct vfu_test_client *c, uint64_t *flags)
{
    uint8_t reply[64];
    size_t len = 0;
    int ret;

    ret = vfu_test_device_feature(c, 16, FEAT_GET | FEAT_MIGRATION, NULL, 0, reply, sizeof(reply),
                                  &len);
    if (ret == 0) {
        if (len < 16) {
            errno = EPROTO;
            return -1;
        }
        memcpy(flags, reply + 8, sizeof(*flags));
    }
    return ret;
}

int
vfu_test_dma_logging_start(struct vfu_test_client *c, uint64_t page_size, const uint64_t *ranges,
                           uint32_t num_ranges, uint64_t *chosen)
{
    size_t data_len = 16 + (size_t)num_ranges * 16;
    size_t cap = 8 + data_len, len = 0;
    uint8_t *data = calloc(1, data_len + cap);
    uint8_t *reply = data + data_len;
    int ret;

    if (data == NULL) {
        return -1;
    }
    memcpy(data, &page_size, 8);
    memcpy(data + 8, &num_ranges, 4);
    if (num_ranges > 0) {
        memcpy(data + 16, ranges, (size_t)num_ranges * 16);
    }
    ret = vfu_test_device_feature(c, (uint32_t)cap, FEAT_SET | FEAT_DMA_LOGGING_START, data,
                                  data_len, reply, cap, &len);
    if (ret == 0 && chosen != NULL) {
        if (len < 16) {
            errno = EPROTO;
            ret = -1;
        } else {
            memcpy(chosen, reply + 8, 8);
        }
    }
    {
        int err = errno;

        free(data);
        errno = err;
    }
    return ret;
}

int
vfu_test_dma_logging_stop(struct vfu_test_client *c)
{
    uint8_t data[16] = { 0 };
    uint8_t reply[64];
    size_t len = 0;

    return vfu_test_device_feature(c, 8 + sizeof(data), FEAT_SET | FEAT_DMA_LOGGING_STOP, data,
                                   sizeof(data), reply, sizeof(reply), &len);
}

int
vfu_test_dma_logging_report(struct vfu_test_client *c, uint64_t iova, uint64_t length,
                            uint64_t page_size, void *bitmap, size_t cap)
{
    uint64_t data[3] = { iova, length, page_size };
    size_t reply_cap = 8 + sizeof(data) + cap, len = 0;
    uint64_t pages, want;
    uint8_t *reply;
    int ret;

    if (page_size == 0) {
        pages = 0;
    } else {
        pages = length / page_size + (length % page_size != 0);
    }
    want = (pages + 63) / 64 * 8;
    reply = malloc(reply_cap);
    if (reply == NULL) {
        return -1;
    }
    ret = vfu_test_device_feature(c, (uint32_t)reply_cap, FEAT_GET | FEAT_DMA_LOGGING_REPORT, data,
                                  sizeof(data), reply, reply_cap, &len);
    if (ret == 0) {
        if (len != 8 + sizeof(data) + want || want > cap ||
            memcmp(reply + 8, data, sizeof(data)) != 0) {
            errno = EPROTO;
            ret = -1;
        } else {
            memcpy(bitmap, reply + 8 + sizeof(data), (size_t)want);
        }
    }
    {
        int err = errno;

        free(reply);
        errno = err;
    }
    return ret;
}
