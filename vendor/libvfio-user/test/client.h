/*
 * A small vfio-user client for the C tests and benchmarks.
 *
 * It speaks the client side of the vfio-user protocol over a UNIX stream
 * socket: connect, VERSION negotiation, the device commands, file-descriptor
 * passing, and the server-to-client DMA_READ/DMA_WRITE commands (answered
 * from memory windows the test registers).  It never blocks longer than
 * `timeout_ms` on the socket, so a broken server makes a test fail instead
 * of hang.
 *
 * Conventions for every function that talks to the server:
 *   0    success;
 *   > 0  the server answered with an error reply: the value is the reply's
 *        error_no (an errno; it may be any value the server chose, 0 is
 *        mapped to EIO);
 *   -1   transport failure, protocol violation or timeout; errno says which
 *        (ETIMEDOUT: no reply within timeout_ms; ECONNRESET: the server
 *        closed the connection, seen on receive or send -- EPIPE is
 *        reported as ECONNRESET; EPROTO: malformed reply; EMSGSIZE: the reply
 *        did not fit in the caller's buffer).
 *
 * Requires C11 with _GNU_SOURCE (or gnu11); depends only on libc.
 */
#ifndef VFU_TEST_CLIENT_H
#define VFU_TEST_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <vfio-user.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Most fds a received message may carry into the caller's arrays. */
#define VFU_TEST_MAX_FDS 16
/* Most fds one sent message may carry (the kernel's SCM_MAX_FD). */
#define VFU_TEST_MAX_SEND_FDS 253
/* Default timeout for any wait on the socket. */
#define VFU_TEST_DEFAULT_TIMEOUT_MS 5000
/* Default connect retry window (socket path missing / ECONNREFUSED). */
#define VFU_TEST_DEFAULT_CONNECT_MS 2000
/* Size of the vfio-user message header. */
#define VFU_TEST_HDR_SIZE 16
/* Region index of PCI config space. */
#define VFU_TEST_CFG_REGION 7
/* Memory windows the client can serve DMA_READ/DMA_WRITE from. */
#define VFU_TEST_MAX_DMA_WINDOWS 16

struct vfu_test_client;

/*
 * Handler for a command the server sent to the client (DMA_READ, DMA_WRITE,
 * or anything else) while the client waits for a reply.  `fd` is the socket
 * it came on (c->fd or c->twin_fd); the handler must reply itself (see
 * vfu_test_send_reply) unless hdr->flags has VFIO_USER_F_NO_REPLY.  Return 0
 * to continue waiting, -1 (errno set) to abort the pending request.
 */
typedef int vfu_test_server_cmd_fn(struct vfu_test_client *c, int fd,
                                   const struct vfio_user_header *hdr, const void *payload,
                                   size_t len, const int *fds, size_t nfds, void *opaque);

struct vfu_test_dma_window {
    uint64_t iova;
    uint64_t size;
    void *ptr;
};

struct vfu_test_client {
    int fd;                      /* connected socket, -1 when closed */
    uint16_t next_id;            /* msg_id of the next command */
    uint32_t max_data_xfer_size; /* server's value (default 1 MiB) */
    uint32_t max_msg_fds;        /* server's value (default 1) */
    int timeout_ms;              /* per wait; < 0 means wait forever */

    /* Set by vfu_test_negotiate(). */
    uint16_t major, minor;  /* from the server's VERSION reply */
    char *server_json;      /* malloc'd copy of the reply JSON, NUL-
                                    terminated; NULL if the reply had none */
    size_t server_json_len; /* strlen(server_json) */
    int twin_fd;            /* twin socket (server-to-client commands)
                                    if the server granted it, else -1 */

    /* Header of the last reply received by vfu_test_request(). */
    struct vfio_user_header last_hdr;

    /* Server-to-client command handling (see vfu_test_server_cmd_fn). */
    vfu_test_server_cmd_fn *server_cmd_fn; /* NULL: built-in handler */
    void *server_cmd_opaque;
    struct vfu_test_dma_window dma_windows[VFU_TEST_MAX_DMA_WINDOWS];
    unsigned nr_dma_windows;

    /* Statistics. */
    unsigned long server_cmds; /* server-to-client commands seen */
    unsigned long stray_msgs;  /* replies with another msg_id, dropped */
};

/* ------------------------------------------------------------------------ */
/* Connection.                                                              */

/* Sets defaults: fd/twin_fd -1, next_id 1, limits 1 MiB / 1 fd, timeout. */
void vfu_test_client_init(struct vfu_test_client *c);

/*
 * Initialises `c` and connects to the UNIX socket `path`, retrying every few
 * milliseconds for up to `retry_ms` (< 0: VFU_TEST_DEFAULT_CONNECT_MS) while
 * the path does not exist, the connection is refused or the listen queue is
 * full.  0 on success, -1 with errno (ETIMEDOUT if retries ran out while the
 * last error was transient).  The socket is left blocking; all I/O in this
 * client uses MSG_DONTWAIT plus poll().
 */
int vfu_test_client_connect(struct vfu_test_client *c, const char *path, int retry_ms);

/* Closes the socket(s), frees server_json.  Safe to call twice. */
void vfu_test_client_close(struct vfu_test_client *c);

/*
 * Sends VERSION {major, minor, json} (json NULL: no JSON at all, payload is 4
 * bytes; otherwise the string is sent with its terminating NUL) and parses
 * the reply: c->major/minor, c->server_json, and, when present in the reply
 * JSON, max_msg_fds and max_data_xfer_size (else the defaults 1 and 1 MiB).
 * If the reply carries a twin socket (twin_socket.fd_index), it is stored in
 * c->twin_fd; any other fds are closed.  Returns as described at the top.
 */
int vfu_test_negotiate(struct vfu_test_client *c, uint16_t major, uint16_t minor, const char *json);

/* JSON proposed by vfu_test_client_open(). */
#define VFU_TEST_DEFAULT_JSON \
    "{\"capabilities\":{\"max_msg_fds\":16,\"max_data_xfer_size\":1048576}}"

/* connect (default retry) + negotiate(0, 1, VFU_TEST_DEFAULT_JSON). */
int vfu_test_client_open(struct vfu_test_client *c, const char *path);

/*
 * Minimal JSON helpers for checking the server's reply.  They find the first
 * occurrence of "key" (with quotes) followed by ':' anywhere in `json` -- no
 * nesting awareness, good enough for tests.
 */
bool vfu_test_json_has_key(const char *json, const char *key);
/* Parses an unsigned integer value; 0 on success, -1 if absent/not a number */
int vfu_test_json_get_u64(const char *json, const char *key, uint64_t *out);
/* Parses true/false; 0 on success, -1 if absent or not a boolean. */
int vfu_test_json_get_bool(const char *json, const char *key, bool *out);

/* ------------------------------------------------------------------------ */
/* Low level.                                                               */

/*
 * Sends one command: header {fresh msg_id, cmd, 16 + len, flags, 0} then
 * `payload`, with `fds` (nfds <= VFU_TEST_MAX_SEND_FDS) as SCM_RIGHTS.
 * `flags` is OR-ed into the header flags (type COMMAND = 0), e.g.
 * VFIO_USER_F_NO_REPLY.  Returns the msg_id used (0..65535), or -1.
 */
int vfu_test_send_cmd(struct vfu_test_client *c, uint16_t cmd, uint32_t flags, const void *payload,
                      size_t len, const int *fds, size_t nfds);

/*
 * Sends `len` arbitrary bytes (possibly malformed) on c->fd, with optional
 * fds attached to the first byte.  Handles partial writes.  0 or -1.
 */
int vfu_test_send_raw(struct vfu_test_client *c, const void *buf, size_t len, const int *fds,
                      size_t nfds);

/* Like vfu_test_send_raw() but on any socket `fd` (e.g. the twin socket). */
int vfu_test_send_raw_fd(int fd, int timeout_ms, const void *buf, size_t len, const int *fds,
                         size_t nfds);

/* Sends a reply {msg_id, cmd, flags REPLY (| ERROR if error_no != 0)} with
 * `payload` on socket `fd` (used by server-command handlers). */
int vfu_test_send_reply(struct vfu_test_client *c, int fd, uint16_t msg_id, uint16_t cmd,
                        uint32_t error_no, const void *payload, size_t len);

/*
 * Receives one whole message from c->fd: the header into *hdr, the payload
 * into buf (capacity cap; *len = the payload size, 0 if none), and up to
 * VFU_TEST_MAX_FDS received fds into `fds` (NULL: they are closed; *nfds
 * gets the count).  Waits at most c->timeout_ms for the whole message.
 * Returns 0, or -1 with errno: ETIMEDOUT; ECONNRESET (peer closed, also in
 * the middle of a message); EPROTO (msg_size < 16); EMSGSIZE (the payload
 * did not fit: it was read and dropped, *len is its real size, the first
 * `cap` bytes are in buf, fds are still returned).
 */
int vfu_test_recv_msg(struct vfu_test_client *c, struct vfio_user_header *hdr, void *buf,
                      size_t cap, size_t *len, int *fds, size_t *nfds);

/* Same as vfu_test_recv_msg() on any socket fd. */
int vfu_test_recv_msg_fd(int fd, int timeout_ms, struct vfio_user_header *hdr, void *buf,
                         size_t cap, size_t *len, int *fds, size_t *nfds);

/*
 * Waits up to timeout_ms (< 0: c->timeout_ms) for the server to close the
 * connection, discarding whatever it sends (fds included).  0 if the peer
 * closed it, -1 with errno ETIMEDOUT otherwise.  For bad-input tests.
 */
int vfu_test_wait_closed(struct vfu_test_client *c, int timeout_ms);

/*
 * Sends a command and waits for the reply with the same msg_id, serving
 * server-to-client commands meanwhile (on c->fd and c->twin_fd) and
 * dropping stray replies (counted in c->stray_msgs).  The reply payload goes
 * to `reply` (capacity cap, may be NULL if cap is 0; *reply_len = its size,
 * may be NULL) and its fds to `reply_fds` (room for VFU_TEST_MAX_FDS; NULL:
 * closed) with their count in *reply_nfds (may be NULL).  The reply header
 * is in c->last_hdr.  Returns 0, the reply's error_no (> 0) when the reply
 * has VFIO_USER_F_ERROR, or -1/errno.
 */
int vfu_test_request(struct vfu_test_client *c, uint16_t cmd, const void *req, size_t req_len,
                     const int *fds, size_t nfds, void *reply, size_t cap, size_t *reply_len,
                     int *reply_fds, size_t *reply_nfds);

/*
 * Lets the client serve server-to-client commands until none arrives for
 * timeout_ms (0: only what is already pending).  Returns the number of
 * commands served, or -1/errno (e.g. ECONNRESET); replies that arrive are
 * dropped and counted as stray.
 */
int vfu_test_client_serve(struct vfu_test_client *c, int timeout_ms);

/*
 * Registers a window of client memory [iova, iova + size) backed by `ptr`;
 * the built-in handler answers DMA_READ/DMA_WRITE inside it (error EFAULT
 * outside any window, EINVAL for other commands).  0, or -1/ENOSPC.
 * Remove with vfu_test_client_del_dma_window(c, iova).
 */
int vfu_test_client_add_dma_window(struct vfu_test_client *c, uint64_t iova, void *ptr,
                                   uint64_t size);
int vfu_test_client_del_dma_window(struct vfu_test_client *c, uint64_t iova);

/*
 * The built-in handler itself, for a custom vfu_test_server_cmd_fn that
 * does something first (or instead, for some commands): answers a
 * DMA_READ/DMA_WRITE from the windows on socket fd.  0 or -1/errno.
 */
int vfu_test_serve_dma_cmd(struct vfu_test_client *c, int fd, const struct vfio_user_header *hdr,
                           const void *payload, size_t len);

/* ------------------------------------------------------------------------ */
/* Typed commands (thin wrappers on vfu_test_request).                      */

/* DEVICE_GET_INFO with argsz 16. */
int vfu_test_device_get_info(struct vfu_test_client *c, struct vfio_user_device_info *info);

/*
 * DEVICE_GET_REGION_INFO for `index` with the given argsz (>= 32 normally;
 * smaller values are sent as is to test rejection).  The reply (struct
 * vfio_region_info + capabilities) goes to `reply` (capacity cap; *len gets
 * its size).  *fd_out gets the region fd if one came (else -1); extra fds
 * are closed.  fd_out may be NULL (fd closed).
 */
int vfu_test_get_region_info(struct vfu_test_client *c, uint32_t index, uint32_t argsz, void *reply,
                             size_t cap, size_t *len, int *fd_out);

/*
 * REGION_READ: reads `count` bytes at `offset` of `region` into `out`.
 * Checks that the reply echoes offset/region/count and carries count bytes
 * (an empty reply is accepted for count 0); EPROTO otherwise.
 */
int vfu_test_region_read(struct vfu_test_client *c, uint32_t region, uint64_t offset,
                         uint32_t count, void *out);
/* REGION_WRITE: writes `count` bytes of `data`; checks the 16-byte echo. */
int vfu_test_region_write(struct vfu_test_client *c, uint32_t region, uint64_t offset,
                          uint32_t count, const void *data);
/* REGION_WRITE with VFIO_USER_F_NO_REPLY (a posted write): only sends. */
int vfu_test_region_write_posted(struct vfu_test_client *c, uint32_t region, uint64_t offset,
                                 uint32_t count, const void *data);

/* Read/write a little-endian value of width 1, 2, 4 or 8 bytes. */
int vfu_test_region_read_val(struct vfu_test_client *c, uint32_t region, uint64_t offset,
                             unsigned width, uint64_t *val);
int vfu_test_region_write_val(struct vfu_test_client *c, uint32_t region, uint64_t offset,
                              unsigned width, uint64_t val);

/* Config space (region 7). */
int vfu_test_cfg_read(struct vfu_test_client *c, uint64_t offset, uint32_t count, void *out);
int vfu_test_cfg_write(struct vfu_test_client *c, uint64_t offset, uint32_t count,
                       const void *data);
int vfu_test_cfg_read_val(struct vfu_test_client *c, uint64_t offset, unsigned width,
                          uint64_t *val);
int vfu_test_cfg_write_val(struct vfu_test_client *c, uint64_t offset, unsigned width,
                           uint64_t val);

/* One entry of REGION_WRITE_MULTI (24 bytes on the wire). */
struct vfu_test_write_entry {
    uint64_t offset;
    uint32_t region;
    uint32_t count; /* <= 8 */
    uint8_t data[8];
};

/*
 * REGION_WRITE_MULTI: payload u64 wr_cnt = n, then the n entries.  On success
 * *completed (may be NULL) gets the reply's wr_cnt.
 */
int vfu_test_region_write_multi(struct vfu_test_client *c, const struct vfu_test_write_entry *wrs,
                                uint64_t n, uint64_t *completed);

/* DEVICE_GET_IRQ_INFO with argsz 16. */
int vfu_test_get_irq_info(struct vfu_test_client *c, uint32_t index, struct vfio_irq_info *info);

/*
 * DEVICE_SET_IRQS {argsz = 20 + data_len, flags, index, start, count} +
 * data bytes (e.g. one byte per vector for DATA_BOOL), with `fds` attached.
 */
int vfu_test_set_irqs(struct vfu_test_client *c, uint32_t index, uint32_t flags, uint32_t start,
                      uint32_t count, const void *data, size_t data_len, const int *fds,
                      size_t nfds);

/* SET_IRQS DATA_EVENTFD|ACTION_TRIGGER with `count` eventfds (fds may be
 * NULL with count 0 or to de-assign: then no fds are sent). */
int vfu_test_set_irqs_eventfds(struct vfu_test_client *c, uint32_t index, uint32_t start,
                               uint32_t count, const int *fds);

/* DMA_MAP {argsz 32, flags, offset, addr, size}, with `fd` if fd >= 0. */
int vfu_test_dma_map(struct vfu_test_client *c, uint32_t flags, uint64_t offset, uint64_t addr,
                     uint64_t size, int fd);

/* DMA_UNMAP {argsz 24, flags, addr, size}; the 24-byte echo is checked
 * (EPROTO if shorter than 24 bytes). */
int vfu_test_dma_unmap(struct vfu_test_client *c, uint32_t flags, uint64_t addr, uint64_t size);

/* DEVICE_RESET with an empty payload. */
int vfu_test_device_reset(struct vfu_test_client *c);

/*
 * DEVICE_GET_REGION_IO_FDS {argsz, flags 0, index, count 0}.  The reply goes
 * to reply/cap/len and its fds to `fds` (room for VFU_TEST_MAX_FDS, NULL:
 * closed), count in *nfds.
 */
int vfu_test_get_region_io_fds(struct vfu_test_client *c, uint32_t index, uint32_t argsz,
                               void *reply, size_t cap, size_t *len, int *fds, size_t *nfds);

/*
 * DEVICE_FEATURE {argsz, flags} + data.  The reply payload (header and
 * data) goes to reply/cap/len.
 */
int vfu_test_device_feature(struct vfu_test_client *c, uint32_t argsz, uint32_t flags,
                            const void *data, size_t data_len, void *reply, size_t cap,
                            size_t *len);

/* DEVICE_FEATURE MIG_DEVICE_STATE: SET to `state`, or GET into *state. */
int vfu_test_mig_set_state(struct vfu_test_client *c, uint32_t state);
int vfu_test_mig_get_state(struct vfu_test_client *c, uint32_t *state);

/*
 * MIG_DATA_READ {argsz 8 + size, size}: on success *got gets the reply's
 * size field and that many bytes are copied to buf (capacity `size`).
 */
int vfu_test_mig_data_read(struct vfu_test_client *c, uint32_t size, void *buf, uint32_t *got);
/* MIG_DATA_WRITE {argsz 8 + size, size} + data. */
int vfu_test_mig_data_write(struct vfu_test_client *c, const void *data, uint32_t size);

/* DEVICE_FEATURE GET MIGRATION: *flags gets the VFIO_MIGRATION_* bits. */
int vfu_test_mig_get_flags(struct vfu_test_client *c, uint64_t *flags);

/*
 * DEVICE_FEATURE SET DMA_LOGGING_START {page_size, num_ranges, 0} + the
 * ranges (pairs of iova, length); *chosen (may be NULL) gets the page size
 * the server chose, from its reply.
 */
int vfu_test_dma_logging_start(struct vfu_test_client *c, uint64_t page_size,
                               const uint64_t *ranges, uint32_t num_ranges, uint64_t *chosen);
/* DEVICE_FEATURE SET DMA_LOGGING_STOP. */
int vfu_test_dma_logging_stop(struct vfu_test_client *c);
/*
 * DEVICE_FEATURE GET DMA_LOGGING_REPORT {iova, length, page_size} with argsz
 * covering a bitmap of `cap` bytes; the reply's bitmap (checked to be the
 * size the range needs, one bit per page in whole u64s) goes to bitmap.
 */
int vfu_test_dma_logging_report(struct vfu_test_client *c, uint64_t iova, uint64_t length,
                                uint64_t page_size, void *bitmap, size_t cap);

/* ------------------------------------------------------------------------ */
/* OS helpers.                                                              */

/* A non-blocking, close-on-exec eventfd with counter 0; -1 on error. */
int vfu_test_eventfd_new(void);
/* Waits up to timeout_ms (< 0: forever) for the eventfd to be signalled and
 * returns the counter value read (which resets it), 0 on timeout/error. */
uint64_t vfu_test_eventfd_wait(int fd, int timeout_ms);
/* Returns the counter without waiting (0 if not signalled). */
uint64_t vfu_test_eventfd_read(int fd);
/* Adds `val` to the eventfd counter; 0 or -1. */
int vfu_test_eventfd_signal(int fd, uint64_t val);
/* A close-on-exec memfd of `size` bytes (zero-filled); -1 on error. */
int vfu_test_memfd(size_t size);
/* Number of entries in /proc/self/fd (minus the one used to list it);
 * -1 on error. */
int vfu_test_count_open_fds(void);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t vfu_test_now_ns(void);
/* Sleeps for `ms` milliseconds. */
void vfu_test_sleep_ms(unsigned ms);

#ifdef __cplusplus
}
#endif

#endif /* VFU_TEST_CLIENT_H */
