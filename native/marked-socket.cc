#include "marked-socket.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "sockaddr.h"
#include "sys-error.h"
#include "unique-fd.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace rxredirect {

namespace {

struct BindRequest {
  std::string address;
  int port = 0;
  bool no_port = false;
};

BindRequest ReadBind(const Napi::CallbackInfo& info) {
  BindRequest request;
  if (info.Length() < 3 || info[2].IsUndefined() || info[2].IsNull()) return request;
  if (!info[2].IsObject()) throw Napi::TypeError::New(info.Env(), "bind must be an object");
  Napi::Object bind = info[2].As<Napi::Object>();
  Napi::Value address = bind.Get("address");
  if (address.IsString()) request.address = address.As<Napi::String>().Utf8Value();
  Napi::Value port = bind.Get("port");
  if (port.IsNumber()) request.port = port.As<Napi::Number>().Int32Value();
  if (request.port < 0 || request.port > 65535) throw Napi::TypeError::New(info.Env(), "bind.port out of range");
  request.no_port = bind.Get("noPort").ToBoolean().Value();
  return request;
}

}  // namespace

Napi::Value CreateMarkedSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "createMarkedSocket(family, mark[, bind])");
  }
  int version = info[0].As<Napi::Number>().Int32Value();
  if (version != 4 && version != 6) throw Napi::TypeError::New(env, "family must be 4 or 6");
  int family = version == 4 ? AF_INET : AF_INET6;
  uint32_t mark = info[1].As<Napi::Number>().Uint32Value();
  BindRequest bind = ReadBind(info);

  UniqueFd fd(socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
  if (fd.get() < 0) throw SystemError(env, errno, "socket");

  if (setsockopt(fd.get(), SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) {
    throw SystemError(env, errno, "setsockopt");
  }
  if (bind.no_port) {
    int on = 1;
    if (setsockopt(fd.get(), SOL_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof on) != 0) {
      throw SystemError(env, errno, "setsockopt");
    }
  }
  if (!bind.address.empty() || bind.port != 0) {
    sockaddr_storage addr{};
    socklen_t len = 0;
    std::string address = bind.address.empty() ? (version == 4 ? "0.0.0.0" : "::") : bind.address;
    if (!ParseEndpoint(family, address, bind.port, &addr, &len)) {
      throw Napi::TypeError::New(env, "bind.address is not an IP literal of the socket's family");
    }
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
      throw SystemError(env, errno, "bind");
    }
  }
  return Napi::Number::New(env, fd.release());
}

}  // namespace rxredirect
