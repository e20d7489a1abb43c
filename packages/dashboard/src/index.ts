export {
  createKeyPage,
  type KeyDashboardOptions,
  type KeyPage,
} from './dashboard.js';
export type { DashboardConfig, PageRequest, PageResponse } from './shell.js';
export { MAX_SIGN_IN_BODY } from './sign-in.js';
