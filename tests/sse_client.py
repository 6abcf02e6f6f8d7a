"""A small SSE client over real HTTP (httpx) that collects events in a background thread."""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass

import httpx


@dataclass
class SseEvent:
    id: str | None
    event: str
    data: dict


class SseReader:
    def __init__(self, url: str, token: str | None, last_event_id: str | None = None) -> None:
        self.url = url
        self.headers = {"Accept": "text/event-stream"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        if last_event_id:
            self.headers["Last-Event-ID"] = last_event_id
        self.events: queue.Queue[SseEvent] = queue.Queue()
        self.comments = 0
        self.status: int | None = None
        self.opened = threading.Event()
        self.ended = threading.Event()  # the server closed the stream (or the connection failed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SseReader:
        self._thread.start()
        if not self.opened.wait(15):
            raise TimeoutError("stream did not open")
        return self

    def _run(self) -> None:
        try:
            self._read()
        except httpx.HTTPError:
            self.opened.set()  # the server went away: the stream simply ends
        finally:
            self.ended.set()

    def _read(self) -> None:
        with (
            httpx.Client(timeout=httpx.Timeout(30, read=60)) as client,
            client.stream("GET", self.url, headers=self.headers) as response,
        ):
            self.status = response.status_code
            self.opened.set()
            if response.status_code != 200:
                return
            fields: dict[str, str] = {}
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line == "":
                    if "event" in fields or "data" in fields:
                        self.events.put(
                            SseEvent(
                                fields.get("id"), fields.get("event", "message"), json.loads(fields.get("data", "{}"))
                            )
                        )
                    fields = {}
                elif line.startswith(":"):
                    self.comments += 1
                elif ":" in line:
                    name, _, value = line.partition(":")
                    fields[name] = value.lstrip(" ")

    def take(self, n: int, timeout: float = 15) -> list[SseEvent]:
        return [self.events.get(timeout=timeout) for _ in range(n)]

    def close(self) -> None:
        self._stop.set()
