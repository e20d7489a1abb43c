// The reference app's scopes, declared once: `requireScope('raed:data')` fails to compile.
declare module '@keygate/core' {
  interface Register {
    scopes: 'read:data' | 'write:llm' | 'track:events' | 'read:config' | 'manage:keys';
  }
}

export {};
