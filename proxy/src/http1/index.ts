/**
 * The project's own HTTP/1.1 codec (docs/proxy.md "HTTP/1.1 codec"): strict heads, body
 * framing, head encoding, and the upstream client (connection.ts, pool.ts) the data path uses.
 */
export {
  F_CONNECTION,
  F_CONTENT_LENGTH,
  F_EXPECT,
  F_DATE,
  F_HOST,
  F_KEEP_ALIVE,
  F_OTHER,
  F_PEER_IDENTITY,
  F_PROXY,
  F_TE,
  F_TRAILER,
  F_TRANSFER_ENCODING,
  F_UPGRADE,
  Fields,
  HeadReader,
  METHODS,
  RequestHead,
  ResponseHead,
  TARGET_ABSOLUTE,
  TARGET_ASTERISK,
  TARGET_AUTHORITY,
  TARGET_EMPTY,
  TARGET_ORIGIN,
  parseFields,
  parseRequestHead,
  parseResponseHead,
} from './head.js';
export type { HeadLimits } from './head.js';
export {
  BODY_CHUNKED,
  BODY_CLOSE,
  BODY_INFORMATIONAL,
  BODY_LENGTH,
  BODY_NONE,
  BODY_TUNNEL,
  BodyDecoder,
  EV_DATA,
  EV_END,
  EV_NEED_MORE,
  keepAlive,
  requestBody,
  responseBody,
} from './framing.js';
export { R_DATA, R_END, R_HEAD, R_NEED_MORE, RequestReader, ResponseReader } from './reader.js';
export {
  CRLF,
  EncodeError,
  LAST_CHUNK,
  chunkPrefix,
  encodeLastChunk,
  encodeRequestHead,
  encodeResponseHead,
  endToEnd,
  lastChunkText,
} from './encode.js';
export type { EncodeOptions } from './encode.js';
export {
  ClientConnection,
  ClientRequest,
  ConnectTimeoutError,
  RequestAbortedError,
  clientWheel,
} from './connection.js';
export type { ConnectionOwner, Connector } from './connection.js';
export { ClientPool } from './pool.js';
export type { ClientPoolOptions } from './pool.js';
