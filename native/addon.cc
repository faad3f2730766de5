// Entry point of the rxredirect addon: Init only registers exports; each
// concern lives in its own file.
#include <napi.h>

#include "wfp-napi.h"

#if defined(__linux__)
#include "acceptor.h"
#include "capabilities.h"
#include "local-route.h"
#include "marked-socket.h"
#include "original-destination.h"
#include "reuseport-listener.h"
#include "socket-info.h"
#include "splice-relay.h"
#include "transparent.h"
#endif
#if defined(_WIN32)
#include "win/wfp-exports.h"
#endif

#define RXREDIRECT_ADDON_VERSION "0.1.0"

namespace {

Napi::Value Version(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), RXREDIRECT_ADDON_VERSION);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("version", Napi::Function::New(env, Version, "version"));
#if defined(__linux__)
  exports.Set("platform", Napi::String::New(env, "linux"));
  exports.Set("originalDestination", Napi::Function::New(env, rxredirect::OriginalDestination, "originalDestination"));
  exports.Set("localAddress", Napi::Function::New(env, rxredirect::LocalAddress, "localAddress"));
  exports.Set("peerAddress", Napi::Function::New(env, rxredirect::PeerAddress, "peerAddress"));
  exports.Set("getMark", Napi::Function::New(env, rxredirect::GetMark, "getMark"));
  exports.Set("tcpNoDelay", Napi::Function::New(env, rxredirect::TcpNoDelay, "tcpNoDelay"));
  exports.Set("pendingError", Napi::Function::New(env, rxredirect::PendingError, "pendingError"));
  exports.Set("resetOnClose", Napi::Function::New(env, rxredirect::ResetOnClose, "resetOnClose"));
  exports.Set("dupFd", Napi::Function::New(env, rxredirect::DupFd, "dupFd"));
  exports.Set("isLocalRoute", Napi::Function::New(env, rxredirect::IsLocalRoute, "isLocalRoute"));
  exports.Set("setTransparent", Napi::Function::New(env, rxredirect::SetTransparent, "setTransparent"));
  exports.Set("isTransparent", Napi::Function::New(env, rxredirect::IsTransparent, "isTransparent"));
  exports.Set("createMarkedSocket", Napi::Function::New(env, rxredirect::CreateMarkedSocket, "createMarkedSocket"));
  exports.Set("capabilities", Napi::Function::New(env, rxredirect::Capabilities, "capabilities"));
  exports.Set("spliceInit", Napi::Function::New(env, rxredirect::SpliceInit, "spliceInit"));
  exports.Set("spliceConfigure", Napi::Function::New(env, rxredirect::SpliceConfigure, "spliceConfigure"));
  exports.Set("spliceStart", Napi::Function::New(env, rxredirect::SpliceStart, "spliceStart"));
  exports.Set("spliceAbort", Napi::Function::New(env, rxredirect::SpliceAbort, "spliceAbort"));
  exports.Set("spliceStats", Napi::Function::New(env, rxredirect::SpliceStats, "spliceStats"));
  exports.Set("spliceProgress", Napi::Function::New(env, rxredirect::SpliceProgress, "spliceProgress"));
  exports.Set("acceptorOpen", Napi::Function::New(env, rxredirect::AcceptorOpen, "acceptorOpen"));
  exports.Set("acceptorResume", Napi::Function::New(env, rxredirect::AcceptorResume, "acceptorResume"));
  exports.Set("listenReusePort", Napi::Function::New(env, rxredirect::ListenReusePort, "listenReusePort"));
  exports.Set("acceptorClose", Napi::Function::New(env, rxredirect::AcceptorClose, "acceptorClose"));
#endif
#if defined(_WIN32)
  exports.Set("platform", Napi::String::New(env, "win32"));
  rxredirect::RegisterWfpExports(env, exports);
#endif
  // Portable WFP logic, exported on every OS so tests run it (test-only).
  rxredirect::RegisterWfpTestExports(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(rxredirect, Init)
