import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// The import graph runs one way: src/cli (entry points) on top of the rest of src, and src on nothing outside it.
// A lower layer that imports a higher one (as daemon.ts once took its options type from cli/) breaks that.

const ROOT = resolve(import.meta.dirname, '..', '..');

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return tsFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

/** Every relative module a file imports or re-exports (static, `import type`, `export … from` and dynamic import()), as repository paths. */
function relativeImports(file: string, text = readFileSync(file, 'utf8')): string[] {
  const specifiers = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm)].map((m) => m[1]);
  return specifiers.filter((s) => s.startsWith('.')).map((s) => relative(ROOT, resolve(dirname(file), s)));
}

const edges = tsFiles(join(ROOT, 'src')).flatMap((file) => relativeImports(file).map((to) => ({ from: relative(ROOT, file), to })));

describe('import layering', () => {
  it('finds the imports it checks', () => {
    // A broken pattern would find nothing and pass every check below.
    expect(edges).toContainEqual({ from: 'src/cli/flanneld.ts', to: 'src/daemon.js' });
    const text = "import type { X } from '../cli/flags.js';\nexport { y } from './y.js';\nawait import('../../bench/run.js');\nimport './side.js';\nimport { rt } from 'netlink';";
    expect(relativeImports(join(ROOT, 'src', 'x', 'a.ts'), text)).toEqual(['src/cli/flags.js', 'src/x/y.js', 'bench/run.js', 'src/x/side.js']);
  });

  it('nothing outside src/cli imports src/cli', () => {
    expect(edges.filter((e) => !e.from.startsWith('src/cli/') && e.to.startsWith('src/cli/'))).toEqual([]);
  });

  it('src imports nothing from test/, testbed/, bench/ or faults/', () => {
    expect(edges.filter((e) => /^(test|testbed|bench|faults)\//.test(e.to))).toEqual([]);
  });

});
