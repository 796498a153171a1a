// The station's service worker: it keeps the scan pages and the static files a
// station page uses, so that the page loads while the app itself is down
// (restarting, being redeployed); the page's outbox (static/scan.js) keeps the
// scans made meanwhile and sends them when the app is back.
//
// Only the station pages it was told about (`pages` in its address) are ever
// answered from here, and only when the app cannot be reached: every other
// page (signing in, the lists, the admin pages) goes to the network as if there
// were no worker. A signed-in user's pages go whenever anyone signs in or out,
// or the app answers a station page with anything but the page.
//
// It is registered as /sw.js?v=<the deployment's asset version>&pages=...: a
// new deployment is a new worker, which takes over at once and drops the old
// one's copies, so no old script outlives an upgrade.
"use strict";

const address = new URL(self.location.href);
const CACHE = "quality-" + (address.searchParams.get("v") || "0");
const PAGES = new Set((address.searchParams.get("pages") || "").split(",").filter(Boolean));
const SIGN_IN_OUT = new Set(["/login", "/logout"]);

// Changes to the kept pages happen one at a time, in the order asked: the
// forgetting at a sign-in is done before the next user's page is kept.
let changes = Promise.resolve();
// How many times the pages were forgotten. A copy whose fetch began before the
// latest forgetting is not kept: it may be the page of the user who just
// signed out, answered while their sign-out was on its way.
let forgettings = 0;

function change(task) {
  changes = changes.then(task, task);
  return changes;
}

const isStatic = (url) => url.origin === address.origin && url.pathname.startsWith("/static/");
const isPage = (url) => url.origin === address.origin && PAGES.has(url.pathname);

self.addEventListener("install", () => self.skipWaiting());

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    const names = await caches.keys();
    await Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name)));
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method === "POST" && url.origin === address.origin && SIGN_IN_OUT.has(url.pathname)) {
    event.respondWith(signingInOrOut(request));
    return;
  }
  if (request.method !== "GET") return;
  if (request.mode === "navigate" && isPage(url)) event.respondWith(page(request, url));
  else if (isStatic(url)) event.respondWith(staticFile(request));
});

// A sign-in or sign-out goes to the app untouched; the pages are forgotten as it
// starts, and again once the app has answered, so that a copy fetched while
// it was on its way, with the old session, is not kept either.
async function signingInOrOut(request) {
  forget();
  try {
    return await fetch(request);
  } finally {
    await forget();
  }
}

function forget() {
  forgettings += 1;
  return change(forgetPages);
}

// Keeps a copy of a page fetched since the `asOf`th forgetting, unless the
// pages were forgotten since.
function keepPage(path, response, asOf) {
  return change(() => (asOf === forgettings ? keep(path, response) : undefined));
}

// What a proxy in front of the app answers when the app is not there.
const GATEWAY_ERRORS = [502, 504];

// A station page: the app's answer whenever it gives one (its own 503 page,
// with the database away, included), the kept copy when the app cannot be
// reached: no answer at all, or a proxy's for it.
async function page(request, url) {
  const asOf = forgettings;
  let response;
  try {
    response = await fetch(request);
  } catch (error) {
    return (await keptPage(url)) || Response.error();
  }
  if (GATEWAY_ERRORS.includes(response.status)) return (await keptPage(url)) || response;
  if (response.status === 200) {
    await keepPage(url.pathname, response.clone(), asOf);
  } else if (response.type === "opaqueredirect" || [401, 403].includes(response.status)) {
    await forget(); // signed out, or no longer allowed: nothing of theirs stays
  }
  return response;
}

async function keptPage(url) {
  return (await caches.open(CACHE)).match(url.pathname, { ignoreSearch: true, ignoreVary: true });
}

// A static file: its address carries its content's hash, so a kept copy is the file.
async function staticFile(request) {
  const cache = await caches.open(CACHE);
  const kept = await cache.match(request, { ignoreVary: true });
  if (kept) return kept;
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

async function keep(path, response) {
  await (await caches.open(CACHE)).put(path, response);
}

async function forgetPages() {
  const cache = await caches.open(CACHE);
  await Promise.all([...PAGES].map((path) => cache.delete(path, { ignoreSearch: true, ignoreVary: true })));
}

// A station page, once loaded, names itself and the static files it uses: on
// the first visit they were fetched before this worker was there to keep them.
self.addEventListener("message", (event) => {
  const wanted = event.data && Array.isArray(event.data.keep) ? event.data.keep : [];
  event.waitUntil(Promise.all(wanted.map(keepMissing)));
});

async function keepMissing(name) {
  if (typeof name !== "string") return;
  const url = new URL(name, address);
  if (!isPage(url) && !isStatic(url)) return;
  const cache = await caches.open(CACHE);
  const key = isPage(url) ? url.pathname : url.href;
  if (await cache.match(key, { ignoreVary: true })) return;
  const asOf = forgettings;
  try {
    const response = await fetch(key, { credentials: "same-origin", cache: "no-store" });
    if (response.status !== 200 || response.redirected) return; // e.g. signed out meanwhile
    if (isPage(url)) await keepPage(key, response, asOf);
    else await cache.put(key, response);
  } catch (error) {
    // unreachable now: the page asks again at its next load
  }
}
