"""Break 3 of issue #12: peers that are not allowed cannot starve the daemon.

A second local user that can reach the socket (its group) but is not on the
allow-list holds 16 ``Health.Watch`` streams, 4 reflection streams and 1,000
idle connections, from a real process running as that user, against the real
daemon process. Root's GetCard and ListReaders must still answer; the
latency they saw is printed (``-s`` shows it; see docs/reliability.md).
A daemon out of file descriptors (``EMFILE``) logs its accept failures once
per interval with a count instead of once per try.
"""

from __future__ import annotations

import grp
import multiprocessing
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event

import grpc
import pytest
import serving
from daemon_harness import PK_READER, RunningDaemon, daemon_command, make_root, start_daemon
from dropped_uid import spawn_as
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from pkcard.client import PkcardClient

USER = f"pklim{os.getpid() % 100000}"
WATCHES = 16
REFLECTIONS = 4
IDLE = 1000
OPEN_STREAM_SLOTS = 4  # the default of limits.open_stream_slots
MAX_CONNECTIONS_PER_UID = 128  # the default of limits.max_connections_per_uid

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("useradd") is None,
    reason="needs root and useradd",
)


@pytest.fixture
def stranger() -> Iterator[pwd.struct_passwd]:
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    USER], check=True, capture_output=True)
    try:
        yield pwd.getpwnam(USER)
    finally:
        subprocess.run(["userdel", USER], check=False, capture_output=True)


@pytest.fixture
def reachable(stranger: pwd.struct_passwd) -> Iterator[RunningDaemon]:
    """A daemon the stranger can connect to (socket group) but may not use (allow-list)."""
    root = make_root()
    root.chmod(0o711)
    config = root / "pkcardd.toml"
    config.write_text('[access]\nusers = ["root"]\ngroups = []\n')
    group = grp.getgrgid(stranger.pw_gid).gr_name
    running = start_daemon(root, "--config", str(config), "--socket-group", group)
    running.socket_path.parent.chmod(0o711)
    yield running
    running.close()
    shutil.rmtree(root, ignore_errors=True)


def _hog(socket_path: str, release: Event, report: Queue[tuple[int, int, int]]) -> None:
    """In a spawned child, as the stranger: hold streams and idle connections until ``release``.

    Every module is imported while still root (see ``dropped_uid``).
    """
    stop = threading.Event()

    def hold_open() -> Iterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        stop.wait()

    held = 0
    channel = grpc.insecure_channel(f"unix:{socket_path}")
    health = health_pb2_grpc.HealthStub(channel)
    reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
    streams: list[object] = []
    for index in range(WATCHES + REFLECTIONS):
        stream = (health.Watch(health_pb2.HealthCheckRequest(), timeout=300) if index < WATCHES
                  else reflect.ServerReflectionInfo(hold_open(), timeout=300))
        streams.append(stream)
        try:
            next(stream)
        except grpc.RpcError:
            continue
        held += 1
    idle: list[socket.socket] = []
    for _ in range(IDLE):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(socket_path)
        except OSError:
            conn.close()
        else:
            idle.append(conn)
    report.put((held, len(idle), -1))
    release.wait(300)
    still_open = 0
    for conn in idle:  # the daemon closes those over the cap: EOF
        conn.settimeout(0.5)
        try:
            still_open += conn.recv(1) != b""
        except TimeoutError:
            still_open += 1
        except OSError:
            pass
        conn.close()
    report.put((held, len(idle), still_open))
    stop.set()
    channel.close()


def test_break3_a_stranger_with_streams_and_idle_connections_cannot_starve_root(
    stranger: pwd.struct_passwd, reachable: RunningDaemon
) -> None:
    release = multiprocessing.get_context("spawn").Event()
    child = spawn_as(stranger.pw_uid, stranger.pw_gid, [], _hog, str(reachable.socket_path),
                     release)
    try:
        held, connected, _ = child.get(timeout=120)
        latencies = []
        with PkcardClient(reachable.socket_path, timeout=20) as client:
            for _ in range(5):
                started = time.monotonic()
                assert client.list_readers()
                reading = client.get_card(PK_READER)
                latencies.append(time.monotonic() - started)
                assert reading.pk is not None
        release.set()
        held, connected, still_open = child.get(timeout=120)
    finally:
        release.set()
        child.close(60)
    print(f"\nbreak 3: stranger held {held} of {WATCHES + REFLECTIONS} streams and "
          f"{still_open} of {connected} idle connections; root ListReaders+GetCard "
          f"max {max(latencies) * 1000:.1f} ms, min {min(latencies) * 1000:.1f} ms")
    assert held <= OPEN_STREAM_SLOTS
    assert still_open <= MAX_CONNECTIONS_PER_UID
    refusals = [line for line in reachable.stderr().splitlines()
                if f"refused a connection of uid {stranger.pw_uid}" in line]
    assert 1 <= len(refusals) <= 3  # once per interval, with a count


def test_break3_accept_failures_are_logged_once_per_interval_with_a_count() -> None:
    root = make_root()
    log = root / "pkcardd.log"
    command = ["/bin/sh", "-c", 'ulimit -n 128 && exec "$@"', "sh",
               *daemon_command(root)]
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, stderr=stderr, stdout=subprocess.DEVNULL)
    socket_path = root / "run" / "pkcardd.sock"
    hogs: list[socket.socket] = []
    try:
        serving.wait_serving(process, socket_path, log.read_text, process.kill)
        for _ in range(300):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.settimeout(5)
            try:
                conn.connect(str(socket_path))
            except OSError:
                conn.close()
                break
            hogs.append(conn)

        def reports() -> list[str]:
            return [line for line in log.read_text().splitlines()
                    if "EMFILE" in line or "Too many open files" in line
                    or "out of system resource" in line]

        give_up = time.monotonic() + 30
        while not reports() and time.monotonic() < give_up:
            time.sleep(0.1)
        assert reports(), "the daemon never ran out of file descriptors"
        time.sleep(4)  # the daemon keeps failing to accept meanwhile
        assert len(reports()) <= 2, "\n".join(reports()[:20])
        for conn in hogs:
            conn.close()
        hogs.clear()
        with PkcardClient(socket_path, timeout=20) as client:
            assert client.list_readers()  # and it serves again once descriptors are free
    finally:
        for conn in hogs:
            conn.close()
        if process.poll() is None:
            process.terminate()
            process.wait(30)
        shutil.rmtree(root, ignore_errors=True)
