// Interrupts: irqTrigger (the hot path, an own function of each object)
// and what the library says about the interrupt mode and each vector.
#include <cerrno>

#ifdef VFIO_USER_EXT
#include <libvfio-user-ext.h>
#endif

#include "args.h"
#include "device_context.h"
#include "errors.h"

namespace vfio_user {

void DeviceContext::ReleaseTriggerHandle(TriggerHandle* handle) {
  if (--handle->owners == 0) {
    delete handle;
  }
}

namespace {

// A JS number that is an integer from 0 to UINT32_MAX, read without the
// node-addon-api wrappers (their checks cost as much as the rest of a call).
bool FastUint32(napi_env env, napi_value value, uint32_t* out) {
  double number;
  if (napi_get_value_double(env, value, &number) != napi_ok || !(number >= 0) ||
      number > UINT32_MAX || static_cast<double>(static_cast<uint32_t>(number)) != number) {
    return false;
  }
  *out = static_cast<uint32_t>(number);
  return true;
}

}  // namespace

napi_value DeviceContext::IrqTriggerEntry(napi_env env, napi_callback_info raw) {
  size_t argc = 2;
  napi_value argv[2];
  void* data = nullptr;
  if (napi_get_cb_info(env, raw, &argc, argv, nullptr, &data) != napi_ok) {
    return nullptr;
  }
  DeviceContext* self = static_cast<TriggerHandle*>(data)->context;
  uint32_t vector;
  uint32_t type;
  if (self != nullptr && self->ctx_ != nullptr && !self->close_requested_ && argc >= 2 &&
      FastUint32(env, argv[0], &vector) && FastUint32(env, argv[1], &type)) {
    return self->TriggerIrq(env, vector, type);
  }
  // Something is wrong: the checked path says what.
  Napi::CallbackInfo info(env, raw);
  if (self == nullptr) {
    ThrowErrno(info.Env(), EBADF, "irqTrigger");
    return nullptr;
  }
  return self->IrqTrigger(info);
}

Napi::Value DeviceContext::IrqTrigger(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t vector;
  uint32_t type;
  if (!CheckOpen(env, "irqTrigger") || !Uint32Arg(info, 0, "vector", &vector) ||
      !Uint32Arg(info, 1, "type", &type)) {
    return env.Undefined();
  }
  return Napi::Value(env, TriggerIrq(env, vector, type));
}

napi_value DeviceContext::TriggerIrq(napi_env env, uint32_t vector, uint32_t type) {
  int ret = CallLibrary(Napi::Env(env), "vfu_irq_trigger", [&] {
#ifdef VFIO_USER_EXT
    return vfu_ext_irq_trigger(ctx_, static_cast<vfu_dev_irq_type>(type), vector);
#else
    // Upstream signals the type the client installed last, whatever type is asked for.
    return vfu_irq_trigger(ctx_, vector) == 0 ? 1 : -1;
#endif
  });
  napi_value result = nullptr;
  if (ret < 0) {
    napi_get_undefined(env, &result);
  } else {
    napi_get_boolean(env, ret > 0, &result);
  }
  return result;
}

Napi::Value DeviceContext::InterruptMode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env, "interruptMode")) {
    return env.Undefined();
  }
#ifdef VFIO_USER_EXT
  return Napi::Number::New(env, vfu_ext_irq_mode(ctx_));
#else
  ThrowErrno(env, ENOTSUP, "interruptMode");
  return env.Undefined();
#endif
}

Napi::Value DeviceContext::IrqVectorState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t type;
  uint32_t vector;
  if (!CheckOpen(env, "irqVectorState") || !Uint32Arg(info, 0, "type", &type) ||
      !Uint32Arg(info, 1, "vector", &vector)) {
    return env.Undefined();
  }
#ifdef VFIO_USER_EXT
  bool masked;
  bool pending;
  if (type >= VFU_DEV_NUM_IRQS ||
      vfu_ext_irq_vector_state(ctx_, static_cast<vfu_dev_irq_type>(type), vector, &masked,
                               &pending) < 0) {
    ThrowErrno(env, EINVAL, "irqVectorState");
    return env.Undefined();
  }
  return Napi::Number::New(env, (masked ? kVectorMasked : 0) | (pending ? kVectorPending : 0));
#else
  ThrowErrno(env, ENOTSUP, "irqVectorState");
  return env.Undefined();
#endif
}

}  // namespace vfio_user
