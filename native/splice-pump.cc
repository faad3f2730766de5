#include "splice-pump.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace rxredirect {
namespace splice {

namespace {

// Pump rounds per relay per turn, so one busy relay cannot starve the others.
constexpr int kRoundsPerTurn = 16;
constexpr unsigned kSpliceFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
// A relay doubles its pipe after this many rounds in a row in which the pipe
// was the narrowest point: the source filled it to capacity and the sink then
// took all of it.
constexpr int kGrowAfterFullRounds = 2;
// The copy path's buffer per engine thread (used only when no pipe is free).
constexpr size_t kBounceBytes = 64 << 10;

std::atomic<uint64_t> gCopiedBytes{0};

uint64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// A read returned 0. An RST that arrived with unread data can read as EOF;
// the kernel still holds the error. A FIN is passed on only when there is none.
bool SourceEof(Relay& r, int* err, Side* side) {
  int e = 0;
  socklen_t len = sizeof e;
  if (getsockopt(r.src, SOL_SOCKET, SO_ERROR, &e, &len) == 0 && e != 0) {
    *err = e;
    *side = Side::kSource;
    return false;
  }
  r.srcEof = true;
  r.eofAtNs = MonotonicNs();
  return true;
}

// One round without a pipe: peek what the source has, send what the sink
// takes, then discard exactly that from the source (MSG_TRUNC: TCP drops it
// without copying). Bytes the sink did not take stay in the source's queue,
// so nothing is held here between rounds and nothing is lost or reordered.
bool CopyRound(Relay& r, std::vector<char>& bounce, bool* progress, int* err, Side* side) {
  if (bounce.empty()) bounce.resize(kBounceBytes);
  ssize_t n = recv(r.src, bounce.data(), bounce.size(), MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) {
    if (!SourceEof(r, err, side)) return false;
    *progress = true;
    return true;
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return true;
    *err = errno;
    *side = Side::kSource;
    return false;
  }
  ssize_t m = send(r.dst, bounce.data(), static_cast<size_t>(n), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (m < n) r.copyRefused = true;  // the sink is full: its EPOLLOUT moves us on
  if (m < 0) {
    if (errno == EAGAIN || errno == EINTR) return true;
    *err = errno;
    *side = Side::kSink;
    return false;
  }
  ssize_t dropped = m > 0 ? recv(r.src, nullptr, static_cast<size_t>(m), MSG_TRUNC | MSG_DONTWAIT) : 0;
  if (dropped != m) {
    // Cannot happen (the bytes were peeked, and only this thread reads the
    // source); if it did, the stream would be corrupt: fail the connection.
    *err = dropped < 0 ? errno : EIO;
    *side = Side::kSource;
    return false;
  }
  r.bytesIn += static_cast<uint64_t>(m);
  r.bytesOut += static_cast<uint64_t>(m);
  gCopiedBytes.fetch_add(static_cast<uint64_t>(m));
  if (m > 0) *progress = true;
  return true;
}

Outcome PumpRounds(Relay& r, std::vector<char>& bounce, int* err, Side* side) {
  // Once the pool refused this turn, the rest of the turn copies: asking again every round
  // would take the pool's lock (and, out of descriptors, fail a pipe2) up to kRoundsPerTurn times.
  bool poolRefused = false;
  for (int round = 0; round < kRoundsPerTurn; ++round) {
    bool progress = false;
    bool filled = false;  // this round's read left the pipe full: the source had more
    r.copyRefused = false;  // about this round only: the last one decides sinkBlocked
    if (!r.srcEof && !r.pipe.held() && (poolRefused || !Acquire(&r.pipe))) {
      poolRefused = true;
      // No pipe to be had (budget spent, or out of descriptors): copy this
      // round instead of waiting (docs/zero-copy.md says why).
      if (!CopyRound(r, bounce, &progress, err, side)) return Outcome::kError;
    } else {
      if (!r.srcEof && r.inPipe < r.pipe.cap) {
        ssize_t n = ::splice(r.src, nullptr, r.pipe.writeFd, nullptr, r.pipe.cap - r.inPipe, kSpliceFlags);
        if (n > 0) {
          r.inPipe += static_cast<size_t>(n);
          r.bytesIn += static_cast<uint64_t>(n);
          progress = true;
          filled = r.inPipe == r.pipe.cap;
          if (!filled) r.fullRounds = 0;
        } else if (n == 0) {
          if (!SourceEof(r, err, side)) return Outcome::kError;
          progress = true;
        } else if (errno != EAGAIN && errno != EINTR) {
          *err = errno;
          *side = Side::kSource;
          return Outcome::kError;
        }
        // EAGAIN can also mean the pipe ran out of slots; it is retried after
        // every write that frees some, so no wakeup is lost.
      }
      if (r.inPipe > 0) {
        ssize_t n = ::splice(r.pipe.readFd, nullptr, r.dst, nullptr, r.inPipe, kSpliceFlags);
        if (n > 0) {
          r.inPipe -= static_cast<size_t>(n);
          r.bytesOut += static_cast<uint64_t>(n);
          progress = true;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          *err = errno;
          *side = Side::kSink;
          return Outcome::kError;
        }
      }
      // The pipe, not the sink, limited this round: a bigger pipe moves more per
      // splice. (A full pipe the sink cannot empty only buffers: no growth then.)
      if (filled && r.inPipe == 0 && r.pipe.canGrow && ++r.fullRounds >= kGrowAfterFullRounds) {
        r.fullRounds = 0;
        Grow(&r.pipe);
      }
    }
    if (r.srcEof && r.inPipe == 0) {
      // Everything read has been written: pass the FIN on (half-close).
      if (shutdown(r.dst, SHUT_WR) != 0 && errno != ENOTCONN) {
        *err = errno;
        *side = Side::kSink;
        return Outcome::kError;
      }
      return Outcome::kEnd;
    }
    if (!progress) return Outcome::kBlocked;
  }
  return Outcome::kMore;
}

}  // namespace

Outcome Pump(Relay& r, std::vector<char>& bounce, int* err, Side* side) {
  if (r.sinkFault) {
    // The sink reported an error while we had nothing to write to it.
    r.sinkFault = false;
    int e = 0;
    socklen_t len = sizeof e;
    if (getsockopt(r.dst, SOL_SOCKET, SO_ERROR, &e, &len) == 0 && e != 0) {
      *err = e;
      *side = Side::kSink;
      return Outcome::kError;
    }
  }
  r.sinkBlocked = false;
  Outcome o = PumpRounds(r, bounce, err, side);
  // Blocked with bytes in the pipe (or a copy refused) means the sink is full:
  // a round makes no progress only when the write would block.
  if (o == Outcome::kBlocked) r.sinkBlocked = r.inPipe > 0 || r.copyRefused;
  // An empty pipe goes back to the pool, so an idle relay holds none. (After
  // kMore the relay runs again at once: it keeps its pipe; kEnd and kError
  // give it back in Release.)
  if (o == Outcome::kBlocked && r.inPipe == 0) Return(&r.pipe);
  return o;
}

uint64_t CopiedBytes() { return gCopiedBytes.load(); }

}  // namespace splice
}  // namespace rxredirect
