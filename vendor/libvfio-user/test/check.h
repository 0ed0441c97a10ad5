/*
 * Tiny assertion macros for the C tests.  Header only.
 *
 * A failed check prints "file:line: message" on stderr, counts a failure and
 * lets the test continue; a passing check counts a pass.  At the end, main()
 * returns check_summary(), which prints exactly one line on stdout:
 *
 *     N passed, M failed
 *
 * (N and M count checks, not tests) and returns 0 iff M == 0, else 1.
 *
 * Conventions:
 *   - a test is a `static void test_name(void)` run with RUN_TEST(test_name),
 *     which prints "# test_name" on stderr first;
 *   - REQUIRE*(...) are like CHECK*(...) but `return;` from the (void) test
 *     function on failure, for steps the rest of the test depends on;
 *   - check_watchdog(seconds) aborts a hung test run with a summary line
 *     counting one extra failure.
 *
 * The counters are per translation unit (static) and atomic, so checks may
 * run in any thread, e.g. inside device callbacks on the server thread.  Use
 * the macros from the test's own .c file (the one that calls
 * check_summary()).
 */
#ifndef VFU_TEST_CHECK_H
#define VFU_TEST_CHECK_H

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_ulong check_passed_;
static atomic_ulong check_failed_;

static inline void
check_pass_(void)
{
    atomic_fetch_add(&check_passed_, 1);
}

static inline void check_fail_(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline void
check_fail_(const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s:%d: FAIL: %s\n", file, line, msg);
    fflush(stderr);
    atomic_fetch_add(&check_failed_, 1);
}

/* Records an unconditional failure with a printf-style message. */
#define FAIL(...) check_fail_(__FILE__, __LINE__, __VA_ARGS__)

/* Each CHECK* evaluates to 1 if the check passed, 0 otherwise. */
#define CHECK(cond)                                                                   \
    ({                                                                                \
        int check_ok_ = !!(cond);                                                     \
        if (check_ok_) {                                                              \
            check_pass_();                                                            \
        } else {                                                                      \
            check_fail_(__FILE__, __LINE__, "CHECK(%s) (errno %d: %s)", #cond, errno, \
                        strerror(errno));                                             \
        }                                                                             \
        check_ok_;                                                                    \
    })

/* Like CHECK, with a printf-style explanation on failure. */
#define CHECK_MSG(cond, ...)                                                   \
    ({                                                                         \
        int check_ok_ = !!(cond);                                              \
        if (check_ok_) {                                                       \
            check_pass_();                                                     \
        } else {                                                               \
            char check_m_[512];                                                \
            snprintf(check_m_, sizeof(check_m_), __VA_ARGS__);                 \
            check_fail_(__FILE__, __LINE__, "CHECK(%s): %s", #cond, check_m_); \
        }                                                                      \
        check_ok_;                                                             \
    })

/*
 * Equality compares both values converted to unsigned long long (so equal
 * negative values of signed types compare equal).  Ordering compares them
 * converted to long long.  Failures print both values in decimal and hex.
 */
#define CHECK_CMP_(a, b, op, T, name)                                                            \
    ({                                                                                           \
        T check_a_ = (T)(a);                                                                     \
        T check_b_ = (T)(b);                                                                     \
        int check_ok_ = (check_a_ op check_b_);                                                  \
        if (check_ok_) {                                                                         \
            check_pass_();                                                                       \
        } else {                                                                                 \
            check_fail_(__FILE__, __LINE__, name "(%s, %s): %lld (0x%llx) vs %lld (0x%llx)", #a, \
                        #b, (long long)check_a_, (unsigned long long)check_a_,                   \
                        (long long)check_b_, (unsigned long long)check_b_);                      \
        }                                                                                        \
        check_ok_;                                                                               \
    })

#define CHECK_EQ(a, b) CHECK_CMP_(a, b, ==, unsigned long long, "CHECK_EQ")
#define CHECK_NE(a, b) CHECK_CMP_(a, b, !=, unsigned long long, "CHECK_NE")
#define CHECK_LT(a, b) CHECK_CMP_(a, b, <, long long, "CHECK_LT")
#define CHECK_LE(a, b) CHECK_CMP_(a, b, <=, long long, "CHECK_LE")
#define CHECK_GT(a, b) CHECK_CMP_(a, b, >, long long, "CHECK_GT")
#define CHECK_GE(a, b) CHECK_CMP_(a, b, >=, long long, "CHECK_GE")

/* expr must be 0 (e.g. a vfu_* call or a client helper); prints errno. */
#define CHECK_OK(expr)                                                                           \
    ({                                                                                           \
        long long check_r_ = (long long)(expr);                                                  \
        int check_e_ = errno;                                                                    \
        int check_ok_ = (check_r_ == 0);                                                         \
        if (check_ok_) {                                                                         \
            check_pass_();                                                                       \
        } else {                                                                                 \
            check_fail_(__FILE__, __LINE__, "CHECK_OK(%s): returned %lld, errno %d (%s)", #expr, \
                        check_r_, check_e_, strerror(check_e_));                                 \
        }                                                                                        \
        check_ok_;                                                                               \
    })

/* expr must return -1 with errno == err (a libc/vfu-style failure). */
#define CHECK_ERRNO(expr, err)                                                         \
    ({                                                                                 \
        errno = 0;                                                                     \
        long long check_r_ = (long long)(expr);                                        \
        int check_e_ = errno;                                                          \
        int check_w_ = (err);                                                          \
        int check_ok_ = (check_r_ == -1 && check_e_ == check_w_);                      \
        if (check_ok_) {                                                               \
            check_pass_();                                                             \
        } else {                                                                       \
            check_fail_(__FILE__, __LINE__,                                            \
                        "CHECK_ERRNO(%s, %s): returned %lld, errno %d (%s), "          \
                        "wanted -1 and errno %d (%s)",                                 \
                        #expr, #err, check_r_, check_e_, strerror(check_e_), check_w_, \
                        strerror(check_w_));                                           \
        }                                                                              \
        check_ok_;                                                                     \
    })

/* Byte comparison; prints the first differing offset and bytes. */
#define CHECK_MEM(a, b, len)                                                                   \
    ({                                                                                         \
        const unsigned char *check_pa_ = (const unsigned char *)(a);                           \
        const unsigned char *check_pb_ = (const unsigned char *)(b);                           \
        size_t check_n_ = (size_t)(len);                                                       \
        size_t check_i_ = 0;                                                                   \
        while (check_i_ < check_n_ && check_pa_[check_i_] == check_pb_[check_i_])              \
            check_i_++;                                                                        \
        int check_ok_ = (check_i_ == check_n_);                                                \
        if (check_ok_) {                                                                       \
            check_pass_();                                                                     \
        } else {                                                                               \
            check_fail_(__FILE__, __LINE__,                                                    \
                        "CHECK_MEM(%s, %s, %zu): differ at offset %zu: "                       \
                        "0x%02x vs 0x%02x",                                                    \
                        #a, #b, check_n_, check_i_, check_pa_[check_i_], check_pb_[check_i_]); \
        }                                                                                      \
        check_ok_;                                                                             \
    })

/* String equality (NULL-safe). */
#define CHECK_STR(a, b)                                           \
    ({                                                            \
        const char *check_sa_ = (a);                              \
        const char *check_sb_ = (b);                              \
        int check_ok_ = (check_sa_ != NULL && check_sb_ != NULL)  \
                            ? strcmp(check_sa_, check_sb_) == 0   \
                            : check_sa_ == check_sb_;             \
        if (check_ok_) {                                          \
            check_pass_();                                        \
        } else {                                                  \
            check_fail_(__FILE__, __LINE__,                       \
                        "CHECK_STR(%s, %s): \"%s\" vs "           \
                        "\"%s\"",                                 \
                        #a, #b, check_sa_ ? check_sa_ : "(null)", \
                        check_sb_ ? check_sb_ : "(null)");        \
        }                                                         \
        check_ok_;                                                \
    })

/* `hay` contains `needle` (NULL-safe). */
#define CHECK_CONTAINS(hay, needle)                                                     \
    ({                                                                                  \
        const char *check_h_ = (hay);                                                   \
        const char *check_s_ = (needle);                                                \
        int check_ok_ =                                                                 \
            check_h_ != NULL && check_s_ != NULL && strstr(check_h_, check_s_) != NULL; \
        if (check_ok_) {                                                                \
            check_pass_();                                                              \
        } else {                                                                        \
            check_fail_(__FILE__, __LINE__,                                             \
                        "CHECK_CONTAINS(%s, %s): "                                      \
                        "\"%s\" lacks \"%s\"",                                          \
                        #hay, #needle, check_h_ ? check_h_ : "(null)",                  \
                        check_s_ ? check_s_ : "(null)");                                \
        }                                                                               \
        check_ok_;                                                                      \
    })

/* REQUIRE variants: return from the (void) test function on failure. */
#define REQUIRE(cond)     \
    do {                  \
        if (!CHECK(cond)) \
            return;       \
    } while (0)
#define REQUIRE_EQ(a, b)     \
    do {                     \
        if (!CHECK_EQ(a, b)) \
            return;          \
    } while (0)
#define REQUIRE_NE(a, b)     \
    do {                     \
        if (!CHECK_NE(a, b)) \
            return;          \
    } while (0)
#define REQUIRE_OK(expr)     \
    do {                     \
        if (!CHECK_OK(expr)) \
            return;          \
    } while (0)

/* Runs a `void fn(void)` test. */
#define RUN_TEST(fn)                    \
    do {                                \
        fprintf(stderr, "# %s\n", #fn); \
        fn();                           \
    } while (0)

static inline unsigned long
check_passed(void)
{
    return atomic_load(&check_passed_);
}

static inline unsigned long
check_failed(void)
{
    return atomic_load(&check_failed_);
}

/* Prints "N passed, M failed" on stdout; returns the exit code. */
static inline int
check_summary(void)
{
    unsigned long passed = check_passed();
    unsigned long failed = check_failed();

    fflush(stderr);
    printf("%lu passed, %lu failed\n", passed, failed);
    fflush(stdout);
    return failed == 0 ? 0 : 1;
}

/* Async-signal-safe decimal formatting for the watchdog. */
static inline size_t
check_fmt_ulong_(char *buf, unsigned long v)
{
    char tmp[24];
    size_t n = 0;
    size_t i;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (i = 0; i < n; i++) {
        buf[i] = tmp[n - 1 - i];
    }
    return n;
}

static inline void
check_watchdog_handler_(int sig)
{
    static const char why[] = "FAIL: watchdog timeout, test run aborted\n";
    char line[96];
    size_t n = 0;
    ssize_t w;

    (void)sig;
    w = write(STDERR_FILENO, why, sizeof(why) - 1);
    n += check_fmt_ulong_(line + n, atomic_load(&check_passed_));
    memcpy(line + n, " passed, ", 9);
    n += 9;
    n += check_fmt_ulong_(line + n, atomic_load(&check_failed_) + 1);
    memcpy(line + n, " failed\n", 8);
    n += 8;
    w = write(STDOUT_FILENO, line, n);
    (void)w;
    _exit(1);
}

/*
 * After `seconds`, print the summary (with one extra failure) and exit(1).
 * 0 disarms it.  Uses SIGALRM.
 */
static inline void
check_watchdog(unsigned seconds)
{
    signal(SIGALRM, check_watchdog_handler_);
    alarm(seconds);
}

#endif /* VFU_TEST_CHECK_H */
