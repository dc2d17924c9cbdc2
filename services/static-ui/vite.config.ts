import { defineConfig } from "vitest/config";

// During `npm run dev`, /ws is proxied to a running gateway (Traefik or ws-gateway) so the
// page and its WebSocket share one origin, exactly as behind Traefik in production.
const gateway = process.env.AISOPOD_GATEWAY ?? "http://127.0.0.1:18000";

export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    assetsDir: "assets",
    sourcemap: false,
    // Keep every asset a file: the CSP allows data: only for images.
    assetsInlineLimit: 0,
  },
  server: {
    host: "127.0.0.1",
    proxy: { "/ws": { target: gateway, ws: true } },
  },
  preview: { host: "127.0.0.1" },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts"],
  },
});
