import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { main } from '../lib/tools/cli';
import type { DoctorReport } from '../lib/tools/doctor';

const run = promisify(execFile);
const BIN = join(__dirname, '..', '..', 'bin', 'rxredirect.js');

async function cli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  });
  return { code, stdout, stderr };
}

test('rules prints setup and teardown for the flags given', async (t) => {
  const out = await cli('rules', '--port', '8080', '--mark', '0x1', '--ipv6', '--dport', '80,443');
  t.is(out.code, 0);
  t.regex(out.stdout, /^# setup\niptables -t nat -N RXREDIRECT\n/);
  t.true(out.stdout.includes('iptables -t nat -A RXREDIRECT -m mark --mark 0x1/0x1 -j RETURN'));
  t.true(out.stdout.includes('ip6tables -t nat -A RXREDIRECT -p tcp ! -d ::1/128 -m multiport --dports 80,443'));
  t.regex(out.stdout, /# teardown\n/);
  const tproxy = await cli('rules', '--port', '9000', '--tproxy', '--nft', '--setup');
  t.is(tproxy.code, 0);
  t.false(tproxy.stdout.includes('teardown'));
  t.true(tproxy.stdout.includes('tproxy ip to :9000'));
  const teardown = await cli('rules', '--port', '9000', '--teardown');
  t.is(
    teardown.stdout,
    'iptables -t nat -D OUTPUT -p tcp -j RXREDIRECT\niptables -t nat -F RXREDIRECT\niptables -t nat -X RXREDIRECT\n',
  );
});

test('bad flags: a clear message and exit code 2', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['rules'], /--port is required/],
    [['rules', '--port', 'abc'], /--port must be a number/],
    [['rules', '--port', '80', '--bogus'], /Unknown option '--bogus'/],
    [['rules', '--port', '80', '--tproxy', '--mark', '0x100'], /--mark: shares bits with tproxyMark/],
    [['rules', '--port', '80', '--dest', 'nope'], /--dest: "nope" is not an address or CIDR/],
    [['rules', '--port', '80', '--setup', '--teardown'], /exclude each other/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['doctor', '--verbose'], /Unknown option '--verbose'/],
  ];
  for (const [argv, message] of cases) {
    const out = await cli(...argv);
    t.is(out.code, 2, argv.join(' '));
    t.regex(out.stderr, message);
    t.is(out.stdout, '');
  }
});

test('help lists the commands; help <command> shows its usage', async (t) => {
  const out = await cli('help');
  t.is(out.code, 0);
  t.regex(out.stdout, /doctor/);
  t.regex(out.stdout, /rules/);
  t.regex((await cli('help', 'rules')).stdout, /--tproxy-mark M/);
  t.regex((await cli('rules', '--help')).stdout, /usage: rxredirect rules/);
});

test('doctor --json reports checks and, per mode, what is missing', async (t) => {
  const out = await cli('doctor', '--json');
  t.is(out.code, 0);
  const report = JSON.parse(out.stdout) as DoctorReport;
  const names = report.checks.map((c) => c.name);
  for (const name of ['native addon', 'CAP_NET_ADMIN', 'splice(2)', 'net.ipv4.tcp_fwmark_accept', 'iptables', 'nft']) {
    t.true(names.includes(name), name);
  }
  t.true(report.modes.some((m) => m.mode.includes('tproxy')));
  for (const mode of report.modes) t.is(mode.ready, mode.missing.length === 0);
});

test('the bin shim runs the CLI (and RXREDIRECT_NATIVE=0 shows the addon off)', async (t) => {
  const { stdout } = await run(process.execPath, [BIN, 'doctor'], { env: { ...process.env, RXREDIRECT_NATIVE: '0' } });
  t.regex(stdout, /native addon\s+not loaded: turned off by RXREDIRECT_NATIVE=0/);
  t.regex(stdout, /needs the native addon/);
  const failed = await run(process.execPath, [BIN, 'rules']).catch((err: { code: number; stderr: string }) => err);
  t.is((failed as { code: number }).code, 2);
  t.regex((failed as { stderr: string }).stderr, /--port is required/);
});
