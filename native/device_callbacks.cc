// The library's callbacks of a DeviceContext: each runs synchronously inside
// a library call (vfu_run_ctx mostly), calls its JS handler through
// napi_make_callback with the device's async context, so that queued
// process.nextTick and promise callbacks run between two accesses, and turns
// a JS exception into -1/errno for the library. The exceptions are kept and
// given to handlers.error() once the library has returned.
#include <time.h>

#include <cerrno>
#include <cstring>

#include "device_context.h"
#include "errors.h"
#include "js_call.h"

namespace vfio_user {

namespace {

// A slow-access threshold this many ticks of the coarse clock or more is
// timed with it: reading it costs a few ns, the precise clock about 60 ns
// on a VM, twice per access.
constexpr uint64_t kCoarseTicksPerThreshold = 20;

uint64_t Ns(const timespec& ts) {
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t NowNs(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return Ns(ts);
}

// 0 when the clock does not say.
uint64_t ResolutionNs(clockid_t clock) {
  timespec ts;
  return clock_getres(clock, &ts) == 0 ? Ns(ts) : 0;
}

}  // namespace

DeviceContext* DeviceContext::From(vfu_ctx_t* ctx) {
  return static_cast<DeviceContext*>(vfu_get_private(ctx));
}

bool DeviceContext::CanCallJs() const {
  return !js_disabled_ && !addon_->tearing_down;
}

int DeviceContext::CallHandler(Handler h, size_t argc, const napi_value* argv, napi_value* result) {
  napi_value fn, receiver, exception;
  if (napi_get_reference_value(env_, handlers_fn_[h], &fn) != napi_ok ||
      napi_get_reference_value(env_, handlers_, &receiver) != napi_ok) {
    return EIO;
  }
  if (CallJs(env_, async_context_, receiver, fn, argc, argv, result, &exception)) {
    return 0;
  }
  if (exception == nullptr) {
    return EIO;  // e.g. the environment is stopping and runs no more JS
  }
  int err = ErrnoOfException(Napi::Env(env_), exception);
  KeepError(exception);
  return err;
}

void DeviceContext::KeepError(napi_value error) {
  napi_ref ref;
  napi_value object = ExceptionAsObject(Napi::Env(env_), error);
  if (object != nullptr && napi_create_reference(env_, object, 1, &ref) == napi_ok) {
    errors_.push_back(ref);
  }
}

bool DeviceContext::ReportErrors(bool from_js) {
  if (errors_.empty()) {
    return true;
  }
  // The error handler may cause more errors (close() from it, say): those
  // are reported by the nested call.
  std::vector<napi_ref> errors;
  errors.swap(errors_);
  bool ok = true;
  for (napi_ref ref : errors) {
    napi_value error = nullptr;
    napi_get_reference_value(env_, ref, &error);
    napi_delete_reference(env_, ref);
    if (!ok || error == nullptr || !CanCallJs()) {
      continue;
    }
    HandleScope scope(env_);
    napi_value thrown = error;
    if (HasHandler(kError)) {
      napi_value fn, receiver;
      napi_get_reference_value(env_, handlers_fn_[kError], &fn);
      napi_get_reference_value(env_, handlers_, &receiver);
      if (CallJs(env_, async_context_, receiver, fn, 1, &error, nullptr, &thrown) ||
          thrown == nullptr) {
        continue;
      }
    }
    // Nobody took it, or the error handler threw: like an 'error' event
    // without a listener, it is thrown to the caller or, with no JS caller,
    // becomes an uncaught exception.
    if (from_js) {
      napi_throw(env_, thrown);
      ok = false;
    } else {
      napi_fatal_exception(env_, thrown);
    }
  }
  return ok;
}

// ---------------------------------------------------------------- region access

template <int kRegion>
ssize_t DeviceContext::RegionAccessCb(vfu_ctx_t* ctx, char* buf, size_t count, loff_t offset,
                                      bool is_write) {
  return From(ctx)->RegionAccess(kRegion, buf, count, static_cast<uint64_t>(offset), is_write);
}

vfu_region_access_cb_t* const DeviceContext::kRegionCallbacks[VFU_PCI_DEV_NUM_REGIONS] = {
    RegionAccessCb<0>, RegionAccessCb<1>, RegionAccessCb<2>, RegionAccessCb<3>, RegionAccessCb<4>,
    RegionAccessCb<5>, RegionAccessCb<6>, RegionAccessCb<7>, RegionAccessCb<8>,
};

ssize_t DeviceContext::RegionAccess(int region, char* buf, size_t count, uint64_t offset,
                                    bool is_write) {
  if (!CanCallJs() || !HasHandler(kRegionAccess)) {
    errno = EIO;
    return -1;
  }
  HandleScope scope(env_);
  if (!scope.ok()) {
    errno = EIO;
    return -1;
  }
  napi_value argv[4] = {};
  bool small = count <= kIoViewBytes;
  void* copy = nullptr;  // set when the data had to be copied into JS memory
  int err = 0;
  if (small) {
    // Through the preallocated views: no allocation per access.
    if (is_write) {
      std::memcpy(io_bytes_, buf, count);
    } else {
      std::memset(io_bytes_, 0, count);
    }
    napi_get_reference_value(env_, io_views_[count], &argv[2]);
  } else {
    // A view onto the message itself, detached after the call so that JS
    // keeps no pointer into memory the library reuses.
    napi_status status = napi_create_external_buffer(env_, count, buf, nullptr, nullptr, &argv[2]);
    if (status == napi_no_external_buffers_allowed) {
      status = napi_create_buffer_copy(env_, count, buf, &copy, &argv[2]);
    }
    if (status != napi_ok) {
      err = EIO;
    }
  }
  if (err == 0) {
    napi_create_uint32(env_, static_cast<uint32_t>(region), &argv[0]);
    napi_create_int64(env_, static_cast<int64_t>(offset), &argv[1]);
    napi_get_boolean(env_, is_write, &argv[3]);
    uint64_t started = slow_access_ns_ != 0 ? NowNs(slow_clock_) : 0;
    err = CallHandler(kRegionAccess, 4, argv, nullptr);
    if (slow_access_ns_ != 0) {
      uint64_t took = NowNs(slow_clock_) - started;
      if (took >= slow_access_ns_) {
        ReportSlowAccess(argv[0], argv[3], took);
      }
    }
  }
  if (err == 0 && !is_write) {
    if (small) {
      std::memcpy(buf, io_bytes_, count);
    } else if (copy != nullptr) {
      std::memcpy(buf, copy, count);
    }
  }
  if (!small && copy == nullptr && argv[2] != nullptr) {
    DetachView(env_, argv[2]);
  }
  if (err != 0) {
    errno = err;
    return -1;
  }
  return static_cast<ssize_t>(count);
}

Napi::Value DeviceContext::SetSlowAccessMs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !(info[0].As<Napi::Number>().DoubleValue() >= 0)) {
    ThrowType(env, "setSlowAccessMs(ms): ms must be a number >= 0");
    return env.Undefined();
  }
  slow_access_ns_ = static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue() * 1e6);
  uint64_t tick = ResolutionNs(CLOCK_MONOTONIC_COARSE);
  bool coarse_will_do = tick != 0 && slow_access_ns_ >= kCoarseTicksPerThreshold * tick;
  slow_clock_ = coarse_will_do ? CLOCK_MONOTONIC_COARSE : CLOCK_MONOTONIC;
  return env.Undefined();
}

void DeviceContext::ReportSlowAccess(napi_value region, napi_value is_write, uint64_t took_ns) {
  if (!CanCallJs() || !HasHandler(kSlowAccess)) {
    return;
  }
  napi_value argv[3] = {region, is_write, nullptr};
  if (napi_create_double(env_, static_cast<double>(took_ns) / 1e6, &argv[2]) == napi_ok) {
    CallHandler(kSlowAccess, 3, argv, nullptr);
  }
}

// -------------------------------------------------------------- reset, quiesce

int DeviceContext::ResetCb(vfu_ctx_t* ctx, vfu_reset_type_t type) {
  DeviceContext* self = From(ctx);
  if (!self->CanCallJs() || !self->HasHandler(kReset)) {
    return 0;
  }
  HandleScope scope(self->env_);
  napi_value argv[1];
  napi_create_uint32(self->env_, static_cast<uint32_t>(type), &argv[0]);
  int err = self->CallHandler(kReset, 1, argv, nullptr);
  if (err != 0) {
    errno = err;
    return -1;
  }
  return 0;
}

int DeviceContext::QuiesceCb(vfu_ctx_t* ctx) {
  DeviceContext* self = From(ctx);
  if (!self->CanCallJs()) {
    return 0;
  }
  HandleScope scope(self->env_);
  int err = self->CallHandler(kQuiesce, 0, nullptr, nullptr);
  if (err != 0) {
    // EBUSY would park the request for a vfu_device_quiesced() that no JS
    // API calls: the quiesce handler is synchronous.
    errno = err == EBUSY ? EIO : err;
    return -1;
  }
  return 0;
}

// ------------------------------------------------------------------------ irqs

template <int kType>
void DeviceContext::IrqStateCb(vfu_ctx_t* ctx, uint32_t start, uint32_t count, bool mask) {
  DeviceContext* self = From(ctx);
  if (!self->CanCallJs() || !self->HasHandler(kIrqState)) {
    return;
  }
  HandleScope scope(self->env_);
  napi_value argv[4];
  napi_create_uint32(self->env_, kType, &argv[0]);
  napi_create_uint32(self->env_, start, &argv[1]);
  napi_create_uint32(self->env_, count, &argv[2]);
  napi_get_boolean(self->env_, mask, &argv[3]);
  self->CallHandler(kIrqState, 4, argv, nullptr);
}

vfu_dev_irq_state_cb_t* const DeviceContext::kIrqStateCallbacks[VFU_DEV_NUM_IRQS] = {
    IrqStateCb<0>, IrqStateCb<1>, IrqStateCb<2>, IrqStateCb<3>, IrqStateCb<4>,
};

// ------------------------------------------------------------------------- dma

void DeviceContext::DmaRegisterCb(vfu_ctx_t* ctx, vfu_dma_info_t* info) {
  DeviceContext* self = From(ctx);
  if (!self->CanCallJs() || !self->HasHandler(kDmaRegister)) {
    return;
  }
  napi_env env = self->env_;
  HandleScope scope(env);
  uint64_t iova = reinterpret_cast<uintptr_t>(info->iova.iov_base);
  size_t length = info->iova.iov_len;
  napi_value argv[4];
  napi_get_undefined(env, &argv[3]);
  if (info->vaddr != nullptr) {
    napi_value memory;
    napi_ref ref;
    if (napi_create_external_arraybuffer(env, info->vaddr, length, nullptr, nullptr, &memory) ==
            napi_ok &&
        napi_create_reference(env, memory, 1, &ref) == napi_ok) {
      // A mapping repeated exactly is registered again: the new buffer
      // replaces the old one.
      auto it = self->dma_buffers_.find(iova);
      if (it != self->dma_buffers_.end()) {
        self->DetachBuffer(&it->second);
        it->second = ref;
      } else {
        self->dma_buffers_.emplace(iova, ref);
      }
      argv[3] = memory;
    }
  }
  napi_create_double(env, static_cast<double>(iova), &argv[0]);
  napi_create_double(env, static_cast<double>(length), &argv[1]);
  napi_create_uint32(env, info->prot, &argv[2]);
  self->CallHandler(kDmaRegister, 4, argv, nullptr);
}

void DeviceContext::DmaUnregisterCb(vfu_ctx_t* ctx, vfu_dma_info_t* info) {
  DeviceContext* self = From(ctx);
  uint64_t iova = reinterpret_cast<uintptr_t>(info->iova.iov_base);
  HandleScope scope(self->env_);
  if (self->CanCallJs() && self->HasHandler(kDmaUnregister)) {
    napi_value argv[2];
    napi_create_double(self->env_, static_cast<double>(iova), &argv[0]);
    napi_create_double(self->env_, static_cast<double>(info->iova.iov_len), &argv[1]);
    self->CallHandler(kDmaUnregister, 2, argv, nullptr);
  }
  // The library unmaps the memory when this returns.
  auto it = self->dma_buffers_.find(iova);
  if (it != self->dma_buffers_.end()) {
    self->DetachBuffer(&it->second);
    self->dma_buffers_.erase(it);
  }
}

void DeviceContext::DmaTransferDoneCb(vfu_ctx_t* ctx, void* cookie, int error) {
  Transfer* transfer = static_cast<Transfer*>(cookie);
  transfer->context->FinishTransfer(transfer, error < 0 ? -error : error);
}

void DeviceContext::FinishTransfer(Transfer* transfer, int error) {
  if (CanCallJs()) {
    HandleScope scope(env_);
    napi_value fn, receiver, argv[1], exception;
    if (napi_get_reference_value(env_, transfer->done, &fn) == napi_ok && fn != nullptr &&
        // napi_make_callback wants an object to call on.
        napi_get_reference_value(env_, handlers_, &receiver) == napi_ok &&
        napi_create_int32(env_, error, &argv[0]) == napi_ok &&
        !CallJs(env_, async_context_, receiver, fn, 1, argv, nullptr, &exception) &&
        exception != nullptr) {
      KeepError(exception);
    }
  }
  // While the environment is torn down nothing is called; the references
  // only go.
  napi_delete_reference(env_, transfer->data);
  napi_delete_reference(env_, transfer->done);
  delete transfer;
}

// ------------------------------------------------------------------------- log

void DeviceContext::LogCb(vfu_ctx_t* ctx, int level, const char* message) {
  DeviceContext* self = From(ctx);
  if (!self->CanCallJs() || !self->HasHandler(kLog)) {
    return;
  }
  // The library logs some events after closing the connection: stop
  // watching that fd before JS runs and perhaps opens another with its number.
  if (self->started_) {
    self->DropStaleHandle();
  }
  HandleScope scope(self->env_);
  napi_value argv[2];
  napi_create_int32(self->env_, level, &argv[0]);
  if (napi_create_string_utf8(self->env_, message, NAPI_AUTO_LENGTH, &argv[1]) != napi_ok) {
    return;
  }
  self->CallHandler(kLog, 2, argv, nullptr);
}

}  // namespace vfio_user
