// The engine's threads: each one epoll over many relays (one entry per
// socket), the wakeups that pump them (splice-pump.cc), their reports, and
// the relays' lifecycle (start, abort, stats, shutdown).
#include "splice-engine.h"

#include "pipe-pool.h"
#include "splice-pump.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
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

// Progress is reported at most this often per relay, and at least this soon
// after the last byte moved (the JS idle timer relies on it).
constexpr auto kReportInterval = std::chrono::milliseconds(100);
// How often a thread looks for free pipes unused for kPoolIdleMs.
constexpr auto kTrimInterval = std::chrono::milliseconds(250);

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


std::mutex gEngineMu;  // guards gWorkers creation/teardown and gBudget
// Never destroyed: engine threads may still run while static destructors do
// (process.exit() skips the environment cleanup hook that joins them).
std::vector<std::unique_ptr<Worker>>& gWorkers = *new std::vector<std::unique_ptr<Worker>>();
Budget gBudget;
ReportSink& gSink = *new ReportSink();
std::atomic<bool> gStopping{false};
std::atomic<uint64_t> gNextId{1};
std::atomic<size_t> gNextWorker{0};

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

void Run(Worker* w) {
  epoll_event events[128];
  std::vector<uint64_t> ready;
  std::vector<uint64_t> again;
  std::unordered_set<uint64_t> dirty;
  std::vector<Report> out;
  while (!gStopping.load()) {
    // While the pool has free pipes, wake now and then to close the unused ones.
    const bool trimming = FreePipes() > 0;
    int timeout = -1;
    if (!ready.empty()) timeout = 0;
    else if (!dirty.empty()) timeout = static_cast<int>(kReportInterval.count());
    else if (trimming) timeout = static_cast<int>(kTrimInterval.count());
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
        Outcome o = Pump(r, w->bounce, &err, &side);
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
  // Free pipes were sized and counted under the old budget: close them. Held pipes
  // are closed when given back if they do not fit the new budget (pipe-pool.cc, Return).
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
  s.copiedBytes = CopiedBytes();
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
