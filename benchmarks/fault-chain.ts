// The chain a faults benchmark relay runs (benchmarks/faults.ts), chosen by RXREDIRECT_FAULT_CHAIN:
// 'none', 'latency:MS' (downstream) or 'bandwidth:KBPS' (downstream). Loaded by relay-child.ts.
import type { Middleware } from '../lib/index';
import { toxics } from '../middleware/index';

function chain(spec: string): Middleware[] {
  const [kind, value] = spec.split(':');
  if (kind === 'latency') return [toxics.latency({ latency: Number(value), seed: 1 })];
  if (kind === 'bandwidth') return [toxics.bandwidth({ rate: Number(value) })];
  return [];
}

export const middleware: Middleware[] = chain(process.env.RXREDIRECT_FAULT_CHAIN ?? 'none');
