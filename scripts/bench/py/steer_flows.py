#!/usr/bin/python3
# UDP flows for the steering benchmark (scripts/bench/steering.ts). Bounded in count and time.
#   steer_flows.py send DST DPORT SPORT FLOWS SECONDS RATE MIGRATE
#       FLOWS flows (source ports SPORT..SPORT+FLOWS-1) round robin, each datagram carrying its
#       flow's sequence number, for SECONDS (at most 50M datagrams); RATE datagrams/s in total
#       (0: as fast as it can); MIGRATE > 0: move this process between CPU 0 and CPU 1 every
#       MIGRATE datagrams (so a flow's frames are received on both CPUs). Prints {"sent": N}.
#   steer_flows.py recv PORT SECONDS
#       counts datagrams per flow (source port) and those that arrive after a higher sequence
#       number of the same flow ("late": reordered). Prints {"received", "late", "flows"}.
import json
import os
import socket
import sys
import time


def send(dst, dport, sport, flows, seconds, rate, migrate):
    socks = []
    for f in range(flows):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("", sport + f))
        socks.append(s)
    seq = [0] * flows
    pad = b"x" * 60
    sent = 0
    cpu = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while sent < 50_000_000:
        if sent % 64 == 0:
            now = time.perf_counter()
            if now >= end:
                break
            if rate > 0:
                ahead = t0 + sent / rate - now
                if ahead > 0:
                    time.sleep(ahead)
        if migrate > 0 and sent % migrate == 0:
            cpu ^= 1
            os.sched_setaffinity(0, {cpu})
        f = sent % flows
        try:
            socks[f].sendto(seq[f].to_bytes(4, "big") + pad, (dst, dport))
        except OSError:
            pass
        seq[f] += 1
        sent += 1
    print(json.dumps({"sent": sent}), flush=True)


def recv(port, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("", port))
    s.settimeout(0.2)
    top = {}
    received = 0
    late = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        try:
            data, addr = s.recvfrom(2048)
        except socket.timeout:
            continue
        n = int.from_bytes(data[:4], "big")
        key = addr[1]
        received += 1
        if key in top and n < top[key]:
            late += 1
        else:
            top[key] = n
    print(json.dumps({"received": received, "late": late, "flows": len(top)}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "send":
        a = sys.argv[2:]
        send(a[0], int(a[1]), int(a[2]), int(a[3]), float(a[4]), float(a[5]), int(a[6]))
    elif sys.argv[1] == "recv":
        recv(int(sys.argv[2]), float(sys.argv[3]))
    else:
        sys.exit("usage: steer_flows.py send|recv ...")
