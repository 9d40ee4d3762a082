#!/usr/bin/python3
# A fixed-rate UDP stream with sequence numbers, for outage measurements: unlike ping, the sender
# keeps its schedule whether or not anything answers, so lost sequence numbers measure the time
# the path was down.
#   seq_stream.py send DST PORT COUNT RATE   -> prints "sent N errors E" (SIGINT or SIGTERM stop
#                                               it early: it then ends like after COUNT, with
#                                               the FIN markers, and N says how many it sent)
#   seq_stream.py recv PORT TIMEOUT_S        -> prints "received N max_gap G" (G: longest run of
#                                               missing numbers between the first and last seen)
#                                               at the first FIN, after TIMEOUT_S, or on SIGINT
#                                               or SIGTERM
import signal
import socket
import sys
import time

FIN = 0xFFFFFFFF


def send(dst, port, count, rate):
    s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_DGRAM)
    errors = 0
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(True))
    t0 = time.perf_counter()
    sent = 0
    for i in range(count):
        if stop:
            break
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        try:
            s.sendto(i.to_bytes(4, "big"), (dst, port))
        except OSError:
            errors += 1
        sent += 1
    for _ in range(5):
        try:
            s.sendto(FIN.to_bytes(4, "big"), (dst, port))
        except OSError:
            pass
        time.sleep(0.05)
    print(f"sent {sent} errors {errors}", flush=True)


def recv(port, timeout_s):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.settimeout(0.2)
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(True))
    seen = set()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stop:
        try:
            data, _ = s.recvfrom(64)
        except socket.timeout:
            continue
        seq = int.from_bytes(data[:4], "big")
        if seq == FIN:
            break
        seen.add(seq)
    gap = 0
    prev = None
    for i in sorted(seen):
        if prev is not None:
            gap = max(gap, i - prev - 1)
        prev = i
    print(f"received {len(seen)} max_gap {gap}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    else:
        recv(int(sys.argv[2]), float(sys.argv[3]))
