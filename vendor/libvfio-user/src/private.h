/*
 * Internal state of a vfu_ctx_t and the interfaces between the library's
 * source files. Nothing here is part of the public API: every symbol declared
 * here has hidden visibility in the shared library.
 *
 * Conventions inside the library:
 *  - internal functions return 0 (or a byte count) on success and a negative
 *    errno on failure; only the public vfu_* entry points translate that into
 *    -1 with errno set;
 *  - a command handler fills msg->out (via msg_reply_alloc) and returns 0, or
 *    returns -errno and the dispatcher sends an error reply.
 */
#ifndef VFU_PRIVATE_H
#define VFU_PRIVATE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "libvfio-user.h"

#define VFU_EXPORT __attribute__((visibility("default")))

#define VFU_MIN(a, b) ((a) < (b) ? (a) : (b))
#define VFU_MAX(a, b) ((a) > (b) ? (a) : (b))
#define VFU_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define VFU_ROUND_UP(x, a) ((((x) + (a)-1) / (a)) * (a))

/* What this server offers at negotiation. */
#define SERVER_MAX_MSG_FDS 8
#define SERVER_MAX_DATA_XFER_SIZE VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE
/* Largest message accepted: header + region-access header + data. */
#define SERVER_MAX_MSG_SIZE (SERVER_MAX_DATA_XFER_SIZE + 32)
/*
 * Most bytes queued for a client that does not read them; past it the client
 * counts as gone. Requests stop being read while a reply waits, so replies
 * alone queue one at a time; the bound holds whatever else the server sends.
 */
#define TX_QUEUE_MAX (8u << 20)
/* SCM_MAX_FD: we receive every fd a peer may send so that extras get closed. */
#define RECV_MAX_FDS 253
/*
 * Receive buffer per connection: one recvmsg takes a burst of small messages.
 * A message larger than this is received straight into its own allocation.
 */
#define RX_BUF_SIZE 8192
/* Bytes of messages put aside while a DMA transfer waits, before it gives up. */
#define DEFERRED_MAX (8u << 20)
/*
 * Longest wait of vfu_sgl_read / vfu_sgl_write for the next reply to a
 * DMA_READ / DMA_WRITE, as QEMU's default x-msg-timeout for its own requests.
 */
#define DMA_REPLY_TIMEOUT_MS 5000
/*
 * Most bytes of DMA messages awaiting replies per transfer kind (blocking,
 * asynchronous): keeps what is queued for the client well within TX_QUEUE_MAX.
 */
#define DMA_INFLIGHT_MAX (2u << 20)
/*
 * Most data asked for by one DMA_READ. QEMU (10.1 to 11) writes each message
 * with one non-blocking sendmsg and counts a short write as sent: a reply the
 * socket takes only in part is cut, the rest never comes, and the stream is
 * out of step for good. Linux queues an AF_UNIX stream write in units of
 * 32 KiB plus about 3.7 KiB and takes or refuses each unit whole, so a reply
 * of this much data and its 32-byte head is never cut.
 */
#define DMA_READ_CHUNK_MAX (32u << 10)

/* Clients turned away at once while another is attached (transport_newcomer.c). */
#define NEWCOMERS_MAX 4
/* How long such a client may take to send its VERSION header. */
#define NEWCOMER_TIMEOUT_MS 1000
/*
 * How long a connecting client may wait to be looked at while the attached
 * one keeps the device busy: looking costs a system call per request.
 */
#define NEWCOMER_LOOK_MS 10

/* Defaults assumed for a client that does not say otherwise. */
#define CLIENT_DEFAULT_MAX_MSG_FDS 1
#define CLIENT_DEFAULT_MAX_DATA_XFER_SIZE VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE
#define CLIENT_DEFAULT_MAX_DMA_MAPS 65535

/* ---------------------------------------------------------------- messages */

/* One request being handled, and the reply being built for it. */
struct vfu_msg {
    struct vfio_user_header hdr;
    uint8_t *in; /* request payload, hdr.msg_size - 16 bytes */
    size_t in_len;
    bool in_borrowed; /* in is the connection's, valid until the next
                                   tran_recv_msg; else malloc'd and owned */
    int *in_fds;      /* fds that came with the request */
    size_t nr_in_fds; /* a consumed fd is set to -1 (msg_take_fd) */
    bool fds_lost;    /* the kernel dropped fds beyond RECV_MAX_FDS */
    bool from_twin;   /* came on the twin socket */

    uint8_t *out; /* reply payload, owned by the message */
    size_t out_len;
    int out_fds[SERVER_MAX_MSG_FDS]; /* sent with the reply */
    size_t nr_out_fds;
    bool out_fds_owned; /* closed with the message, not the device's */
};

/* Allocates a zeroed reply payload of len bytes (replacing any earlier one). */
void *msg_reply_alloc(struct vfu_msg *msg, size_t len);
/* Queues an fd to send with the reply; -ENOSPC past SERVER_MAX_MSG_FDS. */
int msg_reply_add_fd(struct vfu_msg *msg, int fd);
/* Takes ownership of request fd idx (it will not be closed after the request). */
int msg_take_fd(struct vfu_msg *msg, size_t idx);
/* Gives msg a payload of its own, so that it may outlive the next receive. */
int msg_own_payload(struct vfu_msg *msg);

typedef int (*vfu_cmd_handler_t)(vfu_ctx_t *ctx, struct vfu_msg *msg);
/* Whether a request needs the device quiesced before its handler runs. */
typedef bool vfu_cmd_quiesce_t(vfu_ctx_t *ctx, const struct vfu_msg *msg);

/* ------------------------------------------------------------- connection */

/* File descriptors received with the bytes of one message. */
struct vfu_rx_fds {
    uint64_t owner; /* stream offset of that message's header */
    size_t nr;
    bool lost; /* some were dropped (too many) */
    int fds[RECV_MAX_FDS];
};

/*
 * Receive state: bytes read ahead into buf, parsed into messages as they
 * complete, so a slow or stalled client never blocks and a burst costs one
 * recvmsg. Offsets "in the stream" count bytes since the connection began.
 */
struct vfu_rx {
    uint8_t buf[RX_BUF_SIZE];
    size_t start;     /* first byte not parsed yet */
    size_t end;       /* end of the bytes read */
    uint64_t base;    /* stream offset of buf[0] */
    uint64_t discard; /* bytes of an oversized message left to skip */
    /* A message larger than buf, read straight into its own body. */
    struct vfio_user_header big_hdr;
    uint8_t *big_body;
    size_t big_len;
    size_t big_got;
    uint64_t big_start;
    struct vfu_rx_fds fds[3]; /* waiting for their message to complete */
    size_t nr_fds;
    bool drained;                 /* the last read was short: nothing was left */
    bool eof;                     /* the client closed or reset the connection */
    uint8_t payload[RX_BUF_SIZE]; /* the payload of the request being served */
};

/* A message received while a DMA transfer waited, kept for vfu_run_ctx. */
struct vfu_deferred {
    struct vfu_deferred *next;
    struct vfu_msg msg;
    int status; /* what tran_recv_msg returns for it */
};

/* A message, or what is left of it, waiting for the socket to take it. */
struct vfu_tx {
    struct vfu_tx *next;
    uint8_t *data;
    size_t len;
    size_t sent;
    int fds[SERVER_MAX_MSG_FDS]; /* go with the first byte */
    size_t nr_fds;
};

/* One socket to the client: what was read from it and what waits to go. */
struct vfu_stream {
    int fd; /* -1 when none */
    struct vfu_rx rx;
    struct vfu_tx *tx_head; /* unsent messages, oldest first */
    struct vfu_tx *tx_tail;
    size_t tx_bytes;  /* unsent bytes in the queue, <= TX_QUEUE_MAX */
    uint32_t watched; /* the epoll events last set for fd */
};

struct vfu_conn {
    struct vfu_stream main; /* the client's requests and our replies */
    /*
     * Once granted at VERSION (twin_socket), our own commands (DMA_READ,
     * DMA_WRITE) and the client's replies to them; fd -1 otherwise, and
     * they share the main socket.
     */
    struct vfu_stream twin;
    bool negotiated;                    /* VERSION exchanged: attached */
    struct vfu_deferred *deferred_head; /* served before anything new */
    struct vfu_deferred *deferred_tail;
    size_t deferred_bytes;
    /* What the client announced (or the defaults). */
    uint32_t client_max_msg_fds;
    uint64_t client_max_data_xfer_size;
    uint32_t client_max_dma_maps;
    uint16_t minor;
};

/* ---------------------------------------------------------------- regions */

struct vfu_region {
    size_t size;
    int flags; /* VFU_REGION_FLAG_* */
    vfu_region_access_cb_t *cb;
    int fd;          /* -1: not mappable */
    uint64_t offset; /* region's offset within fd */
    struct iovec *mmap_areas;
    uint32_t nr_mmap_areas;
};

struct vfu_ioeventfd {
    struct vfu_ioeventfd *next;
    uint32_t region;
    int fd;
    uint64_t gpa_offset;
    uint32_t size;
    uint32_t flags;
    uint64_t datamatch;
};

/* --------------------------------------------------------- PCI config space */

#define PCI_MAX_CAPS 128 /* of each kind, standard and extended */

struct vfu_pci_cap {
    size_t off;
    size_t size;
    int id;
    int flags; /* VFU_CAP_FLAG_* */
};

struct vfu_pci {
    vfu_pci_type_t type;
    uint8_t *cfg;     /* config space, regions[CFG].size bytes */
    uint8_t *wmask;   /* per byte: bits a client write may change */
    uint8_t *w1cmask; /* per byte: bits a client clears by writing 1 */
    size_t cfg_size;  /* bytes a client may access */
    size_t cfg_alloc; /* bytes allocated: at least 256 (pci_defs.h) */
    struct vfu_pci_cap caps[PCI_MAX_CAPS];
    size_t nr_caps;
    struct vfu_pci_cap ext_caps[PCI_MAX_CAPS];
    size_t nr_ext_caps;
};

/* -------------------------------------------------------------------- IRQs */

struct vfu_irqs {
    uint32_t count[VFU_DEV_NUM_IRQS];
    uint32_t nr_vectors[VFU_DEV_NUM_IRQS]; /* length of the arrays below */
    int *efds[VFU_DEV_NUM_IRQS];           /* per vector, -1 when none */
    uint8_t *masked[VFU_DEV_NUM_IRQS];     /* masked by SET_IRQS MASK */
    uint8_t *pending[VFU_DEV_NUM_IRQS];    /* held back while masked */
    vfu_dev_irq_state_cb_t *state_cb[VFU_DEV_NUM_IRQS];
    /* INTx, MSI or MSI-X: the type vfu_irq_trigger fires, like VFIO's. */
    enum vfu_dev_irq_type active;
};

/* ------------------------------------------------------------------ MSI-X */

/* Where the MSI-X capability puts its table and PBA, read at realize. */
struct vfu_msix {
    size_t cap; /* config offset of the capability; 0: none */
    uint32_t nr_entries;
    int table_bar;
    uint64_t table_start, table_end;
    int pba_bar;
    uint64_t pba_start, pba_end;
    uint8_t *table;     /* the emulated table, 16 bytes per vector */
    uint32_t table_len; /* bytes */
};

/* ---------------------------------------------------------------- context */

struct vfu_dma;  /* dma.c */
struct dma_xfer; /* dma_transfer.c */
struct dma_chunk;

/* DMA_READ / DMA_WRITE messages to the client (dma_transfer.c). */
struct vfu_dma_xfers {
    uint16_t next_msg_id;
    struct dma_xfer *head; /* asynchronous transfers, oldest first */
    struct dma_xfer *tail;
    /* The first that may have bytes left to ask for: those before have none. */
    struct dma_xfer *unsent;
    /* Messages awaiting their replies, oldest first: replies mostly come in order. */
    struct dma_chunk *chunks;
    struct dma_chunk **chunks_end; /* the last one's next, or &chunks */
    size_t inflight;               /* bytes of asynchronous ones among them */
    int reply_timeout_ms;          /* DMA_REPLY_TIMEOUT_MS; tests shorten it */
};

/* A client that connected while another is attached, until it is answered or served. */
struct vfu_newcomer {
    int fd;              /* -1: the slot is free */
    int64_t deadline_ms; /* CLOCK_MONOTONIC; closed if still silent */
};

struct vfu_ctx {
    void *pvt;
    int flags; /* LIBVFIO_USER_FLAG_* */
    char *sock_path;
    int listen_fd;
    int epoll_fd; /* the poll fd: listener and/or client, see transport.c */
    int wake_fd;  /* eventfd in the poll fd: deferred messages wait */
    bool wake_armed;
    struct vfu_newcomer newcomers[NEWCOMERS_MAX];
    int newcomer_timer_fd;       /* in the poll fd: a newcomer's deadline passed */
    int64_t newcomers_looked_ms; /* CLOCK_MONOTONIC_COARSE, the last look */
    struct vfu_conn conn;
    bool realized;

    vfu_log_fn_t *log_fn;
    int log_level;

    struct vfu_region regions[VFU_PCI_DEV_NUM_REGIONS];
    struct vfu_ioeventfd *ioeventfds;
    struct vfu_pci pci;
    struct vfu_irqs irqs;
    struct vfu_msix msix;
    struct vfu_dma *dma; /* NULL until vfu_setup_device_dma */
    struct vfu_dma_xfers xfers;

    vfu_reset_cb_t *reset_cb;
    vfu_device_quiesce_cb_t *quiesce_cb;
    bool quiesced;          /* the device said it is quiesced */
    struct vfu_msg *parked; /* request waiting for vfu_device_quiesced */
    bool reset_parked;      /* lost-connection reset waiting likewise */

    bool migration_enabled;
    vfu_migration_callbacks_t migr_cbs;
    uint32_t migr_state;   /* enum vfio_user_device_mig_state */
    uint64_t dirty_pgsize; /* dirty-page logging granule, 0 while off */
};

/* -------------------------------------------------- interfaces by source file */

/* log.c: vfu_log is public; these name the levels used inside. */
#define vfu_err(ctx, ...) vfu_log((ctx), LOG_ERR, __VA_ARGS__)
#define vfu_warn(ctx, ...) vfu_log((ctx), LOG_WARNING, __VA_ARGS__)
#define vfu_info(ctx, ...) vfu_log((ctx), LOG_INFO, __VA_ARGS__)
#define vfu_dbg(ctx, ...) vfu_log((ctx), LOG_DEBUG, __VA_ARGS__)

/* context.c */
/* Calls the reset callback; returns 0 or -errno. */
int ctx_call_reset(vfu_ctx_t *ctx, vfu_reset_type_t type);
/* Calls the device's own callback for a region; count or -errno. */
ssize_t ctx_call_region_cb(vfu_ctx_t *ctx, int idx, char *buf, size_t count, uint64_t offset,
                           bool is_write);
/* Asks the device to quiesce: 0 done, -EBUSY pending, other -errno failed. */
int ctx_quiesce(vfu_ctx_t *ctx);
/* Tears the connection down and keeps the device (see DESIGN: disconnect). */
int ctx_lost_connection(vfu_ctx_t *ctx);
int handle_device_reset(vfu_ctx_t *ctx, struct vfu_msg *msg);
vfu_cmd_quiesce_t device_reset_needs_quiesce;

/* transport.c */
/* Creates the poll fd and the listening socket. */
int tran_listen(vfu_ctx_t *ctx);
/*
 * Accepts a pending client: 0, -EAGAIN when none (non-blocking), -errno. It
 * replaces a client that has not completed VERSION (closed, no reset).
 */
int tran_accept(vfu_ctx_t *ctx);
/* The client completed VERSION: stops listening until it leaves. */
int tran_attached(vfu_ctx_t *ctx);
/*
 * Receives the next whole message into msg: 1 when one is complete, 0 when
 * more bytes are needed (non-blocking), -ENOTCONN when the peer left, -E2BIG
 * for an oversized message (its header is in msg->hdr, its body is skipped),
 * -EINVAL for a header shorter than itself, -EINTR when a signal interrupts
 * the wait of a blocking context once attached, other -errno. Deferred messages
 * come first. A small payload is borrowed (msg->in_borrowed).
 */
int tran_recv_msg(vfu_ctx_t *ctx, struct vfu_msg *msg);
/*
 * Sends one message with optional fds on the main socket; 0 or -errno. In
 * non-blocking mode what the socket cannot take now is queued and sent by
 * tran_flush(); -ENOBUFS when the queue would pass TX_QUEUE_MAX: the caller
 * drops the client.
 */
int tran_send(vfu_ctx_t *ctx, const struct vfio_user_header *hdr, const void *payload, size_t len,
              const int *fds, size_t nr_fds);
/*
 * tran_send with the payload in pieces, on the main socket or (for_twin) on
 * the channel of our own commands: the twin socket once granted.
 */
int tran_sendv(vfu_ctx_t *ctx, bool for_twin, const struct vfio_user_header *hdr,
               const struct iovec *payload, size_t iovcnt, const int *fds, size_t nr_fds);
/*
 * VERSION granted a twin socket: creates the pair, keeps our end and returns
 * the client's (to send with the reply, then close); -errno.
 */
int tran_twin_create(vfu_ctx_t *ctx);
/*
 * Sends queued output: 0 when none is left, -EAGAIN when some is (the poll
 * fd then wakes the caller when the client makes room), -errno.
 */
int tran_flush(vfu_ctx_t *ctx);
/*
 * For a DMA transfer waiting on the client: the next message of the stream,
 * past those already deferred, with a payload of its own. Waits up to
 * timeout_ms, sending queued output meanwhile. Returns 1, -EINVAL or -E2BIG
 * as tran_recv_msg, -ETIMEDOUT, -ENOTCONN (the client left: the next
 * tran_recv_msg says so too, after the deferred messages), or -errno.
 */
int tran_wait_msg(vfu_ctx_t *ctx, struct vfu_msg *msg, int timeout_ms);
/*
 * Keeps a message from tran_wait_msg, with its status, for tran_recv_msg to
 * return before anything new; the poll fd stays readable until then.
 * Takes msg (zeroed) on success; 0 or -ENOMEM.
 */
int tran_defer_msg(vfu_ctx_t *ctx, struct vfu_msg *msg, int status);
/*
 * Turns away clients that connect while one is attached: EBUSY to their
 * VERSION, without waiting, nothing else (transport_newcomer.c).
 */
int tran_newcomers_init(vfu_ctx_t *ctx);
/*
 * busy: the attached client's requests were just served, and the look may
 * wait (NEWCOMER_LOOK_MS at most) so that a busy client costs no system call.
 */
void tran_serve_newcomers(vfu_ctx_t *ctx, bool busy);
/*
 * When a client attaches or leaves: the poll fd wakes soon if newcomers
 * wait, to answer them or to take the next.
 */
void tran_newcomers_wake(vfu_ctx_t *ctx);
/* The fd of the longest-waiting newcomer, now the caller's; -1 if none. */
int tran_newcomer_take(vfu_ctx_t *ctx);
void tran_close_newcomers(vfu_ctx_t *ctx);
void tran_close_conn(vfu_ctx_t *ctx);
void tran_close_listener(vfu_ctx_t *ctx);

/* json.c: the capabilities object of VERSION, strict and bounded. */
struct vfu_client_caps {
    int64_t max_msg_fds; /* -1 when absent */
    int64_t max_data_xfer_size;
    int64_t max_dma_maps;
    int64_t pgsizes;
    int64_t migration_pgsize;
    bool twin_socket_supported;
    bool write_multiple;
};
/* Parses text (len bytes, no NUL needed); 0 or -EINVAL. */
int json_parse_client_caps(const char *text, size_t len, struct vfu_client_caps *caps);

/* negotiate.c */
int handle_version(vfu_ctx_t *ctx, struct vfu_msg *msg);

/* run.c: vfu_attach_ctx, vfu_run_ctx and the dispatcher */
void msg_free(struct vfu_msg *msg);

/* region.c */
void region_free(vfu_ctx_t *ctx);
int handle_device_get_info(vfu_ctx_t *ctx, struct vfu_msg *msg);
int handle_device_get_region_info(vfu_ctx_t *ctx, struct vfu_msg *msg);
int handle_region_read(vfu_ctx_t *ctx, struct vfu_msg *msg);
int handle_region_write(vfu_ctx_t *ctx, struct vfu_msg *msg);
int handle_region_write_multi(vfu_ctx_t *ctx, struct vfu_msg *msg);
vfu_cmd_quiesce_t region_write_needs_quiesce;
vfu_cmd_quiesce_t region_write_multi_needs_quiesce;

/* pci.c, pci_caps.c */
int pci_realize(vfu_ctx_t *ctx);
ssize_t pci_config_access(vfu_ctx_t *ctx, char *buf, size_t count, uint64_t offset, bool is_write);
/* True if this config write would start a function-level reset. */
bool pci_config_write_needs_quiesce(vfu_ctx_t *ctx, uint64_t offset, const void *data,
                                    size_t count);
void pci_free(vfu_ctx_t *ctx);
/* Returns the emulated config state to what a function reset leaves. */
void pci_function_reset(vfu_ctx_t *ctx);
/* Between pci.c and pci_caps.c. Config space is little-endian. */
static inline uint16_t
pci_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static inline uint32_t
pci_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void
pci_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void
pci_put32(uint8_t *p, uint32_t v)
{
    pci_put16(p, (uint16_t)v);
    pci_put16(p + 2, (uint16_t)(v >> 16));
}
/* Applies a client write to cfg bytes [off, off + count) through the masks. */
void pci_merge_write(struct vfu_pci *pci, size_t off, const uint8_t *val, size_t count);
/* The capability holding config byte off, or NULL. */
struct vfu_pci_cap *pci_cap_owning(vfu_ctx_t *ctx, size_t off);
/* Offset of the first capability starting after off, or SIZE_MAX. */
size_t pci_cap_next_start(vfu_ctx_t *ctx, size_t off);
/* A client write inside one (non-callback) capability; 0 or -errno. */
int pci_cap_write(vfu_ctx_t *ctx, struct vfu_pci_cap *cap, size_t off, const uint8_t *val,
                  size_t count);
/* True if this write inside cap sets Initiate FLR on an FLR-capable device. */
bool pci_cap_write_starts_flr(vfu_ctx_t *ctx, const struct vfu_pci_cap *cap, size_t off,
                              const uint8_t *val, size_t count);

/* irq.c */
int irq_realize(vfu_ctx_t *ctx);
/* Closes every eventfd (client gone); masks and pending bits are kept. */
void irq_disconnect(vfu_ctx_t *ctx);
/* Forgets pending interrupts (device reset). */
void irq_reset(vfu_ctx_t *ctx);
void irq_free(vfu_ctx_t *ctx);
/*
 * Config space changed MSI-X enable/function mask or MSI enable/mask bits,
 * or a client unmasked an MSI-X table entry: pending vectors go out.
 */
void irq_msix_control_changed(vfu_ctx_t *ctx);
void irq_msi_control_changed(vfu_ctx_t *ctx);
/* Command bit 10 cleared: a held-back INTx goes out. */
void irq_intx_control_changed(vfu_ctx_t *ctx);
/* The type vfu_irq_trigger signals now (config space decides). */
int irq_mode(vfu_ctx_t *ctx);
/* vfu_irq_trigger once the caller knows the mode: 0, or -1 with errno. */
int irq_trigger_in_mode(vfu_ctx_t *ctx, int type, uint32_t subindex);
/* Signals the ERR or REQ eventfd: 0, -ENOENT without one, -EINVAL without the type. */
int irq_signal_event(vfu_ctx_t *ctx, int type);
/*
 * A vector's mask (SET_IRQS, or the function's own bits for it) and pending
 * state, for libvfio-user-ext.h: 0 or -EINVAL.
 */
int irq_vector_state(vfu_ctx_t *ctx, int type, uint32_t v, bool *masked, bool *pending);
/* Closes the eventfds of vectors [start, start + count) of a type. */
void irq_close_vectors(vfu_ctx_t *ctx, int type, uint32_t start, uint32_t count);
/* Delivers the pending vectors of a range that nothing masks any more. */
void irq_release_pending(vfu_ctx_t *ctx, int type, uint32_t start, uint32_t count);
/* The client unmasked INTx after the guest's end of interrupt. */
void irq_intx_unmasked(vfu_ctx_t *ctx);
/*
 * The client raises vectors [start, start + count), those with a non-zero
 * byte in bools (NULL: all): 0 or a negative errno.
 */
int irq_trigger_selected(vfu_ctx_t *ctx, int type, uint32_t start, uint32_t count,
                         const uint8_t *bools);

/* irq_messages.c */
int handle_device_get_irq_info(vfu_ctx_t *ctx, struct vfu_msg *msg);
int handle_device_set_irqs(vfu_ctx_t *ctx, struct vfu_msg *msg);

/* dma.c */
/* Removes every mapping, calling the unregister callback for each. */
void dma_remove_all(vfu_ctx_t *ctx);
void dma_free(vfu_ctx_t *ctx);
int handle_dma_map(vfu_ctx_t *ctx, struct vfu_msg *msg);
int handle_dma_unmap(vfu_ctx_t *ctx, struct vfu_msg *msg);
vfu_cmd_quiesce_t dma_needs_quiesce;
/*
 * Checks like vfu_addr_to_sgl that [iova, iova + len) is mapped without a
 * gap, and writable for a write: 0, -ENOENT, -EACCES or -EINVAL (no DMA).
 */
int dma_check_range(vfu_ctx_t *ctx, uint64_t iova, uint64_t len, bool is_write);

/* dma_transfer.c */
/* error: 0 or a positive errno. */
typedef void dma_transfer_done_t(vfu_ctx_t *ctx, void *cookie, int error);
/*
 * Starts moving len bytes between data and client memory at iova with DMA_READ
 * (is_write false) or DMA_WRITE messages split at max_data_xfer_size, without
 * waiting. Checked like vfu_addr_to_sgl (whole range mapped, contiguous mappings;
 * PROT_WRITE for writes). data stays owned by the caller and valid until done runs.
 * done runs exactly once: from inside vfu_run_ctx when the last reply arrives or a
 * reply carries an error, or with ENOTCONN when the client goes away or the context
 * is reset or destroyed. Returns 0, or -errno with nothing started (done not called).
 */
int dma_transfer_start(vfu_ctx_t *ctx, uint64_t iova, size_t len, void *data, bool is_write,
                       dma_transfer_done_t *done, void *cookie);
/*
 * The same, waiting for the replies (vfu_sgl_read / vfu_sgl_write): 0 or
 * -errno. Requests the client sends meanwhile are kept for vfu_run_ctx.
 */
int dma_transfer_wait(vfu_ctx_t *ctx, uint64_t iova, size_t len, void *data, bool is_write);
/*
 * A reply from the client, seen by the run loop: true when it was one to a
 * DMA message (used, or logged and dropped when nothing waits for it).
 */
bool dma_transfer_reply(vfu_ctx_t *ctx, struct vfu_msg *msg);
/* The client is gone: every transfer ends with ENOTCONN. */
void dma_transfer_abort_all(vfu_ctx_t *ctx);

/* msix.c */
/* Reads where the capability puts table and PBA (none: fine); 0 or -ENOMEM. */
int msix_realize(vfu_ctx_t *ctx);
/* Every entry back to its reset state (device reset). */
void msix_reset(vfu_ctx_t *ctx);
void msix_free(vfu_ctx_t *ctx);
bool msix_present(const vfu_ctx_t *ctx);
/* The capability's Message Control register (0 without one). */
uint16_t msix_message_control(const vfu_ctx_t *ctx);
/* The mask bit of table entry v (an entry beyond the table: unmasked). */
bool msix_entry_masked(const vfu_ctx_t *ctx, uint32_t v);
enum msix_part { MSIX_NONE, MSIX_TABLE, MSIX_PBA };
/*
 * What BAR byte pos of bar is, with *len cut to where that stops being so:
 * the emulated table or PBA, or the device's own bytes (MSIX_NONE).
 */
enum msix_part msix_part_at(const vfu_ctx_t *ctx, int bar, uint64_t pos, uint64_t *len);
/*
 * An access inside the table or PBA (part from msix_part_at). *unmasked is
 * set when a write cleared an entry's mask bit.
 */
void msix_access(vfu_ctx_t *ctx, enum msix_part part, char *buf, size_t count, uint64_t pos,
                 bool is_write, bool *unmasked);

/* ioeventfd.c: frees the list (the fds are the device's, left open). */
void ioeventfd_free(vfu_ctx_t *ctx);
int handle_device_get_region_io_fds(vfu_ctx_t *ctx, struct vfu_msg *msg);

/* dma.c: the dirty bitmaps of mappings, for dirty.c */
/* Gives every fd-backed mapping a bitmap at ctx->dirty_pgsize; 0 or -ENOMEM. */
int dma_dirty_start(vfu_ctx_t *ctx);
/* Frees every mapping's bitmap. */
void dma_dirty_stop(vfu_ctx_t *ctx);
/*
 * The bitmap of the mapping that starts at iova and holds [iova, iova + len):
 * -ENOENT if part of the range is unmapped, -ENOTSUP if the range does not
 * start a mapping or runs past its end, -EINVAL if that mapping keeps no
 * bitmap (message mode).
 */
int dma_dirty_bitmap(vfu_ctx_t *ctx, uint64_t iova, uint64_t len, uint8_t **bitmap);

/* migration.c */
int handle_device_feature(vfu_ctx_t *ctx, struct vfu_msg *msg);
vfu_cmd_quiesce_t device_feature_needs_quiesce;
int handle_mig_data_read(vfu_ctx_t *ctx, struct vfu_msg *msg);
int handle_mig_data_write(vfu_ctx_t *ctx, struct vfu_msg *msg);
/* False for a command the current migration state does not accept. */
bool migration_allows_command(vfu_ctx_t *ctx, uint16_t cmd);
/*
 * The client went away or reset the device: an unfinished migration is
 * abandoned and the device runs again (its transition callback is told).
 */
void migration_abandon(vfu_ctx_t *ctx);

/* dirty.c: dirty-page logging (DEVICE_FEATURE DMA_LOGGING_*) */
int dirty_logging_start(vfu_ctx_t *ctx, const uint8_t *data, size_t len, uint64_t *page_size);
void dirty_logging_stop(vfu_ctx_t *ctx);
/* Builds the DMA_LOGGING_REPORT reply to the GET request req. */
int dirty_logging_report(vfu_ctx_t *ctx, struct vfu_msg *msg,
                         const struct vfio_user_device_feature *req, const uint8_t *data,
                         size_t len);
/* A bitmap for a new fd-backed mapping of len bytes: NULL while not logging. */
int dirty_bitmap_alloc(vfu_ctx_t *ctx, uint64_t len, uint8_t **bitmap);
/* Sets the bits of the pages [offset, offset + len) touch; thread-safe. */
void dirty_mark(vfu_ctx_t *ctx, uint8_t *bitmap, uint64_t offset, uint64_t len);

#endif /* VFU_PRIVATE_H */
