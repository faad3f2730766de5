#include "wfp-engine.h"

#include <cstring>
#include <stdexcept>

#include "../wfp-napi.h"
#include "win-error.h"

namespace rxredirect {

namespace {

// One read per socket per poll turn, like libuv: fair between connections,
// and with reading stopped the kernel buffer fills and TCP closes the window.
constexpr size_t kReadSize = 64 * 1024;
// Bytes read but not yet handed to JS, per connection, at most: JS's readStop
// arrives late, and this bounds what still reaches JS after it.
constexpr size_t kMaxInFlight = 4 * kReadSize;
// Backstop only: commands wake the loop through the wake socket.
constexpr int kPollTimeoutMs = 1000;

bool WouldBlock(int error) { return error == WSAEWOULDBLOCK || error == WSAEINPROGRESS; }

Napi::Value EndpointValue(Napi::Env env, const sockaddr_storage& address) {
  wfp::Endpoint endpoint;
  if (!wfp::ParseWinSockaddr(reinterpret_cast<const uint8_t*>(&address), sizeof address, &endpoint)) {
    return env.Undefined();
  }
  Napi::Object object = Napi::Object::New(env);
  object.Set("address", Napi::String::New(env, endpoint.address));
  object.Set("port", Napi::Number::New(env, endpoint.port));
  object.Set("family", Napi::String::New(env, endpoint.family == 6 ? "IPv6" : "IPv4"));
  return object;
}

void CallJs(Napi::Env env, Napi::Function callback, WfpEvent* event) {
  std::unique_ptr<WfpEvent> owned(event);
  if (env == nullptr || callback.IsEmpty()) return;
  Napi::Value a = env.Undefined();
  Napi::Value b = env.Undefined();
  switch (event->kind) {
    case WfpEventKind::kAccept: {
      a = Napi::Number::New(env, event->listener);
      Napi::Object info = WfpRecordObject(env, event->record);
      info.Set("local", EndpointValue(env, event->local));
      info.Set("remote", EndpointValue(env, event->remote));
      b = info;
      break;
    }
    case WfpEventKind::kConnect:
      if (event->error != 0) a = Napi::String::New(env, wfp::WinErrorName(event->error));
      break;
    case WfpEventKind::kData:
      a = Napi::Buffer<uint8_t>::Copy(env, event->data.data(), event->data.size());
      WfpEngine::Instance().Delivered(event->id, event->data.size());
      break;
    case WfpEventKind::kFlushed:
      a = Napi::Number::New(env, static_cast<double>(event->count));
      break;
    case WfpEventKind::kError:
      a = Napi::String::New(env, wfp::WinErrorName(event->error));
      b = Napi::String::New(env, event->syscall);
      break;
    case WfpEventKind::kEnd:
    case WfpEventKind::kClose:
      break;
  }
  callback.Call({Napi::Number::New(env, static_cast<int>(event->kind)), Napi::Number::New(env, event->id), a, b});
}

}  // namespace

WfpEngine& WfpEngine::Instance() {
  static WfpEngine* engine = new WfpEngine();  // lives as long as the process
  return *engine;
}

void WfpEngine::Init(Napi::Env env, Napi::Function callback) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (tsfn_) throw Napi::Error::New(env, "the WFP engine is already initialised");
  WSADATA data;
  int rc = WSAStartup(MAKEWORD(2, 2), &data);
  if (rc != 0) throw WinSystemError(env, rc, "WSAStartup");
  tsfn_ = Napi::ThreadSafeFunction::New(env, callback, "rxredirect-wfp", 0, 1);
  // JS refs the engine while it has live listeners or connections.
  tsfn_.Unref(env);
}

void WfpEngine::SetRef(Napi::Env env, bool ref) {
  if (!tsfn_) return;
  if (ref) {
    tsfn_.Ref(env);
  } else {
    tsfn_.Unref(env);
  }
}

void WfpEngine::Start() {
  // Caller holds mutex_.
  if (started_) return;
  wake_ = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
  sockaddr_in loopback{};
  loopback.sin_family = AF_INET;
  loopback.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int len = sizeof loopback;
  u_long nonblocking = 1;
  if (wake_ == INVALID_SOCKET || bind(wake_, reinterpret_cast<sockaddr*>(&loopback), len) != 0 ||
      getsockname(wake_, reinterpret_cast<sockaddr*>(&loopback), &len) != 0 ||
      connect(wake_, reinterpret_cast<sockaddr*>(&loopback), len) != 0 || ioctlsocket(wake_, FIONBIO, &nonblocking) != 0) {
    throw std::runtime_error("WFP engine: cannot create its loopback wake socket");
  }
  started_ = true;
  thread_ = std::thread([this] { Run(); });
  thread_.detach();
}

void WfpEngine::Wake() {
  char byte = 0;
  if (wake_ != INVALID_SOCKET) send(wake_, &byte, 1, 0);
}

void WfpEngine::Emit(WfpEvent event) {
  if (!tsfn_) return;
  auto* copy = new WfpEvent(std::move(event));
  if (tsfn_.NonBlockingCall(copy, CallJs) != napi_ok) delete copy;
}

uint32_t WfpEngine::Listen(Napi::Env env, const sockaddr_storage& address, int address_len, int backlog, int* port) {
  if (!tsfn_) throw Napi::Error::New(env, "wfpEngineInit must be called first");
  SOCKET s = WSASocketW(address.ss_family, SOCK_STREAM, IPPROTO_TCP, nullptr, 0, WSA_FLAG_NO_HANDLE_INHERIT);
  if (s == INVALID_SOCKET) throw WinSystemError(env, WSAGetLastError(), "WSASocket");
  auto fail = [&](const char* call) {
    int error = WSAGetLastError();
    closesocket(s);
    return WinSystemError(env, error, call);
  };
  BOOL on = TRUE;
  DWORD off = 0;
  if (setsockopt(s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, reinterpret_cast<const char*>(&on), sizeof on) != 0) {
    throw fail("setsockopt");
  }
  // One '::' listener serves IPv4 and IPv6, as on Linux.
  if (address.ss_family == AF_INET6) {
    setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, reinterpret_cast<const char*>(&off), sizeof off);
  }
  u_long nonblocking = 1;
  if (ioctlsocket(s, FIONBIO, &nonblocking) != 0) throw fail("ioctlsocket");
  if (bind(s, reinterpret_cast<const sockaddr*>(&address), address_len) != 0) throw fail("bind");
  if (listen(s, backlog > 0 ? backlog : SOMAXCONN) != 0) throw fail("listen");
  sockaddr_storage bound{};
  int bound_len = sizeof bound;
  if (getsockname(s, reinterpret_cast<sockaddr*>(&bound), &bound_len) != 0) throw fail("getsockname");
  *port = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);  // same offset in sockaddr_in6

  std::lock_guard<std::mutex> lock(mutex_);
  Start();
  uint32_t id = next_id_++;
  listeners_[id].socket = s;
  Wake();
  return id;
}

uint32_t WfpEngine::Connect(Napi::Env env, const sockaddr_storage& target, int target_len,
                            const std::vector<uint8_t>& records, const sockaddr_storage* bind, int bind_len) {
  if (!tsfn_) throw Napi::Error::New(env, "wfpEngineInit must be called first");
  int error = 0;
  const char* syscall = "";
  SOCKET s = CreateRedirectedSocket(target.ss_family, records, bind, bind_len, &error, &syscall);
  if (s == INVALID_SOCKET) throw WinSystemError(env, error, syscall);
  if (connect(s, reinterpret_cast<const sockaddr*>(&target), target_len) != 0 && !WouldBlock(WSAGetLastError())) {
    error = WSAGetLastError();
    closesocket(s);
    throw WinSystemError(env, error, "connect");
  }
  std::lock_guard<std::mutex> lock(mutex_);
  Start();
  uint32_t id = next_id_++;
  Connection& c = connections_[id];
  c.socket = s;
  c.connecting = true;
  Wake();
  return id;
}

void WfpEngine::Write(uint32_t id, std::vector<uint8_t> bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = connections_.find(id);
  if (it == connections_.end() || it->second.fin_sent || bytes.empty()) return;
  it->second.queue.push_back(std::move(bytes));
  Wake();
}

void WfpEngine::SetReading(uint32_t id, bool reading) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  it->second.reading = reading;
  Wake();
}

void WfpEngine::End(uint32_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  it->second.end_requested = true;
  Wake();
}

void WfpEngine::Reset(uint32_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  CloseConnection(id, true);
}

void WfpEngine::Destroy(uint32_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  CloseConnection(id, false);
}

void WfpEngine::CloseListener(uint32_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = listeners_.find(id);
  if (it == listeners_.end()) return;
  closesocket(it->second.socket);
  listeners_.erase(it);
  Wake();
}

void WfpEngine::Delivered(uint32_t id, size_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  bool was_full = it->second.in_flight >= kMaxInFlight;
  it->second.in_flight -= bytes < it->second.in_flight ? bytes : it->second.in_flight;
  if (was_full && it->second.in_flight < kMaxInFlight) Wake();
}

void WfpEngine::CloseConnection(uint32_t id, bool reset) {
  // Caller holds mutex_.
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  if (reset) {
    linger abort{1, 0};  // closesocket then sends RST
    setsockopt(it->second.socket, SOL_SOCKET, SO_LINGER, reinterpret_cast<const char*>(&abort), sizeof abort);
  }
  closesocket(it->second.socket);
  connections_.erase(it);
  WfpEvent event{WfpEventKind::kClose};
  event.id = id;
  Emit(std::move(event));
  Wake();
}

void WfpEngine::FailConnection(uint32_t id, int error, const char* syscall) {
  WfpEvent event{WfpEventKind::kError};
  event.id = id;
  event.error = error;
  event.syscall = syscall;
  Emit(std::move(event));
  CloseConnection(id, true);
}

void WfpEngine::AcceptAll(uint32_t listener_id, SOCKET listener) {
  for (;;) {
    WfpEvent event{WfpEventKind::kAccept};
    int remote_len = sizeof event.remote;
    SOCKET s = accept(listener, reinterpret_cast<sockaddr*>(&event.remote), &remote_len);
    if (s == INVALID_SOCKET) return;  // WSAEWOULDBLOCK, or a connection reset before accept
    u_long nonblocking = 1;
    ioctlsocket(s, FIONBIO, &nonblocking);
    int local_len = sizeof event.local;
    getsockname(s, reinterpret_cast<sockaddr*>(&event.local), &local_len);
    // Before a single byte is read, as with pauseOnConnect on Linux.
    event.record = QueryWfpRecord(s);
    uint32_t id = next_id_++;
    connections_[id].socket = s;  // reading stays off until JS starts it
    event.id = id;
    event.listener = listener_id;
    Emit(std::move(event));
  }
}

void WfpEngine::ReadSome(uint32_t id, Connection& c) {
  // Never past the bound: a short read earlier leaves room for less than a whole
  // read, and taking kReadSize then would overshoot kMaxInFlight by up to one read.
  size_t room = c.in_flight < kMaxInFlight ? kMaxInFlight - c.in_flight : 0;
  if (room == 0) return;
  std::vector<uint8_t> buffer(room < kReadSize ? room : kReadSize);
  int n = recv(c.socket, reinterpret_cast<char*>(buffer.data()), static_cast<int>(buffer.size()), 0);
  if (n > 0) {
    buffer.resize(static_cast<size_t>(n));
    c.in_flight += buffer.size();
    WfpEvent event{WfpEventKind::kData};
    event.id = id;
    event.data = std::move(buffer);
    Emit(std::move(event));
    return;
  }
  if (n == 0) {
    c.peer_ended = true;
    WfpEvent event{WfpEventKind::kEnd};
    event.id = id;
    Emit(std::move(event));
    return;
  }
  int error = WSAGetLastError();
  if (!WouldBlock(error)) FailConnection(id, error, "recv");
}

void WfpEngine::WriteSome(uint32_t id, Connection& c) {
  uint64_t taken = 0;
  while (!c.queue.empty()) {
    std::vector<uint8_t>& front = c.queue.front();
    int n = send(c.socket, reinterpret_cast<const char*>(front.data() + c.offset),
                 static_cast<int>(front.size() - c.offset), 0);
    if (n < 0) {
      int error = WSAGetLastError();
      if (WouldBlock(error)) break;
      FailConnection(id, error, "send");
      return;
    }
    taken += static_cast<uint64_t>(n);
    c.offset += static_cast<size_t>(n);
    if (c.offset == front.size()) {
      c.queue.pop_front();
      c.offset = 0;
    }
  }
  if (taken > 0) {
    WfpEvent event{WfpEventKind::kFlushed};
    event.id = id;
    event.count = taken;
    Emit(std::move(event));
  }
  if (c.queue.empty() && c.end_requested && !c.fin_sent) {
    c.fin_sent = true;
    if (shutdown(c.socket, SD_SEND) != 0) FailConnection(id, WSAGetLastError(), "shutdown");
  }
}

void WfpEngine::Run() {
  enum class Owner { kWake, kListener, kConnection };
  std::vector<WSAPOLLFD> fds;
  std::vector<std::pair<Owner, uint32_t>> owners;
  for (;;) {
    fds.clear();
    owners.clear();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fds.push_back({wake_, POLLRDNORM, 0});
      owners.emplace_back(Owner::kWake, 0);
      for (auto& [id, l] : listeners_) {
        fds.push_back({l.socket, POLLRDNORM, 0});
        owners.emplace_back(Owner::kListener, id);
      }
      for (auto& [id, c] : connections_) {
        SHORT events = 0;
        if (c.connecting) {
          events = POLLWRNORM;
        } else {
          if (c.reading && !c.peer_ended && c.in_flight < kMaxInFlight) events |= POLLRDNORM;
          if (!c.queue.empty() || (c.end_requested && !c.fin_sent)) events |= POLLWRNORM;
        }
        // A paused socket is not polled at all (POLLHUP would spin the loop).
        if (events == 0) continue;
        fds.push_back({c.socket, events, 0});
        owners.emplace_back(Owner::kConnection, id);
      }
    }

    int ready = WSAPoll(fds.data(), static_cast<ULONG>(fds.size()), kPollTimeoutMs);
    if (ready <= 0) continue;

    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < fds.size(); ++i) {
      SHORT revents = fds[i].revents;
      if (revents == 0) continue;
      auto [owner, id] = owners[i];
      if (owner == Owner::kWake) {
        char drain[64];
        while (recv(wake_, drain, sizeof drain, 0) > 0) {
        }
        continue;
      }
      if (owner == Owner::kListener) {
        auto it = listeners_.find(id);
        if (it != listeners_.end()) AcceptAll(id, it->second.socket);
        continue;
      }
      auto it = connections_.find(id);
      if (it == connections_.end()) continue;  // closed by JS meanwhile
      Connection& c = it->second;
      if (c.connecting) {
        int error = 0;
        int len = sizeof error;
        getsockopt(c.socket, SOL_SOCKET, SO_ERROR, reinterpret_cast<char*>(&error), &len);
        if (error == 0 && (revents & (POLLERR | POLLHUP)) != 0) error = WSAECONNREFUSED;
        WfpEvent event{WfpEventKind::kConnect};
        event.id = id;
        event.error = error;
        Emit(std::move(event));
        if (error != 0) {
          CloseConnection(id, false);
        } else {
          c.connecting = false;
        }
        continue;
      }
      if ((revents & POLLWRNORM) != 0) WriteSome(id, c);
      it = connections_.find(id);  // WriteSome may have failed and closed it
      if (it == connections_.end()) continue;
      if ((revents & (POLLRDNORM | POLLHUP | POLLERR)) != 0 && it->second.reading && !it->second.peer_ended) {
        ReadSome(id, it->second);
      }
    }
  }
}

}  // namespace rxredirect
