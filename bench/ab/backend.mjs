// The backend of bench/ab/cpu-per-request.sh: a keep-alive HTTP server on 127.0.0.1:18080.
import http from 'node:http';
const s = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => res.end('ok\n'));
});
s.keepAliveTimeout = 60000;
// The port: the first argument (another run on the machine may hold 18080).
s.listen(Number(process.argv[2] ?? 18080), '127.0.0.1');
