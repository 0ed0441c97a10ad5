// Errors the addon throws or reports: errno values turned into JS Errors
// with code / errno / syscall, and the errno a JS exception stands for.
#ifndef VFIO_USER_NATIVE_ERRORS_H
#define VFIO_USER_NATIVE_ERRORS_H

#include <cerrno>

#include <napi.h>

namespace vfio_user {

// The symbolic name of an errno value ("EINVAL"), or "E<number>".
const char* ErrnoName(int err, char* scratch, size_t scratch_len);

// An Error with message "<syscall>: <strerror> (<CODE>)", .code = "<CODE>",
// .errno = err (positive) and .syscall. Never throws.
Napi::Value ErrnoError(Napi::Env env, int err, const char* syscall);

// Throws ErrnoError(env, err, syscall) as a pending JS exception.
void ThrowErrno(Napi::Env env, int err, const char* syscall);

// A call returning -errno made to follow the library's usual convention:
// -1 with errno set, or ret itself when it is not negative.
inline int FailWithErrno(int ret) {
  if (ret < 0) {
    errno = -ret;
    return -1;
  }
  return ret;
}

// Throws a TypeError with the given message.
void ThrowType(Napi::Env env, const char* message);

// The errno a value thrown by JS stands for: its .errno when that is a
// positive integer, EIO otherwise.
int ErrnoOfException(Napi::Env env, napi_value exception);

// The thrown value as something handlers.error() can take: the value itself
// if it is an object, otherwise a new Error that describes it.
napi_value ExceptionAsObject(Napi::Env env, napi_value exception);

}  // namespace vfio_user

#endif
