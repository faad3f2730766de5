#include "pipe-pool.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <vector>

namespace rxredirect {
namespace splice {

namespace {

// Read by engine threads that pump under their worker lock, so they are
// atomics rather than fields behind the engine's lock. Written by ConfigurePool.
std::atomic<int> gMaxPipes{1024};
std::atomic<int64_t> gMaxPipeBytes{32 << 20};
std::atomic<int> gPipeSize{64 << 10};
std::atomic<int64_t> gMaxPipeSize{1 << 20};

std::atomic<int> gPipes{0};
std::atomic<int> gHeld{0};  // pipes out of the pool, held by relays
std::atomic<int> gFreeCount{0};  // gFree.size(), readable without the lock
std::atomic<int64_t> gPipeBytes{0};
std::atomic<int64_t> gGrownBytes{0};
std::atomic<uint64_t> gGrowths{0};
std::atomic<uint64_t> gGrowthFailures{0};

// Taken inside a worker's lock, never the other way round. Never destroyed:
// engine threads may still run while static destructors do.
std::mutex& gPoolMu = *new std::mutex();
// LIFO: the back is the most recently returned (and warmest) pipe; freedAtMs
// grows from front to back, so Trim closes a prefix.
std::vector<Pipe>& gFree = *new std::vector<Pipe>();

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

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

// Closes the fds and gives the pipe's budget back.
void Discard(Pipe* p) {
  if (!p->held()) return;
  close(p->readFd);
  close(p->writeFd);
  p->readFd = -1;
  p->writeFd = -1;
  gPipes.fetch_sub(1);
  gPipeBytes.fetch_sub(p->accounted);
  gGrownBytes.fetch_sub(p->grown);
  p->accounted = 0;
  p->grown = 0;
}

}  // namespace

void ConfigurePool(const PoolLimits& limits) {
  gMaxPipes.store(limits.maxPipes);
  gMaxPipeBytes.store(limits.maxPipeBytes);
  gPipeSize.store(limits.pipeSize);
  gMaxPipeSize.store(limits.maxPipeSize);
}

bool PoolCanEverGive() {
  return gMaxPipes.load() >= 1 && gMaxPipeBytes.load() >= KernelPipeSize(gPipeSize.load());
}

bool Acquire(Pipe* out) {
  {
    std::lock_guard<std::mutex> lock(gPoolMu);
    if (!gFree.empty()) {
      *out = gFree.back();
      gFree.pop_back();
      gFreeCount.store(static_cast<int>(gFree.size()));
      gHeld.fetch_add(1);
      return true;
    }
  }
  const int pipeSize = gPipeSize.load();
  // Accounted at what the kernel will really give (a power of two pages).
  const int64_t accounted = KernelPipeSize(pipeSize);
  if (!Reserve(gPipes, 1, gMaxPipes.load())) return false;
  if (!Reserve<int64_t>(gPipeBytes, accounted, gMaxPipeBytes.load())) {
    gPipes.fetch_sub(1);
    return false;
  }
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    // EMFILE, ENFILE, ENOMEM: out of descriptors or pipe memory, which the
    // caller treats like a spent budget (it copies this round).
    gPipes.fetch_sub(1);
    gPipeBytes.fetch_sub(accounted);
    return false;
  }
  Pipe p;
  p.readFd = fds[0];
  p.writeFd = fds[1];
  p.accounted = accounted;
  // Over fs.pipe-user-pages-soft the kernel refuses to size a pipe; the
  // smaller pipe still works, only with less in flight (and never grows).
  if (fcntl(p.writeFd, F_SETPIPE_SZ, pipeSize) < 0) p.canGrow = false;
  int cap = fcntl(p.writeFd, F_GETPIPE_SZ);
  p.cap = cap > 0 ? static_cast<size_t>(cap) : 4096;
  *out = p;
  gHeld.fetch_add(1);
  return true;
}

void Return(Pipe* p) {
  if (!p->held()) return;
  // The budget was lowered while this pipe was out (configure only closes free pipes): it goes,
  // rather than back to the pool, so the new limits hold once the busy pipes come back.
  if (gPipes.load() > gMaxPipes.load() || gPipeBytes.load() > gMaxPipeBytes.load() ||
      static_cast<int64_t>(p->cap) > gMaxPipeSize.load()) {
    Discard(p);
    gHeld.fetch_sub(1);
    return;
  }
  Pipe copy = *p;
  copy.freedAtMs = NowMs();
  p->readFd = -1;
  p->writeFd = -1;
  std::lock_guard<std::mutex> lock(gPoolMu);
  gFree.push_back(copy);
  gFreeCount.store(static_cast<int>(gFree.size()));
  gHeld.fetch_sub(1);
}

void Close(Pipe* p) {
  if (!p->held()) return;
  Discard(p);
  gHeld.fetch_sub(1);
}

bool Grow(Pipe* p) {
  if (!p->canGrow) return false;
  const int64_t current = static_cast<int64_t>(p->cap);
  const int64_t target = KernelPipeSize(current * 2);
  if (target > gMaxPipeSize.load()) return false;
  const int64_t maxBytes = gMaxPipeBytes.load();
  const int64_t delta = target - current;
  if (!Reserve<int64_t>(gGrownBytes, delta, maxBytes / kGrowthShareDivisor)) return false;
  if (!Reserve<int64_t>(gPipeBytes, delta, maxBytes)) {
    gGrownBytes.fetch_sub(delta);
    return false;
  }
  int set = fcntl(p->writeFd, F_SETPIPE_SZ, static_cast<int>(target));
  if (set < 0) {
    // EPERM (over fs.pipe-max-size or the per-user pipe pages), EBUSY, ENOMEM:
    // the pipe keeps its size and is not asked to grow again.
    gGrownBytes.fetch_sub(delta);
    gPipeBytes.fetch_sub(delta);
    gGrowthFailures.fetch_add(1);
    p->canGrow = false;
    return false;
  }
  int cap = fcntl(p->writeFd, F_GETPIPE_SZ);
  const int64_t real = cap > 0 ? cap : set;
  const int64_t added = real - current;
  // Account what the kernel really added. It cannot be more than asked for
  // (target is already a whole power of two pages); if it were, it is still
  // counted, so Close subtracts exactly what was accounted.
  if (added != delta) {
    gGrownBytes.fetch_add(added - delta);
    gPipeBytes.fetch_add(added - delta);
  }
  p->cap = static_cast<size_t>(real);
  p->accounted += added;
  p->grown += added;
  if (added > 0) {
    gGrowths.fetch_add(1);
    return true;
  }
  p->canGrow = false;
  return false;
}

// Both close under the pool lock, so once DrainPool returns no pipe of the
// pool is still being closed on another thread (the stats and a descriptor
// count taken then agree). Closing a few pipes is quick, and rare.
int Trim() {
  std::lock_guard<std::mutex> lock(gPoolMu);
  const int64_t cutoff = NowMs() - kPoolIdleMs;
  size_t n = 0;
  while (n < gFree.size() && gFree[n].freedAtMs <= cutoff) ++n;
  for (size_t i = 0; i < n; ++i) Discard(&gFree[i]);
  gFree.erase(gFree.begin(), gFree.begin() + static_cast<std::ptrdiff_t>(n));
  const int left = static_cast<int>(gFree.size());
  gFreeCount.store(left);
  return left;
}

void DrainPool() {
  std::lock_guard<std::mutex> lock(gPoolMu);
  for (Pipe& p : gFree) Discard(&p);
  gFree.clear();
  gFreeCount.store(0);
}

int FreePipes() { return gFreeCount.load(); }

PoolStats CurrentPoolStats() {
  // Under the lock: the pool's own changes (return, trim, drain) are then seen whole.
  std::lock_guard<std::mutex> lock(gPoolMu);
  return PoolStats{gPipes.load(), gHeld.load(), static_cast<int>(gFree.size()), gPipeBytes.load(), gGrownBytes.load(),
                   gGrowths.load(), gGrowthFailures.load()};
}

}  // namespace splice
}  // namespace rxredirect
