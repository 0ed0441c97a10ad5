// Errno values as JS Errors, and JS exceptions as errno values.
#include "errors.h"

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include <uv.h>

namespace vfio_user {

const char* ErrnoName(int err, char* scratch, size_t scratch_len) {
  // libuv's names first, so that codes match Node's own errors (ENOTSUP,
  // not its alias EOPNOTSUPP); libuv's error codes are negated errnos.
  uv_err_name_r(-err, scratch, scratch_len);
  if (std::strncmp(scratch, "Unknown", 7) != 0) {
    return scratch;
  }
#if defined(__GLIBC__) && defined(__GLIBC_PREREQ)
#if __GLIBC_PREREQ(2, 32)
  if (const char* name = strerrorname_np(err)) {
    return name;
  }
#endif
#endif
  std::snprintf(scratch, scratch_len, "E%d", err);
  return scratch;
}

Napi::Value ErrnoError(Napi::Env env, int err, const char* syscall) {
  char scratch[64];
  const char* code = ErrnoName(err, scratch, sizeof(scratch));
  char reason[256];
  // The GNU strerror_r returns the text, which may not be in reason.
  const char* text = strerror_r(err, reason, sizeof(reason));
  std::string message = std::string(syscall) + ": " + text + " (" + code + ")";

  napi_value code_value, message_value, error, number, name;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value) != napi_ok ||
      napi_create_string_utf8(env, message.c_str(), message.size(), &message_value) != napi_ok ||
      napi_create_error(env, code_value, message_value, &error) != napi_ok) {
    return env.Undefined();
  }
  if (napi_create_int32(env, err, &number) == napi_ok) {
    napi_set_named_property(env, error, "errno", number);
  }
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &name) == napi_ok) {
    napi_set_named_property(env, error, "syscall", name);
  }
  return Napi::Value(env, error);
}

void ThrowErrno(Napi::Env env, int err, const char* syscall) {
  Napi::Value error = ErrnoError(env, err, syscall);
  if (!error.IsUndefined()) {
    napi_throw(env, error);
  }
}

void ThrowType(Napi::Env env, const char* message) {
  napi_throw_type_error(env, nullptr, message);
}

// Clears whatever a failed property read left pending.
static void DropPendingException(napi_env env) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
  }
}

int ErrnoOfException(Napi::Env env, napi_value exception) {
  napi_valuetype type;
  if (exception == nullptr || napi_typeof(env, exception, &type) != napi_ok ||
      (type != napi_object && type != napi_function)) {
    return EIO;
  }
  // A getter on .errno may itself throw: that counts as no errno.
  napi_value value;
  if (napi_get_named_property(env, exception, "errno", &value) != napi_ok) {
    DropPendingException(env);
    return EIO;
  }
  double number;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number ||
      napi_get_value_double(env, value, &number) != napi_ok) {
    return EIO;
  }
  if (!(number >= 1 && number <= INT_MAX) || std::floor(number) != number) {
    return EIO;
  }
  return static_cast<int>(number);
}

napi_value ExceptionAsObject(Napi::Env env, napi_value exception) {
  napi_valuetype type = napi_undefined;
  if (exception != nullptr && napi_typeof(env, exception, &type) == napi_ok &&
      (type == napi_object || type == napi_function)) {
    return exception;
  }
  std::string message = "a handler threw a non-object value";
  napi_value text;
  if (exception != nullptr && type != napi_symbol &&
      napi_coerce_to_string(env, exception, &text) == napi_ok) {
    size_t length = 0;
    if (napi_get_value_string_utf8(env, text, nullptr, 0, &length) == napi_ok) {
      std::string value(length, '\0');
      napi_get_value_string_utf8(env, text, &value[0], length + 1, &length);
      message = "a handler threw " + value;
    }
  } else {
    DropPendingException(env);
  }
  napi_value message_value, error;
  if (napi_create_string_utf8(env, message.c_str(), message.size(), &message_value) != napi_ok ||
      napi_create_error(env, nullptr, message_value, &error) != napi_ok) {
    return exception;
  }
  if (exception != nullptr) {
    napi_set_named_property(env, error, "value", exception);
  }
  return error;
}

}  // namespace vfio_user
