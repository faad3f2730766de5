#include "splice-engine.h"

#include "pipe-pool.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace rxredirect {
namespace splice {

namespace {

using Clock = std::chrono::steady_clock;

// Progress is reported at most this often per relay, and at least this soon
// after the last byte moved (the JS idle timer relies on it).
constexpr auto kReportInterval = std::chrono::milliseconds(100);
// Pump rounds per relay per turn, so one busy relay cannot starve the others.
constexpr int kRoundsPerTurn = 16;
constexpr unsigned kSpliceFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
// A relay doubles its pipe after this many rounds in a row in which the pipe
// was the narrowest point: the source filled it to capacity and the sink then
// took all of it.
constexpr int kGrowAfterFullRounds = 2;
// The copy path's buffer per engine thread (used only when no pipe is free).
constexpr size_t kBounceBytes = 64 << 10;
// How often a thread looks for free pipes unused for kPoolIdleMs.
constexpr auto kTrimInterval = std::chrono::milliseconds(250);

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

using RelayMap = std::unordered_map<uint64_t, std::unique_ptr<Relay>>;

// One epoll entry per socket: the two directions of a connection share their
// sockets (one reads what the other writes), and epoll takes an fd once.
struct Interest {
  uint64_t reader = 0;  // the relay whose source this socket is
  uint64_t writer = 0;  // the relay whose sink this socket is
};

struct Worker {
  int epoll = -1;
  int wake = -1;
  std::thread thread;
  std::mutex mu;  // guards relays, sockets and bounce; held while pumping
  RelayMap relays;
  std::unordered_map<int, Interest> sockets;
  // Copies go through here when no pipe is to be had; nothing stays in it
  // between rounds. Allocated on first use.
  std::vector<char> bounce;
  Clock::time_point lastTrim{};
};

enum class Outcome { kBlocked, kMore, kEnd, kError };

std::mutex gEngineMu;  // guards gWorkers creation/teardown and gBudget
// Never destroyed: engine threads may still run while static destructors do
// (process.exit() skips the environment cleanup hook that joins them).
std::vector<std::unique_ptr<Worker>>& gWorkers = *new std::vector<std::unique_ptr<Worker>>();
Budget gBudget;
ReportSink& gSink = *new ReportSink();
std::atomic<bool> gStopping{false};
std::atomic<uint64_t> gNextId{1};
std::atomic<size_t> gNextWorker{0};
std::atomic<uint64_t> gCopiedBytes{0};

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

uint32_t MaskOf(const Interest& i) {
  uint32_t mask = EPOLLET;
  if (i.reader != 0) mask |= EPOLLIN | EPOLLRDHUP;
  if (i.writer != 0) mask |= EPOLLOUT;
  return mask;
}

// Adds relay `id` as the reader or writer of `fd`. Caller holds the worker's
// lock. Returns 0 or an errno.
int Watch(Worker& w, int fd, uint64_t id, bool reader) {
  auto [it, inserted] = w.sockets.try_emplace(fd);
  Interest next = it->second;
  uint64_t& slot = reader ? next.reader : next.writer;
  if (slot != 0) return EBUSY;  // another relay already reads (or writes) this socket
  slot = id;
  epoll_event ev{};
  ev.events = MaskOf(next);
  ev.data.u64 = static_cast<uint64_t>(fd) + 1;  // 0 is the wake eventfd
  int rc = epoll_ctl(w.epoll, inserted ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
  // MOD re-checks readiness, so an edge that came before is not lost. ENOENT:
  // the kernel dropped a stale entry (its file was closed); add it afresh.
  if (rc != 0 && !inserted && errno == ENOENT) rc = epoll_ctl(w.epoll, EPOLL_CTL_ADD, fd, &ev);
  if (rc != 0) {
    int e = errno;
    if (inserted) w.sockets.erase(it);
    return e;
  }
  it->second = next;
  return 0;
}

// Removes relay `id` from `fd`'s entry. Caller holds the worker's lock.
void Unwatch(Worker& w, int fd, uint64_t id) {
  auto it = w.sockets.find(fd);
  if (it == w.sockets.end()) return;
  Interest& i = it->second;
  if (i.reader == id) i.reader = 0;
  if (i.writer == id) i.writer = 0;
  if (i.reader == 0 && i.writer == 0) {
    epoll_ctl(w.epoll, EPOLL_CTL_DEL, fd, nullptr);
    w.sockets.erase(it);
    return;
  }
  epoll_event ev{};
  ev.events = MaskOf(i);
  ev.data.u64 = static_cast<uint64_t>(fd) + 1;
  epoll_ctl(w.epoll, EPOLL_CTL_MOD, fd, &ev);
}

// Caller holds the worker's lock. The engine is done with the relay's fds
// when this returns; its pipe goes back to the pool if empty, else is closed.
void Release(Worker& w, Relay& r) {
  Unwatch(w, r.src, r.id);
  Unwatch(w, r.dst, r.id);
  if (r.inPipe == 0) Return(&r.pipe);
  else Close(&r.pipe);
  r.inPipe = 0;
}

// Runs fn(worker, relay) under that worker's lock for the relay `id`, which
// any worker may own; false when none has it (ended, or aborted already).
template <typename Fn>
bool WithRelay(uint64_t id, Fn&& fn) {
  std::vector<Worker*> workers;
  {
    std::lock_guard<std::mutex> lock(gEngineMu);
    for (auto& w : gWorkers) workers.push_back(w.get());
  }
  for (Worker* w : workers) {
    std::lock_guard<std::mutex> lock(w->mu);
    auto it = w->relays.find(id);
    if (it == w->relays.end()) continue;
    fn(*w, it);
    return true;
  }
  return false;
}

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
bool CopyRound(Worker& w, Relay& r, bool* progress, int* err, Side* side) {
  if (w.bounce.empty()) w.bounce.resize(kBounceBytes);
  ssize_t n = recv(r.src, w.bounce.data(), w.bounce.size(), MSG_PEEK | MSG_DONTWAIT);
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
  ssize_t m = send(r.dst, w.bounce.data(), static_cast<size_t>(n), MSG_DONTWAIT | MSG_NOSIGNAL);
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

Outcome PumpRounds(Worker& w, Relay& r, int* err, Side* side) {
  for (int round = 0; round < kRoundsPerTurn; ++round) {
    bool progress = false;
    bool filled = false;  // this round's read left the pipe full: the source had more
    r.copyRefused = false;  // about this round only: the last one decides sinkBlocked
    if (!r.srcEof && !r.pipe.held() && !Acquire(&r.pipe)) {
      // No pipe to be had (budget spent, or out of descriptors): copy this
      // round instead of waiting (docs/zero-copy.md says why).
      if (!CopyRound(w, r, &progress, err, side)) return Outcome::kError;
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

Outcome Pump(Worker& w, Relay& r, int* err, Side* side) {
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
  Outcome o = PumpRounds(w, r, err, side);
  // Blocked with bytes in the pipe (or a copy refused) means the sink is full:
  // a round makes no progress only when the write would block.
  if (o == Outcome::kBlocked) r.sinkBlocked = r.inPipe > 0 || r.copyRefused;
  // An empty pipe goes back to the pool, so an idle relay holds none. (After
  // kMore the relay runs again at once: it keeps its pipe; kEnd and kError
  // give it back in Release.)
  if (o == Outcome::kBlocked && r.inPipe == 0) Return(&r.pipe);
  return o;
}

void Run(Worker* w) {
  epoll_event events[128];
  std::vector<uint64_t> ready;
  std::vector<uint64_t> again;
  std::unordered_set<uint64_t> dirty;
  std::vector<Report> out;
  while (!gStopping.load()) {
    // While the pool has free pipes, wake now and then to close the unused ones.
    const bool trimming = FreePipes() > 0;
    int timeout = !ready.empty()                             ? 0
                  : !dirty.empty()                           ? static_cast<int>(kReportInterval.count())
                  : trimming                                 ? static_cast<int>(kTrimInterval.count())
                                                             : -1;
    int n = epoll_wait(w->epoll, events, 128, timeout);
    if (n < 0) {
      if (errno != EINTR) break;
      n = 0;
    }
    out.clear();
    {
      std::lock_guard<std::mutex> lock(w->mu);
      for (int i = 0; i < n; ++i) {
        uint64_t data = events[i].data.u64;
        if (data == 0) {
          uint64_t drained;
          (void)!read(w->wake, &drained, sizeof drained);
          continue;
        }
        auto sock = w->sockets.find(static_cast<int>(data - 1));
        if (sock == w->sockets.end()) continue;  // its relays ended since the event was queued
        const uint32_t ev = events[i].events;
        auto queue = [&](uint64_t id, bool sinkSide) {
          auto it = w->relays.find(id);
          if (it == w->relays.end()) return;
          Relay& r = *it->second;
          if (sinkSide && (ev & (EPOLLERR | EPOLLHUP)) != 0) r.sinkFault = true;
          if (!r.queued) {
            r.queued = true;
            ready.push_back(r.id);
          }
        };
        const Interest interest = sock->second;
        constexpr uint32_t kAlways = EPOLLRDHUP | EPOLLHUP | EPOLLERR;
        if (interest.reader != 0) {
          // New bytes help a relay only if it is not waiting for its sink.
          auto reader = w->relays.find(interest.reader);
          bool blocked = reader != w->relays.end() && reader->second->sinkBlocked;
          if ((ev & kAlways) != 0 || ((ev & EPOLLIN) != 0 && !blocked)) queue(interest.reader, false);
        }
        if (interest.writer != 0) {
          // Room in the sink helps a relay only if it was waiting for it.
          auto writer = w->relays.find(interest.writer);
          bool blocked = writer != w->relays.end() && writer->second->sinkBlocked;
          if ((ev & (EPOLLHUP | EPOLLERR)) != 0 || ((ev & EPOLLOUT) != 0 && blocked)) queue(interest.writer, true);
        }
      }
      again.clear();
      for (uint64_t id : ready) {
        auto it = w->relays.find(id);
        if (it == w->relays.end()) continue;
        Relay& r = *it->second;
        r.queued = false;
        int err = 0;
        Side side = Side::kSource;
        Outcome o = Pump(*w, r, &err, &side);
        if (o == Outcome::kEnd || o == Outcome::kError) {
          out.push_back(Report{r.id, o == Outcome::kEnd ? ReportKind::kEnd : ReportKind::kError, r.bytesIn,
                               r.bytesOut, err, side, r.eofAtNs});
          uint64_t peerId = r.peer;
          Release(*w, r);
          dirty.erase(id);
          w->relays.erase(it);
          auto peer = peerId != 0 ? w->relays.find(peerId) : w->relays.end();
          if (peer != w->relays.end()) {
            Relay& p = *peer->second;
            if (o == Outcome::kError) {
              // The connection is failing: stop the other direction before it can
              // pass on a FIN (after a reset, its read may return EOF).
              Side flipped = side == Side::kSource ? Side::kSink : Side::kSource;
              out.push_back(Report{p.id, ReportKind::kError, p.bytesIn, p.bytesOut, err, flipped});
              Release(*w, p);
              dirty.erase(peerId);
              w->relays.erase(peer);
            } else {
              p.peer = 0;
            }
          }
          continue;
        }
        if (o == Outcome::kMore) {
          r.queued = true;
          again.push_back(id);
        }
        if (r.bytesOut != r.reportedOut) dirty.insert(id);
      }
      ready.swap(again);
      if (!dirty.empty()) {
        auto now = Clock::now();
        for (auto it = dirty.begin(); it != dirty.end();) {
          auto found = w->relays.find(*it);
          if (found == w->relays.end()) {
            it = dirty.erase(it);
            continue;
          }
          Relay& r = *found->second;
          if (now - r.lastReport < kReportInterval) {
            ++it;
            continue;
          }
          out.push_back(Report{r.id, ReportKind::kProgress, r.bytesIn, r.bytesOut, 0, Side::kSource});
          r.reportedOut = r.bytesOut;
          r.lastReport = now;
          it = dirty.erase(it);
        }
      }
    }
    if (gSink) {
      for (const Report& report : out) gSink(report);
    }
    if (trimming) {
      auto now = Clock::now();
      if (now - w->lastTrim >= kTrimInterval) {
        w->lastTrim = now;
        Trim();
      }
    }
  }
}

// Caller holds gEngineMu.
int StartWorkersLocked() {
  if (!gWorkers.empty()) return 0;
  for (int i = 0; i < gBudget.threads; ++i) {
    auto w = std::make_unique<Worker>();
    w->epoll = epoll_create1(EPOLL_CLOEXEC);
    w->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->epoll < 0 || w->wake < 0) {
      int e = errno;
      CloseFd(w->epoll);
      CloseFd(w->wake);
      return e;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 0;
    epoll_ctl(w->epoll, EPOLL_CTL_ADD, w->wake, &ev);
    Worker* raw = w.get();
    gWorkers.push_back(std::move(w));
    raw->thread = std::thread(Run, raw);
  }
  return 0;
}

}  // namespace

void SetReportSink(ReportSink sink) {
  std::lock_guard<std::mutex> lock(gEngineMu);
  gSink = std::move(sink);
}

void Configure(const Budget& budget) {
  std::lock_guard<std::mutex> lock(gEngineMu);
  int threads = gWorkers.empty() ? budget.threads : gBudget.threads;
  gBudget = budget;
  gBudget.threads = threads;
  ConfigurePool(PoolLimits{budget.maxPipes, budget.maxPipeBytes, budget.pipeSize, budget.maxPipeSize});
  // Free pipes were sized and counted under the old budget: close them, so the
  // new one applies to every pipe from now on (held pipes keep their size).
  DrainPool();
}

Budget CurrentBudget() {
  std::lock_guard<std::mutex> lock(gEngineMu);
  return gBudget;
}

int64_t Start(int srcFd, int dstFd, uint64_t pairWith) {
  Worker* w = nullptr;
  {
    std::lock_guard<std::mutex> lock(gEngineMu);
    if (gStopping.load()) return -ECANCELED;
    // A budget that can never give a pipe turns the engine off: the direction
    // stays on the JS path.
    if (!PoolCanEverGive()) return 0;
    int e = StartWorkersLocked();
    if (e != 0) return -e;
    if (pairWith != 0) {
      for (auto& candidate : gWorkers) {
        std::lock_guard<std::mutex> wl(candidate->mu);
        if (candidate->relays.count(pairWith) != 0) w = candidate.get();
      }
    }
    if (w == nullptr) w = gWorkers[gNextWorker.fetch_add(1) % gWorkers.size()].get();
  }
  // No pipe and no dups yet: a relay takes a pipe from the pool when its
  // source has bytes, and uses Node's fds (JS aborts before it closes them).
  auto r = std::make_unique<Relay>();
  r->src = srcFd;
  r->dst = dstFd;
  r->id = gNextId.fetch_add(1);
  r->lastReport = Clock::time_point{};  // the first bytes are reported at once
  const uint64_t id = r->id;
  std::lock_guard<std::mutex> lock(w->mu);
  if (int e = Watch(*w, srcFd, id, true); e != 0) return -e;
  if (int e = Watch(*w, dstFd, id, false); e != 0) {
    Unwatch(*w, srcFd, id);
    return -e;
  }
  auto peer = pairWith != 0 ? w->relays.find(pairWith) : w->relays.end();
  if (peer != w->relays.end() && peer->second->peer == 0) {
    r->peer = pairWith;
    peer->second->peer = id;
  }
  w->relays.emplace(id, std::move(r));
  return static_cast<int64_t>(id);
}

bool Abort(uint64_t id, uint64_t* bytesIn, uint64_t* bytesOut) {
  bool returnedPipe = false;
  Worker* owner = nullptr;
  bool found = WithRelay(id, [&](Worker& w, RelayMap::iterator it) {
    Relay& r = *it->second;
    *bytesIn = r.bytesIn;
    *bytesOut = r.bytesOut;
    auto peer = r.peer != 0 ? w.relays.find(r.peer) : w.relays.end();
    if (peer != w.relays.end()) peer->second->peer = 0;
    returnedPipe = r.pipe.held() && r.inPipe == 0;
    owner = &w;
    Release(w, r);
    w.relays.erase(it);
  });
  // A pipe went back to the pool from this thread: make sure an engine thread
  // that sleeps without a timeout starts trimming.
  if (returnedPipe && owner != nullptr) {
    uint64_t one = 1;
    (void)!write(owner->wake, &one, sizeof one);
  }
  return found;
}

bool Progress(uint64_t id, uint64_t* bytesIn, uint64_t* bytesOut) {
  return WithRelay(id, [&](Worker&, RelayMap::iterator it) {
    *bytesIn = it->second->bytesIn;
    *bytesOut = it->second->bytesOut;
  });
}

Stats CurrentStats() {
  std::lock_guard<std::mutex> lock(gEngineMu);
  PoolStats pool = CurrentPoolStats();
  Stats s{};
  s.threads = static_cast<int>(gWorkers.size());
  s.pipes = pool.pipes;
  s.pipesInUse = pool.held;
  s.pooledPipes = pool.free;
  s.pipeBytes = pool.pipeBytes;
  s.grownBytes = pool.grownBytes;
  s.growths = pool.growths;
  s.growthFailures = pool.growthFailures;
  s.copiedBytes = gCopiedBytes.load();
  s.descriptors = 2 * pool.pipes + 2 * s.threads;  // each thread: an epoll and an eventfd
  for (auto& w : gWorkers) {
    std::lock_guard<std::mutex> wl(w->mu);
    s.relays += static_cast<int>(w->relays.size());
  }
  return s;
}

void Shutdown() {
  std::lock_guard<std::mutex> lock(gEngineMu);
  gStopping.store(true);
  for (auto& w : gWorkers) {
    uint64_t one = 1;
    (void)!write(w->wake, &one, sizeof one);
  }
  for (auto& w : gWorkers) {
    if (w->thread.joinable()) w->thread.join();
    for (auto& [id, r] : w->relays) Release(*w, *r);
    w->relays.clear();
    CloseFd(w->epoll);
    CloseFd(w->wake);
  }
  gWorkers.clear();
  DrainPool();
  gSink = nullptr;
}

}  // namespace splice
}  // namespace rxredirect
