// hello-http: F-Stack's "helloworld", as an ordinary node:http server. Nothing here knows about
// tstack: `tstack run` puts the server's listening socket on the user-space stack.
//
//   sudo ip netns add tst-demo
//   # in examples/tstack.toml: netns = "tst-demo" (the kernel side of the TAP device goes there)
//   sudo PORT=8080 npx tstack run --config examples/tstack.toml examples/hello-http/server.js
//   sudo ip netns exec tst-demo curl http://198.18.0.2:8080/
//   sudo ip netns exec tst-demo ab -n 20000 -c 50 http://198.18.0.2:8080/
//
// PORT (default 80) chooses the port.
import http from 'node:http';

const port = Number(process.env.PORT ?? 80);
const body = 'Hello from tstack\n';

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});

server.listen(port, () => {
  const a = server.address();
  console.log(`hello-http: listening on ${a.address}:${a.port}`);
});

// Stop cleanly on the signals `tstack run` passes on, so the stack removes its device.
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)).closeAllConnections());
