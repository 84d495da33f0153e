// echo-udp: a node:dgram echo server (RFC 862 over UDP). Every datagram goes back to its sender.
// Nothing here knows about tstack: `tstack run` binds the socket on the stack.
//
//   sudo ip netns add tst-demo      # and netns = "tst-demo" in examples/tstack.toml
//   sudo PORT=7000 npx tstack run --config examples/tstack.toml examples/echo-udp/server.js
//   sudo ip netns exec tst-demo socat - UDP:198.18.0.2:7000
//
// PORT (default 7) chooses the port.
import dgram from 'node:dgram';

const port = Number(process.env.PORT ?? 7);
const socket = dgram.createSocket('udp4');

socket.on('message', (msg, rinfo) => {
  socket.send(msg, rinfo.port, rinfo.address);
});

socket.bind(port, () => {
  const a = socket.address();
  console.log(`echo-udp: listening on ${a.address}:${a.port}`);
});

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => socket.close(() => process.exit(0)));
