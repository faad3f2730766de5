import { BANDWIDTH } from './bandwidth';
import { LATENCY } from './latency';
import { LIMIT_DATA } from './limit-data';
import { RESET_PEER } from './reset-peer';
import { SLICER } from './slicer';
import { SLOW_CLOSE } from './slow-close';
import { TIMEOUT } from './timeout';
import type { ToxicType } from './toxic';

/** Every toxic, by Toxiproxy's type name. */
export const TOXIC_TYPES: ReadonlyMap<string, ToxicType<object>> = new Map<string, ToxicType<object>>(
  [LATENCY, BANDWIDTH, SLOW_CLOSE, TIMEOUT, RESET_PEER, SLICER, LIMIT_DATA].map(
    (t) => [t.type, t as unknown as ToxicType<object>] as const,
  ),
);
