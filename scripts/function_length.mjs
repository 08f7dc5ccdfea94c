// Fail when a JavaScript function in the given files or folders is longer than the limit
// (default 80 lines): the twin of function_length.py for the web client and the Node tools.
//
//   node scripts/function_length.mjs [--max 80] PATH ...

import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';

import { parse } from 'acorn';
import { simple } from 'acorn-walk';

async function sources(target) {
  if (!(await stat(target)).isDirectory()) return [target];
  const entries = await readdir(target, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && /\.m?js$/.test(e.name))
    .map((e) => path.join(e.parentPath ?? e.path, e.name))
    .sort();
}

async function main() {
  const args = process.argv.slice(2);
  const at = args.indexOf('--max');
  const limit = at >= 0 ? Number(args.splice(at, 2)[1]) : 80;
  const found = [];
  for (const target of args) {
    for (const file of await sources(target)) {
      const tree = parse(await readFile(file, 'utf8'), { ecmaVersion: 'latest', sourceType: 'module', locations: true });
      const check = (node) => {
        const lines = node.loc.end.line - node.loc.start.line + 1;
        if (lines > limit) found.push(`${file}:${node.loc.start.line}: ${node.id?.name ?? 'function'} has ${lines} lines`);
      };
      simple(tree, { FunctionDeclaration: check, FunctionExpression: check, ArrowFunctionExpression: check });
    }
  }
  for (const line of found) console.error(`${line} (limit ${limit})`);
  process.exit(found.length ? 1 : 0);
}

main().catch((error) => {
  console.error(`function_length: ${error.message}`);
  process.exit(2);
});
