// The addon's copyBytes export (see copy_bytes.cc).
#ifndef VFIO_USER_NATIVE_COPY_BYTES_H
#define VFIO_USER_NATIVE_COPY_BYTES_H

#include <napi.h>

namespace vfio_user {

Napi::Function CreateCopyBytes(Napi::Env env);

}  // namespace vfio_user

#endif
