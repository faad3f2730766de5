// The config module the workers benchmark hosts: a plain relay to the benchmark's upstream.
import type { RedirectServerOptions } from '../lib/index';

export default function config(): RedirectServerOptions {
  return {
    resolve: { host: '127.0.0.1', port: Number(process.env.RXR_BENCH_UPSTREAM_PORT) },
    zeroCopy: process.env.RXR_BENCH_ZERO_COPY === 'auto' ? 'auto' : 'off',
  };
}
