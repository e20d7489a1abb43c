import { defineConfig } from 'drizzle-kit';

/** Generates the migrations shipped in `drizzle/` from `src/schema.ts`; no database needed. */
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/schema.ts',
  out: './drizzle',
});
