// The app in the gRPC end-to-end test (plain JavaScript: runs under any UID without a build).
// It carries bytes, unchanged, between the pod's TCP and a unix socket the test process owns,
// one TCP connection per unix connection: the grpc-js client and servers (test/helpers/grpc.ts)
// run in the test process, so the test sees every call the server got, while every byte they
// exchange leaves or enters the pod as the app's own TCP traffic, captured by the pod's rules.
//
//   node grpc-relay.mjs client UNIX_PATH HOST PORT   listen on UNIX_PATH; each connection dials
//                                                    HOST:PORT from the pod (outbound capture)
//   node grpc-relay.mjs server PORT UNIX_PATH        listen on PORT in the pod; each connection
//                                                    is carried to UNIX_PATH (the gRPC server)
// Prints `listening <where>` once bound. A reset on one side destroys the other.
import { chmodSync } from 'node:fs';
import net from 'node:net';

const [mode, ...args] = process.argv.slice(2);

function pair(a, dial) {
  const b = dial();
  a.pipe(b);
  b.pipe(a);
  const cut = () => {
    a.destroy();
    b.destroy();
  };
  a.on('error', cut);
  b.on('error', cut);
  a.on('close', () => b.end());
  b.on('close', () => a.end());
}

let server;
if (mode === 'client') {
  const [path, host, port] = args;
  server = net.createServer((s) => pair(s, () => net.connect(Number(port), host)));
  server.listen(path, () => {
    chmodSync(path, 0o777);
    process.stdout.write(`listening ${path}\n`);
  });
} else if (mode === 'server') {
  const [port, path] = args;
  server = net.createServer((s) => pair(s, () => net.connect(path)));
  server.listen(Number(port), '::', () => process.stdout.write(`listening ${server.address().port}\n`));
} else {
  process.stderr.write(`grpc-relay: unknown mode ${mode}\n`);
  process.exit(2);
}
process.on('SIGTERM', () => {
  server.close();
  process.exit(0);
});
