// oidc-provider ships no type declarations; the tests use it through the small surface in oidc-server.ts.
declare module "oidc-provider" {
  const Provider: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  export default Provider;
}
