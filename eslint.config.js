// Lint is part of `npm test`. The rule that matters most here: src/core stays pure (no I/O, no SDKs, no edge layers).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.stryker-tmp*/**', 'reports/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['node:*', 'fs', 'http', 'https', 'net', 'crypto', 'child_process'], message: 'core is pure: no Node I/O modules' },
          { group: ['**/adapters/**', '**/http/**', '**/cli/**', '**/app/**', '**/config/**', '../main.js'], message: 'core must not depend on outer layers' },
          { group: ['express', 'jose', 'openid-client', 'winston', '@gitbeaker/*', '@peculiar/*', 'prom-client', 'yaml', 'commander'], message: 'core imports no SDKs' },
        ],
      }],
    },
  },
  {
    // One Clock: use cases and the pure core get the time from deps.clock or an argument, never from the system.
    files: ['src/core/**/*.ts', 'src/app/**/*.ts'],
    rules: {
      'no-restricted-syntax': ['error',
        { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'take the time from the Clock port (deps.clock.now()) or an argument' },
        { selector: "CallExpression[callee.object.name='Date'][callee.property.name='now']", message: 'take the time from the Clock port (deps.clock.now()) or an argument' },
      ],
    },
  },
);
