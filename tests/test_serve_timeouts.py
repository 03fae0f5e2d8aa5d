"""Half-sent requests cannot hold `serve`'s connections; a caller leaving mid-body is not a 500 (issue 10)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from dupcheck_plugin.server import ServeSettings, create_app
from dupcheck_plugin.server.http import uvicorn_options
from dupcheck_plugin.sim import SimulatorThread

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "timeout-token-0123456789"
TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with SimulatorThread(ROOT / "examples" / "contacts.csv") as sim:
        settings = ServeSettings(workflow=str(ROOT / "workflows" / "hubspot_dupcheck.toml"), tokens=[TOKEN],
                                 db=str(tmp_path_factory.mktemp("t") / "s.db"), crm_url=sim.url,
                                 environ={"HUBSPOT_TOKEN": "sim"}, body_timeout_s=TIMEOUT_S)
        app = create_app(settings)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, **uvicorn_options(TIMEOUT_S))  # as `dupcheck serve`, a shorter timeout
        srv = uvicorn.Server(config)
        thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not srv.started:
            assert thread.is_alive()
            time.sleep(0.01)
        yield f"127.0.0.1:{sock.getsockname()[1]}"
        srv.should_exit = True
        thread.join(10)


def connect(addr: str) -> socket.socket:
    host, port = addr.split(":")
    s = socket.create_connection((host, int(port)))
    s.settimeout(20)  # the failure bound: without the timeouts the server never closes
    return s


def read_all(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


@pytest.mark.parametrize("sent", [b"", b"POST /v1/leads/insert HTTP/1.1\r\nHost: x\r\nContent-"])
def test_a_connection_without_whole_headers_is_closed(server, sent):
    with connect(server) as s:
        s.sendall(sent)
        assert read_all(s) == b""  # closed by the server, nothing answered


def test_a_keep_alive_connection_half_sending_its_second_request_is_closed(server):
    with connect(server) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHo")
        data = read_all(s)
    assert data.count(b"HTTP/1.1 200") == 1


def test_a_body_that_never_comes_whole_is_408(server):
    with connect(server) as s:
        s.sendall(b"POST /v1/leads/insert HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                  b"Content-Length: 100\r\n\r\nauth_token=" + TOKEN.encode())
        data = read_all(s)
    assert data.startswith(b"HTTP/1.1 408") and b"not received within" in data


def test_a_client_leaving_mid_body_is_not_a_server_error(server, caplog):
    with caplog.at_level(logging.INFO):
        with connect(server) as s:
            s.sendall(b"POST /v1/leads/insert HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nauth_token=")
        deadline = time.monotonic() + 10
        while not any(getattr(r, "fields", {}).get("disconnected") for r in caplog.records):
            assert time.monotonic() < deadline, "the disconnect was never logged"
            time.sleep(0.02)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    metrics = httpx.get(f"http://{server}/metrics").text
    assert 'route="/v1/leads/insert",status="499"' in metrics
    assert 'status="500"' not in metrics


# --- serve applies run's row limits -------------------------------------------------------

@pytest.mark.parametrize("extra, reason", [
    ({"notes": "x" * 70_000}, "longer than 65536"),
    ({"first_name": "a\x00b"}, "NUL character"),
])
def test_serve_rejects_what_run_rejects(server, extra, reason):
    r = httpx.post(f"http://{server}/v1/leads/insert",
                   data={"auth_token": TOKEN, "list_id": "1", "phone_number": "5550107001", **extra}, timeout=30)
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is False and body["code"] == 6023 and reason in body["detail"]
