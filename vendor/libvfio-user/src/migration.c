/*
 * Migration (the protocol's v2): DEVICE_FEATURE, the device-state machine
 * and the migration data stream.
 *
 * States are VFIO's numbers (enum vfio_user_device_mig_state); the device's
 * transition callback hears them as vfu_migr_state_t. The arcs are the ones
 * the protocol lists for STOP, RUNNING, STOP_COPY, RESUMING and PRE_COPY; a
 * request for a state no arc reaches directly walks the shortest path whose
 * interior avoids the saving states (PRE_COPY, STOP_COPY), telling the
 * device each step. The P2P states and ERROR are never accepted.
 */
#include <errno.h>
#include <string.h>

#include "private.h"

#define FEATURE_OPS (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE)

enum {
    STOP = VFIO_USER_DEVICE_STATE_STOP,
    RUNNING = VFIO_USER_DEVICE_STATE_RUNNING,
    STOP_COPY = VFIO_USER_DEVICE_STATE_STOP_COPY,
    RESUMING = VFIO_USER_DEVICE_STATE_RESUMING,
    PRE_COPY = VFIO_USER_DEVICE_STATE_PRE_COPY,
};

/*
 * next_step[from][to]: the state to go through first on the way from one
 * state to another. 0 (ERROR) where no way is allowed.
 */
static const uint8_t next_step[VFIO_USER_DEVICE_NUM_STATES][VFIO_USER_DEVICE_NUM_STATES] = {
    [STOP] = { [STOP] = STOP,
               [RUNNING] = RUNNING,
               [STOP_COPY] = STOP_COPY,
               [RESUMING] = RESUMING,
               [PRE_COPY] = RUNNING },
    [RUNNING] = { [STOP] = STOP,
                  [RUNNING] = RUNNING,
                  [STOP_COPY] = STOP,
                  [RESUMING] = STOP,
                  [PRE_COPY] = PRE_COPY },
    /* STOP_COPY -> PRE_COPY is forbidden by the protocol. */
    [STOP_COPY] = { [STOP] = STOP, [RUNNING] = STOP, [STOP_COPY] = STOP_COPY, [RESUMING] = STOP },
    [RESUMING] = { [STOP] = STOP,
                   [RUNNING] = STOP,
                   [STOP_COPY] = STOP,
                   [RESUMING] = RESUMING,
                   [PRE_COPY] = STOP },
    [PRE_COPY] = { [STOP] = RUNNING,
                   [RUNNING] = RUNNING,
                   [STOP_COPY] = STOP_COPY,
                   [RESUMING] = RUNNING,
                   [PRE_COPY] = PRE_COPY },
};

/* The name the device's transition callback knows a state by. */
static vfu_migr_state_t
device_state_name(uint32_t state)
{
    switch (state) {
    case STOP:
        return VFU_MIGR_STATE_STOP;
    case STOP_COPY:
        return VFU_MIGR_STATE_STOP_AND_COPY;
    case RESUMING:
        return VFU_MIGR_STATE_RESUME;
    case PRE_COPY:
        return VFU_MIGR_STATE_PRE_COPY;
    default:
        return VFU_MIGR_STATE_RUNNING;
    }
}

VFU_EXPORT int
vfu_setup_device_migration_callbacks(vfu_ctx_t *ctx, const vfu_migration_callbacks_t *callbacks)
{
    if (ctx == NULL || callbacks == NULL || callbacks->version != VFU_MIGR_CALLBACKS_VERS ||
        callbacks->transition == NULL || callbacks->read_data == NULL ||
        callbacks->write_data == NULL) {
        errno = EINVAL;
        return -1;
    }
    ctx->migr_cbs = *callbacks;
    ctx->migration_enabled = true;
    ctx->migr_state = RUNNING;
    return 0;
}

/* A callback's failure as -errno; one that set no errno counts as EIO. */
static int
callback_error(void)
{
    return errno != 0 ? -errno : -EIO;
}

static int
tell_device(vfu_ctx_t *ctx, uint32_t state)
{
    errno = 0;
    if (ctx->migr_cbs.transition(ctx, device_state_name(state)) < 0) {
        return callback_error();
    }
    return 0;
}

/*
 * Moves the device to target, one arc at a time. A step the device refuses
 * ends the walk there: the steps already taken stay taken.
 */
static int
set_state(vfu_ctx_t *ctx, uint32_t target)
{
    if (target >= VFIO_USER_DEVICE_NUM_STATES || next_step[ctx->migr_state][target] == 0) {
        vfu_err(ctx, "migration: no way from state %u to %u", ctx->migr_state, target);
        return -EINVAL;
    }
    while (ctx->migr_state != target) {
        uint32_t step = next_step[ctx->migr_state][target];
        int ret = tell_device(ctx, step);

        if (ret < 0) {
            vfu_err(ctx, "migration: device refused state %u: %s", step, strerror(-ret));
            return ret;
        }
        vfu_dbg(ctx, "migration: state %u -> %u", ctx->migr_state, step);
        ctx->migr_state = step;
    }
    return 0;
}

void
migration_abandon(vfu_ctx_t *ctx)
{
    int ret;

    if (!ctx->migration_enabled || ctx->migr_state == RUNNING) {
        return;
    }
    /*
     * Straight to RUNNING, not along the arcs: those would tell a
     * half-loaded device to finish RESUMING, or a saving device to stop.
     * The device runs whatever its callback says; the client is gone.
     */
    ret = tell_device(ctx, RUNNING);
    if (ret < 0) {
        vfu_warn(ctx,
                 "migration: device refused RUNNING after abandoned "
                 "migration: %s",
                 strerror(-ret));
    }
    vfu_info(ctx, "migration: abandoned in state %u, device running again", ctx->migr_state);
    ctx->migr_state = RUNNING;
}

bool
migration_allows_command(vfu_ctx_t *ctx, uint16_t cmd)
{
    if (!ctx->migration_enabled) {
        return true;
    }
    switch (ctx->migr_state) {
    case STOP:
        /* A stopped device keeps its registers reachable, nothing else. */
        return cmd == VFIO_USER_REGION_READ || cmd == VFIO_USER_REGION_WRITE ||
               cmd == VFIO_USER_REGION_WRITE_MULTI || cmd == VFIO_USER_DEVICE_FEATURE ||
               cmd == VFIO_USER_MIG_DATA_READ;
    case STOP_COPY:
        /* Its state is being read out: nothing may change it. */
        return cmd == VFIO_USER_DEVICE_FEATURE || cmd == VFIO_USER_MIG_DATA_READ;
    default:
        return true;
    }
}

/* The operations a client may ask of each feature. */
static uint32_t
feature_ops(uint32_t feature)
{
    switch (feature) {
    case VFIO_DEVICE_FEATURE_MIGRATION:
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT:
        return VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_PROBE;
    case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
        return FEATURE_OPS;
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
        return VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE;
    default:
        return 0;
    }
}

/* The reply to a SET or PROBE: the request itself. */
static int
echo_request(struct vfu_msg *msg)
{
    void *out = msg_reply_alloc(msg, msg->in_len);

    if (out == NULL) {
        return -ENOMEM;
    }
    memcpy(out, msg->in, msg->in_len);
    return 0;
}

/* GET of MIGRATION or MIG_DEVICE_STATE: the header and 8 bytes of data. */
static int
get_migration_feature(vfu_ctx_t *ctx, struct vfu_msg *msg,
                      const struct vfio_user_device_feature *req)
{
    const size_t len = sizeof(*req) + sizeof(uint64_t);
    struct vfio_user_device_feature *res;

    if (req->argsz < len) {
        return -EINVAL;
    }
    res = msg_reply_alloc(msg, len);
    if (res == NULL) {
        return -ENOMEM;
    }
    res->argsz = (uint32_t)len;
    res->flags = req->flags;
    if ((req->flags & VFIO_DEVICE_FEATURE_MASK) == VFIO_DEVICE_FEATURE_MIGRATION) {
        struct vfio_user_device_feature_migration mig = {
            .flags = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY,
        };
        memcpy(res->data, &mig, sizeof(mig));
    } else {
        struct vfio_user_device_feature_mig_state st = {
            .device_state = ctx->migr_state,
        };
        memcpy(res->data, &st, sizeof(st));
    }
    return 0;
}

static int
set_feature(vfu_ctx_t *ctx, struct vfu_msg *msg, const struct vfio_user_device_feature *req)
{
    const uint8_t *data = msg->in + sizeof(*req);
    size_t len = msg->in_len - sizeof(*req);
    int ret;

    if (req->argsz < msg->in_len) {
        return -EINVAL;
    }
    switch (req->flags & VFIO_DEVICE_FEATURE_MASK) {
    case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE: {
        struct vfio_user_device_feature_mig_state st;

        if (len < sizeof(st)) {
            return -EINVAL;
        }
        memcpy(&st, data, sizeof(st));
        ret = set_state(ctx, st.device_state);
        return ret < 0 ? ret : echo_request(msg);
    }
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_START: {
        uint64_t page_size;

        ret = dirty_logging_start(ctx, data, len, &page_size);
        if (ret == 0) {
            ret = echo_request(msg);
        }
        if (ret == 0) {
            /* The granule chosen goes back in place of the hint. */
            memcpy((uint8_t *)msg->out + sizeof(*req), &page_size, sizeof(page_size));
        }
        return ret;
    }
    default: /* DMA_LOGGING_STOP, the one other feature SET supports */
        dirty_logging_stop(ctx);
        return echo_request(msg);
    }
}

/* A SET changes the device (state, logging); a PROBE only asks. */
bool
device_feature_needs_quiesce(vfu_ctx_t *ctx, const struct vfu_msg *msg)
{
    struct vfio_user_device_feature feature;

    if (msg->in_len < sizeof(feature)) {
        return false;
    }
    memcpy(&feature, msg->in, sizeof(feature));
    return (feature.flags & VFIO_DEVICE_FEATURE_SET) &&
           !(feature.flags & VFIO_DEVICE_FEATURE_PROBE);
}

int
handle_device_feature(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfio_user_device_feature req;
    uint32_t feature, ops, supported;

    /* Every feature there is belongs to migration. */
    if (!ctx->migration_enabled || msg->in_len < sizeof(req)) {
        return -EINVAL;
    }
    memcpy(&req, msg->in, sizeof(req));
    /* Even a PROBE must describe at least the structure itself. */
    if (req.argsz < sizeof(req)) {
        vfu_err(ctx, "DEVICE_FEATURE: argsz %u", req.argsz);
        return -EINVAL;
    }
    feature = req.flags & VFIO_DEVICE_FEATURE_MASK;
    ops = req.flags & ~(uint32_t)VFIO_DEVICE_FEATURE_MASK;
    supported = feature_ops(feature);
    if (supported == 0 || (ops & ~supported) != 0) {
        vfu_err(ctx, "DEVICE_FEATURE: feature %u does not support flags %#x", feature, req.flags);
        return -EINVAL;
    }
    switch (ops) {
    case VFIO_DEVICE_FEATURE_GET:
        if (feature == VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT) {
            return dirty_logging_report(ctx, msg, &req, msg->in + sizeof(req),
                                        msg->in_len - sizeof(req));
        }
        return get_migration_feature(ctx, msg, &req);
    case VFIO_DEVICE_FEATURE_SET:
        return set_feature(ctx, msg, &req);
    default:
        /* GET and SET together only make sense as a question. */
        if (!(ops & VFIO_DEVICE_FEATURE_PROBE)) {
            return -EINVAL;
        }
        return echo_request(msg);
    }
}

int
handle_mig_data_read(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfio_user_mig_data req;
    struct vfio_user_mig_data *res;
    ssize_t n;

    if (!ctx->migration_enabled || msg->in_len < sizeof(req)) {
        return -EINVAL;
    }
    memcpy(&req, msg->in, sizeof(req));
    if (ctx->migr_state != PRE_COPY && ctx->migr_state != STOP_COPY) {
        vfu_err(ctx, "MIG_DATA_READ in state %u", ctx->migr_state);
        return -EINVAL;
    }
    if (req.size > ctx->conn.client_max_data_xfer_size ||
        req.argsz < sizeof(req) + (uint64_t)req.size) {
        vfu_err(ctx, "MIG_DATA_READ of %u bytes (argsz %u)", req.size, req.argsz);
        return -EINVAL;
    }
    res = msg_reply_alloc(msg, sizeof(req) + req.size);
    if (res == NULL) {
        return -ENOMEM;
    }
    errno = 0;
    n = ctx->migr_cbs.read_data(ctx, res->data, req.size);
    if (n < 0) {
        return callback_error();
    }
    if ((uint64_t)n > req.size) {
        vfu_err(ctx, "read_data returned %zd for %u bytes", n, req.size);
        return -EINVAL;
    }
    /*
     * size says how many bytes are valid (fewer than asked ends the stream);
     * the reply still carries all the bytes asked for, zero past size, as
     * upstream's does: its client rejects a shorter message.
     */
    res->argsz = (uint32_t)(sizeof(req) + (size_t)n);
    res->size = (uint32_t)n;
    return 0;
}

int
handle_mig_data_write(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfio_user_mig_data req;
    ssize_t n;

    if (!ctx->migration_enabled || msg->in_len < sizeof(req)) {
        return -EINVAL;
    }
    memcpy(&req, msg->in, sizeof(req));
    if (ctx->migr_state != RESUMING) {
        vfu_err(ctx, "MIG_DATA_WRITE in state %u", ctx->migr_state);
        return -EINVAL;
    }
    if (req.size > ctx->conn.client_max_data_xfer_size ||
        req.argsz < sizeof(req) + (uint64_t)req.size ||
        msg->in_len != sizeof(req) + (size_t)req.size) {
        vfu_err(ctx, "MIG_DATA_WRITE of %u bytes (argsz %u, %zu sent)", req.size, req.argsz,
                msg->in_len - sizeof(req));
        return -EINVAL;
    }
    errno = 0;
    n = ctx->migr_cbs.write_data(ctx, msg->in + sizeof(req), req.size);
    if (n < 0) {
        return callback_error();
    }
    if ((uint64_t)n != req.size) {
        vfu_err(ctx, "write_data took %zd of %u bytes", n, req.size);
        return -EINVAL;
    }
    return 0;
}
