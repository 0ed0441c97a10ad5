/*
 * VERSION: the first message of every connection. We answer major 0 and the
 * lower of the two minors, and offer only capabilities the client proposed,
 * plus our own message limits, which every client must be told.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "private.h"

#define CLIENT_MAX_MSG_FDS_LIMIT 1024
#define REPLY_JSON_MAX 512

static int
apply_client_caps(vfu_ctx_t *ctx, const struct vfu_client_caps *caps)
{
    struct vfu_conn *conn = &ctx->conn;
    long page_size = sysconf(_SC_PAGESIZE);

    if (caps->max_msg_fds > CLIENT_MAX_MSG_FDS_LIMIT) {
        vfu_err(ctx, "client max_msg_fds %lld is out of range", (long long)caps->max_msg_fds);
        return -EINVAL;
    }
    if (caps->max_data_xfer_size == 0 || caps->max_dma_maps == 0) {
        vfu_err(ctx, "client proposed a zero transfer size or map count");
        return -EINVAL;
    }
    if (ctx->migration_enabled && caps->migration_pgsize >= 0 &&
        caps->migration_pgsize != page_size) {
        vfu_err(ctx, "client migration page size %lld is not %ld",
                (long long)caps->migration_pgsize, page_size);
        return -EINVAL;
    }
    conn->client_max_msg_fds =
        caps->max_msg_fds >= 0 ? (uint32_t)caps->max_msg_fds : CLIENT_DEFAULT_MAX_MSG_FDS;
    conn->client_max_data_xfer_size = caps->max_data_xfer_size > 0
                                          ? (uint64_t)caps->max_data_xfer_size
                                          : CLIENT_DEFAULT_MAX_DATA_XFER_SIZE;
    conn->client_max_dma_maps = caps->max_dma_maps > 0
                                    ? (uint32_t)VFU_MIN(caps->max_dma_maps, (int64_t)UINT32_MAX)
                                    : CLIENT_DEFAULT_MAX_DMA_MAPS;
    return 0;
}

static int
format_reply_caps(vfu_ctx_t *ctx, const struct vfu_client_caps *caps, bool twin, char *buf,
                  size_t size)
{
    long page_size = sysconf(_SC_PAGESIZE);
    int n = snprintf(buf, size,
                     "{\"capabilities\":{\"max_msg_fds\":%d,"
                     "\"max_data_xfer_size\":%d",
                     SERVER_MAX_MSG_FDS, SERVER_MAX_DATA_XFER_SIZE);

    if (caps->max_dma_maps > 0) {
        n += snprintf(buf + n, size - (size_t)n, ",\"max_dma_maps\":%u",
                      ctx->conn.client_max_dma_maps);
    }
    if (caps->pgsizes >= 0) {
        n += snprintf(buf + n, size - (size_t)n, ",\"pgsizes\":%ld", page_size);
    }
    if (ctx->migration_enabled) {
        n += snprintf(buf + n, size - (size_t)n, ",\"migration\":{\"pgsize\":%ld}", page_size);
    }
    if (twin) {
        n += snprintf(buf + n, size - (size_t)n,
                      ",\"twin_socket\":{\"supported\":true,\"fd_index\":0}");
    }
    if (caps->write_multiple) {
        n += snprintf(buf + n, size - (size_t)n, ",\"write_multiple\":true");
    }
    n += snprintf(buf + n, size - (size_t)n, "}}");
    return n;
}

int
handle_version(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfio_user_version version;
    struct vfu_client_caps caps;
    struct vfio_user_version *reply;
    char json[REPLY_JSON_MAX];
    int ret, len, twin_fd = -1;

    if (msg->hdr.cmd != VFIO_USER_VERSION) {
        vfu_err(ctx, "first message is command %u, not VERSION", msg->hdr.cmd);
        return -EINVAL;
    }
    if (msg->in_len < sizeof(version) || msg->nr_in_fds > 0 || msg->fds_lost) {
        vfu_err(ctx, "malformed VERSION message");
        return -EINVAL;
    }
    memcpy(&version, msg->in, sizeof(version));
    if (version.major != LIB_VFIO_USER_MAJOR) {
        vfu_err(ctx, "client protocol major %u is not %u", version.major, LIB_VFIO_USER_MAJOR);
        return -EINVAL;
    }
    if (msg->in_len > sizeof(version)) {
        const char *text = (const char *)msg->in + sizeof(version);
        size_t text_len = msg->in_len - sizeof(version);

        if (text[text_len - 1] != '\0') {
            vfu_err(ctx, "VERSION capabilities are not NUL-terminated");
            return -EINVAL;
        }
        ret = json_parse_client_caps(text, text_len - 1, &caps);
        if (ret < 0) {
            vfu_err(ctx, "VERSION capabilities are not valid JSON");
            return ret;
        }
    } else {
        json_parse_client_caps("{}", 2, &caps);
    }
    ret = apply_client_caps(ctx, &caps);
    if (ret < 0) {
        return ret;
    }

    /*
     * A client that can take an fd and asks for a twin socket gets one: our
     * DMA_READ / DMA_WRITE then never come between it and its replies.
     */
    if (caps.twin_socket_supported && ctx->conn.client_max_msg_fds > 0) {
        twin_fd = tran_twin_create(ctx);
        if (twin_fd < 0) {
            vfu_warn(ctx, "no twin socket: %s", strerror(-twin_fd));
        }
    }
    len = format_reply_caps(ctx, &caps, twin_fd >= 0, json, sizeof(json));
    reply = msg_reply_alloc(msg, sizeof(*reply) + (size_t)len + 1);
    if (reply == NULL) {
        if (twin_fd >= 0) {
            close(twin_fd);
        }
        return -ENOMEM;
    }
    if (twin_fd >= 0) {
        /* Ours to close once sent: the client keeps its own copy. */
        msg->out_fds_owned = true;
        msg_reply_add_fd(msg, twin_fd);
    }
    reply->major = LIB_VFIO_USER_MAJOR;
    reply->minor = VFU_MIN(version.minor, LIB_VFIO_USER_MINOR);
    memcpy(reply->data, json, (size_t)len + 1);
    ctx->conn.minor = reply->minor;
    return 0;
}
