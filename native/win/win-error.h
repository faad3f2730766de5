// Windows counterpart of sys-error.h: a failed Winsock call as the JS Error
// shape Node uses for system errors (code = "WSAECONNREFUSED", errno, syscall).
#pragma once

#include <napi.h>

namespace rxredirect {

Napi::Error WinSystemError(Napi::Env env, int error, const char* syscall);

}  // namespace rxredirect
