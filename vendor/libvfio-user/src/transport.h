/*
 * Between the transport's files (transport.c, transport_recv.c,
 * transport_send.c); the rest of the library uses the tran_* functions
 * declared in private.h.
 */
#ifndef VFU_TRANSPORT_H
#define VFU_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "private.h"

/* epoll_ctl on the poll fd; 0 or -errno. */
int tran_watch(vfu_ctx_t *ctx, int op, int fd, uint32_t events);
bool tran_nonblocking(const vfu_ctx_t *ctx);
/* Keeps the poll fd readable while deferred messages wait (wake_fd). */
void tran_wake_update(vfu_ctx_t *ctx);
/* Waits until fd is ready for events; -ETIMEDOUT after timeout_ms (< 0: never). */
int tran_wait_fd(int fd, short events, int timeout_ms);
/* Forgets what was received and deferred, closing fds no message took. */
void tran_recv_reset(vfu_ctx_t *ctx);
/* Drops the replies still queued. */
void tran_send_reset(vfu_ctx_t *ctx);

#endif /* VFU_TRANSPORT_H */
