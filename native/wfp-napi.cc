#include "wfp-napi.h"

#include <cstring>
#include <memory>

namespace rxredirect {

namespace {

Napi::Uint8Array BytesObject(Napi::Env env, const std::vector<uint8_t>& bytes) {
  Napi::Uint8Array array = Napi::Uint8Array::New(env, bytes.size());
  if (!bytes.empty()) std::memcpy(array.Data(), bytes.data(), bytes.size());
  return array;
}

Napi::Object EndpointObject(Napi::Env env, const wfp::Endpoint& endpoint) {
  Napi::Object object = Napi::Object::New(env);
  object.Set("address", Napi::String::New(env, endpoint.address));
  object.Set("port", Napi::Number::New(env, endpoint.port));
  object.Set("family", Napi::String::New(env, endpoint.family == 6 ? "IPv6" : "IPv4"));
  return object;
}

std::vector<uint8_t> BytesArgument(Napi::Env env, const Napi::Value& value, const char* what) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(env, std::string(what) + " must be a Uint8Array");
  }
  Napi::Uint8Array array = value.As<Napi::Uint8Array>();
  return std::vector<uint8_t>(array.Data(), array.Data() + array.ElementLength());
}

struct ScriptedReply {
  wfp::IoctlReply reply;
  std::vector<uint8_t> fill;
};

std::vector<ScriptedReply> ScriptArgument(Napi::Env env, const Napi::Value& value) {
  if (!value.IsArray()) throw Napi::TypeError::New(env, "replies must be an array");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<ScriptedReply> script;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value item = array.Get(i);
    if (!item.IsObject()) throw Napi::TypeError::New(env, "each reply must be an object");
    Napi::Object object = item.As<Napi::Object>();
    ScriptedReply entry{};
    entry.reply.error = object.Get("error").ToNumber().Int32Value();
    entry.reply.bytes_returned = object.Get("bytesReturned").ToNumber().Uint32Value();
    Napi::Value fill = object.Get("fill");
    if (!fill.IsUndefined()) entry.fill = BytesArgument(env, fill, "fill");
    script.push_back(std::move(entry));
  }
  return script;
}

// A fake WSAIoctl that plays the script back; running past its end is a
// test bug and reported as WSAENOTSOCK so it cannot pass silently.
wfp::IoctlFn ScriptedIoctl(std::vector<ScriptedReply> script) {
  auto state = std::make_shared<std::pair<std::vector<ScriptedReply>, size_t>>(std::move(script), 0);
  return [state](uint32_t, uint8_t* out, uint32_t out_len) -> wfp::IoctlReply {
    if (state->second >= state->first.size()) return {wfp::kWsaEnotsock, 0};
    const ScriptedReply& entry = state->first[state->second++];
    size_t n = entry.fill.size() < out_len ? entry.fill.size() : out_len;
    if (n > 0 && out != nullptr) std::memcpy(out, entry.fill.data(), n);
    return entry.reply;
  };
}

}  // namespace

Napi::Object WfpOutcomeObject(Napi::Env env, const wfp::Outcome& outcome) {
  Napi::Object object = Napi::Object::New(env);
  object.Set("status", Napi::String::New(env, wfp::StatusName(outcome.status)));
  object.Set("bytes", BytesObject(env, outcome.bytes));
  object.Set("error", Napi::Number::New(env, outcome.error));
  object.Set("errorName", Napi::String::New(env, wfp::WinErrorName(outcome.error)));
  object.Set("reason", Napi::String::New(env, outcome.reason));
  Napi::Array asks = Napi::Array::New(env, outcome.asks.size());
  for (size_t i = 0; i < outcome.asks.size(); ++i) asks.Set(static_cast<uint32_t>(i), outcome.asks[i]);
  object.Set("asks", asks);
  return object;
}

Napi::Object WfpRecordObject(Napi::Env env, const wfp::RecordOutcome& outcome) {
  Napi::Object object = Napi::Object::New(env);
  object.Set("status", Napi::String::New(env, wfp::StatusName(outcome.status)));
  if (outcome.status == wfp::Status::kOk) {
    object.Set("destination", EndpointObject(env, outcome.destination));
    object.Set("records", BytesObject(env, outcome.records));
    if (!outcome.context.empty()) object.Set("context", BytesObject(env, outcome.context));
  }
  object.Set("error", Napi::Number::New(env, outcome.error));
  object.Set("errorName", Napi::String::New(env, wfp::WinErrorName(outcome.error)));
  object.Set("syscall", Napi::String::New(env, outcome.syscall));
  object.Set("reason", Napi::String::New(env, outcome.reason));
  return object;
}

Napi::Value WfpNegotiate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t max_bytes = wfp::kDefaultMaxBytes;
  if (info.Length() > 1 && info[1].IsNumber()) max_bytes = info[1].As<Napi::Number>().Uint32Value();
  wfp::Outcome outcome =
      wfp::Negotiate(wfp::kSioQueryRedirectRecords, ScriptedIoctl(ScriptArgument(env, info[0])), max_bytes);
  return WfpOutcomeObject(env, outcome);
}

Napi::Value WfpParseSockaddr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<uint8_t> bytes = BytesArgument(env, info[0], "sockaddr");
  wfp::Endpoint endpoint;
  if (!wfp::ParseWinSockaddr(bytes.data(), bytes.size(), &endpoint)) return env.Undefined();
  return EndpointObject(env, endpoint);
}

Napi::Value WfpBuildRecord(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  wfp::Outcome records = wfp::Negotiate(wfp::kSioQueryRedirectRecords, ScriptedIoctl(ScriptArgument(env, info[0])));
  wfp::Outcome context = wfp::Negotiate(wfp::kSioQueryRedirectContext, ScriptedIoctl(ScriptArgument(env, info[1])));
  int dst_error = info[2].ToNumber().Int32Value();
  std::vector<uint8_t> sockaddr = BytesArgument(env, info[3], "sockaddr");
  return WfpRecordObject(env, wfp::BuildRecord(records, context, dst_error, sockaddr.data(), sockaddr.size()));
}

void RegisterWfpTestExports(Napi::Env env, Napi::Object exports) {
  exports.Set("wfpNegotiate", Napi::Function::New(env, WfpNegotiate, "wfpNegotiate"));
  exports.Set("wfpParseSockaddr", Napi::Function::New(env, WfpParseSockaddr, "wfpParseSockaddr"));
  exports.Set("wfpBuildRecord", Napi::Function::New(env, WfpBuildRecord, "wfpBuildRecord"));
}

}  // namespace rxredirect
