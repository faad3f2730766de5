// Read-only facts about an existing socket fd: its local and peer endpoints
// its SO_MARK (which an accepted socket inherits from the SYN when
// net.ipv4.tcp_fwmark_accept=1) and its TCP_NODELAY.
#pragma once

#include <napi.h>

namespace rxredirect {

// localAddress(fd) -> {address, port, family}
Napi::Value LocalAddress(const Napi::CallbackInfo& info);
// peerAddress(fd) -> {address, port, family}
Napi::Value PeerAddress(const Napi::CallbackInfo& info);
// getMark(fd) -> number (unsigned 32 bit)
Napi::Value GetMark(const Napi::CallbackInfo& info);
// tcpNoDelay(fd) -> boolean
Napi::Value TcpNoDelay(const Napi::CallbackInfo& info);

}  // namespace rxredirect
