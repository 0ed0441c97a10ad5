/*
 * Migration as far as it exists: registering the callbacks, and the
 * migration commands answering EINVAL without migration and ENOTSUP with it
 * (the protocol itself is not implemented yet), without upsetting the server.
 */
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "libvfio-user.h"
#include "private.h"

static int transition(vfu_ctx_t *ctx, vfu_migr_state_t state)
{
    (void)ctx;
    (void)state;
    return 0;
}

static ssize_t read_data(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    (void)ctx;
    (void)buf;
    (void)count;
    return 0;
}

static ssize_t write_data(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    (void)ctx;
    (void)buf;
    return (ssize_t)count;
}

static const vfu_migration_callbacks_t good_cbs = {
    .version = VFU_MIGR_CALLBACKS_VERS,
    .transition = transition,
    .read_data = read_data,
    .write_data = write_data,
};

static void test_setup_validation(void)
{
    char path[108];
    vfu_migration_callbacks_t cbs;
    vfu_ctx_t *ctx;

    vfu_test_sock_path(path, sizeof(path), "migr-setup");
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, 0, NULL, VFU_DEV_TYPE_PCI);
    REQUIRE(ctx != NULL);

    CHECK_ERRNO(vfu_setup_device_migration_callbacks(ctx, NULL), EINVAL);
    CHECK_ERRNO(vfu_setup_device_migration_callbacks(NULL, &good_cbs), EINVAL);
    cbs = good_cbs;
    cbs.version = 1;
    CHECK_ERRNO(vfu_setup_device_migration_callbacks(ctx, &cbs), EINVAL);
    cbs.version = VFU_MIGR_CALLBACKS_VERS + 1;
    CHECK_ERRNO(vfu_setup_device_migration_callbacks(ctx, &cbs), EINVAL);
    cbs = good_cbs;
    cbs.transition = NULL;
    CHECK_ERRNO(vfu_setup_device_migration_callbacks(ctx, &cbs), EINVAL);
    cbs = good_cbs;
    cbs.read_data = NULL;
    CHECK_ERRNO(vfu_setup_device_migration_callbacks(ctx, &cbs), EINVAL);
    cbs = good_cbs;
    cbs.write_data = NULL;
    CHECK_ERRNO(vfu_setup_device_migration_callbacks(ctx, &cbs), EINVAL);
    CHECK(!ctx->migration_enabled);

    /* The struct is copied: the caller's may change afterwards. */
    cbs = good_cbs;
    CHECK_OK(vfu_setup_device_migration_callbacks(ctx, &cbs));
    memset(&cbs, 0, sizeof(cbs));
    CHECK(ctx->migration_enabled);
    CHECK(ctx->migr_cbs.transition == transition);
    CHECK(ctx->migr_cbs.read_data == read_data);
    CHECK(ctx->migr_cbs.write_data == write_data);
    /* Also allowed after realize. */
    CHECK_OK(vfu_realize_ctx(ctx));
    CHECK_OK(vfu_setup_device_migration_callbacks(ctx, &good_cbs));
    vfu_destroy_ctx(ctx);
}

/* Requests with a raw payload; returns the reply's errno (0 on success). */
static int raw(struct vfu_test_client *c, uint16_t cmd, const void *p, size_t len)
{
    return vfu_test_request(c, cmd, p, len, NULL, 0, NULL, 0, NULL, NULL, NULL);
}

static void check_serving(struct vfu_test_client *c)
{
    struct vfio_user_device_info info;

    memset(&info, 0, sizeof(info));
    CHECK_EQ(vfu_test_device_get_info(c, &info), 0);
    CHECK_EQ(info.num_regions, VFU_PCI_DEV_NUM_REGIONS);
}

static void run_commands(bool with_migration)
{
    char path[108];
    struct vfu_test_server srv;
    struct vfu_test_client c;
    uint8_t reply[64];
    size_t len = 0;
    uint32_t state = 0;
    uint8_t buf[16];
    uint32_t got = 0;
    const uint8_t short_payload[4] = { 8, 0, 0, 0 };
    const int want = with_migration ? ENOTSUP : EINVAL;
    vfu_ctx_t *ctx;

    vfu_test_sock_path(path, sizeof(path), with_migration ? "migr" : "no-migr");
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, NULL,
                         VFU_DEV_TYPE_PCI);
    REQUIRE(ctx != NULL);
    vfu_setup_log(ctx, vfu_test_log_stderr, LOG_DEBUG);
    if (with_migration) {
        CHECK_OK(vfu_setup_device_migration_callbacks(ctx, &good_cbs));
    }
    CHECK_OK(vfu_realize_ctx(ctx));
    REQUIRE_OK(vfu_test_server_start(&srv, ctx));
    REQUIRE_OK(vfu_test_client_open(&c, path));

    CHECK_EQ(vfu_test_device_feature(&c, 16, VFIO_DEVICE_FEATURE_GET |
                                     VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0,
                                     reply, sizeof(reply), &len), want);
    CHECK_EQ(vfu_test_device_feature(&c, 8, VFIO_DEVICE_FEATURE_PROBE |
                                     VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, NULL, 0,
                                     reply, sizeof(reply), &len), want);
    CHECK_EQ(vfu_test_mig_get_state(&c, &state), want);
    CHECK_EQ(vfu_test_mig_set_state(&c, VFIO_USER_DEVICE_STATE_STOP), want);
    CHECK_EQ(vfu_test_mig_data_read(&c, sizeof(buf), buf, &got), want);
    CHECK_EQ(vfu_test_mig_data_write(&c, buf, sizeof(buf)), want);
    /* Shorter than the feature header: malformed either way. */
    CHECK_EQ(raw(&c, VFIO_USER_DEVICE_FEATURE, short_payload,
                 sizeof(short_payload)), EINVAL);
    check_serving(&c);

    vfu_test_client_close(&c);
    CHECK_EQ(vfu_test_server_run_errors(&srv), 0);
    vfu_test_server_stop(&srv);
    vfu_destroy_ctx(ctx);
}

static void test_commands_without_migration(void)
{
    run_commands(false);
}

static void test_commands_with_migration(void)
{
    run_commands(true);
}

int main(void)
{
    check_watchdog(60);
    RUN_TEST(test_setup_validation);
    RUN_TEST(test_commands_without_migration);
    RUN_TEST(test_commands_with_migration);
    return check_summary();
}
