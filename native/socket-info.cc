#include "socket-info.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "sockaddr.h"
#include "sys-error.h"

namespace rxredirect {

namespace {

using AddressCall = int (*)(int, sockaddr*, socklen_t*);

Napi::Value Endpoint(const Napi::CallbackInfo& info, AddressCall call, const char* syscall) {
  int fd = FdArgument(info, 0);
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (call(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw SystemError(info.Env(), errno, syscall);
  }
  return EndpointObject(info.Env(), addr);
}

// An int-sized socket option of the fd in argument 0 (SO_MARK is a u32 of the same size).
int IntOption(const Napi::CallbackInfo& info, int level, int name) {
  int fd = FdArgument(info, 0);
  int value = 0;
  socklen_t len = sizeof value;
  if (getsockopt(fd, level, name, &value, &len) != 0) {
    throw SystemError(info.Env(), errno, "getsockopt");
  }
  return value;
}

}  // namespace

Napi::Value LocalAddress(const Napi::CallbackInfo& info) {
  return Endpoint(info, getsockname, "getsockname");
}

Napi::Value PeerAddress(const Napi::CallbackInfo& info) {
  return Endpoint(info, getpeername, "getpeername");
}

Napi::Value GetMark(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<uint32_t>(IntOption(info, SOL_SOCKET, SO_MARK)));
}

Napi::Value TcpNoDelay(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), IntOption(info, IPPROTO_TCP, TCP_NODELAY) != 0);
}

Napi::Value PendingError(const Napi::CallbackInfo& info) {
  int err = IntOption(info, SOL_SOCKET, SO_ERROR);
  if (err == 0) return info.Env().Null();
  return Napi::String::New(info.Env(), ErrnoName(err));
}

Napi::Value ResetOnClose(const Napi::CallbackInfo& info) {
  int fd = FdArgument(info, 0);
  linger abortive{};
  abortive.l_onoff = 1;
  abortive.l_linger = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive) != 0) {
    throw SystemError(info.Env(), errno, "setsockopt");
  }
  return info.Env().Undefined();
}

Napi::Value DupFd(const Napi::CallbackInfo& info) {
  int fd = FdArgument(info, 0);
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) throw SystemError(info.Env(), errno, "fcntl");
  return Napi::Number::New(info.Env(), copy);
}

}  // namespace rxredirect
