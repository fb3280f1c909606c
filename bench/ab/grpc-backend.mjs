// A grpc-js echo server for bench/ab/grpc-cpu-per-call.sh: /bench.Echo/Unary answers the
// request message back. Usage: node bench/ab/grpc-backend.mjs [port=18090]
import * as grpc from '@grpc/grpc-js';

const port = Number(process.argv[2] ?? 18090);
const id = (b) => b;
const b = { requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id };
const s = new grpc.Server();
s.addService(
  { unary: { path: '/bench.Echo/Unary', requestStream: false, responseStream: false, ...b } },
  { unary: (call, cb) => cb(null, call.request) },
);
s.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
  process.stdout.write(`grpc echo on 127.0.0.1:${port}\n`);
});
