// A real browser against the example apps: headless Chromium (Debian's) driven by
// playwright-core. scripts/browser-test.sh starts session-app and hybrid-app on loopback and
// passes their URLs in SESSION_APP_URL and HYBRID_APP_URL; this file starts the "attacker", a
// second origin (same host, another port) serving a form that POSTs to the apps.
//
// Checks: the form login, the session cookie invisible to document.cookie (HttpOnly), a reload
// staying signed in, logout, a cross-origin form POST refused with 403 (OWASP CSRF Prevention
// Cheat Sheet, Fetch Metadata), and hybrid-app's cookie transport with a transparent refresh
// after the access token expired. `__Host-` cookies need Secure: Chromium treats
// http://127.0.0.1 as a secure context, which this test relies on (and so proves).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { chromium } from "playwright-core";

const SESSION_APP = required("SESSION_APP_URL");
const HYBRID_APP = required("HYBRID_APP_URL");
const ACCESS_TTL_SECS = Number(process.env.HYBRID_ACCESS_TTL_SECS ?? "2");

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run scripts/browser-test.sh`);
  return value.replace(/\/$/, "");
}

let browser;
let attacker;
let attackerUrl;

before(async () => {
  // playwright starts Chromium on a fresh, empty temporary profile (--user-data-dir) each run.
  browser = await chromium.launch({
    timeout: 60_000,
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  // The other origin: GET /?target=URL&fields=a=b&... serves a form that posts itself there.
  attacker = http.createServer((request, response) => {
    const url = new URL(request.url, "http://attacker");
    const target = url.searchParams.get("target") ?? "";
    const fields = [...new URLSearchParams(url.searchParams.get("fields") ?? "")]
      .map(([name, value]) => `<input type="hidden" name="${escape(name)}" value="${escape(value)}">`)
      .join("");
    response.writeHead(200, { "content-type": "text/html" });
    response.end(`<!doctype html><title>attacker</title>
<form id="f" method="post" action="${escape(target)}">${fields}<button>win a prize</button></form>`);
  });
  await new Promise((resolve) => attacker.listen(0, "127.0.0.1", resolve));
  attackerUrl = `http://127.0.0.1:${attacker.address().port}`;
});

after(async () => {
  await browser?.close();
  // When `before` failed half-way there is no attacker server: resolve at once rather than wait
  // for a close callback that never comes (node's runner would then hang instead of failing).
  if (attacker) {
    attacker.closeAllConnections();
    await new Promise((resolve) => attacker.close(resolve));
  }
});

function escape(text) {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/// Submits the attacker's form to `target` from the attacker's origin, in `context` (which holds
/// the victim's cookies); returns the status the app answered.
async function crossOriginPost(context, target, fields = "") {
  const page = await context.newPage();
  const query = new URLSearchParams({ target, fields });
  await page.goto(`${attackerUrl}/?${query}`);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url() === target && r.request().method() === "POST"),
    page.click("#f button"),
  ]);
  const headers = response.request().headers();
  // The page is not closed here: Chromium 156 with playwright-core 1.64 sometimes never answers
  // a page.close() right after a cross-origin form navigation; the test's context.close()
  // disposes of it instead.
  return { status: response.status(), origin: headers.origin };
}

async function fetchStatus(page, path, init = {}) {
  return page.evaluate(
    async ([path, init]) => {
      const response = await fetch(path, init);
      return { status: response.status, body: await response.text() };
    },
    [path, init],
  );
}

test("session-app: form login, HttpOnly cookie, reload, cross-origin POST refused, logout", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${SESSION_APP}/`);
  await page.fill("input[name=username]", "alice");
  await page.fill("input[name=password]", "alice-password-1");
  await Promise.all([page.waitForURL(`${SESSION_APP}/`), page.click("button[type=submit]")]);
  await page.waitForSelector("text=Signed in as alice");

  // The __Host- cookie was accepted over http on loopback (a secure context), with its flags.
  const cookies = await context.cookies(SESSION_APP);
  const session = cookies.find((c) => c.name === "__Host-session");
  assert.ok(session, `no __Host-session cookie in ${JSON.stringify(cookies.map((c) => c.name))}`);
  assert.equal(session.httpOnly, true);
  assert.equal(session.secure, true);
  assert.equal(session.sameSite, "Lax");
  assert.equal(session.path, "/");
  // Invisible to script: document.cookie does not contain it.
  const visible = await page.evaluate(() => document.cookie);
  assert.ok(!visible.includes("__Host-session"), `document.cookie = ${visible}`);
  assert.ok(!visible.includes(session.value));

  // A reload stays signed in.
  await page.reload();
  await page.waitForSelector("text=Signed in as alice");
  assert.equal((await fetchStatus(page, "/me")).status, 200);

  // Another origin's forms: logout and login CSRF are refused, and the session survives.
  const forgedLogout = await crossOriginPost(context, `${SESSION_APP}/logout`);
  assert.equal(forgedLogout.origin, attackerUrl, "the form really came from another origin");
  assert.equal(forgedLogout.status, 403);
  const forgedLogin = await crossOriginPost(
    context,
    `${SESSION_APP}/login`,
    "username=admin&password=admin-password-1",
  );
  assert.equal(forgedLogin.status, 403);
  await page.reload();
  await page.waitForSelector("text=Signed in as alice");

  // Logout: back to the form, the cookie gone, the old session dead.
  await Promise.all([page.waitForURL(`${SESSION_APP}/`), page.click("form[action='/logout'] button")]);
  await page.waitForSelector("form[action='/login']");
  const after = await context.cookies(SESSION_APP);
  assert.ok(!after.some((c) => c.name === "__Host-session"), "the cookie survived logout");
  assert.equal((await fetchStatus(page, "/me")).status, 401);
  // Replaying the old cookie does not resume the session (ASVS 3.3.1).
  await context.addCookies([{ ...session }]);
  assert.equal((await fetchStatus(page, "/me")).status, 401);
  await context.close();
});

test("hybrid-app: cookie transport, HttpOnly cookies, transparent refresh, CSRF, logout", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${HYBRID_APP}/`);
  await page.fill("input[name=username]", "alice");
  await page.fill("input[name=password]", "alice-password-1");
  await page.click("#login button");
  await page.waitForFunction(() => document.getElementById("out").textContent.startsWith("200"));
  assert.match(await page.textContent("#out"), /"user":\s*"alice"/);

  const cookies = await context.cookies(HYBRID_APP);
  const access = cookies.find((c) => c.name === "__Host-access");
  const refresh = cookies.find((c) => c.name === "__Host-refresh");
  assert.ok(access && refresh, `cookies: ${JSON.stringify(cookies.map((c) => c.name))}`);
  for (const cookie of [access, refresh]) {
    assert.equal(cookie.httpOnly, true, cookie.name);
    assert.equal(cookie.secure, true, cookie.name);
    assert.equal(cookie.path, "/", cookie.name);
  }
  const visible = await page.evaluate(() => document.cookie);
  assert.equal(visible, "", `document.cookie = ${visible}`);

  await page.reload();
  const me = await fetchStatus(page, "/me");
  assert.equal(me.status, 200);
  assert.match(me.body, /alice/);

  // Let the access token expire (zero leeway), then call /me with plain fetch, no retry logic:
  // the layer refreshes transparently and answers 200 with new cookies.
  await page.waitForTimeout((ACCESS_TTL_SECS + 1.5) * 1000);
  const refreshed = await fetchStatus(page, "/me");
  assert.equal(refreshed.status, 200, refreshed.body);
  const renewed = await context.cookies(HYBRID_APP);
  const newAccess = renewed.find((c) => c.name === "__Host-access");
  const newRefresh = renewed.find((c) => c.name === "__Host-refresh");
  assert.ok(newAccess && newAccess.value !== access.value, "the access cookie was not renewed");
  assert.ok(newRefresh && newRefresh.value !== refresh.value, "the refresh token was not rotated");

  // Another origin's form cannot log the user out.
  const forged = await crossOriginPost(context, `${HYBRID_APP}/logout`);
  assert.equal(forged.origin, attackerUrl);
  assert.equal(forged.status, 403);
  assert.equal((await fetchStatus(page, "/me")).status, 200);

  // Logout through the page.
  await page.click("#logout");
  await page.waitForFunction(() => document.getElementById("out").textContent === "signed out");
  assert.equal((await fetchStatus(page, "/me")).status, 401);
  const left = await context.cookies(HYBRID_APP);
  assert.ok(!left.some((c) => c.name === "__Host-access" || c.name === "__Host-refresh"));
  await context.close();
});
