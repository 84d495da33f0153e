// The package root: `import { Stack, startInstance, MemoryWire, ... } from 'tstack'`.
// Sockets live in the subpaths: 'tstack/net', 'tstack/dgram', 'tstack/posix', 'tstack/register'.

// The engine.
export { Stack, type StackOptions, type InterfaceConfig, IpStats } from './stack/stack.js';
export { Sysctl, SysctlError, type SysctlDef, type SysctlValue } from './stack/sysctl.js';
export { Interface } from './stack/iface.js';
export { RouteTable, RouteFlags } from './stack/ip/route.js';
export { UdpFamily, UdpSocket, type UdpMessage } from './stack/udp.js';
export { TcpSocket } from './stack/tcp/socket.js';

// The ground floor.
export { BufferPool, PacketBuffer, Csum, Gso } from './base/pktbuf.js';
export { NO_OFFLOADS, type NetDevice, type Offloads } from './base/device.js';
export { VirtualClock, TimerWheel, Timer, type Clock } from './base/time.js';
export { Prng, createRandom, createRandom32 } from './base/prng.js';
export { NetError, Errno, type ErrnoCode } from './base/errors.js';

// Drivers.
export { type Driver, type DriverStats } from './driver/types.js';
export { MemoryWire, MemoryPort, type MemoryWireOptions, type MemoryPortOptions } from './driver/memory.js';
export { FaultInjector, type FaultConfig, type FaultInjectorOptions } from './driver/fault.js';
export { PcapWriter, PcapDriver, CaptureDriver, capture, type PcapDriverOptions } from './driver/pcap.js';
export { TapDriver, type TapOptions } from './driver/tap.js';
export { AfPacketDriver, type AfPacketOptions } from './driver/afpacket.js';

// The runtime.
export { startInstance, InstanceError, type Instance, type InstanceOptions } from './runtime/instance.js';
export { RunLoop, RealClock, realClock, type RunLoopOptions } from './runtime/loop.js';
export { loadConfig, parseConfig, ConfigError, type TstackConfig } from './runtime/config.js';
