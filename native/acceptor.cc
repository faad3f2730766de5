#include "acceptor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "sys-error.h"
#include "unique-fd.h"

namespace rxredirect {

namespace {

// Connections taken per readiness callback: bounded, so one busy listener
// cannot keep the loop from the rest of its I/O (the poll fires again).
constexpr int kAcceptBatch = 128;

struct Acceptor {
  int64_t id = 0;
  napi_env env = nullptr;
  uv_poll_t poll{};
  UniqueFd fd{-1};
  // Held open so that, out of descriptors, one can be freed to accept (and
  // reset) the connection at the head of the queue instead of leaving it there.
  UniqueFd reserve{-1};
  bool closed = false;
  Napi::FunctionReference onAccept;
  Napi::FunctionReference onFault;
  std::unique_ptr<Napi::AsyncContext> context;
};

// What a fault did, as onFault's second argument.
enum class FaultKind : int {
  kDropped = 0,  // out of descriptors: the connection at the head of the queue was reset
  kFailed = 1,   // that one connection failed; accepting goes on
  kPaused = 2,   // nothing could be freed: accepting stopped until acceptorResume()
};

// Per JS thread: each thread (main or worker_threads) has its own env and
// event loop, and an acceptor lives on the loop of the thread that opened it.
thread_local std::unordered_map<int64_t, Acceptor*> gAcceptors;
thread_local int64_t gNextId = 1;
thread_local bool gCleanupHooked = false;

int OpenReserve() {
  return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

// errno values after which accept(2) may simply be called again: the failure
// belonged to one connection (accept(2) asks to treat the network ones like EAGAIN).
bool IsPerConnection(int err) {
  switch (err) {
    case ECONNABORTED:
    case EPROTO:
    case EPERM:  // a firewall hook refused this connection
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
      return true;
    default:
      return false;
  }
}

// Appends address, port and family (4 or 6) of `addr`, or three undefineds.
void PushPeer(Napi::Env env, const sockaddr_storage* addr, std::vector<napi_value>* args) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (addr != nullptr && addr->ss_family == AF_INET) {
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(addr);
    inet_ntop(AF_INET, &in4->sin_addr, text, sizeof text);
    args->push_back(Napi::String::New(env, text));
    args->push_back(Napi::Number::New(env, ntohs(in4->sin_port)));
    args->push_back(Napi::Number::New(env, 4));
  } else if (addr != nullptr && addr->ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    args->push_back(Napi::String::New(env, text));
    args->push_back(Napi::Number::New(env, ntohs(in6->sin6_port)));
    args->push_back(Napi::Number::New(env, 6));
  } else {
    args->insert(args->end(), 3, env.Undefined());
  }
}

// Calls into JS like Node's own callbacks do (microtasks and nextTicks run after).
void Call(Acceptor* a, Napi::FunctionReference& fn, const std::vector<napi_value>& args) {
  Napi::Env env(a->env);
  try {
    fn.MakeCallback(env.Global(), args.size(), args.data(), *a->context);
  } catch (const Napi::Error& e) {
    // Thrown from a callback with no JS caller: Node's 'uncaughtException' path.
    napi_fatal_exception(a->env, e.Value());
  }
}

void Deliver(Acceptor* a, int fd, const sockaddr_storage& addr) {
  Napi::Env env(a->env);
  std::vector<napi_value> args{Napi::Number::New(env, fd)};
  PushPeer(env, &addr, &args);
  Call(a, a->onAccept, args);
}

void Fault(Acceptor* a, int err, FaultKind kind, const sockaddr_storage* addr) {
  Napi::Env env(a->env);
  std::vector<napi_value> args{Napi::String::New(env, ErrnoName(err)), Napi::Number::New(env, static_cast<int>(kind))};
  PushPeer(env, addr, &args);
  Call(a, a->onFault, args);
}

void Pause(Acceptor* a) {
  uv_poll_stop(&a->poll);
}

// Out of descriptors: frees the reserve to take the connection at the head of
// the queue, resets it (its client learns at once, instead of waiting on a
// queue that does not move) and reports it. False when there is no reserve.
bool DropOne(Acceptor* a, int err) {
  if (a->reserve.get() < 0) return false;
  a->reserve.reset();
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  bool dropped = false;
  {
    UniqueFd fd(accept4(a->fd.get(), reinterpret_cast<sockaddr*>(&addr), &len, SOCK_CLOEXEC));
    if (fd.get() >= 0) {
      linger hard{1, 0};  // the close at the end of this scope sends RST
      setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
      dropped = true;
    }
  }
  a->reserve.reset(OpenReserve());
  if (dropped) Fault(a, err, FaultKind::kDropped, &addr);
  return true;
}

void OnReadable(uv_poll_t* handle, int status, int /*events*/) {
  auto* a = static_cast<Acceptor*>(handle->data);
  Napi::Env env(a->env);
  Napi::HandleScope scope(env);
  if (status < 0) {
    Pause(a);
    Fault(a, -status, FaultKind::kPaused, nullptr);
    return;
  }
  for (int i = 0; i < kAcceptBatch && !a->closed; i++) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    int fd = accept4(a->fd.get(), reinterpret_cast<sockaddr*>(&addr), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      Deliver(a, fd, addr);
      continue;
    }
    const int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return;
    if (err == EINTR) continue;
    if ((err == EMFILE || err == ENFILE) && DropOne(a, err)) continue;
    if (IsPerConnection(err)) {
      Fault(a, err, FaultKind::kFailed, nullptr);
      continue;
    }
    // Nothing to free now (no reserve, no memory): the listener stays readable
    // and polling on would spin. JS resumes after a pause.
    Pause(a);
    Fault(a, err, FaultKind::kPaused, nullptr);
    return;
  }
}

void Close(Acceptor* a) {
  if (a->closed) return;
  a->closed = true;
  gAcceptors.erase(a->id);
  // uv_close stops the poll and takes the fd out of epoll at once; the
  // listener itself is closed before returning, so new connections are refused.
  uv_close(reinterpret_cast<uv_handle_t*>(&a->poll), [](uv_handle_t* h) { delete static_cast<Acceptor*>(h->data); });
  a->fd.reset();
  a->reserve.reset();
}

void CloseAll(void*) {
  while (!gAcceptors.empty()) Close(gAcceptors.begin()->second);
}

Acceptor* Find(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "expected an acceptor id");
  auto it = gAcceptors.find(info[0].As<Napi::Number>().Int64Value());
  return it == gAcceptors.end() ? nullptr : it->second;
}

}  // namespace

Napi::Value AcceptorOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int listenFd = FdArgument(info, 0);
  if (info.Length() < 3 || !info[1].IsFunction() || !info[2].IsFunction()) {
    throw Napi::TypeError::New(env, "acceptorOpen(fd, onAccept, onFault) needs two functions");
  }
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    throw Napi::Error::New(env, "acceptorOpen: no event loop");
  }
  // Owned from the start: a throw on the way out closes both descriptors and frees the acceptor.
  auto owned = std::make_unique<Acceptor>();
  Acceptor* a = owned.get();
  a->env = env;
  a->fd.reset(fcntl(listenFd, F_DUPFD_CLOEXEC, 0));
  if (a->fd.get() < 0) throw SystemError(env, errno, "fcntl");
  a->reserve.reset(OpenReserve());
  if (a->reserve.get() < 0) throw SystemError(env, errno, "open");
  // Also makes the fd non-blocking. On failure the handle was never registered with the loop.
  int rc = uv_poll_init_socket(loop, &a->poll, a->fd.get());
  if (rc != 0) throw SystemError(env, -rc, "uv_poll_init");
  // From here the loop knows the handle: only uv_close (Close) may free it.
  owned.release();
  a->poll.data = a;
  a->id = gNextId++;
  a->onAccept = Napi::Persistent(info[1].As<Napi::Function>());
  a->onFault = Napi::Persistent(info[2].As<Napi::Function>());
  a->context = std::make_unique<Napi::AsyncContext>(env, "rxredirect:accept");
  gAcceptors[a->id] = a;
  if (!gCleanupHooked) {
    napi_add_env_cleanup_hook(env, CloseAll, nullptr);
    gCleanupHooked = true;
  }
  rc = uv_poll_start(&a->poll, UV_READABLE, OnReadable);
  if (rc != 0) {
    Close(a);
    throw SystemError(env, -rc, "uv_poll_start");
  }
  return Napi::Number::New(env, static_cast<double>(a->id));
}

Napi::Value AcceptorResume(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Acceptor* a = Find(info);
  if (a == nullptr) return env.Undefined();
  if (a->reserve.get() < 0) a->reserve.reset(OpenReserve());
  const int rc = uv_poll_start(&a->poll, UV_READABLE, OnReadable);
  if (rc != 0) throw SystemError(env, -rc, "uv_poll_start");
  return env.Undefined();
}

Napi::Value AcceptorClose(const Napi::CallbackInfo& info) {
  Acceptor* a = Find(info);
  if (a != nullptr) Close(a);
  return info.Env().Undefined();
}

}  // namespace rxredirect
