// The zero-copy relay engine: a small fixed pool of native threads, each
// with one epoll over many relays. A relay moves one direction of a TCP flow
// (src socket -> pipe -> dst socket) with splice(2), so the bytes never reach
// user space. No N-API here: splice-relay.cc binds it to JS.
#pragma once

#include <cstdint>
#include <functional>

namespace rxredirect {
namespace splice {

enum class ReportKind : int { kProgress = 0, kEnd = 1, kError = 2 };

// Which socket of a relay failed.
enum class Side : int { kSource = 0, kSink = 1 };

struct Report {
  uint64_t id;
  ReportKind kind;
  uint64_t bytesIn;   // read from src into the pipe
  uint64_t bytesOut;  // written from the pipe to dst
  int err;            // errno for kError, else 0
  Side side;
  // kEnd: when the source's EOF was read, in ns of CLOCK_MONOTONIC (the clock of
  // Node's process.hrtime), so the core can tell which side closed first.
  uint64_t eofAtNs = 0;
};

struct Budget {
  int threads = 2;
  int maxPipes = 1024;
  int64_t maxPipeBytes = 32 << 20;  // half of the default fs.pipe-user-pages-soft
  int pipeSize = 64 << 10;          // every relay starts with this
  int maxPipeSize = 1 << 20;        // a busy relay may double its pipe up to this (>= pipeSize)
};

// Descriptors a spliced connection costs (docs/zero-copy.md, "Descriptors and
// the pipe pool"): its two sockets, which Node owns (the engine holds no dups),
// plus a pipe (two ends) per direction with bytes in flight.
constexpr int kDescriptorsIdleConnection = 2;
constexpr int kDescriptorsBusyConnection = 2 + 2 * 2;

struct Stats {
  int threads;
  int relays;
  int pipes;           // open: held by relays plus free in the pool
  int pipesInUse;      // held by relays with bytes in flight
  int pooledPipes;     // free in the pool
  int64_t pipeBytes;   // reserved: base pipes plus growth
  int64_t grownBytes;  // the part of pipeBytes that pipes grew beyond their base size
  uint64_t growths;    // pipe doublings since the process started
  uint64_t growthFailures;  // F_SETPIPE_SZ refusals (a pipe is not asked again after one)
  uint64_t copiedBytes;     // moved through the bounce buffer: no pipe was to be had
  int descriptors;          // held by the engine now: two per pipe, two per thread
};

// Called on an engine thread, outside any engine lock.
using ReportSink = std::function<void(const Report&)>;

void SetReportSink(ReportSink sink);

// The thread count only applies before the first relay starts. Closes the
// pool's free pipes (held pipes keep their size until they are closed).
void Configure(const Budget& budget);
Budget CurrentBudget();

// Starts relaying on the caller's fds (no dups: the caller must Abort before
// it closes either). `pairWith` names the relay of the other direction of the
// same connection (0: none): the two share a thread, and an error on one
// stops the other at once (reported as an error too). No pipe is taken yet.
// Returns the relay id (> 0), 0 when the budget can never give a pipe (the
// engine is off), or -errno.
int64_t Start(int srcFd, int dstFd, uint64_t pairWith);

// Stops a relay: when this returns the engine will not touch its fds again.
// Returns false when the relay had already finished (its final report is on
// its way, and the engine is done with the fds too).
bool Abort(uint64_t id, uint64_t* bytesIn, uint64_t* bytesOut);

// Totals so far of a running relay (false when it already finished).
bool Progress(uint64_t id, uint64_t* bytesIn, uint64_t* bytesOut);

Stats CurrentStats();

// Stops and joins the threads, closing every relay (environment teardown).
void Shutdown();

}  // namespace splice
}  // namespace rxredirect
