import type { CallbackFailure, CallbackOutcome } from "./callback.js";

/** HTML-escape a value for text and attribute positions. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** The page's words: a heading and short paragraphs. Plain text; escaped when rendered. */
export interface CallbackPageText {
  title: string;
  paragraphs: string[];
  ok: boolean;
}

const START_AGAIN = "Go back to the app and start connecting again.";

/** What to tell the person, in plain words, for each outcome. No token, code or state ever appears here. */
export function callbackPageText(outcome: CallbackOutcome): CallbackPageText {
  if (outcome.ok) {
    const { connection, providerName, tenantName } = outcome;
    const who = connection.account ? `Your ${providerName} account ${connection.account}` : `Your ${providerName} account`;
    return {
      ok: true,
      title: `${providerName} connected`,
      paragraphs: [`${who} is now connected to ${tenantName}.`, "You can close this tab."],
    };
  }
  const provider = outcome.providerName ?? "the provider";
  const words: Record<CallbackFailure, [string, string]> = {
    state_missing: ["This link is not valid", `This page was opened without a sign-in request from capvault, so nothing was connected. ${START_AGAIN}`],
    state_unknown: ["This link is not valid", `We don't recognise this sign-in request, so nothing was connected. ${START_AGAIN}`],
    state_expired: ["This link has expired", `The sign-in request took too long and expired, so nothing was connected. ${START_AGAIN}`],
    state_replayed: ["This link was already used", "Each sign-in link works only once. If your account isn't connected yet, go back to the app and start again."],
    redirect_uri_mismatch: ["Wrong address", `This sign-in answer arrived at a different address than the one it was started for, so it was refused. ${START_AGAIN}`],
    issuer_mismatch: ["Unexpected sign-in service", `This answer did not come from ${provider}, so it was refused for your safety. ${START_AGAIN}`],
    verifier_missing: ["Sign-in incomplete", `The sign-in request is missing information it needs, so nothing was connected. ${START_AGAIN}`],
    connection_gone: ["Connection no longer waiting", `This connection was removed or already completed. ${START_AGAIN}`],
    provider_denied: ["Access not granted", `You chose not to give access to your ${provider} account, so nothing was connected. If that was a mistake, go back to the app and connect again.`],
    provider_error: ["Sign-in did not finish", `${provider} could not complete the sign-in${outcome.providerError ? ` (it said: ${outcome.providerError})` : ""}, so nothing was connected. ${START_AGAIN}`],
    token_exchange_failed: ["Sign-in did not finish", `${provider} did not accept the sign-in${outcome.providerError ? ` (it said: ${outcome.providerError})` : ""}, so nothing was connected. ${START_AGAIN}`],
    provider_unavailable: ["Service unavailable", `We could not reach ${provider} to finish the sign-in. Please try again in a few minutes.`],
    internal: ["Something went wrong", `Your account was not connected because of a problem on our side. Please try again; if it keeps happening, contact your administrator.`],
  };
  const [title, text] = words[outcome.failure];
  return { ok: false, title, paragraphs: [text] };
}

/** A small, self-contained, accessible HTML page (inline CSS, no external resources, no scripts). */
export function renderCallbackPage(text: CallbackPageText): string {
  const accent = text.ok ? "#1a7f37" : "#b42318";
  const icon = text.ok ? "&#10003;" : "!";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(text.title)} · capvault</title>
<style>
  :root { color-scheme: light dark; }
  body { margin: 0; min-height: 100vh; display: grid; place-items: center; background: #f6f7f9; color: #1f2328;
         font: 17px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
  main { max-width: 32rem; margin: 1.5rem; padding: 2rem 2.25rem; background: #fff; border-radius: 12px;
         box-shadow: 0 1px 3px rgba(0,0,0,.12), 0 8px 24px rgba(0,0,0,.06); border-top: 6px solid ${accent}; }
  .icon { width: 2.5rem; height: 2.5rem; border-radius: 50%; display: grid; place-items: center; font-weight: 700;
          font-size: 1.3rem; color: #fff; background: ${accent}; }
  h1 { font-size: 1.45rem; margin: 1rem 0 .5rem; }
  p { margin: .5rem 0; }
  .brand { margin-top: 1.5rem; font-size: .85rem; color: #59636e; }
  @media (prefers-color-scheme: dark) {
    body { background: #0d1117; color: #e6edf3; } main { background: #161b22; } .brand { color: #9198a1; }
  }
</style>
</head>
<body>
<main role="${text.ok ? "status" : "alert"}" aria-labelledby="title">
  <div class="icon" aria-hidden="true">${icon}</div>
  <h1 id="title">${escapeHtml(text.title)}</h1>
${text.paragraphs.map((p) => `  <p>${escapeHtml(p)}</p>`).join("\n")}
  <p class="brand">capvault</p>
</main>
</body>
</html>
`;
}
