// A small Strata client for the browser (an ES module, no dependencies).
//
//   import { StrataClient } from "./strata.js";
//   const strata = new StrataClient({ url: "https://events.example.com", key: "<client key>" });
//   strata.track("user-42", "page_view", { path: location.pathname });
//
// Events are batched and sent every `flushMs` or when `maxBatch` are waiting.
// Each event gets its `event_id` when it is tracked, so a batch that is sent
// again after a timeout, a 429 or a 5xx is stored once (Strata keeps an
// event_id at most once per project). A 429 or 503 is retried after its
// Retry-After; a network error or another 5xx after a growing delay; any
// other 4xx is the batch's own fault and is not retried. Embed only a client
// key (`strata-api keys create --project … --client`): it can send events and
// nothing else. The server must list your page's origin in STRATA_CORS_ORIGINS.

export class StrataClient {
  constructor({ url, key, maxBatch = 100, flushMs = 5000, maxAttempts = 8, baseDelayMs = 500 }) {
    this.endpoint = `${url.replace(/\/+$/, "")}/v1/events`;
    this.key = key;
    this.maxBatch = maxBatch;
    this.maxAttempts = maxAttempts;
    this.baseDelayMs = baseDelayMs;
    this.queue = [];
    this.sending = Promise.resolve();
    // What happened so far: events stored, duplicates, rejected, retries.
    this.stats = { accepted: 0, duplicates: 0, rejected: [], retries: 0, dropped: 0 };
    this.timer = setInterval(() => this.flush(), flushMs);
    // A closing page gets one last try that outlives it.
    addEventListener("pagehide", () => this.flush({ keepalive: true }));
  }

  track(userId, eventType, properties = {}) {
    this.queue.push({
      event_id: crypto.randomUUID(),
      user_id: String(userId),
      event_type: eventType,
      timestamp: new Date().toISOString(),
      properties,
    });
    if (this.queue.length >= this.maxBatch) this.flush();
  }

  // Sends everything tracked so far; resolves when it is stored or given up.
  flush({ keepalive = false } = {}) {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      // One batch at a time, in order.
      this.sending = this.sending
        .then(() => this.send(batch, keepalive))
        .catch((error) => {
          this.stats.dropped += batch.length;
          console.warn(`strata: ${batch.length} events not sent (${error})`);
        });
    }
    return this.sending;
  }

  close() {
    clearInterval(this.timer);
    return this.flush();
  }

  async send(events, keepalive) {
    const body = JSON.stringify({ events });
    for (let attempt = 1; ; attempt++) {
      let response;
      try {
        response = await fetch(this.endpoint, {
          method: "POST",
          headers: { "Content-Type": "application/json", "Authorization": `Bearer ${this.key}` },
          body,
          keepalive,
        });
      } catch (networkError) {
        response = null;
      }
      if (response && response.ok) {
        const answer = await response.json();
        // 200: stored now; 202 (queue mode): queued, stored shortly.
        this.stats.accepted += answer.accepted ?? events.length;
        this.stats.duplicates += answer.duplicates ?? 0;
        this.stats.rejected.push(...(answer.rejected ?? []));
        return;
      }
      const status = response ? response.status : 0;
      const retryable = status === 0 || status === 429 || status >= 500;
      if (!retryable || attempt >= this.maxAttempts) {
        this.stats.dropped += events.length;
        const error = response ? (await response.json().catch(() => ({}))).code : "network";
        console.warn(`strata: ${events.length} events not sent (${status || "network"}: ${error})`);
        return;
      }
      this.stats.retries += 1;
      await sleep(retryDelay(response, attempt, this.baseDelayMs));
    }
  }
}

// Retry-After (seconds) when the server gives one, else exponential backoff
// with jitter, at most 30 s.
function retryDelay(response, attempt, baseDelayMs) {
  const after = Number(response?.headers.get("Retry-After"));
  if (Number.isFinite(after) && after > 0) return after * 1000;
  const backoff = Math.min(30000, baseDelayMs * 2 ** (attempt - 1));
  return backoff / 2 + Math.random() * (backoff / 2);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
