/**
 * Every name the package exports, and every public member of its classes and
 * interfaces, has a TSDoc comment.
 */
import { join } from 'node:path';

import * as ts from 'typescript';

const INDEX = join(__dirname, '..', '..', 'lib', 'index.ts');

function undocumented(): string[] {
  const program = ts.createProgram([INDEX], { strict: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(INDEX);
  const moduleSymbol = source === undefined ? undefined : checker.getSymbolAtLocation(source);
  if (moduleSymbol === undefined) {
    throw new Error('cannot load lib/index.ts');
  }
  const missing: string[] = [];
  const hasDoc = (symbol: ts.Symbol): boolean => symbol.getDocumentationComment(checker).length > 0;
  for (const exported of checker.getExportsOfModule(moduleSymbol)) {
    const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    if (!hasDoc(symbol)) {
      missing.push(exported.name);
    }
    const members = symbol.members === undefined ? [] : [...symbol.members.values()];
    const exportsOfValue =
      symbol.flags & (ts.SymbolFlags.Variable | ts.SymbolFlags.Class)
        ? checker.getPropertiesOfType(checker.getTypeOfSymbolAtLocation(symbol, symbol.valueDeclaration ?? source!))
        : [];
    for (const member of [...members, ...exportsOfValue]) {
      const declaration = member.valueDeclaration ?? member.declarations?.[0];
      if (declaration === undefined || declaration.getSourceFile().fileName.includes('node_modules')) {
        continue;
      }
      const modifiers = ts.getCombinedModifierFlags(declaration);
      const name = ts.getNameOfDeclaration(declaration);
      const hidden = modifiers & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected) || (name !== undefined && ts.isPrivateIdentifier(name));
      if (member.flags & ts.SymbolFlags.TypeParameter || hidden || member.name.startsWith('__') || member.name === 'prototype') {
        continue;
      }
      if (!hasDoc(member) && !ts.isConstructorDeclaration(declaration)) {
        missing.push(`${exported.name}.${member.name}`);
      }
    }
  }
  return missing;
}

test('every exported name and public member has TSDoc', () => {
  expect(undocumented()).toEqual([]);
});
