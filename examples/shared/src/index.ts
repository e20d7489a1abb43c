import './scopes.js';

export * from './data.js';
export * from './login.js';
export * from './runtime.js';
export * from './serve.js';
export * from './session.js';
