/*
 * Between the files of the test client (client_*.c); tests use client.h.
 */
#ifndef VFU_TEST_CLIENT_INTERNAL_H
#define VFU_TEST_CLIENT_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "client.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* File descriptors collected while reading one message. */
struct tc_fdbag {
    int fds[VFU_TEST_MAX_FDS];
    size_t n;
};

/* client_wire.c: deadlines, sending and receiving whole messages. */
/* Deadline for a timeout in ms; 0 means "never". */
uint64_t tc_deadline_after(int timeout_ms);
/* Milliseconds left until the deadline, rounded up; -1 for no deadline. */
int tc_ms_left(uint64_t deadline);
int tc_wait_fd(int fd, short events, uint64_t deadline);
void tc_close_fds(const int *fds, size_t n);
int tc_send_iov(int fd, uint64_t deadline, struct iovec *iov, int iovcnt, const int *fds,
                size_t nfds);
/* Sends header + payload parts; returns the msg_id used or -1. */
int tc_send_cmd_v(struct vfu_test_client *c, uint16_t cmd, uint32_t flags,
                  const struct iovec *parts, int nparts, const int *fds, size_t nfds);
/* Hands the bag's fds to the caller or closes them when fds is NULL. */
void tc_fdbag_give(struct tc_fdbag *bag, int *fds, size_t *nfds);
/* Reads a header and validates msg_size. */
int tc_recv_hdr(int fd, uint64_t deadline, struct vfio_user_header *hdr, struct tc_fdbag *bag);
/* Reads a payload of plen bytes: the first cap into buf, the rest dropped. */
int tc_recv_body(int fd, uint64_t deadline, size_t plen, void *buf, size_t cap,
                 struct tc_fdbag *bag);

/* client_serve.c: one request and its reply, serving the server meanwhile. */
int tc_request_v(struct vfu_test_client *c, uint16_t cmd, const struct iovec *parts, int nparts,
                 const int *fds, size_t nfds, void *reply, size_t cap, size_t *reply_len,
                 int *reply_fds, size_t *reply_nfds);

#endif /* VFU_TEST_CLIENT_INTERNAL_H */
