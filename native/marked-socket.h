// A fresh outbound TCP socket with SO_MARK already set. The mark must be on
// the socket before connect(): the SYN is NATed (or skipped) by its mark, so
// marking later is too late. Node wraps the fd and connects it.
#pragma once

#include <napi.h>

namespace rxredirect {

// createMarkedSocket(family: 4 | 6, mark: number,
//                    bind?: {address?: string, port?: number, noPort?: boolean}) -> fd
// The fd is non-blocking and close-on-exec. `noPort` sets
// IP_BIND_ADDRESS_NO_PORT so binding an address does not reserve a port
// before connect. SO_MARK needs CAP_NET_ADMIN (EPERM otherwise).
Napi::Value CreateMarkedSocket(const Napi::CallbackInfo& info);

}  // namespace rxredirect
