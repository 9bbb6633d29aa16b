"""What the molecule `haproxy` scenario runs beside HAProxy, and its check.

    lb_tools.py spawn --pid-file F --log L -- ARGV...   run ARGV in the background (own session)
    lb_tools.py stop --pid-file F                       end that process (only that pid) and wait
    lb_tools.py syslog --port P --out FILE              a UDP syslog receiver on 127.0.0.1 (HAProxy's log)
    lb_tools.py clients --url URL --out FILE --stop-file S [--workers N]
                                                        Glance clients: create, update, delete images
                                                        through URL (HAProxy only) until S exists
    lb_tools.py check --clients FILE --haproxy-log FILE --backend B REQUESTS.jsonl...

The receiver stamps each datagram with its arrival time. Each client request
is a new connection (as `openstacksdk` does across processes) and counts as
failed unless the answer is 2xx. ``check`` prints one JSON object: requests
made and failed, per node (by the answering node's X-Node header and by
HAProxy's log), each server's drain windows from HAProxy's log ("enters
drain state" to "is UP (leaving forced drain)"), and every request HAProxy
logged as sent to a server inside such a window.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

# The frontend's log-format: "req %Ts.%ms %TR %b/%s %ST %HM %HU"
REQUEST = re.compile(r" req (?P<accept>\d+\.\d+) (?P<tr>-?\d+) (?P<backend>[^/ ]+)/(?P<server>\S+) "
                     r"(?P<status>-?\d+) (?P<method>\S+) (?P<uri>\S+)")
DRAIN = re.compile(r"Server (?P<backend>[^/ ]+)/(?P<server>\S+) enters drain state")
READY = re.compile(r"Server (?P<backend>[^/ ]+)/(?P<server>\S+) is UP \(leaving forced drain\)")


def spawn(args):
    with open(args.log, "a") as log:
        child = subprocess.Popen(args.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True, close_fds=True)
    with open(args.pid_file, "w") as handle:
        handle.write(str(child.pid))
    time.sleep(0.3)
    if child.poll() is not None:
        sys.stderr.write("exited at once (%s); see %s\n" % (child.returncode, args.log))
        return 1
    print("started pid %d" % child.pid)
    return 0


def stop(args):
    try:
        with open(args.pid_file) as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        print("not running")
        return 0
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        print("not running")
        return 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    os.unlink(args.pid_file)
    print("stopped pid %d" % pid)
    return 0


def syslog(args):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", args.port))
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    with open(args.out, "a", buffering=1) as out:
        while True:
            data, _peer = receiver.recvfrom(65535)
            out.write("%.6f %s\n" % (time.time(), data.decode("utf-8", "replace").strip()))


def clients(args):
    """``--workers`` threads, each one Glance client creating, updating and deleting its images."""
    target = urllib.parse.urlsplit(args.url)
    out = open(args.out, "a", buffering=1)
    lock = threading.Lock()
    deadline = time.monotonic() + args.max_seconds

    def request(method, path, body=None):
        entry = {"t": time.time(), "method": method}
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=payload,
                         headers={"Content-Type": "application/json", "Connection": "close"})
            answer = conn.getresponse()
            data = answer.read()
            entry.update(status=answer.status, node=answer.getheader("X-Node"), ok=200 <= answer.status < 300)
            result = json.loads(data) if data else {}
            if not entry["ok"]:
                entry["error"] = str(result.get("error") or data[:200])
        except Exception as exc:  # a reset or refused connection is a failed request
            entry.update(status=None, node=None, ok=False, error="%s: %s" % (type(exc).__name__, exc))
            result = {}
        finally:
            conn.close()
        entry["seconds"] = round(time.time() - entry["t"], 4)
        with lock:
            out.write(json.dumps(entry, sort_keys=True) + "\n")
        return entry, result

    def worker(number):
        rng = random.Random(number)
        mine = []
        while not os.path.exists(args.stop_file) and time.monotonic() < deadline:
            choice = rng.random()
            if mine and choice < 0.25:
                request("PATCH", "/v2/images/" + rng.choice(mine))
            elif mine and choice < 0.45:
                image_id = mine.pop(rng.randrange(len(mine)))
                request("DELETE", "/v2/images/" + image_id)
            else:
                entry, result = request("POST", "/v2/images",
                                        {"kind": rng.choice(["public", "private", "shared", "community"])})
                if entry["ok"]:
                    mine.append(result["id"])
            time.sleep(args.interval)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(args.workers)]
    signal.signal(signal.SIGTERM, lambda *a: open(args.stop_file, "w").close())
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.close()
    return 0


def check(args):
    with open(args.clients) as handle:
        made = [json.loads(line) for line in handle if line.strip()]
    nodes = {}
    for entry in made:
        node = nodes.setdefault(entry["node"] or "(none)", {"requests": 0, "failed": 0})
        node["requests"] += 1
        node["failed"] += not entry["ok"]
    served = {}
    for path in args.requests:
        with open(path) as handle:
            for line in handle:
                if line.strip():
                    entry = json.loads(line)
                    counts = served.setdefault(entry["node"], {"N-1": 0, "N": 0})
                    if entry.get("release") in counts:
                        counts[entry["release"]] += 1

    logged, windows, open_drains = [], {}, {}
    with open(args.haproxy_log) as handle:
        for line in handle:
            arrival = float(line.split(" ", 1)[0])
            match = REQUEST.search(line)
            if match and match.group("backend") == args.backend:
                # When HAProxy chose the server: accepted, plus the time to read the headers.
                at = float(match.group("accept")) + max(int(match.group("tr")), 0) / 1000.0
                logged.append({"at": at, "server": match.group("server"), "status": int(match.group("status")),
                               "method": match.group("method")})
                continue
            match = DRAIN.search(line)
            if match and match.group("backend") == args.backend:
                open_drains[match.group("server")] = arrival
                continue
            match = READY.search(line)
            if match and match.group("backend") == args.backend and match.group("server") in open_drains:
                windows.setdefault(match.group("server"), []).append(
                    [open_drains.pop(match.group("server")), arrival])
    for server, started in open_drains.items():  # drained and never put back
        windows.setdefault(server, []).append([started, float("inf")])
    to_drained = [r for r in logged for start, end in windows.get(r["server"], []) if start < r["at"] < end]
    per_server = {}
    for entry in logged:
        per_server[entry["server"]] = per_server.get(entry["server"], 0) + 1
    result = {
        "requests": len(made),
        "failed": sum(not e["ok"] for e in made),
        "failures": [e for e in made if not e["ok"]][:10],
        "by_method": dict((m, sum(e["method"] == m for e in made)) for m in ("POST", "PATCH", "DELETE")),
        "nodes": nodes,
        "served_by_release": served,
        "haproxy_logged": len(logged),
        "haproxy_by_server": per_server,
        "haproxy_errors": sum(not 200 <= r["status"] < 300 for r in logged),
        "drain_windows": dict((s, [[round(a, 3), round(b, 3) if b != float("inf") else None] for a, b in w])
                              for s, w in windows.items()),
        "drain_seconds": dict((s, round(sum(b - a for a, b in w), 2)) for s, w in windows.items()),
        "sent_to_drained": to_drained[:10],
        "sent_to_drained_count": len(to_drained),
        "first_request": min(e["t"] for e in made) if made else None,
        "last_request": max(e["t"] for e in made) if made else None,
    }
    print(json.dumps(result, indent=1, sort_keys=True))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("spawn")
    p.add_argument("--pid-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("argv", nargs="+")
    p = sub.add_parser("stop")
    p.add_argument("--pid-file", required=True)
    p = sub.add_parser("syslog")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("clients")
    p.add_argument("--url", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--stop-file", required=True)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--interval", type=float, default=0.02)
    p.add_argument("--max-seconds", type=float, default=300)
    p = sub.add_parser("check")
    p.add_argument("--clients", required=True)
    p.add_argument("--haproxy-log", required=True)
    p.add_argument("--backend", required=True)
    p.add_argument("requests", nargs="+")
    args = parser.parse_args(argv)
    return {"spawn": spawn, "stop": stop, "syslog": syslog, "clients": clients, "check": check}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
