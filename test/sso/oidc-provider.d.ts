// oidc-provider 8 ships no types; the tests use a few of its calls.
declare module 'oidc-provider';
