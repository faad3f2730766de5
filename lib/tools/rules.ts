// Size: the rule sets of every setup (REDIRECT, TPROXY; iptables and nft; IPv4 and IPv6) with the
// commands that remove each, written out so each rule can be read against docs/linux.md.
import { isIP } from 'node:net';
import { invalidOption } from '../common/errors';

/**
 * Generates the netfilter rules for a REDIRECT or TPROXY setup, and the exact
 * commands that remove them again. Commands are argv arrays (run them without
 * a shell); formatCommand() renders one for a shell. docs/linux.md explains
 * each rule.
 */

export interface RulesOptions {
  /** The proxy's listening port. */
  port: number;
  /** TPROXY (mangle PREROUTING, transparent listener) instead of REDIRECT (nat). */
  tproxy?: boolean;
  /** The proxy's egress mark: flows carrying all its bits skip interception (`-m mark --mark M/M -j RETURN`). */
  mark?: number;
  /** Skip flows of this local user (REDIRECT only): the alternative to `mark` without CAP_NET_ADMIN. */
  ownerUid?: number | string;
  /** Rules for IPv4 (default true). */
  ipv4?: boolean;
  /** Rules for IPv6 too (default false). */
  ipv6?: boolean;
  /** nftables commands instead of iptables/ip6tables. */
  nft?: boolean;
  /** Destination CIDRs to intercept. Default: everything except loopback. */
  destinations?: readonly string[];
  /** Destination ports to intercept. Default: all TCP ports. */
  ports?: readonly number[];
  /** Name of the chain (iptables) or table (nft) holding the rules; one per proxy. Default 'RXREDIRECT'. */
  chain?: string;
  /** REDIRECT: intercept connections made on this host (nat OUTPUT). Default true. */
  local?: boolean;
  /** Intercept connections arriving from other hosts: true (any interface) or interface names. */
  forwarded?: boolean | readonly string[];
  /** TPROXY: mark that routes diverted packets to the local stack. Default 0x100. */
  tproxyMark?: number;
  /** TPROXY: routing table holding the `local` route. Default 100. */
  table?: number;
  /** Add `sysctl -w net.ipv4.tcp_fwmark_accept=1`, so accepted sockets carry the SYN's mark (cooperating proxies). */
  fwmarkAccept?: boolean;
}

export type Command = readonly string[];

export interface RuleSet {
  readonly setup: readonly Command[];
  readonly teardown: readonly Command[];
}

type Family = 4 | 6;

interface Checked {
  readonly port: number;
  readonly mark: string | undefined;
  readonly tproxyMark: string;
  readonly table: string;
  readonly chain: string;
  readonly families: readonly Family[];
  readonly destinations: ReadonlyMap<Family, readonly string[]> | undefined;
  readonly ports: readonly number[];
  readonly local: boolean;
  readonly interfaces: readonly string[] | undefined;
  readonly owner: string | undefined;
}

const LOOPBACK: Record<Family, string> = { 4: '127.0.0.0/8', 6: '::1/128' };

export function generateRules(options: RulesOptions): RuleSet {
  const c = check(options);
  const body = options.nft
    ? options.tproxy
      ? nftTproxy(c)
      : nftRedirect(c)
    : options.tproxy
      ? iptablesTproxy(c)
      : iptablesRedirect(c);
  const setup = options.fwmarkAccept ? [['sysctl', '-w', 'net.ipv4.tcp_fwmark_accept=1'], ...body.setup] : body.setup;
  return Object.freeze({ setup: Object.freeze(setup), teardown: Object.freeze(body.teardown) });
}

/** Splits a fixed run of arguments written as one string (none of them contains a space). */
const w = (words: string): string[] => words.split(' ');

function iptablesRedirect(c: Checked): RuleSet {
  const setup: Command[] = [];
  const teardown: Command[] = [];
  for (const family of c.families) {
    const nat = [family === 4 ? 'iptables' : 'ip6tables', '-t', 'nat'];
    setup.push([...nat, '-N', c.chain]);
    if (c.mark) setup.push([...nat, '-A', c.chain, ...w('-m mark --mark'), `${c.mark}/${c.mark}`, ...w('-j RETURN')]);
    for (const match of destinationMatches(c, family)) {
      setup.push([...nat, '-A', c.chain, '-p', 'tcp', ...match, ...w('-j REDIRECT --to-ports'), String(c.port)]);
    }
    // The owner match is only valid in OUTPUT, so it guards the jump rather than living in the chain.
    const owner = c.owner ? [...w('-m owner ! --uid-owner'), c.owner] : [];
    const jumps = c.local ? [['OUTPUT', '-p', 'tcp', ...owner, '-j', c.chain]] : [];
    jumps.push(...preroutingJumps(c, c.interfaces ?? []));
    addJumps(nat, jumps, setup, teardown);
    teardown.push([...nat, '-F', c.chain], [...nat, '-X', c.chain]);
  }
  return { setup, teardown };
}

function iptablesTproxy(c: Checked): RuleSet {
  const routing = policyRouting(c);
  const setup = [...routing.setup];
  const teardown: Command[] = [];
  const fwmark = `${c.tproxyMark}/${c.tproxyMark}`;
  for (const family of c.families) {
    const mangle = [family === 4 ? 'iptables' : 'ip6tables', '-t', 'mangle'];
    const add = [...mangle, '-A', c.chain];
    setup.push([...mangle, '-N', c.chain]);
    // Packets of flows already accepted by a transparent socket only need routing to it.
    setup.push([...add, ...w('-p tcp -m socket --transparent -j MARK --set-xmark'), fwmark]);
    setup.push([...add, ...w('-m mark --mark'), fwmark, ...w('-j RETURN')]);
    if (c.mark) setup.push([...add, ...w('-m mark --mark'), `${c.mark}/${c.mark}`, ...w('-j RETURN')]);
    const target = [...w('-j TPROXY --on-port'), String(c.port), '--on-ip', family === 4 ? '0.0.0.0' : '::'];
    for (const match of destinationMatches(c, family)) {
      setup.push([...add, '-p', 'tcp', ...match, ...target, '--tproxy-mark', fwmark]);
    }
    addJumps(mangle, preroutingJumps(c, c.interfaces ?? ['']), setup, teardown);
    teardown.push([...mangle, '-F', c.chain], [...mangle, '-X', c.chain]);
  }
  // Routing goes last: no packet is marked for it once the rules are gone.
  return { setup, teardown: [...teardown, ...routing.teardown] };
}

function preroutingJumps(c: Checked, interfaces: readonly string[]): string[][] {
  return interfaces.map((i) => ['PREROUTING', '-p', 'tcp', ...(i === '' ? [] : ['-i', i]), '-j', c.chain]);
}

function addJumps(table: string[], jumps: string[][], setup: Command[], teardown: Command[]): void {
  for (const [hook = '', ...rest] of jumps) {
    setup.push([...table, '-A', hook, ...rest]);
    teardown.push([...table, '-D', hook, ...rest]);
  }
}

/** `ip rule` + `local` route that deliver TPROXY-marked packets to this host, per family. */
function policyRouting(c: Checked): { setup: Command[]; teardown: Command[] } {
  const setup: Command[] = [];
  const teardown: Command[] = [];
  const fwmark = `${c.tproxyMark}/${c.tproxyMark}`;
  for (const family of c.families) {
    const ip = family === 4 ? ['ip'] : ['ip', '-6'];
    const local = ['local', family === 4 ? '0.0.0.0/0' : '::/0', 'dev', 'lo', 'table', c.table];
    setup.push([...ip, 'rule', 'add', 'fwmark', fwmark, 'lookup', c.table], [...ip, 'route', 'add', ...local]);
    teardown.push([...ip, 'rule', 'del', 'fwmark', fwmark, 'lookup', c.table], [...ip, 'route', 'del', ...local]);
  }
  return { setup, teardown };
}

/** `-d CIDR` (or loopback exclusions) × port matches, per family. */
function destinationMatches(c: Checked, family: Family): string[][] {
  const ports =
    c.ports.length === 0
      ? [[]]
      : c.ports.length === 1
        ? [['--dport', String(c.ports[0])]]
        : [['-m', 'multiport', '--dports', c.ports.join(',')]];
  const cidrs = c.destinations?.get(family);
  const dests = cidrs === undefined ? [['!', '-d', LOOPBACK[family]]] : cidrs.map((cidr) => ['-d', cidr]);
  return dests.flatMap((d) => ports.map((p) => [...d, ...p]));
}

function nftRedirect(c: Checked): RuleSet {
  const table = ['inet', c.chain.toLowerCase()];
  const setup: Command[] = [['nft', 'add', 'table', ...table]];
  const hooks: Array<[string, string[]]> = [];
  if (c.local) hooks.push(['output', c.owner ? ['meta', 'skuid', c.owner, 'return'] : []]);
  if (c.interfaces) hooks.push(['prerouting', []]);
  for (const [hook, ownerSkip] of hooks) {
    setup.push(['nft', 'add', 'chain', ...table, hook, `{ type nat hook ${hook} priority -100; policy accept; }`]);
    const add = ['nft', 'add', 'rule', ...table, hook];
    if (ownerSkip.length > 0) setup.push([...add, ...ownerSkip]);
    if (hook === 'prerouting' && c.interfaces && !c.interfaces.includes('')) {
      setup.push([...add, 'iifname', '!=', nftSet(c.interfaces), 'return']);
    }
    if (c.mark) setup.push([...add, ...w('meta mark and'), c.mark, '==', c.mark, 'return']);
    for (const match of nftMatches(c)) setup.push([...add, ...match, 'redirect', 'to', `:${c.port}`]);
  }
  return { setup, teardown: [['nft', 'delete', 'table', ...table]] };
}

function nftTproxy(c: Checked): RuleSet {
  const table = ['inet', c.chain.toLowerCase()];
  const t = c.tproxyMark;
  const routing = policyRouting(c);
  const setup: Command[] = [...routing.setup, ['nft', 'add', 'table', ...table]];
  const add = ['nft', 'add', 'rule', ...table, 'prerouting'];
  setup.push([
    'nft',
    'add',
    'chain',
    ...table,
    'prerouting',
    '{ type filter hook prerouting priority mangle; policy accept; }',
  ]);
  if (c.interfaces && !c.interfaces.includes('')) {
    setup.push([...add, 'iifname', '!=', nftSet(c.interfaces), 'return']);
  }
  const setMark = [...w('meta mark set meta mark or'), t];
  setup.push([...add, ...w('meta l4proto tcp socket transparent 1'), ...setMark, 'accept']);
  if (c.mark) setup.push([...add, ...w('meta mark and'), c.mark, '==', c.mark, 'return']);
  for (const match of nftMatches(c)) {
    const family = match[0] === 'ip6' ? 'ip6' : 'ip';
    setup.push([...add, ...match, 'tproxy', family, 'to', `:${c.port}`, ...setMark, 'accept']);
  }
  return { setup, teardown: [['nft', 'delete', 'table', ...table], ...routing.teardown] };
}

function nftMatches(c: Checked): string[][] {
  const ports = c.ports.length === 0 ? [] : ['tcp', 'dport', nftSet(c.ports.map(String))];
  const out: string[][] = [];
  for (const family of c.families) {
    const key = family === 4 ? ['ip', 'daddr'] : ['ip6', 'daddr'];
    const cidrs = c.destinations?.get(family);
    if (cidrs?.length === 0) continue;
    const dest = cidrs === undefined ? [...key, '!=', LOOPBACK[family]] : [...key, nftSet(cidrs)];
    out.push([...dest, ...(ports.length > 0 ? ports : ['meta', 'l4proto', 'tcp'])]);
  }
  return out;
}

function nftSet(items: readonly string[]): string {
  return items.length === 1 ? (items[0] as string) : `{ ${items.join(', ')} }`;
}

const CHAIN_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,27}$/;
const IFACE_NAME = /^[A-Za-z0-9_.:@+-]{1,15}$/;

function check(o: RulesOptions): Checked {
  if (o === null || typeof o !== 'object') throw invalidOption('rules', 'must be an object { port, ... }');
  if (!isPort(o.port)) throw invalidOption('rules.port', `must be an integer 1–65535, got ${String(o.port)}`);
  const mark = o.mark === undefined ? undefined : checkMarkValue(o.mark, 'rules.mark');
  const tproxyMark = checkMarkValue(o.tproxyMark ?? 0x100, 'rules.tproxyMark');
  if (o.tproxy && mark !== undefined && (Number(mark) & Number(tproxyMark)) !== 0) {
    // An egress socket carrying the TPROXY bit would be routed to `lo` by the fwmark rule.
    throw invalidOption('rules.mark', `shares bits with tproxyMark ${tproxyMark}; pick disjoint bits`);
  }
  const table = o.table ?? 100;
  if (!Number.isInteger(table) || table < 1 || table > 0xfffffffe || table === 253 || table === 254 || table === 255) {
    throw invalidOption('rules.table', 'must be a free routing table number (not 253–255)');
  }
  const chain = o.chain ?? 'RXREDIRECT';
  if (!CHAIN_NAME.test(chain))
    throw invalidOption('rules.chain', 'must be 1–28 letters, digits, _ or -, starting with a letter');
  const families: Family[] = [];
  if (o.ipv4 ?? true) families.push(4);
  if (o.ipv6) families.push(6);
  if (families.length === 0) throw invalidOption('rules.ipv4', 'at least one of ipv4 and ipv6 must be on');
  let destinations: Map<Family, string[]> | undefined;
  if (o.destinations !== undefined) {
    if (!Array.isArray(o.destinations) || o.destinations.length === 0) {
      throw invalidOption('rules.destinations', 'must be a non-empty array of CIDRs (leave it out for "everything")');
    }
    destinations = new Map(families.map((f) => [f, []]));
    for (const cidr of o.destinations) {
      const family = checkCidr(cidr);
      const list = destinations.get(family);
      if (!list) throw invalidOption('rules.destinations', `${cidr} is IPv${family}: turn on ipv${family}`);
      list.push(cidr);
    }
  }
  const ports = o.ports ?? [];
  if (!Array.isArray(ports) || !ports.every(isPort) || ports.length > 15) {
    throw invalidOption('rules.ports', 'must be up to 15 ports, each an integer 1–65535');
  }
  let interfaces: string[] | undefined;
  if (o.forwarded === true || (o.tproxy && o.forwarded === undefined)) interfaces = [''];
  else if (Array.isArray(o.forwarded)) {
    for (const i of o.forwarded)
      if (!IFACE_NAME.test(i)) throw invalidOption('rules.forwarded', `bad interface "${i}"`);
    interfaces = [...o.forwarded];
  }
  const local = o.local ?? !o.tproxy;
  if (o.tproxy && o.local) {
    throw invalidOption(
      'rules.local',
      'TPROXY only sees forwarded traffic; use REDIRECT for connections made on this host',
    );
  }
  let owner: string | undefined;
  if (o.ownerUid !== undefined) {
    if (o.tproxy) throw invalidOption('rules.ownerUid', 'only applies to REDIRECT (owner is unknown in PREROUTING)');
    owner = String(o.ownerUid);
    if (!/^[A-Za-z0-9_.-]{1,32}$/.test(owner)) throw invalidOption('rules.ownerUid', 'must be a uid or user name');
  }
  if (!local && interfaces === undefined) {
    throw invalidOption('rules.forwarded', 'nothing to intercept: set local or forwarded');
  }
  return {
    port: o.port,
    mark,
    tproxyMark,
    table: String(table),
    chain,
    families,
    destinations,
    ports,
    local,
    interfaces,
    owner,
  };
}

function isPort(p: unknown): p is number {
  return typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;
}

function checkMarkValue(value: unknown, path: string): string {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 0xffffffff) {
    throw invalidOption(path, `must be an integer 1 – 0xffffffff, got ${String(value)}`);
  }
  return `0x${value.toString(16)}`;
}

function checkCidr(cidr: unknown): Family {
  if (typeof cidr !== 'string') throw invalidOption('rules.destinations', 'entries must be strings');
  const [address = '', prefix, extra] = cidr.split('/');
  const version = isIP(address);
  const max = version === 6 ? 128 : 32;
  const bits = prefix === undefined ? max : Number(prefix);
  if (version === 0 || extra !== undefined || !/^\d{0,3}$/.test(prefix ?? '') || !(bits >= 0 && bits <= max)) {
    throw invalidOption('rules.destinations', `"${cidr}" is not an address or CIDR`);
  }
  return version as Family;
}

/** One command as a shell line, quoting what a POSIX shell would split or expand. */
export function formatCommand(command: Command): string {
  // A lone `!` is not expanded by any shell (history expansion needs a word after it).
  const plain = /^([A-Za-z0-9_./:=,@%+-]+|!|!=)$/;
  return command.map((arg) => (plain.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`)).join(' ');
}

/** The whole set as a commented shell script. */
export function formatRules(set: RuleSet): string {
  const lines = ['# setup', ...set.setup.map(formatCommand), '', '# teardown', ...set.teardown.map(formatCommand)];
  return `${lines.join('\n')}\n`;
}
