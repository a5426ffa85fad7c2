"""A small Strata client for Python (standard library only).

    from strata_client import StrataClient
    with StrataClient("https://events.example.com", key) as strata:
        strata.track("user-42", "signup", {"plan": "pro"})

Events are batched and sent when `max_batch` are waiting, on `flush()`, and
on leaving the `with` block. Each event gets its `event_id` when it is
tracked, so a batch sent again after a timeout, a 429 or a 5xx is stored
once (Strata keeps an event_id at most once per project). A 429 or 503 is
retried after its Retry-After; a network error or another 5xx after a
growing delay; any other 4xx is the batch's own fault and raises.

Run as a script, it sends the JSON events on stdin, one per line (each
needs user_id and event_type; event_id and timestamp are filled in when
absent), and prints what happened as JSON:

    python3 strata_client.py --url http://127.0.0.1:8080 --key "$KEY" < events.jsonl
"""

import argparse
import json
import random
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone


class StrataError(Exception):
    """A batch the server refused for good (a 4xx other than 429)."""

    def __init__(self, status, body):
        super().__init__(f"{status}: {body.get('code')}: {body.get('error')}")
        self.status = status
        self.body = body


class StrataClient:
    def __init__(self, url, key, max_batch=500, max_attempts=8, base_delay=0.5, timeout=30):
        self.endpoint = url.rstrip("/") + "/v1/events"
        self.key = key
        self.max_batch = max_batch
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.timeout = timeout
        self.pending = []
        self.stats = {"accepted": 0, "duplicates": 0, "rejected": [], "retries": 0}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.flush()

    def track(self, user_id, event_type, properties=None, timestamp=None, event_id=None):
        self.add({
            "event_id": event_id or str(uuid.uuid4()),
            "user_id": str(user_id),
            "event_type": event_type,
            "timestamp": timestamp or datetime.now(timezone.utc).isoformat(),
            "properties": properties or {},
        })

    def add(self, event):
        """Queues an event as the API takes it (event_id and timestamp set)."""
        self.pending.append(event)
        if len(self.pending) >= self.max_batch:
            self.flush()

    def flush(self):
        while self.pending:
            batch, self.pending = self.pending[: self.max_batch], self.pending[self.max_batch :]
            self._send(batch)

    def _send(self, events):
        body = json.dumps({"events": events}).encode()
        for attempt in range(1, self.max_attempts + 1):
            request = urllib.request.Request(
                self.endpoint,
                data=body,
                method="POST",
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    answer = json.load(response)
                # 200: stored now; 202 (queue mode): queued, stored shortly.
                self.stats["accepted"] += answer.get("accepted", len(events))
                self.stats["duplicates"] += answer.get("duplicates", 0)
                self.stats["rejected"] += answer.get("rejected", [])
                return
            except urllib.error.HTTPError as e:
                status, retry_after = e.code, e.headers.get("Retry-After")
                try:
                    detail = json.load(e)
                except ValueError:
                    detail = {}
                if status != 429 and status < 500:
                    raise StrataError(status, detail) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError):
                status, retry_after = 0, None
            if attempt == self.max_attempts:
                raise StrataError(status, {"code": "gave_up", "error": f"{attempt} attempts"})
            self.stats["retries"] += 1
            time.sleep(_delay(retry_after, attempt, self.base_delay))


def _delay(retry_after, attempt, base_delay):
    """Retry-After (seconds) when given, else exponential backoff with jitter."""
    try:
        if retry_after is not None and float(retry_after) > 0:
            return float(retry_after)
    except ValueError:
        pass
    backoff = min(30.0, base_delay * 2 ** (attempt - 1))
    return backoff / 2 + random.random() * backoff / 2


def main():
    parser = argparse.ArgumentParser(description="Send JSON-lines events to Strata.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--max-batch", type=int, default=500)
    args = parser.parse_args()
    client = StrataClient(args.url, args.key, max_batch=args.max_batch)
    with client:
        for line in sys.stdin:
            if line.strip():
                event = json.loads(line)
                event.setdefault("event_id", str(uuid.uuid4()))
                event.setdefault("timestamp", datetime.now(timezone.utc).isoformat())
                client.add(event)
    json.dump(client.stats, sys.stdout)
    print()


if __name__ == "__main__":
    main()
