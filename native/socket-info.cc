#include "socket-info.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>

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

}  // namespace

Napi::Value LocalAddress(const Napi::CallbackInfo& info) {
  return Endpoint(info, getsockname, "getsockname");
}

Napi::Value PeerAddress(const Napi::CallbackInfo& info) {
  return Endpoint(info, getpeername, "getpeername");
}

Napi::Value GetMark(const Napi::CallbackInfo& info) {
  int fd = FdArgument(info, 0);
  uint32_t mark = 0;
  socklen_t len = sizeof mark;
  if (getsockopt(fd, SOL_SOCKET, SO_MARK, &mark, &len) != 0) {
    throw SystemError(info.Env(), errno, "getsockopt");
  }
  return Napi::Number::New(info.Env(), mark);
}

Napi::Value TcpNoDelay(const Napi::CallbackInfo& info) {
  int fd = FdArgument(info, 0);
  int on = 0;
  socklen_t len = sizeof on;
  if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) != 0) {
    throw SystemError(info.Env(), errno, "getsockopt");
  }
  return Napi::Boolean::New(info.Env(), on != 0);
}

}  // namespace rxredirect
