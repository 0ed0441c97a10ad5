/*
 * The client's two interrupt messages: DEVICE_GET_IRQ_INFO (how many vectors
 * of a type) and DEVICE_SET_IRQS (install or remove eventfds, mask and
 * unmask, raise). Each is checked whole before anything changes; the vector
 * state they act on is irq.c's.
 */
#include <string.h>

#include "private.h"

int
handle_device_get_irq_info(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfio_irq_info req;
    struct vfio_irq_info *reply;

    if (msg->in_len < sizeof(req)) {
        return -EINVAL;
    }
    memcpy(&req, msg->in, sizeof(req));
    if (req.argsz < sizeof(req) || req.index >= VFU_DEV_NUM_IRQS) {
        return -EINVAL;
    }
    reply = msg_reply_alloc(msg, sizeof(*reply));
    if (reply == NULL) {
        return -ENOMEM;
    }
    reply->argsz = sizeof(*reply);
    reply->flags = VFIO_IRQ_INFO_EVENTFD;
    reply->index = req.index;
    reply->count = ctx->irqs.count[req.index];
    return 0;
}

static bool
is_one_of(uint32_t bits, uint32_t a, uint32_t b, uint32_t c)
{
    return bits == a || bits == b || bits == c;
}

static int
check_set_irqs(vfu_ctx_t *ctx, const struct vfio_irq_set *req, size_t data_len, size_t nr_fds)
{
    uint32_t action = req->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    uint32_t data = req->flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
    uint32_t nr_vectors;

    if (req->argsz < sizeof(*req) || req->index >= VFU_DEV_NUM_IRQS) {
        return -EINVAL;
    }
    if ((req->flags & ~(uint32_t)(VFIO_IRQ_SET_ACTION_TYPE_MASK | VFIO_IRQ_SET_DATA_TYPE_MASK)) !=
            0 ||
        !is_one_of(action, VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_UNMASK,
                   VFIO_IRQ_SET_ACTION_TRIGGER) ||
        !is_one_of(data, VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_BOOL,
                   VFIO_IRQ_SET_DATA_EVENTFD)) {
        return -EINVAL;
    }
    if ((req->index == VFU_DEV_ERR_IRQ || req->index == VFU_DEV_REQ_IRQ) &&
        (action != VFIO_IRQ_SET_ACTION_TRIGGER || req->count > 1)) {
        return -EINVAL;
    }
    if (req->count == 0) {
        /* Only "disable the whole type" has no vectors. */
        if (req->start != 0 ||
            req->flags != (VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_NONE)) {
            return -EINVAL;
        }
    } else {
        nr_vectors = VFU_MIN(ctx->irqs.count[req->index], ctx->irqs.nr_vectors[req->index]);
        if (req->start >= nr_vectors || (uint64_t)req->start + req->count > nr_vectors) {
            return -EINVAL;
        }
    }
    if (data == VFIO_IRQ_SET_DATA_BOOL && data_len != req->count) {
        return -EINVAL;
    }
    if (nr_fds > 0 && (data != VFIO_IRQ_SET_DATA_EVENTFD || nr_fds != req->count)) {
        return -EINVAL;
    }
    return 0;
}

/* Calls the state callback once per run of consecutive selected vectors. */
static void
set_masks(vfu_ctx_t *ctx, const struct vfio_irq_set *req, const uint8_t *bools, bool mask)
{
    vfu_dev_irq_state_cb_t *cb = ctx->irqs.state_cb[req->index];
    uint32_t run_start = 0;
    uint32_t run_len = 0;

    for (uint32_t i = 0; i <= req->count; i++) {
        bool selected = i < req->count && (bools == NULL || bools[i] != 0);

        if (selected) {
            ctx->irqs.masked[req->index][req->start + i] = mask;
            if (run_len++ == 0) {
                run_start = req->start + i;
            }
        } else if (run_len > 0) {
            if (cb != NULL) {
                cb(ctx, run_start, run_len, mask);
            }
            run_len = 0;
        }
    }
}

int
handle_device_set_irqs(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfio_irq_set req;
    const uint8_t *bools = NULL;
    uint32_t action, data;
    int ret;

    if (msg->in_len < sizeof(req)) {
        return -EINVAL;
    }
    memcpy(&req, msg->in, sizeof(req));
    ret = check_set_irqs(ctx, &req, msg->in_len - sizeof(req), msg->nr_in_fds);
    if (ret < 0) {
        vfu_err(ctx,
                "SET_IRQS index %u flags %#x start %u count %u with %zu "
                "fds: invalid",
                req.index, req.flags, req.start, req.count, msg->nr_in_fds);
        return ret;
    }
    action = req.flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    data = req.flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
    if (data == VFIO_IRQ_SET_DATA_BOOL) {
        bools = msg->in + sizeof(req);
    }

    if (action != VFIO_IRQ_SET_ACTION_TRIGGER) {
        /* Eventfds told of mask changes would need the server to watch them. */
        if (data == VFIO_IRQ_SET_DATA_EVENTFD) {
            return -ENOTSUP;
        }
        set_masks(ctx, &req, bools, action == VFIO_IRQ_SET_ACTION_MASK);
        /* The client unmasks INTx after the guest's end of interrupt. */
        if (action == VFIO_IRQ_SET_ACTION_UNMASK && req.index == VFU_DEV_INTX_IRQ) {
            irq_intx_unmasked(ctx);
        } else if (action == VFIO_IRQ_SET_ACTION_UNMASK) {
            irq_release_pending(ctx, (int)req.index, req.start, req.count);
        }
        return 0;
    }

    if (req.count == 0) {
        irq_close_vectors(ctx, (int)req.index, 0, ctx->irqs.nr_vectors[req.index]);
        return 0;
    }
    if (data == VFIO_IRQ_SET_DATA_EVENTFD) {
        /* No fds de-assigns, as an fd of -1 does in VFIO. */
        irq_close_vectors(ctx, (int)req.index, req.start, req.count);
        if (msg->nr_in_fds == 0) {
            return 0;
        }
        for (uint32_t i = 0; i < req.count; i++) {
            ctx->irqs.efds[req.index][req.start + i] = msg_take_fd(msg, i);
        }
        if (req.index <= VFU_DEV_MSIX_IRQ) {
            ctx->irqs.active = (enum vfu_dev_irq_type)req.index;
        }
        irq_release_pending(ctx, (int)req.index, req.start, req.count);
        return 0;
    }
    /* The client raises the interrupts itself. */
    return irq_trigger_selected(ctx, (int)req.index, req.start, req.count, bools);
}
