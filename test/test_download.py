"""`hydranet weights download` against a local HTTP server on 127.0.0.1 serving a test checkpoint."""

import functools
import http.server
import threading

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
