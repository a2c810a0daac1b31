"""Operations: reflection v1 and v1alpha, one log line per call, journald-style logs."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from daemon_harness import PK_READER, RunningDaemon, daemon_command, wait_serving
from grpc_reflection.v1alpha import reflection_pb2

from pkcard.daemon.access import AccessControl
from pkcard.daemon.calllog import LOGGER_NAME, CallLogInterceptor
from pkcard.daemon.config import AccessPolicy
from pkcard.daemon.errors import ErrorMappingInterceptor
from pkcard.daemon.logsetup import JournalFormatter, configure_logging, stderr_is_journal
from pkcard.daemon.peers import PeerCredentials
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef
from pkcard.v1 import cards_pb2, cards_pb2_grpc

PIN = load_profile("pk-regular").secret_value(SecretRef.PIN)
WRONG_PIN = "40413959"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def _list_services(channel: grpc.Channel, version: str) -> set[str]:
    method = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    (reply,) = list(method(iter([reflection_pb2.ServerReflectionRequest(list_services="*")]),
                           timeout=20))
    return {service.name for service in reply.list_services_response.service}


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_is_served_as_v1_and_v1alpha(pkcardd: RunningDaemon, version: str) -> None:
    names = _list_services(pkcardd.channel(), version)
    assert {"pkcard.v1.CardService", "pkcard.v1.SessionService", "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"} <= names


def test_one_info_line_per_call_and_never_a_pin(fresh_cards: RunningDaemon) -> None:
    stub = cards_pb2_grpc.CardServiceStub(fresh_cards.channel())
    with pytest.raises(grpc.RpcError):
        stub.VerifyPin(cards_pb2.VerifyPinRequest(
            reader=PK_READER, reference=cards_pb2.PIN_REFERENCE_PIN, pin=WRONG_PIN), timeout=20)
    stub.VerifyPin(cards_pb2.VerifyPinRequest(
        reader=PK_READER, reference=cards_pb2.PIN_REFERENCE_PIN, pin=PIN), timeout=20)
    log = fresh_cards.stderr()
    prefix = (rf"INFO pkcard\.daemon\.calls: call /pkcard\.v1\.CardService/VerifyPin "
              rf"reader='{re.escape(PK_READER)}' uid={os.getuid()} ")
    assert re.search(prefix + r"outcome=UNAUTHENTICATED reason=WRONG_PIN duration_ms=\d+\.\d\n",
                     log), log
    assert re.search(prefix + r"outcome=OK duration_ms=\d+\.\d\n", log), log
    assert PIN not in log
    assert WRONG_PIN not in log


@pytest.fixture
def failing_server() -> Iterator[grpc.Channel]:
    """An in-process server whose one method raises an unexpected exception."""

    def broken(_request: bytes, _context: grpc.ServicerContext) -> bytes:
        raise RuntimeError("unexpected")

    class Everyone:  # every peer is uid 4242, which the policy allows
        def credentials_for(self, peer: str) -> PeerCredentials:
            return PeerCredentials(pid=1, uid=4242, gid=4242)

    access = AccessControl(AccessPolicy(frozenset({4242}), frozenset()), Everyone())
    server = grpc.server(futures.ThreadPoolExecutor(2), interceptors=[
        CallLogInterceptor(access), ErrorMappingInterceptor(access)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "t.Broken", {"Call": grpc.unary_unary_rpc_method_handler(broken)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    server.stop(None)


def test_the_call_line_names_the_incident(failing_server: grpc.Channel,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with pytest.raises(grpc.RpcError) as failed:
        failing_server.unary_unary("/t.Broken/Call")(b"", timeout=20)
    assert failed.value.code() is grpc.StatusCode.INTERNAL
    (incident,) = re.findall(r"incident (\w{12}) in", caplog.text)
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME]
    assert len(lines) == 1
    assert re.fullmatch(r"call /t\.Broken/Call uid=4242 outcome=INTERNAL reason=INTERNAL "
                        rf"duration_ms=\d+\.\d incident={incident}", lines[0]), lines


def test_journal_lines_have_a_priority_on_every_line_and_no_timestamp() -> None:
    formatter = JournalFormatter()
    info = logging.LogRecord("pkcardd", logging.INFO, __file__, 1, "listening", None, None)
    assert formatter.format(info) == "<6>pkcardd: listening"
    try:
        raise ValueError("boom")
    except ValueError:
        error = logging.LogRecord("pkcardd", logging.ERROR, __file__, 1, "incident x", None,
                                  sys.exc_info())
    lines = formatter.format(error).splitlines()
    assert len(lines) > 2
    assert all(line.startswith("<3>") for line in lines)
    assert formatter.format(logging.LogRecord("x", logging.WARNING, "", 1, "w", None,
                                              None)).startswith("<4>")
    assert formatter.format(logging.LogRecord("x", logging.DEBUG, "", 1, "d", None,
                                              None)).startswith("<7>")


def test_journal_stream_is_detected_only_for_our_own_stderr(tmp_path: Path) -> None:
    with (tmp_path / "a").open("w") as ours, (tmp_path / "b").open("w") as other:
        info = os.fstat(ours.fileno())
        environ = {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        assert stderr_is_journal(environ, ours)
        assert not stderr_is_journal(environ, other)
        assert not stderr_is_journal({}, ours)
        assert not stderr_is_journal({"JOURNAL_STREAM": "garbage"}, ours)
    stream = io.StringIO()
    configure_logging("INFO", stream, {})  # type: ignore[arg-type]
    logging.getLogger("pkcardd").info("plain")
    assert TIMESTAMP.match(stream.getvalue())


def test_under_systemd_the_daemon_logs_sd_daemon_lines(private_root: Path) -> None:
    log = private_root / "pkcardd.log"
    with log.open("wb") as stderr:
        info = os.fstat(stderr.fileno())
        environ = {**os.environ, "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        process = subprocess.Popen(daemon_command(private_root), stderr=stderr,
                                   stdout=subprocess.DEVNULL, env=environ)
    daemon = RunningDaemon(private_root, process, log, private_root / "audit.jsonl",
                           private_root / "run" / "pkcardd.sock")
    try:
        wait_serving(daemon)
    finally:
        daemon.close()
    lines = log.read_text().splitlines()
    assert any(line.startswith("<6>") and ": pkcardd listening on" in line
               for line in lines), lines
    assert all(re.match(r"<[0-7]>", line) for line in lines), lines
    assert not any(TIMESTAMP.search(line) for line in lines), lines
