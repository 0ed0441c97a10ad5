/*
 * Clients that connect while another is attached. The library serves one
 * client at a time; a second one is told so at once, by an EBUSY reply to
 * its VERSION, instead of waiting in the listen backlog until it gives up.
 * Nothing here touches the attached client, and each call does bounded work
 * without waiting: a newcomer that sends nothing is closed after
 * NEWCOMER_TIMEOUT_MS (a timerfd in the poll fd wakes the caller for that),
 * one that sends anything but a VERSION command is closed without a word.
 * A newcomer that connects just as the attached client leaves is not turned
 * away: it becomes the next client (tran_newcomer_take).
 */
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include "private.h"
#include "transport.h"

/* Most bytes read from a turned-away client before closing its socket. */
#define NEWCOMER_DRAIN_MAX 65536

static int64_t
now_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int
tran_newcomers_init(vfu_ctx_t *ctx)
{
    ctx->newcomer_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (ctx->newcomer_timer_fd < 0) {
        return -errno;
    }
    return tran_watch(ctx, EPOLL_CTL_ADD, ctx->newcomer_timer_fd, EPOLLIN);
}

/*
 * Reads what the client sent (so that closing does not reset the connection
 * before it reads our reply), then closes it.
 */
static void
newcomer_close(vfu_ctx_t *ctx, struct vfu_newcomer *n)
{
    char sink[4096];
    size_t drained = 0;
    ssize_t got;

    while (drained < NEWCOMER_DRAIN_MAX &&
           (got = recv(n->fd, sink, sizeof(sink), MSG_DONTWAIT)) > 0) {
        drained += (size_t)got;
    }
    tran_watch(ctx, EPOLL_CTL_DEL, n->fd, 0);
    close(n->fd);
    n->fd = -1;
}

/* True once the attached client has hung up, though we have not read it all. */
static bool
attached_client_left(vfu_ctx_t *ctx)
{
    struct pollfd pfd = { .fd = ctx->conn.main.fd, .events = POLLRDHUP };

    return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP)) != 0;
}

/*
 * Looks at the header without taking it, so that the newcomer can still
 * become the next client if the attached one has just left. True once the
 * newcomer is done with.
 */
static bool
newcomer_step(vfu_ctx_t *ctx, struct vfu_newcomer *n, int64_t now)
{
    struct vfio_user_header hdr, reply;
    ssize_t got;

    do {
        got = recv(n->fd, &hdr, sizeof(hdr), MSG_PEEK | MSG_DONTWAIT);
    } while (got < 0 && errno == EINTR);
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        return true; /* it left, or its socket failed */
    }
    if (got < (ssize_t)sizeof(hdr)) {
        if (now >= n->deadline_ms) {
            vfu_info(ctx, "closing a second client that sent no VERSION");
            return true;
        }
        return false;
    }
    if (hdr.cmd != VFIO_USER_VERSION ||
        (hdr.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_COMMAND) {
        vfu_info(ctx, "closing a second client whose first message is not VERSION");
        return true;
    }
    if (attached_client_left(ctx)) {
        return false; /* it will be served next (tran_newcomer_take) */
    }
    reply = (struct vfio_user_header){
        .msg_id = hdr.msg_id,
        .cmd = VFIO_USER_VERSION,
        .msg_size = sizeof(reply),
        .error_no = EBUSY,
        .flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR,
    };
    /* An empty socket takes 16 bytes at once; if not, the client gets none. */
    if (send(n->fd, &reply, sizeof(reply), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        vfu_info(ctx, "cannot tell a second client that we are busy: %m");
    } else {
        vfu_info(ctx, "a second client was told that another one is attached");
    }
    return true;
}

/* Takes waiting connections into free slots; past those, closes them at once. */
static void
accept_newcomers(vfu_ctx_t *ctx, int64_t now)
{
    struct pollfd pfd = { .fd = ctx->listen_fd, .events = POLLIN };

    /* The listener may be blocking: accept only what poll says is there. */
    for (size_t taken = 0; taken < NEWCOMERS_MAX + 1 && poll(&pfd, 1, 0) == 1; taken++) {
        struct vfu_newcomer *slot = NULL;
        int fd = accept4(ctx->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (fd < 0) {
            return;
        }
        for (size_t i = 0; i < NEWCOMERS_MAX && slot == NULL; i++) {
            slot = ctx->newcomers[i].fd < 0 ? &ctx->newcomers[i] : NULL;
        }
        /* Edge-triggered: a header that comes in pieces wakes the caller per piece. */
        if (slot == NULL ||
            tran_watch(ctx, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLRDHUP | EPOLLET) < 0) {
            vfu_info(ctx, "too many clients connecting at once: closing one");
            close(fd);
            continue;
        }
        memset(slot, 0, sizeof(*slot));
        slot->fd = fd;
        slot->deadline_ms = now + NEWCOMER_TIMEOUT_MS;
    }
}

/* Wakes the caller at the earliest deadline, or never when none is waiting. */
static void
arm_timer(vfu_ctx_t *ctx)
{
    struct itimerspec when = { 0 };
    int64_t earliest = 0;

    for (size_t i = 0; i < NEWCOMERS_MAX; i++) {
        const struct vfu_newcomer *n = &ctx->newcomers[i];

        if (n->fd >= 0 && (earliest == 0 || n->deadline_ms < earliest)) {
            earliest = n->deadline_ms;
        }
    }
    if (earliest != 0) {
        when.it_value.tv_sec = earliest / 1000;
        when.it_value.tv_nsec = (earliest % 1000) * 1000000;
    }
    if (timerfd_settime(ctx->newcomer_timer_fd, TFD_TIMER_ABSTIME, &when, NULL) < 0) {
        vfu_err(ctx, "cannot arm the timer for connecting clients: %m");
    }
}

/* Room for every fd in the set: listener, wake, timer, two client sockets. */
#define POLL_SET_MAX (NEWCOMERS_MAX + 5)

/*
 * A caller polls the poll fd without taking events from it, so the edges of
 * newcomers' sockets are taken here, or the poll fd would stay readable.
 * Returns how many events there are (the level-triggered ones stay).
 */
static int
take_events(vfu_ctx_t *ctx, struct epoll_event *events)
{
    int n;

    do {
        n = epoll_wait(ctx->epoll_fd, events, POLL_SET_MAX, 0);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? 0 : n;
}

static void
read_timer(vfu_ctx_t *ctx)
{
    uint64_t expirations;

    if (read(ctx->newcomer_timer_fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN) {
        vfu_err(ctx, "cannot read the timer for connecting clients: %m");
    }
}

static bool
is_newcomer(const vfu_ctx_t *ctx, int fd)
{
    for (size_t i = 0; i < NEWCOMERS_MAX; i++) {
        if (ctx->newcomers[i].fd >= 0 && ctx->newcomers[i].fd == fd) {
            return true;
        }
    }
    return false;
}

/*
 * Whether a busy call may skip the look (a call that served nothing always
 * looks); the coarse clock costs no system call.
 */
static bool
look_can_wait(vfu_ctx_t *ctx)
{
    struct timespec now;
    int64_t ms;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    if (ms - ctx->newcomers_looked_ms < NEWCOMER_LOOK_MS) {
        return true;
    }
    ctx->newcomers_looked_ms = ms;
    return false;
}

/*
 * One system call when no client is connecting: the poll set's ready list
 * says whether the listener, the timer or a newcomer needs anything. Until
 * it is looked at, the poll fd stays readable, so a skipped look only
 * brings the caller back.
 */
void
tran_serve_newcomers(vfu_ctx_t *ctx, bool busy)
{
    struct epoll_event events[POLL_SET_MAX];
    bool listener = false, due = false;
    int64_t now;
    int n;

    if (ctx->listen_fd < 0 || ctx->newcomer_timer_fd < 0 || (busy && look_can_wait(ctx))) {
        return;
    }
    n = take_events(ctx, events);
    for (int i = 0; i < n; i++) {
        int fd = events[i].data.fd;

        listener |= fd == ctx->listen_fd;
        due |= fd == ctx->newcomer_timer_fd || is_newcomer(ctx, fd);
    }
    if (!listener && !due) {
        return;
    }
    now = now_ms();
    read_timer(ctx);
    if (listener) {
        accept_newcomers(ctx, now);
        /* Adding a socket with data waiting raises an edge: take it. */
        take_events(ctx, events);
    }
    for (size_t i = 0; i < NEWCOMERS_MAX; i++) {
        struct vfu_newcomer *n = &ctx->newcomers[i];

        if (n->fd >= 0 && newcomer_step(ctx, n, now)) {
            newcomer_close(ctx, n);
        }
    }
    arm_timer(ctx);
}

void
tran_newcomers_wake(vfu_ctx_t *ctx)
{
    struct itimerspec soon = { .it_value.tv_nsec = 1 };

    for (size_t i = 0; i < NEWCOMERS_MAX; i++) {
        if (ctx->newcomers[i].fd >= 0) {
            timerfd_settime(ctx->newcomer_timer_fd, 0, &soon, NULL);
            return;
        }
    }
}

int
tran_newcomer_take(vfu_ctx_t *ctx)
{
    struct vfu_newcomer *oldest = NULL;
    int fd;

    if (ctx->newcomer_timer_fd >= 0) {
        struct epoll_event events[POLL_SET_MAX];

        read_timer(ctx);
        take_events(ctx, events);
    }
    for (size_t i = 0; i < NEWCOMERS_MAX; i++) {
        struct vfu_newcomer *n = &ctx->newcomers[i];

        if (n->fd >= 0 && (oldest == NULL || n->deadline_ms < oldest->deadline_ms)) {
            oldest = n;
        }
    }
    if (oldest == NULL) {
        return -1;
    }
    fd = oldest->fd;
    oldest->fd = -1;
    tran_watch(ctx, EPOLL_CTL_DEL, fd, 0);
    if (!tran_nonblocking(ctx) && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void
drop_newcomers(vfu_ctx_t *ctx)
{
    for (size_t i = 0; i < NEWCOMERS_MAX; i++) {
        if (ctx->newcomers[i].fd >= 0) {
            newcomer_close(ctx, &ctx->newcomers[i]);
        }
    }
}

void
tran_close_newcomers(vfu_ctx_t *ctx)
{
    drop_newcomers(ctx);
    if (ctx->newcomer_timer_fd >= 0) {
        close(ctx->newcomer_timer_fd);
        ctx->newcomer_timer_fd = -1;
    }
}
