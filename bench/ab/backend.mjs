// The backend of bench/ab/cpu-per-request.sh: a keep-alive HTTP server on 127.0.0.1:18080.
import http from 'node:http';
const s = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => res.end('ok\n'));
});
s.keepAliveTimeout = 60000;
s.listen(18080, '127.0.0.1');
