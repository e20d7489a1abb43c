export { type CliIO, HELP, run } from './cli.js';
