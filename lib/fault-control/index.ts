// Fault control: Toxiproxy's HTTP API over rxredirect's toxics (docs/faults.md).
export { ApiError } from './api-error';
export { createFaultControl, DEFAULT_API_PORT, FaultControl, type FaultControlOptions } from './control-server';
export { ControlledProxy, type ProxyJson, type ProxyServerOptions } from './proxy';
