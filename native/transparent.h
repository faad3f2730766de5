// IP_TRANSPARENT / IPV6_TRANSPARENT on a listening socket, so it accepts
// connections TPROXY steers to it for addresses that are not local.
#pragma once

#include <napi.h>

namespace rxredirect {

// setTransparent(fd) -> undefined; the option matching the socket's family.
// Needs CAP_NET_ADMIN (EPERM otherwise).
Napi::Value SetTransparent(const Napi::CallbackInfo& info);
// isTransparent(fd) -> boolean
Napi::Value IsTransparent(const Napi::CallbackInfo& info);

}  // namespace rxredirect
