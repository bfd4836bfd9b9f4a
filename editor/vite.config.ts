import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// The bundle is committed into the Python package and CI rebuilds it and compares, so the build
// must be deterministic: content-hashed names, no timestamps, no source maps.
export default defineConfig({
  plugins: [react()],
  base: "./",
  build: {
    outDir: "../server/static/editor",
    emptyOutDir: true,
    sourcemap: false,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 1000,
  },
  server: { proxy: { "/api": "http://127.0.0.1:8188", "/ws": { target: "ws://127.0.0.1:8188", ws: true } } },
  test: { include: ["tests/**/*.test.ts"], environment: "node" },
});
