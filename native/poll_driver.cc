// uv_poll_t re-arming: one live handle per driver, old ones closed
// asynchronously and never heard from again.
#include "poll_driver.h"

namespace vfio_user {

void HandleCount::Closed() {
  --open_;
  if (open_ == 0 && on_zero_ != nullptr) {
    ZeroCallback cb = on_zero_;
    on_zero_ = nullptr;
    cb(on_zero_arg_);
  }
}

void HandleCount::WhenZero(ZeroCallback cb, void* arg) {
  if (open_ == 0) {
    cb(arg);
    return;
  }
  on_zero_ = cb;
  on_zero_arg_ = arg;
}

PollDriver::PollDriver(uv_loop_t* loop, HandleCount* count, Callback callback, void* owner)
    : loop_(loop), count_(count), callback_(callback), owner_(owner) {}

PollDriver::~PollDriver() {
  Close();
}

int PollDriver::Watch(int fd, int events, bool renew) {
  if (handle_ != nullptr && (fd != fd_ || renew)) {
    Close();
  }
  if (handle_ == nullptr) {
    Handle* handle = new Handle();
    int err = uv_poll_init(loop_, &handle->poll, fd);
    if (err != 0) {
      delete handle;
      return err;
    }
    handle->poll.data = handle;
    handle->driver = this;
    handle->count = count_;
    count_->Opened();
    if (!ref_) {
      uv_unref(reinterpret_cast<uv_handle_t*>(&handle->poll));
    }
    handle_ = handle;
    fd_ = fd;
  }
  int err = uv_poll_start(&handle_->poll, events, OnEvent);
  watching_ = err == 0;
  return err;
}

void PollDriver::Stop() {
  if (handle_ != nullptr) {
    uv_poll_stop(&handle_->poll);
  }
  watching_ = false;
}

void PollDriver::Close() {
  if (handle_ == nullptr) {
    return;
  }
  // Stopped now, before the fd number can be reused by anything else.
  uv_poll_stop(&handle_->poll);
  handle_->driver = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&handle_->poll), OnClosed);
  handle_ = nullptr;
  fd_ = -1;
  watching_ = false;
}

void PollDriver::SetRef(bool ref) {
  ref_ = ref;
  if (handle_ != nullptr) {
    uv_handle_t* handle = reinterpret_cast<uv_handle_t*>(&handle_->poll);
    if (ref) {
      uv_ref(handle);
    } else {
      uv_unref(handle);
    }
  }
}

void PollDriver::OnEvent(uv_poll_t* poll, int status, int events) {
  Handle* handle = static_cast<Handle*>(poll->data);
  PollDriver* driver = handle->driver;
  if (driver == nullptr || driver->handle_ != handle) {
    return;  // a handle replaced since: its events are about a closed fd
  }
  if (status < 0) {
    driver->watching_ = false;  // libuv has stopped the handle
  }
  driver->callback_(driver->owner_, status, events);
}

void PollDriver::OnClosed(uv_handle_t* raw) {
  Handle* handle = static_cast<Handle*>(raw->data);
  HandleCount* count = handle->count;
  delete handle;
  count->Closed();
}

}  // namespace vfio_user
