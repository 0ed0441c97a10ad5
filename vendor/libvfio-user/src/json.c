/*
 * A strict, bounded JSON reader for the capabilities a client sends with
 * VERSION. It accepts exactly RFC 8259 JSON (no trailing commas, comments or
 * bare words), limits nesting and sizes, and never reads past the given
 * length, so a hostile client can only earn an EINVAL. Values of keys we do
 * not know are validated and skipped.
 */
#include <stdint.h>
#include <string.h>

#include "private.h"

#define JSON_MAX_DEPTH 16
#define JSON_MAX_KEY 64

struct json_cursor {
    const char *p;
    const char *end;
    int depth;
};

static void
skip_ws(struct json_cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) {
        c->p++;
    }
}

static bool
take(struct json_cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

static bool
take_word(struct json_cursor *c, const char *word)
{
    size_t n = strlen(word);

    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) {
        return false;
    }
    c->p += n;
    return true;
}

static bool
is_hex(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/*
 * Reads a string. Its raw bytes (escapes kept as written) are copied to key
 * when they fit; *fits tells whether they did, so long keys never match.
 */
static int
read_string(struct json_cursor *c, char *key, size_t key_size, bool *fits)
{
    size_t len = 0;

    if (!take(c, '"')) {
        return -EINVAL;
    }
    *fits = true;
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = (unsigned char)*c->p;

        if (ch < 0x20) {
            return -EINVAL;
        }
        if (ch == '\\') {
            if (c->end - c->p < 2) {
                return -EINVAL;
            }
            if (c->p[1] == 'u') {
                if (c->end - c->p < 6 || !is_hex(c->p[2]) || !is_hex(c->p[3]) || !is_hex(c->p[4]) ||
                    !is_hex(c->p[5])) {
                    return -EINVAL;
                }
                c->p += 6;
            } else if (strchr("\"\\/bfnrt", c->p[1]) != NULL && c->p[1] != '\0') {
                c->p += 2;
            } else {
                return -EINVAL;
            }
            *fits = false; /* our keys contain no escapes */
            continue;
        }
        if (key != NULL && len + 1 < key_size) {
            key[len++] = (char)ch;
        } else {
            *fits = false;
        }
        c->p++;
    }
    if (c->p >= c->end) {
        return -EINVAL;
    }
    c->p++;
    if (key != NULL) {
        key[len] = '\0';
    }
    return 0;
}

/* Reads a number; *integer receives it when it is a non-negative integer. */
static int
read_number(struct json_cursor *c, int64_t *integer, bool *is_integer)
{
    const char *start = c->p;
    bool negative = false, fraction = false, overflow = false;
    uint64_t value = 0;

    if (c->p < c->end && *c->p == '-') {
        negative = true;
        c->p++;
    }
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') {
        return -EINVAL;
    }
    if (*c->p == '0') {
        c->p++;
    } else {
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (value > (uint64_t)INT64_MAX / 10) {
                overflow = true;
            }
            value = value * 10 + (uint64_t)(*c->p - '0');
            if (value > (uint64_t)INT64_MAX) {
                overflow = true;
            }
            c->p++;
        }
    }
    if (c->p < c->end && *c->p == '.') {
        fraction = true;
        c->p++;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9') {
            return -EINVAL;
        }
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            c->p++;
        }
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        fraction = true;
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-')) {
            c->p++;
        }
        if (c->p >= c->end || *c->p < '0' || *c->p > '9') {
            return -EINVAL;
        }
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            c->p++;
        }
    }
    *is_integer = !negative && !fraction && !overflow && c->p > start;
    *integer = *is_integer ? (int64_t)value : -1;
    return 0;
}

static int skip_value(struct json_cursor *c);

/*
 * Walks an object whose '{' is next, calling member() for each key with the
 * cursor on its value; member() must consume the value (or call skip_value).
 */
typedef int (*member_fn)(struct json_cursor *c, const char *key, void *arg);

static int
each_member(struct json_cursor *c, member_fn member, void *arg)
{
    char key[JSON_MAX_KEY];
    bool fits;
    int ret;

    if (!take(c, '{')) {
        return -EINVAL;
    }
    if (++c->depth > JSON_MAX_DEPTH) {
        return -EINVAL;
    }
    if (take(c, '}')) {
        c->depth--;
        return 0;
    }
    do {
        skip_ws(c);
        ret = read_string(c, key, sizeof(key), &fits);
        if (ret < 0) {
            return ret;
        }
        if (!take(c, ':')) {
            return -EINVAL;
        }
        skip_ws(c);
        ret = fits ? member(c, key, arg) : skip_value(c);
        if (ret < 0) {
            return ret;
        }
    } while (take(c, ','));
    if (!take(c, '}')) {
        return -EINVAL;
    }
    c->depth--;
    return 0;
}

static int
skip_member(struct json_cursor *c, const char *key, void *arg)
{
    (void)key;
    (void)arg;
    return skip_value(c);
}

static int
skip_value(struct json_cursor *c)
{
    int64_t integer;
    bool flag;

    skip_ws(c);
    if (c->p >= c->end) {
        return -EINVAL;
    }
    switch (*c->p) {
    case '{':
        return each_member(c, skip_member, NULL);
    case '[':
        c->p++;
        if (++c->depth > JSON_MAX_DEPTH) {
            return -EINVAL;
        }
        if (!take(c, ']')) {
            do {
                int ret = skip_value(c);
                if (ret < 0) {
                    return ret;
                }
            } while (take(c, ','));
            if (!take(c, ']')) {
                return -EINVAL;
            }
        }
        c->depth--;
        return 0;
    case '"':
        return read_string(c, NULL, 0, &flag);
    case 't':
        return take_word(c, "true") ? 0 : -EINVAL;
    case 'f':
        return take_word(c, "false") ? 0 : -EINVAL;
    case 'n':
        return take_word(c, "null") ? 0 : -EINVAL;
    default:
        return read_number(c, &integer, &flag);
    }
}

static int
read_uint(struct json_cursor *c, int64_t *out)
{
    bool is_integer;
    int ret = read_number(c, out, &is_integer);

    if (ret < 0) {
        return ret;
    }
    return is_integer ? 0 : -EINVAL;
}

static int
read_bool(struct json_cursor *c, bool *out)
{
    if (take_word(c, "true")) {
        *out = true;
        return 0;
    }
    if (take_word(c, "false")) {
        *out = false;
        return 0;
    }
    return -EINVAL;
}

static int
migration_member(struct json_cursor *c, const char *key, void *arg)
{
    struct vfu_client_caps *caps = arg;

    if (strcmp(key, "pgsize") == 0) {
        return read_uint(c, &caps->migration_pgsize);
    }
    return skip_value(c);
}

static int
twin_socket_member(struct json_cursor *c, const char *key, void *arg)
{
    struct vfu_client_caps *caps = arg;

    if (strcmp(key, "supported") == 0) {
        return read_bool(c, &caps->twin_socket_supported);
    }
    return skip_value(c);
}

static int
capabilities_member(struct json_cursor *c, const char *key, void *arg)
{
    struct vfu_client_caps *caps = arg;

    if (strcmp(key, "max_msg_fds") == 0) {
        return read_uint(c, &caps->max_msg_fds);
    }
    if (strcmp(key, "max_data_xfer_size") == 0) {
        return read_uint(c, &caps->max_data_xfer_size);
    }
    if (strcmp(key, "max_dma_maps") == 0) {
        return read_uint(c, &caps->max_dma_maps);
    }
    if (strcmp(key, "pgsizes") == 0) {
        return read_uint(c, &caps->pgsizes);
    }
    if (strcmp(key, "write_multiple") == 0) {
        return read_bool(c, &caps->write_multiple);
    }
    if (strcmp(key, "migration") == 0) {
        return each_member(c, migration_member, caps);
    }
    if (strcmp(key, "twin_socket") == 0) {
        return each_member(c, twin_socket_member, caps);
    }
    return skip_value(c);
}

static int
top_member(struct json_cursor *c, const char *key, void *arg)
{
    if (strcmp(key, "capabilities") == 0) {
        return each_member(c, capabilities_member, arg);
    }
    return skip_value(c);
}

int
json_parse_client_caps(const char *text, size_t len, struct vfu_client_caps *caps)
{
    struct json_cursor c = { .p = text, .end = text + len, .depth = 0 };
    int ret;

    *caps = (struct vfu_client_caps){
        .max_msg_fds = -1,
        .max_data_xfer_size = -1,
        .max_dma_maps = -1,
        .pgsizes = -1,
        .migration_pgsize = -1,
    };
    ret = each_member(&c, top_member, caps);
    if (ret < 0) {
        return ret;
    }
    skip_ws(&c);
    return c.p == c.end ? 0 : -EINVAL;
}
