// The `os` object: the system calls a vfio-user client and the tests need
// that Node itself does not offer: memfd, eventfd, SCM_RIGHTS fd passing on
// UNIX sockets, and shared mappings of an fd as an ArrayBuffer.
#include "os_helpers.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "args.h"
#include "errors.h"

namespace vfio_user {

namespace {

// The most fds one message may carry (the kernel's SCM_MAX_FD).
constexpr size_t kMaxFds = 253;

// Mappings made by mmap(), by address, so that munmap() can find the one
// behind an ArrayBuffer. Shared by all environments (worker threads).
struct Mapping {
  void* address;
  size_t length;
};
std::mutex mappings_mutex;
std::map<void*, Mapping*> mappings;

// Removes a mapping from the table; true if it was there (not yet unmapped).
bool ForgetMapping(Mapping* mapping) {
  std::lock_guard<std::mutex> lock(mappings_mutex);
  auto it = mappings.find(mapping->address);
  if (it == mappings.end() || it->second != mapping) {
    return false;
  }
  mappings.erase(it);
  return true;
}

// A garbage-collected mapping's ArrayBuffer: unmap unless munmap() did.
void FinalizeMapping(napi_env env, void* data, void* hint) {
  Mapping* mapping = static_cast<Mapping*>(hint);
  if (ForgetMapping(mapping)) {
    munmap(mapping->address, mapping->length);
  }
  delete mapping;
}

Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t size;
  if (!info[0].IsString()) {
    ThrowType(env, "name must be a string");
    return env.Undefined();
  }
  if (!SizeArg(info, 1, "size", &size)) {
    return env.Undefined();
  }
  std::string name = info[0].As<Napi::String>().Utf8Value();
  bool sealed = info[2].ToBoolean().Value();
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC | (sealed ? MFD_ALLOW_SEALING : 0));
  if (fd < 0) {
    ThrowErrno(env, errno, "memfd_create");
    return env.Undefined();
  }
  if (ftruncate(fd, static_cast<off_t>(size)) < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, "ftruncate");
    return env.Undefined();
  }
  // Whoever the fd is passed to can then neither shrink the file under our
  // mapping (a SIGBUS here) nor add seals of its own.
  if (sealed && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, "fcntl(F_ADD_SEALS)");
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

Napi::Value EventfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t initial = 0;
  if (!info[0].IsUndefined() && !Uint32Arg(info, 0, "initial", &initial)) {
    return env.Undefined();
  }
  int flags = EFD_CLOEXEC | (info[1].ToBoolean().Value() ? EFD_NONBLOCK : 0);
  int fd = eventfd(initial, flags);
  if (fd < 0) {
    ThrowErrno(env, errno, "eventfd");
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

Napi::Value EventfdRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) {
    return env.Undefined();
  }
  uint64_t value;
  ssize_t n;
  do {
    n = read(fd, &value, sizeof(value));
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) {
      return env.Null();
    }
    ThrowErrno(env, errno, "read");
    return env.Undefined();
  }
  if (n != sizeof(value)) {
    ThrowErrno(env, EIO, "read");
    return env.Undefined();
  }
  return Napi::BigInt::New(env, value);
}

Napi::Value EventfdWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) {
    return env.Undefined();
  }
  uint64_t value;
  if (info[1].IsBigInt()) {
    bool lossless;
    value = info[1].As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) {
      ThrowType(env, "value must fit in 64 bits");
      return env.Undefined();
    }
  } else if (!SizeArg(info, 1, "value", &value)) {
    return env.Undefined();
  }
  ssize_t n;
  do {
    n = write(fd, &value, sizeof(value));
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    ThrowErrno(env, errno, "write");
  }
  return env.Undefined();
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) {
    return env.Undefined();
  }
  // Linux closes the fd even when close() reports EINTR: never retry.
  if (close(fd) < 0 && errno != EINTR) {
    ThrowErrno(env, errno, "close");
  }
  return env.Undefined();
}

Napi::Value Mmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  uint64_t offset, length;
  if (!FdArg(info, 0, &fd) || !SizeArg(info, 1, "offset", &offset) ||
      !SizeArg(info, 2, "length", &length)) {
    return env.Undefined();
  }
  int prot = PROT_READ | (info[3].ToBoolean().Value() ? PROT_WRITE : 0);
  void* address = mmap(nullptr, length, prot, MAP_SHARED, fd, static_cast<off_t>(offset));
  if (address == MAP_FAILED) {
    ThrowErrno(env, errno, "mmap");
    return env.Undefined();
  }
  Mapping* mapping = new Mapping{address, length};
  {
    std::lock_guard<std::mutex> lock(mappings_mutex);
    mappings[address] = mapping;
  }
  napi_value buffer;
  napi_status status =
      napi_create_external_arraybuffer(env, address, length, FinalizeMapping, mapping, &buffer);
  if (status != napi_ok) {
    ForgetMapping(mapping);
    munmap(address, length);
    delete mapping;
    if (status == napi_no_external_buffers_allowed) {
      ThrowErrno(env, ENOTSUP, "napi_create_external_arraybuffer");
    }
    return env.Undefined();
  }
  return Napi::Value(env, buffer);
}

Napi::Value Munmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArrayBuffer()) {
    ThrowType(env, "buffer must be an ArrayBuffer returned by mmap()");
    return env.Undefined();
  }
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  void* address = buffer.Data();
  Mapping* mapping = nullptr;
  {
    std::lock_guard<std::mutex> lock(mappings_mutex);
    auto it = mappings.find(address);
    if (it != mappings.end() && address != nullptr) {
      mapping = it->second;
      mappings.erase(it);
    }
  }
  if (mapping == nullptr) {
    ThrowErrno(env, EINVAL, "munmap");
    return env.Undefined();
  }
  // Detached first: no JS access may reach the memory once it is unmapped.
  buffer.Detach();
  if (munmap(mapping->address, mapping->length) < 0) {
    ThrowErrno(env, errno, "munmap");
  }
  // The Mapping itself is freed by the finalizer, which finds it forgotten.
  return env.Undefined();
}

Napi::Value Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) {
    ThrowType(env, "path must be a string");
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  struct sockaddr_un address;
  std::memset(&address, 0, sizeof(address));
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) {
    ThrowErrno(env, ENAMETOOLONG, "connect");
    return env.Undefined();
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ThrowErrno(env, errno, "socket");
    return env.Undefined();
  }
  // A UNIX stream connect completes at once or fails: blocking is brief.
  int ret;
  do {
    ret = connect(fd, reinterpret_cast<struct sockaddr*>(&address), sizeof(address));
  } while (ret < 0 && errno == EINTR);
  if (ret < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, "connect");
    return env.Undefined();
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, "fcntl");
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

// The bytes of a Uint8Array (or any typed array, DataView or ArrayBuffer).
bool BytesOf(Napi::Value value, void** data, size_t* length) {
  if (value.IsTypedArray()) {
    Napi::TypedArray array = value.As<Napi::TypedArray>();
    *data = static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
    *length = array.ByteLength();
    return true;
  }
  if (value.IsDataView()) {
    Napi::DataView view = value.As<Napi::DataView>();
    *data = static_cast<uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
    *length = view.ByteLength();
    return true;
  }
  if (value.IsArrayBuffer()) {
    *data = value.As<Napi::ArrayBuffer>().Data();
    *length = value.As<Napi::ArrayBuffer>().ByteLength();
    return true;
  }
  return false;
}

Napi::Value SendMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) {
    return env.Undefined();
  }
  if (!info[1].IsArray()) {
    ThrowType(env, "chunks must be an array of Uint8Arrays");
    return env.Undefined();
  }
  Napi::Array chunks = info[1].As<Napi::Array>();
  std::vector<struct iovec> iov(chunks.Length());
  for (uint32_t i = 0; i < chunks.Length(); i++) {
    void* data;
    size_t length;
    if (!BytesOf(chunks.Get(i), &data, &length)) {
      ThrowType(env, "chunks must be an array of Uint8Arrays");
      return env.Undefined();
    }
    iov[i].iov_base = data;
    iov[i].iov_len = length;
  }

  std::vector<int> fds;
  if (!info[2].IsUndefined() && !info[2].IsNull()) {
    if (!info[2].IsArray()) {
      ThrowType(env, "fds must be an array of file descriptors");
      return env.Undefined();
    }
    Napi::Array list = info[2].As<Napi::Array>();
    if (list.Length() > kMaxFds) {
      ThrowErrno(env, EINVAL, "sendmsg");
      return env.Undefined();
    }
    for (uint32_t i = 0; i < list.Length(); i++) {
      Napi::Value value = list.Get(i);
      double number = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : -1;
      if (number < 0 || number > INT32_MAX || static_cast<int>(number) != number) {
        ThrowType(env, "fds must be an array of file descriptors");
        return env.Undefined();
      }
      fds.push_back(static_cast<int>(number));
    }
  }

  struct msghdr message;
  std::memset(&message, 0, sizeof(message));
  message.msg_iov = iov.data();
  message.msg_iovlen = iov.size();
  std::vector<char> control;
  if (!fds.empty()) {
    size_t bytes = fds.size() * sizeof(int);
    control.assign(CMSG_SPACE(bytes), 0);
    message.msg_control = control.data();
    message.msg_controllen = control.size();
    struct cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(bytes);
    std::memcpy(CMSG_DATA(header), fds.data(), bytes);
  }
  ssize_t sent;
  do {
    sent = sendmsg(fd, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    ThrowErrno(env, errno, "sendmsg");
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(sent));
}

Napi::Value RecvMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  uint64_t offset;
  if (!FdArg(info, 0, &fd)) {
    return env.Undefined();
  }
  void* data;
  size_t length;
  if (!BytesOf(info[1], &data, &length) || info[1].IsArrayBuffer()) {
    ThrowType(env, "into must be a Uint8Array");
    return env.Undefined();
  }
  if (!SizeArg(info, 2, "offset", &offset)) {
    return env.Undefined();
  }
  if (offset > length) {
    ThrowErrno(env, EINVAL, "recvmsg");
    return env.Undefined();
  }
  struct iovec iov;
  iov.iov_base = static_cast<uint8_t*>(data) + offset;
  iov.iov_len = length - offset;
  alignas(struct cmsghdr) char control[CMSG_SPACE(kMaxFds * sizeof(int))];
  struct msghdr message;
  std::memset(&message, 0, sizeof(message));
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  ssize_t received;
  do {
    received = recvmsg(fd, &message, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (received < 0 && errno == EINTR);
  if (received < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return env.Null();
    }
    ThrowErrno(env, errno, "recvmsg");
    return env.Undefined();
  }
  Napi::Array fds = Napi::Array::New(env);
  uint32_t count = 0;
  for (struct cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
       header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) {
      continue;
    }
    size_t n = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; i++) {
      int received_fd;
      std::memcpy(&received_fd, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
      fds.Set(count++, Napi::Number::New(env, received_fd));
    }
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("bytes", Napi::Number::New(env, static_cast<double>(received)));
  result.Set("fds", fds);
  return result;
}

}  // namespace

Napi::Object CreateOsHelpers(Napi::Env env) {
  Napi::Object os = Napi::Object::New(env);
  os.Set("memfd", Napi::Function::New<MemfdCreate>(env, "memfd"));
  os.Set("pageSize", Napi::Number::New(env, static_cast<double>(sysconf(_SC_PAGESIZE))));
  os.Set("eventfd", Napi::Function::New<EventfdCreate>(env, "eventfd"));
  os.Set("eventfdRead", Napi::Function::New<EventfdRead>(env, "eventfdRead"));
  os.Set("eventfdWrite", Napi::Function::New<EventfdWrite>(env, "eventfdWrite"));
  os.Set("close", Napi::Function::New<CloseFd>(env, "close"));
  os.Set("mmap", Napi::Function::New<Mmap>(env, "mmap"));
  os.Set("munmap", Napi::Function::New<Munmap>(env, "munmap"));
  os.Set("connect", Napi::Function::New<Connect>(env, "connect"));
  os.Set("sendmsg", Napi::Function::New<SendMsg>(env, "sendmsg"));
  os.Set("recvmsg", Napi::Function::New<RecvMsg>(env, "recvmsg"));
  return os;
}

}  // namespace vfio_user
