export {
  createRedisBackends,
  type RedisBackends,
  type RedisBackendsOptions,
  type RedisConnectionFromEnv,
  type RedisLimitsMode,
  redisConnectionFromEnv,
} from './backends.js';
export {
  connectRedis,
  connectRedisCluster,
  isCluster,
  parseRedisClusterNodes,
  REDIS_CLIENT_DEFAULTS,
  type RedisClient,
  type RedisLogger,
  reconnectDelay,
  whenReady,
} from './client.js';
export { RedisAuthFailureGuard, type RedisAuthFailureGuardOptions } from './failure-guard.js';
export {
  RedisInvalidationBus,
  type RedisInvalidationBusOptions,
  SUBSCRIBER_CONNECTION_NAME,
} from './invalidation.js';
export {
  LeasedRedisRateLimiter,
  type LeasedRedisRateLimiterOptions,
} from './leased-rate-limiter.js';
export {
  RedisNodeHealth,
  type RedisNodeHealthOptions,
  RedisNodeUnavailableError,
} from './node-health.js';
export type { PolicyStateField } from './rate-limit-script.js';
export {
  RateLimiterUnavailableError,
  type RedisErrorPolicy,
  RedisRateLimiter,
  type RedisRateLimiterOptions,
} from './rate-limiter.js';
