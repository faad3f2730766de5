// The splice engine's process-wide pool of pipes (docs/zero-copy.md, "The
// pool"). A relay takes a pipe when its source is readable and gives it back
// once the pipe is empty, so only directions with bytes in flight hold one.
// Every open pipe, held or free, counts against the budget: maxPipes (two
// descriptors each) and maxPipeBytes. Thread-safe; no N-API here.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rxredirect {
namespace splice {

struct Pipe {
  int readFd = -1;
  int writeFd = -1;
  size_t cap = 0;          // the kernel's F_GETPIPE_SZ
  int64_t accounted = 0;   // bytes reserved from the budget (base + grown)
  int64_t grown = 0;       // the part of `accounted` beyond the base pipe
  bool canGrow = true;     // false once F_SETPIPE_SZ failed for this pipe
  int64_t freedAtMs = 0;   // when it went back to the free list (steady clock)

  bool held() const { return readFd >= 0; }
};

struct PoolLimits {
  int maxPipes;
  int64_t maxPipeBytes;
  int pipeSize;
  int maxPipeSize;
};

struct PoolStats {
  int pipes;      // open: held + free (each two descriptors)
  int held;       // out of the pool, held by relays with bytes in flight
  int free;       // in the free list
  int64_t pipeBytes;
  int64_t grownBytes;
  uint64_t growths;
  uint64_t growthFailures;
};

// Growth may never take more than maxPipeBytes / kGrowthShareDivisor beyond
// the base pipes: the rest stays free for base pipes.
constexpr int64_t kGrowthShareDivisor = 2;

// A free pipe unused for this long is closed (Trim).
constexpr int64_t kPoolIdleMs = 1000;

void ConfigurePool(const PoolLimits& limits);

// False when the budget can never give a pipe (maxPipes 0, or maxPipeBytes
// below one base pipe): the engine is off.
bool PoolCanEverGive();

// Fills *out with a free pipe (most recently returned first) or a new one
// within the budget. False when none is to be had: budget spent, or pipe2
// failed (EMFILE, ENFILE, ENOMEM); the caller copies instead.
bool Acquire(Pipe* out);

// Gives an empty pipe back to the free list; *p is left not held.
void Return(Pipe* p);

// Closes a pipe (e.g. one with bytes in it that nobody will read) and gives
// its budget back; *p is left not held.
void Close(Pipe* p);

// Doubles the pipe when the budget allows (see docs/zero-copy.md, "Pipe
// growth"). True when it grew.
bool Grow(Pipe* p);

// Closes free pipes unused for kPoolIdleMs; returns how many free pipes are
// left (the engine threads keep checking while there are any).
int Trim();

// How many free pipes the pool holds now (no lock).
int FreePipes();

// Closes every free pipe (engine shutdown).
void DrainPool();

PoolStats CurrentPoolStats();

}  // namespace splice
}  // namespace rxredirect
