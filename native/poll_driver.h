// A uv_poll_t on a file descriptor that may change: the device's poll fd is
// the listening socket, then the connection, then the listening socket again,
// and the library closes the old one itself. Every change gets a new handle;
// the old one is stopped at once (no callback after that) and freed in its
// close callback, which libuv runs later.
#ifndef VFIO_USER_NATIVE_POLL_DRIVER_H
#define VFIO_USER_NATIVE_POLL_DRIVER_H

#include <cstddef>

#include <uv.h>

namespace vfio_user {

// The uv handles of one Node environment that are not closed yet, so that
// the environment's teardown can wait for their close callbacks.
class HandleCount {
 public:
  using ZeroCallback = void (*)(void* arg);
  void Opened() { ++open_; }
  void Closed();
  size_t open() const { return open_; }
  // Calls cb(arg) once, when no handle is left (at once if none is open).
  void WhenZero(ZeroCallback cb, void* arg);

 private:
  size_t open_ = 0;
  ZeroCallback on_zero_ = nullptr;
  void* on_zero_arg_ = nullptr;
};

class PollDriver {
 public:
  // Runs for events of the current handle only; status is 0 or a negative
  // libuv error (libuv stops the handle after an error).
  using Callback = void (*)(void* owner, int status, int events);

  PollDriver(uv_loop_t* loop, HandleCount* count, Callback callback, void* owner);
  ~PollDriver();
  PollDriver(const PollDriver&) = delete;
  PollDriver& operator=(const PollDriver&) = delete;

  // Watches fd for events (UV_READABLE, UV_WRITABLE, ...). A different fd,
  // or renew (the same number now names another file), replaces the handle.
  // Returns 0 or a negative libuv error.
  int Watch(int fd, int events, bool renew);
  // Stops delivering events but keeps the handle.
  void Stop();
  // Stops and releases the handle; nothing is delivered after this returns.
  void Close();
  // Whether the handle keeps the event loop alive (it does by default).
  void SetRef(bool ref);

  bool watching() const { return watching_; }
  int fd() const { return fd_; }

 private:
  struct Handle {
    uv_poll_t poll;
    PollDriver* driver;  // nullptr once abandoned
    HandleCount* count;
  };
  static void OnEvent(uv_poll_t* poll, int status, int events);
  static void OnClosed(uv_handle_t* handle);

  uv_loop_t* loop_;
  HandleCount* count_;
  Callback callback_;
  void* owner_;
  Handle* handle_ = nullptr;
  int fd_ = -1;
  bool watching_ = false;
  bool ref_ = true;
};

}  // namespace vfio_user

#endif
