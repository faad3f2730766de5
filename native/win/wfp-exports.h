// The Windows exports of the addon (Init in addon.cc registers them):
// the socket engine (wfp-engine.h) and the WFP query on a raw SOCKET.
#pragma once

#include <napi.h>

namespace rxredirect {

void RegisterWfpExports(Napi::Env env, Napi::Object exports);

}  // namespace rxredirect
