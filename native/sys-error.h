// Turns a failed system call into the JS Error shape Node itself uses for
// system errors (code = errno name, errno = -errno, syscall), so callers can
// branch on `err.code` exactly as they would for a net/fs error.
#pragma once

#include <napi.h>

namespace rxredirect {

// Name of an errno value ("EPERM"); "EUNKNOWN" when it has none we know.
const char* ErrnoName(int err);

Napi::Error SystemError(Napi::Env env, int err, const char* syscall);

// Last line of defence for arguments TypeScript should already have checked.
int FdArgument(const Napi::CallbackInfo& info, size_t index);

}  // namespace rxredirect
