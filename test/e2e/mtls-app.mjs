// The app in the mTLS end-to-end test (plain JavaScript: runs under any UID without a build).
// Answers every HTTP request with JSON {server, url, identity, remote}: `identity` is the
// x-remora-peer-identity header its sidecar set from the caller's verified certificate.
// An Upgrade request gets a raw 101 naming that identity (`x-identity`), then an echo.
// Prints `listening <port>` once bound.
import http from 'node:http';

const [port] = process.argv.slice(2);
const name = process.env.AGENT_NAME ?? 'app';
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const body = JSON.stringify({
      server: name,
      url: req.url,
      identity: req.headers['x-remora-peer-identity'] ?? null,
      remote: req.socket.remoteAddress?.replace(/^::ffff:/, ''),
    });
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
});
server.on('upgrade', (req, socket, head) => {
  const identity = req.headers['x-remora-peer-identity'] ?? 'none';
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nx-identity: ${identity}\r\n\r\n`,
  );
  if (head.length > 0) socket.write(head);
  socket.pipe(socket);
  socket.on('error', () => socket.destroy());
});
server.listen(Number(port), '::', () => process.stdout.write(`listening ${server.address().port}\n`));
process.on('SIGTERM', () => {
  server.close();
  process.exit(0);
});
