/*
 * The one client of the benchmarks. It talks to every server the same way,
 * through the C library's test client (vendor/libvfio-user/test/client.c),
 * so that its own cost is the same in every measurement, and prints one
 * JSON object on stdout. bench/run.ts starts the servers and reads it.
 *
 * bench_client latency [--reps R] [--n N] [--warmup W] NAME=SOCKET,KIND,OP,REGION,OFFSET[,PID]...
 *     Request/reply latency of 4-byte region accesses. KIND is "raw" (no
 *     VERSION negotiation: the echo peer) or "vfu"; OP "read" or "write".
 *     The measurements are interleaved: every repetition runs N requests of
 *     each in turn. Per measurement: the median of the repetitions'
 *     medians, and the 99th percentile of all the requests. With the
 *     server's PID, also the CPU time its main thread spent per request
 *     (from /proc/PID/schedstat; median over the repetitions).
 * bench_client irq [--reps R] [--count K] [--drain-after] NAME=SOCKET[,PID]...
 *     Enables MSI-X vector 0 with an eventfd, then asks the device (one
 *     posted write of K to BAR0 0x8) to trigger it K times while the client
 *     drains the eventfd; the time until all K arrived gives triggers/s.
 *     With --drain-after the write waits for its reply (the device has
 *     triggered K times) and the eventfd is drained after: the device's
 *     cost alone, without the client's wake-ups in between. With the
 *     server's PID, also its main thread's CPU time per trigger (median
 *     over the repetitions): the steadier figure on a busy machine.
 * bench_client dma [--reps R] [--count4k C] [--count1m C] NAME=SOCKET...
 *     Maps for DMA 2 MiB of memfd memory (the device maps it), 2 MiB of its
 *     own memory without an fd (the device reaches it through DMA_READ /
 *     DMA_WRITE messages, which this client answers while it waits for a
 *     reply) and 64 MiB of memfd memory; then times the device's DMA
 *     operations (BAR0 0x10-0x1c; the DMA_GO numbers are in `ops` below),
 *     4 KiB and 1 MiB C times each (a tenth of that through messages), and
 *     one pass of a summing loop over 64 MiB. A timing runs from the DMA_GO
 *     write until the device signals MSI-X vector 0, which it does when the
 *     operation is done (an asynchronous one after its reply); meanwhile
 *     the client answers the device's DMA messages. An operation the
 *     device does not have (DMA_ERR ENOTSUP) is reported with rate -1.
 * bench_client startup --socket SOCKET [--pid PID] [--settle-ms MS]
 *     Connects as soon as the server listens (spinning: run it on another
 *     CPU than the server), negotiates, reads the server's own time from
 *     setup start to this attach (BAR0 0x20), waits MS (default 300) and
 *     reads the server's resident memory, with its private (anonymous) and
 *     file-backed parts (its pid from the connection's SO_PEERCRED unless
 *     given).
 * bench_client rss --pid PID
 *     Resident memory of a process, split the same way.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"

#define BAR0 0
#define BAR2 2
#define BAR0_IRQ_FIRE 0x08
#define BAR0_IRQ_FAILED 0x0c
#define BAR0_DMA_LEN 0x10
#define BAR0_DMA_COUNT 0x14
#define BAR0_DMA_GO 0x18
#define BAR0_DMA_ERR 0x1c
#define BAR0_STARTUP_LO 0x20
#define BAR0_STARTUP_HI 0x24

#define PCI_COMMAND_REG 0x04
#define PCI_COMMAND_MASTER 0x4
#define PCI_CAP_POINTER 0x34
#define PCI_CAP_ID_MSIX_ 0x11
#define MSIX_FLAGS_ENABLE 0x8000
#define MSIX_ENTRY_VECTOR_CTRL 12
#define IRQ_INDEX_MSIX 2

#define DMA_IOVA 0x10000000ull
#define DMA_SIZE (2u << 20)
#define MSG_IOVA 0x20000000ull
#define SUM_IOVA 0x40000000ull
#define SUM_SIZE (64u << 20)
#define MAX_TARGETS 32

static void
die(const char *what)
{
    fprintf(stderr, "bench_client: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void
die_ret(const char *what, int ret)
{
    if (ret > 0) {
        errno = ret;
    }
    die(what);
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Sorts v in place and returns its q-quantile (nearest rank). */
static uint64_t
quantile(uint64_t *v, size_t n, double q)
{
    size_t rank;

    qsort(v, n, sizeof(*v), cmp_u64);
    rank = (size_t)(q * (double)n + 0.999999);
    if (rank == 0) {
        rank = 1;
    }
    return v[(rank > n ? n : rank) - 1];
}

static double
median_double(double *v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int
parse_uint(const char *s, unsigned long *out)
{
    char *end;

    errno = 0;
    *out = strtoul(s, &end, 0);
    return errno != 0 || end == s || *end != '\0' ? -1 : 0;
}

/* Splits "NAME=REST" in place; returns REST, or NULL. */
static char *
split_name(char *arg)
{
    char *eq = strchr(arg, '=');

    if (eq == NULL) {
        return NULL;
    }
    *eq = '\0';
    return eq + 1;
}

/* Options shared by the subcommands: --name VALUE pairs and NAME=... targets. */
struct args {
    unsigned long reps, n, warmup, count, count4k, count1m, pid, settle_ms;
    const char *socket;
    bool drain_after;
    char *targets[MAX_TARGETS];
    int nr_targets;
};

static void
parse_args(int argc, char *argv[], struct args *a)
{
    for (int i = 0; i < argc; i++) {
        struct { const char *name; unsigned long *val; } opts[] = {
            { "--reps", &a->reps }, { "--n", &a->n }, { "--warmup", &a->warmup },
            { "--count", &a->count }, { "--count4k", &a->count4k },
            { "--count1m", &a->count1m }, { "--pid", &a->pid },
            { "--settle-ms", &a->settle_ms },
        };
        bool known = false;

        if (strcmp(argv[i], "--drain-after") == 0) {
            a->drain_after = true;
            continue;
        }
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            a->socket = argv[++i];
            continue;
        }
        for (size_t o = 0; o < sizeof(opts) / sizeof(opts[0]); o++) {
            if (strcmp(argv[i], opts[o].name) == 0) {
                if (i + 1 >= argc || parse_uint(argv[++i], opts[o].val) < 0) {
                    fprintf(stderr, "bench_client: %s needs a number\n", opts[o].name);
                    exit(2);
                }
                known = true;
            }
        }
        if (known) {
            continue;
        }
        if (argv[i][0] == '-' || a->nr_targets == MAX_TARGETS) {
            fprintf(stderr, "bench_client: unexpected argument %s\n", argv[i]);
            exit(2);
        }
        a->targets[a->nr_targets++] = argv[i];
    }
}

static void
open_client(struct vfu_test_client *c, const char *path, bool negotiate)
{
    int ret = negotiate ? vfu_test_client_open(c, path)
                        : vfu_test_client_connect(c, path, -1);

    if (ret != 0) {
        fprintf(stderr, "bench_client: %s: ", path);
        die_ret("connect", ret);
    }
}

static void
write32(struct vfu_test_client *c, uint32_t region, uint64_t offset, uint32_t v)
{
    int ret = vfu_test_region_write(c, region, offset, 4, &v);

    if (ret != 0) {
        die_ret("region write", ret);
    }
}

static uint32_t
read32(struct vfu_test_client *c, uint32_t region, uint64_t offset)
{
    uint32_t v = 0;
    int ret = vfu_test_region_read(c, region, offset, 4, &v);

    if (ret != 0) {
        die_ret("region read", ret);
    }
    return v;
}

/* ------------------------------------------------------------------ latency */

struct measurement {
    const char *name;
    const char *socket;
    bool negotiate;
    bool write;
    uint32_t region;
    uint64_t offset;
    unsigned long pid;       /* the server's, 0 if unknown */
    struct vfu_test_client *client;
    uint64_t *samples;       /* reps * n */
    double cpu_per_req[256]; /* ns of server CPU per request, by repetition */
    double vcs_per_req[256]; /* its voluntary context switches per request */
    double ics_per_req[256]; /* its involuntary ones */
};

/* Context switches of the main thread of `pid` (from /proc/PID/status). */
static void
ctxt_switches(unsigned long pid, unsigned long long *vol, unsigned long long *invol)
{
    char path[64], line[256];
    FILE *f;

    *vol = *invol = 0;
    if (pid == 0) {
        return;
    }
    snprintf(path, sizeof(path), "/proc/%lu/status", pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        sscanf(line, "voluntary_ctxt_switches: %llu", vol);
        sscanf(line, "nonvoluntary_ctxt_switches: %llu", invol);
    }
    fclose(f);
}

/* CPU time the main thread of `pid` has run, in ns; 0 if unknown. */
static uint64_t
cpu_ns(unsigned long pid)
{
    char path[64];
    unsigned long long ns = 0;
    FILE *f;

    if (pid == 0) {
        return 0;
    }
    snprintf(path, sizeof(path), "/proc/%lu/schedstat", pid);
    f = fopen(path, "r");
    if (f == NULL || fscanf(f, "%llu", &ns) != 1) {
        ns = 0;
    }
    if (f != NULL) {
        fclose(f);
    }
    return ns;
}

static void
one_access(struct measurement *m, uint32_t *value)
{
    int ret = m->write ? vfu_test_region_write(m->client, m->region, m->offset, 4, value)
                       : vfu_test_region_read(m->client, m->region, m->offset, 4, value);

    if (ret != 0) {
        fprintf(stderr, "bench_client: %s: ", m->name);
        die_ret(m->write ? "write" : "read", ret);
    }
}

static int
cmd_latency(struct args *a)
{
    static struct vfu_test_client clients[MAX_TARGETS];
    static const char *client_keys[MAX_TARGETS];
    static bool client_negotiated[MAX_TARGETS];
    struct measurement ms[MAX_TARGETS];
    int nr_clients = 0;
    size_t n = a->n, reps = a->reps;
    uint64_t *scratch = malloc(n * reps * sizeof(uint64_t));

    if (scratch == NULL) {
        die("malloc");
    }
    for (int t = 0; t < a->nr_targets; t++) {
        struct measurement *m = &ms[t];
        char *spec = split_name(a->targets[t]);
        char *fields[6];
        int nf = 0;
        unsigned long region, offset;

        m->name = a->targets[t];
        m->pid = 0;
        for (char *save = NULL, *tok = spec ? strtok_r(spec, ",", &save) : NULL;
             tok != NULL && nf < 6; tok = strtok_r(NULL, ",", &save)) {
            fields[nf++] = tok;
        }
        if (nf < 5 || parse_uint(fields[3], &region) < 0 ||
            parse_uint(fields[4], &offset) < 0 ||
            (nf == 6 && parse_uint(fields[5], &m->pid) < 0)) {
            fprintf(stderr, "bench_client: bad measurement %s\n", m->name);
            return 2;
        }
        m->socket = fields[0];
        m->negotiate = strcmp(fields[1], "raw") != 0;
        m->write = strcmp(fields[2], "write") == 0;
        m->region = (uint32_t)region;
        m->offset = offset;
        m->client = NULL;
        /* One connection per server. */
        for (int i = 0; i < nr_clients; i++) {
            if (strcmp(client_keys[i], m->socket) == 0 &&
                client_negotiated[i] == m->negotiate) {
                m->client = &clients[i];
            }
        }
        if (m->client == NULL) {
            open_client(&clients[nr_clients], m->socket, m->negotiate);
            client_keys[nr_clients] = m->socket;
            client_negotiated[nr_clients] = m->negotiate;
            m->client = &clients[nr_clients++];
        }
        m->samples = malloc(n * reps * sizeof(uint64_t));
        if (m->samples == NULL) {
            die("malloc");
        }
    }

    /* Warm up every path (caches, the JIT), then interleave repetitions. */
    for (size_t i = 0; i < a->warmup; i++) {
        for (int t = 0; t < a->nr_targets; t++) {
            uint32_t v = (uint32_t)i;
            one_access(&ms[t], &v);
        }
    }
    for (size_t r = 0; r < reps; r++) {
        for (int t = 0; t < a->nr_targets; t++) {
            struct measurement *m = &ms[t];
            uint64_t *out = m->samples + r * n;
            uint64_t cpu0 = cpu_ns(m->pid);
            unsigned long long vol0, invol0, vol1, invol1;

            ctxt_switches(m->pid, &vol0, &invol0);

            for (size_t i = 0; i < n; i++) {
                uint32_t v = (uint32_t)i;
                uint64_t t0 = vfu_test_now_ns();

                one_access(m, &v);
                out[i] = vfu_test_now_ns() - t0;
            }
            if (r < 256) {
                m->cpu_per_req[r] = (double)(cpu_ns(m->pid) - cpu0) / (double)n;
                ctxt_switches(m->pid, &vol1, &invol1);
                m->vcs_per_req[r] = (double)(vol1 - vol0) / (double)n;
                m->ics_per_req[r] = (double)(invol1 - invol0) / (double)n;
            }
        }
    }

    printf("{\"kind\":\"latency\",\"n\":%zu,\"reps\":%zu,\"results\":[", n, reps);
    for (int t = 0; t < a->nr_targets; t++) {
        struct measurement *m = &ms[t];
        double rep_medians[256];
        uint64_t p99;

        for (size_t r = 0; r < reps && r < 256; r++) {
            memcpy(scratch, m->samples + r * n, n * sizeof(uint64_t));
            rep_medians[r] = (double)quantile(scratch, n, 0.5);
        }
        printf("%s{\"name\":\"%s\",\"rep_medians_ns\":[", t ? "," : "", m->name);
        for (size_t r = 0; r < reps && r < 256; r++) {
            printf("%s%.0f", r ? "," : "", rep_medians[r]);
        }
        memcpy(scratch, m->samples, n * reps * sizeof(uint64_t));
        p99 = quantile(scratch, n * reps, 0.99);
        printf("],\"median_ns\":%.0f,\"p99_ns\":%llu,\"min_ns\":%llu",
               median_double(rep_medians, reps < 256 ? reps : 256),
               (unsigned long long)p99, (unsigned long long)scratch[0]);
        if (m->pid != 0) {
            printf(",\"server_cpu_ns_per_req\":%.0f"
                   ",\"server_voluntary_switches_per_req\":%.3f"
                   ",\"server_involuntary_switches_per_req\":%.3f",
                   median_double(m->cpu_per_req, reps < 256 ? reps : 256),
                   median_double(m->vcs_per_req, reps < 256 ? reps : 256),
                   median_double(m->ics_per_req, reps < 256 ? reps : 256));
        }
        printf("}");
    }
    printf("]}\n");
    return 0;
}

/* ---------------------------------------------------------------------- irq */

/* Offset of the MSI-X capability in config space; dies if there is none. */
static uint32_t
find_msix(struct vfu_test_client *c)
{
    uint64_t pos = 0;

    if (vfu_test_cfg_read_val(c, PCI_CAP_POINTER, 1, &pos) != 0) {
        die("config read");
    }
    for (int hops = 0; pos != 0 && hops < 48; hops++) {
        uint64_t id = 0, next = 0;

        if (vfu_test_cfg_read_val(c, pos, 1, &id) != 0 ||
            vfu_test_cfg_read_val(c, pos + 1, 1, &next) != 0) {
            die("config read");
        }
        if (id == PCI_CAP_ID_MSIX_) {
            return (uint32_t)pos;
        }
        pos = next & ~3u;
    }
    errno = ENOENT;
    die("no MSI-X capability");
    return 0;
}

/* Enables MSI-X vector 0 (table in BAR2 at 0) on an eventfd; returns it. */
static int
enable_msix(struct vfu_test_client *c)
{
    uint32_t cap = find_msix(c);
    uint64_t flags = 0, command = 0;
    int efd = vfu_test_eventfd_new();
    int ret;

    if (efd < 0) {
        die("eventfd");
    }
    write32(c, BAR2, MSIX_ENTRY_VECTOR_CTRL, 0);
    if (vfu_test_cfg_read_val(c, PCI_COMMAND_REG, 2, &command) != 0 ||
        vfu_test_cfg_write_val(c, PCI_COMMAND_REG, 2, command | PCI_COMMAND_MASTER) != 0 ||
        vfu_test_cfg_read_val(c, cap + 2, 2, &flags) != 0 ||
        vfu_test_cfg_write_val(c, cap + 2, 2, flags | MSIX_FLAGS_ENABLE) != 0) {
        die("config write");
    }
    ret = vfu_test_set_irqs_eventfds(c, IRQ_INDEX_MSIX, 0, 1, &efd);
    if (ret != 0) {
        die_ret("SET_IRQS", ret);
    }
    return efd;
}

static int
cmd_irq(struct args *a)
{
    static struct vfu_test_client clients[MAX_TARGETS];
    int efds[MAX_TARGETS];
    unsigned long pids[MAX_TARGETS];
    double rates[MAX_TARGETS][256];
    double cpu[MAX_TARGETS][256];
    size_t reps = a->reps < 256 ? a->reps : 256;
    uint32_t k = (uint32_t)a->count;

    for (int t = 0; t < a->nr_targets; t++) {
        char *path = split_name(a->targets[t]);
        char *pid = path == NULL ? NULL : strchr(path, ',');

        if (path == NULL) {
            fprintf(stderr, "bench_client: bad target %s\n", a->targets[t]);
            return 2;
        }
        pids[t] = 0;
        if (pid != NULL) {
            *pid = '\0';
            pids[t] = strtoul(pid + 1, NULL, 10);
        }
        open_client(&clients[t], path, true);
        efds[t] = enable_msix(&clients[t]);
    }
    for (size_t r = 0; r <= reps; r++) {
        for (int t = 0; t < a->nr_targets; t++) {
            struct vfu_test_client *c = &clients[t];
            uint32_t count = r == 0 ? k / 10 + 1 : k;  /* r 0: warm-up */
            uint64_t got = 0, t0, t1, cpu0, cpu1;
            int ret;

            cpu0 = cpu_ns(pids[t]);
            t0 = vfu_test_now_ns();
            if (a->drain_after) {
                /* Wait for the device to finish, then take the count. */
                write32(c, BAR0, BAR0_IRQ_FIRE, count);
                got = vfu_test_eventfd_read(efds[t]);
            } else {
                ret = vfu_test_region_write_posted(c, BAR0, BAR0_IRQ_FIRE, 4, &count);
                if (ret != 0) {
                    die_ret("posted write", ret);
                }
            }
            while (got < count) {
                uint64_t v = vfu_test_eventfd_wait(efds[t], 5000);

                if (v == 0) {
                    errno = ETIMEDOUT;
                    fprintf(stderr, "bench_client: %s: %llu of %u interrupts: ",
                            a->targets[t], (unsigned long long)got, count);
                    die("eventfd");
                }
                got += v;
            }
            t1 = vfu_test_now_ns();
            cpu1 = cpu_ns(pids[t]);
            if (read32(c, BAR0, BAR0_IRQ_FAILED) != 0 || got != count) {
                fprintf(stderr, "bench_client: %s: triggers failed\n", a->targets[t]);
                return 1;
            }
            if (r > 0) {
                rates[t][r - 1] = (double)count * 1e9 / (double)(t1 - t0);
                cpu[t][r - 1] = (double)(cpu1 - cpu0) / (double)count;
            }
        }
    }
    printf("{\"kind\":\"irq\",\"count\":%u,\"reps\":%zu,\"results\":[", k, reps);
    for (int t = 0; t < a->nr_targets; t++) {
        printf("%s{\"name\":\"%s\",\"rep_per_s\":[", t ? "," : "", a->targets[t]);
        for (size_t r = 0; r < reps; r++) {
            printf("%s%.0f", r ? "," : "", rates[t][r]);
        }
        printf("],\"median_per_s\":%.0f", median_double(rates[t], reps));
        if (pids[t] != 0) {
            printf(",\"server_cpu_ns_per_trigger\":%.1f", median_double(cpu[t], reps));
        }
        printf("}");
    }
    printf("]}\n");
    return 0;
}

/* ---------------------------------------------------------------------- dma */

/*
 * Waits for the device's completion interrupt on `efd`, answering the
 * DMA_READ / DMA_WRITE messages it sends meanwhile from the client's
 * windows.
 */
static void
wait_dma_done(struct vfu_test_client *c, int efd)
{
    static uint8_t msg[(1u << 20) + 64];

    for (;;) {
        struct pollfd p[2] = { { .fd = efd, .events = POLLIN }, { .fd = c->fd, .events = POLLIN } };
        struct vfio_user_header hdr;
        size_t len = 0, nfds = 0;

        if (poll(p, 2, c->timeout_ms) <= 0) {
            errno = ETIMEDOUT;
            die("waiting for the DMA to finish");
        }
        if (p[0].revents & POLLIN) {
            vfu_test_eventfd_read(efd);
            return;
        }
        if (vfu_test_recv_msg(c, &hdr, msg, sizeof(msg), &len, NULL, &nfds) != 0) {
            die("receive");
        }
        if ((hdr.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_COMMAND ||
            vfu_test_serve_dma_cmd(c, c->fd, &hdr, msg, len) != 0) {
            errno = EPROTO;
            die("a message other than DMA_READ / DMA_WRITE");
        }
    }
}

/* A shared mapping of a new memfd of `size` bytes, filled with a pattern. */
static uint8_t *
shared_memory(size_t size, int *memfd)
{
    uint8_t *mem;

    *memfd = vfu_test_memfd(size);
    if (*memfd < 0) {
        die("memfd");
    }
    mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, *memfd, 0);
    if (mem == MAP_FAILED) {
        die("mmap");
    }
    for (size_t i = 0; i < size; i++) {
        mem[i] = (uint8_t)(i * 7);
    }
    return mem;
}

static int
cmd_dma(struct args *a)
{
    static struct vfu_test_client clients[MAX_TARGETS];
    /* count: 0 one per 4 KiB count, 1 per 1 MiB count, 2 a tenth of those, 3 one. */
    static const struct { const char *name; uint32_t op, len, count; } ops[] = {
        { "read-sync-4k", 1, 4096, 0 }, { "view-read-4k", 3, 4096, 0 },
        { "write-sync-4k", 2, 4096, 0 }, { "read-async-4k", 4, 4096, 0 },
        { "read-sync-1m", 1, 1u << 20, 1 }, { "view-read-1m", 3, 1u << 20, 1 },
        { "write-sync-1m", 2, 1u << 20, 1 }, { "read-async-1m", 4, 1u << 20, 1 },
        { "msg-read-4k", 5, 4096, 2 }, { "msg-write-4k", 6, 4096, 2 },
        { "msg-read-1m", 5, 1u << 20, 2 }, { "msg-write-1m", 6, 1u << 20, 2 },
        { "sum-mapped-64m", 7, SUM_SIZE, 3 }, { "sum-plain-64m", 8, SUM_SIZE, 3 },
    };
    enum { NR_OPS = sizeof(ops) / sizeof(ops[0]) };
    static double rates[MAX_TARGETS][NR_OPS][256];
    int efds[MAX_TARGETS];
    size_t reps = a->reps < 256 ? a->reps : 256;
    int memfd, sum_memfd;
    uint8_t *msg_mem = malloc(DMA_SIZE);

    shared_memory(DMA_SIZE, &memfd);
    shared_memory(SUM_SIZE, &sum_memfd);
    if (msg_mem == NULL) {
        die("malloc");
    }
    memset(msg_mem, 0x5a, DMA_SIZE);
    for (int t = 0; t < a->nr_targets; t++) {
        char *path = split_name(a->targets[t]);
        uint32_t rw = VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE;
        int ret;

        if (path == NULL) {
            fprintf(stderr, "bench_client: bad target %s\n", a->targets[t]);
            return 2;
        }
        open_client(&clients[t], path, true);
        /* The device may take a while over a large DMA. */
        clients[t].timeout_ms = 60000;
        ret = vfu_test_dma_map(&clients[t], rw, 0, DMA_IOVA, DMA_SIZE, memfd);
        if (ret == 0) {
            ret = vfu_test_dma_map(&clients[t], rw, 0, SUM_IOVA, SUM_SIZE, sum_memfd);
        }
        if (ret == 0) {
            ret = vfu_test_client_add_dma_window(&clients[t], MSG_IOVA, msg_mem, DMA_SIZE);
        }
        if (ret == 0) {
            ret = vfu_test_dma_map(&clients[t], rw, 0, MSG_IOVA, DMA_SIZE, -1);
        }
        if (ret != 0) {
            die_ret("DMA_MAP", ret);
        }
        efds[t] = enable_msix(&clients[t]);
    }
    for (size_t r = 0; r <= reps; r++) {
        for (int o = 0; o < NR_OPS; o++) {
            for (int t = 0; t < a->nr_targets; t++) {
                struct vfu_test_client *c = &clients[t];
                unsigned long per[] = { a->count4k, a->count1m,
                                        (ops[o].len == 4096 ? a->count4k : a->count1m) / 10, 1 };
                uint32_t count = (uint32_t)per[ops[o].count];
                uint64_t t0, t1;
                uint32_t err;

                if (count == 0) {
                    count = 1;
                }
                if (r == 0 && ops[o].count != 3) {
                    count = count / 10 + 1;   /* warm-up */
                }
                write32(c, BAR0, BAR0_DMA_LEN, ops[o].len);
                write32(c, BAR0, BAR0_DMA_COUNT, count);
                t0 = vfu_test_now_ns();
                write32(c, BAR0, BAR0_DMA_GO, ops[o].op);
                wait_dma_done(c, efds[t]);
                t1 = vfu_test_now_ns();
                err = read32(c, BAR0, BAR0_DMA_ERR);
                if (err == ENOTSUP) {
                    if (r > 0) {
                        rates[t][o][r - 1] = -1;
                    }
                    continue;
                }
                if (err != 0) {
                    errno = (int)err;
                    fprintf(stderr, "bench_client: %s: ", a->targets[t]);
                    die(ops[o].name);
                }
                if (r > 0) {
                    rates[t][o][r - 1] = (double)ops[o].len * count * 1e9 / (double)(t1 - t0);
                }
            }
        }
    }
    printf("{\"kind\":\"dma\",\"reps\":%zu,\"count4k\":%lu,\"count1m\":%lu,\"results\":[",
           reps, a->count4k, a->count1m);
    for (int t = 0; t < a->nr_targets; t++) {
        for (int o = 0; o < NR_OPS; o++) {
            printf("%s{\"name\":\"%s\",\"op\":\"%s\",\"rep_bytes_per_s\":[",
                   t || o ? "," : "", a->targets[t], ops[o].name);
            for (size_t r = 0; r < reps; r++) {
                printf("%s%.0f", r ? "," : "", rates[t][o][r]);
            }
            printf("],\"median_bytes_per_s\":%.0f}", median_double(rates[t][o], reps));
        }
    }
    printf("]}\n");
    return 0;
}

/* ------------------------------------------------------------ startup, rss */

/* Resident memory, kB: all of it, and its private (anonymous) and file-backed parts. */
struct rss {
    long total, anon, file;
};

static struct rss
read_rss(unsigned long pid)
{
    char path[64], line[256];
    struct rss r = { -1, -1, -1 };
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%lu/status", pid);
    f = fopen(path, "r");
    if (f == NULL) {
        die(path);
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmRSS: %ld kB", &r.total) == 1 || sscanf(line, "RssAnon: %ld kB", &r.anon) == 1) {
            continue;
        }
        sscanf(line, "RssFile: %ld kB", &r.file);
    }
    fclose(f);
    return r;
}

static void
print_rss(const char *kind, struct rss r)
{
    printf("\"kind\":\"%s\",\"rss_kb\":%ld,\"rss_anon_kb\":%ld,\"rss_file_kb\":%ld", kind, r.total, r.anon,
           r.file);
}

static int
cmd_startup(struct args *a)
{
    struct vfu_test_client c;
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    uint64_t deadline = vfu_test_now_ns() + 20ull * 1000000000u;
    unsigned long attempts = 0;
    uint64_t startup;
    int fd, ret;

    if (a->socket == NULL || strlen(a->socket) >= sizeof(sun.sun_path)) {
        fprintf(stderr, "bench_client: startup needs --socket\n");
        return 2;
    }
    strcpy(sun.sun_path, a->socket);
    /* Spin: the server's time to attach must not include our retry delay. */
    for (;;) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            die("socket");
        }
        attempts++;
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
            break;
        }
        if (errno != ENOENT && errno != ECONNREFUSED) {
            die("connect");
        }
        close(fd);
        if (vfu_test_now_ns() > deadline) {
            errno = ETIMEDOUT;
            die("connect");
        }
    }
    if (a->pid == 0) {
        struct ucred cred;
        socklen_t len = sizeof(cred);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
            die("SO_PEERCRED");
        }
        a->pid = (unsigned long)cred.pid;
    }
    vfu_test_client_init(&c);
    c.fd = fd;
    ret = vfu_test_negotiate(&c, 0, 1, VFU_TEST_DEFAULT_JSON);
    if (ret != 0) {
        die_ret("negotiate", ret);
    }
    startup = read32(&c, BAR0, BAR0_STARTUP_LO) |
              (uint64_t)read32(&c, BAR0, BAR0_STARTUP_HI) << 32;
    vfu_test_sleep_ms((unsigned)(a->settle_ms ? a->settle_ms : 300));
    printf("{");
    print_rss("startup", read_rss(a->pid));
    printf(",\"startup_ns\":%llu,\"connect_attempts\":%lu}\n", (unsigned long long)startup, attempts);
    vfu_test_client_close(&c);
    return 0;
}

int
main(int argc, char *argv[])
{
    struct args a = { .reps = 7, .n = 20000, .warmup = 2000, .count = 100000,
                      .count4k = 20000, .count1m = 200 };

    if (argc < 2) {
        fprintf(stderr, "usage: bench_client latency|irq|dma|startup|rss ... (see the source)\n");
        return 2;
    }
    parse_args(argc - 2, argv + 2, &a);
    if (a.reps == 0 || a.n == 0) {
        fprintf(stderr, "bench_client: --reps and --n must be positive\n");
        return 2;
    }
    if (strcmp(argv[1], "latency") == 0) {
        return cmd_latency(&a);
    }
    if (strcmp(argv[1], "irq") == 0) {
        return cmd_irq(&a);
    }
    if (strcmp(argv[1], "dma") == 0) {
        return cmd_dma(&a);
    }
    if (strcmp(argv[1], "startup") == 0) {
        return cmd_startup(&a);
    }
    if (strcmp(argv[1], "rss") == 0 && a.pid != 0) {
        printf("{");
        print_rss("rss", read_rss(a.pid));
        printf("}\n");
        return 0;
    }
    fprintf(stderr, "bench_client: unknown command %s\n", argv[1]);
    return 2;
}
