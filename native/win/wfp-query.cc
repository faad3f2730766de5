#include "wfp-query.h"

#include <cstring>

namespace rxredirect {

namespace {

wfp::IoctlFn WsaIoctlOn(SOCKET socket) {
  return [socket](uint32_t code, uint8_t* out, uint32_t out_len) -> wfp::IoctlReply {
    DWORD returned = 0;
    int rc = WSAIoctl(socket, code, nullptr, 0, out, out_len, &returned, nullptr, nullptr);
    return {rc == 0 ? 0 : WSAGetLastError(), static_cast<uint32_t>(returned)};
  };
}

}  // namespace

wfp::RecordOutcome QueryWfpRecord(SOCKET socket) {
  wfp::IoctlFn ioctl = WsaIoctlOn(socket);
  wfp::Outcome records = wfp::Negotiate(wfp::kSioQueryRedirectRecords, ioctl);
  wfp::Outcome context;
  context.status = wfp::Status::kNotRedirected;
  sockaddr_storage dst{};
  int dst_len = 0;
  int dst_error = 0;
  if (records.status == wfp::Status::kOk) {
    context = wfp::Negotiate(wfp::kSioQueryRedirectContext, ioctl);
    dst_len = sizeof dst;
    if (getsockopt(socket, SOL_SOCKET, wfp::kSoOriginalDst, reinterpret_cast<char*>(&dst), &dst_len) != 0) {
      dst_error = WSAGetLastError();
    }
  }
  return wfp::BuildRecord(records, context, dst_error, reinterpret_cast<const uint8_t*>(&dst),
                          dst_len > 0 ? static_cast<size_t>(dst_len) : 0);
}

SOCKET CreateRedirectedSocket(int family, const std::vector<uint8_t>& records, const sockaddr_storage* bind,
                              int bind_len, int* error, const char** syscall) {
  SOCKET s = WSASocketW(family, SOCK_STREAM, IPPROTO_TCP, nullptr, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (s == INVALID_SOCKET) {
    *error = WSAGetLastError();
    *syscall = "WSASocket";
    return INVALID_SOCKET;
  }
  auto fail = [&](const char* call) {
    *error = WSAGetLastError();
    *syscall = call;
    closesocket(s);
    return INVALID_SOCKET;
  };
  u_long nonblocking = 1;
  if (ioctlsocket(s, FIONBIO, &nonblocking) != 0) return fail("ioctlsocket");
  if (!records.empty()) {
    // Must precede connect(): the ALE connect-redirect layer sees the records
    // on this connect and lets the proxy's own flow through.
    DWORD returned = 0;
    if (WSAIoctl(s, wfp::kSioSetRedirectRecords, const_cast<uint8_t*>(records.data()),
                 static_cast<DWORD>(records.size()), nullptr, 0, &returned, nullptr, nullptr) != 0) {
      return fail("WSAIoctl");
    }
  }
  if (bind != nullptr && ::bind(s, reinterpret_cast<const sockaddr*>(bind), bind_len) != 0) return fail("bind");
  return s;
}

bool ParseWinEndpoint(int family, const char* address, int port, sockaddr_storage* out, int* len) {
  std::memset(out, 0, sizeof *out);
  if (family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(out);
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<u_short>(port));
    *len = sizeof *in;
    return inet_pton(AF_INET, address, &in->sin_addr) == 1;
  }
  if (family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(out);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<u_short>(port));
    *len = sizeof *in6;
    return inet_pton(AF_INET6, address, &in6->sin6_addr) == 1;
  }
  return false;
}

}  // namespace rxredirect
