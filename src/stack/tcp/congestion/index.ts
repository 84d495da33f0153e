// Congestion-control registry: names as used by `net.inet.tcp.cc.algorithm` and per socket.
import { Cubic } from './cubic.js';
import { NewReno } from './newreno.js';
import type { CongestionControl } from './types.js';

export type { CongestionControl } from './types.js';
export { INFINITE_SSTHRESH, initialWindow } from './types.js';
export { NewReno } from './newreno.js';
export { Cubic, cubicK, cubicWindow, CUBIC_ALPHA, CUBIC_BETA, CUBIC_C } from './cubic.js';

export const CC_ALGORITHMS = ['newreno', 'cubic'] as const;
export type CcAlgorithm = (typeof CC_ALGORITHMS)[number];

/** A fresh instance (one per connection). Throws on an unknown name. */
export function createCongestionControl(name: string): CongestionControl {
  switch (name) {
    case 'newreno': return new NewReno();
    case 'cubic': return new Cubic();
    default: throw new Error(`unknown congestion control algorithm '${name}' (known: ${CC_ALGORITHMS.join(', ')})`);
  }
}
