// ESLint for the TypeScript of lib/, test/, examples/ and bench/ (npm run
// lint), with typescript-eslint's type-aware rules over tsconfig.json.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'build-c/', 'bench/results/', 'node_modules/', '.qemu/', '**/*.js', '**/*.mjs'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Passing on what a catch caught is not making up a non-Error reason
      // (only-throw-error allows the same for throw by default).
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
    },
  },
);
