import { parseArgs } from 'node:util';
import {
  type ApiKey,
  type AuditEvent,
  type CreateKeyInput,
  createKeygate,
  isKeygateError,
  type Keygate,
  type KeyUsage,
  type UsageRange,
} from '@keygate/core';
import { migrate, openKeyDatabase } from '@keygate/postgres';
import { createRedisBackends, redisConnectionFromEnv } from '@keygate/redis';
import packageJson from '../package.json' with { type: 'json' };
import { runScan, ScanUsageError } from './scan.js';

export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
}

/** A mistake in the command line: printed with the usage hint, exit code 2. */
class UsageError extends Error {}

const OPTIONS = {
  name: { type: 'string' },
  owner: { type: 'string' },
  type: { type: 'string' },
  env: { type: 'string' },
  scopes: { type: 'string' },
  resource: { type: 'string', multiple: true },
  expires: { type: 'string' },
  rate: { type: 'string' },
  burst: { type: 'string' },
  daily: { type: 'string' },
  'allow-ip': { type: 'string', multiple: true },
  'allow-referrer': { type: 'string', multiple: true },
  'allow-endpoint': { type: 'string', multiple: true },
  grace: { type: 'string' },
  key: { type: 'string' },
  limit: { type: 'string' },
  range: { type: 'string' },
  'include-revoked': { type: 'boolean' },
  git: { type: 'boolean' },
  stdin: { type: 'boolean' },
  report: { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type OptionName = keyof typeof OPTIONS;

interface Command {
  /** The words that name it: `migrate`, `keys create`. */
  name: string;
  /** Its usage, one line per entry (continuations indented under the first). */
  usage: string[];
  /** What it does, for `keygate <command> --help`. */
  summary: string;
  /** The options it accepts besides `--help`; any other is refused. */
  options: OptionName[];
  /** Whether it takes a key ID after its name. */
  takesId: boolean;
  /** Whether it takes any number of paths after its name. */
  takesPaths?: boolean;
}

const COMMANDS: Command[] = [
  {
    name: 'migrate',
    usage: ['keygate migrate [--json]'],
    summary: 'Applies the migrations shipped with @keygate/postgres that have not run yet.',
    options: ['json'],
    takesId: false,
  },
  {
    name: 'keys create',
    usage: [
      'keygate keys create --name N --scopes a,b [--owner O] [--type secret|public] [--env live|test]',
      '                    [--resource website:w1 ...] [--expires ISO-8601]',
      '                    [--rate PER_SECOND] [--burst N] [--daily N]',
      '                    [--allow-ip CIDR ...] [--allow-referrer ORIGIN_PATTERN ...]',
      '                    [--allow-endpoint "METHOD /path/pattern" ...] [--json]',
    ],
    summary: 'Creates a key and prints its ID and its secret, once.',
    options: [
      'name',
      'owner',
      'type',
      'env',
      'scopes',
      'resource',
      'expires',
      'rate',
      'burst',
      'daily',
      'allow-ip',
      'allow-referrer',
      'allow-endpoint',
      'json',
    ],
    takesId: false,
  },
  {
    name: 'keys list',
    usage: ['keygate keys list [--owner O] [--include-revoked] [--limit N] [--json]'],
    summary: 'Lists keys, newest first: prefix and start only, never a secret.',
    options: ['owner', 'include-revoked', 'limit', 'json'],
    takesId: false,
  },
  {
    name: 'keys show',
    usage: ['keygate keys show ID [--json]'],
    summary: 'Shows one key: its settings, last use, expiry and revocation.',
    options: ['json'],
    takesId: true,
  },
  {
    name: 'keys rotate',
    usage: ['keygate keys rotate ID [--grace SECONDS] [--json]'],
    summary:
      'Issues a new secret for the key and prints it, once. The old secret stops working at once,\nor after --grace seconds.',
    options: ['grace', 'json'],
    takesId: true,
  },
  {
    name: 'keys revoke',
    usage: ['keygate keys revoke ID [--json]'],
    summary: 'Revokes the key, immediately and for good.',
    options: ['json'],
    takesId: true,
  },
  {
    name: 'audit',
    usage: ['keygate audit [--key ID] [--limit N] [--json]'],
    summary: 'Prints recent audit events, newest first.',
    options: ['key', 'limit', 'json'],
    takesId: false,
  },
  {
    name: 'usage',
    usage: ['keygate usage KEY [--range 24h|7d|30d] [--json]'],
    summary:
      "Prints a key's requests over the range (default 24h), by hour or by day: served, failed and\nrate limited.",
    options: ['range', 'json'],
    takesId: true,
  },
  {
    name: 'scan',
    usage: ['keygate scan [PATH ...] [--git] [--stdin] [--report] [--json]'],
    summary:
      "Finds this deployment's keys (KEYGATE_PREFIXES) in files (default .), in every commit of the\ngit history (--git) or in stdin (--stdin); prints where, each key's start, type and\nenvironment, and with DATABASE_URL whether it is live; --report reports each as leaked.\nExit code 1 when a live secret key is found (or any secret key, without DATABASE_URL).",
    options: ['git', 'stdin', 'report', 'json'],
    takesId: false,
    takesPaths: true,
  },
];

const ENVIRONMENT = `Environment:
  DATABASE_URL              Postgres to use; without it, the embedded database under .keygate/
                            (which needs @electric-sql/pglite installed)
  REDIS_URL                 Redis to tell running apps about changed keys (cache invalidation)
  REDIS_CLUSTER_NODES       instead of REDIS_URL, for a Redis Cluster: host:port,host:port,...
  KEYGATE_REDIS_TIMEOUT_MS  Longest wait for Redis, in ms (default 500)
  KEYGATE_PEPPER            Secret mixed into key digests (HMAC); must be the apps' own
  KEYGATE_PREFIXES          Key prefixes: a brand (dbdy) or four prefixes, comma-separated
                            (secret live, secret test, public live, public test)`;

const EXIT_CODES =
  'Exit codes: 0 done, 1 failed (e.g. unknown key, database unreachable), 2 bad arguments.';

function usageLines(commands: Command[]): string {
  return commands.flatMap((command) => command.usage.map((line) => `  ${line}`)).join('\n');
}

export const HELP = `keygate ${packageJson.version} — manage API keys

Usage:
${usageLines(COMMANDS)}
  keygate <command> --help
  keygate --version

${ENVIRONMENT}

Secrets are printed once, by create and rotate; nothing else ever shows one.
${EXIT_CODES}
`;

function commandHelp(command: Command): string {
  return `Usage:\n${usageLines([command])}\n\n${command.summary}\n\n${ENVIRONMENT}\n\n${EXIT_CODES}\n`;
}

const USAGE_HINT = "Run 'keygate --help' for usage.";

/** The command `argv` starts with, and the arguments after its name. */
function findCommand(argv: string[]): { command: Command; rest: string[] } | undefined {
  for (const command of COMMANDS) {
    const words = command.name.split(' ');
    if (words.every((word, i) => argv[i] === word)) {
      return { command, rest: argv.slice(words.length) };
    }
  }
  return undefined;
}

/** The options `command` accepts, for `parseArgs`. */
function optionsOf(command: Command): Partial<typeof OPTIONS> {
  return Object.fromEntries(
    [...command.options, 'help' as const].map((name) => [name, OPTIONS[name]]),
  );
}

type Values = ReturnType<
  typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>
>['values'];

function number(value: string | undefined, flag: string, integer: boolean): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (
    value.trim() === '' ||
    !Number.isFinite(parsed) ||
    parsed <= 0 ||
    (integer && !Number.isInteger(parsed))
  ) {
    throw new UsageError(
      `--${flag} must be a positive ${integer ? 'integer' : 'number'} (got ${value})`,
    );
  }
  return parsed;
}

function createInput(values: Values): CreateKeyInput {
  if (!values.name) throw new UsageError('keys create needs --name');
  if (values.scopes === undefined)
    throw new UsageError('keys create needs --scopes (comma-separated)');
  const rate = number(values.rate, 'rate', false);
  const burst = number(values.burst, 'burst', true);
  const daily = number(values.daily, 'daily', true);
  const restrictions = {
    ...(values['allow-ip'] ? { ips: values['allow-ip'] } : {}),
    ...(values['allow-referrer'] ? { referrers: values['allow-referrer'] } : {}),
    ...(values['allow-endpoint'] ? { endpoints: values['allow-endpoint'] } : {}),
  };
  if (values.expires !== undefined && Number.isNaN(Date.parse(values.expires))) {
    throw new UsageError(`--expires must be an ISO-8601 date (got ${values.expires})`);
  }
  return {
    name: values.name,
    ownerId: values.owner,
    type: values.type as CreateKeyInput['type'],
    environment: values.env as CreateKeyInput['environment'],
    scopes: values.scopes
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    resources: values.resource ?? null,
    expiresAt: values.expires ?? null,
    rateLimit:
      rate || burst || daily
        ? {
            ...(rate ? { perSecond: rate } : {}),
            ...(burst ? { burst } : {}),
            ...(daily ? { daily } : {}),
          }
        : null,
    restrictions: Object.keys(restrictions).length > 0 ? restrictions : null,
  };
}

function describeKey(key: ApiKey): string {
  const lines = [
    `id:          ${key.id}`,
    `name:        ${key.name}`,
    `owner:       ${key.ownerId}`,
    `type:        ${key.type} (${key.environment})`,
    `start:       ${key.start}…`,
    `scopes:      ${key.scopes.join(', ') || '(none)'}`,
    `resources:   ${key.resources === null ? 'all' : key.resources.join(', ')}`,
    `created:     ${key.createdAt.toISOString()}`,
    `last used:   ${key.lastUsedAt?.toISOString() ?? 'never'}`,
    `expires:     ${key.expiresAt?.toISOString() ?? 'never'}`,
  ];
  if (key.revokedAt) lines.push(`revoked:     ${key.revokedAt.toISOString()}`);
  if (key.rateLimit) lines.push(`rate limit:  ${JSON.stringify(key.rateLimit)}`);
  if (key.restrictions) lines.push(`restricted:  ${JSON.stringify(key.restrictions)}`);
  return lines.join('\n');
}

function describeEvent(event: AuditEvent): string {
  return [
    event.at.toISOString(),
    event.action,
    event.outcome,
    event.reason ?? '-',
    event.keyStart ?? event.keyId ?? '-',
    event.method && event.path ? `${event.method} ${event.path}` : '-',
    event.ip ?? '-',
  ].join('  ');
}

const RANGES: readonly UsageRange[] = ['24h', '7d', '30d'];

function usageRange(value: string | undefined): UsageRange {
  if (value === undefined) return '24h';
  if (!RANGES.includes(value as UsageRange)) {
    throw new UsageError(`--range must be one of ${RANGES.join(', ')} (got ${value})`);
  }
  return value as UsageRange;
}

/** Requests per bucket as a table, oldest first, with the totals. */
function describeUsage(usage: KeyUsage): string {
  const hourly = usage.interval === 'hour';
  const label = (start: Date) =>
    hourly ? start.toISOString().slice(0, 16).replace('T', ' ') : start.toISOString().slice(0, 10);
  const row = (first: string, counts: [number, number, number]) =>
    `${first.padEnd(18)}${String(counts[0]).padStart(8)}${String(counts[1]).padStart(8)}${String(counts[2]).padStart(14)}`;
  const total: [number, number, number] = [0, 0, 0];
  const lines = usage.buckets.map((bucket) => {
    total[0] += bucket.served;
    total[1] += bucket.failed;
    total[2] += bucket.rateLimited;
    return row(label(bucket.start), [bucket.served, bucket.failed, bucket.rateLimited]);
  });
  return [
    `Usage of ${usage.keyId}, last ${usage.range ?? 'window'} by ${usage.interval} (UTC)`,
    `${(hourly ? 'hour' : 'day').padEnd(18)}${'served'.padStart(8)}${'failed'.padStart(8)}${'rate limited'.padStart(14)}`,
    ...lines,
    row('total', total),
  ].join('\n');
}

/** Longest a rotate or revoke waits for Redis; past it, the change is made and apps see it when their cache expires. */
const REDIS_WAIT_MS = 3_000;

/** Runs one CLI invocation; returns the exit code. */
export async function run(argv: string[], io: CliIO): Promise<number> {
  const refuse = (message: string): number => {
    io.err(`keygate: ${message}\n${USAGE_HINT}\n`);
    return 2;
  };
  const [first] = argv;
  if (first === undefined) {
    io.out(HELP);
    return 2;
  }
  if (first === '--version' || first === '-v') {
    if (argv.length > 1) return refuse(`${first} takes no arguments`);
    io.out(`${packageJson.version}\n`);
    return 0;
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    const topic = argv.slice(1);
    if (topic.length === 0) {
      io.out(HELP);
      return 0;
    }
    const found = findCommand(topic);
    if (!found || found.rest.length > 0) return refuse(`unknown command '${topic.join(' ')}'`);
    io.out(commandHelp(found.command));
    return 0;
  }
  const found = findCommand(argv);
  if (!found) {
    if (first.startsWith('-'))
      return refuse(`Unknown option '${first}': options go after the command`);
    const words = argv.findIndex((arg) => arg.startsWith('-'));
    return refuse(`unknown command '${argv.slice(0, words === -1 ? undefined : words).join(' ')}'`);
  }

  const { command: spec, rest } = found;
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: rest,
      options: optionsOf(spec),
      allowPositionals: true,
      strict: true,
    }) as { values: Values; positionals: string[] });
  } catch (error) {
    const unknown = /^Unknown option '([^']+)'/.exec((error as Error).message);
    return refuse(
      unknown
        ? `Unknown option '${unknown[1]}' for '${spec.name}' (see 'keygate ${spec.name} --help')`
        : (error as Error).message,
    );
  }
  if (values.help) {
    io.out(commandHelp(spec));
    return 0;
  }
  const [command, sub] = spec.name.split(' ');
  if (spec.takesId && positionals.length === 0) return refuse(`${spec.name} needs a key ID`);
  if (!spec.takesPaths && positionals.length > (spec.takesId ? 1 : 0)) {
    return refuse(`unexpected argument '${positionals.at(-1)}' for '${spec.name}'`);
  }
  const id = positionals[0] ?? '';
  const json = values.json ?? false;
  const print = (data: unknown, text: string) =>
    io.out(json ? `${JSON.stringify(data)}\n` : `${text}\n`);

  if (command === 'scan') {
    const request = {
      paths: positionals,
      git: values.git ?? false,
      stdin: values.stdin ?? false,
      report: values.report ?? false,
      json,
    };
    return runScan(request, io).catch((error: unknown) => {
      if (error instanceof ScanUsageError) return refuse(error.message);
      if (json) io.out(`${JSON.stringify({ error: (error as Error).message })}\n`);
      io.err(`keygate: ${(error as Error).message}\n`);
      return 1;
    });
  }

  let keygate: Keygate | undefined;
  let close = async () => {};
  try {
    const input = command === 'keys' && sub === 'create' ? createInput(values) : undefined;
    const limit = number(values.limit, 'limit', true);
    const range = usageRange(values.range);
    const grace = values.grace === undefined ? 0 : Number(values.grace);
    if (!Number.isInteger(grace) || grace < 0) {
      throw new UsageError(`--grace must be a whole number of seconds (got ${values.grace})`);
    }

    const redisConnection = redisConnectionFromEnv(io.env);
    const redis = redisConnection
      ? createRedisBackends({
          ...redisConnection,
          logger: { warn: (message) => io.err(`${message}\n`), info: () => {} },
        })
      : null;
    close = async () => {
      await redis?.close();
    };
    // Running apps learn of a rotation or revocation over Redis: connect before announcing one.
    if (redis && command === 'keys' && (sub === 'rotate' || sub === 'revoke')) {
      await redis.ready(REDIS_WAIT_MS);
    }
    const database = await openKeyDatabase({
      databaseUrl: io.env.DATABASE_URL || undefined,
      migrate: command !== 'migrate',
    });
    close = async () => {
      await redis?.close();
      await database.close();
    };
    keygate = createKeygate({
      // Keys made here must be digested as the apps digest them.
      pepper: io.env.KEYGATE_PEPPER || undefined,
      store: database.store,
      auditSinks: [database.auditSink],
      limiter: false,
      cache: false,
      ...(redis ? { invalidation: redis.invalidation } : {}),
    });
    const opened = keygate;
    close = async () => {
      await opened.close();
      await redis?.close();
      await database.close();
    };
    const actor = { id: 'cli' };

    if (command === 'migrate') {
      const { applied } = await migrate(database.db);
      print(
        { migrated: true, applied },
        applied === 0 ? 'The database is up to date.' : `Applied ${applied} migration(s).`,
      );
    } else if (command === 'audit') {
      const events = await database.auditSink.query({ keyId: values.key, limit: limit ?? 50 });
      print(
        { events },
        events.length === 0 ? 'No audit events.' : events.map(describeEvent).join('\n'),
      );
    } else if (command === 'usage') {
      const usage = await keygate.keys.usage(id, { range });
      print(usage, describeUsage(usage));
    } else if (sub === 'create') {
      const issued = await keygate.keys.create(input!, actor);
      print(
        { ...issued.key, secret: issued.secret },
        `${describeKey(issued.key)}\n\nsecret:      ${issued.secret}\n\nStore the secret now: it is not shown again.`,
      );
    } else if (sub === 'list') {
      const keys = await keygate.keys.list({
        ownerId: values.owner,
        includeRevoked: values['include-revoked'] ?? false,
        limit: limit ?? 100,
      });
      print(
        { keys },
        keys.length === 0
          ? 'No keys.'
          : keys
              .map(
                (k) =>
                  `${k.id}  ${k.start}…  ${k.type}/${k.environment}  ${k.name}  [${k.scopes.join(',')}]${k.revokedAt ? '  revoked' : ''}`,
              )
              .join('\n'),
      );
    } else if (sub === 'show') {
      const key = await keygate.keys.get(id);
      print(key, describeKey(key));
    } else if (sub === 'rotate') {
      const issued = await keygate.keys.rotate(id, { gracePeriodSeconds: grace }, actor);
      print(
        { ...issued.key, secret: issued.secret },
        `Rotated ${issued.key.id}${grace > 0 ? ` (the old secret works for ${grace} more seconds)` : ''}.\n\nsecret:      ${issued.secret}\n\nStore the secret now: it is not shown again.`,
      );
    } else if (sub === 'revoke') {
      const key = await keygate.keys.revoke(id, actor);
      print({ id: key.id, revokedAt: key.revokedAt }, `Revoked ${key.id}.`);
    }
    await close();
    return 0;
  } catch (error) {
    await close().catch(() => {});
    if (error instanceof UsageError) {
      io.err(`keygate: ${error.message}\nRun 'keygate --help' for usage.\n`);
      return 2;
    }
    const message = isKeygateError(error)
      ? error.message
      : `${(error as Error).message ?? String(error)}`;
    if (json) io.out(`${JSON.stringify({ error: message })}\n`);
    io.err(`keygate: ${message}\n`);
    return 1;
  }
}
