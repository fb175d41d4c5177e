// The console's build (npm run build calls it through scripts/build.mjs) and dev server
// (npx vite --config web/vite.config.ts: /api is proxied to a running borgkeep serve).
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  base: '/',
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: false,
  },
  server: {
    port: 5173,
    proxy: { '/api': { target: process.env.BORGKEEP_API ?? 'http://127.0.0.1:8080', changeOrigin: false } },
  },
});
