// prepare-gpu-bundle.sh's compiler: every src/**/*.ts of a package but its tests, transpiled one file
// at a time by TypeScript (the repo's tsconfig has isolatedModules, so each file compiles alone) into
// <out>/dist/**.js, without type checks (npm run typecheck / build do those) and in a second or two.
//   node transpile.cjs <repo root> <package dir> <out dir> [file ...]
const fs = require('fs');
const path = require('path');
const [root, pkgDir, outDir, ...only] = process.argv.slice(2);
const ts = require(require.resolve('typescript', { paths: [root] }));
const src = path.join(pkgDir, 'src');
const files = only.length ? only.map((f) => path.join(src, f)) : (function walk(d) {
  return fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(d, e.name);
    return e.isDirectory() ? walk(p) : e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
})(src);
const options = { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, isolatedModules: true, verbatimModuleSyntax: false };
for (const f of files) {
  const r = ts.transpileModule(fs.readFileSync(f, 'utf8'), { compilerOptions: options, fileName: f, reportDiagnostics: true });
  if (r.diagnostics?.length) throw new Error(`${f}: ${ts.flattenDiagnosticMessageText(r.diagnostics[0].messageText, '\n')}`);
  const out = path.join(outDir, 'dist', path.relative(src, f).replace(/\.ts$/, '.js'));
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, r.outputText);
}
console.log(`[gpu-bundle] ${path.basename(pkgDir)}: ${files.length} files`);
