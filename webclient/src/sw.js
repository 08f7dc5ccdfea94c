/**
 * The service worker: the app shell offline, and corrections sent by Background Sync.
 *
 * The build writes BUILD_ID (a hash of every shell file) and SHELL_FILES into this file, so a
 * new build is a new service worker: it installs the new shell next to the old one and only
 * removes the old cache once it is active. Model files are not handled here: the page keeps
 * them in per-version caches itself (model-store.js). API calls and the pages of the rest of
 * the site (the admin console) always go to the network.
 */

import { SYNC_TAG, flush } from './queue.js';

/* global BUILD_ID, SHELL_FILES */
const SHELL_CACHE = `binbot-shell-${BUILD_ID}`;
const scope = new URL(self.registration.scope);

self.addEventListener('install', (event) => {
  // Static routes (Chromium's Service Worker Static Routing API): the browser reads the shell
  // straight from its cache, without starting this worker first, which is most of a cold
  // start after a browser restart. Browsers without the API use the fetch handler below.
  if (typeof event.addRoutes === 'function' && typeof URLPattern === 'function') {
    // The page itself only without a query: ?threads=... is not a cache key (the fetch handler
    // maps every navigation to the shell).
    const shell = SHELL_FILES.map((path) => new URL(path, scope))
      .map((url) => ({ urlPattern: new URLPattern({ origin: url.origin, pathname: url.pathname, search: '' }) }));
    event.addRoutes([{ condition: { or: shell }, source: { cacheName: SHELL_CACHE } }]).catch(() => {});
  }
  event.waitUntil((async () => {
    const cache = await caches.open(SHELL_CACHE);
    await cache.addAll(SHELL_FILES.map((path) => new Request(new URL(path, scope), { cache: 'reload' })));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    const names = await caches.keys();
    await Promise.all(names.filter((n) => n.startsWith('binbot-shell-') && n !== SHELL_CACHE).map((n) => caches.delete(n)));
    await self.clients.claim();
  })());
});

// The app's own page: every other page on this site (the admin console) is the server's.
const APP_PAGES = new Set([scope.pathname, `${scope.pathname}index.html`]);

self.addEventListener('fetch', (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== scope.origin) return;
  if (url.pathname.startsWith(`${scope.pathname}api/`)) return; // always the network
  if (request.mode === 'navigate' && !APP_PAGES.has(url.pathname)) return;
  event.respondWith((async () => {
    const cache = await caches.open(SHELL_CACHE);
    const key = request.mode === 'navigate' ? new URL('./', scope).href : request;
    const cached = await cache.match(key, { ignoreSearch: true });
    if (cached) return cached;
    return fetch(request);
  })());
});

self.addEventListener('sync', (event) => {
  if (event.tag === SYNC_TAG) {
    event.waitUntil((async () => {
      const { waiting } = await flush(scope);
      if (waiting > 0) throw new Error('corrections still waiting; Background Sync retries later');
    })());
  }
});
