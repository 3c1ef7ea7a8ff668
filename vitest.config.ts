import { defineConfig } from 'vitest/config';
import swc from 'unplugin-swc';
import { fileURLToPath } from 'node:url';

// SWC instead of Vite's default transform: Nest's dependency injection needs
// `emitDecoratorMetadata`, which only a TypeScript-aware transform emits.
export default defineConfig({
  plugins: [swc.vite({ module: { type: 'es6' } })],
  resolve: {
    alias: {
      '@app/protocol': fileURLToPath(
        new URL('./libs/protocol/src/index.ts', import.meta.url),
      ),
      '@app/sigv4': fileURLToPath(
        new URL('./libs/sigv4/src/index.ts', import.meta.url),
      ),
    },
  },
  test: {
    globals: true,
    root: './',
    include: [
      'apps/**/*.spec.ts',
      'libs/**/*.spec.ts',
      'test/**/*.e2e-spec.ts',
    ],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
