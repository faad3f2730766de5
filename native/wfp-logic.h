// Portable half of the Windows WFP support: the buffer-size negotiation of the
// SIO_QUERY_WFP_CONNECTION_REDIRECT_* ioctls, parsing of the SO_ORIGINAL_DST
// sockaddr, and the outcome a query hands to JS. No Windows (or N-API) header
// is needed, so the same code is compiled into the Linux addon and driven
// there with scripted ioctl replies (test-only exports in wfp-test-exports.cc).
// See docs/windows.md for the rules this implements.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace rxredirect {
namespace wfp {

// Windows error values, fixed by the Windows ABI (winerror.h / winsock2.h).
constexpr int kErrorInsufficientBuffer = 122;  // ERROR_INSUFFICIENT_BUFFER
constexpr int kErrorMoreData = 234;            // ERROR_MORE_DATA
constexpr int kWsaEacces = 10013;
constexpr int kWsaEfault = 10014;
constexpr int kWsaEinval = 10022;
constexpr int kWsaEnotsock = 10038;
constexpr int kWsaEopnotsupp = 10045;
constexpr int kWsaEnobufs = 10055;
constexpr int kWsaEnotconn = 10057;

// _WSAIOW(IOC_VENDOR, 220/221/222); mingw's headers lack them.
constexpr uint32_t kSioQueryRedirectRecords = 0x980000DC;
constexpr uint32_t kSioQueryRedirectContext = 0x980000DD;
constexpr uint32_t kSioSetRedirectRecords = 0x980000DE;

// Windows' SO_ORIGINAL_DST (SOL_SOCKET level) and address families.
constexpr int kSoOriginalDst = 0x300F;
constexpr int kWinAfInet = 2;
constexpr int kWinAfInet6 = 23;

// UDP control-message types (IPPROTO_IP / IPPROTO_IPV6 level).
constexpr int kIpWfpRedirectRecords = 60;
constexpr int kIpWfpRedirectContext = 70;

// Redirect records and contexts are tens to hundreds of bytes; anything past
// this is a provider bug, not something to allocate for.
constexpr size_t kDefaultMaxBytes = 64 * 1024;
// Bounded retries: the required size may grow between calls (a racing
// provider), but not forever.
constexpr int kMaxAttempts = 6;
// The smallest buffer a provider accepts before it reports a size (a ULONG).
constexpr uint32_t kUlongSize = 4;

// One call of WSAIoctl(code, nullptr, 0, out, out_len, &bytes_returned):
// error is 0 on success, else WSAGetLastError().
struct IoctlReply {
  int error;
  uint32_t bytes_returned;
};

// Writes at most out_len bytes to out (out is nullptr when out_len is 0).
using IoctlFn = std::function<IoctlReply(uint32_t code, uint8_t* out, uint32_t out_len)>;

enum class Status {
  kOk,              // bytes hold the records / context
  kNotRedirected,   // no record: the flow was not redirected, or the provider lacks the ioctl
  kError,           // a real fault of this socket (ends this connection only)
};

struct Outcome {
  Status status = Status::kError;
  std::vector<uint8_t> bytes;
  int error = 0;               // the Windows error of the last call, 0 when none
  std::string reason;          // short machine-friendly reason ("too-large", "provider-lacks-ioctl", …)
  std::vector<uint32_t> asks;  // out_len of every call, in order (for tests and diagnostics)
};

// Runs the negotiation: ask with size 0, grow to the size the provider
// reports, never beyond max_bytes, at most kMaxAttempts calls.
Outcome Negotiate(uint32_t code, const IoctlFn& ioctl, size_t max_bytes = kDefaultMaxBytes);

struct Endpoint {
  int family = 0;  // 4 or 6
  std::string address;
  int port = 0;
};

// Parses a Windows SOCKADDR_IN (16 bytes) or SOCKADDR_IN6 (28 bytes) as
// SO_ORIGINAL_DST returns it: family in little-endian host order, port in
// network order. False when the bytes are not one of those.
bool ParseWinSockaddr(const uint8_t* bytes, size_t len, Endpoint* out);

// Canonical text forms (RFC 5952 for IPv6; v4-mapped kept as ::ffff:a.b.c.d).
std::string FormatIPv4(const uint8_t* addr);
std::string FormatIPv6(const uint8_t* addr);

struct RecordOutcome {
  Status status = Status::kError;
  Endpoint destination;
  std::vector<uint8_t> records;
  std::vector<uint8_t> context;
  int error = 0;
  std::string syscall;
  std::string reason;
};

// Combines the two queries and SO_ORIGINAL_DST into what JS receives. Records
// decide: none means not redirected. A missing context is normal (the callout
// set none). A failed or unparsable SO_ORIGINAL_DST on a redirected flow is an error.
RecordOutcome BuildRecord(const Outcome& records, const Outcome& context, int original_dst_error,
                          const uint8_t* original_dst, size_t original_dst_len);

// "WSAEFAULT", "ERROR_INSUFFICIENT_BUFFER", …; "WIN<n>" for the rest.
std::string WinErrorName(int error);

const char* StatusName(Status status);

}  // namespace wfp
}  // namespace rxredirect
