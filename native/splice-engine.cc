#include "splice-engine.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
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

struct Relay {
  uint64_t id = 0;
  int src = -1;
  int dst = -1;
  int pipeRead = -1;
  int pipeWrite = -1;
  size_t pipeCap = 0;
  size_t inPipe = 0;
  int64_t accounted = 0;  // pipe bytes reserved from the budget
  uint64_t bytesIn = 0;
  uint64_t bytesOut = 0;
  uint64_t reportedOut = 0;
  Clock::time_point lastReport{};
  bool srcEof = false;
  bool queued = false;
  bool sinkFault = false;
  // The relay of the other direction of the same connection (same worker), or 0.
  uint64_t peer = 0;
};

struct Worker {
  int epoll = -1;
  int wake = -1;
  std::thread thread;
  std::mutex mu;  // guards relays; held while pumping
  std::unordered_map<uint64_t, std::unique_ptr<Relay>> relays;
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
    if (!r.srcEof && r.inPipe < r.pipeCap) {
      ssize_t n = ::splice(r.src, nullptr, r.pipeWrite, nullptr, r.pipeCap - r.inPipe, kSpliceFlags);
      if (n > 0) {
        r.inPipe += static_cast<size_t>(n);
        r.bytesIn += static_cast<uint64_t>(n);
        progress = true;
      } else if (n == 0) {
        r.srcEof = true;
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
                               r.bytesOut, err, side});
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
  const int64_t accounted = budget.pipeSize;
  if (gPipes.fetch_add(1) >= budget.maxPipes) {
    gPipes.fetch_sub(1);
    return 0;
  }
  if (gPipeBytes.fetch_add(accounted) + accounted > budget.maxPipeBytes) {
    gPipes.fetch_sub(1);
    gPipeBytes.fetch_sub(accounted);
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
  // smaller pipe still works, only with less in flight.
  (void)fcntl(r->pipeWrite, F_SETPIPE_SZ, budget.pipeSize);
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
  std::vector<Worker*> workers;
  {
    std::lock_guard<std::mutex> lock(gEngineMu);
    for (auto& w : gWorkers) workers.push_back(w.get());
  }
  for (Worker* w : workers) {
    std::lock_guard<std::mutex> lock(w->mu);
    auto it = w->relays.find(id);
    if (it == w->relays.end()) continue;
    *bytesIn = it->second->bytesIn;
    *bytesOut = it->second->bytesOut;
    auto peer = it->second->peer != 0 ? w->relays.find(it->second->peer) : w->relays.end();
    if (peer != w->relays.end()) peer->second->peer = 0;
    Release(*w, *it->second);
    w->relays.erase(it);
    return true;
  }
  return false;
}

bool Progress(uint64_t id, uint64_t* bytesIn, uint64_t* bytesOut) {
  std::vector<Worker*> workers;
  {
    std::lock_guard<std::mutex> lock(gEngineMu);
    for (auto& w : gWorkers) workers.push_back(w.get());
  }
  for (Worker* w : workers) {
    std::lock_guard<std::mutex> lock(w->mu);
    auto it = w->relays.find(id);
    if (it == w->relays.end()) continue;
    *bytesIn = it->second->bytesIn;
    *bytesOut = it->second->bytesOut;
    return true;
  }
  return false;
}

Stats CurrentStats() {
  std::lock_guard<std::mutex> lock(gEngineMu);
  Stats s{static_cast<int>(gWorkers.size()), 0, gPipes.load(), gPipeBytes.load()};
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
