"""The server side of RFC 6455: the handshake, text frames to the client, close, and reading
the client's (masked) frames enough to notice a close or answer a ping."""
import base64
import hashlib
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class ProtocolError(Exception):
    pass


def accept_key(key):
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key.strip().encode("ascii") + GUID).digest()).decode("ascii")


def check_handshake(headers):
    """The client's key if ``headers`` ask for a WebSocket upgrade (version 13); else raise."""
    if "websocket" not in (headers.get("Upgrade") or "").lower():
        raise ProtocolError("expected Upgrade: websocket")
    if "upgrade" not in (headers.get("Connection") or "").lower():
        raise ProtocolError("expected Connection: Upgrade")
    if (headers.get("Sec-WebSocket-Version") or "").strip() != "13":
        raise ProtocolError("Sec-WebSocket-Version must be 13")
    key = headers.get("Sec-WebSocket-Key") or ""
    try:
        if len(base64.b64decode(key.strip(), validate=True)) != 16:
            raise ValueError
    except ValueError:
        raise ProtocolError("bad Sec-WebSocket-Key")
    return key.strip()


def handshake_response(key):
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: %s\r\n\r\n" % accept_key(key)).encode("ascii")


def frame(payload, opcode=OP_TEXT, fin=True, mask=None):
    """One frame; servers send unmasked frames (``mask`` is for tests and clients)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    mbit = 0x80 if mask else 0
    if length < 126:
        head += bytes([mbit | length])
    elif length < 1 << 16:
        head += bytes([mbit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", length)
    if mask:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + payload


def close_frame(code=1000, reason=""):
    return frame(struct.pack("!H", code) + reason.encode("utf-8")[:120], OP_CLOSE)


def read_frame(recv_exact):
    """``(fin, opcode, payload)`` of the next frame; ``recv_exact(n)`` returns exactly n bytes."""
    b1, b2 = recv_exact(2)
    fin, opcode = bool(b1 & 0x80), b1 & 0x0F
    masked, length = bool(b2 & 0x80), b2 & 0x7F
    if length == 126:
        length = struct.unpack("!H", recv_exact(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", recv_exact(8))[0]
    if opcode >= 0x8 and (length > 125 or not fin):
        raise ProtocolError("bad control frame")
    if length > 1 << 20:
        raise ProtocolError("frame too large")
    mask = recv_exact(4) if masked else None
    payload = recv_exact(length) if length else b""
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return fin, opcode, payload


def parse_frames(data):
    """Every complete frame in ``data`` (bytes) as ``(fin, opcode, payload)``; for tests and clients."""
    out = []
    pos = [0]

    def recv_exact(n):
        if pos[0] + n > len(data):
            raise EOFError
        chunk = data[pos[0]:pos[0] + n]
        pos[0] += n
        return chunk

    while pos[0] < len(data):
        start = pos[0]
        try:
            out.append(read_frame(recv_exact))
        except EOFError:
            pos[0] = start
            break
    return out, data[pos[0]:]


class Connection:
    """A server-side WebSocket over a socket (after the 101 answer)."""

    def __init__(self, sock):
        self.sock = sock
        self.closed = False

    def send_text(self, text):
        self.sock.sendall(frame(text))

    def send_binary(self, data):
        self.sock.sendall(frame(data, OP_BINARY))

    def close(self, code=1000, reason=""):
        if not self.closed:
            self.closed = True
            try:
                self.sock.sendall(close_frame(code, reason))
            except OSError:
                pass

    def _pending(self):
        """Bytes TLS already decrypted: select() cannot see them."""
        pending = getattr(self.sock, "pending", None)
        return [self.sock] if pending and pending() else []

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def poll_client(self, timeout):
        """Handle what the client sent within ``timeout`` s (pings answered, data ignored);
        False once it closed or went away."""
        return self.receive(timeout) is not None

    def receive(self, timeout):
        """The client's data messages that arrive within ``timeout`` s, as ``[(opcode, payload)]``
        (fragments joined); pings are answered.  None once the client closed or went away."""
        import select

        messages = []
        partial = getattr(self, "_partial", None)
        try:
            ready = self._pending() or select.select([self.sock], [], [], timeout)[0]
            while ready:
                fin, opcode, payload = read_frame(self._recv_exact)
                if opcode == OP_CLOSE:
                    self.close()
                    return None
                if opcode == OP_PING:
                    self.sock.sendall(frame(payload, OP_PONG))
                elif opcode in (OP_TEXT, OP_BINARY):
                    partial = [opcode, payload]
                elif opcode == OP_CONT and partial is not None:
                    partial[1] += payload
                if fin and partial is not None and opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                    messages.append(tuple(partial))
                    partial = None
                ready = self._pending() or select.select([self.sock], [], [], 0)[0]
        except (EOFError, OSError, ProtocolError, ValueError):
            self.closed = True
            return None
        self._partial = partial
        return messages
