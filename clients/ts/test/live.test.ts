/**
 * Live test of the TypeScript client against a running wasteml server.
 *
 * Reads the server address from WASTEML_ADDR (host:port, plaintext HTTP/2) and, when set, a
 * bearer token from WASTEML_TOKEN. Run with `WASTEML_ADDR=127.0.0.1:50051 npm run test:live`.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import { isMessage } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

import { createWastemlClients } from "../src/client.js";
import { ListModelsResponseSchema } from "../src/gen/wasteml/v1/admin_pb.js";

const address = process.env.WASTEML_ADDR;
if (address === undefined || address.length === 0) {
  throw new Error("WASTEML_ADDR is not set: give the live server's host:port");
}
const token = process.env.WASTEML_TOKEN;
const clients = createWastemlClients({
  address,
  token: token !== undefined && token.length > 0 ? token : undefined,
  timeoutMs: 30_000,
});

test("ModelAdmin.ListModels answers with a ListModelsResponse", async () => {
  const reply = await clients.admin.listModels({});
  assert.ok(isMessage(reply, ListModelsResponseSchema), "reply is a wasteml.v1.ListModelsResponse");
  for (const model of reply.models) {
    assert.equal(typeof model.name, "string");
    assert.ok(model.name.length > 0, "every listed model has a name");
  }
});

test("SemanticSearch.Search with top_k = -1 is rejected with INVALID_ARGUMENT naming top_k", async () => {
  await assert.rejects(
    clients.search.search({ query: "overflowing dumpster behind the market", topK: -1 }),
    (err: unknown) => {
      const connectErr = ConnectError.from(err);
      assert.equal(connectErr.code, Code.InvalidArgument, `code was ${Code[connectErr.code]}`);
      assert.match(connectErr.rawMessage, /top_k/, "the status message names the field top_k");
      return true;
    },
  );
});
