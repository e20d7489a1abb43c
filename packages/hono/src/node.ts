/** `@keygate/hono/node`: shutting down a `@hono/node-server` server on time (Node only, so never in a Worker bundle). */
export * from '@keygate/core/node';
