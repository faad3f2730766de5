// N-API face of the zero-copy relay engine (splice-engine.h): start, abort,
// budget and stats, and one ThreadSafeFunction that carries the engine's
// progress and completion reports to the JS thread.
#pragma once

#include <napi.h>

namespace rxredirect {

// spliceInit(onReport): onReport(id, kind, bytesIn, bytesOut, errno?, side)
Napi::Value SpliceInit(const Napi::CallbackInfo& info);
// spliceConfigure({ threads, maxPipes, maxPipeBytes, pipeSize, maxPipeSize })
Napi::Value SpliceConfigure(const Napi::CallbackInfo& info);
// spliceStart(srcFd, dstFd, pairWith?) -> id (> 0), or 0 when the budget can never give a pipe.
// Uses the fds as they are (no dups): spliceAbort before closing either.
Napi::Value SpliceStart(const Napi::CallbackInfo& info);
// spliceAbort(id) -> [bytesIn, bytesOut], or undefined when already finished
Napi::Value SpliceAbort(const Napi::CallbackInfo& info);
// spliceProgress(id) -> [bytesIn, bytesOut] of a running relay, or undefined
Napi::Value SpliceProgress(const Napi::CallbackInfo& info);
// spliceStats() -> { threads, relays, pipes, pipesInUse, pooledPipes, pipeBytes, grownBytes, growths,
//                    growthFailures, copiedBytes, descriptors, descriptorsPerConnection: { idle, busy },
//                    maxThreads, maxPipes, maxPipeBytes, pipeSize, maxPipeSize }
Napi::Value SpliceStats(const Napi::CallbackInfo& info);

}  // namespace rxredirect
