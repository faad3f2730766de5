import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { ExecutionContext } from 'ava';

/** What a python3 peer saw: unlike a Node socket, it tells a FIN from an RST. */
export interface PeerReport {
  /** Bytes received, and their sha256. */
  readonly received: number;
  readonly receivedSha256: string;
  /** sha256 of what it sent. */
  readonly sentSha256: string;
  /** How the stream from the other side ended. */
  readonly end: 'fin' | 'rst' | 'error';
  /** ms from the peer's start (connect or accept) to its first byte in, and to the end. */
  readonly firstByteMs: number | null;
  readonly endMs: number;
}

const SCRIPT = `
import hashlib, json, os, socket, sys, time
cfg = json.loads(sys.argv[1])
if cfg["mode"] == "server":
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    print(ls.getsockname()[1], flush=True)
    s, _ = ls.accept()
else:
    s = socket.create_connection(("127.0.0.1", cfg["port"]))
t0 = time.monotonic()
ms = lambda: (time.monotonic() - t0) * 1000
data = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(cfg["send"]))
s.sendall(data)
if cfg.get("shut"):
    s.shutdown(socket.SHUT_WR)
h = hashlib.sha256()
n = 0
first = None
end = "fin"
while True:
    try:
        b = s.recv(65536)
    except ConnectionResetError:
        end = "rst"
        break
    except OSError:
        end = "error"
        break
    if not b:
        break
    if first is None:
        first = ms()
    n += len(b)
    h.update(b)
print(json.dumps({"received": n, "receivedSha256": h.hexdigest(), "sentSha256": hashlib.sha256(data).hexdigest(),
                  "end": end, "firstByteMs": first, "endMs": ms()}), flush=True)
s.close()
`;

function run(t: ExecutionContext, cfg: object) {
  const child = spawn('python3', ['-c', SCRIPT, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill();
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => {
    out += b.toString();
  });
  const report = once(child, 'exit').then(() => JSON.parse(out.trim().split('\n').pop() as string) as PeerReport);
  return { child, report, output: () => out };
}

/** The bytes a peer sends: the same pattern in both languages, for sha256 checks. */
export function peerPattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 8)) & 0xff;
  return b;
}

/** A python3 client: connects, sends `send` bytes (then FIN if `shut`), reads to the end. */
export function pyClient(t: ExecutionContext, port: number, send: number, shut = false): Promise<PeerReport> {
  return run(t, { mode: 'client', port, send, shut }).report;
}

/** A python3 server for one connection: sends `send` bytes on accept (then FIN if `shut`), reads to the end. */
export async function pyServer(
  t: ExecutionContext,
  send: number,
  shut = false,
): Promise<{ port: number; report: Promise<PeerReport> }> {
  const peer = run(t, { mode: 'server', send, shut });
  while (!peer.output().includes('\n')) await once(peer.child.stdout, 'data');
  return { port: Number(peer.output().split('\n')[0]), report: peer.report };
}
