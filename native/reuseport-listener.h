// A listening TCP socket made by the addon, for hosts that run several
// workers on one address (lib/workers/): Node 20 has no `reusePort`.
#pragma once

#include <napi.h>

namespace rxredirect {

// listenReusePort(family, address, port, { backlog, ipv6Only, transparent, reusePort }) -> fd
Napi::Value ListenReusePort(const Napi::CallbackInfo& info);

}  // namespace rxredirect
