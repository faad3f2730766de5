#!/usr/bin/env python3
"""A scriptable TCP peer that tells a FIN from an RST.

Node reports an RST that arrives behind unread data as a clean 'end' (libuv
turns the hang-up after a partial read into EOF). This peer reads with recv(2)
through asyncio, which returns the reset as ECONNRESET, so tests use it where
FIN against RST is what they check (test/helpers/py-peer.ts drives it).

JSON lines on stdin, one command each; replies carry the command's "id",
events carry "event":
  {"id", "op": "listen", "on_accept": [actions]}   -> {"id", "port"}; event "accepted" {"name": "a1", ...}
  {"id", "op": "connect", "port", "name"}          -> {"id"} once connected
  {"id", "op": "send", "name", "bytes", "seed"}    -> {"id"} once the kernel took it all
  {"id", "op": "shutdown", "name"}                 -> {"id"}   (FIN)
  {"id", "op": "reset", "name"}                    -> {"id"}   (SO_LINGER 0 + close: RST)
  {"id", "op": "read", "name"}                     -> {"id"}; reading starts (sockets start paused)
  event "ended" {"name", "how": "fin" | "rst", "bytes", "sha256"} when a read stream ends
Actions run on each accepted socket, in order, without the test's help (for
tests whose own event loop is busy): {"op": "send", "bytes", "seed"},
{"op": "reset"}, {"op": "shutdown"}, {"op": "read"}, {"op": "touch", "path"}.
"""

import asyncio
import hashlib
import json
import os
import random
import socket
import struct
import sys


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Conn(asyncio.Protocol):
    def __init__(self, name):
        self.name = name
        self.transport = None
        self.hash = hashlib.sha256()
        self.bytes = 0
        self.how = None
        self.reading = False
        self.connected = asyncio.get_running_loop().create_future()
        self.drained = asyncio.Event()
        self.drained.set()

    def connection_made(self, transport):
        self.transport = transport
        transport.pause_reading()
        self.connected.set_result(None)

    def pause_writing(self):
        self.drained.clear()

    def resume_writing(self):
        self.drained.set()

    def data_received(self, data):
        self.bytes += len(data)
        self.hash.update(data)

    def eof_received(self):
        self.finish("fin")
        return True

    def connection_lost(self, exc):
        self.finish("rst" if exc is not None else "closed")
        self.drained.set()

    def finish(self, how):
        if self.how is None and self.reading:
            self.how = how
            emit({"event": "ended", "name": self.name, "how": how, "bytes": self.bytes, "sha256": self.hash.hexdigest()})
        elif self.how is None:
            self.pending_how = how

    def start_reading(self):
        self.reading = True
        pending = getattr(self, "pending_how", None)
        if pending is not None:
            self.finish(pending)
        elif not self.transport.is_closing():
            self.transport.resume_reading()

    async def send(self, size, seed):
        data = random.Random(seed).randbytes(size)
        for off in range(0, size, 65536):
            await self.drained.wait()
            if self.transport.is_closing():
                return
            self.transport.write(data[off : off + 65536])
        while self.transport.get_write_buffer_size() > 0 and not self.transport.is_closing():
            self.drained.clear()
            await self.drained.wait()

    def reset(self):
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


conns = {}
accepted = 0


async def run_actions(conn, actions):
    for a in actions:
        op = a["op"]
        if op == "send":
            await conn.send(a["bytes"], a.get("seed", 0))
        elif op == "reset":
            conn.reset()
        elif op == "shutdown":
            conn.transport.write_eof()
        elif op == "read":
            conn.start_reading()
        elif op == "touch":
            with open(a["path"], "w") as f:
                f.write("done")


async def handle(cmd, loop):
    global accepted
    op = cmd["op"]
    reply = {"id": cmd["id"]}
    if op == "listen":
        actions = cmd.get("on_accept", [])

        def factory():
            global accepted
            accepted += 1
            conn = Conn("a%d" % accepted)
            conns[conn.name] = conn

            async def accepted_conn():
                await conn.connected
                # The address accept(2) returned: getpeername(2) fails with ENOTCONN on a
                # socket the other side has already reset, which a slow peer does see.
                peer = conn.transport.get_extra_info("peername")
                emit({"event": "accepted", "name": conn.name, "peer": list(peer[:2]) if peer else None})
                await run_actions(conn, actions)

            asyncio.ensure_future(reported(accepted_conn()))
            return conn

        server = await loop.create_server(factory, cmd.get("host", "127.0.0.1"), 0)
        reply["port"] = server.sockets[0].getsockname()[1]
    elif op == "connect":
        conn = Conn(cmd["name"])
        conns[conn.name] = conn
        await loop.create_connection(lambda: conn, cmd.get("host", "127.0.0.1"), cmd["port"])
    else:
        await run_actions(conns[cmd["name"]], [cmd])
    emit(reply)


async def main():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        asyncio.ensure_future(guarded(cmd, loop))


async def reported(work):
    # A task nobody awaits would drop its exception, and the test would wait forever
    # for an event that never comes: end the peer instead, which fails the test.
    try:
        await work
    except Exception as err:
        sys.stderr.write("tcp-peer: %s: %s\n" % (err.__class__.__name__, err))
        sys.stderr.flush()
        os._exit(2)


async def guarded(cmd, loop):
    try:
        await handle(cmd, loop)
    except Exception as err:  # reported to the test, which fails with it
        emit({"id": cmd["id"], "error": "%s: %s" % (err.__class__.__name__, err)})


if __name__ == "__main__":
    asyncio.run(main())
