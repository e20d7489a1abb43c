export { PostgresAuditSink } from './audit-sink.js';
export {
  connectPostgres,
  type EmbeddedDatabaseOptions,
  EmbeddedDatabaseUnavailableError,
  type KeyDatabase,
  type KeyDatabaseOptions,
  openEmbedded,
  openKeyDatabase,
  type PostgresConnectionOptions,
} from './connect.js';
export { DataDirectoryLockedError } from './data-dir-lock.js';
export type { KeygateDatabase } from './database.js';
export { PostgresKeyStore, type PostgresKeyStoreOptions } from './key-store.js';
export { type MigrationResult, migrate, migrationsFolder } from './migrate.js';
export { apiKeys, auditEvents, pageSessions, usageBatches, usageCounts } from './schema.js';
export { PostgresSessionStore } from './session-store.js';
export { PostgresStoreError, type PostgresStoreOptions } from './store-error.js';
