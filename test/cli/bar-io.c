/*
 * bar-io: reads or writes one value of a vfio-user device's region with the
 * C test client, independently of the TypeScript client.
 *
 *   bar-io SOCKET REGION OFFSET WIDTH          prints the value read, in hex
 *   bar-io SOCKET REGION OFFSET WIDTH VALUE    writes VALUE
 *
 * Exits 0 on success; otherwise prints the error and exits 1.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

static uint64_t
number(const char *text)
{
    return strtoull(text, NULL, 0);
}

int
main(int argc, char **argv)
{
    struct vfu_test_client c;
    uint32_t region;
    uint64_t offset, value = 0;
    unsigned width;
    int ret;

    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: %s SOCKET REGION OFFSET WIDTH [VALUE]\n", argv[0]);
        return 2;
    }
    region = (uint32_t)number(argv[2]);
    offset = number(argv[3]);
    width = (unsigned)number(argv[4]);
    if (vfu_test_client_open(&c, argv[1]) != 0) {
        fprintf(stderr, "connect %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    if (argc == 6) {
        ret = vfu_test_region_write_val(&c, region, offset, width, number(argv[5]));
    } else {
        ret = vfu_test_region_read_val(&c, region, offset, width, &value);
    }
    vfu_test_client_close(&c);
    if (ret != 0) {
        fprintf(stderr, "access failed: %s\n", strerror(ret > 0 ? ret : errno));
        return 1;
    }
    if (argc == 5) {
        printf("0x%" PRIx64 "\n", value);
    }
    return 0;
}
