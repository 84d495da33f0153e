// echo-tcp: a node:net echo server (RFC 862 over TCP). Every byte a client sends comes back.
// Nothing here knows about tstack: `tstack run` puts the listening socket on the stack.
//
//   sudo ip netns add tst-demo      # and netns = "tst-demo" in examples/tstack.toml
//   sudo PORT=7000 npx tstack run --config examples/tstack.toml examples/echo-tcp/server.js
//   sudo ip netns exec tst-demo socat - TCP:198.18.0.2:7000
//
// PORT (default 7) chooses the port.
import net from 'node:net';

const port = Number(process.env.PORT ?? 7);

const server = net.createServer((socket) => {
  socket.on('error', () => socket.destroy()); // a client's reset must not end the server
  socket.pipe(socket);
});

server.listen(port, () => {
  const a = server.address();
  console.log(`echo-tcp: listening on ${a.address}:${a.port}`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    // Open connections would hold close() back; an echo server has no state to lose.
    setTimeout(() => process.exit(0), 200).unref();
  });
}
