/*
 * Test client (see client.h): connecting, negotiating VERSION, reading the reply's JSON.
 */
#include "client_internal.h"

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
vfu_test_client_connect(struct vfu_test_client *c, const char *path, int retry_ms)
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
    deadline = tc_deadline_after(retry_ms < 0 ? VFU_TEST_DEFAULT_CONNECT_MS : retry_ms);

    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
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
        if (last_err != ENOENT && last_err != ECONNREFUSED && last_err != EAGAIN &&
            last_err != EINTR) {
            errno = last_err;
            return -1;
        }
        if (tc_ms_left(deadline) == 0) {
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
vfu_test_negotiate(struct vfu_test_client *c, uint16_t major, uint16_t minor, const char *json)
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
    ret = tc_request_v(c, VFIO_USER_VERSION, parts, nparts, NULL, 0, reply, cap, &len, fds, &nfds);
    if (ret != 0) {
        int err = errno;

        tc_close_fds(fds, nfds);
        free(reply);
        errno = err;
        return ret;
    }
    if (len < sizeof(ver)) {
        tc_close_fds(fds, nfds);
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
            tc_close_fds(fds, nfds);
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
    if (vfu_test_json_get_u64(c->server_json, "max_data_xfer_size", &val) == 0) {
        c->max_data_xfer_size = val > UINT32_MAX ? UINT32_MAX : (uint32_t)val;
    }

    /* twin socket, if granted; every other fd is closed */
    if (vfu_test_json_get_u64(c->server_json, "fd_index", &val) == 0 && val < nfds) {
        if (c->twin_fd >= 0) {
            close(c->twin_fd);
        }
        c->twin_fd = fds[val];
        fds[val] = -1;
    }
    tc_close_fds(fds, nfds);
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
