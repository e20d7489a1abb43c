/**
 * SPEC §9 for a framework line keygate supports: the packed adapter installed with npm into a
 * fresh project, used from CommonJS JavaScript, ESM JavaScript and TypeScript (checked with
 * `nodenext` and `bundler` resolution, skipLibCheck off, then compiled and run), on every Node.js
 * line, each app answering real HTTP requests. One test file per framework, so that the two
 * workers share the lines.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import path from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { cleanEnv, createProject, TSCONFIGS, typeCheck } from './support.js';

const { dir, tarballs, nodes } = inject('external');

export interface Framework {
  name: string;
  /** Folder of `apps/` with its app in four forms. */
  fixtures: 'express' | 'koa' | 'hono';
  adapter: '@keygate/express' | '@keygate/koa' | '@keygate/hono';
  /** What a user of that line has installed. */
  specs: string[];
}

/** Each app: JavaScript as written, and TypeScript as its nodenext check compiled it into `build/`. */
const APPS = ['app.cjs', 'app.mjs', 'build/app.cjs', 'build/app.mjs'];

interface Started {
  port: number;
  keyId: string;
  /** A key with `read:data`. */
  secret: string;
  /** A key without it. */
  other: string;
}

/** The app's first stdout line (where it listens, and its keys), or its output if it died first. */
function started(child: ChildProcessWithoutNullStreams): Promise<Started> {
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail('did not start within 60 s'), 60_000);
    const fail = (why: string) => {
      clearTimeout(timer);
      reject(new Error(`${why}\nstdout: ${stdout}\nstderr: ${stderr}`));
    };
    child.once('exit', (code) => fail(`exited with code ${code}`));
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const line = stdout.indexOf('\n');
      if (line === -1) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      resolve(JSON.parse(stdout.slice(0, line)) as Started);
    });
  });
}

function exited(child: ChildProcessWithoutNullStreams): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/** Starts `script` on `node`, makes the requests a user would, and asks it to stop. */
async function checkApp(node: string, project: string, script: string): Promise<void> {
  const child = spawn(node, [script], { cwd: project, env: cleanEnv() });
  let code: number | null;
  try {
    const app = await started(child);
    const url = `http://127.0.0.1:${app.port}/v1/data`;

    const anonymous = await fetch(url);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer realm="api"');
    expect(await anonymous.json()).toEqual({
      success: false,
      error: 'Authentication required',
      code: 'AUTH_REQUIRED',
    });

    const allowed = await fetch(url, { headers: { authorization: `Bearer ${app.secret}` } });
    expect(allowed.status).toBe(200);
    // The handler read the key from the framework's context: `req.apiKey`, `ctx.state.apiKey`, `c.get('apiKey')`.
    expect(await allowed.json()).toEqual({
      success: true,
      data: { keyId: app.keyId, scopes: ['read:data'] },
    });
    expect(allowed.headers.get('x-ratelimit-limit')).toBe('10000');
    expect(allowed.headers.get('x-ratelimit-remaining')).toBe('9999');
    expect(Number(allowed.headers.get('x-ratelimit-reset'))).toBeGreaterThan(Date.now() / 1000);

    const denied = await fetch(url, { headers: { 'x-api-key': app.other } });
    expect(denied.status).toBe(403);
    expect(denied.headers.get('www-authenticate')).toBe(
      'Bearer realm="api", error="insufficient_scope", scope="read:data"',
    );
    expect(await denied.json()).toMatchObject({ success: false, code: 'INSUFFICIENT_SCOPE' });

    // The key-management page and its script, served from the module `@keygate/dashboard` was built with.
    const page = await fetch(`http://127.0.0.1:${app.port}/dashboard`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const script = /<script type="module" src="([^"]+)"/.exec(await page.text())?.[1];
    expect(script).toMatch(/^\/dashboard\/assets\/.+\.js$/);
    const asset = await fetch(`http://127.0.0.1:${app.port}${script}`);
    expect(asset.status).toBe(200);
    expect((await asset.arrayBuffer()).byteLength).toBeGreaterThan(1000);
    // Its sign-in: the form, and a key that cannot manage keys refused on it without a session.
    const signIn = `http://127.0.0.1:${app.port}/login`;
    expect((await fetch(signIn)).status).toBe(200);
    const refused = await fetch(signIn, {
      method: 'POST',
      redirect: 'manual',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'sec-fetch-site': 'same-origin',
      },
      body: new URLSearchParams({ key: app.secret }).toString(),
    });
    expect(refused.status).toBe(403);
    expect(refused.headers.get('set-cookie')).toBeNull();
    expect(await refused.text()).toContain('needs the manage:keys scope');
  } finally {
    // Closing stdin is the app's signal to close its server and keygate, then exit on its own.
    child.stdin.end();
    code = await exited(child);
  }
  expect(code, 'the app exits by itself once closed').toBe(0);
}

/**
 * Registers the suites of `frameworks`: their projects are installed side by side from the
 * start, and each line's tests wait for their own.
 */
export function describeFrameworks(frameworks: Framework[]): void {
  const projects = new Map(
    frameworks.map((framework) => {
      const project = createProject(
        path.join(dir, framework.name.toLowerCase().replace(' ', '')),
        framework.fixtures,
        [
          tarballs['@keygate/core']!,
          tarballs[framework.adapter]!,
          tarballs['@keygate/dashboard']!,
          ...framework.specs,
          '@types/node@20',
        ],
      );
      // Reported by the tests that await it, not as an unhandled rejection.
      project.catch(() => {});
      return [framework.name, project] as const;
    }),
  );

  describe.each(frameworks)('$name', (framework) => {
    let project: string;
    beforeAll(async () => {
      project = await projects.get(framework.name)!;
    });

    it.each(Object.entries(TSCONFIGS))(
      'TypeScript, %s: no error with skipLibCheck off',
      async (_, config) => {
        const result = await typeCheck(project, config);
        expect(result.stdout + result.stderr).toBe('');
        expect(result.code).toBe(0);
      },
    );

    describe.each(nodes)('on Node $major', (node) => {
      it.each(APPS)(
        '%s: 401 without a key, 200 with one, 403 without the scope; the page',
        (script) => checkApp(node.path, project, script),
      );
    });
  });
}
