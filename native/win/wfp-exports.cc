#include "wfp-exports.h"

#include <string>
#include <vector>

#include "../wfp-napi.h"
#include "wfp-engine.h"
#include "wfp-query.h"

namespace rxredirect {

namespace {

// Arguments are validated in lib/net/windows-transport.ts; these checks are the
// last line of defence only.
uint32_t IdArgument(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || !info[index].IsNumber()) throw Napi::TypeError::New(info.Env(), "id must be a number");
  return info[index].As<Napi::Number>().Uint32Value();
}

// (family 4|6, address, port) -> sockaddr
void EndpointArguments(const Napi::CallbackInfo& info, size_t index, sockaddr_storage* out, int* len) {
  if (info.Length() < index + 3 || !info[index].IsNumber() || !info[index + 1].IsString() ||
      !info[index + 2].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), "expected (family, address, port)");
  }
  int family = info[index].As<Napi::Number>().Int32Value() == 6 ? AF_INET6 : AF_INET;
  std::string address = info[index + 1].As<Napi::String>().Utf8Value();
  int port = info[index + 2].As<Napi::Number>().Int32Value();
  if (port < 0 || port > 65535 || !ParseWinEndpoint(family, address.c_str(), port, out, len)) {
    throw Napi::TypeError::New(info.Env(), "not an IP literal of that family, or a bad port");
  }
}

std::vector<uint8_t> OptionalBytes(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || info[index].IsUndefined() || info[index].IsNull()) return {};
  if (!info[index].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "records must be a Uint8Array");
  Napi::Uint8Array array = info[index].As<Napi::Uint8Array>();
  return std::vector<uint8_t>(array.Data(), array.Data() + array.ElementLength());
}

Napi::Value EngineInit(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "callback must be a function");
  WfpEngine::Instance().Init(info.Env(), info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

Napi::Value EngineRef(const Napi::CallbackInfo& info) {
  WfpEngine::Instance().SetRef(info.Env(), info.Length() > 0 && info[0].ToBoolean().Value());
  return info.Env().Undefined();
}

// wfpListen(family, address, port, backlog) -> {id, port}
Napi::Value Listen(const Napi::CallbackInfo& info) {
  sockaddr_storage address{};
  int len = 0;
  EndpointArguments(info, 0, &address, &len);
  int backlog = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Int32Value() : 0;
  int port = 0;
  uint32_t id = WfpEngine::Instance().Listen(info.Env(), address, len, backlog, &port);
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("id", id);
  result.Set("port", port);
  return result;
}

// wfpConnect(family, address, port, records?, bindAddress?) -> id
Napi::Value Connect(const Napi::CallbackInfo& info) {
  sockaddr_storage target{};
  int target_len = 0;
  EndpointArguments(info, 0, &target, &target_len);
  std::vector<uint8_t> records = OptionalBytes(info, 3);
  sockaddr_storage bind{};
  int bind_len = 0;
  bool has_bind = info.Length() > 4 && info[4].IsString();
  if (has_bind) {
    std::string local = info[4].As<Napi::String>().Utf8Value();
    if (!ParseWinEndpoint(target.ss_family, local.c_str(), 0, &bind, &bind_len)) {
      throw Napi::TypeError::New(info.Env(), "bindAddress must be an IP literal of the target's family");
    }
  }
  uint32_t id =
      WfpEngine::Instance().Connect(info.Env(), target, target_len, records, has_bind ? &bind : nullptr, bind_len);
  return Napi::Number::New(info.Env(), id);
}

Napi::Value Write(const Napi::CallbackInfo& info) {
  uint32_t id = IdArgument(info, 0);
  WfpEngine::Instance().Write(id, OptionalBytes(info, 1));
  return info.Env().Undefined();
}

Napi::Value ReadStart(const Napi::CallbackInfo& info) {
  WfpEngine::Instance().SetReading(IdArgument(info, 0), true);
  return info.Env().Undefined();
}

Napi::Value ReadStop(const Napi::CallbackInfo& info) {
  WfpEngine::Instance().SetReading(IdArgument(info, 0), false);
  return info.Env().Undefined();
}

Napi::Value End(const Napi::CallbackInfo& info) {
  WfpEngine::Instance().End(IdArgument(info, 0));
  return info.Env().Undefined();
}

Napi::Value Reset(const Napi::CallbackInfo& info) {
  WfpEngine::Instance().Reset(IdArgument(info, 0));
  return info.Env().Undefined();
}

Napi::Value Destroy(const Napi::CallbackInfo& info) {
  WfpEngine::Instance().Destroy(IdArgument(info, 0));
  return info.Env().Undefined();
}

Napi::Value CloseListener(const Napi::CallbackInfo& info) {
  WfpEngine::Instance().CloseListener(IdArgument(info, 0));
  return info.Env().Undefined();
}

// wfpQuerySocket(handle): the record of a SOCKET this process owns by other
// means (a handle value as a number). Never throws for socket faults.
Napi::Value QuerySocket(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "handle must be a number");
  auto handle = static_cast<SOCKET>(info[0].As<Napi::Number>().Int64Value());
  return WfpRecordObject(info.Env(), QueryWfpRecord(handle));
}

}  // namespace

void RegisterWfpExports(Napi::Env env, Napi::Object exports) {
  exports.Set("wfpEngineInit", Napi::Function::New(env, EngineInit, "wfpEngineInit"));
  exports.Set("wfpEngineRef", Napi::Function::New(env, EngineRef, "wfpEngineRef"));
  exports.Set("wfpListen", Napi::Function::New(env, Listen, "wfpListen"));
  exports.Set("wfpConnect", Napi::Function::New(env, Connect, "wfpConnect"));
  exports.Set("wfpWrite", Napi::Function::New(env, Write, "wfpWrite"));
  exports.Set("wfpReadStart", Napi::Function::New(env, ReadStart, "wfpReadStart"));
  exports.Set("wfpReadStop", Napi::Function::New(env, ReadStop, "wfpReadStop"));
  exports.Set("wfpEnd", Napi::Function::New(env, End, "wfpEnd"));
  exports.Set("wfpReset", Napi::Function::New(env, Reset, "wfpReset"));
  exports.Set("wfpDestroy", Napi::Function::New(env, Destroy, "wfpDestroy"));
  exports.Set("wfpCloseListener", Napi::Function::New(env, CloseListener, "wfpCloseListener"));
  exports.Set("wfpQuerySocket", Napi::Function::New(env, QuerySocket, "wfpQuerySocket"));
}

}  // namespace rxredirect
