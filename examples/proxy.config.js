// A transparent TLS proxy with an SNI allow-list (examples/sni-allowlist.ts) as a config for the runner:
//
//   sudo rxredirect run examples/proxy.config.js --listen 0.0.0.0:15001 --metrics 127.0.0.1:9090
//   sudo sh -c "$(rxredirect rules --port 15001 --dport 443 --setup)"   # send port 443 through it
//
// ALLOW: names to let through ('example.com,*.example.org'); denied clients are reset and their
// destination never sees a packet. TARGET=host:port sends every flow there instead of to its
// original destination (no iptables needed: a plain TCP proxy to try it out).
// SIGHUP reloads this file (ALLOW is read again); SIGTERM drains. See docs/runner.md.
const { sniff } = require('rxredirect/middleware');

const allow = (process.env.ALLOW ?? 'example.com,*.example.org').split(',').filter(Boolean);

/** Exact names, or '*.suffix' for any name under suffix. */
function isAllowed(name) {
  if (!name) return false;
  return allow.some((a) => (a.startsWith('*.') ? name.endsWith(a.slice(1)) : name === a.toLowerCase()));
}

const [host, port] = (process.env.TARGET ?? '').split(':');

module.exports = {
  // 'auto': the original destination from netfilter (REDIRECT) or TPROXY, whichever brought the flow.
  resolve: process.env.TARGET ? { host, port: Number(port) } : 'auto',
  middleware: [
    sniff({
      maxBytes: 16384,
      timeoutMs: 5000,
      onSniff: (r) => (r.protocol === 'tls' && isAllowed(r.sni) ? 'allow' : 'deny'),
    }),
  ],
  // Live connections get 30 s to finish on a reload or a drain.
  limits: { closeTimeoutMs: 30_000 },
};
