// Entry point of the rxredirect addon: Init only registers exports; each
// concern lives in its own file.
#include <napi.h>

#define RXREDIRECT_ADDON_VERSION "0.1.0"

namespace {

Napi::Value Version(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), RXREDIRECT_ADDON_VERSION);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("version", Napi::Function::New(env, Version, "version"));
  return exports;
}

}  // namespace

NODE_API_MODULE(rxredirect, Init)
