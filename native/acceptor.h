// The accept loop of a listening socket, run on Node's own event loop (a
// uv_poll_t on the listener) instead of libuv's stream code. libuv, out of
// descriptors (EMFILE/ENFILE), accepts and closes the pending connections
// itself and tells no one; here every failed accept(2) is reported to JS with
// its errno and, when a connection had to be dropped, the peer it came from.
#pragma once

#include <napi.h>

namespace rxredirect {

// acceptorOpen(listenFd, onAccept(fd, address, port, family), onFault(code, kind, address?, port?, family?))
//   kind: 0 dropped (out of descriptors, that connection reset), 1 failed (that connection), 2 paused.
//   -> id. Works on a dup of listenFd (the caller may close its own fd); polls at once.
Napi::Value AcceptorOpen(const Napi::CallbackInfo& info);
// acceptorResume(id): polls again after a fault paused the acceptor (reopens the reserve fd first).
Napi::Value AcceptorResume(const Napi::CallbackInfo& info);
// acceptorClose(id): stops polling and closes the listener dup and the reserve fd, before returning.
Napi::Value AcceptorClose(const Napi::CallbackInfo& info);

}  // namespace rxredirect
