import { accessSync, constants, closeSync, readFileSync } from 'node:fs';
import { arch, platform, release } from 'node:os';
import { delimiter, join } from 'node:path';
import { native, optionalLinux } from '../platform/addon';

/**
 * `rxredirect doctor`: what this machine and this process can do, and what is
 * missing for each mode. Every probe is read-only (a throw-away marked socket
 * is the one thing created, and closed at once).
 */

export interface DoctorCheck {
  readonly name: string;
  readonly ok: boolean | undefined;
  readonly detail: string;
}

export interface DoctorMode {
  readonly mode: string;
  readonly ready: boolean;
  /** What is missing, each with its remedy. */
  readonly missing: readonly string[];
}

export interface DoctorReport {
  readonly platform: string;
  readonly checks: readonly DoctorCheck[];
  readonly modes: readonly DoctorMode[];
}

const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/**
 * Finds a system tool: the system directories first (PATH often lacks sbin
 * for non-root users), then PATH without node_modules/.bin, where npm puts
 * unrelated tools of the same name (@vercel/nft ships an `nft`).
 */
export function findTool(name: string): string | undefined {
  const path = (process.env.PATH ?? '').split(delimiter).filter((d) => d !== '' && !d.includes('node_modules'));
  const dirs = [...SYSTEM_DIRS, ...path];
  for (const dir of dirs) {
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

function readSysctl(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Whether SO_MARK can really be set here (capability rules differ between kernels). */
function canMark(): boolean | undefined {
  const addon = optionalLinux();
  if (!addon) return undefined;
  try {
    closeSync(addon.createMarkedSocket(4, 1));
    return true;
  } catch {
    return false;
  }
}

export function runDoctor(): DoctorReport {
  const linux = platform() === 'linux';
  const caps = native.capabilities;
  const addon = native.addon;
  const fwmarkAccept = linux ? readSysctl('/proc/sys/net/ipv4/tcp_fwmark_accept') : undefined;
  const conntrack = linux ? readSysctl('/proc/sys/net/netfilter/nf_conntrack_max') !== undefined : undefined;
  const tools = Object.fromEntries(['iptables', 'ip6tables', 'nft', 'ip'].map((t) => [t, findTool(t)]));
  const mark = canMark();

  const checks: DoctorCheck[] = [
    {
      name: 'native addon',
      ok: native.available,
      detail: native.available ? `loaded (version ${addon?.version()})` : `not loaded: ${native.loadError?.message}`,
    },
    { name: 'CAP_NET_ADMIN', ok: caps.netAdmin, detail: `${caps.netAdmin ? 'effective' : 'missing'} (${caps.source})` },
    { name: 'CAP_NET_RAW', ok: caps.netRaw, detail: `${caps.netRaw ? 'effective' : 'missing'} (${caps.source})` },
    { name: 'SO_MARK', ok: mark, detail: mark === undefined ? 'unknown (no addon)' : mark ? 'can be set' : 'EPERM' },
    {
      name: 'splice(2)',
      ok: caps.splice,
      detail: caps.splice === undefined ? 'unknown (no addon)' : caps.splice ? 'available' : 'unavailable',
    },
    {
      name: 'net.ipv4.tcp_fwmark_accept',
      ok: fwmarkAccept === undefined ? undefined : fwmarkAccept === '1',
      detail: fwmarkAccept ?? 'unreadable',
    },
    {
      name: 'conntrack',
      ok: conntrack,
      detail: conntrack ? 'loaded' : 'not loaded yet (loads with the first nat rule)',
    },
  ];
  for (const [tool, path] of Object.entries(tools)) {
    checks.push({ name: tool, ok: path !== undefined, detail: path ?? 'not found' });
  }

  const need = {
    linux: linux ? [] : [`Linux (this is ${platform()})`],
    addon: native.available
      ? []
      : ['the native addon: `npm rebuild rxredirect --build-from-source` (python3, make, g++; docs/install.md)'],
    admin: caps.netAdmin ? [] : ['CAP_NET_ADMIN: run as root or `setcap cap_net_admin+ep <node>`'],
    mark: mark === false ? ['permission to set SO_MARK (CAP_NET_ADMIN), or use owner rules (--owner)'] : [],
    rules:
      tools.iptables || tools.nft ? [] : ['iptables or nft to install rules: `apt-get install iptables` (or nftables)'],
    ip: tools.ip ? [] : ['the ip tool: `apt-get install iproute2`'],
    fwmark: fwmarkAccept === '1' ? [] : ['`sysctl -w net.ipv4.tcp_fwmark_accept=1`'],
    splice: caps.splice ? [] : ['splice(2) (blocked by seccomp, or no addon)'],
  };
  const mode = (name: string, ...missing: string[][]): DoctorMode => {
    const list = [...new Set(missing.flat())];
    return { mode: name, ready: list.length === 0, missing: list };
  };
  const modes = [
    mode("resolve: 'netfilter' (REDIRECT/DNAT)", need.linux, need.addon, need.rules),
    mode("resolve: 'tproxy'", need.linux, need.addon, need.admin, need.rules, need.ip),
    mode('egress: { mark } (loop-safe egress)', need.linux, need.addon, need.mark),
    mode('cooperating proxies (marks)', need.linux, need.addon, need.mark, need.fwmark),
    mode('zero-copy relay (splice)', need.linux, need.addon, need.splice),
  ];
  return { platform: `${platform()} ${release()} ${arch()}, Node ${process.version}`, checks, modes };
}

export function formatDoctor(report: DoctorReport): string {
  const mark = (ok: boolean | undefined): string => (ok === undefined ? '?' : ok ? '✔' : '✘');
  const width = Math.max(...report.checks.map((c) => c.name.length));
  const lines = [`platform: ${report.platform}`, '', 'checks:'];
  for (const c of report.checks) lines.push(`  ${mark(c.ok)} ${c.name.padEnd(width)}  ${c.detail}`);
  lines.push('', 'modes:');
  for (const m of report.modes) {
    lines.push(`  ${mark(m.ready)} ${m.mode}`);
    for (const missing of m.missing) lines.push(`      needs ${missing}`);
  }
  return `${lines.join('\n')}\n`;
}
