// The agent's version: package.json's, found from this file in agent/ or dist/agent/.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function agentVersion(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      const { name, version } = JSON.parse(readFileSync(pkg, 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (name === 'tenet' && typeof version === 'string') return (cached = version);
    }
    dir = dirname(dir);
  }
  return (cached = 'unknown');
}
