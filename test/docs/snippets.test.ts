/**
 * The TypeScript in README.md and docs/ compiles against the current API:
 * every ```ts block is type-checked as a module of its own, strictly. A
 * block fenced ```ts fragment is an excerpt and is left out.
 */
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

import * as ts from 'typescript';

const root = join(__dirname, '..', '..');

interface Snippet {
  /** Where it is, for the failure message: `docs/guide.md:42`. */
  readonly where: string;
  readonly code: string;
}

/** The checked blocks of one Markdown file. */
export function snippetsOf(file: string, text: string): Snippet[] {
  const snippets: Snippet[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== '```ts') {
      continue;
    }
    const start = i + 1;
    let end = start;
    while (end < lines.length && lines[end].trim() !== '```') {
      end++;
    }
    snippets.push({ where: `${file}:${start}`, code: lines.slice(start, end).join('\n') });
    i = end;
  }
  return snippets;
}

function markdownFiles(): string[] {
  const docs = readdirSync(join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => join('docs', name));
  return ['README.md', ...docs];
}

/** Type errors of the snippets, as `file:line: message` lines. */
function typeErrors(snippets: readonly Snippet[]): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'vfu-snippets-'));
  try {
    // `./timer` in a snippet is the example device.
    copyFileSync(join(root, 'examples', 'timer.ts'), join(dir, 'timer.ts'));
    const files = snippets.map((snippet, n) => {
      const file = join(dir, `snippet${n}.ts`);
      // `export {}` makes each block a module, so names cannot clash across blocks.
      writeFileSync(file, `${snippet.code}\nexport {};\n`);
      return { file, snippet };
    });
    const program = ts.createProgram(
      files.map((f) => f.file),
      {
        strict: true,
        noEmit: true,
        noImplicitOverride: true,
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.ES2022,
        moduleResolution: ts.ModuleResolutionKind.Bundler,
        types: ['node', 'jest'],
        typeRoots: [join(root, 'node_modules', '@types')],
        baseUrl: root,
        paths: { 'vfio-user': ['lib/index.ts'], 'vfio-user/client': ['lib/client/index.ts'], 'vfio-user/guest': ['lib/guest/index.ts'], 'vfio-user/virtio': ['lib/virtio/index.ts'] },
      },
    );
    return ts.getPreEmitDiagnostics(program).map((d) => {
      const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
      const owner = files.find((f) => f.file === d.file?.fileName);
      if (owner === undefined || d.file === undefined || d.start === undefined) {
        return `${d.file === undefined ? '' : relative(root, d.file.fileName)}: ${text}`;
      }
      const line = d.file.getLineAndCharacterOfPosition(d.start).line;
      const [file, first] = owner.snippet.where.split(':');
      return `${file}:${Number(first) + line + 1}: ${text}`;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const snippets = markdownFiles().flatMap((file) => snippetsOf(file, readFileSync(join(root, file), 'utf8')));

test('the README and docs have TypeScript blocks to check', () => {
  expect(snippets.filter((s) => s.where.startsWith('README.md')).length).toBeGreaterThanOrEqual(3);
  expect(snippets.length).toBeGreaterThanOrEqual(8);
});

test('every TypeScript block of the README and docs compiles, and a broken one is caught', () => {
  // A canary in the same program proves that errors are found and placed.
  const canary = snippetsOf('canary.md', "text\n```ts fragment\nlet skipped: number = 'x';\n```\n```ts\nconst port = 80;\nconst name: number = 'timer';\n```\n");
  expect(canary).toHaveLength(1);
  expect(typeErrors([...snippets, ...canary])).toEqual(["canary.md:7: Type 'string' is not assignable to type 'number'."]);
});
