#include "local-route.h"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "sys-error.h"
#include "unique-fd.h"

namespace rxredirect {

namespace {

struct RouteRequest {
  nlmsghdr header;
  rtmsg route;
  char attributes[RTA_SPACE(sizeof(in6_addr))];
};

// One lookup: true for RTN_LOCAL, false for any other route or none; an errno otherwise.
int LookUp(int family, const void* address, size_t length, bool* local) {
  UniqueFd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (fd.get() < 0) return errno;
  RouteRequest request{};
  request.header.nlmsg_type = RTM_GETROUTE;
  request.header.nlmsg_flags = NLM_F_REQUEST;
  request.header.nlmsg_seq = 1;
  request.route.rtm_family = static_cast<unsigned char>(family);
  request.route.rtm_dst_len = static_cast<unsigned char>(length * 8);
  auto* destination = reinterpret_cast<rtattr*>(request.attributes);
  destination->rta_type = RTA_DST;
  destination->rta_len = static_cast<unsigned short>(RTA_LENGTH(length));
  std::memcpy(RTA_DATA(destination), address, length);
  request.header.nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg)) + RTA_SPACE(length);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd.get(), &request, request.header.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    return errno;
  }
  // rtnetlink answers a lookup inside sendto(): the reply (one RTM_NEWROUTE or one NLMSG_ERROR,
  // about 150 bytes) is queued already, so one non-blocking read takes it; a missing or truncated
  // reply is an error, never a wait on Node's thread.
  alignas(nlmsghdr) char reply[4096];
  ssize_t n;
  do {
    n = recv(fd.get(), reply, sizeof reply, MSG_DONTWAIT | MSG_TRUNC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EAGAIN ? EPROTO : errno;
  if (static_cast<size_t>(n) > sizeof reply) return EMSGSIZE;
  auto left = static_cast<unsigned int>(n);
  for (auto* h = reinterpret_cast<nlmsghdr*>(reply); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
    if (h->nlmsg_seq != request.header.nlmsg_seq) continue;
    if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_len >= NLMSG_LENGTH(sizeof(nlmsgerr))) {
      const int err = -static_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
      // No route, or one that discards (unreachable, blackhole, prohibit, throw): not local. The
      // local table is consulted before any of these, so they never hide a local address.
      if (err == ENETUNREACH || err == EHOSTUNREACH || err == EINVAL || err == EACCES || err == EAGAIN) {
        *local = false;
        return 0;
      }
      return err == 0 ? EPROTO : err;
    }
    if (h->nlmsg_type == RTM_NEWROUTE && h->nlmsg_len >= NLMSG_LENGTH(sizeof(rtmsg))) {
      *local = static_cast<rtmsg*>(NLMSG_DATA(h))->rtm_type == RTN_LOCAL;
      return 0;
    }
  }
  return EPROTO;
}

}  // namespace

Napi::Value IsLocalRoute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "isLocalRoute(address) needs a string");
  const std::string text = info[0].As<Napi::String>().Utf8Value();
  in_addr v4{};
  in6_addr v6{};
  bool local = false;
  int err;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    err = LookUp(AF_INET, &v4, sizeof v4, &local);
  } else if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    err = LookUp(AF_INET6, &v6, sizeof v6, &local);
  } else {
    throw Napi::TypeError::New(env, "isLocalRoute: not an IP address: " + text);
  }
  if (err != 0) throw SystemError(env, err, "RTM_GETROUTE");
  return Napi::Boolean::New(env, local);
}

}  // namespace rxredirect
