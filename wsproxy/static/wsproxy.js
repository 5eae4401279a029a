// wsproxy.js: a dependency-free browser client for services behind wsproxy (an ES module).
//
//   import { openCall } from "/wsproxy.js";
//   const call = openCall("/v1/chat", { method: "POST", token });
//   call.send({ text: "hi" });
//   call.closeSend();                       // the half-close: the request body ends
//   const headers = await call.initialMetadata(); // the response headers; call.status is the HTTP status
//   for await (const reply of call) { ... } // {"result": x} lines arrive as x
//   const status = await call.status;       // { ok, code, reason, httpStatus, error }
//
// One call is one WebSocket. Each response line is one frame; the call ends with a close code:
// 1000 success, 4000 + HTTP status after the error JSON, or a transport outcome (1008, 1009, 1011,
// 1013, 1014, 1006 dropped). Calls offer wsproxy.status.v1 (status: false does not): a proxy that
// selects it sends the HTTP status and headers before the first line, in a control frame, so an
// error body is never taken for a message. The wire contract is in docs/protocol.md, usage in
// docs/clients.md.

const GRPC_CODE_NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
  "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
];
// The HTTP status grpc-gateway answers each gRPC code with (runtime.HTTPStatusFromCode).
const GRPC_CODE_HTTP_STATUS = [200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401];
const REASON_PHRASES = {
  200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
  429: "Too Many Requests", 499: "Client Closed Request", 500: "Internal Server Error",
  501: "Not Implemented", 503: "Service Unavailable", 504: "Gateway Timeout",
};
const NORMAL = 1000;
const ABNORMAL = 1006;
const HTTP_STATUS_BASE = 4000;
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const lenientUtf8 = new TextDecoder("utf-8");

/** The subprotocol of the status contract: the HTTP status and headers before the first line. */
export const STATUS_SUBPROTOCOL = "wsproxy.status.v1";

/** Base class: the call did not end normally. `code` is the close code (null when there was none). */
export class CallError extends Error {
  constructor(message, { code = null, reason = "" } = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.reason = reason;
  }
}

/** The app answered with an HTTP error status (close 4000 + status), with the error JSON before it. */
export class HTTPStatusError extends CallError {
  constructor(status, reason, body, { code = null } = {}) {
    const fields = statusFields(body);
    const name = grpcCodeName(fields.code);
    const parts = [`HTTP ${status}`, name || reason];
    if (fields.message && fields.message !== parts[1]) parts.push(fields.message);
    super(parts.filter(Boolean).join(" "), { code, reason });
    this.status = status;
    this.body = body;
    this.grpcCode = fields.code ?? null;
    this.grpcCodeName = name;
    this.details = fields.details ?? [];
    this.detail = fields.message ?? null;
  }
}

/** The call's `timeout` (plus DEADLINE_GRACE_SECONDS) ran out before it ended; it was abandoned. */
export class DeadlineExceededError extends CallError {}

/** Seconds the service's own deadline answer (HTTP 504, close 4504) gets to arrive before the client gives up. */
export const DEADLINE_GRACE_SECONDS = 1;

/** `seconds` in gRPC's wire format (Grpc-Timeout): whole milliseconds rounded up, a coarser unit past 8 digits. */
export function grpcTimeout(seconds) {
  if (!(seconds > 0)) throw new RangeError(`timeout must be a positive number of seconds, got ${seconds}`);
  for (const [unit, perSecond] of [["m", 1000], ["S", 1], ["M", 1 / 60], ["H", 1 / 3600]]) {
    const value = Math.ceil(seconds * perSecond);
    if (value <= 99999999) return `${value}${unit}`;
  }
  throw new RangeError(`timeout too large: ${seconds}`);
}

/**
 * The client's bound on a call: after `timeout` seconds plus the grace, or when `signal` aborts, `abandon`
 * is called with the error (DeadlineExceededError, or the signal's reason). Returns a function that stops it.
 */
function watchCall(timeout, signal, abandon) {
  if (timeout === null && !signal) return () => {};
  const timer = timeout === null ? null : setTimeout(
    () => abandon(new DeadlineExceededError("the call's timeout ran out before it ended")),
    (timeout + DEADLINE_GRACE_SECONDS) * 1000,
  );
  const onAbort = () => abandon(signal.reason);
  if (signal?.aborted) queueMicrotask(onAbort);
  else signal?.addEventListener("abort", onAbort, { once: true });
  return () => {
    if (timer !== null) clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  };
}

/** A streaming response reported an error in-band: an {"error": {...}} line. */
export class StreamError extends HTTPStatusError {
  constructor(error) {
    const fields = statusFields(error);
    const status = fields.httpCode ?? GRPC_CODE_HTTP_STATUS[fields.code] ?? 500;
    super(status, REASON_PHRASES[status] ?? "", error);
  }
}

/** Close 1008: a message after the half-close, or another breach of the proxy's rules. */
export class PolicyViolationError extends CallError {}
/** Close 1009: a message or a response line exceeded a size limit. */
export class MessageTooBigError extends CallError {}
/** Close 1011: the wrapped app raised instead of answering. */
export class ProxyInternalError extends CallError {}
/** Close 1013: the proxy is at its connection limit; retry after a delay. */
export class TryAgainLaterError extends CallError {}
/** Close 1014: the proxy's upstream failed in the middle of the response. */
export class BadGatewayError extends CallError {}
/** The connection dropped without a close frame (1006): the outcome is unknown. */
export class ConnectionLostError extends CallError {}
/** The WebSocket never opened: refused (bad Origin or token, busy) or unreachable. Browsers hide the HTTP status. */
export class ConnectError extends CallError {}
/** Any other close code (1001 going away, 1002, 1007, ...). */
export class UnexpectedCloseError extends CallError {}

const ERRORS_BY_CODE = {
  1008: PolicyViolationError,
  1009: MessageTooBigError,
  1011: ProxyInternalError,
  1013: TryAgainLaterError,
  1014: BadGatewayError,
};

/** The error a call ending with close `code` raises, or null for success. */
export function errorForClose(code, reason, body, { opened = true } = {}) {
  if (code === NORMAL) return null;
  if (!opened) {
    return new ConnectError("could not open the WebSocket (refused or unreachable; the browser hides why)", {
      code, reason,
    });
  }
  if (code === ABNORMAL) return new ConnectionLostError("connection lost before the call ended", { code, reason });
  const status = code - HTTP_STATUS_BASE;
  if (status >= 100 && status <= 999) {
    return new HTTPStatusError(status, reason || REASON_PHRASES[status] || "", body, { code });
  }
  const ErrorClass = ERRORS_BY_CODE[code] ?? UnexpectedCloseError;
  return new ErrorClass(`call closed with ${code}${reason ? " " + reason : ""}`, { code, reason });
}

function grpcCodeName(code) {
  return Number.isInteger(code) ? GRPC_CODE_NAMES[code] ?? null : null;
}

function statusFields(body) {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return {};
  const fields = {};
  if (Number.isInteger(body.code)) fields.code = body.code;
  if (Number.isInteger(body.http_code)) fields.httpCode = body.http_code;
  if (Array.isArray(body.details)) fields.details = body.details;
  // google.rpc.Status, then wsproxy's refused handshakes ({"error": ...}) and FastAPI ({"detail": ...}).
  for (const key of ["message", "error", "detail"]) {
    if (typeof body[key] === "string") {
      fields.message = body[key];
      break;
    }
  }
  return fields;
}

const STATUS_KEYS = new Set(["code", "message", "details", "error", "http_code", "http_status"]);

function isStatusBody(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value) &&
    Number.isInteger(value.code) && typeof value.message === "string" &&
    Object.keys(value).every((key) => STATUS_KEYS.has(key));
}

const NOTHING = Symbol("nothing");

/** A control frame's JSON (the status contract) -> { kind, status, headers }, or null when it is not one. */
export function parseControl(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
  const pairs = value.headers ?? [];
  const isPair = (pair) => Array.isArray(pair) && pair.length === 2 && pair.every((s) => typeof s === "string");
  if (!Array.isArray(pairs) || !pairs.every(isPair)) return null;
  const headers = pairs.map(([name, text]) => [name, text]);
  const { type, status } = value;
  if (type === "status" && Number.isInteger(status) && status >= 100 && status <= 999) {
    return { kind: "status", status, headers };
  }
  if (type === "trailers") return { kind: "trailers", status: null, headers };
  return null; // a kind this client does not know
}

function isSuccess(status) {
  return status >= 200 && status <= 299;
}

/**
 * An error status's body: its lines joined with "\n", parsed as JSON when it is JSON, else that text
 * (null when there were none); grpc-gateway's stream envelope {"error": {...}} gives the inner object.
 */
export function errorBody(lines) {
  if (!lines.length) return null;
  const text = lines.map((line) => (typeof line === "string" ? line : lenientUtf8.decode(line))).join("\n");
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    return text;
  }
  return isErrorEnvelope(body) ? body.error : body;
}

function isErrorEnvelope(value) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length === 1 && keys[0] === "error" && value.error !== null && typeof value.error === "object";
}

/**
 * Lines to messages, with no I/O. {"result": x} yields x; {"error": {...}} throws StreamError.
 *
 * Once the call's HTTP status is known (`status()`, from the status contract's control frame): after a
 * 2xx every line is a message; after any other status no line is, and the close raises HTTPStatusError
 * with the lines as its body. Without a status (an older proxy, or status: false) a line shaped like
 * grpc-gateway's error body waits for the next frame or the close: if the close carries an HTTP error
 * status, it was that error's body, not a message. No other line waits.
 */
export class ResponseDecoder {
  #raw;
  #held = NOTHING;
  #last = null;
  #status = null;
  #bodyLines = [];

  constructor({ raw = false } = {}) {
    this.#raw = raw;
  }

  /** The status frame arrived (before any line). */
  status(status) {
    this.#status = status;
  }

  /** True once an error status arrived: every line from now on is the error's body. */
  get failed() {
    return this.#status !== null && !isSuccess(this.#status);
  }

  feed(frame) {
    if (this.failed) {
      this.#bodyLines.push(frame);
      return [];
    }
    const ready = this.#release();
    const value = (this.#last = parseLine(frame));
    if (this.#raw) {
      ready.push(frame);
      return ready;
    }
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      const keys = Object.keys(value);
      if (keys.length === 1 && keys[0] === "result") {
        ready.push(value.result);
        return ready;
      }
      if (isErrorEnvelope(value)) throw new StreamError(value.error);
    }
    if (this.#status === null && isStatusBody(value)) this.#held = value;
    else ready.push(value);
    return ready;
  }

  close(code, reason, options) {
    if (this.failed) {
      const status = this.#status;
      const phrase = code === HTTP_STATUS_BASE + status && reason ? reason : REASON_PHRASES[status] ?? "";
      return { messages: [], error: new HTTPStatusError(status, phrase, errorBody(this.#bodyLines), { code }) };
    }
    const error = errorForClose(code, reason, this.#status === null ? this.#last : null, options);
    if (error) {
      this.#held = NOTHING;
      return { messages: [], error };
    }
    return { messages: this.#release(), error: null };
  }

  #release() {
    if (this.#held === NOTHING) return [];
    const held = this.#held;
    this.#held = NOTHING;
    return [held];
  }
}

function parseLine(frame) {
  if (typeof frame !== "string") return frame; // binary: the line was not UTF-8
  try {
    return JSON.parse(frame);
  } catch {
    return frame; // plain text lines stay usable
  }
}

/** The ws(s):// URL for `url` (relative to the page; http(s) mapped), with ?method= set when given. */
export function callUrl(url, method, timeout = null) {
  const base = typeof location === "undefined" ? undefined : location.href;
  const target = new URL(url, base);
  if (target.protocol === "http:") target.protocol = "ws:";
  if (target.protocol === "https:") target.protocol = "wss:";
  if (method) target.searchParams.set("method", method.toUpperCase());
  if (timeout !== null) target.searchParams.set("grpc-timeout", grpcTimeout(timeout));
  return target.href;
}

function encodeMessage(message) {
  const isBlob = typeof Blob !== "undefined" && message instanceof Blob;
  let data = message;
  let size;
  if (typeof message === "string") size = message.length;
  else if (isBlob) size = message.size;
  else if (message instanceof ArrayBuffer || ArrayBuffer.isView(message)) size = message.byteLength;
  else {
    data = JSON.stringify(message);
    if (data === undefined) throw new TypeError(`cannot send ${typeof message}: it has no JSON form`);
    size = data.length;
  }
  if (size === 0) throw new TypeError("an empty message is the half-close: call closeSend() instead");
  return data;
}

/**
 * What the status contract tells about a call: its HTTP status, headers and trailers, and the promise
 * initialMetadata() returns (settled by the status frame, or by the end when there was none).
 */
class ResponseMetadata {
  status = null;
  headers = [];
  trailers = [];
  #settle;

  constructor() {
    this.initial = new Promise((resolve, reject) => (this.#settle = { resolve, reject }));
    this.initial.catch(() => {}); // awaiting it is optional: no unhandled rejection
  }

  /** A control frame: true when it was taken (a second status frame is not). */
  apply(control) {
    if (control.kind === "trailers") {
      this.trailers = control.headers;
      return true;
    }
    if (this.status !== null) return false;
    this.status = control.status;
    this.headers = control.headers;
    if (isSuccess(control.status)) this.#settle.resolve(this.headers); // an error status waits for the end
    return true;
  }

  /** The call ended: an error rejects initialMetadata(); a call with no status frame resolves it empty. */
  end(error) {
    if (error) this.#settle.reject(error);
    else this.#settle.resolve(this.headers);
  }
}

/** One call: a request body written message by message, and a response read by async iteration. */
export class Call {
  #socket;
  #decoder;
  #outbox = [];
  #ready = [];
  #waiters = [];
  #opened = false;
  #sendClosed = false;
  #ended = false;
  #error = null;
  #contract = false; // the proxy selected STATUS_SUBPROTOCOL: binary UTF-8 frames are control frames
  #metadata = new ResponseMetadata();
  #resolveStatus;
  #settleOpened;
  #unwatch;

  constructor(url, options = {}) {
    const { token = null, method = null, raw = false, timeout = null, signal = null, status = true } = options;
    this.#decoder = new ResponseDecoder({ raw });
    /** Resolves with { ok, code, reason, httpStatus, error } once the call ended; never rejects. */
    this.status = new Promise((resolve) => (this.#resolveStatus = resolve));
    /** Resolves when the WebSocket is open; rejects with the call's error if it never opens. */
    this.opened = new Promise((resolve, reject) => (this.#settleOpened = { resolve, reject }));
    this.opened.catch(() => {}); // awaiting it is optional: no unhandled rejection
    const protocols = token ? ["Bearer", token] : [];
    if (status) protocols.push(STATUS_SUBPROTOCOL);
    this.#socket = new WebSocket(callUrl(url, method, timeout), protocols);
    this.#socket.binaryType = "arraybuffer";
    this.#socket.onopen = () => this.#onOpen();
    this.#socket.onmessage = (event) => this.#onMessage(event.data);
    this.#socket.onclose = (event) => this.#onClose(event.code, event.reason);
    this.#unwatch = watchCall(timeout, signal, (error) => this.#abandon(error));
  }

  #abandon(error) {
    if (this.#ended) return;
    this.#finish(error, null, "");
    this.#socket.close(NORMAL);
  }

  /** The subprotocol the proxy accepted (STATUS_SUBPROTOCOL, else "Bearer" with a token), once open. */
  get subprotocol() {
    return this.#socket.protocol;
  }

  /** The response's HTTP status, from the status frame; null until it arrived (or without the contract). */
  get httpStatus() {
    return this.#metadata.status;
  }

  /** The response headers, as [name, value] pairs (lower-case names); empty until the status frame. */
  get headers() {
    return this.#metadata.headers;
  }

  /** The HTTP trailers, as [name, value] pairs; empty unless the app sent some. */
  get trailers() {
    return this.#metadata.trailers;
  }

  /** Resolves with the headers once the status frame arrived; rejects with the call's error. */
  initialMetadata() {
    return this.#metadata.initial;
  }

  /** Send one request message: strings as text, binary data as binary, anything else as JSON. */
  send(message) {
    if (this.#sendClosed) throw new Error("send() after closeSend(): the request body has already ended");
    if (this.#ended) throw this.#error ?? new CallError("cannot send: the call has already ended", { code: NORMAL });
    this.#transmit(encodeMessage(message));
  }

  /** End the request body (an empty message) while still receiving the response. */
  closeSend() {
    if (this.#sendClosed || this.#ended) return;
    this.#sendClosed = true;
    this.#transmit("");
  }

  /** Abandon the call; the app sees the client go away. */
  close() {
    this.#socket.close(NORMAL);
  }

  /** The next message; `done` once the call ended normally; rejects with the CallError otherwise. */
  next() {
    if (this.#ready.length) return Promise.resolve({ value: this.#ready.shift(), done: false });
    if (this.#ended) return this.#error ? Promise.reject(this.#error) : Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  // Leaving a for-await loop early does not close the call (a bidi caller may read on later).
  [Symbol.asyncIterator]() {
    return { next: () => this.next(), return: async () => ({ value: undefined, done: true }) };
  }

  /** The one response message of a unary or client-streaming call, once it ended. */
  async result() {
    const messages = [];
    for await (const message of this) messages.push(message);
    if (messages.length !== 1) {
      const status = await this.status;
      throw new CallError(`expected one response message, got ${messages.length}`, { code: status.code });
    }
    return messages[0];
  }

  #transmit(data) {
    if (this.#opened) this.#socket.send(data);
    else this.#outbox.push(data); // sent in order once the handshake completes
  }

  #onOpen() {
    this.#opened = true;
    this.#contract = this.#socket.protocol === STATUS_SUBPROTOCOL;
    for (const data of this.#outbox.splice(0)) this.#socket.send(data);
    this.#settleOpened.resolve();
  }

  #onMessage(frame) {
    if (this.#ended) return;
    if (this.#contract && typeof frame !== "string" && this.#onControl(frame)) return;
    let messages;
    try {
      messages = this.#decoder.feed(frame);
    } catch (error) {
      this.#finish(error, NORMAL, "");
      this.#socket.close(NORMAL);
      return;
    }
    for (const message of messages) this.#push(message);
  }

  // A binary frame that decodes as UTF-8 is a control frame, never a line (false: a binary line).
  #onControl(frame) {
    let text;
    try {
      text = strictUtf8.decode(frame);
    } catch {
      return false;
    }
    const control = parseControl(text); // null: a kind this client does not know, skipped
    if (control && this.#metadata.apply(control) && control.kind === "status") this.#decoder.status(control.status);
    return true;
  }

  #onClose(code, reason) {
    if (this.#ended) return;
    const { messages, error } = this.#decoder.close(code, reason, { opened: this.#opened });
    for (const message of messages) this.#push(message);
    this.#finish(error, code, reason);
  }

  #push(message) {
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve({ value: message, done: false });
    else this.#ready.push(message);
  }

  #finish(error, code, reason) {
    this.#ended = true;
    this.#error = error;
    this.#unwatch();
    if (!this.#opened) this.#settleOpened.reject(error);
    this.#metadata.end(error);
    for (const waiter of this.#waiters.splice(0)) {
      if (error) waiter.reject(error);
      else waiter.resolve({ value: undefined, done: true });
    }
    this.#resolveStatus({
      ok: error === null,
      code: error instanceof CallError ? error.code ?? code : code, // an abort's reason is not a CallError
      reason: error instanceof CallError ? error.reason ?? reason : reason,
      httpStatus: error instanceof HTTPStatusError ? error.status : null,
      error,
    });
  }
}

/**
 * Open a call. Options: token (sent as the Bearer subprotocol), method (?method=), raw (lines as received),
 * timeout, signal, status (offer the status contract; true by default).
 */
export function openCall(url, options = {}) {
  return new Call(url, options);
}

/** Send `message` (undefined: none), half-close, and resolve with the one response message. */
export async function unary(url, message, options = {}) {
  const call = openCall(url, options);
  try {
    if (message !== undefined) call.send(message);
  } catch (error) {
    call.close();
    throw error;
  }
  call.closeSend();
  return call.result();
}

/** Send `message` (undefined: none), half-close, and yield each response message. */
export async function* serverStream(url, message, options = {}) {
  const call = openCall(url, options);
  try {
    if (message !== undefined) call.send(message);
    call.closeSend();
    yield* call;
  } finally {
    call.close(); // a no-op once the call ended; abandons it when the loop was left early
  }
}

/** Send every message (an iterable or async iterable), half-close, and resolve with the one response. */
export async function clientStream(url, messages, options = {}) {
  const call = openCall(url, options);
  try {
    for await (const message of messages) call.send(message);
  } catch (error) {
    call.close(); // a bad message or a failing iterable abandons the call rather than leaving it open
    throw error;
  }
  call.closeSend();
  return call.result();
}

/** A bidirectional call: send and iterate at will, closeSend() when done sending. */
export function bidi(url, options = {}) {
  return openCall(url, options);
}

// Many calls on one WebSocket: the wsproxy.mux.v1 subprotocol (docs/protocol.md, "Multiplexing").
//
//   import { openMux } from "/wsproxy.js";
//   const conn = openMux("/", { token });
//   const reply = await conn.unary("/v1/echo", { message: "hi" }, { method: "POST" });
//   const call = conn.openCall("/v1/chat", { method: "POST" }); // the same Call API as above
//
// Each frame is binary: 1 byte type, 4 bytes call id (big-endian), then the payload. Per call and
// direction, a side may send while its credit (65536 bytes to start; a message costs its size + 1)
// is above zero; WINDOW frames return credit as the receiver reads. So a call you stop reading
// holds back only its own server stream, and sends on a call whose app is not reading wait here.

export const MUX_SUBPROTOCOL = "wsproxy.mux.v1";
const MUX_WINDOW = 65536;
const FRAME = {
  OPEN: 0x01, MESSAGE: 0x02, HALF_CLOSE: 0x03, CANCEL: 0x04, WINDOW: 0x05, LAST_MESSAGE: 0x06,
  LINE: 0x11, LINE_BINARY: 0x12, END: 0x13, STATUS: 0x14, TRAILERS: 0x15,
};
const PROTOCOL_ERROR = 1002;
const EMPTY = new Uint8Array(0);

/** One mux frame: type, call id, payload. */
export function muxFrame(type, callId, payload = EMPTY) {
  const frame = new Uint8Array(5 + payload.byteLength);
  const view = new DataView(frame.buffer);
  view.setUint8(0, type);
  view.setUint32(1, callId);
  frame.set(payload, 5);
  return frame;
}

function muxPayload(message) {
  const data = encodeMessage(message);
  if (typeof data === "string") return utf8.encode(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError("a Blob cannot be sent on a multiplexed call: send its ArrayBuffer");
}

function windowFrame(callId, increment) {
  const payload = new Uint8Array(4);
  new DataView(payload.buffer).setUint32(0, increment);
  return muxFrame(FRAME.WINDOW, callId, payload);
}

/** A call on a mux connection: the same API as Call (send, closeSend, iterate, result, status, httpStatus...). */
export class MuxCall {
  #connection;
  #decoder;
  #lines = []; // received, not yet read: at most the credit granted plus one line
  #ready = [];
  #waiters = [];
  #outbox = []; // messages waiting for credit
  #credit = MUX_WINDOW; // what we may still send
  #granted = MUX_WINDOW; // what the server may still send
  #owed = 0; // read but not yet returned as credit
  #sendClosed = false;
  #end = null; // { code, reason, opened } once END (or the socket's close) arrived
  #ended = false;
  #error = null;
  #asked; // whether OPEN asked for STATUS and TRAILERS frames
  #metadata = new ResponseMetadata();
  #resolveStatus;
  #unwatch = () => {};

  constructor(connection, callId, { raw = false, status = true } = {}) {
    this.#connection = connection;
    this.callId = callId;
    this.#asked = status;
    this.#decoder = new ResponseDecoder({ raw });
    /** Resolves with { ok, code, reason, httpStatus, error } once the call ended and was read; never rejects. */
    this.status = new Promise((resolve) => (this.#resolveStatus = resolve));
    /** Resolves when the connection is open; rejects with the call's error if it never opens. */
    this.opened = connection.opened;
  }

  get subprotocol() {
    return MUX_SUBPROTOCOL;
  }

  /** As Call.httpStatus: the HTTP status from the STATUS frame, null until then. */
  get httpStatus() {
    return this.#metadata.status;
  }

  get headers() {
    return this.#metadata.headers;
  }

  get trailers() {
    return this.#metadata.trailers;
  }

  initialMetadata() {
    return this.#metadata.initial;
  }

  /** Send one request message; it waits here (in order) while the call has no credit. */
  send(message, { last = false } = {}) {
    if (this.#sendClosed) throw new Error("send() after closeSend(): the request body has already ended");
    if (this.#end || this.#ended) {
      throw this.#error ?? new CallError("cannot send: the call has already ended", { code: this.#end?.code ?? NORMAL });
    }
    const payload = muxPayload(message);
    if (last) this.#sendClosed = true;
    this.#queue(last ? FRAME.LAST_MESSAGE : FRAME.MESSAGE, payload);
  }

  /** Send the last request message and the half-close, in one frame (what unary calls do). */
  sendLast(message) {
    this.send(message, { last: true });
  }

  /** End the request body while still receiving the response. */
  closeSend() {
    if (this.#sendClosed || this.#end || this.#ended) return;
    this.#sendClosed = true;
    this.#queue(FRAME.HALF_CLOSE, EMPTY);
  }

  /** Abandon the call (CANCEL); the app sees the client go away. The socket stays open. */
  close() {
    if (this.#end || this.#ended) return;
    this.#connection._send(muxFrame(FRAME.CANCEL, this.callId));
    this.#connection._forget(this.callId);
    this.#outbox = [];
    this.#lines = [];
    this._end(NORMAL, "", true);
  }

  next() {
    if (this.#ready.length) return Promise.resolve({ value: this.#ready.shift(), done: false });
    const next = new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
    this.#pump(); // decodes a waiting line (returning its credit), or settles at the end
    return next;
  }

  [Symbol.asyncIterator]() {
    return { next: () => this.next(), return: async () => ({ value: undefined, done: true }) };
  }

  async result() {
    const messages = [];
    for await (const message of this) messages.push(message);
    if (messages.length !== 1) {
      const status = await this.status;
      throw new CallError(`expected one response message, got ${messages.length}`, { code: status.code });
    }
    return messages[0];
  }

  #queue(type, payload) {
    this.#outbox.push([type, payload]);
    this._flush();
  }

  // Called by the connection.

  _flush() {
    while (this.#outbox.length && this.#credit > 0 && !this.#end) {
      const [type, payload] = this.#outbox.shift();
      this.#credit -= payload.byteLength + (type === FRAME.LAST_MESSAGE ? 2 : 1); // the half-close costs 1
      this.#connection._send(muxFrame(type, this.callId, payload));
    }
  }

  _grant(increment) {
    this.#credit += increment;
    this._flush();
  }

  /** A LINE arrived; false when the server sent it without credit (the connection fails). */
  _line(line, size) {
    if (this.#granted <= 0) return false;
    this.#granted -= size + 1;
    this.#lines.push([line, size]);
    this.#pump();
    return true;
  }

  /** A STATUS or TRAILERS frame; false when the call did not ask for them or it is out of place. */
  _control(control) {
    if (!this.#asked || this.#end || !this.#metadata.apply(control)) return false;
    if (control.kind === "status") {
      this.#decoder.status(control.status);
      this.#pump(); // after an error status, lines are read as they arrive (the body is no message)
    }
    return true;
  }

  _watch(timeout, signal) {
    this.#unwatch = watchCall(timeout, signal, (error) => this._abandon(error));
  }

  /** The client gives up (timeout, abort): CANCEL if the call is still open, and end with `error`. */
  _abandon(error) {
    if (this.#ended) return;
    if (!this.#end) {
      this.#end = { code: null, reason: "", opened: true };
      this.#connection._send(muxFrame(FRAME.CANCEL, this.callId));
      this.#connection._forget(this.callId);
    }
    this.#outbox = [];
    this.#lines = [];
    this.#ready = [];
    this.#finish(error, null, "");
    this.#pump(); // settles the waiting readers with the error
  }

  _end(code, reason, opened) {
    if (!this.#end) this.#end = { code, reason, opened };
    this.#outbox = [];
    this.#pump();
  }

  // Lines are decoded as they are read, and their credit returned then: not reading holds the server back.
  // An error status's body is no message: it is read as it arrives, its credit returned, so a body
  // longer than the window does not wait for a reader.
  #pump() {
    while (!this.#ended) {
      if (this.#ready.length && this.#waiters.length) {
        this.#waiters.shift().resolve({ value: this.#ready.shift(), done: false });
      } else if (
        !this.#ready.length && this.#lines.length && (this.#waiters.length || this.#end || this.#decoder.failed)
      ) {
        this.#take();
      } else if (!this.#lines.length && this.#end) {
        const { code, reason, opened } = this.#end;
        const { messages, error } = this.#decoder.close(code, reason, { opened });
        this.#ready.push(...messages);
        this.#finish(error, code, reason);
      } else {
        return;
      }
    }
    while (this.#waiters.length) {
      const waiter = this.#waiters.shift();
      if (this.#ready.length) waiter.resolve({ value: this.#ready.shift(), done: false });
      else if (this.#error) waiter.reject(this.#error);
      else waiter.resolve({ value: undefined, done: true });
    }
  }

  #take() {
    const [line, size] = this.#lines.shift();
    this.#owed += size + 1;
    if (this.#owed >= MUX_WINDOW / 2 && !this.#end) {
      this.#granted += this.#owed;
      this.#connection._send(windowFrame(this.callId, this.#owed));
      this.#owed = 0;
    }
    try {
      this.#ready.push(...this.#decoder.feed(line));
    } catch (error) {
      // An {"error": ...} line ends the call, as on a single socket.
      this.#lines = [];
      this.#finish(error, NORMAL, "");
      if (!this.#end) {
        this.#end = { code: NORMAL, reason: "", opened: true };
        this.#connection._send(muxFrame(FRAME.CANCEL, this.callId));
        this.#connection._forget(this.callId);
      }
    }
  }

  #finish(error, code, reason) {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    this.#unwatch();
    this.#metadata.end(error);
    this.#resolveStatus({
      ok: error === null,
      code: error instanceof CallError ? error.code ?? code : code, // an abort's reason is not a CallError
      reason: error instanceof CallError ? error.reason ?? reason : reason,
      httpStatus: error instanceof HTTPStatusError ? error.status : null,
      error,
    });
  }
}

/** One WebSocket carrying many calls; opened by openMux(). */
export class MuxConnection {
  #socket;
  #url;
  #calls = new Map();
  #nextId = 1;
  #open = false;
  #pending = []; // frames written before the handshake completed
  #closed = null;
  #failure = null; // the framing error we closed the socket for
  #settleOpened;

  constructor(url = "/", { token = null } = {}) {
    /** Resolves when the socket is open; rejects with ConnectError if it never opens as a mux socket. */
    this.opened = new Promise((resolve, reject) => (this.#settleOpened = { resolve, reject }));
    this.opened.catch(() => {});
    this.#url = callUrl(url);
    const protocols = token ? ["Bearer", token, MUX_SUBPROTOCOL] : [MUX_SUBPROTOCOL];
    this.#socket = new WebSocket(this.#url, protocols);
    this.#socket.binaryType = "arraybuffer";
    this.#socket.onopen = () => this.#onOpen();
    this.#socket.onmessage = (event) => this.#onFrame(event.data);
    this.#socket.onclose = (event) => this.#onClose(event.code, event.reason);
  }

  /** The number of calls open on this socket. */
  get openCalls() {
    return this.#calls.size;
  }

  /** Whether the socket has closed (calls opened now fail at once). */
  get closed() {
    return this.#closed !== null;
  }

  /** Open a call to `path` (with query, relative to the connection's URL). Options: method, raw, headers, status. */
  openCall(path, { method = null, raw = false, headers = null, timeout = null, signal = null, status = true } = {}) {
    const callId = this.#nextId++;
    const call = new MuxCall(this, callId, { raw, status });
    call._watch(timeout, signal);
    if (this.#closed) {
      call._end(this.#closed.code === NORMAL ? ABNORMAL : this.#closed.code, this.#closed.reason, this.#open);
      return call;
    }
    const target = new URL(callUrl(path, method, timeout), this.#url);
    const base = new URL(this.#url);
    if (target.host !== base.host) throw new TypeError(`${path} is not on this connection's host ${base.host}`);
    const open = { path: target.pathname + target.search };
    if (headers) open.headers = Object.entries(headers);
    if (status) open.status = true;
    this.#calls.set(callId, call);
    this._send(muxFrame(FRAME.OPEN, callId, utf8.encode(JSON.stringify(open))));
    return call;
  }

  /** Send `message` (undefined: none), half-close, and resolve with the one response message. */
  async unary(path, message, options = {}) {
    const call = this.openCall(path, options);
    try {
      if (message !== undefined) call.send(message, { last: true });
      else call.closeSend();
    } catch (error) {
      call.close();
      throw error;
    }
    return call.result();
  }

  /** Send `message` (undefined: none), half-close, and yield each response message. */
  async *serverStream(path, message, options = {}) {
    const call = this.openCall(path, options);
    try {
      if (message !== undefined) call.send(message, { last: true });
      else call.closeSend();
      yield* call;
    } finally {
      call.close();
    }
  }

  /** Send every message (an iterable or async iterable), half-close, and resolve with the one response. */
  async clientStream(path, messages, options = {}) {
    const call = this.openCall(path, options);
    try {
      for await (const message of messages) call.send(message);
    } catch (error) {
      call.close();
      throw error;
    }
    call.closeSend();
    return call.result();
  }

  /** A bidirectional call: send and iterate at will, closeSend() when done sending. */
  bidi(path, options = {}) {
    return this.openCall(path, options);
  }

  /** Close the socket; calls still open end with ConnectionLostError. */
  close() {
    this.#socket.close(NORMAL);
  }

  _send(frame) {
    if (this.#closed) return;
    if (this.#open) this.#socket.send(frame);
    else this.#pending.push(frame);
  }

  _forget(callId) {
    this.#calls.delete(callId);
  }

  #onOpen() {
    if (this.#socket.protocol !== MUX_SUBPROTOCOL) {
      this.#fail(PROTOCOL_ERROR, `the server did not accept ${MUX_SUBPROTOCOL} (an older wsproxy?)`);
      return;
    }
    this.#open = true;
    for (const frame of this.#pending.splice(0)) this.#socket.send(frame);
    this.#settleOpened.resolve();
  }

  #onFrame(data) {
    if (typeof data === "string" || data.byteLength < 5) {
      this.#fail(PROTOCOL_ERROR, "not a mux frame");
      return;
    }
    const view = new DataView(data);
    const type = view.getUint8(0);
    const call = this.#calls.get(view.getUint32(1));
    if (!call) return; // a call we cancelled: frames in flight are dropped
    const payload = new Uint8Array(data, 5);
    if (type === FRAME.LINE || type === FRAME.LINE_BINARY) {
      let line = payload.slice().buffer;
      if (type === FRAME.LINE) {
        try {
          line = strictUtf8.decode(payload);
        } catch {
          this.#fail(PROTOCOL_ERROR, "LINE frame that is not UTF-8");
          return;
        }
      }
      if (!call._line(line, payload.byteLength)) this.#fail(PROTOCOL_ERROR, "LINE sent without credit");
    } else if (type === FRAME.STATUS || type === FRAME.TRAILERS) {
      // They cost no credit. The payload is the single socket's control frame.
      let control = null;
      try {
        control = parseControl(strictUtf8.decode(payload));
      } catch {
        // not UTF-8: not a control frame
      }
      const kind = type === FRAME.STATUS ? "status" : "trailers";
      if (control?.kind !== kind || !call._control(control)) this.#fail(PROTOCOL_ERROR, `bad ${kind} frame`);
    } else if (type === FRAME.WINDOW && payload.byteLength === 4) {
      call._grant(new DataView(data, 5).getUint32(0));
    } else if (type === FRAME.END && payload.byteLength >= 2) {
      this.#calls.delete(call.callId);
      const code = new DataView(data, 5).getUint16(0);
      call._end(code, new TextDecoder().decode(payload.subarray(2)), true);
    } else {
      this.#fail(PROTOCOL_ERROR, `bad mux frame type ${type}`);
    }
  }

  #fail(code, reason) {
    this.#failure ??= { code, reason };
    this.#socket.close(NORMAL, reason); // a browser may not send 1002 itself
  }

  #onClose(code, reason) {
    ({ code, reason } = this.#failure ?? { code, reason });
    this.#closed = { code, reason };
    const message = this.#failure ? reason : "could not open the multiplexed WebSocket (refused or unreachable)";
    const error = new ConnectError(message, { code, reason });
    if (!this.#open) this.#settleOpened.reject(error);
    // A socket that closes under open calls loses them, whatever its code.
    for (const call of this.#calls.values()) call._end(code === NORMAL ? ABNORMAL : code, reason, this.#open);
    this.#calls.clear();
  }
}

/** Open one WebSocket for many calls. Options: token (the Bearer subprotocol, for the connection). */
export function openMux(url = "/", options = {}) {
  return new MuxConnection(url, options);
}
