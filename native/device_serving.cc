// Serving a device: the uv_poll_t on the library's poll fd, attaching a
// client and running the library until it has nothing more to do.
#include <cerrno>

#include "device_context.h"
#include "errors.h"

namespace vfio_user {

namespace {

// Consecutive poll errors, with nothing served in between, after which a
// device stops polling instead of spinning on a broken fd.
constexpr int kMaxRepeatedPollErrors = 3;

}  // namespace

Napi::Value DeviceContext::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env, "start") || started_) {
    return env.Undefined();
  }
  if (!realized_) {
    ThrowErrno(env, EINVAL, "start (realize() first)");
    return env.Undefined();
  }
  poll_fd_ = vfu_get_poll_fd(ctx_);
  int err = poll_.Watch(poll_fd_, UV_READABLE, true);
  if (err != 0) {
    ThrowErrno(env, -err, "uv_poll_start");
    return env.Undefined();
  }
  started_ = true;
  // Serving keeps the object alive (and the uv handle keeps the loop alive)
  // until close().
  Ref();
  return env.Undefined();
}

void DeviceContext::OnPoll(void* arg, int status, int events) {
  DeviceContext* self = static_cast<DeviceContext*>(arg);
  napi_handle_scope scope;
  if (napi_open_handle_scope(self->env_, &scope) != napi_ok) {
    return;
  }
  self->Serve(status);
  napi_close_handle_scope(self->env_, scope);
}

void DeviceContext::Serve(int status) {
  if (ctx_ == nullptr || close_requested_) {
    return;
  }
  // The poll fd changes at accept, attach failure and disconnect, and the
  // library has closed the old one: the old handle goes at once, before any
  // JS can open a file that reuses the number, and a new handle is made at
  // the end even if the new fd has the old number.
  bool fd_changed = false;
  bool progress = false;
  auto note_fd = [&]() {
    if (DropStaleHandle()) {
      fd_changed = true;
    }
  };

  Enter();
  while (!close_requested_) {
    if (!connected_) {
      int ret = vfu_attach_ctx(ctx_);
      int err = errno;
      note_fd();
      if (ret < 0) {
        if (err != EAGAIN) {
          // The client is gone; keep listening. One that hung up before
          // negotiating (a probe for a stale socket, say) is no error.
          if (err != ENOTCONN && err != ECONNRESET) {
            KeepError(ErrnoError(Napi::Env(env_), err, "vfu_attach_ctx"));
          }
          fd_changed = true;
          progress = true;
        }
        break;
      }
      connected_ = true;
      progress = true;
      if (CanCallJs() && HasHandler(kConnect)) {
        CallHandler(kConnect, 0, nullptr, nullptr);
      }
      continue;
    }
    int ret = vfu_run_ctx(ctx_);
    int err = errno;
    note_fd();
    if (ret >= 0) {
      // It served every request there was (its last receive found nothing,
      // or the client is not taking replies): calling it again would only
      // cost one more recvmsg that fails with EAGAIN. The poll fd is level
      // triggered and wakes us for whatever comes next.
      progress = progress || ret > 0;
      break;
    }
    if (err == ENOTCONN) {
      // The library has reset the device and closed the connection; another
      // client may already be waiting.
      connected_ = false;
      fd_changed = true;
      progress = true;
      if (CanCallJs() && HasHandler(kDisconnect)) {
        CallHandler(kDisconnect, 0, nullptr, nullptr);
      }
      continue;
    }
    if (err != EAGAIN) {
      KeepError(ErrnoError(Napi::Env(env_), err, "vfu_run_ctx"));
    }
    break;
  }
  Leave(false);
  if (ctx_ == nullptr) {
    return;  // closed by a handler
  }

  if (status < 0 && !progress) {
    if (++repeated_poll_errors_ >= kMaxRepeatedPollErrors) {
      poll_.Stop();
      KeepError(ErrnoError(Napi::Env(env_), -status, "uv_poll (serving stopped)"));
      ReportErrors(false);
      return;
    }
  } else {
    repeated_poll_errors_ = 0;
  }
  Rearm(fd_changed);
}

bool DeviceContext::DropStaleHandle() {
  int fd = vfu_get_poll_fd(ctx_);
  if (fd == poll_fd_) {
    return false;
  }
  poll_fd_ = fd;
  poll_.Close();
  return true;
}

void DeviceContext::Rearm(bool renew) {
  if (poll_.watching() && !renew && poll_.fd() == poll_fd_) {
    return;
  }
  int err = poll_.Watch(poll_fd_, UV_READABLE, renew);
  if (err != 0) {
    KeepError(ErrnoError(Napi::Env(env_), -err, "uv_poll_start"));
    ReportErrors(false);
  }
}

}  // namespace vfio_user
