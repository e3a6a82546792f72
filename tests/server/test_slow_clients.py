"""Clients that never finish a request are answered 408 and dropped, so they cannot hold connections for ever."""

from __future__ import annotations

import socket

import httpx
import pytest

from loom.processes import LoomServer

pytestmark = pytest.mark.live


def test_half_sent_bodies_are_answered_408_and_dropped(keyed_server: LoomServer) -> None:
    head = (
        b"POST /threads HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: ka\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    sockets = [socket.create_connection(("127.0.0.1", keyed_server.port), timeout=30) for _ in range(20)]
    try:
        for sock in sockets:
            sock.sendall(head + b'{"metadata": {"hal')
        for sock in sockets:
            answer = b""
            while chunk := sock.recv(4096):  # returns b"" once the server closes the connection
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert b'"code": "body_timeout"' in answer
    finally:
        for sock in sockets:
            sock.close()
    assert httpx.get(f"{keyed_server.url}/ok").status_code == 200


def test_connections_that_never_finish_a_request_head_are_closed(keyed_server: LoomServer) -> None:
    """Silent connections, and half-sent heads before or after a response, would each hold a descriptor for ever."""
    silent = [socket.create_connection(("127.0.0.1", keyed_server.port), timeout=30) for _ in range(10)]
    half_sent = [socket.create_connection(("127.0.0.1", keyed_server.port), timeout=30) for _ in range(10)]
    answered = socket.create_connection(("127.0.0.1", keyed_server.port), timeout=30)
    try:
        for sock in half_sent:
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-")
        answered.sendall(b"GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /ok HTTP/1.1\r\nHost: 12")
        for sock in (*silent, *half_sent, answered):
            answer = b""
            while chunk := sock.recv(4096):  # returns b"" once the server closes the connection
                answer += chunk
            if sock in silent:
                assert answer == b""
            elif sock in half_sent:
                assert answer.startswith(b"HTTP/1.1 408") and b'"code": "header_timeout"' in answer, answer
            else:  # the first request answered, the second's head never finished
                assert answer.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 408" in answer, answer
    finally:
        for sock in (*silent, *half_sent, answered):
            sock.close()
    assert httpx.get(f"{keyed_server.url}/ok").status_code == 200
