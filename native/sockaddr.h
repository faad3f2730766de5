// Conversions between socket addresses and the {address, port, family}
// objects the TypeScript side works with. Addresses are returned exactly as
// the kernel reports them (v4-mapped IPv6 included); lib/platform/addon.ts normalises.
#pragma once

#include <napi.h>
#include <sys/socket.h>

#include <string>

namespace rxredirect {

Napi::Object EndpointObject(Napi::Env env, const sockaddr_storage& addr);

// Fills `addr` from an IP literal; false when `address` is not a literal of `family`.
bool ParseEndpoint(int family, const std::string& address, int port, sockaddr_storage* addr, socklen_t* len);

}  // namespace rxredirect
