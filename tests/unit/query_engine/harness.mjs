// Runs translate.mjs's functions on recorded cases (tests/unit/test_query_engine.py): node harness.mjs TREE < cases
// TREE: the assembled engine (translate.mjs and its node_modules). Prints [{result} or {error}] per case.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const tree = process.argv[2];
const t = await import(pathToFileURL(path.join(tree, 'translate.mjs')).href);
const pg = createRequire(path.join(tree, 'server.mjs'))('pg');
const { schema, cases } = JSON.parse(fs.readFileSync(0, 'utf8'));
const models = t.fieldTypes(schema);
const extra = {
  toJsonBody: [models],
  toJsonRequest: [models],
  tagJsonFields: [models],
  nameAsText: [pg.types.getTypeParser(1009)],
  fieldTypes: [],
};
const out = cases.map((c) => {
  try {
    return { result: t[c.function](...c.args, ...(extra[c.function] || [])) };
  } catch (e) {
    return { error: `${e.constructor.name}: ${e.message}` };
  }
});
process.stdout.write(JSON.stringify(out));
