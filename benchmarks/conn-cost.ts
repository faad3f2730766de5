// Per-connection cost of a relay, steadier than rates on a small shared machine:
//   CPU: utime+stime of the relay process (from /proc) per 10,000 request/response connections;
//   memory: JS heap (after a forced gc) and RSS per idle relayed connection.
// Subjects run in their own processes and are interleaved round by round; figures are medians.
//
//   node dist/benchmarks/conn-cost.js [--conns 10000] [--idle 2000] [--rounds 3]
//        [--subjects plain,rx,rx-zc] [--lib before=/path/to/other/dist/lib ...] [--lib-zc name=dir ...]
//
// `--lib name=dir` adds an rxredirect subject loaded from another build's dist/lib, so a
// change can be measured against the code before it in the same run (`--lib-zc`: with zeroCopy
// 'auto', as the subject rx-zc; rx runs with zeroCopy 'off').
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';

interface ChildMem {
  heap: number;
  rss: number;
}

if (process.argv[2] === '--child') runChild();
else void main();

function runChild(): void {
  const [, , , kind, libDir, portText] = process.argv;
  const target = { host: '127.0.0.1', port: Number(portText) };
  const gc = (globalThis as { gc?: () => void }).gc;
  const mem = (): ChildMem => {
    gc?.();
    gc?.();
    return { heap: process.memoryUsage().heapUsed, rss: process.memoryUsage().rss };
  };
  process.on('message', (m: string) => {
    if (m === 'mem') process.send?.(mem());
  });
  if (kind === 'plain') {
    const server = createServer((c: Socket) => {
      const u = connect(target.port, target.host);
      const kill = (): void => {
        c.destroy();
        u.destroy();
      };
      c.on('error', kill);
      u.on('error', kill);
      c.pipe(u);
      u.pipe(c);
    });
    server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () =>
      process.send?.({ port: (server.address() as AddressInfo).port }),
    );
    return;
  }
  const lib = require(join(libDir ?? '', 'index.js')) as typeof import('../lib/index');
  // rx-zc: the default config (zeroCopy 'auto'), which splices only directions that show bulk.
  const zeroCopy = kind === 'rx-zc' ? 'auto' : 'off';
  const server = lib.createRedirectServer({ resolve: target, middleware: [], zeroCopy });
  void server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }).then((a) => process.send?.({ port: a.port }));
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime, in clock ticks (1/100 s)
}

interface Subject {
  name: string;
  child: ChildProcess;
  port: number;
}

async function startSubject(name: string, kind: string, libDir: string, echoPort: number): Promise<Subject> {
  const child = fork(__filename, ['--child', kind, libDir, String(echoPort)], {
    execArgv: ['--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve(m.port));
    child.once('exit', (code) => reject(new Error(`${name} exited (${code})`)));
  });
  return { name, child, port };
}

function ask(child: ChildProcess): Promise<ChildMem> {
  return new Promise((resolve) => {
    child.once('message', (m: ChildMem) => resolve(m));
    child.send('mem');
  });
}

/** `total` request/response connections, `concurrency` at a time; resolves with the seconds taken. */
function connRate(port: number, total: number, concurrency: number): Promise<number> {
  const payload = Buffer.alloc(64, 0x61);
  let started = 0;
  let finished = 0;
  const t0 = performance.now();
  return new Promise((resolve) => {
    const one = (): void => {
      if (started >= total) return;
      started++;
      const s = connect(port, '127.0.0.1');
      let got = 0;
      s.on('connect', () => s.write(payload));
      s.on('data', (d) => {
        got += d.length;
        if (got >= payload.length) s.end();
      });
      s.on('error', () => s.destroy());
      s.on('close', () => {
        finished++;
        if (finished === total) resolve((performance.now() - t0) / 1000);
        else one();
      });
    };
    for (let i = 0; i < concurrency; i++) one();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string, def: number): number => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? Number(args[i + 1]) : def;
  };
  const conns = opt('conns', 10000);
  const idle = opt('idle', 2000);
  const rounds = opt('rounds', 3);
  const si = args.indexOf('--subjects');
  const names = si >= 0 ? (args[si + 1] ?? '').split(',') : ['plain', 'rx'];
  const specs: { name: string; kind: string; lib: string }[] = names.map((n) => ({
    name: n,
    kind: n === 'plain' ? 'plain' : n === 'rx-zc' ? 'rx-zc' : 'rx',
    lib: join(__dirname, '..', 'lib'),
  }));
  args.forEach((a, i) => {
    if (a !== '--lib' && a !== '--lib-zc') return;
    const [name, dir] = (args[i + 1] ?? '').split('=');
    if (name && dir) specs.push({ name, kind: a === '--lib' ? 'rx' : 'rx-zc', lib: dir });
  });

  // The peer: echoes, and counts what it accepted (for the idle scenario).
  let accepted = 0;
  const peerSockets = new Set<Socket>();
  const echo = createServer({ allowHalfOpen: false }, (s) => {
    accepted++;
    peerSockets.add(s);
    s.on('close', () => peerSockets.delete(s));
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, r));
  const echoPort = (echo.address() as AddressInfo).port;

  const results: Record<string, { cpu: number[]; rate: number[]; heap: number[]; rss: number[] }> = {};
  for (const s of specs) results[s.name] = { cpu: [], rate: [], heap: [], rss: [] };

  for (let round = 0; round < rounds; round++) {
    for (const spec of specs) {
      const subject = await startSubject(spec.name, spec.kind, spec.lib, echoPort);
      const r = results[spec.name]!;
      // First, in a fresh process (as the RSS scenario of run.ts): `idle` idle connections,
      // measured once the relay has connected each to the peer.
      await sleep(200);
      const before = await ask(subject.child);
      accepted = 0;
      const clients: Socket[] = [];
      for (let i = 0; i < idle; i++) {
        const s = connect(subject.port, '127.0.0.1');
        s.on('error', () => {});
        clients.push(s);
        if (i % 100 === 99) await sleep(5);
      }
      for (let i = 0; i < 400 && accepted < idle; i++) await sleep(25);
      await sleep(300);
      const after = await ask(subject.child);
      const idleAccepted = accepted;
      r.heap.push((after.heap - before.heap) / idle / 1024);
      r.rss.push((after.rss - before.rss) / idle / 1024);
      for (const s of clients) s.destroy();
      await sleep(300);
      await connRate(subject.port, 1000, 50); // warm-up (JIT)
      const pid = subject.child.pid!;
      const c0 = cpuTicks(pid);
      const seconds = await connRate(subject.port, conns, 50);
      await sleep(100);
      const c1 = cpuTicks(pid);
      r.cpu.push(((c1 - c0) * 10 * 10000) / conns); // ms of CPU per 10k connections
      r.rate.push(conns / seconds);

      subject.child.kill();
      await new Promise((res) => subject.child.once('exit', res));
      console.error(
        `round ${round + 1} ${spec.name}: ${r.cpu.at(-1)?.toFixed(0)} ms CPU/10k conns, ${r.rate.at(-1)?.toFixed(0)} conn/s, ` +
          `heap ${r.heap.at(-1)?.toFixed(2)} KiB/idle conn, RSS ${r.rss.at(-1)?.toFixed(2)} KiB/idle conn (accepted ${idleAccepted}/${idle})`,
      );
    }
  }
  for (const s of peerSockets) s.destroy();
  echo.close();

  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  };
  const base = results.plain;
  console.log(
    '| subject | CPU ms / 10k conns | × plain | conn/s | heap KiB / idle conn | RSS KiB / idle conn | × plain |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const [name, r] of Object.entries(results)) {
    const cpu = median(r.cpu);
    const rss = median(r.rss);
    console.log(
      `| ${name} | ${cpu.toFixed(0)} | ${base ? (cpu / median(base.cpu)).toFixed(2) : '–'} | ${median(r.rate).toFixed(0)} | ` +
        `${median(r.heap).toFixed(2)} | ${rss.toFixed(2)} | ${base ? (rss / median(base.rss)).toFixed(2) : '–'} |`,
    );
  }
}
