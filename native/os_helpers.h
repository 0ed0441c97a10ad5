// The addon's `os` export: memfd, eventfd, fd passing over UNIX sockets and
// shared mappings, for the vfio-user client and the tests.
#ifndef VFIO_USER_NATIVE_OS_HELPERS_H
#define VFIO_USER_NATIVE_OS_HELPERS_H

#include <napi.h>

namespace vfio_user {

// The `os` object with its functions (FdWatcher is added by the caller).
Napi::Object CreateOsHelpers(Napi::Env env);

}  // namespace vfio_user

#endif
