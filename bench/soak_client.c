/*
 * The client of the soak (bench/soak.ts), through the C library's test
 * client: a separate process, as QEMU is.
 *
 * soak_client cycles SOCKET N
 *     N times: connect, negotiate, DEVICE_GET_INFO, a BAR0 write and read
 *     back, disconnect.
 * soak_client accesses SOCKET N
 *     One connection, N BAR accesses: BAR0 scratch writes, each read back,
 *     and BAR1 register-map reads, in turn.
 *
 * Every answer is checked; the first wrong one ends it with exit status 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

#define BAR0_SCRATCH 0x04
#define BAR1_REG 0x04

static int
fail(const char *what, unsigned long i, int err)
{
    fprintf(stderr, "soak_client: %s failed at %lu: %s\n", what, i,
            err > 0 ? strerror(err) : "wrong value");
    return 1;
}

static int
cycles(const char *socket, unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        struct vfu_test_client c;
        struct vfio_user_device_info info;
        uint64_t value = 0;
        int err;

        if (vfu_test_client_open(&c, socket) != 0) {
            return fail("connect", i, errno);
        }
        memset(&info, 0, sizeof(info));
        err = vfu_test_device_get_info(&c, &info);
        if (err == 0) {
            err = vfu_test_region_write_val(&c, 0, BAR0_SCRATCH, 4, i);
        }
        if (err == 0) {
            err = vfu_test_region_read_val(&c, 0, BAR0_SCRATCH, 4, &value);
        }
        vfu_test_client_close(&c);
        if (err != 0 || value != (uint32_t)i) {
            return fail("cycle", i, err);
        }
    }
    return 0;
}

static int
accesses(const char *socket, unsigned long n)
{
    struct vfu_test_client c;
    int err = 0;
    unsigned long i;

    if (vfu_test_client_open(&c, socket) != 0) {
        return fail("connect", 0, errno);
    }
    for (i = 0; i < n && err == 0; i++) {
        uint64_t value = 0;

        switch (i % 3) {
        case 0:
            err = vfu_test_region_write_val(&c, 0, BAR0_SCRATCH, 4, i);
            break;
        case 1:
            err = vfu_test_region_read_val(&c, 0, BAR0_SCRATCH, 4, &value);
            if (err == 0 && value != (uint32_t)(i - 1)) {
                err = -1;
            }
            break;
        default:
            err = vfu_test_region_read_val(&c, 1, BAR1_REG, 4, &value);
            break;
        }
    }
    vfu_test_client_close(&c);
    return err == 0 ? 0 : fail("access", i - 1, err);
}

int
main(int argc, char **argv)
{
    unsigned long n;

    if (argc != 4) {
        fprintf(stderr, "usage: soak_client cycles|accesses SOCKET N\n");
        return 2;
    }
    n = strtoul(argv[3], NULL, 10);
    if (strcmp(argv[1], "cycles") == 0) {
        return cycles(argv[2], n);
    }
    if (strcmp(argv[1], "accesses") == 0) {
        return accesses(argv[2], n);
    }
    fprintf(stderr, "soak_client: unknown mode %s\n", argv[1]);
    return 2;
}
