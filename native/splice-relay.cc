#include "splice-relay.h"

#include <cstdint>

#include "splice-engine.h"
#include "sys-error.h"

namespace rxredirect {

namespace {

// Everything below is touched on the JS thread only (the engine threads only
// call gReports.NonBlockingCall, which is thread-safe).
Napi::ThreadSafeFunction gReports;
bool gInitialised = false;
// Relays started and not yet reported finished or aborted: while there are
// any, the ThreadSafeFunction keeps the event loop alive.
int64_t gActive = 0;

void Settled(Napi::Env env) {
  if (--gActive == 0) gReports.Unref(env);
}

void DeliverReport(Napi::Env env, Napi::Function callback, splice::Report* report) {
  splice::Report r = *report;
  delete report;
  if (env == nullptr) return;  // tearing down
  if (r.kind != splice::ReportKind::kProgress) Settled(env);
  Napi::Value err = r.err != 0 ? Napi::Value(Napi::String::New(env, ErrnoName(r.err))) : env.Undefined();
  try {
    callback.Call({Napi::Number::New(env, static_cast<double>(r.id)),
                   Napi::Number::New(env, static_cast<int>(r.kind)),
                   Napi::Number::New(env, static_cast<double>(r.bytesIn)),
                   Napi::Number::New(env, static_cast<double>(r.bytesOut)), err,
                   Napi::Number::New(env, static_cast<int>(r.side)),
                   Napi::Number::New(env, static_cast<double>(r.eofAtNs))});
  } catch (const Napi::Error& e) {
    // Let Node treat it like any exception thrown from a callback.
    e.ThrowAsJavaScriptException();
  }
}

void Teardown(void*) {
  splice::Shutdown();
  if (gInitialised) gReports.Release();
  gInitialised = false;
}

int64_t IntegerField(const Napi::Object& o, const char* key, int64_t fallback) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) return fallback;
  return v.As<Napi::Number>().Int64Value();
}

}  // namespace

Napi::Value SpliceInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) throw Napi::TypeError::New(env, "spliceInit(onReport) needs a function");
  if (gInitialised) return env.Undefined();
  gReports = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "rxredirect-splice", 0, 1);
  gReports.Unref(env);
  gInitialised = true;
  splice::SetReportSink([](const splice::Report& report) {
    auto* copy = new splice::Report(report);
    if (gReports.NonBlockingCall(copy, DeliverReport) != napi_ok) delete copy;
  });
  napi_add_env_cleanup_hook(env, Teardown, nullptr);
  return env.Undefined();
}

Napi::Value SpliceConfigure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "spliceConfigure(budget) needs an object");
  Napi::Object o = info[0].As<Napi::Object>();
  splice::Budget b = splice::CurrentBudget();
  // Checked as 64-bit values before they are narrowed.
  const int64_t threads = IntegerField(o, "threads", b.threads);
  const int64_t maxPipes = IntegerField(o, "maxPipes", b.maxPipes);
  const int64_t maxPipeBytes = IntegerField(o, "maxPipeBytes", b.maxPipeBytes);
  const int64_t pipeSize = IntegerField(o, "pipeSize", b.pipeSize);
  const int64_t maxPipeSize = IntegerField(o, "maxPipeSize", b.maxPipeSize);
  constexpr int64_t kMaxPipe = int64_t{1} << 30;
  if (threads < 1 || threads > 64 || maxPipes < 0 || maxPipes > INT32_MAX || maxPipeBytes < 0 || pipeSize < 4096 ||
      pipeSize > kMaxPipe || maxPipeSize < pipeSize || maxPipeSize > kMaxPipe) {
    throw Napi::RangeError::New(env, "spliceConfigure: budget out of range");
  }
  b.threads = static_cast<int>(threads);
  b.maxPipes = static_cast<int>(maxPipes);
  b.maxPipeBytes = maxPipeBytes;
  b.pipeSize = static_cast<int>(pipeSize);
  b.maxPipeSize = static_cast<int>(maxPipeSize);
  splice::Configure(b);
  return env.Undefined();
}

Napi::Value SpliceStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!gInitialised) throw Napi::Error::New(env, "spliceStart before spliceInit");
  int src = FdArgument(info, 0);
  int dst = FdArgument(info, 1);
  uint64_t pairWith = 0;
  if (info.Length() > 2 && info[2].IsNumber()) pairWith = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
  int64_t id = splice::Start(src, dst, pairWith);
  if (id < 0) throw SystemError(env, static_cast<int>(-id), "splice");
  if (id > 0 && gActive++ == 0) gReports.Ref(env);
  return Napi::Number::New(env, static_cast<double>(id));
}

Napi::Value SpliceAbort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "spliceAbort(id) needs a number");
  uint64_t id = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
  uint64_t in = 0;
  uint64_t out = 0;
  if (!splice::Abort(id, &in, &out)) return env.Undefined();
  Settled(env);
  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(0u, Napi::Number::New(env, static_cast<double>(in)));
  result.Set(1u, Napi::Number::New(env, static_cast<double>(out)));
  return result;
}

Napi::Value SpliceProgress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "spliceProgress(id) needs a number");
  uint64_t id = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
  uint64_t in = 0;
  uint64_t out = 0;
  if (!splice::Progress(id, &in, &out)) return env.Undefined();
  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(0u, Napi::Number::New(env, static_cast<double>(in)));
  result.Set(1u, Napi::Number::New(env, static_cast<double>(out)));
  return result;
}

Napi::Value SpliceStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  splice::Stats s = splice::CurrentStats();
  splice::Budget b = splice::CurrentBudget();
  Napi::Object o = Napi::Object::New(env);
  o.Set("threads", s.threads);
  o.Set("relays", s.relays);
  o.Set("pipes", s.pipes);
  o.Set("pipesInUse", s.pipesInUse);
  o.Set("pooledPipes", s.pooledPipes);
  o.Set("pipeBytes", Napi::Number::New(env, static_cast<double>(s.pipeBytes)));
  o.Set("grownBytes", Napi::Number::New(env, static_cast<double>(s.grownBytes)));
  o.Set("growths", Napi::Number::New(env, static_cast<double>(s.growths)));
  o.Set("growthFailures", Napi::Number::New(env, static_cast<double>(s.growthFailures)));
  o.Set("copiedBytes", Napi::Number::New(env, static_cast<double>(s.copiedBytes)));
  o.Set("descriptors", s.descriptors);
  Napi::Object perConnection = Napi::Object::New(env);
  perConnection.Set("idle", splice::kDescriptorsIdleConnection);
  perConnection.Set("busy", splice::kDescriptorsBusyConnection);
  o.Set("descriptorsPerConnection", perConnection);
  o.Set("maxThreads", b.threads);
  o.Set("maxPipes", b.maxPipes);
  o.Set("maxPipeBytes", Napi::Number::New(env, static_cast<double>(b.maxPipeBytes)));
  o.Set("pipeSize", b.pipeSize);
  o.Set("maxPipeSize", b.maxPipeSize);
  return o;
}

}  // namespace rxredirect
