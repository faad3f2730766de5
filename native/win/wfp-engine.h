// The Windows socket engine. Node cannot hand an addon the SOCKET behind a
// net.Socket, and the WFP ioctls need it, so on Windows the addon owns every
// socket of a WFP flow: the listener, the accept loop, the accepted client
// sockets and the outbound sockets. One I/O thread polls them all (WSAPoll)
// and reports to JS through one ThreadSafeFunction; JS drives each
// connection through lib/net/windows-transport.ts with the Transport seam's
// operations (start/stop reading at the OS level, write with a flush report,
// FIN, RST, close). See docs/windows.md for the protocol.
#pragma once

#include "wfp-query.h"

#include <napi.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace rxredirect {

// Event kinds reported to JS: callback(kind, id, a, b).
enum class WfpEventKind : int {
  kAccept = 0,   // id: new connection, a: listener id, b: {record outcome, local, remote}
  kConnect = 1,  // id, a: error name or undefined
  kData = 2,     // id, a: Buffer
  kEnd = 3,      // id: the peer sent FIN
  kFlushed = 4,  // id, a: bytes the kernel took
  kError = 5,    // id, a: error name, b: syscall
  kClose = 6,    // id: the socket is closed; nothing more for this id
};

struct WfpEvent {
  explicit WfpEvent(WfpEventKind k) : kind(k) {}
  WfpEventKind kind;
  uint32_t id = 0;
  uint32_t listener = 0;
  std::vector<uint8_t> data;
  uint64_t count = 0;
  int error = 0;
  std::string syscall;
  wfp::RecordOutcome record;
  sockaddr_storage local{};
  sockaddr_storage remote{};
};

class WfpEngine {
 public:
  static WfpEngine& Instance();

  // Once per process, on the JS thread.
  void Init(Napi::Env env, Napi::Function callback);
  void SetRef(Napi::Env env, bool ref);

  // Each returns an id > 0, or throws a WinSystemError (JS thread only).
  uint32_t Listen(Napi::Env env, const sockaddr_storage& address, int address_len, int backlog, int* port);
  uint32_t Connect(Napi::Env env, const sockaddr_storage& target, int target_len, const std::vector<uint8_t>& records,
                   const sockaddr_storage* bind, int bind_len);

  // Unknown ids are ignored: the connection may have closed meanwhile.
  void Write(uint32_t id, std::vector<uint8_t> bytes);
  void SetReading(uint32_t id, bool reading);
  void End(uint32_t id);
  void Reset(uint32_t id);
  void Destroy(uint32_t id);
  void CloseListener(uint32_t id);
  // JS thread, after a DATA event was handed to JS: lets reading resume.
  void Delivered(uint32_t id, size_t bytes);

 private:
  struct Connection {
    SOCKET socket = INVALID_SOCKET;
    bool connecting = false;
    bool reading = false;
    bool end_requested = false;  // FIN once the queue is empty
    bool fin_sent = false;
    bool peer_ended = false;
    std::deque<std::vector<uint8_t>> queue;
    size_t offset = 0;  // into queue.front()
    size_t in_flight = 0;  // bytes read and not yet delivered to JS
  };
  struct Listener {
    SOCKET socket = INVALID_SOCKET;
  };

  WfpEngine() = default;
  void Start();
  void Run();
  void Wake();
  void Emit(WfpEvent event);
  void AcceptAll(uint32_t listener_id, SOCKET listener);
  void ReadSome(uint32_t id, Connection& c);
  void WriteSome(uint32_t id, Connection& c);
  void CloseConnection(uint32_t id, bool reset);
  void FailConnection(uint32_t id, int error, const char* syscall);

  std::mutex mutex_;
  std::map<uint32_t, Connection> connections_;
  std::map<uint32_t, Listener> listeners_;
  uint32_t next_id_ = 1;
  bool started_ = false;
  SOCKET wake_ = INVALID_SOCKET;
  std::thread thread_;
  Napi::ThreadSafeFunction tsfn_;
};

}  // namespace rxredirect
