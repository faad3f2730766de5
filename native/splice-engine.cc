#include "splice-engine.h"

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

struct Relay {
  uint64_t id = 0;
  int src = -1;
  int dst = -1;
  int pipeRead = -1;
  int pipeWrite = -1;
  size_t pipeCap = 0;  // the kernel's F_GETPIPE_SZ
  size_t inPipe = 0;
  int64_t accounted = 0;  // pipe bytes reserved from the budget (base + grown)
  int64_t grown = 0;      // the part of `accounted` beyond the base pipe
  int fullRounds = 0;     // rounds in a row in which the pipe limited the flow
  bool canGrow = true;    // false once F_SETPIPE_SZ failed for this relay
  uint64_t bytesIn = 0;
  uint64_t bytesOut = 0;
  uint64_t reportedOut = 0;
  Clock::time_point lastReport{};
  bool srcEof = false;
  uint64_t eofAtNs = 0;  // CLOCK_MONOTONIC when srcEof was read
  bool queued = false;
  bool sinkFault = false;
  // The relay of the other direction of the same connection (same worker), or 0.
  uint64_t peer = 0;
};

using RelayMap = std::unordered_map<uint64_t, std::unique_ptr<Relay>>;

struct Worker {
  int epoll = -1;
  int wake = -1;
  std::thread thread;
  std::mutex mu;  // guards relays; held while pumping
  RelayMap relays;
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
std::atomic<int> gPipes{0};
std::atomic<int64_t> gPipeBytes{0};
std::atomic<int64_t> gGrownBytes{0};
std::atomic<uint64_t> gGrowths{0};
std::atomic<uint64_t> gGrowthFailures{0};
// The budget fields pipe growth needs, readable by engine threads, which pump
// under their worker lock and so may not take gEngineMu (Start takes them in
// the other order). Written by Configure.
std::atomic<int64_t> gGrowMaxPipeBytes{Budget{}.maxPipeBytes};
std::atomic<int64_t> gGrowMaxPipeSize{Budget{}.maxPipeSize};

// Adds `amount` to `counter` unless that would take it over `limit`. Never
// overshoots, not even for a moment: spliceStats() may read it at any time.
template <typename T>
bool Reserve(std::atomic<T>& counter, T amount, T limit) {
  T current = counter.load();
  do {
    if (current + amount > limit) return false;
  } while (!counter.compare_exchange_weak(current, current + amount));
  return true;
}

// What F_SETPIPE_SZ really gives for `size`: a power-of-two number of pages.
int64_t KernelPipeSize(int64_t size) {
  static const int64_t page = [] {
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? static_cast<int64_t>(p) : int64_t{4096};
  }();
  int64_t pages = (size + page - 1) / page;
  int64_t rounded = 1;
  while (rounded < pages) rounded <<= 1;
  return rounded * page;
}

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// Caller holds the worker's lock.
void Release(Worker& w, Relay& r) {
  if (r.src >= 0) epoll_ctl(w.epoll, EPOLL_CTL_DEL, r.src, nullptr);
  if (r.dst >= 0) epoll_ctl(w.epoll, EPOLL_CTL_DEL, r.dst, nullptr);
  CloseFd(r.src);
  CloseFd(r.dst);
  CloseFd(r.pipeRead);
  CloseFd(r.pipeWrite);
  gPipes.fetch_sub(1);
  gPipeBytes.fetch_sub(r.accounted);
  gGrownBytes.fetch_sub(r.grown);
  r.accounted = 0;
  r.grown = 0;
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

// Doubles the relay's pipe when the budget allows: the whole stays within
// maxPipeBytes, all growth together within maxPipeBytes / kGrowthShareDivisor,
// and the pipe within maxPipeSize. Caller holds the worker's lock.
void Grow(Relay& r) {
  const int64_t current = static_cast<int64_t>(r.pipeCap);
  const int64_t target = KernelPipeSize(current * 2);
  if (target > gGrowMaxPipeSize.load()) return;
  const int64_t maxBytes = gGrowMaxPipeBytes.load();
  const int64_t delta = target - current;
  if (!Reserve<int64_t>(gGrownBytes, delta, maxBytes / kGrowthShareDivisor)) return;
  if (!Reserve<int64_t>(gPipeBytes, delta, maxBytes)) {
    gGrownBytes.fetch_sub(delta);
    return;
  }
  int set = fcntl(r.pipeWrite, F_SETPIPE_SZ, static_cast<int>(target));
  if (set < 0) {
    // EPERM (over fs.pipe-max-size or the per-user pipe pages), EBUSY, ENOMEM:
    // the pipe keeps its size, and this relay stops asking.
    gGrownBytes.fetch_sub(delta);
    gPipeBytes.fetch_sub(delta);
    gGrowthFailures.fetch_add(1);
    r.canGrow = false;
    return;
  }
  int cap = fcntl(r.pipeWrite, F_GETPIPE_SZ);
  const int64_t real = cap > 0 ? cap : set;
  const int64_t added = real - current;
  // Account what the kernel really added. It cannot be more than asked for
  // (target is already a whole power of two pages); if it were, it is still
  // counted, so Release subtracts exactly what was accounted.
  if (added != delta) {
    gGrownBytes.fetch_add(added - delta);
    gPipeBytes.fetch_add(added - delta);
  }
  r.pipeCap = static_cast<size_t>(real);
  r.accounted += added;
  r.grown += added;
  if (added > 0) gGrowths.fetch_add(1);
  else r.canGrow = false;
}

uint64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

Outcome Pump(Relay& r, int* err, Side* side) {
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
  for (int round = 0; round < kRoundsPerTurn; ++round) {
    bool progress = false;
    bool filled = false;  // this round's read left the pipe full: the source had more
    if (!r.srcEof && r.inPipe < r.pipeCap) {
      ssize_t n = ::splice(r.src, nullptr, r.pipeWrite, nullptr, r.pipeCap - r.inPipe, kSpliceFlags);
      if (n > 0) {
        r.inPipe += static_cast<size_t>(n);
        r.bytesIn += static_cast<uint64_t>(n);
        progress = true;
        filled = r.inPipe == r.pipeCap;
        if (!filled) r.fullRounds = 0;
      } else if (n == 0) {
        // An RST that arrived with unread data can read as EOF; the kernel still
        // holds the error. A FIN is passed on only when there is none.
        int e = 0;
        socklen_t len = sizeof e;
        if (getsockopt(r.src, SOL_SOCKET, SO_ERROR, &e, &len) == 0 && e != 0) {
          *err = e;
          *side = Side::kSource;
          return Outcome::kError;
        }
        r.srcEof = true;
        r.eofAtNs = MonotonicNs();
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
      ssize_t n = ::splice(r.pipeRead, nullptr, r.dst, nullptr, r.inPipe, kSpliceFlags);
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
    if (filled && r.inPipe == 0 && r.canGrow && ++r.fullRounds >= kGrowAfterFullRounds) {
      r.fullRounds = 0;
      Grow(r);
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

void Run(Worker* w) {
  epoll_event events[128];
  std::vector<uint64_t> ready;
  std::vector<uint64_t> again;
  std::unordered_set<uint64_t> dirty;
  std::vector<Report> out;
  while (!gStopping.load()) {
    int timeout = !ready.empty() ? 0 : !dirty.empty() ? static_cast<int>(kReportInterval.count()) : -1;
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
        auto it = w->relays.find(data >> 1);
        if (it == w->relays.end()) continue;  // aborted since the event was queued
        Relay& r = *it->second;
        if ((data & 1) != 0 && (events[i].events & (EPOLLERR | EPOLLHUP)) != 0) r.sinkFault = true;
        if (!r.queued) {
          r.queued = true;
          ready.push_back(r.id);
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
        Outcome o = Pump(r, &err, &side);
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
  gGrowMaxPipeBytes.store(budget.maxPipeBytes);
  gGrowMaxPipeSize.store(budget.maxPipeSize);
}

Budget CurrentBudget() {
  std::lock_guard<std::mutex> lock(gEngineMu);
  return gBudget;
}

int64_t Start(int srcFd, int dstFd, uint64_t pairWith) {
  Budget budget;
  Worker* w = nullptr;
  {
    std::lock_guard<std::mutex> lock(gEngineMu);
    if (gStopping.load()) return -ECANCELED;
    int e = StartWorkersLocked();
    if (e != 0) return -e;
    budget = gBudget;
    if (pairWith != 0) {
      for (auto& candidate : gWorkers) {
        std::lock_guard<std::mutex> wl(candidate->mu);
        if (candidate->relays.count(pairWith) != 0) w = candidate.get();
      }
    }
    if (w == nullptr) w = gWorkers[gNextWorker.fetch_add(1) % gWorkers.size()].get();
  }
  // What the kernel will really give (a power of two pages).
  const int64_t accounted = KernelPipeSize(budget.pipeSize);
  if (!Reserve(gPipes, 1, budget.maxPipes)) return 0;
  if (!Reserve<int64_t>(gPipeBytes, accounted, budget.maxPipeBytes)) {
    gPipes.fetch_sub(1);
    return 0;
  }
  auto r = std::make_unique<Relay>();
  r->accounted = accounted;
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    int e = errno;
    gPipes.fetch_sub(1);
    gPipeBytes.fetch_sub(accounted);
    // Out of pipes or fds is a spent budget too: the flow stays on the JS path.
    return (e == EMFILE || e == ENFILE || e == ENOMEM) ? 0 : -e;
  }
  r->pipeRead = fds[0];
  r->pipeWrite = fds[1];
  // Over fs.pipe-user-pages-soft the kernel refuses to grow a pipe; the
  // smaller pipe still works, only with less in flight (and never grows).
  if (fcntl(r->pipeWrite, F_SETPIPE_SZ, budget.pipeSize) < 0) r->canGrow = false;
  int cap = fcntl(r->pipeWrite, F_GETPIPE_SZ);
  r->pipeCap = cap > 0 ? static_cast<size_t>(cap) : 4096;
  r->src = fcntl(srcFd, F_DUPFD_CLOEXEC, 0);
  int dupErr = r->src < 0 ? errno : 0;
  if (dupErr == 0) {
    r->dst = fcntl(dstFd, F_DUPFD_CLOEXEC, 0);
    if (r->dst < 0) dupErr = errno;
  }
  if (dupErr != 0) {
    CloseFd(r->src);
    CloseFd(r->dst);
    CloseFd(r->pipeRead);
    CloseFd(r->pipeWrite);
    gPipes.fetch_sub(1);
    gPipeBytes.fetch_sub(accounted);
    return (dupErr == EMFILE || dupErr == ENFILE) ? 0 : -dupErr;
  }
  r->id = gNextId.fetch_add(1);
  r->lastReport = Clock::time_point{};  // the first bytes are reported at once
  const uint64_t id = r->id;
  std::lock_guard<std::mutex> lock(w->mu);
  epoll_event in{};
  in.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
  in.data.u64 = id << 1;
  epoll_event outEv{};
  outEv.events = EPOLLOUT | EPOLLET;
  outEv.data.u64 = (id << 1) | 1;
  Relay& ref = *r;
  auto peer = pairWith != 0 ? w->relays.find(pairWith) : w->relays.end();
  if (peer != w->relays.end() && peer->second->peer == 0) {
    ref.peer = pairWith;
    peer->second->peer = id;
  }
  w->relays.emplace(id, std::move(r));
  if (epoll_ctl(w->epoll, EPOLL_CTL_ADD, ref.src, &in) != 0 || epoll_ctl(w->epoll, EPOLL_CTL_ADD, ref.dst, &outEv) != 0) {
    int e = errno;
    Release(*w, ref);
    w->relays.erase(id);
    return -e;
  }
  return static_cast<int64_t>(id);
}

bool Abort(uint64_t id, uint64_t* bytesIn, uint64_t* bytesOut) {
  return WithRelay(id, [&](Worker& w, RelayMap::iterator it) {
    *bytesIn = it->second->bytesIn;
    *bytesOut = it->second->bytesOut;
    auto peer = it->second->peer != 0 ? w.relays.find(it->second->peer) : w.relays.end();
    if (peer != w.relays.end()) peer->second->peer = 0;
    Release(w, *it->second);
    w.relays.erase(it);
  });
}

bool Progress(uint64_t id, uint64_t* bytesIn, uint64_t* bytesOut) {
  return WithRelay(id, [&](Worker&, RelayMap::iterator it) {
    *bytesIn = it->second->bytesIn;
    *bytesOut = it->second->bytesOut;
  });
}

Stats CurrentStats() {
  std::lock_guard<std::mutex> lock(gEngineMu);
  Stats s{static_cast<int>(gWorkers.size()), 0, gPipes.load(), gPipeBytes.load(), gGrownBytes.load(), gGrowths.load(),
          gGrowthFailures.load()};
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
  gSink = nullptr;
}

}  // namespace splice
}  // namespace rxredirect
