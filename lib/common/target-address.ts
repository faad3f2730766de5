import { invalidOption } from './errors';
import type { TargetAddress } from './types';

export function checkTargetAddress(value: unknown, path: string): TargetAddress {
  if (value === null || typeof value !== 'object') throw invalidOption(path, 'must be { host, port }');
  const { host, port } = value as { host?: unknown; port?: unknown };
  if (typeof host !== 'string' || host.length === 0) throw invalidOption(`${path}.host`, 'must be a non-empty string');
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalidOption(`${path}.port`, `must be an integer 1–65535, got ${String(port)}`);
  }
  return { host, port };
}
