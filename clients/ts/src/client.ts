/**
 * Typed gRPC clients for the wasteml v1 services over HTTP/2 (Connect's gRPC transport for Node).
 *
 * The message and service types come from `src/gen` (protoc-gen-es, generated from
 * proto/wasteml/v1 by scripts/generate.sh). Errors surface as `ConnectError` with a gRPC
 * `Code` (e.g. `Code.InvalidArgument` for bad input, `Code.Unavailable` when a dependency is
 * down); the server's `google.rpc.BadRequest` details can be read with `err.findDetails(...)`.
 *
 * @example
 *   const clients = createWastemlClients({ address: "127.0.0.1:50051", timeoutMs: 10_000 });
 *   const reply = await clients.search.search({ query: "dead raccoon on the sidewalk", topK: 10 });
 */
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { ModelAdmin } from "./gen/wasteml/v1/admin_pb.js";
import { Forecasting } from "./gen/wasteml/v1/forecasting_pb.js";
import { CollectionPlanner } from "./gen/wasteml/v1/planning_pb.js";
import { RouteOptimizer } from "./gen/wasteml/v1/routing_pb.js";
import { SemanticSearch } from "./gen/wasteml/v1/search_pb.js";

/** Largest message sent or accepted, bytes: the server's default `WASTEML_MAX_MESSAGE_BYTES` (16 MiB). */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** Options of {@link createWastemlTransport} and {@link createWastemlClients}. */
export interface WastemlClientOptions {
  /**
   * Server address. Either `host:port` (plaintext HTTP/2, e.g. "127.0.0.1:50051") or a full
   * base URL ("http://host:port" for plaintext, "https://host:port" for TLS).
   */
  address: string;
  /** Bearer token sent as `authorization: Bearer <token>` on every call; unset sends none. */
  token?: string;
  /**
   * Default deadline of every call, milliseconds; a call may override it with
   * `{ timeoutMs }` in its call options. Unset means no client-side deadline (the server then
   * applies its own default for unary calls).
   */
  timeoutMs?: number;
  /** Largest message sent or accepted, bytes (default {@link DEFAULT_MAX_MESSAGE_BYTES}). */
  maxMessageBytes?: number;
  /** Extra interceptors, run after the bearer-token interceptor. */
  interceptors?: Interceptor[];
}

/** One typed client per wasteml v1 service, sharing one HTTP/2 transport. */
export interface WastemlClients {
  /** The transport the clients share (one HTTP/2 session per server). */
  transport: Transport;
  /** SemanticSearch: Embed, IndexDocuments, Search, DeleteDocuments, GetCollectionStats. */
  search: Client<typeof SemanticSearch>;
  /** RouteOptimizer: Solve, SubmitJob, GetJob, WatchJob, CancelJob. */
  routing: Client<typeof RouteOptimizer>;
  /** Forecasting: PredictFillLevel, ForecastDemand. */
  forecasting: Client<typeof Forecasting>;
  /** CollectionPlanner: PlanDay. */
  planner: Client<typeof CollectionPlanner>;
  /** ModelAdmin: ListModels, GetModel, LoadModel, UnloadModel, ListRegistryEntries. */
  admin: Client<typeof ModelAdmin>;
}

/**
 * An interceptor that adds `authorization: Bearer <token>` to every request.
 *
 * @throws Error when the token is empty.
 */
export function bearerTokenInterceptor(token: string): Interceptor {
  if (token.length === 0) {
    throw new Error("token: must be non-empty");
  }
  return (next) => async (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return await next(req);
  };
}

/**
 * The base URL for an address: `host:port` becomes `http://host:port` (plaintext);
 * addresses that already carry `http://` or `https://` are kept.
 *
 * @throws Error when the address is empty.
 */
export function baseUrlFor(address: string): string {
  const trimmed = address.trim();
  if (trimmed.length === 0) {
    throw new Error("address: must be host:port or an http(s) URL");
  }
  return /^https?:\/\//.test(trimmed) ? trimmed : `http://${trimmed}`;
}

/** A gRPC (HTTP/2) transport to a wasteml server. */
export function createWastemlTransport(options: WastemlClientOptions): Transport {
  const interceptors: Interceptor[] = [];
  if (options.token !== undefined) {
    interceptors.push(bearerTokenInterceptor(options.token));
  }
  interceptors.push(...(options.interceptors ?? []));
  const maxBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  return createGrpcTransport({
    baseUrl: baseUrlFor(options.address),
    interceptors,
    defaultTimeoutMs: options.timeoutMs,
    readMaxBytes: maxBytes,
    writeMaxBytes: maxBytes,
  });
}

/** Clients for every wasteml v1 service over one shared transport. */
export function createWastemlClients(options: WastemlClientOptions): WastemlClients {
  const transport = createWastemlTransport(options);
  return {
    transport,
    search: createClient(SemanticSearch, transport),
    routing: createClient(RouteOptimizer, transport),
    forecasting: createClient(Forecasting, transport),
    planner: createClient(CollectionPlanner, transport),
    admin: createClient(ModelAdmin, transport),
  };
}
