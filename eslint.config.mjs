import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'cdk.out/**', 'node_modules/**', 'coverage/**', '**/*.js', '**/*.mjs', 'bench/.work/**', 'testing/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  // One-way layout: lib/ (synth time) may import lambda/shared/; lambda/ (run time) never imports lib/ or CDK code,
  // and lambda/shared/ imports nothing of the project outside itself.
  {
    files: ['lambda/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', {
        patterns: [
          { group: ['**/lib', '**/lib/**', '**/bin/**'], message: 'lambda/ never imports lib/ or bin/: move what both need to lambda/shared/.' },
          { group: ['aws-cdk-lib', 'aws-cdk-lib/**', 'constructs'], message: 'handlers run without CDK code.' },
        ],
      }],
    },
  },
  {
    files: ['lambda/shared/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', {
        patterns: [
          { group: ['../*', '../**'], message: 'lambda/shared/ imports nothing outside itself (it is shared by lib/, the handlers and the CLI).' },
          { group: ['aws-cdk-lib', 'aws-cdk-lib/**', 'constructs'], message: 'lambda/shared/ runs in handlers too: no CDK code.' },
        ],
      }],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off' },
  },
);
