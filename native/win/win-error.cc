#include "win-error.h"

#include <string>

#include "../wfp-logic.h"

namespace rxredirect {

Napi::Error WinSystemError(Napi::Env env, int error, const char* syscall) {
  std::string name = wfp::WinErrorName(error);
  Napi::Error result = Napi::Error::New(env, std::string(syscall) + " " + name);
  result.Set("code", Napi::String::New(env, name));
  result.Set("errno", Napi::Number::New(env, error));
  result.Set("syscall", Napi::String::New(env, syscall));
  return result;
}

}  // namespace rxredirect
