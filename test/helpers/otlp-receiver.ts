/**
 * The tests' OTLP/HTTP trace receiver. It lives in `demo/otlp.ts` so `npm run demo` prints
 * trace trees with the same decoder the tests assert with; this module keeps the tests' import
 * path.
 */
export { SPAN_KIND, decodeExportTraceRequest, formatTraceTree, startOtlpReceiver } from '../../demo/otlp.js';
export type { AttrValue, DecodedSpan, OtlpReceiver, ReceiverOptions } from '../../demo/otlp.js';
