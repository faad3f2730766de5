// One relay's bytes: src socket -> pipe -> dst socket with splice(2), a pipe
// taken from the pool (pipe-pool.h) only while bytes are in flight, and a
// copy through the engine thread's buffer when none is to be had. The threads,
// epoll and lifecycle around it are in splice-engine.cc.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "pipe-pool.h"
#include "splice-engine.h"

namespace rxredirect {
namespace splice {

using Clock = std::chrono::steady_clock;

struct Relay {
  uint64_t id = 0;
  int src = -1;  // Node's fds: never closed here
  int dst = -1;
  Pipe pipe;          // held only while bytes are in flight (pipe-pool.h)
  size_t inPipe = 0;  // > 0 implies pipe.held()
  int fullRounds = 0;  // rounds in a row in which the pipe limited the flow
  uint64_t bytesIn = 0;
  uint64_t bytesOut = 0;
  uint64_t reportedOut = 0;
  Clock::time_point lastReport{};
  bool srcEof = false;
  uint64_t eofAtNs = 0;  // CLOCK_MONOTONIC when srcEof was read
  bool queued = false;
  bool sinkFault = false;
  // The last turn ended waiting for the sink (bytes in the pipe, or a copy it
  // refused): only its EPOLLOUT can move this relay on. Gates the wakeups: the
  // one epoll entry per socket reports its whole readiness on every edge, so
  // without it a data edge on a socket would also pump the relay that writes
  // to it, and an idle direction would take a pipe for nothing.
  bool sinkBlocked = false;
  bool copyRefused = false;  // this round's copy left bytes the sink did not take
  // The relay of the other direction of the same connection (same worker), or 0.
  uint64_t peer = 0;
};

enum class Outcome { kBlocked, kMore, kEnd, kError };

// Moves what it can, at most kRoundsPerTurn rounds. Caller holds the lock of
// the worker that owns the relay; `bounce` is that worker's copy buffer. On
// kBlocked the pipe goes back to the pool if empty and sinkBlocked says
// whether only the sink's EPOLLOUT can move the relay on.
Outcome Pump(Relay& r, std::vector<char>& bounce, int* err, Side* side);

// Bytes moved by copying since the process started.
uint64_t CopiedBytes();

}  // namespace splice
}  // namespace rxredirect
