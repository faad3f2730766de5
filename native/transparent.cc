#include "transparent.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>

#include "sys-error.h"

#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif
#ifndef IPV6_TRANSPARENT
#define IPV6_TRANSPARENT 75
#endif

namespace rxredirect {

namespace {

struct Option {
  int level;
  int name;
};

// Both options set the same per-socket flag; the one of the socket's own
// family is the one every kernel accepts. A `::` listener then also takes
// IPv4 flows.
Option OptionFor(const Napi::Env& env, int fd) {
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
    throw SystemError(env, errno, "getsockname");
  }
  if (local.ss_family == AF_INET6) return {SOL_IPV6, IPV6_TRANSPARENT};
  if (local.ss_family == AF_INET) return {SOL_IP, IP_TRANSPARENT};
  throw SystemError(env, EAFNOSUPPORT, "getsockname");
}

}  // namespace

Napi::Value SetTransparent(const Napi::CallbackInfo& info) {
  int fd = FdArgument(info, 0);
  Option option = OptionFor(info.Env(), fd);
  int on = 1;
  if (setsockopt(fd, option.level, option.name, &on, sizeof on) != 0) {
    throw SystemError(info.Env(), errno, "setsockopt");
  }
  return info.Env().Undefined();
}

Napi::Value IsTransparent(const Napi::CallbackInfo& info) {
  int fd = FdArgument(info, 0);
  Option option = OptionFor(info.Env(), fd);
  int value = 0;
  socklen_t len = sizeof value;
  if (getsockopt(fd, option.level, option.name, &value, &len) != 0) {
    throw SystemError(info.Env(), errno, "getsockopt");
  }
  return Napi::Boolean::New(info.Env(), value != 0);
}

}  // namespace rxredirect
