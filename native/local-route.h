// Whether an address is one of this host's own (in the calling thread's network namespace),
// asked of the kernel's routing: one RTM_GETROUTE lookup over rtnetlink, whose answer is
// RTN_LOCAL for an address of any interface (up, or up without carrier). The loop guard asks it
// per flow; reading /proc/net/fib_trie instead costs a walk of every route the host has.
#pragma once

#include <napi.h>

namespace rxredirect {

// isLocalRoute(address: string) -> boolean. IPv4 or IPv6 text. False when the kernel has no
// route to it (ENETUNREACH, EHOSTUNREACH); throws a system error when netlink cannot answer.
Napi::Value IsLocalRoute(const Napi::CallbackInfo& info);

}  // namespace rxredirect
