import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';

/** A drizzle Postgres database on any pg-core driver: `postgres` (postgres-js), PGlite, ... */
export type KeygateDatabase = PgDatabase<PgQueryResultHKT, Record<string, unknown>>;
