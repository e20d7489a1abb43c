import './scopes.js';

export * from './data.js';
export * from './runtime.js';
export * from './serve.js';
