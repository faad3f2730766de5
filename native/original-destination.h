// Where a NATed (iptables REDIRECT/DNAT) connection was originally going,
// read from conntrack with SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST.
#pragma once

#include <napi.h>

namespace rxredirect {

// originalDestination(fd) -> {address, port, family}
// Throws ENOENT when conntrack has no entry, ENOPROTOOPT when conntrack is not
// loaded at all. A tracked but not-NATed connection returns its own local address.
Napi::Value OriginalDestination(const Napi::CallbackInfo& info);

}  // namespace rxredirect
