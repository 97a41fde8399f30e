#!/usr/bin/env node
// Oracle: npm's `scim-patch` (pinned in package.json / package-lock.json).
//
// A long-running process for tests/patch/main.rs: reads one JSON case a line on
// stdin,
//   {"id": ..., "resource": {...}, "request": {PatchOp message}, "resource_type": "User"|"Group"}
// and writes one JSON line a case on stdout, in the order read:
//   {"id": ..., "ok": true, "result": {...}}
//   {"id": ..., "ok": false, "error": "<scimType>" | "crash: <message>", "detail": "..."}
//
// How scim-patch is driven (its README, and lib/src/scimPatch.js):
// - patchBodyValidation(request) first: it checks `schemas` and `Operations`,
//   as a server does before applying anything;
// - scimPatch(resource, request.Operations, {mutateDocument: false,
//   treatMissingAsAdd: false}). treatMissingAsAdd defaults to true, which turns
//   a `replace` whose valuePath filter matches nothing into an `add`; RFC 7644
//   §3.5.2.3 asks for noTarget there, so the option closest to the RFC is used.
// scim-patch knows no schema: it is told nothing of resource_type.
//
// Errors: scim-patch's own errors carry `scimCode` (invalidSyntax or noTarget
// in 0.8.x), reported as is. Anything else it throws (a TypeError on an input
// it did not expect) is reported as "crash: ...", so the suite can tell "the
// engine refused" from "the engine broke". Nothing a case holds ends this loop.
'use strict';

const readline = require('readline');
const { scimPatch, patchBodyValidation } = require('scim-patch');

function applyCase(c) {
  const request = c.request;
  patchBodyValidation(request);
  return scimPatch(c.resource, request.Operations, {
    mutateDocument: false,
    treatMissingAsAdd: false,
  });
}

function answer(line) {
  let c;
  try {
    c = JSON.parse(line);
  } catch (e) {
    return { id: null, ok: false, error: 'crash: unreadable case line', detail: String(e) };
  }
  try {
    const result = applyCase(c);
    // Round-trip through JSON: drops `undefined` members and Dates the way a
    // server's response body would.
    return { id: c.id, ok: true, result: JSON.parse(JSON.stringify(result)) };
  } catch (e) {
    if (e && typeof e.scimCode === 'string') {
      return { id: c.id, ok: false, error: e.scimCode, detail: String(e.message) };
    }
    const message = e && e.message ? e.message : String(e);
    return { id: c.id, ok: false, error: `crash: ${e && e.name ? e.name : 'Error'}`, detail: message };
  }
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
rl.on('line', (line) => {
  if (line.trim() === '') return;
  let out;
  try {
    out = JSON.stringify(answer(line));
  } catch (e) {
    out = JSON.stringify({ id: null, ok: false, error: 'crash: unserialisable answer', detail: String(e) });
  }
  process.stdout.write(out + '\n');
});
// No process.exit() here: writes to a pipe are asynchronous in Node, and
// exiting would drop the answers still queued (seen in CI: 2992 of 3000).
// With stdin closed and nothing left to write, the process ends on its own.
rl.on('close', () => {
  process.exitCode = 0;
});
