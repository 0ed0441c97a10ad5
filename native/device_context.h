// DeviceContext: one libvfio-user context (one emulated device on one
// socket), driven on the JS thread by a uv_poll_t on the library's poll fd,
// with the library's callbacks calling the JS handlers synchronously.
#ifndef VFIO_USER_NATIVE_DEVICE_CONTEXT_H
#define VFIO_USER_NATIVE_DEVICE_CONTEXT_H

#include <time.h>

#include <cstdint>
#include <map>
#include <vector>

#include <napi.h>

#include <libvfio-user.h>

#include "addon_data.h"
#include "errors.h"
#include "poll_driver.h"

namespace vfio_user {

class DeviceContext;

// One DMA_READ/DMA_WRITE transfer in flight: the JS data it reads into or
// writes from, and the callback told when it is done, both kept alive
// until then.
struct Transfer {
  DeviceContext* context;
  napi_ref data;
  napi_ref done;
};

// What the irqTrigger function of a DeviceContext holds instead of
// unwrapping its receiver on every call. Owned by the context and the
// function together: whichever the garbage collector takes last frees it.
struct TriggerHandle {
  DeviceContext* context;
  int owners;
};

// Accesses of up to this many bytes go through the preallocated ioViews.
constexpr size_t kIoViewBytes = 64;

class DeviceContext : public Napi::ObjectWrap<DeviceContext> {
 public:
  static Napi::Function Define(Napi::Env env);

  explicit DeviceContext(const Napi::CallbackInfo& info);
  ~DeviceContext() override;

  // Closes without calling any JS: the environment is going away.
  void CloseForTeardown();

 private:
  // The JS handlers, looked up once at construction.
  enum Handler {
    kRegionAccess,
    kReset,
    kIrqState,
    kDmaRegister,
    kDmaUnregister,
    kConnect,
    kDisconnect,
    kLog,
    kError,
    kQuiesce,
    kMigrationTransition,
    kMigrationRead,
    kMigrationWrite,
    kSlowAccess,
    kHandlerCount,
  };
  static const char* const kHandlerNames[kHandlerCount];
  // irqVectorState()'s bits.
  static constexpr int kVectorMasked = 1;
  static constexpr int kVectorPending = 2;

  // JS methods.
  Napi::Value PciInit(const Napi::CallbackInfo& info);
  Napi::Value SetIds(const Napi::CallbackInfo& info);
  Napi::Value SetClass(const Napi::CallbackInfo& info);
  Napi::Value SetRevision(const Napi::CallbackInfo& info);
  Napi::Value SetupRegion(const Napi::CallbackInfo& info);
  Napi::Value AddCapability(const Napi::CallbackInfo& info);
  Napi::Value SetupIrqs(const Napi::CallbackInfo& info);
  Napi::Value SetupDma(const Napi::CallbackInfo& info);
  // vfu_create_ioeventfd(region, fd, offset, size, flags, datamatch).
  Napi::Value CreateIoeventfd(const Napi::CallbackInfo& info);
  Napi::Value SetLogLevel(const Napi::CallbackInfo& info);
  // setSlowAccessMs(ms): region handlers that run this long are reported
  // to handlers.slowAccess (device_callbacks.cc).
  Napi::Value SetSlowAccessMs(const Napi::CallbackInfo& info);
  Napi::Value Realize(const Napi::CallbackInfo& info);
  Napi::Value ConfigSpace(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value IrqTrigger(const Napi::CallbackInfo& info);
  // irqTrigger(vector), an own function of each object (the hot path of
  // interrupts): it reaches the context through its TriggerHandle.
  static napi_value IrqTriggerEntry(napi_env env, napi_callback_info info);
  // Signals a vector once the arguments are checked: true, false (not the
  // active type), or undefined with the library's error thrown.
  napi_value TriggerIrq(napi_env env, uint32_t vector, uint32_t type);
  static void ReleaseTriggerHandle(TriggerHandle* handle);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value GetConnected(const Napi::CallbackInfo& info);
  // The interrupt type the function signals (vfu_dev_irq_type).
  Napi::Value InterruptMode(const Napi::CallbackInfo& info);
  // A vector's kVectorMasked | kVectorPending bits.
  Napi::Value IrqVectorState(const Napi::CallbackInfo& info);
  // Migration (migration_callbacks.cc).
  Napi::Value SetupMigration(const Napi::CallbackInfo& info);
  Napi::Value MarkDirty(const Napi::CallbackInfo& info);
  Napi::Value MsixTable(const Napi::CallbackInfo& info);
  Napi::Value RestoreMsix(const Napi::CallbackInfo& info);
  Napi::Value DmaTransfer(const Napi::CallbackInfo& info);
  Napi::Value DirtyGranule(const Napi::CallbackInfo& info);

  // Throws EBADF if closed; true if usable.
  bool CheckOpen(Napi::Env env, const char* method);
  // Throws EINVAL if the config space does not exist yet.
  vfu_pci_config_space_t* RequireConfigSpace(Napi::Env env, const char* syscall);

  // One library call that may call handlers, between Enter() and Leave():
  // call() returns what the library does, negative on failure with errno
  // set, and that errno is thrown named syscall (unless a handler's error
  // is thrown already). Returns call()'s result.
  template <typename Call>
  auto CallLibrary(Napi::Env env, const char* syscall, Call call) -> decltype(call()) {
    Enter();
    auto ret = call();
    int err = errno;
    if (Leave(true) && ret < 0) {
      ThrowErrno(env, err, syscall);
    }
    return ret;
  }
  // Every library call that may call a handler is bracketed by these.
  void Enter();
  // Destroys the context if a handler asked to close it, then reports the
  // handlers' exceptions; false if handlers.error() itself threw.
  bool Leave(bool from_js);

  // Serving.
  static void OnPoll(void* self, int status, int events);
  void Serve(int status);
  // Closes the poll handle if the library's poll fd is no longer the one it
  // watches (the library closed that fd); true if it did.
  bool DropStaleHandle();
  // Watches the current poll fd (a new handle when it changed).
  void Rearm(bool renew);
  void Destroy();

  // Calling JS from the library's callbacks (device_callbacks.cc).
  bool CanCallJs() const;
  bool HasHandler(Handler h) const { return !handlers_fn_[h].IsEmpty(); }
  // Calls a handler via napi_make_callback with the device's async context.
  // On a JS exception: keeps it for handlers.error() and returns its errno;
  // otherwise returns 0. result may be null.
  int CallHandler(Handler h, size_t argc, const napi_value* argv, napi_value* result);
  void KeepError(napi_value error);
  // Calls handlers.error() for every kept error. Returns false if the error
  // handler itself threw; that exception is then pending when from_js,
  // otherwise reported as an uncaught exception.
  bool ReportErrors(bool from_js);
  void DetachBuffer(napi_ref* ref);
  void DetachAllBuffers();

  static DeviceContext* From(vfu_ctx_t* ctx);
  template <int kRegion>
  static ssize_t RegionAccessCb(vfu_ctx_t* ctx, char* buf, size_t count, loff_t offset,
                                bool is_write);
  ssize_t RegionAccess(int region, char* buf, size_t count, uint64_t offset, bool is_write);
  // Tells handlers.slowAccess that a region handler ran took_ns.
  void ReportSlowAccess(napi_value region, napi_value is_write, uint64_t took_ns);
  static int ResetCb(vfu_ctx_t* ctx, vfu_reset_type_t type);
  static int QuiesceCb(vfu_ctx_t* ctx);
  template <int kType>
  static void IrqStateCb(vfu_ctx_t* ctx, uint32_t start, uint32_t count, bool mask);
  static void DmaRegisterCb(vfu_ctx_t* ctx, vfu_dma_info_t* info);
  static void DmaUnregisterCb(vfu_ctx_t* ctx, vfu_dma_info_t* info);
  static void LogCb(vfu_ctx_t* ctx, int level, const char* message);
  static int MigrationTransitionCb(vfu_ctx_t* ctx, vfu_migr_state_t state);
  static ssize_t MigrationReadCb(vfu_ctx_t* ctx, void* buf, uint64_t count);
  static ssize_t MigrationWriteCb(vfu_ctx_t* ctx, void* buf, uint64_t count);
  // Calls a migration data handler with a view of the library's buffer
  // (detached after the call); the handler's result, or -1 with errno.
  ssize_t MigrationData(Handler h, void* buf, uint64_t count);
  // A DMA_READ/DMA_WRITE transfer finished (device_callbacks.cc).
  static void DmaTransferDoneCb(vfu_ctx_t* ctx, void* cookie, int error);
  // Calls a transfer's JS callback with an errno and lets its references go.
  void FinishTransfer(Transfer* transfer, int error);
  static vfu_region_access_cb_t* const kRegionCallbacks[VFU_PCI_DEV_NUM_REGIONS];
  static vfu_dev_irq_state_cb_t* const kIrqStateCallbacks[VFU_DEV_NUM_IRQS];

  napi_env env_;
  AddonData* addon_;
  vfu_ctx_t* ctx_ = nullptr;
  Napi::ObjectReference handlers_;
  Napi::FunctionReference handlers_fn_[kHandlerCount];
  napi_async_context async_context_ = nullptr;
  TriggerHandle* trigger_handle_ = nullptr;

  napi_ref io_views_[kIoViewBytes + 1] = {};
  uint8_t* io_bytes_ = nullptr;

  PollDriver poll_;
  int poll_fd_ = -1;
  bool started_ = false;  // serving; holds a reference to this object
  bool connected_ = false;
  bool realized_ = false;
  bool closed_ = false;
  bool close_requested_ = false;  // close() from a handler, done after it
  bool js_disabled_ = false;
  int in_library_ = 0;  // depth of library calls that call handlers
  int repeated_poll_errors_ = 0;
  // Region handlers running this long are reported; 0: never.
  uint64_t slow_access_ns_ = 0;
  clockid_t slow_clock_ = CLOCK_MONOTONIC;

  // Config space size as the library sizes it: by PCI type, or the config
  // region's own size when the device set one after pciInit.
  size_t config_size_ = 0;
  napi_ref config_buffer_ = nullptr;
  void* config_data_ = nullptr;
  napi_ref dirty_granule_buffer_ = nullptr;

  // External ArrayBuffers over mapped DMA regions, by IOVA.
  std::map<uint64_t, napi_ref> dma_buffers_;
  // JS exceptions from handlers, reported after the library returns.
  std::vector<napi_ref> errors_;
};

}  // namespace vfio_user

#endif
