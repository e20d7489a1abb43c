import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';

/** A drizzle Postgres database on any driver: `postgres` (postgres-js), PGlite, or another pg-core driver. */
export type KeygateDatabase = PgDatabase<PgQueryResultHKT, Record<string, unknown>>;
