/*
 * Test client (see client.h): eventfds, memfds and open-fd counting.
 */
#include "client_internal.h"

int
vfu_test_eventfd_new(void)
{
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

uint64_t
vfu_test_eventfd_read(int fd)
{
    uint64_t val = 0;
    ssize_t n;

    do {
        n = read(fd, &val, sizeof(val));
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof(val) ? val : 0;
}

uint64_t
vfu_test_eventfd_wait(int fd, int timeout_ms)
{
    if (tc_wait_fd(fd, POLLIN, tc_deadline_after(timeout_ms)) < 0) {
        return 0;
    }
    return vfu_test_eventfd_read(fd);
}

int
vfu_test_eventfd_signal(int fd, uint64_t val)
{
    ssize_t n;

    do {
        n = write(fd, &val, sizeof(val));
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof(val) ? 0 : -1;
}

int
vfu_test_memfd(size_t size)
{
    int fd = memfd_create("vfu-test", MFD_CLOEXEC);

    if (fd < 0) {
        return -1;
    }
    if (ftruncate(fd, (off_t)size) < 0) {
        int err = errno;

        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

int
vfu_test_count_open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *de;
    int n = 0;

    if (dir == NULL) {
        return -1;
    }
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] != '.') {
            n++;
        }
    }
    closedir(dir);
    return n - 1; /* the directory's own fd */
}
