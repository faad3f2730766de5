#include "reuseport-listener.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "sockaddr.h"
#include "sys-error.h"
#include "unique-fd.h"

#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif
#ifndef IPV6_TRANSPARENT
#define IPV6_TRANSPARENT 75
#endif

namespace rxredirect {

namespace {

bool BoolOption(const Napi::Object& o, const char* key, bool fallback) {
  if (!o.Has(key)) return fallback;
  Napi::Value v = o.Get(key);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : fallback;
}

}  // namespace

// Every option is set before bind(2): SO_REUSEPORT joins the address's group
// only if every member set it before binding (and had the same effective uid);
// IP_TRANSPARENT before bind also lets a TPROXY listener bind a non-local address.
Napi::Value ListenReusePort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsString() || !info[2].IsNumber()) {
    throw Napi::TypeError::New(env, "listenReusePort(family, address, port, options?)");
  }
  const int family = info[0].As<Napi::Number>().Int32Value() == 6 ? AF_INET6 : AF_INET;
  const std::string address = info[1].As<Napi::String>().Utf8Value();
  const int port = info[2].As<Napi::Number>().Int32Value();
  Napi::Object options = info.Length() > 3 && info[3].IsObject() ? info[3].As<Napi::Object>() : Napi::Object::New(env);
  int backlog = 511;  // Node's default
  if (options.Has("backlog") && options.Get("backlog").IsNumber()) {
    backlog = options.Get("backlog").As<Napi::Number>().Int32Value();
  }
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (!ParseEndpoint(family, address, port, &addr, &len)) throw SystemError(env, EINVAL, "inet_pton");

  UniqueFd owned(socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const int fd = owned.get();
  if (fd < 0) throw SystemError(env, errno, "socket");
  // errno is read before the throw unwinds and `owned` closes the socket.
  auto fail = [&](const char* syscall) { return SystemError(env, errno, syscall); };
  const int on = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) throw fail("setsockopt");
  if (BoolOption(options, "reusePort", true) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
    throw fail("setsockopt");
  }
  if (family == AF_INET6) {
    const int v6only = BoolOption(options, "ipv6Only", false) ? 1 : 0;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) != 0) throw fail("setsockopt");
  }
  if (BoolOption(options, "transparent", false)) {
    const int level = family == AF_INET6 ? SOL_IPV6 : SOL_IP;
    const int name = family == AF_INET6 ? IPV6_TRANSPARENT : IP_TRANSPARENT;
    if (setsockopt(fd, level, name, &on, sizeof on) != 0) throw fail("setsockopt");
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) throw fail("bind");
  if (listen(fd, backlog) != 0) throw fail("listen");
  return Napi::Number::New(env, owned.release());
}

}  // namespace rxredirect
