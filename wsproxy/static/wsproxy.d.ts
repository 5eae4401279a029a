// Type declarations for wsproxy.js, the browser client for services behind wsproxy.

export interface CallOptions {
  /** Sent as the "Bearer, <token>" subprotocol; the app sees "Authorization: Bearer <token>". */
  token?: string | null;
  /** The HTTP method of the request (sets ?method=); the proxy's default is GET. */
  method?: string | null;
  /** Iterate the response lines as received (string, or ArrayBuffer when not UTF-8) instead of JSON. */
  raw?: boolean;
  /**
   * The call's deadline in seconds (as in the Python client): sent as ?grpc-timeout=, the service's
   * deadline behind a gRPC gateway (an expired one: HTTPStatusError 504, close 4504). The client waits at
   * most timeout + DEADLINE_GRACE_SECONDS, then abandons the call with DeadlineExceededError.
   */
  timeout?: number | null;
  /** Aborting it abandons the call (the app sees the client go); the call ends with the signal's reason. */
  signal?: AbortSignal | null;
  /**
   * Offer the status contract (wsproxy.status.v1; default true): a proxy that selects it sends the HTTP
   * status and headers before the first line (`httpStatus`, `headers`, `initialMetadata()`), and an error
   * status's body is never yielded as a message. false: lines and the close code only.
   */
  status?: boolean;
}

/** A response header or trailer: [lower-case name, value]. */
export type Header = [name: string, value: string];

export interface CallStatus {
  /** True when the call ended with close 1000. */
  ok: boolean;
  /** The close code that ended the call (1000, 4000 + HTTP status, 1008, 1009, 1011, 1013, 1014, 1006...). */
  code: number | null;
  reason: string;
  /** The HTTP status, for an HTTPStatusError (including a StreamError); otherwise null. */
  httpStatus: number | null;
  error: CallError | null;
}

export type Message = string | ArrayBuffer | ArrayBufferView | Blob;

export class CallError extends Error {
  constructor(message: string, options?: { code?: number | null; reason?: string });
  /** The close code that ended the call, or null when there was none. */
  code: number | null;
  reason: string;
}

export class HTTPStatusError extends CallError {
  constructor(status: number, reason: string, body: unknown, options?: { code?: number | null });
  /** The HTTP status (400, 401, 404, 500, ...). */
  status: number;
  /**
   * The error body: with the status contract, every line after the status frame, joined with "\n" (JSON
   * when it is JSON, else the text; null when there was none; grpc-gateway's {"error": {...}} envelope
   * gives the inner object); without it, the line before the close, parsed JSON when it was JSON.
   */
  body: unknown;
  /** From a google.rpc.Status body ({"code", "message", "details"}), else null / []. */
  grpcCode: number | null;
  grpcCodeName: string | null;
  details: unknown[];
  /** The body's message (or "error" / "detail" string), else null. */
  detail: string | null;
}

/** A control frame of the status contract, parsed; null from parseControl when it is not one. */
export interface Control {
  kind: "status" | "trailers";
  /** The HTTP status, for a status frame; null for trailers. */
  status: number | null;
  headers: Header[];
}

export const STATUS_SUBPROTOCOL: "wsproxy.status.v1";
export function parseControl(text: string): Control | null;
/**
 * An error status's body lines, joined with "\n": JSON when it is JSON (the {"error": {...}} envelope
 * unwrapped), else the text; null when there were none.
 */
export function errorBody(lines: (string | ArrayBuffer)[]): unknown;

/** An {"error": {...}} line in a stream; `status` is the HTTP status its gRPC code maps to. */
export class StreamError extends HTTPStatusError {
  constructor(error: unknown);
}
export class PolicyViolationError extends CallError {}
export class MessageTooBigError extends CallError {}
export class ProxyInternalError extends CallError {}
export class TryAgainLaterError extends CallError {}
export class BadGatewayError extends CallError {}
export class DeadlineExceededError extends CallError {}
export const DEADLINE_GRACE_SECONDS: number;
export function grpcTimeout(seconds: number): string;
export class ConnectionLostError extends CallError {}
export class ConnectError extends CallError {}
export class UnexpectedCloseError extends CallError {}

export function errorForClose(
  code: number,
  reason: string,
  body: unknown,
  options?: { opened?: boolean },
): CallError | null;

export class ResponseDecoder {
  constructor(options?: { raw?: boolean });
  /** The status frame's HTTP status: after a 2xx no line waits; after another, every line is the error's body. */
  status(status: number): void;
  /** True once an error status arrived. */
  readonly failed: boolean;
  feed(frame: string | ArrayBuffer): unknown[];
  close(code: number, reason: string, options?: { opened?: boolean }): { messages: unknown[]; error: CallError | null };
}

export function callUrl(url: string | URL, method?: string | null, timeout?: number | null): string;

export class Call<T = any> implements AsyncIterable<T> {
  constructor(url: string | URL, options?: CallOptions);
  /** Resolves once the call ended; never rejects. */
  readonly status: Promise<CallStatus>;
  /** Resolves when the WebSocket is open; rejects with the call's error if it never opens. */
  readonly opened: Promise<void>;
  /** "wsproxy.status.v1" when the proxy speaks the status contract, else "Bearer" (with a token) or "". */
  readonly subprotocol: string;
  /** The response's HTTP status from the status frame; null until it arrived, or without the contract. */
  readonly httpStatus: number | null;
  /** The response headers from the status frame (no hop-by-hop headers, no set-cookie); empty until then. */
  readonly headers: Header[];
  /** The HTTP trailers, once the trailers frame arrived; empty unless the app sent some. */
  readonly trailers: Header[];
  /**
   * Resolves with the headers when the status frame arrives (with [] when the call ends without one);
   * rejects with the call's error, an HTTPStatusError for an error status.
   */
  initialMetadata(): Promise<Header[]>;
  /** Strings go as text, binary data as binary, anything else as JSON. Throws after closeSend(). */
  send(message: unknown): void;
  /** The half-close: ends the request body while the response keeps arriving. */
  closeSend(): void;
  close(): void;
  next(): Promise<IteratorResult<T, undefined>>;
  [Symbol.asyncIterator](): AsyncIterator<T>;
  /** The one response message of a unary or client-streaming call. */
  result(): Promise<T>;
}

export function openCall<T = any>(url: string | URL, options?: CallOptions): Call<T>;
export function unary<T = any>(url: string | URL, message?: unknown, options?: CallOptions): Promise<T>;
export function serverStream<T = any>(
  url: string | URL,
  message?: unknown,
  options?: CallOptions,
): AsyncGenerator<T, void, undefined>;
export function clientStream<T = any>(
  url: string | URL,
  messages: Iterable<unknown> | AsyncIterable<unknown>,
  options?: CallOptions,
): Promise<T>;
export function bidi<T = any>(url: string | URL, options?: CallOptions): Call<T>;

// Many calls on one WebSocket: the wsproxy.mux.v1 subprotocol.

export const MUX_SUBPROTOCOL: "wsproxy.mux.v1";

export interface MuxOptions {
  /** Sent as the "Bearer, <token>" subprotocol pair; authenticates every call on the connection. */
  token?: string | null;
}

export interface MuxCallOptions {
  /** The HTTP method of the request (sets ?method=); the proxy's default is GET. */
  method?: string | null;
  /** Iterate the response lines as received instead of JSON. */
  raw?: boolean;
  /** Per-call request headers; the proxy forwards only those its allowlist names. */
  headers?: Record<string, string> | null;
  /** As CallOptions.timeout; on abandoning, the call is cancelled (CANCEL) and the socket stays open. */
  timeout?: number | null;
  /** As CallOptions.signal. */
  signal?: AbortSignal | null;
  /** As CallOptions.status: OPEN asks for the STATUS and TRAILERS frames (default true). */
  status?: boolean;
}

/** A call on a mux connection: the same API as Call. Sends wait (in order) while the call has no credit. */
export class MuxCall<T = any> implements AsyncIterable<T> {
  readonly callId: number;
  /** Resolves once the call ended and its lines were read; never rejects. */
  readonly status: Promise<CallStatus>;
  /** The connection's `opened`. */
  readonly opened: Promise<void>;
  readonly subprotocol: "wsproxy.mux.v1";
  /** As Call: from the STATUS frame; null until it arrived. */
  readonly httpStatus: number | null;
  readonly headers: Header[];
  /** From the TRAILERS frame. */
  readonly trailers: Header[];
  initialMetadata(): Promise<Header[]>;
  /** `last`: this is the last message: the half-close goes in the same frame. */
  send(message: unknown, options?: { last?: boolean }): void;
  /** send(message, { last: true }): what unary calls do. */
  sendLast(message: unknown): void;
  closeSend(): void;
  /** Cancel the call; the socket stays open. */
  close(): void;
  next(): Promise<IteratorResult<T, undefined>>;
  [Symbol.asyncIterator](): AsyncIterator<T>;
  result(): Promise<T>;
}

export class MuxConnection {
  constructor(url?: string | URL, options?: MuxOptions);
  /** Resolves when the socket is open; rejects with ConnectError if it never opens as a mux socket. */
  readonly opened: Promise<void>;
  readonly openCalls: number;
  readonly closed: boolean;
  openCall<T = any>(path: string, options?: MuxCallOptions): MuxCall<T>;
  unary<T = any>(path: string, message?: unknown, options?: MuxCallOptions): Promise<T>;
  serverStream<T = any>(path: string, message?: unknown, options?: MuxCallOptions): AsyncGenerator<T, void, undefined>;
  clientStream<T = any>(
    path: string,
    messages: Iterable<unknown> | AsyncIterable<unknown>,
    options?: MuxCallOptions,
  ): Promise<T>;
  bidi<T = any>(path: string, options?: MuxCallOptions): MuxCall<T>;
  /** Close the socket; calls still open end with ConnectionLostError. */
  close(): void;
}

export function openMux(url?: string | URL, options?: MuxOptions): MuxConnection;
export function muxFrame(type: number, callId: number, payload?: Uint8Array): Uint8Array;
