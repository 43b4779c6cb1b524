// Managed by litellm-runner. Stands in for Prisma's query-engine program as prisma-client-py 0.11.0 runs it:
//   query-engine -p PORT [--enable-metrics] [--enable-raw-queries]   (PRISMA_DML_PATH: the schema)
//   query-engine --version
// and serves its HTTP endpoints on 127.0.0.1:PORT (GET /status, POST / one query or a batch,
// POST /transaction/start, /transaction/ID/commit|rollback, /metrics) with Prisma's own query engine
// compiled to WebAssembly (@prisma/query-engine-wasm) over PostgreSQL (@prisma/adapter-pg, pg).
// The protocol translation is translate.mjs; what is supported: docs/query-engine.md.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { webcrypto } from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const VERSION = '393aa359c9ad4a4bb28630fb5613f9c281cde053'; // @prisma/query-engine-wasm 5.17.0's engine commit
const BODY_LIMIT = 64 * 1024 * 1024; // bytes of one request (LiteLLM's spend-log batches are the largest)
const REQUEST_TIMEOUT_MS = 300000; // a request (and its body) must be done within this
const HERE = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const STARTED = Date.now();

const argv = process.argv.slice(2);
if (argv.includes('--version')) {
  process.stdout.write(`query-engine ${VERSION}\n`);
  process.exit(0);
}
const log = (text) => process.stderr.write(`query-engine: ${text}\n`); // the unit's journal: never a value
const port = Number(argv[argv.indexOf('-p') + 1]);
if (argv.indexOf('-p') < 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
  log('usage: query-engine -p PORT (prisma-client-py starts it)');
  process.exit(2);
}
globalThis.crypto ??= webcrypto; // Node 18: the Wasm engine's uuid() needs crypto.getRandomValues

// Listening comes first: prisma-client-py gives the engine 10 s to answer GET /status, and loading the Wasm
// engine takes longer than that on a busy host. Every other request waits for the engine.
const engineReady = (async () => {
  const translate = await import('./translate.mjs');
  const pg = require('pg');
  const { PrismaPg } = require('@prisma/adapter-pg');
  const { bindAdapter } = require('@prisma/driver-adapter-utils');

  // adapter-pg 5.17 refuses `name` columns (LiteLLM's catalog queries return them): presented as text
  const parseTextArray = pg.types.getTypeParser(1009);
  const query = pg.Client.prototype.query;
  pg.Client.prototype.query = function (...args) {
    if (typeof args[args.length - 1] === 'function') {
      const done = args.pop();
      return query.call(this, ...args, (err, result) => done(err, translate.nameAsText(result, parseTextArray)));
    }
    const pending = query.apply(this, args);
    return pending && typeof pending.then === 'function'
      ? pending.then((result) => translate.nameAsText(result, parseTextArray))
      : pending;
  };

  const schema = fs.readFileSync(process.env.PRISMA_DML_PATH, 'utf8');
  let url = process.env.DATABASE_URL;
  if (process.env.OVERWRITE_DATASOURCES) url = JSON.parse(process.env.OVERWRITE_DATASOURCES)[0]?.url || url;
  if (!url) throw Object.assign(new Error('no database URL (DATABASE_URL or the client\'s datasource)'), { code: '' });
  const config = translate.poolConfig(url);
  if (config.dropped.length) log(`database URL parameters not used: ${config.dropped.join(', ')}`);
  const pool = new pg.Pool({ connectionString: config.connectionString, ...config.pool });
  pool.on('error', (e) => log(`idle database connection failed: ${e.code || e.name}`));

  const wasmDir = path.join(HERE, 'node_modules/@prisma/query-engine-wasm/postgresql');
  const bindings = await import(path.join(wasmDir, 'query_engine_bg.js'));
  const { instance } = await WebAssembly.instantiate(fs.readFileSync(path.join(wasmDir, 'query_engine_bg.wasm')), {
    './query_engine_bg.js': bindings,
  });
  bindings.__wbg_set_wasm(instance.exports);
  const adapter = bindAdapter(new PrismaPg(pool, config.schema ? { schema: config.schema } : undefined));
  const engine = new bindings.QueryEngine({ datamodel: schema, logLevel: 'error', logQueries: false }, () => {}, adapter);
  await engine.connect('{}');
  log(`ready in ${Date.now() - STARTED} ms (pool of ${config.pool.max})`);
  return { engine, pool, translate, models: translate.fieldTypes(schema) };
})();
engineReady.catch((e) => {
  log(`did not start: ${e.name}: ${e.message}`); // the URL is never in these messages
  process.exit(1);
});

async function run({ engine, translate, models }, body, txId) {
  let request;
  try {
    request = translate.toJsonBody(body, models);
  } catch (e) {
    if (e instanceof translate.TranslationError) return translate.refusal(e.message);
    throw e;
  }
  return translate.fromJsonBody(JSON.parse(await engine.query(JSON.stringify(request), '{}', txId)), request);
}

function read(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > BODY_LIMIT) reject(Object.assign(new Error('request body too large'), { status: 413 }));
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

async function answer(req) {
  const body = await read(req);
  const tx = req.url.match(/^\/transaction\/([^/]+)\/(commit|rollback)$/);
  if (req.method === 'GET' && req.url === '/status') return { status: 'ok' };
  const ready = await engineReady;
  const { engine } = ready;
  if (req.url.startsWith('/metrics')) return req.url.includes('format=prometheus') ? '' : { counters: [], gauges: [], histograms: [] };
  if (req.method !== 'POST') throw Object.assign(new Error(`${req.method} ${req.url}`), { status: 404 });
  if (req.url === '/transaction/start') return engine.startTransaction(body || '{}', '{}');
  if (tx) return engine[tx[2] === 'commit' ? 'commitTransaction' : 'rollbackTransaction'](tx[1], '{}');
  if (req.url !== '/') throw Object.assign(new Error(`POST ${req.url}`), { status: 404 });
  return run(ready, JSON.parse(body), req.headers['x-transaction-id']);
}

const server = http.createServer(async (req, res) => {
  const send = (status, out) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(typeof out === 'string' ? out : JSON.stringify(out));
  };
  try {
    send(200, await answer(req));
  } catch (e) {
    const status = e.status || 500;
    log(`${req.method} ${req.url.split('?')[0]}: ${status} ${e.name}`); // the message may hold data: not logged
    send(status, { errors: [{ error: String(e.message), user_facing_error: { is_panic: false, message: String(e.message) } }] });
  }
});
server.requestTimeout = REQUEST_TIMEOUT_MS;
server.listen(port, '127.0.0.1');

const STOP_GRACE_MS = 3000; // prisma-client-py waits for the engine to exit: it does, in time, whatever hangs
async function stop() {
  setTimeout(() => process.exit(0), STOP_GRACE_MS);
  server.close();
  try {
    const { engine, pool } = await engineReady;
    await engine.disconnect('{}');
    await pool.end();
  } finally {
    process.exit(0);
  }
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
