// Winsock side of WFP redirection on one SOCKET: reading the redirect
// records, context and SO_ORIGINAL_DST of an accepted connection, and making
// an outbound socket that carries the records (set BEFORE connect, so the
// callout recognises its own proxy's connection and does not redirect it again).
#pragma once

#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0A00
#endif
#include <winsock2.h>
#include <ws2tcpip.h>

#include <cstdint>
#include <vector>

#include "../wfp-logic.h"

namespace rxredirect {

// Never throws: faults come back in the outcome (they end one connection only).
wfp::RecordOutcome QueryWfpRecord(SOCKET socket);

// Non-blocking TCP socket of `family` (AF_INET / AF_INET6), optionally bound
// to `bind`, with the redirect records set when `records` is not empty.
// INVALID_SOCKET on failure, with the Windows error in *error and the failing
// call in *syscall.
SOCKET CreateRedirectedSocket(int family, const std::vector<uint8_t>& records, const sockaddr_storage* bind,
                              int bind_len, int* error, const char** syscall);

// Fills an address from an IP literal; false when it is not one of `family`.
bool ParseWinEndpoint(int family, const char* address, int port, sockaddr_storage* out, int* len);

}  // namespace rxredirect
