/*
 * The client of the scale benchmarks: it keeps many devices busy at once.
 *
 * fleet_client [--reps R] [--n N] [--warmup W] NAME=DIR:COUNT[:PID]...
 *     Connects to the devices listening on DIR/dev-0.sock ... DIR/dev-(COUNT-1).sock
 *     (the layout bench/ts_fleet.ts serves) and reads BAR0 offset 4 (4
 *     bytes) from each in turn, one request at a time: N rounds per
 *     repetition. The targets are interleaved, one repetition of each in
 *     turn. Per target: the median over the repetitions of the per-access
 *     median latency, and requests per second. With PID (the server's), its
 *     resident memory once every device is attached and has served the
 *     warm-up.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

#define MAX_TARGETS 8
#define MAX_REPS 64
#define BAR0 0
#define BAR0_SCRATCH 0x4

struct target {
    char *name;
    size_t count;
    struct vfu_test_client *clients;
    unsigned long pid;
    uint64_t *samples;
    double rep_median_ns[MAX_REPS];
    double rep_per_s[MAX_REPS];
    long rss_kb;
};

static void
die(const char *what, int err)
{
    fprintf(stderr, "fleet_client: %s: %s\n", what, strerror(err));
    exit(1);
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double
median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static long
rss_kb(unsigned long pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    if (pid == 0) {
        return -1;
    }
    snprintf(path, sizeof(path), "/proc/%lu/status", pid);
    f = fopen(path, "r");
    if (f == NULL) {
        die(path, errno);
    }
    while (fgets(line, sizeof(line), f) != NULL && sscanf(line, "VmRSS: %ld kB", &kb) != 1) {
    }
    fclose(f);
    return kb;
}

static void
read_scratch(struct vfu_test_client *c)
{
    uint32_t v = 0;
    int ret = vfu_test_region_read(c, BAR0, BAR0_SCRATCH, 4, &v);

    if (ret != 0) {
        die("region read", ret > 0 ? ret : EIO);
    }
}

static void
open_target(struct target *t, char *spec, size_t samples)
{
    char *eq = strchr(spec, '='), *dir = eq == NULL ? NULL : eq + 1;
    char *count = dir == NULL ? NULL : strchr(dir, ':');
    char *pid = count == NULL ? NULL : strchr(count + 1, ':');

    if (count == NULL || (t->count = strtoul(count + 1, NULL, 10)) == 0) {
        fprintf(stderr, "fleet_client: bad target %s (NAME=DIR:COUNT[:PID])\n", spec);
        exit(2);
    }
    *eq = *count = '\0';
    t->name = spec;
    t->pid = pid == NULL ? 0 : strtoul(pid + 1, NULL, 10);
    t->clients = calloc(t->count, sizeof(*t->clients));
    t->samples = malloc(samples * t->count * sizeof(uint64_t));
    if (t->clients == NULL || t->samples == NULL) {
        die("malloc", ENOMEM);
    }
    for (size_t i = 0; i < t->count; i++) {
        char path[4096];
        int ret;

        snprintf(path, sizeof(path), "%s/dev-%zu.sock", dir, i);
        ret = vfu_test_client_open(&t->clients[i], path);
        if (ret != 0) {
            die(path, ret > 0 ? ret : ECONNREFUSED);
        }
    }
}

/* One repetition: n rounds of one read from every device of t. */
static void
run_rep(struct target *t, size_t n, size_t r)
{
    uint64_t start = vfu_test_now_ns();
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        for (size_t d = 0; d < t->count; d++) {
            uint64_t t0 = vfu_test_now_ns();

            read_scratch(&t->clients[d]);
            t->samples[k++] = vfu_test_now_ns() - t0;
        }
    }
    qsort(t->samples, k, sizeof(uint64_t), cmp_u64);
    t->rep_median_ns[r] = (double)t->samples[k / 2];
    t->rep_per_s[r] = (double)k * 1e9 / (double)(vfu_test_now_ns() - start);
}

int
main(int argc, char *argv[])
{
    static struct target targets[MAX_TARGETS];
    unsigned long reps = 5, n = 2000, warmup = 200;
    int nr = 0;

    for (int i = 1; i < argc; i++) {
        unsigned long *opt = strcmp(argv[i], "--reps") == 0     ? &reps
                             : strcmp(argv[i], "--n") == 0      ? &n
                             : strcmp(argv[i], "--warmup") == 0 ? &warmup
                                                                : NULL;

        if (opt != NULL && i + 1 < argc) {
            *opt = strtoul(argv[++i], NULL, 10);
        } else if (argv[i][0] != '-' && nr < MAX_TARGETS) {
            open_target(&targets[nr++], argv[i], n);
        } else {
            fprintf(stderr, "usage: fleet_client [--reps R] [--n N] [--warmup W] NAME=DIR:COUNT[:PID]...\n");
            return 2;
        }
    }
    if (nr == 0 || reps == 0 || reps > MAX_REPS || n == 0) {
        fprintf(stderr, "fleet_client: give a target, 1 <= reps <= %d, n >= 1\n", MAX_REPS);
        return 2;
    }
    for (int t = 0; t < nr; t++) {
        for (size_t i = 0; i < warmup; i++) {
            for (size_t d = 0; d < targets[t].count; d++) {
                read_scratch(&targets[t].clients[d]);
            }
        }
        targets[t].rss_kb = rss_kb(targets[t].pid);
    }
    for (size_t r = 0; r < reps; r++) {
        for (int t = 0; t < nr; t++) {
            run_rep(&targets[t], n, r);
        }
    }
    printf("{\"kind\":\"fleet\",\"n\":%lu,\"reps\":%lu,\"results\":[", n, reps);
    for (int t = 0; t < nr; t++) {
        struct target *x = &targets[t];

        printf("%s{\"name\":\"%s\",\"devices\":%zu,\"rss_kb\":%ld,\"rep_median_ns\":[", t ? "," : "",
               x->name, x->count, x->rss_kb);
        for (size_t r = 0; r < reps; r++) {
            printf("%s%.0f", r ? "," : "", x->rep_median_ns[r]);
        }
        printf("],\"rep_per_s\":[");
        for (size_t r = 0; r < reps; r++) {
            printf("%s%.0f", r ? "," : "", x->rep_per_s[r]);
        }
        printf("],\"median_ns\":%.0f,", median(x->rep_median_ns, reps));
        printf("\"per_s\":%.0f}", median(x->rep_per_s, reps));
        for (size_t d = 0; d < x->count; d++) {
            vfu_test_client_close(&x->clients[d]);
        }
    }
    printf("]}\n");
    return 0;
}
