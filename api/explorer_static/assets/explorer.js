/* eventstore explorer: a single page over the public /v1 API (read only; no build step).
 *
 * Views (the URL fragment keeps the state, so links can be shared and Back works):
 *   #/[?stream=S]                       entities of a stream: open one, recently changed, live feed
 *   #/entity/<stream>/<key>[?v=N|?at=T] one entity: verify badge, time travel, timeline
 *   #/query?<filters>[&after=C&page=N]  the audit query, paged, with exports
 *   #/projections                       read models: status, rebuilds, charts
 *   #/subscriptions                     subscriptions (admin key): state, lag, parked events
 *
 * Live updates read /v1/events/live with fetch() (not EventSource, which cannot send
 * an Authorization header). When the API answers 401 the page asks for a read key and
 * keeps it in sessionStorage; the admin key for a rebuild is asked for each time and
 * never stored. Nothing here modifies events.
 */
(function () {
  'use strict';

  const KEY_STORAGE = 'eventstore.explorer.readKey';
  const EVENT_TYPES = ['created', 'updated', 'replaced', 'deleted', 'snapshot', 'gap', 'dropped', 'renamed', 'rejected', 'erased'];
  const STREAM_EVENT_TYPES = ['gap', 'dropped', 'renamed', 'rejected', 'erased'];
  const STRUCTURE_TYPES = ['gap', 'dropped', 'renamed', 'erased'];
  const REJECTED_SHOWN = 5000;
  const STREAM_KEY = '$stream';
  const HISTORY_PAGE = 500;
  const RECENT_PAGE = 25;
  const FEED_MAX = 30;
  const STATUS_COLORS = {
    pending: '#8a94a3', paid: '#1f5fbf', shipped: '#6b3fa0', delivered: '#1a7f37', cancelled: '#b42318',
  };
  const SERIES_COLORS = ['#1f5fbf', '#d9822b', '#1a7f37', '#6b3fa0', '#b42318', '#0f8b8d'];

  // -- small helpers ---------------------------------------------------------------------------
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  // What a page would not show as itself: C0 and C1 controls (tab and newline too: shown as
  // white space, `a\nb` would read as `a b`), DEL, and the marks and overrides of
  // bidirectional text, which reorder what is around them. Keys, actors and values come from
  // the captured documents: shown raw, one key could be made to look like another. They are
  // shown escaped, as the CLI prints them.
  const HIDDEN = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
  // The same, newline aside: for text laid out on lines of its own (indented JSON).
  const HIDDEN_INLINE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
  const escapeChar = (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0');
  const visible = (text) => String(text).replace(HIDDEN, escapeChar);
  const visibleLines = (text) => String(text).replace(HIDDEN_INLINE, escapeChar);

  // -- entity keys -----------------------------------------------------------------------------
  // An event's `entity_key` is the key it was stored with: it may read as another value
  // (the string "int:5") or name two entities (the integer 42 and the string "42"). Its
  // `typed_key` names its entity alone: links use it, and entities are told apart by it.
  const TYPED = /^(oid|int|str|json):/;
  const NO_PATH_SEGMENT = ['', '.', '..'];

  /** The key a listing shows for a typed key: bare, unless the bare key reads as another value. */
  function listedKey(typed) {
    const m = /^(oid|int|str):([\s\S]*)$/.exec(typed);
    if (!m) return typed; // json: (and $stream) are themselves
    const bare = m[2];
    // The string "$stream" is listed typed too: bare, it is the stream's own record.
    if (m[1] === 'str' && (TYPED.test(bare) || NO_PATH_SEGMENT.includes(bare) || bare === STREAM_KEY)) {
      return typed;
    }
    return bare;
  }

  /** The stream's own record (gaps, drops, renames, erasures, rejected changes), not an entity. */
  function isStreamEvent(ev) {
    return ev.entity_key === STREAM_KEY && STREAM_EVENT_TYPES.includes(ev.type);
  }

  /** The identity of an event's entity: its typed key (`$stream` for the stream's record). */
  function eventIdentity(ev) {
    if (isStreamEvent(ev)) return STREAM_KEY;
    return ev.typed_key || ev.entity_key;
  }

  /** The identity of a listed entity: its key when typed, else told by the type of its `_id`. */
  function itemIdentity(item) {
    if (item.typed) return item.typed;
    const k = item.entity_key;
    if (k === STREAM_KEY || TYPED.test(k)) return k;
    const id = item.entity_id;
    if (typeof id === 'string') return 'str:' + k;
    if (id && typeof id === 'object' && typeof id.$oid === 'string') return 'oid:' + k;
    if (/^-?\d+$/.test(k)) return 'int:' + k;
    return 'str:' + k;
  }

  /** Shown keys (`shown`) of rows of one stream that read alike but name distinct entities
   * (`typed`) become the typed keys, as a listing gives them. */
  function disambiguate(rows) {
    const seen = new Map();
    for (const r of rows) {
      const id = `${r.stream}\u0000${r.shown}`;
      if (!seen.has(id)) seen.set(id, new Set());
      seen.get(id).add(r.typed);
    }
    for (const r of rows) {
      if (seen.get(`${r.stream}\u0000${r.shown}`).size > 1 && r.typed !== STREAM_KEY) r.shown = r.typed;
    }
    return rows;
  }

  /** Text cut at `max` characters (the whole of it in the tooltip). */
  function cutEl(tag, attrs, text, max) {
    const full = visible(text);
    if (full.length <= max) return h(tag, attrs, full);
    return h(tag, { ...attrs, title: full, dataset: { ...(attrs.dataset || {}), cut: String(full.length) } },
      full.slice(0, max - 1) + '…');
  }

  /** An element with attributes (`class`, `dataset`, `on*` handlers, others) and children. */
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'class') node.className = value;
      else if (name === 'dataset') Object.assign(node.dataset, value);
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else if (name === 'text') node.textContent = visible(value);
      // A form value is data, not text to read: kept as it is (a stream's real name).
      else if (name === 'value') node.setAttribute(name, String(value));
      else node.setAttribute(name, value === true ? '' : visible(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(visible(child)));
    }
    return node;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const enc = encodeURIComponent;

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  /** RFC 3339 UTC (as the API gives) → "2026-11-26 14:03:00.123Z"; local time in the title. */
  function timeEl(iso, cls) {
    if (!iso) return h('span', { class: 'muted' }, '—');
    const local = new Date(iso);
    return h('time', { datetime: iso, class: cls, title: isNaN(local) ? null : 'local: ' + local.toLocaleString() },
      iso.replace('T', ' '));
  }

  /** A value of a document or a diff, readably: strings quoted, structures as compact JSON. */
  function fmt(value) {
    if (value === undefined) return '—';
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : text;
  }

  function fmtValueEl(value) {
    const text = fmt(value);
    const short = text.length > 240 ? text.slice(0, 237) + '…' : text;
    return h('span', { title: short !== text ? text : null }, short);
  }

  /** A value of the state tree: cut at VALUE_MAX characters, as the diff cuts them, with a
   * button that shows the whole of it. */
  const VALUE_MAX = 240;
  function valueEl(value, cls) {
    const text = fmt(value);
    if (text.length <= VALUE_MAX) return h('span', { class: cls }, text);
    const span = h('span', { class: cls + ' cut', dataset: { cut: String(text.length) } }, text.slice(0, VALUE_MAX - 3) + '…');
    const more = h('button', {
      type: 'button', class: 'ghost small show-all', 'aria-label': `Show all ${text.length.toLocaleString('en')} characters`,
      onclick: () => { span.textContent = visible(text); delete span.dataset.cut; more.remove(); },
    }, `show all (${text.length.toLocaleString('en')} characters)`);
    return [span, ' ', more];
  }

  function actorText(actor) {
    if (actor === null || actor === undefined) return 'unknown actor';
    return typeof actor === 'string' ? actor : JSON.stringify(actor);
  }

  function plural(n, word) {
    return `${n.toLocaleString('en')} ${word}${n === 1 ? '' : 's'}`;
  }

  /** `datetime-local` value (read as UTC) → RFC 3339 with Z; '' → null. */
  function inputToIso(value) {
    if (!value) return null;
    let v = value;
    if (/^\d{4}-\d\d-\d\dT\d\d:\d\d$/.test(v)) v += ':00';
    return v + 'Z';
  }

  /** RFC 3339 (any offset) → the `datetime-local` form of that instant in UTC ('' when unreadable). */
  function isoToInput(iso) {
    const ms = instant(iso);
    if (ms === null) return '';
    const text = new Date(ms).toISOString().slice(0, 23);
    return text.endsWith('.000') ? text.slice(0, 19) : text;
  }

  /** The instant an RFC 3339 time names (epoch ms), or null: times are compared as instants,
   * never as text (`2026-02-01T22:00-05:00` is `2026-02-02T03:00Z`, yet sorts before it). */
  function instant(iso) {
    if (!iso || !/(Z|[+-]\d\d:?\d\d)$/i.test(iso)) return null; // no offset: the API's to judge
    const ms = Date.parse(iso);
    return Number.isNaN(ms) ? null : ms;
  }

  // -- errors and the alert bar ----------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, problem) {
      super(problem && problem.detail ? problem.detail : `HTTP ${status}`);
      this.status = status;
      this.problem = problem || {};
    }
  }

  /** The service could not be reached at all (no answer: stopped, or the network is down). */
  class Unreachable extends Error {
    constructor() {
      super(`Cannot reach the eventstore service at ${location.origin}: it is not answering ` +
        '(stopped, restarting, or the network is down). Live updates retry on their own; ' +
        'try again once it is back.');
      this.name = 'Unreachable';
    }
  }

  function showError(err) {
    if (err && err.name === 'AbortError') return;
    const text = err instanceof ApiError
      ? `${err.problem.title || 'Error'} (${err.status}): ${err.message}`
      : String(err && err.message ? err.message : err);
    $('#alert-text').textContent = visible(text);
    $('#alert').hidden = false;
    if (err instanceof Unreachable) markUnavailable(err);
  }

  function clearError() {
    $('#alert').hidden = true;
  }

  // -- the API ---------------------------------------------------------------------------------
  function readKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE);
    } catch (_) {
      return null;
    }
  }

  function setReadKey(key) {
    try {
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch (_) { /* storage disabled: the key lasts as long as this page */ }
    memoryKey = key || null;
    $('#key-button').textContent = key ? 'Read key ✓' : 'Read key';
  }
  let memoryKey = null;

  function url(path, params) {
    const qs = new URLSearchParams();
    for (const [name, value] of Object.entries(params || {})) {
      if (value === null || value === undefined || value === '') continue;
      if (Array.isArray(value)) value.forEach((v) => qs.append(name, v));
      else qs.append(name, String(value));
    }
    const query = qs.toString();
    return path + (query ? '?' + query : '');
  }

  async function problemOf(res) {
    try {
      return await res.json();
    } catch (_) {
      return { detail: res.statusText };
    }
  }

  /**
   * A request to the API. A 401 on a read asks for a read key (once for all requests that
   * meet it) and tries again; `admin` sends that key instead and never asks.
   */
  async function api(path, options) {
    const opts = options || {};
    for (let attempt = 0; ; attempt += 1) {
      const headers = new Headers({ Accept: opts.accept || 'application/json' });
      const key = opts.admin || readKey() || memoryKey;
      if (key) headers.set('Authorization', 'Bearer ' + key);
      let res;
      try {
        res = await fetch(url(path, opts.params), {
          method: opts.method || 'GET', headers, cache: 'no-store', signal: opts.signal,
        });
      } catch (err) {
        // fetch() rejects only when no answer came (its message, "Failed to fetch", says
        // nothing of the service); an abort is the page's own doing.
        if (err && err.name === 'AbortError') throw err;
        throw new Unreachable();
      }
      if (res.status === 401 && !opts.admin && attempt < 3) {
        const problem = await problemOf(res);
        if (await askReadKey(key ? 'The key was not accepted: ' + problem.detail : problem.detail)) continue;
        throw new ApiError(401, problem);
      }
      if (!res.ok) throw new ApiError(res.status, await problemOf(res));
      return opts.raw ? res : res.json();
    }
  }

  /** Every page of a `{items|events, next}` listing (bounded by `max` rows). */
  async function allPages(path, params, field, max) {
    const rows = [];
    let after = null;
    do {
      const page = await api(path, { params: { ...params, limit: 1000, after } });
      rows.push(...page[field]);
      after = page.next;
    } while (after && rows.length < (max || 20000));
    return rows;
  }

  // -- the read key dialog ---------------------------------------------------------------------
  let keyPrompt = null;

  function askReadKey(reason) {
    if (keyPrompt) return keyPrompt;
    const dialog = $('#key-dialog');
    $('#key-reason').textContent = (reason ? reason + ' ' : '') +
      'The key is kept in this tab only (session storage) and sent as Authorization: Bearer ….';
    $('#key-input').value = '';
    keyPrompt = new Promise((resolve) => {
      dialog.addEventListener('close', function done() {
        dialog.removeEventListener('close', done);
        keyPrompt = null;
        const key = $('#key-input').value.trim();
        if (dialog.returnValue === 'ok' && key) {
          setReadKey(key);
          resolve(true);
        } else {
          resolve(false);
        }
      });
    });
    dialog.returnValue = '';
    dialog.showModal();
    $('#key-input').focus();
    return keyPrompt;
  }

  // -- application state ----------------------------------------------------------------------
  const app = {
    streams: [],
    stream: null,
    view: null,
    projections: null, // names, once loaded
    recent: { items: [], next: null },
    entity: null,
    query: null,
    projTimer: null,
  };

  // -- streams ---------------------------------------------------------------------------------
  async function loadStreams() {
    app.streams = await api('/v1/streams');
    const names = app.streams.map((s) => s.stream);
    for (const select of [$('#stream-select'), $('#q-stream')]) {
      const keep = select.value;
      const any = select.id === 'q-stream';
      select.replaceChildren(
        ...(any ? [h('option', { value: '' }, 'any')] : []),
        ...names.map((n) => h('option', { value: n }, n)),
      );
      if (names.includes(keep) || (any && keep === '')) select.value = keep;
    }
    if (!app.stream || !names.includes(app.stream)) app.stream = defaultStream();
    if (app.stream) $('#stream-select').value = app.stream;
    app.streamsDown = false;
    renderStreamInfo();
    setStreamLinks();
    return app.streams;
  }

  /** The stream to land on: the one the URL names, else the one with most events, never a
   * pseudo-stream (`$source` holds only what could not be told to a collection). */
  function defaultStream() {
    const names = app.streams.map((s) => s.stream);
    const asked = parseRoute().stream;
    if (asked && names.includes(asked)) return asked;
    const real = app.streams.filter((s) => !s.stream.startsWith('$'));
    const pool = real.length ? real : app.streams;
    let best = null;
    for (const s of pool) if (!best || s.events > best.events) best = s;
    return best ? best.stream : null;
  }

  /** The links to the entities view keep the selected stream (`#/?stream=…`). */
  function setStreamLinks() {
    const href = app.stream ? '#/?stream=' + enc(app.stream) : '#/';
    for (const a of $$('[data-nav="entities"], .brand')) a.setAttribute('href', href);
  }

  /** The stream picked in the header: in the URL while the entities view shows no entity. */
  function pickStream(stream) {
    const hash = '#/?stream=' + enc(stream);
    if (app.view === 'entities' && location.hash !== hash) location.hash = hash; // route() switches
    else switchStream(stream);
  }

  /** Shows `stream`'s entities (nothing of the stream shown before stays). */
  function switchStream(stream) {
    app.stream = stream;
    app.recent = { items: [], next: null };
    $('#stream-select').value = stream;
    renderStreamInfo();
    setStreamLinks();
    renderRecent();
    loadRecent(true).catch(showError);
  }

  function renderStreamInfo() {
    const s = app.streams.find((x) => x.stream === app.stream);
    $('#stream-info').textContent = (s
      ? `${s.entities.toLocaleString('en')} ${s.entities === 1 ? 'entity' : 'entities'} · ${plural(s.events, 'event')}`
      : 'no events recorded yet') + (app.streamsDown ? ' (as last read: the service is not answering)' : '');
  }

  const refreshStreams = debounce(() => loadStreams().catch(markUnavailable), 1500);

  /** The service stopped answering: what is on screen was read before. */
  function markUnavailable(err) {
    if (!(err instanceof Unreachable)) return;
    app.streamsDown = true;
    renderStreamInfo();
    if (!app.recent.items.length) renderRecent();
  }

  function headSeq() {
    return app.streams.reduce((m, s) => Math.max(m, s.last_seq || 0), 0);
  }

  // -- routing ---------------------------------------------------------------------------------
  function parseRoute() {
    const raw = location.hash.replace(/^#/, '') || '/';
    const cut = raw.indexOf('?');
    const path = cut < 0 ? raw : raw.slice(0, cut);
    const params = new URLSearchParams(cut < 0 ? '' : raw.slice(cut + 1));
    const parts = path.split('/').filter(Boolean).map((p) => {
      try { return decodeURIComponent(p); } catch (_) { return p; }
    });
    if (parts[0] === 'entity' && parts.length >= 3) {
      return { view: 'entities', stream: parts[1], key: parts.slice(2).join('/'), params };
    }
    if (parts[0] === 'query') return { view: 'query', params };
    if (parts[0] === 'projections') return { view: 'projections', params };
    if (parts[0] === 'subscriptions') return { view: 'subscriptions', params };
    return { view: 'entities', stream: params.get('stream') || null, params };
  }

  /** A version from the URL: a whole number from 1, or undefined (not a version). */
  function versionOf(text) {
    return /^[1-9]\d{0,15}$/.test(text) ? Number(text) : undefined;
  }

  function entityHash(stream, key, version) {
    return `#/entity/${enc(stream)}/${enc(key)}` + (version ? `?v=${version}` : '');
  }

  function setView(view) {
    app.view = view;
    for (const section of $$('.view')) section.hidden = section.dataset.view !== view;
    for (const link of $$('[data-nav]')) {
      if (link.dataset.nav === view) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    if (view === 'projections') startProjections();
    else stopProjections();
    if (view === 'subscriptions') startSubscriptions();
    else stopSubscriptions();
  }

  async function route() {
    const r = parseRoute();
    setView(r.view);
    try {
      if (r.view === 'entities') {
        if (r.stream && r.stream !== app.stream && app.streams.some((s) => s.stream === r.stream)) {
          switchStream(r.stream);
        }
        if (r.key) {
          const v = r.params.get('v');
          const version = v === null ? null : versionOf(v);
          const at = r.params.get('at');
          const e = app.entity;
          const same = e && e.stream === r.stream && (e.key === r.key || e.typed === r.key);
          if (!same) await openEntity(r.stream, r.key, { version, at, badVersion: version === undefined ? v : null });
          else if (version === undefined) badVersion(e, v);
          else if (at) await showAt(at);
          else if (version && version !== e.selected) {
            e.follow = false;
            await showVersion(version, { exact: true });
          }
        } else {
          closeEntity();
        }
      } else if (r.view === 'query') {
        fillQueryForm(r.params);
        if ([...r.params.keys()].length) {
          await runQuery(null, undefined, { after: r.params.get('after'), page: r.params.get('page') });
        }
      }
    } catch (err) {
      showError(err);
    }
  }

  // -- recently changed entities ---------------------------------------------------------------
  async function loadRecent(reset) {
    if (!app.stream) {
      $('#recent-list').replaceChildren();
      return;
    }
    const stream = app.stream;
    const after = reset ? null : app.recent.next;
    let page;
    try {
      page = await api(`/v1/streams/${enc(stream)}/entities`, { params: { limit: RECENT_PAGE, after } });
    } catch (err) {
      if (reset && stream === app.stream) { // never another stream's entities under this one's name
        app.recent = { items: [], next: null };
        renderRecent();
      }
      throw err;
    }
    if (stream !== app.stream) return;
    for (const it of page.items) it.typed = itemIdentity(it);
    app.recent.items = reset ? page.items : app.recent.items.concat(page.items);
    app.recent.next = page.next;
    renderRecent();
  }

  /** Whether the open entity is this one (by identity: `42` opened as `int:42` too). */
  function isOpen(stream, typed, key) {
    const e = app.entity;
    if (!e || e.stream !== stream) return false;
    return e.typed ? e.typed === typed : e.key === key;
  }

  function recentItem(item, flash) {
    const current = isOpen(app.stream, item.typed, item.entity_key);
    const gone = !item.exists;
    // A live entry links by its typed key; a listed one by the key the listing gave.
    const link = item.live && item.typed !== STREAM_KEY ? item.typed : item.entity_key;
    return h('li', { dataset: { key: item.entity_key, typed: item.typed, version: item.version }, class: (gone ? 'gone' : '') + (flash ? ' flash' : '') },
      h('a', { href: entityHash(app.stream, link), 'aria-current': current ? 'true' : null },
        item.entity_key === STREAM_KEY
          ? h('span', { class: 'key' }, '$stream (the stream’s own record)')
          : cutEl('span', { class: 'key' }, item.entity_key, 120),
        h('span', { class: `badge t-${item.last_type}` }, item.last_type),
        h('span', { class: 'meta' }, `v${item.version} · `, timeEl(item.last_event_at), gone ? ' · deleted' : '')));
  }

  function renderRecent(flashTyped) {
    const list = $('#recent-list');
    list.replaceChildren(...app.recent.items.map((it) => recentItem(it, flashTyped !== undefined && it.typed === flashTyped)));
    if (!app.recent.items.length) {
      list.append(h('li', { class: 'muted small' }, app.streamsDown
        ? 'Unavailable: the eventstore service cannot be reached.' : 'No entities yet.'));
    }
    $('#recent-more').hidden = !app.recent.next;
  }

  function recentOnEvent(e) {
    if (e.stream !== app.stream) return;
    const typed = eventIdentity(e);
    const before = app.recent.items.find((it) => it.typed === typed);
    const items = app.recent.items.filter((it) => it !== before);
    items.unshift({
      // The key it is listed under already, else as a listing would show it.
      entity_key: before ? before.entity_key : typed === STREAM_KEY ? STREAM_KEY : listedKey(typed),
      typed,
      live: true,
      entity_id: e.entity_id,
      version: e.version,
      exists: typed === STREAM_KEY ? true : e.type !== 'deleted',
      last_type: e.type,
      last_event_at: e.occurred_at,
    });
    // Two entries that would read alike (the integer 42 and the string "42") show typed keys.
    const rows = items.map((it) => ({ stream: e.stream, typed: it.typed, shown: it.entity_key, it }));
    for (const r of disambiguate(rows)) {
      if (r.shown !== r.it.entity_key) Object.assign(r.it, { entity_key: r.shown, live: true });
    }
    app.recent.items = items;
    renderRecent(typed);
  }

  // -- the live feed ---------------------------------------------------------------------------
  function feedOnEvent(e) {
    const list = $('#live-feed');
    $('#feed-empty').hidden = true;
    const typed = eventIdentity(e);
    // Shown as a listing shows it; typed when an entry of another entity reads alike.
    let shown = typed === STREAM_KEY ? STREAM_KEY : listedKey(typed);
    for (const li of $$('li', list)) {
      if (li.dataset.stream === e.stream && li.dataset.key === shown && li.dataset.typed !== typed && typed !== STREAM_KEY) {
        shown = typed;
        if (li.dataset.typed !== STREAM_KEY) {
          li.dataset.key = li.dataset.typed;
          li.querySelector('a .key').textContent = visible(li.dataset.typed);
        }
      }
    }
    list.prepend(h('li', { dataset: { seq: e.seq, key: shown, typed, stream: e.stream }, class: 'flash' },
      h('span', { class: 'muted' }, `#${e.seq}`),
      h('span', { class: `badge t-${e.type}` }, e.type),
      h('a', { href: entityHash(e.stream, typed, typed === STREAM_KEY ? null : e.version) },
        `${e.stream}/`, cutEl('span', { class: 'key' }, shown, 120)),
      h('span', { class: 'muted' }, `v${e.version} · ${actorText(e.actor)}`)));
    while (list.children.length > FEED_MAX) list.lastElementChild.remove();
  }

  // -- live updates (SSE read with fetch) ------------------------------------------------------
  const live = { after: 0, paused: false, controller: null, running: false };

  function setLiveState(stateName, label) {
    const button = $('#live-toggle');
    button.dataset.state = stateName;
    button.setAttribute('aria-pressed', stateName === 'paused' ? 'false' : 'true');
    $('#live-label').textContent = label;
  }

  /** Reads Server-Sent Events from a fetch body; calls `onEvent({id, event, data})`. */
  async function readSse(body, onEvent) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let data = [];
    let type = 'message';
    let id = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      for (;;) {
        const m = /\r\n|\r|\n/.exec(buffer);
        if (!m) break;
        if (m[0] === '\r' && m.index === buffer.length - 1) break; // a \r\n split across chunks
        const line = buffer.slice(0, m.index);
        buffer = buffer.slice(m.index + m[0].length);
        if (line === '') {
          if (data.length) onEvent({ id, event: type, data: data.join('\n') });
          data = [];
          type = 'message';
          continue;
        }
        if (line[0] === ':') continue; // a heartbeat comment
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'data') data.push(val);
        else if (field === 'event') type = val;
        else if (field === 'id') id = val;
      }
    }
  }

  async function liveLoop() {
    if (live.running) return;
    live.running = true;
    let delay = 500;
    try {
      while (!live.paused) {
        live.controller = new AbortController();
        setLiveState('connecting', 'connecting…');
        try {
          const res = await api('/v1/events/live', {
            params: { after: live.after }, accept: 'text/event-stream', raw: true, signal: live.controller.signal,
          });
          setLiveState('open', 'live');
          document.body.dataset.live = 'open';
          delay = 500;
          await readSse(res.body, (msg) => {
            let event;
            try { event = JSON.parse(msg.data); } catch (_) { return; }
            if (typeof event.seq === 'number' && (live.after === null || event.seq > live.after)) {
              live.after = event.seq;
              onLiveEvent(event);
            }
          });
        } catch (err) {
          if (live.paused || (err && err.name === 'AbortError')) break;
          if (err instanceof ApiError && err.status === 401) {
            setLiveState('retry', 'needs a key');
            break;
          }
          if (err instanceof ApiError && err.status === 422) {
            // The log is shorter than what this page saw (a memory:// service restarted):
            // the next attempt starts the tail again at the head.
            live.after = null;
          }
        }
        document.body.dataset.live = 'retry';
        if (live.paused) break;
        setLiveState('retry', 'reconnecting…');
        await sleep(delay);
        delay = Math.min(delay * 2, 10000);
      }
    } finally {
      live.running = false;
      if (live.paused) setLiveState('paused', 'paused');
    }
  }

  function onLiveEvent(e) {
    feedOnEvent(e);
    recentOnEvent(e);
    entityOnEvent(e);
    refreshStreams();
    if (app.view === 'projections') refreshProjectionsSoon();
  }

  function toggleLive() {
    if (live.paused) {
      live.paused = false;
      liveLoop();
    } else {
      live.paused = true;
      if (live.controller) live.controller.abort();
      setLiveState('paused', 'paused');
    }
  }

  // -- one entity: loading ---------------------------------------------------------------------
  let entityToken = 0;

  function closeEntity() {
    app.entity = null;
    entityToken += 1;
    $('#entity').hidden = true;
    $('#entity-empty').hidden = false;
    renderRecent();
  }

  /** A typed key, or a bare key that looks like one an entity could have. */
  function looksLikeKey(text) {
    return /^(oid|int|str|json):/.test(text) || /^[0-9a-fA-F]{24}$/.test(text) || /^-?\d+$/.test(text);
  }

  /** The open form: a key, or (when the order_summary read model has it) an order number. */
  async function openFromForm(text) {
    const stream = app.stream;
    if (!stream || !text) return;
    let key = text;
    if (!looksLikeKey(text) && (await projectionNames()).includes('order_summary')) {
      const found = await api('/v1/projections/order_summary', { params: { number: text, limit: 2 } });
      if (found.items.length === 1 && found.items[0].entity_key) key = orderKey(found.items[0]);
    }
    location.hash = entityHash(stream, key);
  }

  async function projectionNames() {
    if (!app.projections) app.projections = (await api('/v1/projections')).map((p) => p.name);
    return app.projections;
  }

  async function openEntity(stream, key, opts) {
    const token = ++entityToken;
    const base = `/v1/streams/${enc(stream)}/entities/${enc(key)}`;
    let loaded = null;
    const e = {
      stream, key, base, token,
      events: [], // version order
      older: false, // older events exist that are not loaded
      markers: [],
      latest: null,
      selected: null,
      follow: !(opts && (opts.version || opts.at)),
      // Live events for this entity wait until it is loaded, then apply in order.
      chain: new Promise((resolve) => { loaded = resolve; }),
      isStream: key === STREAM_KEY,
    };
    app.entity = e;
    try {
      await loadEntity(e, opts);
    } catch (err) {
      // Nothing of it could be shown (unknown key, ambiguous key, no history): no panel,
      // rather than the panel of the entity shown before under this one's key.
      if (token === entityToken && $('#entity').dataset.loaded !== 'true') {
        app.entity = null;
        $('#entity').hidden = true;
        $('#entity-empty').hidden = false;
        renderRecent();
      }
      throw err;
    } finally {
      loaded();
    }
  }

  async function loadEntity(e, opts) {
    const { stream, key, base, token } = e;
    clearError();
    $('#entity-empty').hidden = true;
    $('#entity').hidden = false;
    $('#entity').dataset.key = key;
    $('#entity').dataset.loaded = 'false';
    setTitle(e.isStream ? `${stream} · $stream` : key);
    $('#entity-sub').textContent = visible(`stream ${stream} · loading…`);
    $('#timeline').replaceChildren();
    $('#state-doc').replaceChildren();
    $('#state-json').textContent = '';
    delete $('#state-json').dataset.version;
    delete $('#state-json').dataset.key;
    $('#travel-flags').replaceChildren();
    $('#state-removed').replaceChildren();
    $('#travel').hidden = e.isStream;
    $('#exists-badge').textContent = '';
    // Until its own answers arrive, nothing of the entity shown before stays on screen.
    const badge = $('#verify-badge');
    badge.className = 'badge';
    badge.textContent = 'verifying…';
    badge.title = '';
    delete badge.dataset.valid;
    $('#travel-version').textContent = '';
    $('#travel-when').textContent = '';
    $('#travel-at').value = '';
    $('#timeline-count').textContent = '';
    $('#timeline-more').hidden = true;
    $('#entity-query-link').href = '#/query?' + new URLSearchParams({ stream, entity: key }).toString();
    $('#entity-api-link').href = `${base}/history`;
    renderRecent();

    // The newest version (one fold), then the newest page of its history.
    let latestState = null;
    if (!e.isStream) latestState = await api(`${base}/state`);
    if (token !== entityToken) return;
    const latestVersion = latestState ? latestState.version : null;
    const from = latestVersion ? Math.max(1, latestVersion - HISTORY_PAGE + 1) : 1;
    const [events] = await Promise.all([
      historyFrom(e, from, null),
      loadVerify(e),
      loadMarkers(e),
    ]);
    if (token !== entityToken) return;
    e.events = events;
    // Who it is, whatever key opened it: live events are matched to it by this.
    e.typed = e.isStream ? STREAM_KEY : events.length ? eventIdentity(events[0]) : null;
    renderRecent(); // the entry of this entity, whatever key opened it
    // Its events queried by the key the API answers for it (one that names it alone).
    if (!e.isStream) $('#entity-query-link').href = '#/query?' + new URLSearchParams({ stream, entity: shownKey(e) }).toString();
    e.older = events.length > 0 && events[0].version > 1;
    e.latest = events.length ? events[events.length - 1].version : latestVersion;
    renderEntityHead(e);
    renderTimeline(e);
    $('#entity').dataset.loaded = 'true';
    if (e.isStream) return;
    setupSlider(e);
    if (opts && opts.badVersion !== null && opts.badVersion !== undefined) badVersion(e, opts.badVersion);
    else if (opts && opts.at) await showAt(opts.at);
    else {
      const version = (opts && opts.version) || e.latest;
      const fresh = latestState && latestState.version === version ? latestState : null;
      await showVersion(version, { state: fresh, exact: Boolean(opts && opts.version) });
    }
  }

  /** The entity's events from `from` (to `to`, else the newest), every page. */
  async function historyFrom(e, from, to) {
    const events = [];
    let after = null;
    do {
      const page = await api(`${e.base}/history`, {
        params: { from_version: from, to_version: to, limit: HISTORY_PAGE, after },
      });
      events.push(...page.events);
      if (page.entity_key !== undefined) e.answerKey = page.entity_key;
      after = page.next;
    } while (after);
    return events;
  }

  async function loadVerify(e) {
    const badge = $('#verify-badge');
    badge.className = 'badge';
    badge.textContent = 'verifying…';
    try {
      const v = await api(`${e.base}/verify`);
      if (app.entity !== e) return;
      e.verify = v;
      badge.dataset.valid = String(v.valid);
      if (v.valid) {
        badge.className = 'badge ok';
        badge.textContent = `✔ chain verified · ${plural(v.events_checked, 'event')}`;
        badge.title = 'Every event hash was recomputed from the event and the previous hash.';
      } else {
        badge.className = 'badge bad';
        badge.textContent = `✘ tampered at version ${v.first_invalid_version}`;
        badge.title = visible(v.reason || '');
      }
    } catch (err) {
      if (app.entity !== e) return;
      badge.className = 'badge warn';
      badge.textContent = 'verify unavailable';
      badge.title = err.message;
    }
  }

  const reverifySoon = debounce((e) => { if (app.entity === e) loadVerify(e); }, 800);

  /** The stream's own events (gaps, drops, renames, erasures, rejected changes): shown where
   * they fall on the timeline. Gaps, drops, renames and erasures are rare, and each changes
   * what a state means: all of them are read. Rejected changes can be many: the first
   * REJECTED_SHOWN, and the timeline says so when there are more. */
  async function loadMarkers(e) {
    const [structure, rejected] = await Promise.all([
      allPages('/v1/events', { stream: e.stream, type: STRUCTURE_TYPES }, 'events', Infinity),
      allPages('/v1/events', { stream: e.stream, type: ['rejected'] }, 'events', REJECTED_SHOWN),
    ]);
    e.rejectedCut = rejected.length >= REJECTED_SHOWN;
    const rows = structure.concat(rejected).sort((a, b) => a.seq - b.seq);
    e.markers = rows;
    e.gaps = rows.filter((r) => r.type === 'gap').map((r) => {
      const doc = r.document || {};
      return {
        seq: r.seq,
        from: typeof doc.from_time === 'string' ? doc.from_time : r.occurred_at,
        to: typeof doc.to_time === 'string' ? doc.to_time : r.occurred_at,
      };
    });
    return rows;
  }

  function renderEntityHead(e) {
    const last = e.events[e.events.length - 1];
    const first = e.events[0];
    const sub = [`stream ${e.stream}`];
    if (last) {
      sub.push(plural(e.latest, 'version'));
      if (!e.older && first) sub.push(`first ${first.occurred_at.replace('T', ' ')}`);
      sub.push(`last ${last.occurred_at.replace('T', ' ')} by ${actorText(last.actor)}`);
    }
    $('#entity-sub').textContent = visible(sub.join(' · '));
    const badge = $('#exists-badge');
    if (e.isStream || !last) {
      badge.textContent = '';
      badge.className = 'badge';
      badge.hidden = true;
    } else {
      badge.hidden = false;
      const deleted = last.type === 'deleted';
      badge.className = 'badge ' + (deleted ? 'bad' : 'info');
      badge.textContent = deleted ? (last.inferred ? 'deleted (inferred)' : 'deleted') : 'exists';
    }
    setTitle(e.isStream ? `${e.stream} · $stream` : documentTitle(e) || shownKey(e));
  }

  /** The key the entity is shown by: the API's answer (one that names it alone), else as asked. */
  function shownKey(e) {
    return e.answerKey || e.key;
  }

  /** The title, bounded: a key of thousands of characters would push everything off screen. */
  const TITLE_MAX = 160;
  function setTitle(text) {
    const title = $('#entity-title');
    const full = visible(text);
    title.textContent = full.length > TITLE_MAX ? full.slice(0, TITLE_MAX - 1) + '…' : full;
    if (full.length > TITLE_MAX) {
      title.title = full;
      title.dataset.cut = String(full.length);
    } else {
      title.removeAttribute('title');
      delete title.dataset.cut;
    }
  }

  function documentTitle(e) {
    for (let i = e.events.length - 1; i >= 0; i -= 1) {
      const doc = e.events[i].document;
      if (doc && typeof doc.number === 'string') return `${doc.number} · ${shownKey(e)}`;
    }
    return null;
  }

  // -- one entity: the timeline ----------------------------------------------------------------
  function diffTable(diff) {
    return h('table', { class: 'diff' },
      h('tbody', {}, diff.map((c) => h('tr', { class: `op-${c.op}`, dataset: { path: c.path, op: c.op } },
        h('td', { class: 'path' }, c.path),
        h('td', { class: 'op' }, c.op),
        h('td', { class: 'val before' }, c.op === 'added' ? h('span', { class: 'muted' }, '—') : typedValueEl(c.before, c.before_type)),
        h('td', { class: 'arrow', 'aria-hidden': 'true' }, '→'),
        h('td', { class: 'val after' }, c.op === 'removed' ? h('span', { class: 'muted' }, '—') : typedValueEl(c.after, c.after_type))))));
  }

  /** A diff value, with its BSON type when the entry names one (the two sides' types differ:
   *  `"1.0"` a decimal, then a string, alike in JSON). */
  function typedValueEl(value, type) {
    if (!type) return fmtValueEl(value);
    return h('span', {}, fmtValueEl(value), ' ', h('span', { class: 'muted bson-type' }, `(${type})`));
  }

  function eventNote(ev, prev) {
    if (ev.type === 'deleted') {
      return ev.inferred
        ? 'Deleted — inferred, not observed: the entity was absent after a gap in the record or a dropped collection.'
        : 'Deleted: the document was removed.';
    }
    if (ev.type === 'created' && prev && prev.type === 'deleted') return `Re-created after the deletion at version ${prev.version}.`;
    if (ev.type === 'created' && ev.version > 1) return 'Re-created.';
    if (ev.type === 'replaced') return 'The whole document was replaced; the changes below compare it with the previous version.';
    if (ev.type === 'snapshot') return 'Snapshot: the document as found when capture started (or restarted after a gap).';
    if (ev.inferred) return 'Inferred, not observed: derived by the service.';
    return null;
  }

  function eventItem(ev, prev, opts) {
    const diff = ev.diff || [];
    const travel = !opts.isStream;
    const recreated = ev.type === 'created' && ev.version > 1;
    const classes = ['ev', `ev-${ev.type}`];
    if (ev.inferred) classes.push('ev-inferred');
    if (ev.erased) classes.push('ev-erased');
    if (opts.flash) classes.push('flash');
    if (opts.selected) classes.push('selected');
    const note = eventNote(ev, prev);
    let body;
    if (ev.erased) {
      body = h('p', { class: 'ev-note erased' }, `Erased: this event's data was removed by the erasure recorded at seq ${ev.erased_by}. Its hashes still verify.`);
    } else if (!diff.length) {
      body = ev.type === 'updated' ? h('p', { class: 'ev-note muted' }, 'No field changed.') : null;
    } else if (['created', 'snapshot', 'deleted'].includes(ev.type) && diff.length > 4) {
      const what = ev.type === 'deleted' ? 'removed' : 'set';
      body = h('details', { class: 'ev-more' }, h('summary', {}, `${plural(diff.length, 'field')} ${what}`), diffTable(diff));
    } else {
      body = diffTable(diff);
    }
    const streamPayload = opts.isStream && ev.document
      ? h('pre', { class: 'hashes' }, JSON.stringify(ev.document)) : null;
    return h('li', {
      class: classes.join(' '),
      dataset: { version: ev.version, seq: ev.seq, type: ev.type, actor: actorText(ev.actor), inferred: String(ev.inferred), erased: String(Boolean(ev.erased)) },
    },
    h('div', { class: 'ev-head' },
      h('span', { class: 'ver' }, `v${ev.version}`),
      h('span', { class: `badge t-${ev.type}` }, ev.type),
      ev.inferred ? h('span', { class: 'badge warn', title: 'Derived by the service, not observed' }, 'inferred') : null,
      ev.erased ? h('span', { class: 'badge bad', title: `Data removed by the erasure at seq ${ev.erased_by}` }, 'erased') : null,
      recreated ? h('span', { class: 'badge ok' }, 're-created') : null,
      timeEl(ev.occurred_at),
      h('span', {}, 'by ', h('span', { class: 'actor' }, actorText(ev.actor))),
      h('span', { class: 'seq' }, `seq ${ev.seq}`),
      travel ? h('button', {
        type: 'button', class: 'ghost small travel-to', 'aria-label': `Show the document at version ${ev.version}`,
        onclick: () => { app.entity.follow = false; showVersion(ev.version); $('#travel').scrollIntoView({ block: 'start' }); },
      }, `Show v${ev.version}`) : null),
    note ? h('p', { class: 'ev-note' + (ev.type === 'deleted' ? ' error' : '') }, note) : null,
    body,
    streamPayload,
    h('details', { class: 'ev-more' }, h('summary', {}, 'Event details'),
      h('p', { class: 'hashes' },
        `id ${ev.id}`, h('br'),
        `recorded ${ev.recorded_at}`, h('br'),
        `hash ${ev.hash}`, h('br'),
        `prev_hash ${ev.prev_hash}`, h('br'),
        `log_hash ${ev.log_hash}`,
        ev.txn ? [h('br'), `txn ${JSON.stringify(ev.txn)}`] : null)));
  }

  function markerItem(m) {
    const doc = m.document || {};
    let title;
    let text;
    if (m.type === 'gap') {
      title = 'Gap in the record';
      const why = doc.reason ? String(doc.reason) : 'the change stream could not resume';
      text = `Changes between ${String(doc.from_time || '?').replace('T', ' ')} and ${String(doc.to_time || m.occurred_at).replace('T', ' ')} were not captured (${why}). States inside it are uncertain.`;
    } else if (m.type === 'dropped') {
      title = 'Collection dropped';
      text = 'The captured collection was dropped; live entities were marked deleted (inferred).';
    } else if (m.type === 'erased') {
      title = 'Entity erased';
      text = `The data of every event of ${fmt(doc.entity_key)} (${String(doc.events_erased ?? '?')} events) was erased at the request of ${fmt(doc.actor)}: ${String(doc.reason || '?')}. The events' hashes still verify.`;
    } else if (m.type === 'rejected') {
      title = 'Change rejected';
      text = `A change from the source could not be interpreted and was not applied to any entity (${String(doc.source || '?')}, ${String(doc.position || '?')}: ${String(doc.reason || '?')}). Its input's SHA-256 is ${String(doc.sha256 || '?')}.`;
    } else {
      title = 'Collection renamed';
      text = `The captured collection was renamed${doc.to ? ' to ' + fmt(doc.to) : ''}; its live entities were marked deleted (inferred).`;
    }
    return h('li', { class: `gap-marker`, dataset: { seq: m.seq, type: m.type }, role: 'note' },
      h('div', { class: 'ev-head' },
        h('span', { class: `badge t-${m.type}` }, m.type),
        h('strong', {}, title),
        timeEl(m.occurred_at),
        h('span', { class: 'seq' }, `seq ${m.seq}`)),
      h('p', { class: 'ev-note' }, text));
  }

  function renderTimeline(e, flashFrom) {
    const list = $('#timeline');
    const items = [];
    const first = e.events[0];
    const last = e.events[e.events.length - 1];
    const deletedAtEnd = last && last.type === 'deleted';
    // Stream-wide markers while the entity lived; an erasure only on the erased entity's
    // own timeline, where it is shown after a final deletion too.
    const markers = e.isStream ? [] : e.markers.filter((m) => {
      if (m.type === 'erased') return erasedThis(e, m);
      return first && m.seq > first.seq && (!deletedAtEnd || m.seq < last.seq);
    });
    let mi = markers.length - 1;
    for (let i = e.events.length - 1; i >= 0; i -= 1) {
      const ev = e.events[i];
      while (mi >= 0 && markers[mi].seq > ev.seq) items.push(markerItem(markers[mi--]));
      items.push(eventItem(ev, e.events[i - 1], {
        isStream: e.isStream, flash: flashFrom && ev.version >= flashFrom, selected: ev.version === e.selected,
      }));
    }
    list.replaceChildren(...items);
    const loaded = e.events.length;
    $('#timeline-count').textContent = (e.older
      ? `${plural(loaded, 'event')} shown of ${e.latest}` : plural(loaded, 'event')) +
      (e.rejectedCut ? ` · the stream's first ${REJECTED_SHOWN.toLocaleString('en')} rejected changes shown` : '');
    $('#timeline-more').hidden = !e.older;
  }

  async function loadOlder() {
    const e = app.entity;
    if (!e || !e.older || !e.events.length) return;
    const oldest = e.events[0].version;
    const from = Math.max(1, oldest - HISTORY_PAGE);
    const older = await historyFrom(e, from, oldest - 1);
    if (app.entity !== e) return;
    e.events = older.concat(e.events);
    e.older = from > 1;
    renderTimeline(e);
    renderEntityHead(e);
  }

  /** The bare key an entity's events are stored with (`42` for `int:42`). */
  function storedKey(typed) {
    const m = /^(oid|int|str):([\s\S]*)$/.exec(typed || '');
    return m ? m[2] : typed;
  }

  /** Whether an `erased` record is of this entity: its events name that erasure (`erased_by`),
   * or, none of them loaded, the record's key is the one its events are stored with. */
  function erasedThis(e, m) {
    if (e.events.some((ev) => ev.erased_by === m.seq)) return true;
    const named = m.document && m.document.entity_key;
    return e.older && named === storedKey(e.typed) && !e.events.some((ev) => ev.erased_by != null);
  }

  /** The open entity again, as the API now answers it (its payloads erased), at the same
   * version or moment. */
  function reloadEntity(e) {
    if (app.entity !== e) return;
    const at = new URLSearchParams(location.hash.split('?')[1] || '').get('at');
    const opts = e.follow ? {} : e.selected === null && at ? { at } : { version: e.selected };
    openEntity(e.stream, e.key, opts).catch(showError);
  }

  /** A live event: append it (and whatever came before it) to the open entity. */
  function entityOnEvent(ev) {
    const e = app.entity;
    if (!e) return;
    if (ev.stream === e.stream && STREAM_EVENT_TYPES.includes(ev.type) && !e.isStream) {
      e.markers.push(ev);
      if (ev.type === 'gap') loadMarkers(e).then(() => renderTimeline(e)).catch(() => {});
      else if (ev.type === 'erased') {
        // An erasure of the entity on screen: its data must go from the page too. The
        // record names the entity by its stored key (`42` may be the integer or the text):
        // once loaded again, the events' `erased_by` tell whether it was this one.
        const named = ev.document && ev.document.entity_key;
        e.chain = e.chain.then(() => {
          if (app.entity === e && (named === storedKey(e.typed) || named === e.key)) reloadEntity(e);
          else renderTimeline(e);
        });
      } else renderTimeline(e);
    }
    if (ev.stream !== e.stream) return;
    const typed = eventIdentity(ev);
    if (typed === STREAM_KEY && !e.isStream) return;
    e.chain = e.chain.then(async () => {
      if (app.entity !== e || e.typed !== typed) return;
      const have = e.latest || 0;
      if (ev.version <= have) return;
      const added = await historyFrom(e, have + 1, null);
      if (app.entity !== e || !added.length) return;
      const known = new Set(e.events.map((x) => x.version));
      e.events.push(...added.filter((x) => !known.has(x.version)));
      e.latest = e.events[e.events.length - 1].version;
      renderEntityHead(e);
      renderTimeline(e, have + 1);
      reverifySoon(e);
      if (!e.isStream) {
        setupSlider(e);
        if (e.follow) await showVersion(e.latest);
        else updateWhen(e);
      }
    }).catch(showError);
  }

  // -- one entity: time travel -----------------------------------------------------------------
  let stateToken = 0;

  function setupSlider(e) {
    const slider = $('#travel-slider');
    const first = e.events.length ? e.events[0].version : 1;
    slider.min = String(e.older ? 1 : first);
    slider.max = String(e.latest || 1);
    slider.disabled = (e.latest || 1) <= 1;
  }

  function eventOf(e, version) {
    return e.events.find((x) => x.version === version) || null;
  }

  /** The gaps that fall within this version's lifetime (until the next version, or now). */
  function gapsDuring(e, version) {
    const ev = eventOf(e, version);
    if (!ev || !e.gaps || !e.gaps.length) return [];
    const next = eventOf(e, version + 1);
    const start = ev.occurred_at;
    const end = next ? next.occurred_at : null;
    return e.gaps.filter((g) => g.to >= start && (end === null || g.from <= end));
  }

  function updateWhen(e, st) {
    const v = e.selected;
    if (v === null) { // a moment before the first event (showNoState)
      $('#travel-version').textContent = `none of ${e.latest}`;
      $('#travel-when').textContent = '';
      return;
    }
    const ev = eventOf(e, v);
    $('#travel-version').textContent = `${v} of ${e.latest}`;
    const parts = [];
    if (ev) {
      parts.push(`${ev.type} at ${ev.occurred_at.replace('T', ' ')} by ${actorText(ev.actor)}`);
    }
    if (st && st.as_of && (!ev || st.as_of !== ev.occurred_at)) parts.push(`as of ${st.as_of.replace('T', ' ')}`);
    if (v === e.latest) parts.push('latest version');
    $('#travel-when').textContent = visible(parts.join(' · '));
  }

  async function showVersion(version, opts) {
    const e = app.entity;
    if (!e || e.isStream) return;
    if (opts && opts.exact && e.latest && version > e.latest) {
      badVersion(e, String(version));
      return;
    }
    const v = Math.max(1, Math.min(version, e.latest || version));
    e.selected = v;
    $('#travel-slider').value = String(v);
    updateWhen(e);
    markSelected(e);
    const token = ++stateToken;
    const st = (opts && opts.state) || await api(`${e.base}/state`, { params: { version: v } });
    if (token !== stateToken || app.entity !== e) return;
    await renderState(e, st, null);
    history.replaceState(null, '', entityHash(e.stream, e.key, v === e.latest && e.follow ? null : v));
  }

  async function showAt(iso) {
    const e = app.entity;
    if (!e || e.isStream) return;
    const first = e.older ? null : e.events[0];
    const when = instant(iso);
    const firstAt = first ? instant(first.occurred_at) : null;
    if (when !== null && firstAt !== null && when < firstAt) {
      showNoState(e, iso, `No state at ${iso.replace('T', ' ')}: the first event is at ${first.occurred_at.replace('T', ' ')}.`);
      return;
    }
    const token = ++stateToken;
    let st;
    try {
      st = await api(`${e.base}/state`, { params: { at: iso } });
    } catch (err) {
      const noState = err instanceof ApiError && err.status === 404 &&
        String(err.problem.type || '').split('/').pop() === 'no-state';
      if (token === stateToken && app.entity === e) {
        // Refused (a time the API cannot read): no state shown, and none of the one before.
        showNoState(e, iso, noState ? `No state: ${err.message}` : `No state shown for at=${iso}: ${err.message}`);
      }
      if (!noState) throw err;
      return;
    }
    if (token !== stateToken || app.entity !== e) return;
    e.follow = false;
    e.selected = st.version;
    $('#travel-slider').value = String(st.version);
    updateWhen(e, st);
    markSelected(e);
    await renderState(e, st, iso);
    history.replaceState(null, '', entityHash(e.stream, e.key) + `?at=${enc(iso)}`);
  }

  /** A time before the entity's first event: no version, and no document (never the one shown before). */
  function showNoState(e, iso, text) {
    clearState(e, text);
    $('#travel-at').value = isoToInput(iso);
    history.replaceState(null, '', entityHash(e.stream, e.key) + `?at=${enc(iso)}`);
  }

  /** No version selected and no document shown; `text` says why. */
  function clearState(e, text) {
    stateToken += 1; // a state still on its way is of another moment
    e.follow = false;
    e.selected = null;
    markSelected(e);
    updateWhen(e);
    $('#state-doc').replaceChildren();
    delete $('#state-doc').dataset.version;
    $('#state-removed').replaceChildren();
    $('#state-json').textContent = '';
    delete $('#state-json').dataset.version;
    $('#travel-at').value = '';
    flags([{ cls: 'info', text }]); // shown escaped, as every text is
  }

  /** A `v=` in the URL that names no version of the entity: said, and nothing stale shown. */
  function badVersion(e, text) {
    const message = `No version ${JSON.stringify(text)}: a version is a whole number from 1 to ${e.latest}.`;
    clearState(e, message);
    showError(message);
  }

  function markSelected(e) {
    for (const li of $$('#timeline > li.ev')) {
      li.classList.toggle('selected', Number(li.dataset.version) === e.selected);
    }
  }

  function flags(list) {
    $('#travel-flags').replaceChildren(...list.map((f) => h('p', { class: `flag ${f.cls}`, role: f.cls === 'info' ? null : 'status' }, f.text)));
  }

  /** The changes that made version `v` (from the loaded timeline, else from /diff). */
  async function changesOf(e, v) {
    const ev = eventOf(e, v);
    if (ev) return ev.diff || [];
    if (v <= 1) return [];
    const d = await api(`${e.base}/diff`, { params: { from_version: v - 1, to_version: v } });
    return d.changes;
  }

  async function renderState(e, st, at) {
    const v = st.version;
    const ev = eventOf(e, v);
    let changes = [];
    try {
      changes = await changesOf(e, v);
    } catch (_) { /* highlighting is a help, not a must */ }
    if (app.entity !== e) return;
    const list = [];
    if (st.erased) {
      list.push({ cls: 'bad', text: `Erased: the data of this entity up to version ${v} was removed by an erasure; its state cannot be shown.` });
    } else if (!st.exists) {
      list.push({ cls: 'bad', text: `Deleted: at version ${v} the entity has no document${ev && ev.inferred ? ' (the deletion was inferred, not observed)' : ''}.` });
    }
    if (st.uncertain) {
      const gap = st.gap ? ` (${String(st.gap.from).replace('T', ' ')} to ${String(st.gap.to).replace('T', ' ')})` : '';
      list.push({ cls: 'warn', text: `Uncertain: ${at ? at.replace('T', ' ') : 'this moment'} falls inside a gap in the record${gap}; changes made then were not captured, so the document may have differed.` });
    } else {
      const during = gapsDuring(e, v);
      if (during.length) {
        const g = during[0];
        list.push({ cls: 'warn', text: `Uncertain: a gap in the record (${g.from.replace('T', ' ')} to ${g.to.replace('T', ' ')}) falls within this version's lifetime; changes made during it were not captured.` });
      }
    }
    for (const f of st.findings || []) {
      list.push({ cls: 'info', text: `Finding at version ${f.version} (${f.kind}): ${f.detail}` });
    }
    const creation = ev && (ev.type === 'created' || ev.type === 'snapshot');
    if (creation && st.exists) list.push({ cls: 'info', text: `${ev.type === 'snapshot' ? 'Snapshot' : 'Created'} at this version: every field is new.` });
    flags(list);
    const doc = $('#state-doc');
    const json = $('#state-json');
    doc.dataset.version = String(v);
    doc.dataset.uncertain = String(Boolean(st.uncertain || list.some((f) => f.cls === 'warn')));
    const changed = new Set(creation ? [] : changes.filter((c) => c.op !== 'removed').map((c) => c.path));
    doc.dataset.erased = String(Boolean(st.erased));
    doc.replaceChildren(st.document ? tree(st.document, '', changed) : h('p', { class: 'muted' }, st.erased ? 'Erased: no document.' : 'No document at this version.'));
    const removed = changes.filter((c) => c.op === 'removed' && !(ev && ev.type === 'deleted'));
    $('#state-removed').replaceChildren(...(removed.length ? [
      h('p', { class: 'small' }, 'Removed in this version:'),
      h('ul', { class: 'removed-list' }, removed.map((c) => h('li', {}, `${c.path} (was ${fmt(c.before)})`))),
    ] : []));
    json.textContent = visibleLines(JSON.stringify(st.document, null, 2));  // escapes keep it JSON
    json.dataset.version = String(v);
    json.dataset.key = e.key;
    $('#travel-at').value = isoToInput(at || st.as_of);
    document.body.dataset.stateVersion = String(v);
  }

  /** Every proper prefix of the changed paths (`a` and `a.b` for `a.b.c`): the parents to mark.
   * Computed once per tree, so drawing costs one look-up a node, not one scan of the paths. */
  function parentsOf(changed) {
    const out = new Set();
    for (const c of changed) {
      for (let i = c.lastIndexOf('.'); i > 0; i = c.lastIndexOf('.', i - 1)) {
        const parent = c.slice(0, i);
        if (out.has(parent)) break;  // its own parents are in already
        out.add(parent);
      }
    }
    return out;
  }

  /** A document as a nested list; `changed` paths are highlighted, their parents marked. */
  function tree(value, path, changed, parents = parentsOf(changed)) {
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
    return h('ul', {}, entries.map(([k, v]) => {
      const p = path ? `${path}.${k}` : k;
      const isChanged = changed.has(p);
      const within = !isChanged && parents.has(p);
      const label = Array.isArray(value) ? `[${k}]` : k;
      const nested = v !== null && typeof v === 'object';
      return h('li', { class: (isChanged ? 'changed' : '') + (within ? ' within' : ''), dataset: { path: p }, title: isChanged ? 'changed in this version' : null },
        h('span', { class: 'mark' }),
        cutEl('span', { class: 'k' }, label, VALUE_MAX), ': ',
        nested
          ? [h('span', { class: 'muted' }, Array.isArray(v) ? `[${v.length}]` : '{…}'), tree(v, p, changed, parents)]
          : valueEl(v, `v v-${v === null ? 'null' : typeof v === 'boolean' ? 'bool' : typeof v}`),
        isChanged ? h('span', { class: 'sr-only' }, ' (changed in this version)') : null);
    }));
  }

  // -- the audit query -------------------------------------------------------------------------
  // A key, actor or field from a link may hold what a one-line input cannot (a newline):
  // the input shows it escaped and the value itself is kept here, used while the input
  // still shows it unchanged.
  const queryRaw = {};

  function rawOrTyped(f, name) {
    const typed = f[name].value;
    if (queryRaw[name] !== undefined && typed === visible(queryRaw[name])) return queryRaw[name] || null;
    return typed.trim() || null;
  }

  function setRaw(f, name, value) {
    queryRaw[name] = value;
    f[name].value = visible(value);
  }

  function queryParamsFromForm() {
    const f = $('#query-form');
    const types = $$('#q-types input:checked').map((i) => i.value);
    return {
      stream: f.stream.value || null,
      entity: rawOrTyped(f, 'entity'),
      type: types.length ? types : null,
      field: rawOrTyped(f, 'field'),
      actor: rawOrTyped(f, 'actor'),
      since: inputToIso(f.since.value),
      until: inputToIso(f.until.value),
    };
  }

  function fillQueryForm(params) {
    const f = $('#query-form');
    if (params.has('stream') && ![...f.stream.options].some((o) => o.value === params.get('stream'))) {
      f.stream.append(h('option', { value: params.get('stream') }, params.get('stream')));
    }
    f.stream.value = params.get('stream') || '';
    for (const name of ['entity', 'field', 'actor']) setRaw(f, name, params.get(name) || '');
    f.since.value = isoToInput(params.get('since'));
    f.until.value = isoToInput(params.get('until'));
    const limit = Number(params.get('limit'));
    if (Number.isInteger(limit) && limit >= 1 && limit <= 1000) { // a page size of a shared link
      if (![...f.limit.options].some((o) => o.value === String(limit))) f.limit.append(h('option', {}, String(limit)));
      f.limit.value = String(limit);
    }
    const types = params.getAll('type');
    for (const box of $$('#q-types input')) box.checked = types.includes(box.value);
  }

  function queryHash(params) {
    return '#/query?' + new URLSearchParams(url('', { ...params, limit: $('#q-limit').value }).slice(1)).toString();
  }

  /**
   * Moves a cursor pager (`{cursors, page}`: the `after` of each page shown so far) a page
   * on (`next`, to `cursor`) or back (`prev`); nothing otherwise. Returns what undoes it,
   * for a page that could not be read: the page shown stays, and so does the way back.
   */
  function turnPage(pager, direction, cursor) {
    const before = { cursors: pager.cursors.slice(), page: pager.page };
    if (direction === 'next') {
      pager.cursors.push(cursor);
      pager.page += 1;
    } else if (direction === 'prev') {
      pager.cursors.pop();
      pager.page -= 1;
    }
    return () => Object.assign(pager, before);
  }

  /**
   * Runs the query of the form: its first page, or a page on/back (`direction`), or the page
   * a URL names (`start`: {after, page}); the page shown is kept in the URL (`after`, `page`),
   * so a reload, a shared link or Back returns to it.
   */
  async function runQuery(cursor, direction, start) {
    const params = queryParamsFromForm();
    if (params.entity && !params.stream) {
      showError('Pick the stream of the entity: entity keys are per stream.');
      return;
    }
    const limit = Number($('#q-limit').value) || 50;
    if (!app.query || !direction) {
      app.query = { params, cursors: [null], page: 0, next: null };
      if (start && start.after) { // a page of a link: "Previous" from it goes to the first
        const page = Number(start.page);
        app.query.cursors.push(start.after);
        app.query.page = Number.isInteger(page) && page > 1 ? page - 1 : 1;
      }
    }
    const q = app.query;
    const undo = turnPage(q, direction, cursor);
    const after = q.cursors[q.cursors.length - 1];
    $('#results-summary').textContent = 'Searching…';
    let page;
    try {
      page = await api('/v1/events', { params: { ...q.params, limit, after } });
    } catch (err) {
      if (app.query === q) {
        if (direction) { // the page shown stays, and so does the way back to it
          undo();
          $('#results-summary').textContent = 'That page could not be read (see the message above).';
        } else { // never the rows of another query under this one's form
          $('#results tbody').replaceChildren();
          $('#results-summary').textContent = err instanceof Unreachable
            ? 'No results: the service could not be reached (see the message above).'
            : 'The query was refused (see the message above).';
          $('#page-label').textContent = '';
          $('#page-prev').disabled = true;
          $('#page-next').disabled = true;
        }
      }
      throw err;
    }
    if (app.query !== q) return;
    q.next = page.next;
    if (direction) {
      const hash = queryHash(q.params) + (after ? `&after=${enc(after)}&page=${q.page + 1}` : '');
      if (location.hash !== hash) history.pushState(null, '', hash);
    }
    renderResults(page.events, q, limit);
    $('#export-curl').textContent = curlFor(q.params, 'text/csv');
  }

  function renderResults(events, q, limit) {
    const body = $('#results tbody');
    // Each row opens its entity (by its typed key) and shows the key as a listing does.
    const keys = disambiguate(events.map((e) => {
      const typed = eventIdentity(e);
      return { stream: e.stream, typed, shown: typed === STREAM_KEY ? STREAM_KEY : listedKey(typed) };
    }));
    body.replaceChildren(...events.map((e, i) => h('tr', { dataset: { seq: e.seq } },
      h('td', { class: 'mono' }, e.seq),
      h('td', { class: 'mono' }, timeEl(e.occurred_at)),
      h('td', {}, e.stream),
      h('td', { class: 'mono' }, h('a', {
        href: entityHash(e.stream, keys[i].typed, keys[i].typed === STREAM_KEY ? null : e.version),
        dataset: { typed: keys[i].typed },
      }, cutEl('span', { class: 'key' }, keys[i].shown, 60))),
      h('td', {}, e.version),
      h('td', {}, h('span', { class: `badge t-${e.type}` }, e.type), e.inferred ? h('span', { class: 'badge warn' }, 'inferred') : null),
      h('td', {}, actorText(e.actor)),
      h('td', { class: 'fields' }, (e.changed_fields || []).flatMap((f, j) => [j ? ', ' : '', cutEl('span', {}, f, 80)])))));
    if (!events.length) body.append(h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No events match.')));
    const first = q.page * limit + 1;
    $('#results-summary').textContent = events.length
      ? `Events ${first.toLocaleString('en')}–${(first + events.length - 1).toLocaleString('en')} in seq order${q.next ? '; more follow' : ''}.`
      : 'No events match.';
    $('#page-label').textContent = `page ${q.page + 1}`;
    $('#page-prev').disabled = q.page === 0;
    $('#page-next').disabled = !q.next;
  }

  function curlFor(params, accept) {
    const key = readKey() || memoryKey;
    return `curl -H 'Accept: ${accept}'` + (key ? ` -H "Authorization: Bearer $EVENTSTORE_KEY"` : '') +
      ` '${location.origin}${url('/v1/events', params)}'`;
  }

  async function exportAs(accept, filename) {
    const params = (app.query && app.query.params) || queryParamsFromForm();
    if (params.entity && !params.stream) {
      showError('Pick the stream of the entity: entity keys are per stream.');
      return;
    }
    const button = accept === 'text/csv' ? $('#export-csv') : $('#export-ndjson');
    button.disabled = true;
    try {
      const res = await api('/v1/events', { params, accept, raw: true });
      const blob = await res.blob();
      const href = URL.createObjectURL(blob);
      const a = h('a', { href, download: filename, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(href), 10000);
      $('#results-summary').textContent = `Exported ${filename} (${blob.size.toLocaleString('en')} bytes, every match).`;
    } finally {
      button.disabled = false;
    }
  }

  // -- projections -----------------------------------------------------------------------------
  const charts = { status: null, revenue: null };
  let job = null; // { name, id, key }

  // -- subscriptions (admin) ---------------------------------------------------------------------
  // The admin key lives in this closure only: never stored, forgotten on reload.
  const subs = { key: null, timer: null, open: null };

  async function adminCall(path, method) {
    let res;
    try {
      res = await fetch(path, {
        method: method || 'GET', cache: 'no-store',
        headers: { Accept: 'application/json', Authorization: 'Bearer ' + subs.key, 'Eventstore-Actor': 'explorer' },
      });
    } catch (_) {
      throw new Unreachable();
    }
    if (!res.ok) throw new ApiError(res.status, await problemOf(res));
    return res.status === 204 ? null : res.json();
  }

  function subsError(err) {
    const box = $('#subs-error');
    box.hidden = !err;
    box.textContent = visible(err ? (err.problem && err.problem.detail) || String(err.message || err) : '');
  }

  function startSubscriptions() {
    if (subs.timer || !subs.key) return;
    refreshSubscriptions();
    subs.timer = setInterval(refreshSubscriptions, 3000);
  }

  function stopSubscriptions() {
    clearInterval(subs.timer);
    subs.timer = null;
  }

  async function refreshSubscriptions() {
    if (!subs.key) return;
    try {
      const rows = await adminCall('/v1/admin/subscriptions');
      subsError(null);
      $('#subscriptions tbody').replaceChildren(...rows.map(subscriptionRow));
      $('#subs-updated').textContent = 'updated ' + new Date().toLocaleTimeString();
      if (subs.open) await showParked(subs.open);
    } catch (err) {
      subsError(err);
      if (err.status === 401 || err.status === 403) { subs.key = null; stopSubscriptions(); }
    }
  }

  function subscriptionRow(s) {
    const st = s.status;
    const cls = st.state === 'running' ? 'ok' : st.state === 'failed' || st.state === 'disabled' ? 'bad' : 'warn';
    // The action sits in the first column: it stays in view on a narrow screen.
    return h('tr', { dataset: { name: s.name } },
      h('td', null, h('button', {
        type: 'button', class: 'ghost small show-parked', title: 'Show parked events',
        onclick: () => { subs.open = s.name; showParked(s.name).catch(subsError); },
      }, s.name)),
      h('td', null, s.sink.kind),
      h('td', null, h('span', { class: 'badge ' + cls }, st.state)),
      h('td', { class: 'num' }, st.position),
      h('td', { class: 'num' }, st.lag),
      h('td', { class: 'num' }, st.delivered),
      h('td', { class: 'num' }, st.parked),
      h('td', { class: 'small' }, st.disabled_reason || st.last_error || ''));
  }

  async function showParked(name) {
    const page = await adminCall(`/v1/admin/subscriptions/${enc(name)}/parked?limit=1000`);
    $('#parked').hidden = false;
    $('#parked-title').textContent = `Parked events of ${name} (${page.items.length}${page.next ? '+' : ''})`;
    $('#parked-events tbody').replaceChildren(...page.items.map((p) => h('tr', { dataset: { seq: p.seq } },
      h('td', null, h('button', {
        type: 'button', class: 'ghost small skip-parked', title: `Skip seq ${p.seq} (never delivered)`,
        onclick: () => adminCall(`/v1/admin/subscriptions/${enc(name)}/parked/${p.seq}/skip`, 'POST')
          .then(refreshSubscriptions).catch(subsError),
      }, `Skip ${p.seq}`)),
      h('td', { class: 'mono' }, `${p.stream}/`, h('a', { href: entityHash(p.stream, p.entity_key, p.version) }, p.entity_key)),
      h('td', null, p.type),
      h('td', { class: 'num' }, p.attempts),
      h('td', { class: 'small' }, p.last_error || ''),
      h('td', { class: 'small mono' }, timeEl(p.parked_at)))));
  }

  function wireSubscriptions() {
    $('#subs-key-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      subs.key = $('#subs-key').value;
      $('#subs-key').value = '';
      stopSubscriptions();
      startSubscriptions();
    });
    $('#parked-replay').addEventListener('click', () => {
      if (!subs.open) return;
      adminCall(`/v1/admin/subscriptions/${enc(subs.open)}/parked/replay`, 'POST')
        .then(refreshSubscriptions).catch(subsError);
    });
  }

  function startProjections() {
    if (app.projTimer) return;
    refreshProjections();
    app.projTimer = setInterval(refreshProjections, 3000);
  }

  function stopProjections() {
    clearInterval(app.projTimer);
    app.projTimer = null;
  }

  const refreshProjectionsSoon = debounce(() => refreshProjections(), 700);

  let refreshing = false;
  async function refreshProjections() {
    if (refreshing) return;
    refreshing = true;
    try {
      const list = await api('/v1/projections');
      app.projections = list.map((p) => p.name);
      renderProjections(list);
      await renderCharts(app.projections);
      $('#proj-updated').textContent = 'updated ' + new Date().toLocaleTimeString();
      $('#view-projections').dataset.unavailable = 'false';
    } catch (err) {
      showError(err);
      if (err instanceof Unreachable) projectionsUnavailable();
    } finally {
      refreshing = false;
    }
  }

  /** The service is not answering: the tables and charts say their data is unavailable
   * (never empty as if there were none). */
  function projectionsUnavailable() {
    const text = 'Data unavailable: the eventstore service cannot be reached.';
    $('#view-projections').dataset.unavailable = 'true';
    if (!$('#projections tbody tr')) {
      $('#projections tbody').replaceChildren(h('tr', {}, h('td', { colspan: 8, class: 'muted unavailable' }, text)));
    }
    for (const id of ['#chart-status-empty', '#chart-revenue-empty']) {
      $(id).textContent = text;
      $(id).hidden = false;
    }
    $('#proj-updated').textContent = 'not updated: the service is not answering';
  }

  function stateBadge(s) {
    const cls = s === 'failed' ? 'bad' : s === 'running' || s === 'caught up' ? 'ok' : s === 'rebuilding' ? 'info' : 'warn';
    return h('span', { class: `badge ${cls}` }, s);
  }

  function renderProjections(list) {
    const running = job && !['succeeded', 'failed'].includes(job.state);
    $('#projections tbody').replaceChildren(...list.map((p) => h('tr', { dataset: { name: p.name, state: p.state } },
      h('td', { class: 'mono' }, h('button', {
        type: 'button', class: 'ghost small show-rows', title: 'show its rows',
        'aria-label': `Show the rows of ${p.name}`, onclick: () => showRows(p.name, null).catch(showError),
      }, p.name)),
      h('td', {}, stateBadge(p.state)),
      h('td', { class: 'mono' }, p.position.toLocaleString('en')),
      h('td', { class: 'mono' }, p.lag > 0 ? h('span', { class: 'badge warn' }, p.lag.toLocaleString('en')) : '0'),
      h('td', {}, timeEl(p.rebuilt_at)),
      h('td', { class: 'err' }, p.error ? `${p.failed_seq !== null ? `at seq ${p.failed_seq}: ` : ''}${p.error}` : ''),
      h('td', { class: 'notes' }, ...projectionNotes(p)),
      h('td', {}, h('button', {
        type: 'button', class: 'ghost small rebuild', disabled: running ? true : null,
        'aria-label': `Rebuild ${p.name}`, onclick: () => askRebuild(p.name),
      }, 'Rebuild…')))));
  }

  // What a projection's status says beyond its state: rebuild needed, values not money, orders
  // without a customer id (each a badge; the rows' `problems` say which values).
  function projectionNotes(p) {
    const out = [];
    if (p.rebuild_needed) out.push(h('span', { class: 'badge warn', title: 'its rows were built with another ORDER_* mapping' }, 'rebuild needed'));
    if (p.problems) {
      out.push(h('button', {
        type: 'button', class: 'badge bad show-problems',
        title: 'values it could not use (a total counted as 0, a status as not paid): show which rows, and why',
        'aria-label': `Show the values ${p.name} could not use`,
        onclick: () => showProblems(p.name, p.problems).catch(showError),
      }, `${p.problems.toLocaleString('en')} unusable values`));
    }
    if (p.orders_without_customer) out.push(h('span', { class: 'badge warn' }, `${p.orders_without_customer.toLocaleString('en')} without customer id`));
    return out;
  }

  async function rows(name) {
    return allPages(`/v1/projections/${enc(name)}`, {}, 'items', 20000);
  }

  // -- a read model's rows, a page at a time in key order ----------------------------------------
  const ROWS_PAGE = 50;
  const rowsView = { name: null, cursors: [null], page: 0, next: null, token: 0 };

  /** A row's value in a table cell: text as it is, structures as compact JSON (cut at 200). */
  function cellText(v) {
    if (v === null || v === undefined) return '—';
    if (typeof v === 'string') return v;
    if (typeof v !== 'object') return String(v);
    const text = JSON.stringify(v);
    return text.length > 200 ? text.slice(0, 199) + '…' : text;
  }

  async function showRows(name, direction) {
    const v = rowsView;
    if (!direction || v.name !== name) Object.assign(v, { name, cursors: [null], page: 0, next: null });
    const undo = turnPage(v, direction, v.next);
    const token = ++v.token;
    const box = $('#proj-rows');
    box.hidden = false;
    box.dataset.name = name;
    $('#proj-rows-title').textContent = `Rows of ${name}`;
    let page;
    try {
      page = await api(`/v1/projections/${enc(name)}`, {
        params: { limit: ROWS_PAGE, after: v.cursors[v.cursors.length - 1] },
      });
    } catch (err) {
      if (token === v.token) undo();
      throw err;
    }
    if (token !== v.token) return;
    v.next = page.next;
    const columns = [];
    for (const r of page.items) for (const k of Object.keys(r)) if (!columns.includes(k)) columns.push(k);
    $('#proj-rows-table thead tr').replaceChildren(...columns.map((c) => h('th', { scope: 'col' }, c)));
    $('#proj-rows-table tbody').replaceChildren(...page.items.map((r) => h('tr', null,
      ...columns.map((c) => h('td', { class: 'mono', dataset: { column: c } },
        c === 'entity_key' && name === 'order_summary' && r[c]
          ? h('a', { href: entityHash(orderStream(r), orderKey(r)) }, r[c])
          : cellText(r[c]))))));
    const first = v.page * ROWS_PAGE + 1;
    $('#proj-rows-note').textContent = page.items.length
      ? `Rows ${first.toLocaleString('en')}–${(first + page.items.length - 1).toLocaleString('en')} in key order${page.next ? '; more follow' : ''}.`
      : 'No rows yet.';
    $('#rows-page').textContent = `page ${v.page + 1}`;
    $('#rows-prev').disabled = v.page === 0;
    $('#rows-next').disabled = !page.next;
    box.scrollIntoView({ block: 'nearest' });
  }

  // -- the rows' problems: which row could not use which value, and why -------------------------
  const REASONS = {
    not_a_number: 'text that is not a number',
    not_finite: 'NaN or infinity',
    wrong_type: 'not a number, a numeric string or a decimal',
    missing: 'missing from an order in a paid status',
  };
  // A total that is not money counts as 0; a status that is neither text nor a number, as not paid.
  function reasonText(pr) {
    if (pr.field === 'status') return 'neither text nor a number: the order counts as not paid';
    return REASONS[pr.reason] || '';
  }

  /**
   * The stream an order_summary row's order lives in: the read model's stream (ORDER_STREAM),
   * never the stream picked in the header. The row's own `stream` when it carries one; else
   * `orders` (ORDER_STREAM's default) when captured, else the one captured stream there is.
   */
  function orderStream(row) {
    if (row && typeof row.stream === 'string' && row.stream) return row.stream;
    const names = app.streams.map((s) => s.stream).filter((n) => !n.startsWith('$'));
    if (names.includes('orders') || names.length !== 1) return 'orders';
    return names[0];
  }

  /**
   * The key an order_summary row's order opens by. Its `entity_key` may name two orders (the
   * integer 42 and the string "42" both read "42": a 409), so a key that reads as a number is
   * the row's `typed_key` (its own key, naming that order alone); any other is listed as the
   * entity listing lists it (`ORD-1`, an ObjectId's hex; typed where bare it names none).
   */
  function orderKey(row) {
    const typed = row.typed_key;
    if (typeof typed !== 'string' || !typed) return row.entity_key;
    if (!/^(oid|str):/.test(typed)) return typed; // int:42 (and json:) read "42" bare
    const bare = listedKey(typed);
    return typed.startsWith('str:') && /^[+-]?\d/.test(bare) ? typed : bare;
  }

  // A row as people know it (an order links to its timeline).
  function problemRowLabel(name, r) {
    if (name === 'order_summary') {
      const text = r.number || r.entity_key || '?';
      return r.entity_key
        ? h('a', { href: entityHash(orderStream(r), orderKey(r)), class: 'mono' }, text)
        : h('span', { class: 'mono' }, text);
    }
    if (name === 'revenue_by_day') return h('span', { class: 'mono' }, `${r.day} ${r.currency}`);
    if (name === 'customer_totals') {
      return h('span', null, h('span', { class: 'mono' }, r.customer || '(no customer id)'), r.name ? ` ${r.name}` : '');
    }
    const first = Object.entries(r).find(([k, v]) => typeof v === 'string' && !k.startsWith('problems'));
    return h('span', { class: 'mono' }, first ? first[1] : JSON.stringify(r).slice(0, 80));
  }

  function problemRowKey(name, r) {
    if (name === 'order_summary') return r.entity_key;
    if (name === 'revenue_by_day') return `${r.day}:${r.currency}`;
    if (name === 'customer_totals') return r.customer || '';
    return '';
  }

  async function showProblems(name, counted) {
    const all = await rows(name);
    const affected = all.filter((r) => Array.isArray(r.problems) && r.problems.length);
    const lines = [];
    let found = 0;
    for (const r of affected) {
      const key = problemRowKey(name, r);
      found += r.problems.length + (r.problems_dropped || 0);
      for (const pr of [...r.problems].sort((a, b) => b.seq - a.seq)) {
        lines.push(h('tr', { class: 'problem', dataset: { row: key, seq: pr.seq, reason: pr.reason } },
          h('td', null, problemRowLabel(name, r)),
          h('td', { class: 'num' }, pr.seq),
          h('td', { class: 'mono' }, pr.field),
          h('td', { class: 'mono' }, pr.value === null || pr.value === undefined ? '(none)' : pr.value),
          h('td', null, h('span', { class: 'badge bad' }, pr.reason), ' ', h('span', { class: 'muted small' }, reasonText(pr)))));
      }
      if (r.problems_dropped) {
        lines.push(h('tr', { class: 'dropped', dataset: { row: key } },
          h('td', null, problemRowLabel(name, r)),
          h('td', { colspan: 4, class: 'muted small' },
            `and ${r.problems_dropped.toLocaleString('en')} older problem(s) not kept (a row keeps the newest 20)`)));
      }
    }
    const box = $('#proj-problems');
    box.hidden = false;
    box.dataset.name = name;
    $('#proj-problems-title').textContent = `Values ${name} could not use`;
    const cut = all.length >= 20000;
    const scanned = cut ? ` (the first ${all.length.toLocaleString('en')} rows were read)` : '';
    // The badge counts every problem recorded; what the rows read hold may be fewer.
    const missing = Number.isInteger(counted) && counted > found ? counted - found : 0;
    const unshown = missing
      ? ` ${missing.toLocaleString('en')} of the ${plural(counted, 'problem')} the badge counts ${missing === 1 ? 'is' : 'are'} not shown: ` +
        (cut ? 'they are in rows not read (the page reads at most 20,000 rows), or no row holds them now.'
          : 'no row holds them now (corrected since).')
      : '';
    $('#proj-problems-note').dataset.unshown = String(missing);
    $('#proj-problems-note').textContent = (affected.length
      ? `${affected.length.toLocaleString('en')} of ${all.length.toLocaleString('en')} rows hold a value they could not use now${scanned}; ` +
        'the badge counts every value recorded, corrected ones included. A total counts as 0, and a status as not paid, until its document is corrected (or ORDER_FIELDS, then a rebuild).'
      : `No row of ${name} has a problem now${scanned}.`) + unshown;
    $('#problems tbody').replaceChildren(...lines);
    box.scrollIntoView({ block: 'nearest' });
  }

  function chartBase(extra) {
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: { duration: 250 },
      plugins: { legend: { display: true, position: 'bottom' } },
      scales: { y: { beginAtZero: true } },
      ...extra,
    };
  }

  function drawChart(which, canvasId, config) {
    const existing = charts[which];
    if (existing) {
      existing.data.labels = config.data.labels;
      existing.data.datasets.forEach((ds, i) => {
        if (config.data.datasets[i]) ds.data = config.data.datasets[i].data;
      });
      if (existing.data.datasets.length !== config.data.datasets.length) {
        existing.data.datasets = config.data.datasets;
      }
      existing.update();
      return;
    }
    charts[which] = new window.Chart($(canvasId), config);
  }

  async function renderCharts(names) {
    if (!window.Chart) return;
    const statusCard = $('#chart-status').closest('.chart-card');
    const revenueCard = $('#chart-revenue').closest('.chart-card');
    statusCard.hidden = !names.includes('orders_by_status');
    revenueCard.hidden = !names.includes('revenue_by_day');
    if (!statusCard.hidden) {
      const byStatus = (await rows('orders_by_status')).filter((r) => typeof r.count === 'number');
      const order = Object.keys(STATUS_COLORS);
      byStatus.sort((a, b) => (order.indexOf(a.status) + 1 || 99) - (order.indexOf(b.status) + 1 || 99));
      $('#chart-status-empty').textContent = 'No rows yet.';
      $('#chart-status-empty').hidden = byStatus.length > 0;
      drawChart('status', '#chart-status', {
        type: 'bar',
        data: {
          labels: byStatus.map((r) => r.status),
          datasets: [{
            label: 'live orders',
            data: byStatus.map((r) => r.count),
            backgroundColor: byStatus.map((r) => STATUS_COLORS[r.status] || '#0f8b8d'),
          }],
        },
        options: chartBase({
          plugins: { legend: { display: false } },
          scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
        }),
      });
      $('#chart-status').dataset.points = String(byStatus.length);
    }
    if (!revenueCard.hidden) {
      const revenue = await rows('revenue_by_day');
      const days = [...new Set(revenue.map((r) => r.day))].sort();
      const currencies = [...new Set(revenue.map((r) => r.currency))].sort();
      $('#chart-revenue-empty').textContent = 'No paid orders yet.';
      $('#chart-revenue-empty').hidden = revenue.length > 0;
      drawChart('revenue', '#chart-revenue', {
        type: 'bar',
        data: {
          labels: days,
          datasets: currencies.map((cur, i) => ({
            label: cur,
            data: days.map((d) => {
              const row = revenue.find((r) => r.day === d && r.currency === cur);
              return row ? Number(row.revenue) : 0;
            }),
            backgroundColor: SERIES_COLORS[i % SERIES_COLORS.length],
          })),
        },
        options: chartBase({
          plugins: {
            legend: { display: true, position: 'bottom' },
            tooltip: {
              callbacks: {
                label: (ctx) => {
                  const row = revenue.find((r) => r.day === days[ctx.dataIndex] && r.currency === ctx.dataset.label);
                  return `${ctx.dataset.label} ${row ? row.revenue : 0} (${row ? plural(row.orders, 'order') : '0 orders'})`;
                },
              },
            },
          },
        }),
      });
      $('#chart-revenue').dataset.points = String(revenue.length);
    }
  }

  function askRebuild(name) {
    const dialog = $('#rebuild-dialog');
    dialog.dataset.name = name;
    $('#rebuild-title').textContent = `Rebuild ${name}`;
    $('#rebuild-error').hidden = true;
    $('#admin-key').value = '';
    dialog.returnValue = '';
    dialog.showModal();
    $('#admin-key').focus();
  }

  async function submitRebuild(event) {
    const dialog = $('#rebuild-dialog');
    const submitter = event.submitter;
    if (submitter && submitter.value !== 'ok') return;
    event.preventDefault();
    const name = dialog.dataset.name;
    const key = $('#admin-key').value;
    const error = $('#rebuild-error');
    error.hidden = true;
    $('#rebuild-ok').disabled = true;
    try {
      const created = await api(`/v1/admin/projections/${enc(name)}/rebuild`, { method: 'POST', admin: key });
      dialog.close('ok');
      followJob(name, created.job, key);
    } catch (err) {
      error.textContent = err instanceof ApiError && err.status === 409
        ? `A rebuild of ${name} is already queued or running.`
        : err.message;
      error.hidden = false;
    } finally {
      $('#rebuild-ok').disabled = false;
    }
  }

  async function followJob(name, id, key) {
    job = { name, id, state: 'queued' };
    const box = $('#job');
    box.hidden = false;
    box.dataset.job = id;
    $('#job-title').textContent = `Rebuild of ${name} · job ${id}`;
    for (;;) {
      let j;
      try {
        j = await api(`/v1/admin/jobs/${enc(id)}`, { admin: key });
      } catch (err) {
        $('#job-detail').textContent = `Cannot follow the job: ${err.message}`;
        break;
      }
      job.state = j.state;
      box.dataset.state = j.state;
      const badge = $('#job-state');
      badge.textContent = j.state;
      badge.className = 'badge ' + (j.state === 'succeeded' ? 'ok' : j.state === 'failed' ? 'bad' : 'info');
      const progress = $('#job-progress');
      progress.max = Math.max(j.total, 1);
      progress.value = j.state === 'succeeded' ? progress.max : j.processed;
      const pct = j.total ? Math.round((100 * j.processed) / j.total) : (j.state === 'succeeded' ? 100 : 0);
      $('#job-detail').textContent = `${j.processed.toLocaleString('en')} of ${j.total.toLocaleString('en')} events (${pct}%)` +
        (j.started_at ? ` · started ${j.started_at.replace('T', ' ')}` : '') +
        (j.finished_at ? ` · finished ${j.finished_at.replace('T', ' ')}` : '') +
        (j.error ? ` · error: ${j.error}` : '');
      if (j.state === 'succeeded' || j.state === 'failed') break;
      await sleep(400);
    }
    refreshProjections();
  }

  // -- wiring ----------------------------------------------------------------------------------
  function wire() {
    $('#alert-close').addEventListener('click', clearError);
    $('#live-toggle').addEventListener('click', toggleLive);
    $('#key-button').addEventListener('click', () => askReadKey('').then((ok) => { if (ok) start(); }));
    $('#key-forget').addEventListener('click', () => {
      setReadKey(null);
      $('#key-dialog').close('cancel');
    });
    $('#stream-select').addEventListener('change', (ev) => pickStream(ev.target.value));
    // The skip link moves the focus, not the route: `#main` is no view.
    $('.skip').addEventListener('click', (ev) => {
      ev.preventDefault();
      $('#main').focus();
    });
    $('#open-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      openFromForm($('#open-key').value.trim()).catch(showError);
    });
    $('#recent-refresh').addEventListener('click', () => loadRecent(true).catch(showError));
    $('#recent-more').addEventListener('click', () => loadRecent(false).catch(showError));
    $('#timeline-more').addEventListener('click', () => loadOlder().catch(showError));

    const slider = $('#travel-slider');
    const fromSlider = debounce(() => {
      const e = app.entity;
      if (!e) return;
      const v = Number(slider.value);
      e.follow = v === e.latest;
      showVersion(v).catch(showError);
    }, 120);
    slider.addEventListener('input', () => {
      const e = app.entity;
      if (!e) return;
      // Moved off the latest version: live events no longer move the slider.
      e.follow = Number(slider.value) === e.latest;
      $('#travel-version').textContent = `${slider.value} of ${e.latest}`;
      fromSlider();
    });
    $('#travel-at-go').addEventListener('click', () => {
      const iso = inputToIso($('#travel-at').value);
      if (iso) showAt(iso).catch(showError);
    });
    $('#travel-at').addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') $('#travel-at-go').click();
    });
    $('#travel-latest').addEventListener('click', () => {
      const e = app.entity;
      if (!e) return;
      e.follow = true;
      showVersion(e.latest).catch(showError);
    });

    const types = $('#q-types');
    types.replaceChildren(...EVENT_TYPES.map((t) => h('label', {},
      h('input', { type: 'checkbox', name: 'type', value: t }), h('span', { class: `badge t-${t}` }, t))));
    $('#query-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      clearError();
      const params = queryParamsFromForm();
      const hash = queryHash(params);
      if (location.hash === hash) runQuery(null).catch(showError);
      else location.hash = hash;
    });
    $('#query-form').addEventListener('reset', () => setTimeout(() => {
      $('#results tbody').replaceChildren();
      $('#results-summary').textContent = '';
      app.query = null;
    }));
    $('#page-next').addEventListener('click', () => {
      if (app.query && app.query.next) runQuery(app.query.next, 'next').catch(showError);
    });
    $('#page-prev').addEventListener('click', () => {
      if (app.query && app.query.page > 0) runQuery(null, 'prev').catch(showError);
    });
    $('#export-csv').addEventListener('click', () => exportAs('text/csv', 'events.csv').catch(showError));
    $('#export-ndjson').addEventListener('click', () => exportAs('application/x-ndjson', 'events.ndjson').catch(showError));
    $('#rebuild-form').addEventListener('submit', submitRebuild);
    $('#proj-problems-close').addEventListener('click', () => { $('#proj-problems').hidden = true; });
    $('#proj-rows-close').addEventListener('click', () => {
      $('#proj-rows').hidden = true;
      rowsView.token += 1; // a page still on its way is not shown
    });
    $('#rows-next').addEventListener('click', () => showRows(rowsView.name, 'next').catch(showError));
    $('#rows-prev').addEventListener('click', () => showRows(rowsView.name, 'prev').catch(showError));
    wireSubscriptions();
    for (const button of $$('dialog [data-close]')) {
      button.addEventListener('click', () => button.closest('dialog').close('cancel'));
    }

    window.addEventListener('hashchange', () => {
      clearError();
      route();
    });
  }

  // -- capture health ----------------------------------------------------------------------------
  // A banner while no instance is capturing, or capture is failed or retrying (GET /v1/workers).
  const CAPTURE_POLL_MS = 5000;

  function captureTrouble(workers) {
    const captures = workers.filter((w) => w.kind === 'capture');
    const running = captures.filter((w) => w.state === 'running');
    const failed = captures.find((w) => w.state === 'failed');
    const retrying = captures.find((w) => w.state === 'retrying');
    const other = running.length ? ' Another instance is capturing.' : '';
    if (failed) {
      return { state: 'failed', title: 'Capture failed',
        text: `${failed.name} on ${failed.instance} since ${failed.since}: ${failed.last_error || 'no error recorded'}. ` +
          'Fix the cause, then restart it (POST /v1/admin/workers/{name}/restart).' + other };
    }
    if (retrying) {
      return { state: 'retrying', title: 'Capture is retrying',
        text: `${retrying.name} on ${retrying.instance} (${plural(retrying.restarts, 'restart')}): ` +
          `${retrying.last_error || 'no error recorded'}.` + other };
    }
    if (!running.length) {
      return { state: 'none', title: 'No instance is capturing',
        text: 'Changes to the source are not being recorded: start `eventstore run` or `eventstore ingest`.' };
    }
    return null;
  }

  async function checkCapture() {
    let trouble;
    try {
      trouble = captureTrouble(await api('/v1/workers'));
    } catch (_) {
      return; // the API says why elsewhere (the alert); keep the last verdict
    }
    const banner = $('#capture-banner');
    banner.hidden = !trouble;
    banner.dataset.state = trouble ? trouble.state : 'capturing';
    $('#capture-title').textContent = trouble ? trouble.title + '.' : '';
    $('#capture-text').textContent = trouble ? trouble.text : '';
  }

  let started = false;
  async function start() {
    try {
      await loadStreams();
    } catch (err) {
      showError(err);
      markUnavailable(err);
      return;
    }
    // The recent list first, then the live tail from the head read before it: an event
    // recorded in between is in both, and applying it twice changes nothing.
    const head = headSeq();
    await loadRecent(true).catch(showError);
    if (!started) {
      started = true;
      live.after = head;
      liveLoop();
      checkCapture();
      setInterval(checkCapture, CAPTURE_POLL_MS);
    } else if (!live.running && !live.paused) {
      liveLoop();
    }
    await route();
    document.body.dataset.ready = 'true';
  }

  document.addEventListener('DOMContentLoaded', () => {
    memoryKey = readKey();
    setReadKey(memoryKey);
    wire();
    start();
  });
})();
