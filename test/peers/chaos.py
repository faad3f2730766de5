#!/usr/bin/env python3
"""Chaos peer: both ends of many TCP flows through a proxy, some reset mid-stream.

A Node socket reports an RST that arrives behind unread data as a clean 'end'
(libuv turns the hang-up after a partial read into EOF). Python's asyncio reads
with recv(2), which returns the reset as ECONNRESET, so this peer tells a FIN
from an RST on both sides of the proxy.

Protocol with the test (JSON lines):
  stdout  {"upstream": PORT}             once the upstream listener is up
  stdin   {"proxy": PORT}                 then the flows start
  stdout  {"flows": [...]}                one entry per flow, when all have ended

Each flow: the client sends an 8-byte header (flow id, magic), then `bytes`
bytes; the upstream, once it has the header, sends `bytes` bytes back. Both
read to the end. A flow's plan resets the client or the upstream (SO_LINGER 0)
after `reset_after` bytes were sent, or nobody. Data is derived from the seed,
so the test can check what arrived against what was sent (sha256 of the bytes
and of the expected prefix).
"""

import argparse
import asyncio
import hashlib
import json
import random
import socket
import struct
import sys

MAGIC = 0x52585244  # "RXRD"
CHUNK = 64 * 1024
SOCKET_BUFFER = 256 * 1024


def payload(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def abort(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class Side(asyncio.Protocol):
    """One end of a flow: sends its payload (or part of it, then resets) and reads to the end."""

    def __init__(self, flows: dict, role: str):
        self.flows = flows
        self.role = role
        self.flow = None
        self.transport = None
        self.received = bytearray()
        self.header = bytearray()
        self.end = None  # 'fin' | 'rst'
        self.done = asyncio.get_running_loop().create_future()
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.sending = None
        self.wrote_eof = False

    def connection_made(self, transport):
        self.transport = transport
        transport.set_write_buffer_limits(high=256 * 1024)
        # Small kernel buffers on our side: 400 sockets autotuned to megabytes each would
        # push the whole machine into TCP memory pressure (tcp_mem), and the kernel then
        # drops and resets other tests' connections too.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)

    def pause_writing(self):
        self.can_write.clear()

    def resume_writing(self):
        self.can_write.set()

    def data_received(self, data):
        if self.role == "upstream" and self.flow is None:
            self.header += data
            if len(self.header) < 8:
                return
            flow_id, magic = struct.unpack("!II", self.header[:8])
            data = bytes(self.header[8:])
            if magic != MAGIC or flow_id not in self.flows:
                self.end = "bad-header"
                abort(self.transport)
                return
            self.flow = self.flows[flow_id]
            self.flow["upstream"] = self
            self.sending = asyncio.ensure_future(self.send())
        self.received += data

    def eof_received(self):
        if self.end is None:
            self.end = "fin"
        if self.wrote_eof:
            self.transport.close()
        return True  # keep our write side open: half-close

    def connection_lost(self, exc):
        if self.end is None:
            self.end = "rst" if exc is not None else "closed"
        self.can_write.set()
        if not self.done.done():
            self.done.set_result(None)

    async def send(self):
        plan = self.flow["plan"]
        data = self.flow[self.role + "_data"]
        resets = plan["reset"] == self.role
        limit = plan["reset_after"] if resets else len(data)
        sent = 0
        while sent < limit and not self.transport.is_closing():
            await self.can_write.wait()
            if self.transport.is_closing():
                break
            n = min(CHUNK, limit - sent)
            self.transport.write(data[sent : sent + n])
            sent += n
            await asyncio.sleep(0)
        if self.transport.is_closing():
            return
        if resets:
            self.end = "reset-sent"
            abort(self.transport)
        else:
            while self.transport.get_write_buffer_size() > 0 and not self.transport.is_closing():
                await self.can_write.wait()
                await asyncio.sleep(0.001)
            if not self.transport.is_closing():
                try:
                    self.transport.write_eof()
                except OSError:
                    return  # reset by the far side meanwhile: connection_lost records it
                self.wrote_eof = True
                if self.end == "fin":
                    self.transport.close()

    def report(self):
        expected = self.flow[("upstream" if self.role == "client" else "client") + "_data"]
        got = bytes(self.received)
        return {
            "end": self.end,
            "bytes": len(got),
            "intact_prefix": expected[: len(got)] == got,
            "complete": got == expected,
        }


async def run_client(flow, proxy_port, loop):
    side = Side({}, "client")
    side.flow = flow
    flow["client"] = side
    try:
        await loop.create_connection(lambda: side, "127.0.0.1", proxy_port)
    except OSError as err:
        side.end = "connect-failed:" + err.__class__.__name__
        return
    side.transport.write(struct.pack("!II", flow["id"], MAGIC))
    await side.send()
    await side.done


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=200)
    ap.add_argument("--bytes", type=int, default=2 * 1024 * 1024)
    ap.add_argument("--client-resets", type=float, default=0.2)
    ap.add_argument("--upstream-resets", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    loop = asyncio.get_running_loop()
    rng = random.Random(args.seed)
    flows = {}
    for i in range(1, args.flows + 1):
        r = rng.random()
        reset = "client" if r < args.client_resets else "upstream" if r < args.client_resets + args.upstream_resets else None
        plan = {"reset": reset, "reset_after": rng.randint(args.bytes // 4, 3 * args.bytes // 4)}
        flows[i] = {
            "id": i,
            "plan": plan,
            "client_data": payload(args.seed * 1_000_003 + i, args.bytes),
            "upstream_data": payload(args.seed * 2_000_003 + i, args.bytes),
        }
    upstreams = []

    def accept():
        side = Side(flows, "upstream")
        upstreams.append(side)
        return side

    server = await loop.create_server(accept, "127.0.0.1", 0, backlog=1024)
    print(json.dumps({"upstream": server.sockets[0].getsockname()[1]}), flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)
    proxy_port = json.loads(line)["proxy"]
    await asyncio.gather(*(run_client(f, proxy_port, loop) for f in flows.values()))
    # Every upstream that was connected has ended too (or ends shortly after its client).
    for side in upstreams:
        await side.done
    for side in upstreams:
        if side.sending is not None:
            await side.sending
    server.close()
    out = []
    for f in flows.values():
        entry = {"id": f["id"], "reset": f["plan"]["reset"], "resetAfter": f["plan"]["reset_after"]}
        client = f.get("client")
        up = f.get("upstream")
        entry["client"] = client.report() if client and client.end and not client.end.startswith("connect") else {"end": client.end if client else None}
        entry["upstream"] = up.report() if up else None
        out.append(entry)
    print(json.dumps({"flows": out}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
