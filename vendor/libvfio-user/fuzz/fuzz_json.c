/*
 * libFuzzer harness for json_parse_client_caps, the reader of the VERSION
 * capabilities. The input is the text, exactly as long as libFuzzer made it,
 * so AddressSanitizer catches any read past its end.
 *
 * Checks: the only failure is EINVAL; a success leaves every number either
 * absent (-1) or a non-negative integer; parsing is deterministic.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"

static void
check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_json: %s\n", what);
        abort();
    }
}

static bool
same_caps(const struct vfu_client_caps *a, const struct vfu_client_caps *b)
{
    return a->max_msg_fds == b->max_msg_fds && a->max_data_xfer_size == b->max_data_xfer_size &&
           a->max_dma_maps == b->max_dma_maps && a->pgsizes == b->pgsizes &&
           a->migration_pgsize == b->migration_pgsize &&
           a->twin_socket_supported == b->twin_socket_supported &&
           a->write_multiple == b->write_multiple;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vfu_client_caps caps, again;
    int ret = json_parse_client_caps((const char *)data, size, &caps);

    check(ret == 0 || ret == -EINVAL, "an error other than EINVAL");
    check(json_parse_client_caps((const char *)data, size, &again) == ret,
          "two parses of one text disagree");
    if (ret < 0) {
        return 0;
    }
    check(same_caps(&caps, &again), "two parses of one text give different values");
    check(caps.max_msg_fds >= -1 && caps.max_data_xfer_size >= -1 && caps.max_dma_maps >= -1 &&
              caps.pgsizes >= -1 && caps.migration_pgsize >= -1,
          "a negative number was accepted");
    return 0;
}
