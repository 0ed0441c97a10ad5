// Reading JS arguments: numbers that must be integers in a range, with a
// TypeError (left pending) when they are not.
#ifndef VFIO_USER_NATIVE_ARGS_H
#define VFIO_USER_NATIVE_ARGS_H

#include <cmath>
#include <cstdint>
#include <string>

#include <napi.h>

namespace vfio_user {

// Largest integer a JS number holds exactly.
constexpr double kMaxSafeInteger = 9007199254740991.0;

// Reads info[index] as an integer in [min, max]; on failure throws a
// TypeError naming the argument and returns false.
inline bool IntegerArg(const Napi::CallbackInfo& info, size_t index, const char* name, double min,
                       double max, double* out) {
  Napi::Value value = info[index];
  if (value.IsNumber()) {
    double number = value.As<Napi::Number>().DoubleValue();
    if (std::floor(number) == number && number >= min && number <= max) {
      *out = number;
      return true;
    }
  }
  std::string message = std::string(name) + " must be an integer from " +
                        std::to_string(static_cast<int64_t>(min)) + " to " +
                        std::to_string(static_cast<uint64_t>(max));
  Napi::TypeError::New(info.Env(), message).ThrowAsJavaScriptException();
  return false;
}

inline bool Uint32Arg(const Napi::CallbackInfo& info, size_t index, const char* name,
                      uint32_t* out) {
  double number;
  if (!IntegerArg(info, index, name, 0, UINT32_MAX, &number)) {
    return false;
  }
  *out = static_cast<uint32_t>(number);
  return true;
}

inline bool IntArg(const Napi::CallbackInfo& info, size_t index, const char* name, int min, int max,
                   int* out) {
  double number;
  if (!IntegerArg(info, index, name, min, max, &number)) {
    return false;
  }
  *out = static_cast<int>(number);
  return true;
}

inline bool SizeArg(const Napi::CallbackInfo& info, size_t index, const char* name, uint64_t* out) {
  double number;
  if (!IntegerArg(info, index, name, 0, kMaxSafeInteger, &number)) {
    return false;
  }
  *out = static_cast<uint64_t>(number);
  return true;
}

// A file descriptor argument: an integer from 0 to INT32_MAX.
inline bool FdArg(const Napi::CallbackInfo& info, size_t index, int* out) {
  return IntArg(info, index, "fd", 0, INT32_MAX, out);
}

}  // namespace vfio_user

#endif
