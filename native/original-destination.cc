#include "original-destination.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>

#include "sockaddr.h"
#include "sys-error.h"

// From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>,
// which clash with the libc socket headers when included together.
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

namespace rxredirect {

namespace {

int QueryIPv4(int fd, sockaddr_storage* out) {
  socklen_t len = sizeof(sockaddr_in);
  return getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, out, &len) == 0 ? 0 : errno;
}

int QueryIPv6(int fd, sockaddr_storage* out) {
  socklen_t len = sizeof(sockaddr_in6);
  return getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, out, &len) == 0 ? 0 : errno;
}

}  // namespace

Napi::Value OriginalDestination(const Napi::CallbackInfo& info) {
  int fd = FdArgument(info, 0);
  sockaddr_storage local{};
  socklen_t local_len = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) {
    throw SystemError(info.Env(), errno, "getsockname");
  }

  sockaddr_storage dst{};
  int err = 0;
  if (local.ss_family == AF_INET) {
    err = QueryIPv4(fd, &dst);
  } else if (local.ss_family == AF_INET6) {
    // An IPv4 client of a dual-stack listener is v4-mapped here, but its
    // conntrack entry is IPv4: ask the IPv4 table first in that case, and fall
    // back to it whenever the IPv6 table has nothing.
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&local);
    bool mapped = IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr);
    err = mapped ? QueryIPv4(fd, &dst) : QueryIPv6(fd, &dst);
    if (err != 0 && !mapped) {
      sockaddr_storage v4{};
      if (QueryIPv4(fd, &v4) == 0) {
        dst = v4;
        err = 0;
      }
    }
  } else {
    err = EAFNOSUPPORT;
  }
  if (err != 0) throw SystemError(info.Env(), err, "getsockopt");
  return EndpointObject(info.Env(), dst);
}

}  // namespace rxredirect
