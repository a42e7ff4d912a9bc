// oidc-provider ships no type declarations; the sandbox (src/sandbox) and the tests use a small surface of it.
declare module "oidc-provider" {
  const Provider: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  export default Provider;
}
