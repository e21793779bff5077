"""`BurstWriter` on real TCP sockets and asyncio transports: parallel ranges, declines, short writes."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator

import pytest

from hireflow.realtime.burst import MIN_PER_THREAD, BurstWriter, raw_fd, write_fd


class Peer:
    """The server end of one TCP connection (an asyncio transport) and its client end (a plain socket).

    `write_now` follows the rule a `Connection` follows: the next event, and nothing buffered."""

    def __init__(self, transport: asyncio.Transport, client: socket.socket) -> None:
        self.transport = transport
        self.client = client
        self.fd = raw_fd(transport)
        self.last_seq = 0
        self.declines = False
        self.threads: set[int] = set()

    def write_now(self, topic: str, epoch: str, seq: int, wire: bytes) -> int:
        self.threads.add(threading.get_ident())
        if self.declines or seq != self.last_seq + 1 or self.transport.get_write_buffer_size():
            return -1
        self.last_seq = seq
        return write_fd(self.fd, wire)


async def connect_peers(n: int) -> list[Peer]:
    loop = asyncio.get_running_loop()
    listener = socket.create_server(("127.0.0.1", 0), backlog=n)
    port = listener.getsockname()[1]
    peers = []
    for _ in range(n):
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _addr = listener.accept()
        transport, _protocol = await loop.connect_accepted_socket(asyncio.Protocol, accepted)
        peers.append(Peer(transport, client))  # type: ignore[arg-type]
    listener.close()
    return peers


@pytest.fixture
async def peers(request: pytest.FixtureRequest) -> AsyncIterator[list[Peer]]:
    made = await connect_peers(request.param)
    yield made
    for peer in made:
        peer.transport.abort()
        peer.client.close()


async def read_exactly(sock: socket.socket, size: int) -> bytes:
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    data = bytearray()
    while len(data) < size:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, min(size - len(data), 1 << 18)), 5)
        assert chunk, "connection closed early"
        data += chunk
    return bytes(data)


def frame(seq: int) -> bytes:
    return b"event-%d;" % seq


@pytest.mark.parametrize("peers", [4 * MIN_PER_THREAD], indirect=True)
@pytest.mark.parametrize("threads", [1, 3])
async def test_every_socket_gets_every_frame_once_in_order(peers: list[Peer], threads: int):
    writer = BurstWriter(threads)
    try:
        for seq in range(1, 6):
            assert writer.write("lobby", "e", seq, frame(seq), peers) == []
    finally:
        writer.close()
    expected = b"".join(frame(seq) for seq in range(1, 6))
    for peer in peers:
        assert await read_exactly(peer.client, len(expected)) == expected
    used = set().union(*(peer.threads for peer in peers))
    assert len(used) == threads  # the ranges really were written by that many threads


@pytest.mark.parametrize("peers", [2 * MIN_PER_THREAD], indirect=True)
async def test_declining_sockets_are_handed_back_untouched(peers: list[Peer]):
    for peer in peers[::7]:
        peer.declines = True
    writer = BurstWriter(2)
    try:
        assert writer.write("lobby", "e", 1, frame(1), peers) == peers[::7]
    finally:
        writer.close()
    for i, peer in enumerate(peers):
        if i % 7:
            assert await read_exactly(peer.client, len(frame(1))) == frame(1)
        else:
            peer.client.setblocking(False)
            with pytest.raises(BlockingIOError):
                peer.client.recv(100)


@pytest.mark.parametrize("peers", [1], indirect=True)
async def test_the_rest_of_a_short_write_goes_through_the_transport(peers: list[Peer]):
    (peer,) = peers
    peer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = bytes(range(256)) * 1024  # 256 KiB: far more than the socket buffers hold
    writer = BurstWriter(1)
    try:
        assert writer.write("lobby", "e", 1, big, peers) == []
        assert peer.transport.get_write_buffer_size() > 0  # the kernel took part; the transport has the rest
        # The next event waits its turn: declined while the transport still holds bytes.
        assert writer.write("lobby", "e", 2, frame(2), peers) == [peer]
    finally:
        writer.close()
    assert await read_exactly(peer.client, len(big)) == big


@pytest.mark.parametrize("peers", [MIN_PER_THREAD * 2], indirect=True)
async def test_a_reset_socket_does_not_break_the_burst(peers: list[Peer]):
    broken = peers[3]
    broken.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    broken.client.close()  # RST
    await asyncio.sleep(0.05)
    writer = BurstWriter(2)
    try:
        assert writer.write("lobby", "e", 1, frame(1), peers) == []
        assert writer.write("lobby", "e", 2, frame(2), [p for p in peers if not p.transport.is_closing()]) == []
    finally:
        writer.close()
    assert broken.transport.is_closing()  # its transport saw the error and closed
    for peer in peers[4:8]:
        assert await read_exactly(peer.client, 2 * len(frame(1))) == frame(1) + frame(2)


@pytest.mark.parametrize("peers", [2 * MIN_PER_THREAD], indirect=True)
async def test_a_failing_target_never_leaves_a_helper_writing(peers: list[Peer]):
    """If the loop thread's own range raises, `write` still waits for every helper before it returns."""
    finished: list[float] = []

    class Boom(Peer):
        def write_now(self, topic: str, epoch: str, seq: int, wire: bytes) -> int:
            raise RuntimeError("a bug in one connection")

    class Slow(Peer):
        def write_now(self, topic: str, epoch: str, seq: int, wire: bytes) -> int:
            time.sleep(0.0005)
            finished.append(time.monotonic())
            return super().write_now(topic, epoch, seq, wire)

    targets = [Boom(peers[0].transport, peers[0].client)] + [Slow(p.transport, p.client) for p in peers[1:]]
    writer = BurstWriter(2)
    try:
        with pytest.raises(RuntimeError, match="a bug in one connection"):
            writer.write("lobby", "e", 1, frame(1), targets)
        raised_at = time.monotonic()
    finally:
        writer.close()
    assert len(finished) == MIN_PER_THREAD, "the helper's whole range was written"
    assert max(finished) <= raised_at


async def test_the_real_connections_take_a_burst_with_sockets_dying_in_it(settings, factory, mongo, redis):
    """Through the app: enough lobby subscribers for three burst threads (the real `Connection.write_now`),
    some of them reset just before the event; every other one gets it, and the next one too."""
    from hireflow.web.app import create_app
    from tests.conftest import serve
    from tests.support.wsframes import masked_text_frame, server_frames, upgrade_request

    custom = settings.model_copy(update={"ws_burst_threads": 3})
    client = await serve(create_app(custom))
    host = await factory.user("host")
    sockets: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for _ in range(3 * MIN_PER_THREAD + 10):
            reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
            writer.write(upgrade_request("127.0.0.1", host.token))
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
            writer.write(masked_text_frame(b'{"type":"subscribe","topic":"lobby"}'))
            sockets.append((reader, writer))
        for reader, _writer in sockets:
            await _read_until(reader, b'"type":"snapshot"')
        dying = sockets[5::40]
        for _reader, writer in dying:
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
        living = [s for s in sockets if s not in dying]
        for problem in ("one", "two"):
            body = {"problem": problem, "difficulty": "easy"}
            assert (await client.post("/api/sessions", json=body, headers=host.headers)).status == 201
            for reader, _writer in living:
                frames = server_frames(await _read_until(reader, b'"session.created"'))
                assert any(problem.encode() in payload for _op, payload in frames)
    finally:
        for _reader, writer in sockets:
            writer.close()
        await client.close()


async def _read_until(reader: asyncio.StreamReader, marker: bytes) -> bytes:
    data = b""
    async with asyncio.timeout(10):
        while marker not in data:
            chunk = await reader.read(65536)
            assert chunk, "connection closed"
            data += chunk
    return data
