"""`hydranet weights download` against a local HTTP server on 127.0.0.1 serving a test checkpoint."""

import functools
import http.server
import os
import socketserver
import threading
import time

import pytest

from hydranet_ros.cli import main
from hydranet_ros.model import HydraNet, get_preset
from hydranet_ros.model import download
from hydranet_ros.model.checkpoints import load_weights
from support import save_published


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def published_kitti(server, monkeypatch):
    """The served file's real git blob id becomes the expected one, as for the authors' file."""
    root, url = server
    path = save_published(root / "ExpKITTI_joint.ckpt", HydraNet(get_preset("kitti")).eval())
    monkeypatch.setitem(download.PUBLISHED, "kitti", download.PublishedFile(path.name, download.git_blob_sha1(path)))
    return path, url


def test_git_blob_id_is_git_hash_object(tmp_path):
    (tmp_path / "f").write_bytes(b"hello\n")
    assert download.git_blob_sha1(tmp_path / "f") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_download_verifies_converts_and_caches(published_kitti):
    _, url = published_kitti
    path = download.download_published("kitti", base_url=url)
    assert path == download.cached_weights_path("kitti") and path.is_file()
    weights = load_weights("kitti")
    assert weights.preset.name == "kitti" and weights.metadata["source"].startswith(url)
    assert load_weights("default").source == str(path)


def test_cli_download(published_kitti, capsys):
    _, url = published_kitti
    assert main(["weights", "download", "kitti", "--url", url]) == 0
    assert "verified and cached" in capsys.readouterr().out
    assert main(["weights", "list"]) == 0
    assert "cached at" in capsys.readouterr().out


def test_wrong_blob_id_is_refused_and_nothing_cached(published_kitti, monkeypatch):
    path, url = published_kitti
    monkeypatch.setitem(download.PUBLISHED, "kitti", download.PublishedFile(path.name, "0" * 40))
    with pytest.raises(download.DownloadError, match="checksum mismatch"):
        download.download_published("kitti", base_url=url)
    assert not download.cached_weights_path("kitti").exists()
    assert not list(download.cached_weights_path("kitti").parent.glob(".download-*"))


def test_truncated_file_is_refused(published_kitti):
    path, url = published_kitti
    path.write_bytes(path.read_bytes()[:1000])  # served whole, but not the file the id names
    with pytest.raises(download.DownloadError, match="checksum mismatch"):
        download.download_published("kitti", base_url=url)


def test_404_is_reported(server):
    _, url = server
    with pytest.raises(download.DownloadError, match="404"):
        download.download_published("nyud", base_url=url)


def test_unreachable_host_fails_with_a_clear_line(capsys):
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    assert main(["weights", "download", "nyud", "--url", "http://127.0.0.1:9/"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach" in err[0] and "hydranet convert" in err[0]


# -- a server that misbehaves (issue 12, item 12) --------------------------------------------------


class Misbehaving(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def misbehaving_server(kind: str):
    """A loopback server answering every request in one broken way."""

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # the request's headers
                pass
            send = self.wfile.write
            try:
                if kind == "endless body":
                    send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")
                    block = bytes(1 << 16)
                    while True:
                        send(block)
                elif kind == "announces too much":
                    send(b"HTTP/1.1 200 OK\r\nContent-Length: 5368709120\r\n\r\n")
                    send(bytes(1000))
                elif kind == "trickle":
                    send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
                    for _ in range(200):
                        send(b"x")
                        self.wfile.flush()
                        time.sleep(0.05)
                elif kind == "broken chunks":
                    send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\nzz\r\n")
                elif kind == "garbage status line":
                    send(b"\x00\x01GARBAGE \xff\xfe\r\n\r\n")
                elif kind == "200 kB header":
                    send(b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 200_000 + b"\r\n\r\n")
                elif kind == "cut mid-body":
                    send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + bytes(5000))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up, as it should

    server = Misbehaving(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


FAULTS = {
    "endless body": "more than 1048576 bytes",
    "announces too much": "announces 5368709120 bytes",
    "trickle": "stalled",
    "broken chunks": "transfer failed",
    "garbage status line": "transfer failed",
    "200 kB header": "transfer failed",
    "cut mid-body": "truncated download (5000 of 100000 bytes)",
}


@pytest.fixture
def small_bounds(monkeypatch):
    """A 1 MiB bound and a 1 s stall window, so that each fault shows in a second or two."""
    monkeypatch.setitem(download.PUBLISHED, "kitti", download.PublishedFile("ExpKITTI_joint.ckpt", "0" * 40, 1 << 20))
    monkeypatch.setattr(download, "_fetch", functools.partial(download._fetch, stall_s=1.0, stall_bytes=1024))


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_a_misbehaving_server_ends_in_one_line_and_leaves_nothing(kind, small_bounds, capsys):
    server, url = misbehaving_server(kind)
    try:
        started = time.monotonic()
        assert main(["weights", "download", "kitti", "--url", url, "--force"]) == 2
        elapsed = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hydranet weights: error: ") and FAULTS[kind] in err[0], err
    assert "Traceback" not in err[0]
    assert elapsed < 30
    cache = download.cached_weights_path("kitti").parent
    assert not download.cached_weights_path("kitti").exists()
    assert not list(cache.glob(".download-*"))


def test_the_whole_download_has_a_deadline(monkeypatch):
    """Steady but slow (a byte every 50 ms, never stalled by the window): cut at the deadline."""
    monkeypatch.setitem(download.PUBLISHED, "kitti", download.PublishedFile("ExpKITTI_joint.ckpt", "0" * 40))
    server, url = misbehaving_server("trickle")
    try:
        with pytest.raises(download.DownloadError, match="not complete after 1 s"):
            download.download_published("kitti", base_url=url, force=True,
                                        limits={"deadline_s": 1.0, "stall_s": 60.0})
    finally:
        server.shutdown()
        server.server_close()


def test_partial_downloads_of_killed_runs_are_removed(published_kitti):
    """A SIGKILL mid-download leaves .download-* in the cache; the next download removes those whose
    process is gone (and old ones from before the pid was in the name), never a live one."""
    _, url = published_kitti
    cache = download.cached_weights_path("kitti").parent
    cache.mkdir(parents=True, exist_ok=True)
    dead = cache / ".download-4194305-abcd1234"  # above any pid_max: no such process
    old = cache / ".download-k2j3h4g5"
    live = cache / f".download-{os.getpid()}-efgh5678"
    for folder in (dead, old, live):
        folder.mkdir()
        (folder / "ExpKITTI_joint.ckpt").write_bytes(bytes(1 << 20))
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    download.download_published("kitti", base_url=url, force=True)
    assert not dead.exists() and not old.exists() and live.exists()
