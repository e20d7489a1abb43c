export {
  createRedisBackends,
  type RedisBackends,
  type RedisBackendsOptions,
} from './backends.js';
export {
  connectRedis,
  connectRedisCluster,
  REDIS_CLIENT_DEFAULTS,
  type RedisClient,
  type RedisLogger,
  RedisTimeoutError,
  reconnectDelay,
} from './client.js';
export { RedisAuthFailureGuard, type RedisAuthFailureGuardOptions } from './failure-guard.js';
export { RedisInvalidationBus, type RedisInvalidationBusOptions } from './invalidation.js';
export {
  RateLimiterUnavailableError,
  type RedisErrorPolicy,
  RedisRateLimiter,
  type RedisRateLimiterOptions,
} from './rate-limiter.js';
