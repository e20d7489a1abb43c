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
export {
  apiKeys,
  auditEvents,
  leakReports,
  pageSessions,
  usageBatches,
  usageCounts,
  webhookAttempts,
  webhookDeliveries,
  webhookEndpoints,
  webhookEvents,
  webhookWorker,
} from './schema.js';
export { PostgresSessionStore } from './session-store.js';
export { PostgresStoreError, type PostgresStoreOptions } from './store-error.js';
export { enqueueWebhooks } from './webhook-outbox.js';
export {
  type OperatorWebhookEndpoint,
  PostgresWebhooks,
  type PostgresWebhooksOptions,
} from './webhooks.js';
