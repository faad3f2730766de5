// The fault-injection toxics (Toxiproxy's, as middleware): `import { toxics } from 'rxredirect/middleware'`.
export { type BandwidthAttributes, BANDWIDTH, bandwidth } from './bandwidth';
export { type LatencyAttributes, LATENCY, latency } from './latency';
export { type LimitDataAttributes, LIMIT_DATA, limitData } from './limit-data';
export { createRandom, type Random } from './random';
export { TOXIC_TYPES } from './registry';
export { type ResetPeerAttributes, RESET_PEER, resetPeer } from './reset-peer';
export type { ToxicScope } from './scope';
export { type SlicerAttributes, SLICER, slicer, sliceBounds } from './slicer';
export { type SlowCloseAttributes, SLOW_CLOSE, slowClose } from './slow-close';
export { type TimeoutAttributes, TIMEOUT, timeout } from './timeout';
export type { ToxicOptions, ToxicType } from './toxic';
export { type ToxicInfo, ToxicSet, type ToxicSpec, type ToxicStream } from './toxic-set';
