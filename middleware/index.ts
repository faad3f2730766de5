// The middleware library: `import { … } from 'rxredirect/middleware'`.
export { both, compose, downstream, upstream } from '../lib/pipeline/compose';
export { type BypassOptions, bypass } from './bypass';
export { type FramingOptions, frame, type LengthFraming, type LineFraming, unframe } from './frame';
export { type InspectMatch, type InspectOptions, type InspectPattern, type InspectVerdict, inspect } from './inspect';
export { type ReplaceOptions, replace } from './replace';
export { type TapChunk, type TapEnd, type TapOptions, tap } from './tap';
export { type TimeoutsOptions, timeouts } from './timeouts';
export { SNIFF_KEY, type SniffOptions, type SniffResult, sniff, sniffed } from './sniff';
export { type RouteOptions, type Router, route } from './route';
export { type ThrottleOptions, TokenBucket, throttle } from './throttle';
export * as toxics from './toxics/index';
export { type ToxicInfo, type ToxicScope, ToxicSet, type ToxicSpec, type ToxicStream } from './toxics/index';
