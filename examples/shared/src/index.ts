import './scopes.js';

export * from './data.js';
export * from './session.js';
