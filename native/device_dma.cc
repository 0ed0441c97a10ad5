// DMA a device starts: dmaTransfer, through the library's messages.
#include <cerrno>
#include <vector>

#include <sys/mman.h>

#ifdef VFIO_USER_EXT
#include <libvfio-user-ext.h>
#endif

#include "args.h"
#include "device_context.h"
#include "errors.h"

namespace vfio_user {

Napi::Value DeviceContext::DmaTransfer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t iova;
  if (!CheckOpen(env, "dmaTransfer") || !SizeArg(info, 0, "iova", &iova)) {
    return env.Undefined();
  }
  if (!info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowType(env, "data must be a Uint8Array");
    return env.Undefined();
  }
  if (!info[3].IsFunction()) {
    ThrowType(env, "done must be a function");
    return env.Undefined();
  }
  Napi::Uint8Array data = info[1].As<Napi::Uint8Array>();
  bool is_write = info[2].ToBoolean().Value();
  size_t length = data.ElementLength();
  uint8_t* bytes = data.Data();
#ifdef VFIO_USER_EXT
  // Started now, finished from a later vfu_run_ctx (or the context's end):
  // the data and the callback stay referenced until then.
  Transfer* transfer = new Transfer{this, nullptr, nullptr};
  napi_create_reference(env, data, 1, &transfer->data);
  napi_create_reference(env, info[3], 1, &transfer->done);
  int ret = CallLibrary(env, "vfu_ext_dma_transfer", [&] {
    return FailWithErrno(
        vfu_ext_dma_transfer(ctx_, iova, length, bytes, is_write, DmaTransferDoneCb, transfer));
  });
  if (ret < 0) {
    napi_delete_reference(env, transfer->data);
    napi_delete_reference(env, transfer->done);
    delete transfer;
  }
#else
  // The upstream API only blocks: vfu_sgl_read/vfu_sgl_write wait for the
  // client's reply. The caller gives ranges inside one mapping, which
  // vfu_addr_to_sgl describes in one entry.
  std::vector<uint8_t> sg(dma_sg_size());
  dma_sg_t* entry = reinterpret_cast<dma_sg_t*>(sg.data());
  Enter();
  int err = 0;
  int count = vfu_addr_to_sgl(ctx_, reinterpret_cast<vfu_dma_addr_t>(static_cast<uintptr_t>(iova)),
                              length, entry, 1, is_write ? PROT_WRITE : PROT_READ);
  if (count != 1) {
    err = count == -1 ? errno : EINVAL;
  } else if ((is_write ? vfu_sgl_write(ctx_, entry, 1, bytes, 0)
                       : vfu_sgl_read(ctx_, entry, 1, bytes, 0)) < 0) {
    err = errno;
  }
  if (!Leave(true)) {
    return env.Undefined();
  }
  info[3].As<Napi::Function>().Call({Napi::Number::New(env, err)});
#endif
  return env.Undefined();
}

}  // namespace vfio_user
