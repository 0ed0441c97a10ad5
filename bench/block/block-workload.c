/*
 * The block benchmark's workload, run inside the guest against one block
 * device: O_DIRECT reads or writes of a fixed size from page-aligned
 * buffers, for a fixed time, by one or more threads that each keep one
 * request in flight. Prints one line: ops=N bytes=B ns=T.
 *
 * usage: block-workload DEVICE MODE BLOCK_BYTES MILLISECONDS THREADS
 *   MODE: seqread, seqwrite (each thread walks the disk from its own
 *   start, wrapping at the end) or randread (offsets drawn uniformly,
 *   aligned to BLOCK_BYTES).
 */
#define _GNU_SOURCE /* O_DIRECT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>

#define MAX_THREADS 16

enum mode { SEQ_READ, SEQ_WRITE, RAND_READ };

struct worker {
    pthread_t thread;
    int fd;
    enum mode mode;
    size_t block;
    uint64_t blocks;     /* whole blocks on the disk */
    uint64_t next;       /* next block (sequential) or the random state */
    uint64_t deadline_ns;
    uint64_t ops;
    int error;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64: cheap, and the same sequence for every device. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

static void *run_worker(void *arg)
{
    struct worker *w = arg;
    void *buffer;
    if (posix_memalign(&buffer, 4096, w->block) != 0) {
        w->error = ENOMEM;
        return NULL;
    }
    memset(buffer, 0x5a, w->block);
    while (now_ns() < w->deadline_ns) {
        uint64_t block;
        if (w->mode == RAND_READ) {
            block = next_random(&w->next) % w->blocks;
        } else {
            block = w->next;
            w->next = (w->next + 1) % w->blocks;
        }
        off_t offset = (off_t)(block * w->block);
        ssize_t n = w->mode == SEQ_WRITE ? pwrite(w->fd, buffer, w->block, offset)
                                         : pread(w->fd, buffer, w->block, offset);
        if (n != (ssize_t)w->block) {
            w->error = n < 0 ? errno : EIO;
            break;
        }
        w->ops++;
    }
    free(buffer);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s DEVICE seqread|seqwrite|randread BLOCK_BYTES MILLISECONDS THREADS\n", argv[0]);
        return 2;
    }
    enum mode mode;
    if (strcmp(argv[2], "seqread") == 0) {
        mode = SEQ_READ;
    } else if (strcmp(argv[2], "seqwrite") == 0) {
        mode = SEQ_WRITE;
    } else if (strcmp(argv[2], "randread") == 0) {
        mode = RAND_READ;
    } else {
        fprintf(stderr, "unknown mode %s\n", argv[2]);
        return 2;
    }
    size_t block = strtoul(argv[3], NULL, 0);
    uint64_t milliseconds = strtoull(argv[4], NULL, 0);
    int threads = atoi(argv[5]);
    if (block == 0 || block % 4096 != 0 || milliseconds == 0 || threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "bad block size, time or thread count\n");
        return 2;
    }
    int fd = open(argv[1], (mode == SEQ_WRITE ? O_RDWR : O_RDONLY) | O_DIRECT);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    /* A block device's size; a regular file (for a try on the host) has its own. */
    uint64_t disk_bytes;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        disk_bytes = (uint64_t)st.st_size;
    } else if (ioctl(fd, BLKGETSIZE64, &disk_bytes) != 0) {
        disk_bytes = 0;
    }
    if (disk_bytes < block) {
        fprintf(stderr, "%s: cannot size it, or smaller than one block\n", argv[1]);
        return 1;
    }
    struct worker workers[MAX_THREADS];
    uint64_t start = now_ns();
    uint64_t blocks = disk_bytes / block;
    for (int i = 0; i < threads; i++) {
        workers[i] = (struct worker){
            .fd = fd,
            .mode = mode,
            .block = block,
            .blocks = blocks,
            /* Sequential threads start evenly apart; random ones get distinct seeds. */
            .next = mode == RAND_READ ? 0x9e3779b97f4a7c15u * (uint64_t)(i + 1) : blocks * (uint64_t)i / (uint64_t)threads,
            .deadline_ns = start + milliseconds * 1000000u,
        };
        if (pthread_create(&workers[i].thread, NULL, run_worker, &workers[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    uint64_t ops = 0;
    int error = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(workers[i].thread, NULL);
        ops += workers[i].ops;
        if (workers[i].error != 0) {
            error = workers[i].error;
        }
    }
    uint64_t elapsed = now_ns() - start;
    if (error != 0) {
        fprintf(stderr, "%s: %s\n", argv[1], strerror(error));
        return 1;
    }
    printf("ops=%llu bytes=%llu ns=%llu\n", (unsigned long long)ops, (unsigned long long)(ops * block),
           (unsigned long long)elapsed);
    return 0;
}
