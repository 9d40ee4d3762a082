import { defineConfig } from 'vitest/config';
export default defineConfig({ test: { include: ['.scratch/**/*.test.ts', 'test/api/**/*.test.ts'], pool: 'forks', testTimeout: 60000 } });
