#include "capabilities.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace rxredirect {

namespace {

// Effective capability bit from capget(2); glibc has no wrapper without libcap.
bool HasEffective(int cap) {
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  int word = cap / 32;
  if (word >= _LINUX_CAPABILITY_U32S_3) return false;
  return (data[word].effective & (1u << (cap % 32))) != 0;
}

// splice with invalid fds fails with EBADF when the call exists, ENOSYS when
// the kernel lacks it, EPERM/ENOSYS when seccomp filters it.
bool SpliceAvailable() {
  ssize_t rc = splice(-1, nullptr, -1, nullptr, 0, 0);
  return rc >= 0 || errno == EBADF || errno == EINVAL;
}

}  // namespace

Napi::Value Capabilities(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("netAdmin", Napi::Boolean::New(env, HasEffective(CAP_NET_ADMIN)));
  out.Set("netRaw", Napi::Boolean::New(env, HasEffective(CAP_NET_RAW)));
  out.Set("splice", Napi::Boolean::New(env, SpliceAvailable()));
  return out;
}

}  // namespace rxredirect
