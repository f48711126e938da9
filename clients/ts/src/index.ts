/** Public entry point of the wasteml TypeScript client: the typed clients and every generated type. */
export * from "./client.js";
export * from "./gen/wasteml/v1/admin_pb.js";
export * from "./gen/wasteml/v1/common_pb.js";
export * from "./gen/wasteml/v1/forecasting_pb.js";
export * from "./gen/wasteml/v1/planning_pb.js";
export * from "./gen/wasteml/v1/routing_pb.js";
export * from "./gen/wasteml/v1/search_pb.js";
