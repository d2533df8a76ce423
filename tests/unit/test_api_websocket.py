"""RFC 6455 framing and handshake (the examples of the RFC)."""
import socket
import threading

import pytest

from lxdctl.api import websocket


def test_accept_key_rfc_example():
    assert websocket.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_frames_rfc_examples():
    assert websocket.frame("Hello") == bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
    masked = websocket.frame("Hello", mask=bytes([0x37, 0xFA, 0x21, 0x3D]))
    assert masked == bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
    assert websocket.frame(b"x" * 256, websocket.OP_BINARY)[:4] == bytes([0x82, 0x7E, 0x01, 0x00])
    assert websocket.frame(b"x" * 65536, websocket.OP_BINARY)[:10] == bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
    assert websocket.frame("Hel", fin=False)[0] == 0x01


def test_parse_round_trip_and_partial():
    data = websocket.frame("één") + websocket.frame("x" * 300, mask=b"abcd") + websocket.close_frame(1000, "bye")
    frames, rest = websocket.parse_frames(data + websocket.frame("partial")[:3])
    assert [(f[1], f[2]) for f in frames] == [(1, "één".encode()), (1, b"x" * 300),
                                              (8, b"\x03\xe8bye")]
    assert rest == websocket.frame("partial")[:3]


def test_handshake_checks():
    good = {"Upgrade": "websocket", "Connection": "keep-alive, Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    assert websocket.check_handshake(good) == "dGhlIHNhbXBsZSBub25jZQ=="
    for key, value in (("Upgrade", "h2c"), ("Sec-WebSocket-Version", "8"), ("Sec-WebSocket-Key", "short"),
                       ("Connection", "close")):
        with pytest.raises(websocket.ProtocolError):
            websocket.check_handshake(dict(good, **{key: value}))
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in websocket.handshake_response(good["Sec-WebSocket-Key"])


def test_connection_answers_ping_and_sees_close():
    server, client = socket.socketpair()
    conn = websocket.Connection(server)
    client.sendall(websocket.frame(b"hi", websocket.OP_PING, mask=b"\x01\x02\x03\x04"))
    assert conn.poll_client(1)
    frames, _ = websocket.parse_frames(client.recv(100))
    assert frames == [(True, websocket.OP_PONG, b"hi")]
    client.sendall(websocket.frame(b"\x03\xe8", websocket.OP_CLOSE, mask=b"\x01\x02\x03\x04"))
    assert not conn.poll_client(1)
    frames, _ = websocket.parse_frames(client.recv(100))
    assert frames[0][1] == websocket.OP_CLOSE
    client.close()
    server.close()
