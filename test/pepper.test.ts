/**
 * `KEYGATE_PEPPER`, read by the reference app and the CLI over one Postgres database: keys made
 * before the pepper keep working after it is introduced, keys made with it need it.
 */
import { run } from 'keygate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime, type Runtime } from '../examples/shared/src/runtime.js';
import { adapters, type RunningApp, startApp } from './conformance/harness.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';

const PEPPER = 'pepper-for-tests-0123456789';

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database?.close());

/** `keygate keys create ... --json` in this process; the created key's id and secret. */
async function createWithCli(
  env: NodeJS.ProcessEnv,
  name: string,
): Promise<{ code: number; id?: string; secret?: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await run(['keys', 'create', '--name', name, '--scopes', 'read:data', '--json'], {
    out: (text) => {
      stdout += text;
    },
    err: (text) => {
      stderr += text;
    },
    env,
  });
  return code === 0 ? { code, ...JSON.parse(stdout), stderr } : { code, stderr };
}

describe.each(adapters)('$name reference app with KEYGATE_PEPPER', (adapter) => {
  const apps: Array<{ app: RunningApp; runtime: Runtime }> = [];
  afterAll(async () => {
    for (const { app, runtime } of apps.splice(0)) {
      await app.close();
      await runtime.close();
    }
  });

  async function serve(env: NodeJS.ProcessEnv): Promise<(secret: string) => Promise<number>> {
    const runtime = await openRuntime(env, { authFailureLimit: false });
    const app = await startApp(adapter, runtime.keygate);
    apps.push({ app, runtime });
    return async (secret) => {
      const response = await fetch(`${app.origin}/v1/websites/w_1/analytics`, {
        headers: { 'x-api-key': secret },
      });
      return response.status;
    };
  }

  it('keys made before the pepper keep working; keys made with it need it', async () => {
    const plain = { DATABASE_URL: database.url };
    const peppered = { ...plain, KEYGATE_PEPPER: PEPPER };
    const before = await createWithCli(plain, `before ${adapter.name}`);
    expect(before.code).toBe(0);

    const withPepper = await serve(peppered);
    expect(await withPepper(before.secret!)).toBe(200);
    const after = await createWithCli(peppered, `after ${adapter.name}`);
    expect(after.code).toBe(0);
    expect(await withPepper(after.secret!)).toBe(200);

    const [row] =
      await database.sql`select digest_version from keygate_api_keys where id = ${after.id!}`;
    expect(row?.digest_version).toBe(1);
    const withoutPepper = await serve(plain);
    expect(await withoutPepper(after.secret!)).toBe(401);
    expect(await withoutPepper(before.secret!)).toBe(200);
  });

  it('a pepper too short to be a secret is refused, by the CLI and the app', async () => {
    const weak = { DATABASE_URL: database.url, KEYGATE_PEPPER: 'short' };
    const refused = await createWithCli(weak, 'weak');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('the pepper must be at least 16 characters');
    await expect(openRuntime(weak)).rejects.toThrow('the pepper must be at least 16 characters');
  });
});
