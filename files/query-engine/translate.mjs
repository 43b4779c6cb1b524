// Managed by litellm-runner. prisma-client-py's engine protocol (GraphQL) <-> Prisma's JSON protocol.
//
// Pure functions, no I/O: server.mjs feeds them what prisma-client-py sends and what the Wasm query
// engine answers; tests/unit/test_query_engine.py feeds them recorded cases (tests/unit/query_engine/).
// What is translated and what is not: docs/query-engine.md.
import { parse } from 'graphql';

// GraphQL-protocol field name = action + model name (findUniqueLiteLLM_VerificationToken), prisma-client-py's
// find_*_or_raise: findUnique/findFirst + model + OrThrow
export const ACTIONS = [
  'findUnique', 'findFirst', 'findMany', 'createOne', 'createMany', 'updateOne', 'updateMany', 'upsertOne',
  'deleteOne', 'deleteMany', 'aggregate', 'groupBy',
];
const OR_THROW = 'OrThrow';
const RAW = ['executeRaw', 'queryRaw'];
const JSON_FILTERS = ['equals', 'not', 'set']; // Json filter / update keys whose value is a Json value
const NAME_OID = 19; // PostgreSQL `name` (pg_catalog columns): adapter-pg 5.17 refuses it
const NAME_ARRAY_OID = 1003;
const TEXT_OID = 25;
const TEXT_ARRAY_OID = 1009;

export class TranslationError extends Error {}

/** {model: {field: type}} of a Prisma schema's models (the type's name: String, Json, another model...). */
export function fieldTypes(schema) {
  const models = {};
  for (const m of schema.matchAll(/^model\s+(\w+)\s*\{([\s\S]*?)^\}/gm)) {
    const fields = {};
    for (const line of m[2].split('\n')) {
      const f = line.trim().match(/^(\w+)\s+(\w+)/);
      if (f) fields[f[1]] = f[2];
    }
    models[m[1]] = fields;
  }
  return models;
}

function value(node) {
  switch (node.kind) {
    case 'ObjectValue': return Object.fromEntries(node.fields.map((f) => [f.name.value, value(f.value)]));
    case 'ListValue': return node.values.map(value);
    case 'IntValue': {
      const n = Number(node.value);
      return Number.isSafeInteger(n) ? n : { $type: 'BigInt', value: node.value };
    }
    case 'FloatValue': return Number(node.value);
    case 'NullValue': return null;
    case 'Variable': throw new TranslationError(`GraphQL variables are not supported ($${node.name.value})`);
    default: return node.value; // String, Boolean, Enum
  }
}

const argumentsOf = (field) => Object.fromEntries((field.arguments || []).map((a) => [a.name.value, value(a.value)]));

function selection(set) {
  return Object.fromEntries((set?.selections || []).map((f) => [
    f.name.value,
    f.selectionSet || f.arguments?.length ? { arguments: argumentsOf(f), selection: selection(f.selectionSet) } : true,
  ]));
}

const tagged = (v) => ({ $type: 'Json', value: typeof v === 'string' ? v : JSON.stringify(v) });

function tagJson(v) {
  if (v === null) return null; // a nullable Json column set to NULL
  if (typeof v === 'string') return tagged(v); // GraphQL protocol: Json as its JSON text
  if (Array.isArray(v)) return v.map(tagJson);
  if (typeof v === 'object' && !('$type' in v)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, JSON_FILTERS.includes(k) && x !== null ? tagJson(x) : x]));
  }
  return v;
}

/** ARGS of MODEL with every Json field's value tagged (untagged, the engine stores the JSON text as a string). */
export function tagJsonFields(args, model, models) {
  if (Array.isArray(args)) return args.map((a) => tagJsonFields(a, model, models));
  if (!args || typeof args !== 'object' || '$type' in args) return args;
  return Object.fromEntries(Object.entries(args).map(([k, v]) => {
    const type = models[model]?.[k];
    if (type === 'Json') return [k, tagJson(v)];
    return [k, tagJsonFields(v, type && models[type] ? type : model, models)];
  }));
}

/** The JSON-protocol request for one GraphQL-protocol query text. */
export function toJsonRequest(query, models) {
  let doc;
  try {
    doc = parse(query);
  } catch (e) {
    throw new TranslationError(`not a GraphQL query: ${e.message}`);
  }
  const field = doc.definitions[0]?.selectionSet?.selections?.[0];
  if (doc.definitions.length !== 1 || !field || field.kind !== 'Field') {
    throw new TranslationError('expected one operation with one field');
  }
  const name = field.name.value;
  if (RAW.includes(name)) return { action: name, query: { arguments: argumentsOf(field), selection: {} } };
  let action = ACTIONS.find((a) => name.startsWith(a));
  let modelName = action && name.slice(action.length);
  if (modelName && !models[modelName] && modelName.endsWith(OR_THROW) && action.startsWith('find')) {
    modelName = modelName.slice(0, -OR_THROW.length);
    action += OR_THROW;
  }
  if (!action || !models[modelName]) throw new TranslationError(`unknown operation ${JSON.stringify(name)}`);
  return {
    modelName,
    action,
    query: { arguments: tagJsonFields(argumentsOf(field), modelName, models), selection: selection(field.selectionSet) },
  };
}

/** A JSON-protocol value with its type tags ({"$type": "DateTime", "value": ...}) taken off. */
export function untag(x) {
  if (Array.isArray(x)) return x.map(untag);
  if (!x || typeof x !== 'object') return x;
  if ('$type' in x && 'value' in x) return untag(x.value);
  return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, untag(v)]));
}

const rawValue = (type, v) => {
  if (v === null) return { prisma__type: 'null', prisma__value: null };
  if (type.endsWith('-array')) {
    return { prisma__type: 'array', prisma__value: v.map((e) => rawValue(type.slice(0, -'-array'.length), e)) };
  }
  return { prisma__type: type, prisma__value: v };
};

/** A JSON-protocol raw result ({columns, types, rows}) as the GraphQL protocol's typed rows. */
export function rawRows(result) {
  return result.rows.map((row) => Object.fromEntries(result.columns.map((c, i) => [c, rawValue(result.types[i], row[i])])));
}

/** The GraphQL-protocol answer to REQUEST for the engine's JSON-protocol ANSWER (errors pass unchanged). */
export function fromJsonResponse(answer, request) {
  if (!answer.data) return answer;
  const result = Object.values(answer.data)[0];
  return { data: { result: request.action === 'queryRaw' ? rawRows(result) : untag(result) } };
}

/** The JSON-protocol body for a GraphQL-protocol body: one query, or a batch (in a transaction or not). */
export function toJsonBody(body, models) {
  if (Array.isArray(body.batch)) {
    const batch = body.batch.map((b) => toJsonRequest(b.query, models));
    return body.transaction ? { batch, transaction: {} } : { batch };
  }
  if (typeof body.query !== 'string') throw new TranslationError('expected {"query": ...} or {"batch": [...]}');
  return toJsonRequest(body.query, models);
}

/** The GraphQL-protocol answer to BODY (a JSON-protocol body from toJsonBody) for the engine's ANSWER. */
export function fromJsonBody(answer, body) {
  if (!body.batch) return fromJsonResponse(answer, body);
  if (!answer.batchResult) return answer;
  return { batchResult: answer.batchResult.map((r, i) => fromJsonResponse(r, body.batch[i])) };
}

/** The answer for a request the translator refused (prisma-client-py raises it as a DataError). */
export function refusal(message) {
  return { errors: [{ error: message, user_facing_error: { is_panic: false, message, error_code: 'P2009' } }] };
}

// Prisma's PostgreSQL URL parameters (https://pris.ly/d/connection-strings) as pg.Pool options.
const SECONDS = (ms) => (v) => Math.round(Number(v) * ms);
const POOL_PARAMETERS = {
  connection_limit: ['max', Number],
  pool_timeout: ['connectionTimeoutMillis', SECONDS(1000)],
  connect_timeout: ['connectTimeoutSeconds', Number],
  socket_timeout: ['query_timeout', SECONDS(1000)],
  max_idle_connection_lifetime: ['idleTimeoutMillis', SECONDS(1000)],
  max_connection_lifetime: ['maxLifetimeSeconds', Number],
};
const PG_PARAMETERS = ['sslmode', 'sslcert', 'sslkey', 'sslrootcert', 'application_name', 'options']; // pg reads these
const DEFAULT_POOL = { max: 10, connectionTimeoutMillis: 10000 }; // Prisma's: connection_limit from the CPUs, pool_timeout 10 s

/** {connectionString, pool options, schema, dropped: [names]} for a Prisma PostgreSQL URL. */
export function poolConfig(url) {
  const u = new URL(url);
  const options = { ...DEFAULT_POOL };
  const dropped = [];
  let schema;
  for (const [k, v] of [...u.searchParams.entries()]) {
    if (k === 'schema') schema = v;
    else if (POOL_PARAMETERS[k]) {
      const [name, convert] = POOL_PARAMETERS[k];
      const n = convert(v);
      if (!Number.isFinite(n) || n < 0 || (k === 'connection_limit' && n < 1)) {
        throw new TranslationError(`database URL parameter ${k}: expected a number, not ${JSON.stringify(v)}`);
      }
      options[name] = n;
    } else if (!PG_PARAMETERS.includes(k)) dropped.push(k);
    if (!PG_PARAMETERS.includes(k)) u.searchParams.delete(k);
  }
  if (options.connectTimeoutSeconds !== undefined) {
    options.connectionTimeoutMillis = Math.max(options.connectionTimeoutMillis, options.connectTimeoutSeconds * 1000);
    delete options.connectTimeoutSeconds;
  }
  return { connectionString: u.toString(), pool: options, schema, dropped: dropped.sort() };
}

/** A pg result with `name` / `name[]` columns presented as `text` / `text[]` (adapter-pg 5.17 refuses them). */
export function nameAsText(result, parseTextArray) {
  for (const [i, f] of (result?.fields || []).entries()) {
    if (f.dataTypeID === NAME_OID) f.dataTypeID = TEXT_OID;
    else if (f.dataTypeID === NAME_ARRAY_OID) {
      f.dataTypeID = TEXT_ARRAY_OID;
      for (const row of result.rows) {
        const k = Array.isArray(row) ? i : f.name;
        if (typeof row[k] === 'string') row[k] = parseTextArray(row[k]);
      }
    }
  }
  return result;
}
