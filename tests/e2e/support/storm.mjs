// Pieces of a refresh storm that storm.test.mjs and dpop-storm.test.mjs
// share: bursts fired by every tab at one wall-clock instant, a bounded
// wait, and the check that every tab heard exactly one new set of tokens
// per round.
import assert from "node:assert/strict";

import { eventsOf, sleep } from "./session.mjs";

// Every tab waits for the wall-clock instant `startAt` (tabs of one context
// share the clock), then fires `count` concurrent fetchWithAuth(url).
// Resolves with the statuses ("error:<code>" for rejections), the latest
// `exp` (epoch seconds) the API reported for a token used, how many answers
// the API accepted as DPoP (`"dpop": true`) and the key thumbprints (`jkt`)
// they named.
export function burstAt(page, url, count, startAt) {
  return page.evaluate(
    async ([url, count, startAt]) => {
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, startAt - Date.now())));
      let exp = 0;
      let dpop = 0;
      const jkts = new Set();
      const one = () =>
        window.auth.fetchWithAuth(url).then(
          async (res) => {
            if (res.ok) {
              const body = await res.json();
              exp = Math.max(exp, body.exp);
              if (body.dpop === true) dpop += 1;
              if (body.jkt) jkts.add(body.jkt);
            }
            return res.status;
          },
          (e) => `error:${e.code ?? e.name}`,
        );
      const statuses = await Promise.all(Array.from({ length: count }, one));
      return { statuses, exp, dpop, jkts: [...jkts] };
    },
    [url, count, startAt],
  );
}

// Polls `check` until it returns true or `timeoutMs` passes (bounded).
export async function waitFor(check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(50);
  }
  return check();
}

const tokenEvents = (events) => events.filter((e) => e.name === "tokens");

// After round `round` (1-based): every tab heard `round` sets of tokens and
// nothing else; in this round one tab's set came from its own refresh, the
// others' from syncing it. Broadcasts may land just after the last call
// resolved: waits (bounded) until every tab heard `round` sets, then a
// little longer for strays.
export async function assertOneSetPerTab(tabs, round, label) {
  await waitFor(
    async () => (await Promise.all(tabs.map(eventsOf))).every((events) => tokenEvents(events).length >= round),
    3_000,
  );
  await sleep(150);
  const events = await Promise.all(tabs.map(eventsOf));
  for (const [i, list] of events.entries()) {
    const others = list.filter((e) => e.name !== "tokens");
    assert.deepEqual(others, [], `${label}: tab ${i} emitted no other events — ${JSON.stringify(events)}`);
    assert.equal(tokenEvents(list).length, round, `${label}: tab ${i} heard one set per round — ${JSON.stringify(events)}`);
  }
  const sources = events.map((list) => tokenEvents(list)[round - 1].source);
  assert.equal(sources.filter((s) => s === "refresh").length, 1, `${label}: one tab refreshed — ${JSON.stringify(sources)}`);
  assert.equal(sources.filter((s) => s === "sync").length, tabs.length - 1, `${label}: the others synced — ${JSON.stringify(sources)}`);
}
