import { parseArgs } from 'node:util';
import { formatDoctor, runDoctor } from './doctor';
import { runFaults } from '../fault-control/cli';
import { RedirectError } from '../common/errors';
import { formatCommand, formatRules, generateRules, type RulesOptions } from './rules';
import { RUN_USAGE, runCommand } from '../runner/command';

/**
 * `rxredirect <command>`: doctor, rules, run, faults (and bench, added by bin/rxredirect.js from
 * the benchmark harness). Each subcommand is one entry in COMMANDS. Exit codes: 0 ok, 1 failed, 2 bad usage.
 */

export interface CliIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

export interface Subcommand {
  readonly summary: string;
  readonly usage: string;
  run(args: string[], io: CliIo): number | Promise<number>;
}

/** Bad usage: reported on stderr with the usage line, exit code 2. */
export class UsageError extends Error {}

const RULES_USAGE = `rxredirect rules --port P [--mark M] [--tproxy] [--ipv6] [--nft] [options]

  --port P            the proxy's listening port (required)
  --mark M            the proxy's egress mark: marked flows skip interception (decimal or 0x…)
  --tproxy            TPROXY rules (mangle PREROUTING) instead of REDIRECT (nat)
  --ipv6              also IPv6 (ip6tables / ip6 rules)
  --no-ipv4           IPv6 only
  --nft               nftables commands instead of iptables
  --dest CIDR         destination to intercept (repeatable; default: all but loopback)
  --dport N           destination port to intercept (repeatable or comma-separated; default: all)
  --chain NAME        chain (iptables) or table (nft) name, one per proxy (default RXREDIRECT)
  --forwarded         intercept traffic arriving from other hosts (PREROUTING), any interface
  --iface NAME        ... only from this interface (repeatable)
  --no-local          REDIRECT: leave connections made on this host alone
  --owner UID         REDIRECT: skip this user's connections (instead of --mark, no CAP_NET_ADMIN needed)
  --tproxy-mark M     TPROXY routing mark (default 0x100)
  --table N           TPROXY routing table (default 100)
  --fwmark-accept     add sysctl net.ipv4.tcp_fwmark_accept=1 (cooperating proxies)
  --setup | --teardown  print only that half`;

const FAULTS_USAGE = `rxredirect faults [--api host:port] [--config FILE] [--seed S] [--allow-remote]

  --api host:port   where the Toxiproxy-compatible API listens (default 127.0.0.1:8474)
  --config FILE     proxies to create at start: a JSON array as for POST /populate
  --seed S          seed for every random choice of the toxics (default: a new one, printed)
  --allow-remote    let --api listen beyond loopback`;

const COMMANDS: Record<string, Subcommand> = {
  doctor: {
    summary: 'what this machine supports, and what each mode is missing',
    usage: 'rxredirect doctor [--json]',
    run(args, io) {
      const { values } = parseArgs({ args, options: { json: { type: 'boolean' } }, strict: true });
      const report = runDoctor();
      io.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatDoctor(report));
      return 0;
    },
  },
  rules: {
    summary: 'print the iptables/nft commands for REDIRECT or TPROXY, and their teardown',
    usage: RULES_USAGE,
    run(args, io) {
      const { values } = parseArgs({
        args,
        strict: true,
        options: {
          port: { type: 'string' },
          mark: { type: 'string' },
          tproxy: { type: 'boolean' },
          ipv6: { type: 'boolean' },
          'no-ipv4': { type: 'boolean' },
          nft: { type: 'boolean' },
          dest: { type: 'string', multiple: true },
          dport: { type: 'string', multiple: true },
          chain: { type: 'string' },
          forwarded: { type: 'boolean' },
          iface: { type: 'string', multiple: true },
          'no-local': { type: 'boolean' },
          owner: { type: 'string' },
          'tproxy-mark': { type: 'string' },
          table: { type: 'string' },
          'fwmark-accept': { type: 'boolean' },
          setup: { type: 'boolean' },
          teardown: { type: 'boolean' },
        },
      });
      if (values.port === undefined) throw new UsageError('--port is required');
      const options: RulesOptions = {
        port: integer(values.port, '--port'),
        tproxy: values.tproxy ?? false,
        ipv4: !values['no-ipv4'],
        ipv6: values.ipv6 ?? false,
        nft: values.nft ?? false,
        fwmarkAccept: values['fwmark-accept'] ?? false,
      };
      if (values.mark !== undefined) options.mark = integer(values.mark, '--mark');
      if (values['tproxy-mark'] !== undefined) options.tproxyMark = integer(values['tproxy-mark'], '--tproxy-mark');
      if (values.table !== undefined) options.table = integer(values.table, '--table');
      if (values.dest) options.destinations = values.dest;
      if (values.dport) options.ports = values.dport.flatMap((p) => p.split(',')).map((p) => integer(p, '--dport'));
      if (values.chain !== undefined) options.chain = values.chain;
      if (values.iface) options.forwarded = values.iface;
      else if (values.forwarded) options.forwarded = true;
      if (values['no-local']) options.local = false;
      if (values.owner !== undefined) options.ownerUid = values.owner;
      if (values.setup && values.teardown) throw new UsageError('--setup and --teardown exclude each other');

      const set = generateRules(options);
      if (values.setup) io.stdout.write(`${set.setup.map(formatCommand).join('\n')}\n`);
      else if (values.teardown) io.stdout.write(`${set.teardown.map(formatCommand).join('\n')}\n`);
      else io.stdout.write(formatRules(set));
      return 0;
    },
  },
  run: {
    summary: 'run a proxy from a config module: reload on SIGHUP, drain on SIGTERM, JSON line logs',
    usage: RUN_USAGE,
    run(args) {
      return runCommand(args, (message) => new UsageError(message));
    },
  },
  faults: {
    summary: "fault injection controlled through Toxiproxy's HTTP API (runs until stopped)",
    usage: FAULTS_USAGE,
    async run(args, io) {
      return runFaults(args, io, (message) => new UsageError(message));
    },
  },
};

/** RulesOptions keys as the flags that set them, for error messages. */
const FLAGS: Record<string, string> = {
  port: '--port',
  mark: '--mark',
  tproxyMark: '--tproxy-mark',
  table: '--table',
  chain: '--chain',
  destinations: '--dest',
  ports: '--dport',
  forwarded: '--forwarded/--iface',
  local: '--no-local',
  ownerUid: '--owner',
  ipv4: '--no-ipv4',
};

function integer(text: string, flag: string): number {
  const value = /^0x[0-9a-f]+$/i.test(text)
    ? Number.parseInt(text, 16)
    : /^\d+$/.test(text)
      ? Number(text)
      : Number.NaN;
  if (!Number.isSafeInteger(value)) throw new UsageError(`${flag} must be a number (decimal or 0x…), got "${text}"`);
  return value;
}

function help(commands: Record<string, Subcommand>): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `usage: rxredirect <command> [options]\n\ncommands:\n${lines.join('\n')}\n  ${'help'.padEnd(width)}  this text (or: rxredirect help <command>)\n`;
}

/**
 * Runs the CLI; resolves with the exit code. `extra` adds commands that live
 * outside the library (bin/rxredirect.js adds the benchmark harness's `bench`).
 */
export async function main(
  argv: readonly string[],
  io: CliIo = process,
  extra: Readonly<Record<string, Subcommand>> = {},
): Promise<number> {
  const commands: Record<string, Subcommand> = { ...COMMANDS, ...extra };
  const [name, ...args] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    const topic = name === 'help' && args[0] !== undefined ? commands[args[0]] : undefined;
    io.stdout.write(topic ? `usage: ${topic.usage}\n` : help(commands));
    return 0;
  }
  const command = commands[name];
  if (command === undefined) {
    io.stderr.write(`rxredirect: unknown command "${name}"\n\n${help(commands)}`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout.write(`usage: ${command.usage}\n`);
    return 0;
  }
  try {
    return await command.run(args, io);
  } catch (err) {
    const usage = err instanceof UsageError || isParseArgsError(err);
    const invalid = err instanceof RedirectError && err.code === 'ERR_REDIRECT_INVALID_OPTION';
    const message =
      err instanceof Error
        ? err.message.replace(/^options\.rules\.(\w+)/, (_, key: string) => FLAGS[key] ?? key)
        : String(err);
    io.stderr.write(`rxredirect ${name}: ${message}\n`);
    if (usage || invalid) {
      io.stderr.write(`usage: ${command.usage.split('\n')[0]}\n(see rxredirect help ${name})\n`);
      return 2;
    }
    return 1;
  }
}

export function isParseArgsError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

/** Entry point for bin/rxredirect.js. */
export function run(extra: Readonly<Record<string, Subcommand>> = {}): void {
  main(process.argv.slice(2), process, extra).then(
    (code) => {
      process.exitCode = code;
      // `run` is over once drained (or failed): the config module may hold handles of its own
      // (a timer, a server) that must not keep a stopped proxy's process alive.
      if (process.argv[2] === 'run') process.exit(code);
    },
    (err: unknown) => {
      process.stderr.write(`rxredirect: ${String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
