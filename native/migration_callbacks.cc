// Migration for a DeviceContext: the library's transition, read_data and
// write_data callbacks, called synchronously inside vfu_run_ctx like the
// other callbacks, and what the TypeScript side needs to move the state the
// library itself keeps for the device (the emulated MSI-X table and PBA) and
// to report pages it wrote as dirty.
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "args.h"
#include "device_context.h"
#include "errors.h"
#include "js_call.h"

#ifdef VFIO_USER_EXT
#include <libvfio-user-ext.h>
#endif

namespace vfio_user {

Napi::Value DeviceContext::SetupMigration(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env, "setupMigration")) {
    return env.Undefined();
  }
  if (!HasHandler(kMigrationTransition) || !HasHandler(kMigrationRead) ||
      !HasHandler(kMigrationWrite)) {
    ThrowType(env,
              "migration needs the migrationTransition, migrationRead and "
              "migrationWrite handlers");
    return env.Undefined();
  }
  vfu_migration_callbacks_t callbacks = {};
  callbacks.version = VFU_MIGR_CALLBACKS_VERS;
  callbacks.transition = MigrationTransitionCb;
  callbacks.read_data = MigrationReadCb;
  callbacks.write_data = MigrationWriteCb;
  if (vfu_setup_device_migration_callbacks(ctx_, &callbacks) < 0) {
    ThrowErrno(env, errno, "vfu_setup_device_migration_callbacks");
  }
  return env.Undefined();
}

int DeviceContext::MigrationTransitionCb(vfu_ctx_t* ctx, vfu_migr_state_t state) {
  DeviceContext* self = From(ctx);
  if (!self->CanCallJs()) {
    errno = EIO;
    return -1;
  }
  napi_env env = self->env_;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    errno = EIO;
    return -1;
  }
  napi_value argv[1];
  napi_create_uint32(env, static_cast<uint32_t>(state), &argv[0]);
  int err = self->CallHandler(kMigrationTransition, 1, argv, nullptr);
  napi_close_handle_scope(env, scope);
  if (err != 0) {
    errno = err;
    return -1;
  }
  return 0;
}

ssize_t DeviceContext::MigrationReadCb(vfu_ctx_t* ctx, void* buf, uint64_t count) {
  return From(ctx)->MigrationData(kMigrationRead, buf, count);
}

ssize_t DeviceContext::MigrationWriteCb(vfu_ctx_t* ctx, void* buf, uint64_t count) {
  return From(ctx)->MigrationData(kMigrationWrite, buf, count);
}

ssize_t DeviceContext::MigrationData(Handler h, void* buf, uint64_t count) {
  if (!CanCallJs()) {
    errno = EIO;
    return -1;
  }
  napi_handle_scope scope;
  if (napi_open_handle_scope(env_, &scope) != napi_ok) {
    errno = EIO;
    return -1;
  }
  bool reading = h == kMigrationRead;
  napi_value view = nullptr;
  void* copy = nullptr;  // set when the runtime refuses external buffers
  // A view of the library's own buffer: read_data fills it in place, and
  // write_data's bytes are not copied. It is detached after the call so that
  // JS keeps no pointer into memory the library reuses.
  napi_status status = napi_create_external_buffer(env_, count, buf, nullptr, nullptr, &view);
  if (status == napi_no_external_buffers_allowed) {
    status = reading ? napi_create_buffer(env_, count, &copy, &view)
                     : napi_create_buffer_copy(env_, count, buf, &copy, &view);
  }
  ssize_t result = -1;
  int err = status == napi_ok ? 0 : EIO;
  napi_value returned = nullptr;
  if (err == 0) {
    err = CallHandler(h, 1, &view, &returned);
  }
  if (err == 0 && reading) {
    double produced = -1;
    napi_valuetype type;
    if (returned != nullptr && napi_typeof(env_, returned, &type) == napi_ok &&
        type == napi_number) {
      napi_get_value_double(env_, returned, &produced);
    }
    if (produced < 0 || produced > static_cast<double>(count) ||
        produced != static_cast<double>(static_cast<uint64_t>(produced))) {
      KeepError(ErrnoError(Napi::Env(env_), EIO,
                           "migrationRead (returned no byte count within the buffer)"));
      err = EIO;
    } else {
      result = static_cast<ssize_t>(produced);
      if (copy != nullptr) {
        std::memcpy(buf, copy, static_cast<size_t>(result));
      }
    }
  } else if (err == 0) {
    result = static_cast<ssize_t>(count);
  }
  if (view != nullptr && copy == nullptr) {
    DetachView(env_, view);
  }
  napi_close_handle_scope(env_, scope);
  if (err != 0) {
    errno = err;
    return -1;
  }
  return result;
}

Napi::Value DeviceContext::MarkDirty(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t iova, length;
  if (!CheckOpen(env, "markDirty") || !SizeArg(info, 0, "iova", &iova) ||
      !SizeArg(info, 1, "length", &length)) {
    return env.Undefined();
  }
  if (length == 0) {
    return env.Undefined();
  }
  // One entry per mapping the range crosses; asked again when it needs more.
  // A write usually stays in one or two mappings: their entries fit on the
  // stack, so the common call allocates nothing.
  alignas(8) uint8_t small[4 * 64];
  std::vector<uint8_t> large;
  size_t entries = sizeof(small) / dma_sg_size();
  for (;;) {
    uint8_t* storage = small;
    if (entries * dma_sg_size() > sizeof(small)) {
      large.resize(entries * dma_sg_size());
      storage = large.data();
    }
    dma_sg_t* sg = reinterpret_cast<dma_sg_t*>(storage);
    errno = 0;
    int ret = vfu_addr_to_sgl(ctx_, reinterpret_cast<vfu_dma_addr_t>(static_cast<uintptr_t>(iova)),
                              length, sg, entries, PROT_WRITE);
    if (ret >= 0) {
      vfu_sgl_mark_dirty(ctx_, sg, static_cast<size_t>(ret));
      return env.Undefined();
    }
    if (ret == -1 && errno != 0) {
      ThrowErrno(env, errno, "vfu_addr_to_sgl");
      return env.Undefined();
    }
    entries = static_cast<size_t>(-(ret + 1));
  }
}

Napi::Value DeviceContext::MsixTable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env, "msixTable")) {
    return env.Undefined();
  }
#ifdef VFIO_USER_EXT
  size_t length = 0;
  const uint8_t* table = vfu_ext_msix_table(ctx_, &length);
  return Napi::Buffer<uint8_t>::Copy(env, table, length);
#else
  ThrowErrno(env, ENOTSUP, "msixTable");
  return env.Undefined();
#endif
}

Napi::Value DeviceContext::RestoreMsix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env, "restoreMsix")) {
    return env.Undefined();
  }
  if (!info[0].IsTypedArray() || !info[1].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowType(env, "table and pending must be Uint8Arrays");
    return env.Undefined();
  }
#ifdef VFIO_USER_EXT
  Napi::Uint8Array table = info[0].As<Napi::Uint8Array>();
  Napi::Uint8Array pending = info[1].As<Napi::Uint8Array>();
  CallLibrary(env, "restoreMsix (table size or vector count)", [&] {
    return FailWithErrno(vfu_ext_msix_restore(ctx_, table.Data(), table.ElementLength(),
                                              pending.Data(), pending.ElementLength()));
  });
#else
  ThrowErrno(env, ENOTSUP, "restoreMsix");
#endif
  return env.Undefined();
}

}  // namespace vfio_user
