"""A phone network between the browser and the server: a TCP proxy with latency and bandwidth.

Chromium's own network emulation does not reach everything a first visit loads (a dedicated
worker's script is fetched outside the page's DevTools session), so the benchmark puts the
whole visit behind a real link instead: every byte from the server waits for a one-way delay
(half the round trip) and then for its turn on one shared downlink of the given rate; requests
go up the same way on the uplink. It also counts the bytes each response put on the wire
(headers included, as compressed as the server sent them), by the path that was asked for.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import defaultdict

REQUEST_LINE = re.compile(
    rb"^(?:GET|POST|PUT|HEAD|DELETE|OPTIONS|PATCH) (\S+) HTTP/1\.[01]\r?$", re.M
)
CHUNK = 16 * 1024


class Link:
    """One direction of the link: a latency and a rate shared by every connection."""

    def __init__(self, latency_s: float, bytes_per_s: float):
        self.latency_s = latency_s
        self.bytes_per_s = bytes_per_s
        self.free_at = 0.0

    def delivery_time(self, size: int, sent_at: float) -> float:
        start = max(sent_at + self.latency_s, self.free_at)
        self.free_at = start + size / self.bytes_per_s
        return self.free_at


class SlowLink:
    """Serve ``127.0.0.1:<port>`` as the upstream ``target`` behind the link, in a thread."""

    def __init__(self, target: str, rtt_ms: float, down_bits_per_s: float, up_bits_per_s: float):
        host, port = target.removeprefix("http://").rstrip("/").split(":")
        self.upstream = (host, int(port))
        self.down = Link(rtt_ms / 2000, down_bits_per_s / 8)
        self.up = Link(rtt_ms / 2000, up_bits_per_s / 8)
        self.bytes_by_path: dict[str, int] = defaultdict(int)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> SlowLink:
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self.listen(), self.loop).result(timeout=10)
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)

    def reset_counts(self) -> None:
        self.bytes_by_path.clear()

    async def listen(self) -> None:
        self.server = await asyncio.start_server(self.connection, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def connection(self, client_reader, client_writer) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            return
        asked: list[str] = []  # paths requested on this connection, in order (no pipelining)
        await asyncio.gather(
            self.pipe(
                client_reader,
                upstream_writer,
                self.up,
                on_data=lambda d: self.note_requests(d, asked),
            ),
            self.pipe(
                upstream_reader, client_writer, self.down, on_data=lambda d: self.count(d, asked)
            ),
            return_exceptions=True,
        )

    def note_requests(self, data: bytes, asked: list[str]) -> None:
        asked.extend(
            m.group(1).decode("latin-1").split("?")[0] for m in REQUEST_LINE.finditer(data)
        )

    def count(self, data: bytes, asked: list[str]) -> None:
        # Responses follow requests in order; a response's bytes belong to the newest request
        # whose response has started (good enough for byte totals by path).
        self.bytes_by_path[asked[-1] if asked else "?"] += len(data)

    async def pipe(self, reader, writer, link: Link, on_data) -> None:
        """Copy one direction: read as fast as the sender sends, deliver when the link would."""
        queue: asyncio.Queue = asyncio.Queue()

        async def receive() -> None:
            try:
                while data := await reader.read(CHUNK):
                    on_data(data)
                    await queue.put((data, link.delivery_time(len(data), time.monotonic())))
            finally:
                await queue.put((b"", 0.0))

        receiving = asyncio.create_task(receive())
        try:
            while True:
                data, deliver_at = await queue.get()
                if not data:
                    break
                await asyncio.sleep(max(0.0, deliver_at - time.monotonic()))
                writer.write(data)
                await writer.drain()
        finally:
            receiving.cancel()
            writer.close()
