// What this process may do here: CAP_NET_ADMIN (SO_MARK, IP_TRANSPARENT) and
// whether splice(2) exists (it can be filtered out by seccomp).
#pragma once

#include <napi.h>

namespace rxredirect {

// capabilities() -> {netAdmin: boolean, netRaw: boolean, splice: boolean}
Napi::Value Capabilities(const Napi::CallbackInfo& info);

}  // namespace rxredirect
