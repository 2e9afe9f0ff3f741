#!/usr/bin/env python3
"""onebox side by side with NSD, Knot and nginx: the measuring half of scripts/bench.sh.

bench.sh installs the tools, builds onebox and calls this with a work folder it
removes afterwards. This script starts every server itself (each in its own
process group, pinned to core 0), drives load from core 1, and reports medians of
interleaved rounds. The figure that matters is work per server CPU-second: on a
2-core machine the load generator saturates its core long before a good server
saturates its own, so raw queries/s mostly measure dnsperf and wrk.

Standard library only, so it runs on a bare Debian python3.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# taskset CPU lists; --cores moves both (see use_cores).
SERVER_CPU = "0"  # every server runs here
CLIENT_CPU = "1"  # dnsperf, wrk and the Python probes run here
HOST = "foobar.com"
TICK = os.sysconf("SC_CLK_TCK")

# The UDP/TCP query mix: the questions a resolver asks of this zone, including
# names that do not exist (NXDOMAIN) and a type the zone lacks (NODATA).
QUERY_MIX = [
    "www.foobar.com A",
    "foobar.com A",
    "foobar.com SOA",
    "foobar.com NS",
    "foobar.com AAAA",
    "nonexistent.foobar.com A",
    "no-such-host.foobar.com AAAA",
]

# Moderate fixed rate for latency percentiles: far below every server's capacity,
# so the figure is service time, not queueing.
LATENCY_QPS = 20000


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# --- processes and /proc --------------------------------------------------------


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 = state)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = proc_stat(int(entry.name))
        if fields and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def group_cpu(pgid: int) -> float:
    """CPU seconds (user+system, all threads) of every process in the group, plus
    what the leader has already collected from children that exited."""
    total = 0
    for pid in group_members(pgid):
        fields = proc_stat(pid)
        if not fields:
            continue
        total += int(fields[11]) + int(fields[12])
        if pid == pgid:
            total += int(fields[13]) + int(fields[14])
    return total / TICK


def group_rss_mb(pgid: int) -> float:
    """Sum of VmRSS over the group (forked servers share pages: an upper bound)."""
    total_kb = 0
    for pid in group_members(pgid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            pass
    return total_kb / 1024


def udp_rcvbuf_errors() -> int:
    """Datagrams the kernel dropped because a socket's receive buffer was full
    (system-wide, /proc/net/snmp): where lost UDP queries go."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
    try:
        return int(lines[1][lines[0].index("RcvbufErrors")])
    except (IndexError, ValueError):
        return 0


def cpu_list(spec: str) -> list[int]:
    """The cores of a taskset list such as "0", "0-3" or "0,2-3"."""
    cores: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        cores.extend(range(int(lo), int(hi or lo) + 1))
    return cores


def core_busy(spec: str) -> tuple[int, int]:
    """(busy ticks, total ticks) of the cores in a taskset list, from /proc/stat."""
    wanted = {f"cpu{c}" for c in cpu_list(spec)}
    busy, total = 0, 0
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] in wanted:
            v = [int(x) for x in fields[1:]]
            busy += sum(v[:8]) - v[3] - v[4]
            total += sum(v[:8])
    return (busy, total) if total else (0, 1)


def use_cores(servers: int) -> None:
    """Pins the servers to the first `servers` cores and the load to the rest."""
    global SERVER_CPU, CLIENT_CPU
    n = os.cpu_count() or 1
    if not 0 < servers < n:
        raise ValueError(f"cannot give {servers} core(s) to the servers and keep one for the load on {n} cores")
    SERVER_CPU = "0" if servers == 1 else f"0-{servers - 1}"
    CLIENT_CPU = str(servers) if servers == n - 1 else f"{servers}-{n - 1}"


def load_cores() -> int:
    return len(cpu_list(CLIENT_CPU))


class Procs:
    """Every server this run starts, each in its own session, so that one kill of
    the group also reaches NSD's and nginx's forked workers. The group ids are also
    written to a file for bench.sh's exit trap, in case this script dies."""

    def __init__(self, pidfile: Path):
        self.pidfile = pidfile
        self.groups: list[subprocess.Popen] = []

    def start(self, argv: list[str], *, env=None, stdout=None, stderr=None, cwd=None) -> subprocess.Popen:
        p = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *argv],
            env=env,
            stdout=stdout if stdout is not None else subprocess.DEVNULL,
            stderr=stderr if stderr is not None else subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
        )
        self.groups.append(p)
        with self.pidfile.open("a") as f:
            f.write(f"{p.pid}\n")
        return p

    def stop(self, p, timeout: float = 10.0) -> None:
        """Stops a server (a `Server` or the `Popen` it runs in) and all its group."""
        p = getattr(p, "proc", p)
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Forked workers (NSD's server and xfrd, nginx's worker) outlive a leader
        # that is already gone; the group id still names them.
        deadline = time.monotonic() + timeout
        while group_members(p.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if group_members(p.pid):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if p.poll() is None:
            p.kill()
            p.wait()
        if p in self.groups:
            self.groups.remove(p)

    def stop_all(self) -> None:
        for p in list(self.groups):
            self.stop(p)


def run_client(argv: list[str], timeout: float, out: Path, env=None) -> tuple[int, str, float]:
    """Runs a load generator on the client core; returns (exit code, output, its CPU s)."""
    with out.open("wb") as f:
        p = subprocess.Popen(
            ["taskset", "-c", CLIENT_CPU, *argv],
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + timeout
        try:
            while True:
                pid, status, usage = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    p.returncode = os.waitstatus_to_exitcode(status)
                    break
                if time.monotonic() > deadline:
                    p.kill()
                    _, status, usage = os.wait4(p.pid, 0)
                    p.returncode = -9
                    break
                time.sleep(0.02)
        except BaseException:
            # Interrupted: the load stops with us.
            p.kill()
            os.wait4(p.pid, 0)
            raise
    return p.returncode, out.read_text(errors="replace"), usage.ru_utime + usage.ru_stime


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (DNS needs both)."""
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError("no free port on 127.0.0.1")


# --- DNS on the wire --------------------------------------------------------------

QTYPES = {"A": 1, "NS": 2, "SOA": 6, "AAAA": 28}


def dns_query(qid: int, name: str, qtype: str) -> bytes:
    wire = b"".join(bytes([len(label)]) + label.encode() for label in name.strip(".").split("."))
    return struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + wire + b"\0" + struct.pack(">HH", QTYPES[qtype], 1)


def dns_ask(port: int, name: str, qtype: str, timeout: float = 1.0) -> bytes | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(dns_query(0x4242, name, qtype), ("127.0.0.1", port))
        reply, _ = s.recvfrom(4096)
        return reply
    except OSError:
        return None
    finally:
        s.close()


def dns_summary(reply: bytes | None) -> str:
    """rcode, flags that matter and section counts: what must agree across servers."""
    if not reply or len(reply) < 12:
        return "no answer"
    _, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", reply[:12])
    rcode = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}.get(flags & 0xF, str(flags & 0xF))
    aa = "aa" if flags & 0x0400 else "-"
    return f"{rcode} {aa} an={an} ns={ns} ar={ar} {len(reply)} bytes"


def wait_dns(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if dns_ask(port, HOST, "SOA", 0.2):
            return True
        time.sleep(0.02)
    return False


# --- HTTP -------------------------------------------------------------------------


def http_request(port: int, method: str, path: str, body: bytes | None = None, headers=None, timeout=3.0):
    """(status, headers, body) or raises OSError/HTTPException."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = {"Host": HOST}
        if body is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def http_probe(port: int | None, path: str) -> tuple[int | None, bytes, str]:
    """(status, body, problem) for one GET; problem is '' when something answered."""
    if port is None:
        return None, b"", "no HTTP listener"
    try:
        status, _, body = http_request(port, "GET", path, timeout=2.0)
        return status, body, ""
    except (OSError, http.client.HTTPException) as e:
        return None, b"", f"no HTTP listener answered ({type(e).__name__}: {e})"


# --- servers ----------------------------------------------------------------------


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    dns_port: int | None = None
    http_port: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def pgid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None


def read_ready(p: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    buf = b""
    fd = p.stdout.fileno()
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or p.poll() is not None:
            raise RuntimeError("onebox printed no ready line")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError("onebox closed stdout without a ready line")
            buf += chunk
    return json.loads(buf.split(b"\n", 1)[0])


def onebox_env() -> dict:
    """onebox as shipped: the default log level whatever the caller's shell says
    (stderr goes to a file, as a service manager would keep it)."""
    env = dict(os.environ)
    env.pop("RUST_LOG", None)
    return env


def start_onebox(procs: Procs, binary: str, work: Path, tag: str, extra_args: list[str]) -> Server:
    name = "onebox"
    err = (work / f"{tag}.stderr").open("wb")
    p = procs.start(
        [binary, "serve", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0", *extra_args],
        env=onebox_env(),
        stdout=subprocess.PIPE,
        stderr=err,
        cwd=work,
    )
    ready = read_ready(p, 30)
    s = Server(name, p, dns_port=int(ready["dns"].rsplit(":", 1)[1]), http_port=int(ready["http"].rsplit(":", 1)[1]))
    s.extra["ready"] = ready
    if not wait_dns(s.dns_port, time.monotonic() + 10):
        raise RuntimeError(f"{name} does not answer DNS on {ready['dns']}")
    return s


def write_conf(d: Path, name: str, text) -> Path:
    """Writes the configuration `text(d)` as `d/name` (making the folder `d`, where
    the server also keeps its pid, logs and state) and returns its path."""
    d.mkdir(exist_ok=True)
    conf = d / name
    conf.write_text(text(d))
    return conf


def nsd_conf(work: Path, zone: Path, port: int, workers: int = 1) -> Path:
    return write_conf(
        work / "nsd",
        "nsd.conf",
        lambda d: f"""server:
    server-count: {workers}
    # One socket per server process, as onebox has one per worker.
    reuseport: {"yes" if workers > 1 else "no"}
    ip-address: 127.0.0.1@{port}
    username: ""
    chroot: ""
    zonesdir: "{d}"
    database: ""
    zonelistfile: "{d}/zone.list"
    xfrdfile: "{d}/xfrd.state"
    xfrdir: "{d}"
    pidfile: "{d}/nsd.pid"
    logfile: "{d}/nsd.log"
    verbosity: 0
    # RRL is on by default in Debian's NSD (200 answers/s per /24, loopback
    # included) and would drop most of the load; onebox exempts loopback.
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: foobar.com
    zonefile: "{zone}"
""",
    )


def knot_conf(work: Path, zone: Path, port: int, workers: int = 1) -> Path:
    return write_conf(
        work / "knot",
        "knot.conf",
        lambda d: f"""server:
    rundir: "{d}"
    pidfile: "{d}/knot.pid"
    listen: 127.0.0.1@{port}
    udp-workers: {workers}
    tcp-workers: {workers}
    background-workers: 1
control:
    listen: "{d}/knot.sock"
database:
    storage: "{d}"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "{d}"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: foobar.com
    file: "{zone}"
""",
    )


def nginx_conf(work: Path, site: Path, port: int, workers: int = 1) -> Path:
    return write_conf(
        work / "nginx",
        "nginx.conf",
        lambda d: f"""worker_processes {workers};
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 65;
    types {{ text/plain txt; text/html html; }}
    default_type application/octet-stream;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        server_name {HOST};
        root {site};
    }}
}}
""",
    )


def start_dns_daemon(procs: Procs, work: Path, name: str, argv: list[str], port: int, log_file: Path) -> Server:
    """Starts NSD or Knot (`argv`, already configured for `port`), its stderr in
    `work/NAME.stderr`, and waits until it answers; `log_file` is where to look when not."""
    p = procs.start(argv, stderr=(work / f"{name.lower()}.stderr").open("wb"))
    s = Server(name, p, dns_port=port)
    if not wait_dns(port, time.monotonic() + 20):
        raise RuntimeError(f"{name} does not answer on port {port}: see {log_file}")
    return s


def start_nsd(procs: Procs, work: Path, zone: Path, workers: int = 1) -> Server:
    port = free_port()
    conf = nsd_conf(work, zone, port, workers)
    return start_dns_daemon(procs, work, "NSD", ["nsd", "-d", "-c", str(conf)], port, work / "nsd" / "nsd.log")


def start_knot(procs: Procs, work: Path, zone: Path, workers: int = 1) -> Server:
    port = free_port()
    conf = knot_conf(work, zone, port, workers)
    return start_dns_daemon(procs, work, "Knot", ["knotd", "-c", str(conf)], port, work / "knot.stderr")


def start_nginx(procs: Procs, work: Path, site: Path, workers: int = 1) -> Server:
    port = free_port()
    conf = nginx_conf(work, site, port, workers)
    p = procs.start(
        ["nginx", "-e", str(work / "nginx" / "error.log"), "-p", str(work / "nginx"), "-c", str(conf)],
        stderr=(work / "nginx.stderr").open("wb"),
    )
    s = Server("nginx", p, http_port=port)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, _, _ = http_probe(port, "/bench.txt")
        if status == 200:
            return s
        time.sleep(0.05)
    log_tail = (work / "nginx" / "error.log").read_text(errors="replace")[-800:] if (work / "nginx" / "error.log").exists() else ""
    raise RuntimeError(f"nginx does not answer on port {port}: {log_tail}")


# --- measurements -----------------------------------------------------------------


@dataclass
class Sample:
    """One load run against one server."""

    work: float  # queries or requests completed
    seconds: float  # wall time of the run, as the load generator measured it
    cpu: float  # server CPU seconds during the run
    client_cpu: float
    core0_other: float  # share of core 0 busy with something other than the server
    note: str = ""

    @property
    def rate(self) -> float:
        return self.work / self.seconds if self.seconds else 0.0

    @property
    def per_cpu(self) -> float:
        return self.work / self.cpu if self.cpu > 0 else float("nan")


def measured(server: Server, fn):
    """Runs fn() and charges the server with the CPU it used meanwhile."""
    cpu0 = group_cpu(server.pgid)
    b0, t0 = core_busy(SERVER_CPU)
    result = fn()
    cpu1 = group_cpu(server.pgid)
    b1, t1 = core_busy(SERVER_CPU)
    cpu = cpu1 - cpu0
    # /proc/stat ticks are core-wide: what is left after the server's own share
    # is other programs (or interrupts) competing for the server's core.
    other = max(0.0, ((b1 - b0) / TICK - cpu) / ((t1 - t0) / TICK)) if t1 > t0 else 0.0
    return result, cpu, other


def parse_dnsperf(out: str) -> dict:
    def num(pattern, default=0.0):
        m = re.search(pattern, out)
        return float(m.group(1)) if m else default

    codes = re.search(r"Response codes:\s+(.*)", out)
    return {
        "sent": num(r"Queries sent:\s+(\d+)"),
        "completed": num(r"Queries completed:\s+(\d+)"),
        "lost": num(r"Queries lost:\s+(\d+)"),
        "runtime": num(r"Run time \(s\):\s+([\d.]+)"),
        "qps": num(r"Queries per second:\s+([\d.]+)"),
        "size": num(r"Average packet size:.*response (\d+)"),
        "codes": re.sub(r"\s+\d+ \(", " (", codes.group(1).strip()) if codes else "",
    }


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(args.work)
        self.procs = Procs(self.work / "pgids")
        self.zone = Path(args.zone).resolve()
        self.qfile = self.work / "queries.txt"
        self.qfile.write_text("\n".join(QUERY_MIX) + "\n")
        self.site = self.work / "site"
        self.site.mkdir(exist_ok=True)
        # 2048 bytes of printable text: compressible, but neither server compresses
        # here (wrk sends no Accept-Encoding).
        line = b"onebox bench static file: 2 KB served as-is by both web servers.\n"
        blob = (line * (2048 // len(line) + 1))[:2047] + b"\n"
        (self.site / "bench.txt").write_bytes(blob)
        self.static = blob
        self.results: dict[str, dict] = {}
        self.details: list[str] = []
        self.notes: list[str] = []
        self.run_id = 0
        self.interference: list[float] = []

    def out(self, tag: str) -> Path:
        self.run_id += 1
        return self.work / f"run-{self.run_id:03d}-{tag}.txt"

    def put(self, figure: str, who: str, value, raw=None):
        self.results.setdefault(figure, {})[who] = value
        if raw is not None:
            self.details.append(f"{figure} | {who} | {raw}")

    # -- DNS UPDATE --

    def dns_updates(self) -> None:
        """UPDATEs/s, durable (redb on disk), from 1 and 32 clients: each client
        replaces its own name's A record with a TSIG-signed UPDATE over UDP and
        waits for the answer, which comes only after the commit. The zone keeps its
        size, so the figure does not drift as it runs. --update-rate 0 lifts the
        per-key budget (200/s by default) that would otherwise cap it."""
        import base64
        import hashlib
        import hmac

        a = self.args
        server = start_onebox(
            self.procs, a.binary, self.work, "onebox-update", ["--data", str(self.work / "update-data"), "--update-rate", "0"]
        )
        key_text = Path(server.extra["ready"]["tsig"]).read_text()
        secret = base64.b64decode(re.search(r'secret\s+"([^"]+)"', key_text).group(1))

        def wire(name: str) -> bytes:
            return b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"

        def update(qid: int, client: int, value: int) -> bytes:
            name = wire(f"bench{client}.foobar.com")
            body = wire("foobar.com") + struct.pack(">HH", 6, 1)
            body += name + struct.pack(">HHIH", 1, 255, 0, 0)  # delete the RRset
            body += name + struct.pack(">HHIH", 1, 1, 60, 4) + struct.pack(">I", 0xC0000200 | (value & 0xFF))
            head = struct.pack(">HHHHHH", qid, 0x2800, 1, 0, 2, 0)
            now = int(time.time())
            alg, key = wire("hmac-sha256"), wire("onebox-update")
            signed_vars = key + struct.pack(">HI", 255, 0) + alg + struct.pack(">HIHHH", now >> 32, now & 0xFFFFFFFF, 300, 0, 0)
            mac = hmac.new(secret, head + body + signed_vars, hashlib.sha256).digest()
            rdata = alg + struct.pack(">HIHH", now >> 32, now & 0xFFFFFFFF, 300, len(mac)) + mac + struct.pack(">HHH", qid, 0, 0)
            tsig = key + struct.pack(">HHIH", 250, 255, 0, len(rdata)) + rdata
            return struct.pack(">HHHHHH", qid, 0x2800, 1, 0, 2, 1) + body + tsig

        def run(clients: int) -> float:
            done, failed = [0] * clients, [0] * clients
            stop = time.monotonic() + a.seconds

            def worker(c: int) -> None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.settimeout(5)
                i = 0
                while time.monotonic() < stop:
                    i += 1
                    qid = (c * 7919 + i) & 0xFFFF
                    sock.sendto(update(qid, c, i), ("127.0.0.1", server.dns_port))
                    try:
                        reply = sock.recv(4096)
                    except OSError:
                        failed[c] += 1
                        continue
                    if reply[:2] == struct.pack(">H", qid) and reply[3] & 0x0F == 0:
                        done[c] += 1
                    else:
                        failed[c] += 1
                sock.close()

            threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rate = sum(done) / (time.monotonic() - t0)
            log(f"dns update, {clients} clients: {rate:.0f}/s ({sum(failed)} failed)")
            return rate

        for clients, fig in ((1, "update-1"), (32, "update-32")):
            rates = sorted(run(clients) for _ in range(max(1, a.rounds - 1)))
            self.put(fig, "onebox", rates[len(rates) // 2], raw=[round(r) for r in rates])
        self.procs.stop(server)

    # -- DNS --

    def dnsperf(self, server: Server, mode: str, extra: list[str], seconds: float, tag: str):
        argv = [
            "dnsperf", "-s", "127.0.0.1", "-p", str(server.dns_port), "-d", str(self.qfile),
            "-m", mode, "-l", str(seconds), "-t", "2", *extra,
        ]  # fmt: skip
        (rc, out, ccpu), cpu, other = measured(server, lambda: run_client(argv, seconds + 30, self.out(tag)))
        self.interference.append(other)
        if rc != 0:
            raise RuntimeError(f"dnsperf failed against {server.name}: {out[-500:]}")
        return parse_dnsperf(out), out, cpu, ccpu, other

    def dns_throughput(self, servers: list[Server], mode: str, label: str, extra: list[str]):
        samples: dict[str, list[Sample]] = {s.name: [] for s in servers}
        sizes: dict[str, list[float]] = {s.name: [] for s in servers}
        losses: dict[str, list[float]] = {s.name: [] for s in servers}
        for r in range(self.args.rounds):
            for s in rotate(servers, r):
                drops = udp_rcvbuf_errors()
                stats, _, cpu, ccpu, other = self.dnsperf(s, mode, extra, self.args.seconds, f"dns-{mode}-{s.name}")
                drops = udp_rcvbuf_errors() - drops
                sample = Sample(stats["completed"], stats["runtime"], cpu, ccpu, other)
                samples[s.name].append(sample)
                sizes[s.name].append(stats["size"])
                lost = stats["lost"] / stats["sent"] * 100 if stats["sent"] else 0
                losses[s.name].append(lost)
                self.details.append(
                    f"DNS {label} | {s.name} | round {r + 1}: {sample.rate:,.0f} q/s, server CPU {cpu:.2f} s "
                    f"→ {sample.per_cpu:,.0f} q/CPU-s; lost {lost:.2f} % ({drops} UDP receive-buffer drops); client CPU {ccpu:.2f} s; "
                    f"core 0 busy with others {other:.0%}; {stats['codes']}; answers {stats['size']:.0f} bytes on average"
                )
                log(f"DNS {label} {s.name} round {r + 1}: {sample.rate:,.0f} q/s, {sample.per_cpu:,.0f} q/CPU-s")
        for name, size in sizes.items():
            self.put(f"dns-{mode}-size", name, statistics.median(size))
            self.put(f"dns-{mode}-lost", name, statistics.median(losses[name]))
        for name, ss in samples.items():
            self.put(f"dns-{mode}-qps", name, statistics.median(x.rate for x in ss))
            self.put(f"dns-{mode}-percpu", name, statistics.median(x.per_cpu for x in ss))
        per_cpu = {name: [x.per_cpu for x in ss] for name, ss in samples.items()}
        if "onebox" in per_cpu and len(per_cpu) > 1:
            peers = [v for k, v in per_cpu.items() if k != "onebox"]
            ratios = paired_ratios(per_cpu["onebox"], *peers)
            self.results.setdefault("paired", {})[f"dns-{mode}-percpu"] = ratios
            self.details.append(f"DNS {label} per CPU-s, onebox ÷ best peer per round | {[round(x, 3) for x in ratios]}")

    def dns_latency(self, servers: list[Server]):
        lat: dict[str, list[float]] = {s.name: [] for s in servers}
        lost: dict[str, float] = {s.name: 0 for s in servers}
        for r in range(self.args.latency_rounds):
            for s in rotate(servers, r):
                stats, out, *_ = self.dnsperf(
                    s, "udp", ["-Q", str(LATENCY_QPS), "-c", "4", "-v"], self.args.latency_seconds, f"dns-lat-{s.name}"
                )
                values = [float(m.group(1)) for m in re.finditer(r"^> \S+ \S+ \S+ ([\d.]+)$", out, re.M)]
                lat[s.name].extend(values)
                # A lost query counts as the full timeout, so dropping cannot
                # improve a server's percentiles.
                lat[s.name].extend([2.0] * int(stats["lost"]))
                lost[s.name] += stats["lost"]
                self.details.append(
                    f"DNS UDP latency | {s.name} | round {r + 1}: {len(values):,} answers at {stats['qps']:,.0f} q/s, "
                    f"lost {stats['lost']:.0f}"
                )
        for name, values in lat.items():
            if not values:
                self.put("dns-p50", name, None)
                self.put("dns-p99", name, None)
                continue
            values.sort()
            self.put("dns-p50", name, percentile(values, 50) * 1e6)
            self.put("dns-p99", name, percentile(values, 99) * 1e6)

    def dns_agreement(self, servers: list[Server]):
        """The servers must give the same kind of answer to every query in the mix,
        or the comparison compares different work."""
        disagree = []
        for q in QUERY_MIX:
            name, qtype = q.split()
            answers = {s.name: dns_summary(dns_ask(s.dns_port, name, qtype)) for s in servers}
            self.details.append(f"DNS answers | {q}: " + "; ".join(f"{k} {v}" for k, v in answers.items()))
            # rcode, AA and the answer count must agree; what goes in the authority
            # and additional sections is each server's policy (NSD adds the NS set).
            if len({v.split(" ns=")[0] for v in answers.values()}) > 1:
                disagree.append(q)
        if disagree:
            self.notes.append(
                "The servers disagree on the rcode, AA flag or answer count for: "
                + ", ".join(disagree) + " (see the per-round details)."
            )

    # -- HTTP --

    def wrk(self, server: Server, path: str, conns: int, seconds: float, tag: str, script: Path | None = None, env=None):
        argv = [
            "wrk", f"-t{min(load_cores(), conns)}", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s", "--latency",
            "-H", f"Host: {HOST}",
        ]  # fmt: skip
        if script:
            argv += ["-s", str(script)]
        argv.append(f"http://127.0.0.1:{server.http_port}{path}")
        (rc, out, ccpu), cpu, other = measured(server, lambda: run_client(argv, seconds + 30, self.out(tag), env=env))
        self.interference.append(other)
        if rc != 0:
            raise RuntimeError(f"wrk failed against {server.name}: {out[-500:]}")
        total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", out)
        n = int(total.group(1)) if total else 0
        secs = float(total.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}[total.group(3)] if total else seconds
        bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        errors = re.search(r"Socket errors: (.*)", out)
        p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
        p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
        good = n - (int(bad.group(1)) if bad else 0)
        sample = Sample(good, secs, cpu, ccpu, other)
        note = f"p50 {p50.group(1) if p50 else '?'}, p99 {p99.group(1) if p99 else '?'}"
        if bad:
            note += f"; {bad.group(1)} non-2xx/3xx answers (not counted)"
        if errors:
            note += f"; socket errors: {errors.group(1)}"
        sample.note = note
        return sample

    def http_figure(self, figure: str, label: str, runs: list[tuple[Server, dict]], rounds: int):
        samples: dict[str, list[Sample]] = {s.name: [] for s, _ in runs}
        for r in range(rounds):
            for s, kw in rotate(runs, r):
                x = self.wrk(s, **kw)
                samples[s.name].append(x)
                self.details.append(
                    f"{label} | {s.name} | round {r + 1}: {x.rate:,.0f} req/s, server CPU {x.cpu:.2f} s "
                    f"→ {x.per_cpu:,.0f} req/CPU-s; client CPU {x.client_cpu:.2f} s; "
                    f"core 0 busy with others {x.core0_other:.0%}; {x.note}"
                )
                log(f"{label} {s.name} round {r + 1}: {x.rate:,.0f} req/s, {x.per_cpu:,.0f} req/CPU-s")
        for name, ss in samples.items():
            if all(x.work == 0 for x in ss):
                self.put(f"{figure}-rps", name, "n/a: no successful responses")
                self.put(f"{figure}-percpu", name, "n/a: no successful responses")
                continue
            self.put(f"{figure}-rps", name, statistics.median(x.rate for x in ss))
            self.put(f"{figure}-percpu", name, statistics.median(x.per_cpu for x in ss))

    def postgres_writes(self) -> None:
        """Durable API writes with 1 and 32 posters on onebox --db postgres://, and
        PostgreSQL's own pgbench (a single-row INSERT script) at 1 and 32 clients on
        the same throwaway cluster: the server pinned to core 0 like every other,
        fsync and synchronous_commit on, data on the checkout's disk."""
        a = self.args
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda b: int(b.parent.parent.name))
        if not bins:
            for fig in ("pg-writes-rps", "pg-writes-1", "pgbench-32", "pgbench-1"):
                self.put(fig, "onebox", "n/a: PostgreSQL is not installed")
            return
        bin_dir = bins[-1].parent
        root = os.geteuid() == 0
        as_pg = ["runuser", "-u", "postgres", "--"] if root else []
        pgdir = self.work / "postgres"
        pgdir.mkdir()
        # initdb refuses root: the cluster belongs to the postgres user, who must
        # also be able to reach it (the work folder's parents are world-searchable).
        if root:
            shutil.chown(pgdir, "postgres", "postgres")
        subprocess.run(
            [*as_pg, str(bin_dir / "initdb"), "-D", str(pgdir / "data"), "-A", "trust", "-U", "postgres"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        port = free_port()
        server = self.procs.start(
            [*as_pg, str(bin_dir / "postgres"), "-D", str(pgdir / "data"), "-p", str(port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={pgdir}",
             "-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "max_connections=200"],
            stderr=(self.work / "postgres.stderr").open("wb"),
        )  # fmt: skip
        psql = [str(bin_dir / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
        deadline = time.monotonic() + 60
        while subprocess.run([*psql, "-c", "SELECT 1"], capture_output=True).returncode != 0:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("PostgreSQL did not start; see postgres.stderr")
            time.sleep(0.2)
        for db in ("pgbench", "onebox"):
            subprocess.run([*psql, "-c", f"CREATE DATABASE {db}"], check=True, capture_output=True)
        subprocess.run(
            [*psql, "-d", "pgbench", "-c", "CREATE TABLE posts (id bigserial PRIMARY KEY, body text NOT NULL)"],
            check=True, capture_output=True,
        )  # fmt: skip
        script = self.work / "insert.sql"
        script.write_text("INSERT INTO posts (body) VALUES ('bench post: a durable write');\n")
        for clients in (1, 32):
            rates = []
            for r in range(a.rounds):
                code, out, _ = run_client(
                    [str(bin_dir / "pgbench"), "-n", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                     "-c", str(clients), "-j", str(min(clients, 4)), "-T", str(int(a.seconds)), "-f", str(script), "pgbench"],
                    a.seconds + 30, self.out(f"pgbench{clients}-{r}"),
                )  # fmt: skip
                m = re.search(r"tps = ([\d.]+)", out)
                if code == 0 and m:
                    rates.append(float(m.group(1)))
                    self.details.append(f"pgbench INSERT, {clients} clients | round {r + 1}: {float(m.group(1)):,.0f} tx/s")
            self.put(f"pgbench-{clients}", "onebox", statistics.median(rates) if rates else "n/a: pgbench failed")
        url = f"postgres://postgres@127.0.0.1:{port}/onebox"
        app = start_onebox(self.procs, a.binary, self.work, "onebox-pg", ["--ephemeral", "--db", url, "--post-rate", "0"])
        token, problem = self.seed_app(app)
        if problem:
            for fig in ("pg-writes-rps", "pg-writes-1"):
                self.put(fig, "onebox", f"n/a: {problem}")
        else:
            lua = self.work / "post.lua"
            lua.write_text(POST_LUA)
            env = dict(os.environ, BENCH_TOKEN=token)
            posters = {"path": "/api/v1/posts", "seconds": a.seconds, "script": lua, "env": env}
            saved = {k: dict(v) for k, v in self.results.items() if k.startswith("writes")}
            self.http_figure("writes", "durable writes on PostgreSQL, 32 posters", [(app, dict(posters, conns=32, tag="pgw32"))], a.rounds)
            self.http_figure("writes1", "durable writes on PostgreSQL, 1 poster", [(app, dict(posters, conns=1, tag="pgw1"))], max(1, a.rounds - 1))
            self.put("pg-writes-rps", "onebox", self.results["writes-rps"]["onebox"])
            self.put("pg-writes-1", "onebox", self.results["writes1-rps"]["onebox"])
            for k in [k for k in self.results if k.startswith("writes")]:
                del self.results[k]
            self.results.update(saved)
        self.procs.stop(app)
        self.procs.stop(server)

    def seed_app(self, app: Server) -> tuple[str | None, str]:
        """A user, a session and some posts, through the public API. Returns
        (token, problem)."""
        user = {"username": "benchuser", "password": "bench-password-123"}
        try:
            status, _, body = http_request(app.http_port, "POST", "/api/v1/users", json.dumps(user).encode(), timeout=30)
            if status not in (201, 409):
                return None, f"POST /api/v1/users answered {status}: {body[:200]!r}"
            status, _, body = http_request(
                app.http_port, "POST", "/api/v1/sessions", json.dumps(user).encode(), timeout=30
            )
            if status != 201:
                return None, f"POST /api/v1/sessions answered {status}: {body[:200]!r}"
            token = json.loads(body)["token"]
            for i in range(20):
                post = json.dumps({"body": f"bench seed post {i}: the home page lists posts from the database"})
                status, _, body = http_request(
                    app.http_port,
                    "POST",
                    "/api/v1/posts",
                    post.encode(),
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=30,
                )
                if status != 201:
                    return None, f"POST /api/v1/posts answered {status}: {body[:200]!r}"
            return token, ""
        except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
            return None, f"seeding through the API failed: {e}"

    # -- startup, memory, visit --

    def startup(self, binary: str, servers_dns: list[tuple[str, callable]]):
        """Fresh processes: exec → ready line (onebox) and exec → first DNS answer."""
        # This script is the probe here (it polls DNS every 0.5 ms and reads the
        # ready line), so it runs on the load core like every other probe: left
        # unpinned, the scheduler may put it on the server's core, where it takes
        # turns with the very start it is timing.
        everywhere = os.sched_getaffinity(0)
        os.sched_setaffinity(0, cpu_list(CLIENT_CPU))
        try:
            self._startup(binary, servers_dns)
        finally:
            os.sched_setaffinity(0, everywhere)

    def _startup(self, binary: str, servers_dns: list[tuple[str, callable]]):
        ready_ms: list[float] = []
        first: dict[str, list[float]] = {name: [] for name, _ in servers_dns}
        idle_rss: list[float] = []
        for r in range(self.args.startups):
            for name, launch in rotate(servers_dns, r):
                port = free_port()
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.setblocking(False)
                query = dns_query(0x5151, HOST, "SOA")
                seen_ready = {}
                t0 = time.perf_counter()
                p = launch(port)
                if name == "onebox":
                    # The ready line is read on a thread while this one polls DNS.
                    def reader(p=p, t0=t0, seen=seen_ready):
                        line = p.stdout.readline()
                        seen["t"] = time.perf_counter() - t0
                        seen["line"] = line

                    threading.Thread(target=reader, daemon=True).start()
                answered = None
                deadline = t0 + 20
                while time.perf_counter() < deadline:
                    try:
                        sock.sendto(query, ("127.0.0.1", port))
                    except OSError:
                        pass
                    r_, _, _ = select.select([sock], [], [], 0.0005)
                    if r_:
                        try:
                            data = sock.recv(4096)
                            if data[:2] == query[:2]:
                                answered = time.perf_counter() - t0
                                break
                        except OSError:
                            pass  # ICMP port unreachable before the bind
                sock.close()
                if answered is not None:
                    first[name].append(answered * 1000)
                if name == "onebox":
                    end = time.monotonic() + 10
                    while "t" not in seen_ready and time.monotonic() < end:
                        time.sleep(0.001)
                    if "t" in seen_ready and seen_ready["line"].startswith(b"{"):
                        ready_ms.append(seen_ready["t"] * 1000)
                    time.sleep(0.3)
                    idle_rss.append(group_rss_mb(p.pid))
                self.procs.stop(p)
        self.put("start-ready", "onebox", statistics.median(ready_ms) if ready_ms else None)
        for name, values in first.items():
            self.put("start-dns", name, statistics.median(values) if values else None)
        self.details.append(
            "startup | onebox | ready line ms: " + ", ".join(f"{x:.1f}" for x in ready_ms)
            + "; first answer ms: " + ", ".join(f"{x:.1f}" for x in first.get("onebox", []))
            + "; RSS 0.3 s after start MB: " + ", ".join(f"{x:.1f}" for x in idle_rss)
        )  # fmt: skip
        for name, values in first.items():
            if name != "onebox":
                self.details.append(f"startup | {name} | first answer ms: " + ", ".join(f"{x:.1f}" for x in values))

    def visit(self, binary: str, app: Server | None, dns: Server):
        ok = subprocess.run([binary, "visit", "--help"], capture_output=True).returncode == 0
        if not ok:
            self.put("visit", "onebox", "n/a: no `onebox visit` command yet")
            return
        if app is None:
            self.put("visit", "onebox", "n/a: no HTTP listener answered")
            return
        times = []
        url = f"http://{HOST}:{app.http_port}/"
        for _ in range(self.args.startups):
            t0 = time.perf_counter()
            r = subprocess.run(
                ["taskset", "-c", CLIENT_CPU, binary, "visit", url, "--dns", f"127.0.0.1:{app.dns_port}"],
                capture_output=True,
                env=onebox_env(),
                timeout=30,
            )
            elapsed = time.perf_counter() - t0
            if r.returncode != 0:
                self.put("visit", "onebox", f"n/a: visit exited {r.returncode}: {r.stderr.decode()[-200:].strip()}")
                return
            times.append(elapsed * 1000)
        self.put("visit", "onebox", statistics.median(times))
        self.details.append("visit | onebox | wall ms: " + ", ".join(f"{x:.1f}" for x in times))

    # -- the cost of metrics --

    def metrics_cost(self, onebox: Server):
        """DNS UDP and static HTTP per server CPU-second with the metrics on (the
        default, as `onebox` runs in every other figure) and with `--metrics off`,
        interleaved round by round. Issue 16's bar: on within 3 % of off."""
        off = start_onebox(
            self.procs, self.args.binary, self.work, "onebox-metrics-off",
            ["--ephemeral", "--site", str(self.site), "--metrics", "off"],
        )  # fmt: skip
        off.name = "metrics off"
        on = Server("metrics on", onebox.proc, dns_port=onebox.dns_port, http_port=onebox.http_port)
        dns: dict[str, list[float]] = {on.name: [], off.name: []}
        web: dict[str, list[float]] = {on.name: [], off.name: []}
        # A 3 % bar on a shared 2-core VM whose rounds swing ±15 %: twice the
        # rounds at half the length, in ABBA order (rotate alternates who runs
        # first), and the verdict from the median of per-round on ÷ off ratios.
        rounds = 2 * self.args.rounds
        seconds = max(2, self.args.seconds // 2)
        for r in range(rounds):
            for s in rotate([on, off], r):
                stats, _, cpu, ccpu, other = self.dnsperf(
                    s, "udp", ["-c", "8", "-q", "500", "-T", "1"], seconds, f"cost-dns-{s.name.replace(' ', '-')}"
                )
                x = Sample(stats["completed"], stats["runtime"], cpu, ccpu, other)
                dns[s.name].append(x.per_cpu)
                self.details.append(f"metrics cost, DNS UDP | {s.name} | round {r + 1}: {x.rate:,.0f} q/s, {x.per_cpu:,.0f} q/CPU-s")
                y = self.wrk(s, path="/bench.txt", conns=32, seconds=seconds, tag=f"cost-static-{s.name.replace(' ', '-')}")
                web[s.name].append(y.per_cpu)
                self.details.append(f"metrics cost, HTTP static | {s.name} | round {r + 1}: {y.rate:,.0f} req/s, {y.per_cpu:,.0f} req/CPU-s")
                log(f"metrics cost {s.name} round {r + 1}: DNS {x.per_cpu:,.0f} q/CPU-s, static {y.per_cpu:,.0f} req/CPU-s")
        self.procs.stop(off)
        for figure, samples in (("metrics-dns-percpu", dns), ("metrics-static-percpu", web)):
            for name, values in samples.items():
                self.put(figure, name, statistics.median(values) if values else float("nan"))
            ratios = paired_ratios(samples[on.name], samples[off.name])
            self.results.setdefault("paired", {})[figure] = ratios
            self.details.append(f"{figure}, on ÷ off per round | {[round(x, 3) for x in ratios]}")

    def metrics_table(self) -> str:
        R = self.results
        rows = []
        for label, key in (
            ("DNS UDP, queries per server CPU-second", "metrics-dns-percpu"),
            ("HTTP static 2 KB, requests per server CPU-second", "metrics-static-percpu"),
        ):
            on, off = R.get(key, {}).get("metrics on"), R.get(key, {}).get("metrics off")
            ratio = f"{on / off:.3f}×" if isinstance(on, float) and isinstance(off, float) and off else ""
            paired = ratio_summary(R.get("paired", {}).get(key, []))
            rows.append(f"| {label} | {fmt(on, 'int')} | {fmt(off, 'int')} | {ratio} | ≥ 0.97× | {paired} |")
        head = (
            "| cost of metrics | metrics on (default) | `--metrics off` | on / off | target "
            "| on / off per round: median (range) |\n"
            "|---|---:|---:|---:|---|---:|"
        )
        return head + "\n" + "\n".join(rows)

    def static_figures(self, runs: list[tuple[Server, dict]]):
        """The static file at --connections and, unless that was it, at 256."""
        a = self.args
        static_kw = {"path": "/bench.txt", "conns": a.connections, "seconds": a.seconds, "tag": "static"}
        self.http_figure("static", "HTTP static 2 KB", [(s, dict(static_kw)) for s, _ in runs], a.rounds)
        if a.connections != 256:
            wide = dict(static_kw, conns=256, tag="static256")
            self.http_figure("static256", "HTTP static 2 KB, 256 conns", [(s, dict(wide)) for s, _ in runs], a.rounds)

    # -- --cores: the same comparisons on 1, 2, 4... cores --

    def scaling(self):
        """DNS UDP and static HTTP with the servers pinned to the first N cores and
        the load on the others, for each N of --cores. Every server gets N workers
        (onebox sizes itself from its CPU affinity)."""
        a = self.args
        self.scale: dict[int, dict] = {}
        for n in a.cores:
            use_cores(n)
            load = load_cores()
            log(f"--cores {n}: servers on cores {SERVER_CPU}, load on {CLIENT_CPU}")
            self.results = {}
            onebox = start_onebox(self.procs, a.binary, self.work, f"onebox-{n}", ["--ephemeral", "--site", str(self.site)])
            nsd = start_nsd(self.procs, self.work, self.zone, n)
            knot = start_knot(self.procs, self.work, self.zone, n)
            time.sleep(1)
            # Enough dnsperf threads and queries in flight to keep N cores of
            # servers busy: one thread per load core, 8 sockets and 500
            # outstanding queries each, as the one-core run has.
            extra = ["-c", str(8 * load), "-q", str(500 * load), "-T", str(load)]
            self.dns_throughput([onebox, nsd, knot], "udp", f"UDP on {n} core(s)", extra)
            self.procs.stop(nsd)
            self.procs.stop(knot)
            nginx = start_nginx(self.procs, self.work, self.site, n)
            self.static_figures([(onebox, {}), (nginx, {})])
            self.procs.stop(nginx)
            self.procs.stop(onebox)
            self.scale[n] = self.results

    def scaling_table(self) -> str:
        rows = []
        for n, R in self.scale.items():
            def get(key, who):
                v = R.get(key, {}).get(who)
                return v if isinstance(v, float) and v == v else None

            def ratio(mine, *peers):
                peers = [p for p in peers if p]
                return f"{mine / max(peers):.2f}×" if mine and peers else "n/a"

            dns = [get("dns-udp-percpu", w) for w in ("onebox", "NSD", "Knot")]
            qps = [get("dns-udp-qps", w) for w in ("onebox", "NSD", "Knot")]
            cells = [f"{n}", *(fmt(x, "int") for x in dns), ratio(*dns), *(fmt(x, "int") for x in qps)]
            for fig in ("static", "static256"):
                web = [get(f"{fig}-percpu", w) for w in ("onebox", "nginx")]
                cells += [*(fmt(x, "int") for x in web), ratio(*web)]
            rows.append("| " + " | ".join(cells) + " |")
        conns = self.args.connections
        head = (
            "| cores | onebox DNS q/CPU-s | NSD | Knot | onebox / best | onebox q/s | NSD q/s | Knot q/s "
            f"| onebox static req/CPU-s ({conns} conns) | nginx | onebox / nginx "
            "| onebox static (256 conns) | nginx | onebox / nginx |\n"
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        )
        return head + "\n" + "\n".join(rows)

    # -- the run --

    def run(self):
        a = self.args
        t_start = time.monotonic()
        log(f"work folder {self.work}; {a.rounds} round(s) of {a.seconds} s per figure")
        if a.cores:
            self.scaling()
            self.elapsed = time.monotonic() - t_start
            return

        onebox = start_onebox(self.procs, a.binary, self.work, "onebox", ["--ephemeral", "--site", str(self.site)])
        if a.only == "metrics":
            self.metrics_cost(onebox)
            self.elapsed = time.monotonic() - t_start
            return
        nsd = start_nsd(self.procs, self.work, self.zone)
        knot = start_knot(self.procs, self.work, self.zone)
        dns_servers = [onebox, nsd, knot]
        time.sleep(1)
        for s in dns_servers:
            self.put("rss-idle", s.name, group_rss_mb(s.pgid))

        self.dns_agreement(dns_servers)
        self.dns_throughput(dns_servers, "udp", "UDP", ["-c", "8", "-q", "500", "-T", "1"])
        for s in dns_servers:
            self.put("rss-loaded", s.name, group_rss_mb(s.pgid))
        self.dns_throughput(dns_servers, "tcp", "TCP pipelined", ["-c", "8", "-q", "500", "-T", "1"])
        self.dns_latency(dns_servers)
        for s in dns_servers:
            self.put("rss-loaded", s.name, max(self.results["rss-loaded"][s.name], group_rss_mb(s.pgid)))
        self.procs.stop(nsd)
        self.procs.stop(knot)

        # HTTP: the static file against nginx, then the application.
        nginx = start_nginx(self.procs, self.work, self.site)
        status, body, problem = http_probe(onebox.http_port, "/bench.txt")
        if problem:
            log(f"GET /bench.txt: {problem}")
            static_problem = problem.split(" (")[0]
        elif status != 200 or body != self.static:
            static_problem = f"GET /bench.txt answered {status} with {len(body)} bytes, not the 2 KB file"
        else:
            static_problem = ""
        if static_problem:
            log(f"static HTTP: {static_problem}")
            self.put("static-rps", "onebox", f"n/a: {static_problem}")
            self.put("static-percpu", "onebox", f"n/a: {static_problem}")
            runs = [(nginx, {})]
        else:
            runs = [(onebox, {}), (nginx, {})]
        self.static_figures(runs)
        self.procs.stop(nginx)
        if not static_problem:
            self.metrics_cost(onebox)

        app = None
        status, _, problem = http_probe(onebox.http_port, "/")
        if problem:
            log(f"GET /: {problem}")
            app_problem = problem.split(" (")[0]
        else:
            # A durable data folder on the same disk as the checkout: fsync must cost
            # what it costs for a user (an ephemeral database never touches disk).
            # The write benchmark posts as one account as fast as it can: lift the
            # per-account posting rate (--post-rate, 60 a minute by default).
            app = start_onebox(
                self.procs, a.binary, self.work, "onebox-app", ["--data", str(self.work / "data"), "--post-rate", "0"]
            )
            token, app_problem = self.seed_app(app)
            if not app_problem:
                status, body, problem = http_probe(app.http_port, "/")
                if problem or status != 200 or b"bench seed post" not in body:
                    app_problem = f"GET / answered {status} without the seeded posts {problem}".strip()
        if app_problem:
            log(f"application: {app_problem}")
            for fig in ("home-rps", "home-percpu", "writes-rps", "writes-percpu", "writes-1"):
                self.put(fig, "onebox", f"n/a: {app_problem}")
        else:
            home_kw = {"path": "/", "conns": 32, "seconds": a.seconds, "tag": "home"}
            self.http_figure("home", "HTTP home page", [(app, home_kw)], a.rounds)
            lua = self.work / "post.lua"
            lua.write_text(POST_LUA)
            env = dict(os.environ, BENCH_TOKEN=token)
            posters = {"path": "/api/v1/posts", "seconds": a.seconds, "script": lua, "env": env}
            self.http_figure("writes", "durable writes, 32 posters", [(app, dict(posters, conns=32, tag="w32"))], a.rounds)
            self.http_figure("writes1", "durable writes, 1 poster", [(app, dict(posters, conns=1, tag="w1"))], max(1, a.rounds - 1))
            self.put("writes-1", "onebox", self.results["writes1-rps"]["onebox"])

        self.dns_updates()
        self.visit(a.binary, app, onebox)
        if app is not None:
            self.procs.stop(app)
        if not app_problem and not a.no_postgres:
            self.postgres_writes()

        # Startup last, with nothing else of ours running.
        self.put("rss-loaded", "onebox", max(self.results["rss-loaded"]["onebox"], group_rss_mb(onebox.pgid)))
        self.procs.stop(onebox)
        nsd_conf_path = self.work / "nsd" / "nsd.conf"
        knot_conf_path = self.work / "knot" / "knot.conf"

        def launch_onebox(port):
            return self.procs.start(
                [a.binary, "serve", "--dns", f"127.0.0.1:{port}", "--http", "127.0.0.1:0", "--ephemeral"],
                env=onebox_env(),
                stdout=subprocess.PIPE,
                cwd=self.work,
            )

        def launch_nsd(port):
            nsd_conf(self.work, self.zone, port)
            return self.procs.start(["nsd", "-d", "-c", str(nsd_conf_path)])

        def launch_knot(port):
            knot_conf(self.work, self.zone, port)
            return self.procs.start(["knotd", "-c", str(knot_conf_path)])

        self.startup(a.binary, [("onebox", launch_onebox), ("NSD", launch_nsd), ("Knot", launch_knot)])
        self.elapsed = time.monotonic() - t_start

    def table(self) -> str:
        R = self.results
        rows = []

        def row(label, key, who, unit_fmt, target="", lower_better=False, versus=None, compare=True):
            """versus: (key, peer name) to compare against a different figure."""
            cells = {}
            for w in ("onebox", "NSD", "Knot", "nginx"):
                cells[w] = fmt(R.get(key, {}).get(w), unit_fmt) if w in who else ""
            mine = R.get(key, {}).get("onebox")
            if versus:
                peers = [R.get(versus[0], {}).get(versus[1])]
            else:
                peers = [R.get(key, {}).get(w) for w in who if w != "onebox"]
            peers = [p for p in peers if isinstance(p, (int, float)) and p == p]
            ratio = ""
            if compare and isinstance(mine, (int, float)) and peers:
                best = min(peers) if lower_better else max(peers)
                ratio = f"{mine / best:.2f}×" if best else ""
            rows.append(f"| {label} | {cells['onebox']} | {cells['NSD']} | {cells['Knot']} | {cells['nginx']} | {ratio} | {target} |")

        dns = ("onebox", "NSD", "Knot")
        web = ("onebox", "nginx")
        row("DNS UDP, queries/s (capped by dnsperf on 1 core)", "dns-udp-qps", dns, "int")
        row("**DNS UDP, queries per server CPU-second**", "dns-udp-percpu", dns, "int", "≥ 1.00×")
        paired = R.get("paired", {}).get("dns-udp-percpu")
        if paired:
            rows.append(f"| DNS UDP per CPU-s, onebox ÷ best peer of the same round: median (range) | | | | | {ratio_summary(paired)} | ≥ 1.00× |")
        row("DNS UDP, mean answer size, bytes (NSD adds NS and glue)", "dns-udp-size", dns, "int", compare=False)
        row("DNS UDP, queries lost at full load, %", "dns-udp-lost", dns, "pct", compare=False)
        row(f"DNS UDP latency p50 at {LATENCY_QPS // 1000}k q/s, µs (lower is better)", "dns-p50", dns, "int", "", True)
        row(f"DNS UDP latency p99 at {LATENCY_QPS // 1000}k q/s, µs (lower is better)", "dns-p99", dns, "int", "≤ 1.00×", True)
        row("DNS TCP pipelined, queries/s", "dns-tcp-qps", dns, "int")
        row("**DNS TCP pipelined, queries per server CPU-second**", "dns-tcp-percpu", dns, "int", "≥ 1.00×")
        conns = self.args.connections
        row(f"HTTP static 2 KB, {conns} conns, requests/s", "static-rps", web, "int")
        row(f"**HTTP static 2 KB, {conns} conns, requests per server CPU-second**", "static-percpu", web, "int", "≥ 1.00×")
        if conns != 256:
            row("HTTP static 2 KB, 256 conns, requests/s", "static256-rps", web, "int")
            row("**HTTP static 2 KB, 256 conns, requests per server CPU-second**", "static256-percpu", web, "int", "≥ 1.00×")
        row("HTTP home page from the DB, requests/s", "home-rps", ("onebox",), "int")
        row(
            "**HTTP home page, requests per server CPU-second** (vs nginx static)",
            "home-percpu", ("onebox",), "int", "≥ 0.50×", versus=("static-percpu", "nginx"),
        )  # fmt: skip
        row("Durable API writes/s, 32 posters", "writes-rps", ("onebox",), "int")
        row("Durable API writes per server CPU-second", "writes-percpu", ("onebox",), "int")
        w32, w1 = R.get("writes-rps", {}).get("onebox"), R.get("writes-1", {}).get("onebox")
        gain = f"{w32 / w1:.1f}× (vs 1 poster)" if isinstance(w32, float) and isinstance(w1, float) and w1 else ""
        rows.append(
            f"| Durable writes/s, 1 poster (each commit holds one request) | {fmt(w1, 'int')} | | | | {gain} | "
            "≥ 10× a one-commit-per-request baseline: baseline n/a |"
        )
        pg32, pg1 = R.get("pg-writes-rps", {}).get("onebox"), R.get("pg-writes-1", {}).get("onebox")
        b32, b1 = R.get("pgbench-32", {}).get("onebox"), R.get("pgbench-1", {}).get("onebox")

        def vs(x, y):
            return f"{x / y:.2f}× (vs pgbench)" if isinstance(x, float) and isinstance(y, float) and y else ""

        rows.append(f"| Durable API writes/s on PostgreSQL, 32 posters (posts batched per commit) | {fmt(pg32, 'int')} | | | | {vs(pg32, b32)} | ≥ 0.80× pgbench, 32 clients |")
        rows.append(f"| Durable API writes/s on PostgreSQL, 1 poster | {fmt(pg1, 'int')} | | | | {vs(pg1, b1)} | |")
        rows.append(f"| pgbench single-row INSERT, 32 clients, tx/s (same cluster) | {fmt(b32, 'int')} | | | | | baseline |")
        rows.append(f"| pgbench single-row INSERT, 1 client, tx/s | {fmt(b1, 'int')} | | | | | baseline |")
        rows.append(f"| Durable API writes/s on redb, 32 posters, vs pgbench 32 clients | {fmt(w32, 'int')} | | | | {vs(w32, b32)} | > 1.00× |")
        u1, u32 = R.get("update-1", {}).get("onebox"), R.get("update-32", {}).get("onebox")
        rows.append(f"| DNS UPDATEs/s, durable (TSIG, redb), 1 client / 32 clients | {fmt(u1, 'int')} / {fmt(u32, 'int')} | | | | | |")
        row("Start → ready line, ms", "start-ready", ("onebox",), "ms", "≤ 10 ms")
        row("Start → first DNS answer, ms (lower is better)", "start-dns", dns, "ms", "", True)
        row("RSS idle, MB (peers: sum over processes)", "rss-idle", dns, "mb", "< 16 MB", True)
        row("RSS after the DNS load, MB", "rss-loaded", dns, "mb", "", True)
        row("`onebox visit` wall time, ms", "visit", ("onebox",), "ms")
        head = (
            "| figure | onebox | NSD | Knot | nginx | onebox / best peer | target |\n"
            "|---|---:|---:|---:|---:|---:|---|"
        )
        return head + "\n" + "\n".join(rows)


POST_LUA = r"""-- Durable writes: every request is a new post through the JSON API.
local token = os.getenv("BENCH_TOKEN")
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token
request = function()
    n = n + 1
    return wrk.format(nil, nil, nil, '{"body":"bench post ' .. n .. ': a durable write"}')
end
"""


def rotate(items: list, r: int) -> list:
    """Round r starts with a different server, so no one always runs first."""
    k = r % len(items)
    return items[k:] + items[:k]


def paired_ratios(mine: list[float], *peers: list[float]) -> list[float]:
    """Round r's mine ÷ the best peer of the same round. Rounds run side by side,
    so a slow patch of a shared machine hits both servers of a round alike; the
    median of these ratios is much steadier than the ratio of two medians."""
    out = []
    for r, m in enumerate(mine):
        best = max((p[r] for p in peers if r < len(p) and p[r] == p[r]), default=0.0)
        if best:
            out.append(m / best)
    return out


def ratio_summary(ratios: list[float]) -> str:
    """'0.98× (0.95–1.01×, 6 pairs)': the median per-round ratio and its spread."""
    if not ratios:
        return "n/a"
    return f"{statistics.median(ratios):.3f}× ({min(ratios):.2f}–{max(ratios):.2f}×, {len(ratios)} pairs)"


def percentile(sorted_values: list[float], p: float) -> float:
    i = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[i]


def fmt(v, kind: str) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if v != v:
        return "n/a"
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "ms":
        return f"{v:.1f}"
    if kind == "pct":
        return f"{v:.2f}"
    if kind == "mb":
        return f"{v:.1f}"
    return str(v)


def tool_version(argv: list[str], pattern: str = r"(\d+\.\d+(?:\.\d+)?)") -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        m = re.search(pattern, r.stdout + r.stderr)
        return m.group(1) if m else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine() -> dict:
    cpu = "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    except (OSError, ValueError):
        mem = 0
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "mem": f"{mem:.0f} GB",
        "kernel": os.uname().release,
        "os": next(
            (
                line.split("=", 1)[1].strip('"')
                for line in Path("/etc/os-release").read_text().splitlines()
                if line.startswith("PRETTY_NAME=")
            ),
            "?",
        ),
        "load": "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--zone", default="zones/foobar.com.zone")
    ap.add_argument("--out", required=True, help="markdown results file")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency-rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--latency-seconds", type=int, default=4)
    ap.add_argument("--startups", type=int, default=15)
    ap.add_argument("--mode", default="full")
    ap.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL write figures")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections for the static file")
    ap.add_argument(
        "--cores", type=lambda text: [int(n) for n in text.split(",")], default=[],
        help="comma-separated server core counts: DNS UDP and static HTTP only, servers on the first N cores",
    )  # fmt: skip
    ap.add_argument(
        "--only", choices=["all", "metrics"], default="all",
        help="metrics: only the metrics-on vs --metrics off comparison",
    )  # fmt: skip
    args = ap.parse_args()

    # SIGTERM (from bench.sh's trap or a CI timeout) unwinds like Ctrl-C, so the
    # finally below stops every server.
    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)

    before = machine()
    bench = Bench(args)
    try:
        bench.run()
    finally:
        bench.procs.stop_all()

    after = machine()
    versions = {
        "onebox": tool_version([args.binary, "--version"]),
        "NSD": tool_version(["nsd", "-v"]),
        "Knot": tool_version(["knotd", "--version"]),
        "nginx": tool_version(["nginx", "-v"]),
        "dnsperf": tool_version(["dnsperf", "-h"], r"Version (\S+)"),
        "wrk": tool_version(["wrk", "-v"], r"wrk (\S+)"),
    }
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if args.cores:
        table = bench.scaling_table()
    elif args.only == "metrics":
        table = bench.metrics_table()
    else:
        table = bench.table() + "\n\n" + bench.metrics_table()
    others = bench.interference or [0.0]
    busy, busy_max = f"{statistics.median(others):.0%}", f"{max(others):.0%}"
    run_kind = "cost of metrics only" if args.only == "metrics" else f"{args.mode} run"
    if args.cores:
        run_kind = f"{args.mode} run, servers on {','.join(map(str, args.cores))} core(s)"
    pinning = (
        f"Each server pinned to core {SERVER_CPU} (`taskset`), the load generator to core {CLIENT_CPU}."
        if not args.cores
        else f"For each N of {','.join(map(str, args.cores))}: every server pinned to cores 0..N-1 with N workers "
        f"(NSD `server-count: N` with `reuseport`, Knot `udp-workers: N`, nginx `worker_processes N`, onebox one per core it may use), "
        f"the load generators (dnsperf `-T` one thread per load core, wrk `-t` likewise) to the other {os.cpu_count()}-N cores."
    )
    header = f"""## onebox benchmark, {now} ({run_kind})

Machine: {before['cpu']}, {before['nproc']} cores, {before['mem']} RAM, {before['os']}, Linux {before['kernel']}.
onebox {versions['onebox']} (commit {commit}{', uncommitted changes' if dirty else ''}, release build); NSD {versions['NSD']}, Knot {versions['Knot']}, nginx {versions['nginx']}; load from dnsperf {versions['dnsperf']} and wrk {versions['wrk']}.
{pinning} Medians of {args.rounds} interleaved round(s) of {args.seconds:g} s per figure (latency: {args.latency_rounds} rounds of {args.latency_seconds} s at {LATENCY_QPS:,} q/s, percentiles over all answers; startup: {args.startups} starts). Load average {before['load']} before, {after['load']} after; other programs kept the servers' core busy {busy} of the time during the load runs (median; max {busy_max}). Total {bench.elapsed:.0f} s.
"""
    legend = f"""
How to read it: "per server CPU-second" is work done ÷ (user+system CPU time of the server's whole process group, from /proc/PID/stat, before and after the run). On 2 cores the load generator saturates its own core first, so the raw rates above are mostly dnsperf's and wrk's ceiling; the per-CPU figures compare the servers.
Peers: NSD `server-count: 1` with RRL off (Debian's NSD rate-limits loopback by default); Knot `udp-workers: 1`, `tcp-workers: 1`, `background-workers: 1`; nginx `worker_processes 1`, `access_log off`, `sendfile on`, `keepalive_requests 1000000`. onebox runs as shipped: no `RUST_LOG` (its per-query DNS log event is at debug level, so off by default; every query still reaches the live view), stderr to a file; its RRL exempts loopback (the default). All serve `zones/foobar.com.zone` unchanged and the same 2,048-byte file. The home page and writes use a durable `--data` folder on disk (the home page also counts the visit); the static file and DNS an `--ephemeral` instance.
DNS query mix (dnsperf, no EDNS): {', '.join(QUERY_MIX)}. UDP and TCP: `-c 8 -q 500` (TCP: 8 connections, queries pipelined). HTTP static: `wrk -c{args.connections}` and `-c256`, one thread per load core; home page and writes `-c32`; writes: `POST /api/v1/posts` with a bearer token, counting 2xx answers only. "1 poster" is the same server with one connection, so every commit holds exactly one request; onebox has no switch for a true one-commit-per-request baseline, so that target's baseline is n/a.
"""
    notes = "".join(f"\nNote: {n}" for n in bench.notes)
    details = "\n<details><summary>Per-round figures</summary>\n\n```\n" + "\n".join(bench.details) + "\n```\n</details>\n"
    text = header + "\n" + table + "\n" + legend + notes + "\n" + details
    Path(args.out).write_text(text)
    Path(args.out).with_suffix(".json").write_text(
        json.dumps({"date": now, "machine": before, "versions": versions, "results": bench.results}, indent=1)
    )
    print(header + "\n" + table + "\n" + legend + notes)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; servers stopped")
        sys.exit(130)
