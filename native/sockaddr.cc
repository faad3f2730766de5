#include "sockaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace rxredirect {

Napi::Object EndpointObject(Napi::Env env, const sockaddr_storage& addr) {
  Napi::Object out = Napi::Object::New(env);
  char text[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET) {
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &in4->sin_addr, text, sizeof text);
    out.Set("address", Napi::String::New(env, text));
    out.Set("port", Napi::Number::New(env, ntohs(in4->sin_port)));
    out.Set("family", Napi::String::New(env, "IPv4"));
  } else if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    out.Set("address", Napi::String::New(env, text));
    out.Set("port", Napi::Number::New(env, ntohs(in6->sin6_port)));
    out.Set("family", Napi::String::New(env, "IPv6"));
  } else {
    throw Napi::Error::New(env, "not an IP socket address");
  }
  return out;
}

bool ParseEndpoint(int family, const std::string& address, int port, sockaddr_storage* addr, socklen_t* len) {
  std::memset(addr, 0, sizeof *addr);
  if (family == AF_INET) {
    auto* in4 = reinterpret_cast<sockaddr_in*>(addr);
    in4->sin_family = AF_INET;
    in4->sin_port = htons(static_cast<uint16_t>(port));
    *len = sizeof *in4;
    return inet_pton(AF_INET, address.c_str(), &in4->sin_addr) == 1;
  }
  if (family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(addr);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    *len = sizeof *in6;
    return inet_pton(AF_INET6, address.c_str(), &in6->sin6_addr) == 1;
  }
  return false;
}

}  // namespace rxredirect
