#include "wfp-logic.h"

#include <cstdio>

namespace rxredirect {
namespace wfp {

namespace {

uint32_t ReadLeU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

bool IsSizeError(int error) {
  return error == kWsaEfault || error == kErrorInsufficientBuffer || error == kErrorMoreData || error == kWsaEnobufs;
}

Outcome Finish(Outcome out, Status status, int error, const char* reason) {
  out.status = status;
  out.error = error;
  out.reason = reason;
  if (status != Status::kOk) out.bytes.clear();
  return out;
}

}  // namespace

Outcome Negotiate(uint32_t code, const IoctlFn& ioctl, size_t max_bytes) {
  Outcome out;
  uint32_t size = 0;
  int last_error = 0;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    // A fresh zeroed heap buffer per call: a ULONG size hint can then be told
    // from "the provider wrote nothing".
    std::vector<uint8_t> buffer(size, 0);
    out.asks.push_back(size);
    IoctlReply reply = ioctl(code, size == 0 ? nullptr : buffer.data(), size);
    last_error = reply.error;

    if (reply.error == 0) {
      if (reply.bytes_returned > size) return Finish(std::move(out), Status::kError, 0, "overrun");
      // Success with nothing to return: the stack has no record for this flow.
      if (reply.bytes_returned == 0) return Finish(std::move(out), Status::kNotRedirected, 0, "empty");
      buffer.resize(reply.bytes_returned);
      out.bytes = std::move(buffer);
      return Finish(std::move(out), Status::kOk, 0, "ok");
    }

    if (IsSizeError(reply.error)) {
      // A reported size above the maximum is final.
      if (reply.bytes_returned > max_bytes) return Finish(std::move(out), Status::kError, reply.error, "too-large");
      uint32_t needed = reply.bytes_returned;
      // Some providers put the required size in the buffer (as a ULONG)
      // rather than in lpcbBytesReturned.
      if (needed <= size && size >= kUlongSize) needed = ReadLeU32(buffer.data());
      // No usable size at all: grow geometrically, up to the maximum.
      if (needed <= size) needed = size == 0 ? 256 : size * 2;
      if (needed > max_bytes) {
        if (size >= max_bytes) return Finish(std::move(out), Status::kError, reply.error, "too-large");
        needed = static_cast<uint32_t>(max_bytes);
      }
      size = needed;
      continue;
    }

    if (reply.error == kWsaEinval) {
      // WSAEINVAL for an output buffer smaller than a ULONG: ask once more
      // with a ULONG before reading it as "no record".
      if (size < kUlongSize) {
        size = kUlongSize;
        continue;
      }
      return Finish(std::move(out), Status::kNotRedirected, reply.error, "not-redirected");
    }

    if (reply.error == kWsaEopnotsupp) {
      return Finish(std::move(out), Status::kNotRedirected, reply.error, "provider-lacks-ioctl");
    }

    return Finish(std::move(out), Status::kError, reply.error, "ioctl-failed");
  }
  return Finish(std::move(out), Status::kError, last_error, "size-unstable");
}

std::string FormatIPv4(const uint8_t* a) {
  char text[16];
  std::snprintf(text, sizeof text, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
  return text;
}

std::string FormatIPv6(const uint8_t* a) {
  uint16_t groups[8];
  for (int i = 0; i < 8; ++i) groups[i] = static_cast<uint16_t>((a[2 * i] << 8) | a[2 * i + 1]);

  bool mapped = true;
  for (int i = 0; i < 5; ++i) mapped = mapped && groups[i] == 0;
  if (mapped && groups[5] == 0xffff) return "::ffff:" + FormatIPv4(a + 12);

  // RFC 5952: the longest run (length >= 2, first on a tie) of zero groups becomes "::".
  int best_start = -1;
  int best_len = 0;
  for (int i = 0; i < 8;) {
    if (groups[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && groups[j] == 0) ++j;
    if (j - i > best_len && j - i >= 2) {
      best_start = i;
      best_len = j - i;
    }
    i = j;
  }

  std::string text;
  char group[8];
  for (int i = 0; i < 8; ++i) {
    if (i == best_start) {
      text += "::";
      i += best_len - 1;
      continue;
    }
    if (!text.empty() && text.back() != ':') text += ':';
    std::snprintf(group, sizeof group, "%x", groups[i]);
    text += group;
  }
  return text;
}

bool ParseWinSockaddr(const uint8_t* bytes, size_t len, Endpoint* out) {
  if (bytes == nullptr || len < 2) return false;
  int family = bytes[0] | (bytes[1] << 8);
  if (family == kWinAfInet && len >= 8) {
    out->family = 4;
    out->port = (bytes[2] << 8) | bytes[3];
    out->address = FormatIPv4(bytes + 4);
    return true;
  }
  // SOCKADDR_IN6: family, port, flowinfo (4), address (16), scope id (4).
  if (family == kWinAfInet6 && len >= 24) {
    out->family = 6;
    out->port = (bytes[2] << 8) | bytes[3];
    out->address = FormatIPv6(bytes + 8);
    return true;
  }
  return false;
}

RecordOutcome BuildRecord(const Outcome& records, const Outcome& context, int original_dst_error,
                          const uint8_t* original_dst, size_t original_dst_len) {
  RecordOutcome out;
  if (records.status != Status::kOk) {
    out.status = records.status;
    out.error = records.error;
    out.syscall = "WSAIoctl";
    out.reason = "records: " + records.reason;
    return out;
  }
  if (context.status == Status::kError) {
    out.status = Status::kError;
    out.error = context.error;
    out.syscall = "WSAIoctl";
    out.reason = "context: " + context.reason;
    return out;
  }
  if (original_dst_error != 0) {
    out.status = Status::kError;
    out.error = original_dst_error;
    out.syscall = "getsockopt";
    out.reason = "original-destination";
    return out;
  }
  if (!ParseWinSockaddr(original_dst, original_dst_len, &out.destination)) {
    out.status = Status::kError;
    out.syscall = "getsockopt";
    out.reason = "bad-sockaddr";
    return out;
  }
  out.status = Status::kOk;
  out.records = records.bytes;
  if (context.status == Status::kOk) out.context = context.bytes;
  out.reason = "ok";
  return out;
}

std::string WinErrorName(int error) {
  switch (error) {
    case 0:
      return "OK";
    case kErrorInsufficientBuffer:
      return "ERROR_INSUFFICIENT_BUFFER";
    case kErrorMoreData:
      return "ERROR_MORE_DATA";
    case kWsaEacces:
      return "WSAEACCES";
    case kWsaEfault:
      return "WSAEFAULT";
    case kWsaEinval:
      return "WSAEINVAL";
    case kWsaEnotsock:
      return "WSAENOTSOCK";
    case kWsaEopnotsupp:
      return "WSAEOPNOTSUPP";
    case kWsaEnobufs:
      return "WSAENOBUFS";
    case kWsaEnotconn:
      return "WSAENOTCONN";
    // Socket faults the Windows engine reports (winsock2.h values).
    case 10035:
      return "WSAEWOULDBLOCK";
    case 10048:
      return "WSAEADDRINUSE";
    case 10049:
      return "WSAEADDRNOTAVAIL";
    case 10050:
      return "WSAENETDOWN";
    case 10051:
      return "WSAENETUNREACH";
    case 10053:
      return "WSAECONNABORTED";
    case 10054:
      return "WSAECONNRESET";
    case 10060:
      return "WSAETIMEDOUT";
    case 10061:
      return "WSAECONNREFUSED";
    case 10065:
      return "WSAEHOSTUNREACH";
    default:
      return "WIN" + std::to_string(error);
  }
}

const char* StatusName(Status status) {
  switch (status) {
    case Status::kOk:
      return "ok";
    case Status::kNotRedirected:
      return "not-redirected";
    case Status::kError:
      return "error";
  }
  return "error";
}

}  // namespace wfp
}  // namespace rxredirect
