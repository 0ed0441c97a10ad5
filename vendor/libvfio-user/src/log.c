/* Logging: the device's log callback, filtered by level. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "private.h"

VFU_EXPORT void
vfu_log(vfu_ctx_t *vfu_ctx, int level, const char *fmt, ...)
{
    char buf[BUFSIZ];
    int saved_errno = errno;
    va_list ap;

    /* Formatting only what will be seen keeps disabled debug logs cheap. */
    if (vfu_ctx == NULL || vfu_ctx->log_fn == NULL || level > vfu_ctx->log_level) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    vfu_ctx->log_fn(vfu_ctx, level, buf);
    errno = saved_errno;
}

VFU_EXPORT int
vfu_setup_log(vfu_ctx_t *vfu_ctx, vfu_log_fn_t *log, int level)
{
    if (vfu_ctx == NULL || level < LOG_EMERG || level > LOG_DEBUG) {
        errno = EINVAL;
        return -1;
    }
    vfu_ctx->log_fn = log;
    vfu_ctx->log_level = level;
    return 0;
}
