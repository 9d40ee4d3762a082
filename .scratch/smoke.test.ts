import { it, expect } from 'vitest';
import { startTestApi, demoPolicyText, rejection } from '../test/api/helpers.js';
it('smoke', async () => {
  const api = await startTestApi();
  try {
    const r = await api.client.policy('Apply', { text: demoPolicyText() });
    console.log(JSON.stringify(r).slice(0, 600));
    const p = await api.client.policy('GetPort', { name: 'blue-vm1' });
    console.log(JSON.stringify(p));
    const e = await rejection(api.client.policy('CreatePort', { port: { ...(p.port as object), name: 'x', mac: 'zz' } }));
    console.log(e.code, e.details);
    const s = await api.client.agent('GetStatus');
    console.log(JSON.stringify(s));
    const c = await api.client.agent('GetCounters');
    console.log(JSON.stringify(c));
  } finally { await api.close(); }
});
