// Facts about an existing socket fd: its local and peer endpoints, its SO_MARK
// (which an accepted socket inherits from the SYN when
// net.ipv4.tcp_fwmark_accept=1), its TCP_NODELAY and its pending error; and
// the one thing set on it: an abortive close.
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

// pendingError(fd) -> errno name or null. Reads (and clears) SO_ERROR: after a
// reset that arrived with unread data, libuv reports EOF and never reads the
// error, so this is how a FIN is told from an RST (docs/design.md, "Resets").
Napi::Value PendingError(const Napi::CallbackInfo& info);
// resetOnClose(fd): SO_LINGER {on, 0}, so close(2) sends RST whatever state the
// socket is in (libuv's own reset refuses while a shutdown is pending).
Napi::Value ResetOnClose(const Napi::CallbackInfo& info);
// dupFd(fd) -> a close-on-exec duplicate: a listening socket that outlives the
// net.Server (or acceptor) that closes its own copy (a reload's next generation).
Napi::Value DupFd(const Napi::CallbackInfo& info);

}  // namespace rxredirect
