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

// Growth may never take more than maxPipeBytes / kGrowthShareDivisor beyond
// the base pipes: the rest stays free for new connections' base pipes.
constexpr int64_t kGrowthShareDivisor = 2;

struct Stats {
  int threads;
  int relays;
  int pipes;
  int64_t pipeBytes;   // reserved: base pipes plus growth
  int64_t grownBytes;  // the part of pipeBytes that relays grew beyond their base pipe
  uint64_t growths;    // pipe doublings since the process started
  uint64_t growthFailures;  // F_SETPIPE_SZ refusals (each relay stops asking after one)
};

// Called on an engine thread, outside any engine lock.
using ReportSink = std::function<void(const Report&)>;

void SetReportSink(ReportSink sink);

// The thread count only applies before the first relay starts.
void Configure(const Budget& budget);
Budget CurrentBudget();

// dup()s both fds and starts relaying. `pairWith` names the relay of the
// other direction of the same connection (0: none): the two share a thread,
// and an error on one stops the other at once (reported as an error too).
// Returns the relay id (> 0), 0 when the pipe budget is spent, or -errno.
int64_t Start(int srcFd, int dstFd, uint64_t pairWith);

// Stops a relay and closes its dups before returning. Returns false when the
// relay had already finished (its final report is on its way).
bool Abort(uint64_t id, uint64_t* bytesIn, uint64_t* bytesOut);

// Totals so far of a running relay (false when it already finished).
bool Progress(uint64_t id, uint64_t* bytesIn, uint64_t* bytesOut);

Stats CurrentStats();

// Stops and joins the threads, closing every relay (environment teardown).
void Shutdown();

}  // namespace splice
}  // namespace rxredirect
