"""Role platform's image-server path: images pulled from a simplestreams server, not built.

There is no image server on the internet here, so the test stands one up: our own built
base image, exported with ``lxc``, given a new metadata.yaml (so its fingerprint is new and
LXD really has to download it) and served as a simplestreams tree over HTTP on loopback
under another alias.  The image_build playbook (role platform, tasks_from images) then runs
in check mode, for real, and again; ``lxc`` checks the image and boots a container from it.
"""
import hashlib
import http.server
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import threading

import pytest

from lxdctl.collection import collections_path, playbook_path

pytestmark = pytest.mark.integration

PREFIX = "itimgsrv-"  # local aliases and containers of this file
REMOTE_PREFIX = PREFIX + "srv-"  # the aliases on the test image server
ALIAS = PREFIX + "base"
CONTAINER = PREFIX + "boot"


def run(argv, timeout=300):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def lxc(*args):
    return run(["lxc"] + list(args))


def _sha256(*chunks_or_paths):
    digest = hashlib.sha256()
    for item in chunks_or_paths:
        if isinstance(item, bytes):
            digest.update(item)
            continue
        with open(item, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _retitled_metadata(meta_tarball):
    """The exported metadata tarball with a changed description (a new image fingerprint)."""
    out = io.BytesIO()
    with tarfile.open(meta_tarball) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if member.name.lstrip("./") == "metadata.yaml":
                meta = json.loads(data)  # LXD writes it as JSON, which is YAML too
                meta["properties"]["description"] = "lxdctl base image served by test_image_server"
                data = json.dumps(meta).encode()
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def build_tree(root, workdir):
    """A simplestreams tree under ``root`` serving lxdctl-base as REMOTE_PREFIX + "base"."""
    export = os.path.join(workdir, "export")
    exported = lxc("image", "export", "lxdctl-base", export)
    assert exported.returncode == 0, exported.stderr
    meta = _retitled_metadata(export)
    version_dir = os.path.join(root, "images", "lxdctl", "base", "20261201_0000")
    os.makedirs(version_dir)
    os.makedirs(os.path.join(root, "streams", "v1"))
    with open(os.path.join(version_dir, "lxd.tar.xz"), "wb") as handle:
        handle.write(meta)
    rootfs = os.path.join(version_dir, "root.tar.xz")  # LXD detects the real compression (none)
    os.link(export + ".root", rootfs)
    fingerprint = _sha256(meta, rootfs)
    rel = "images/lxdctl/base/20261201_0000/"
    products = {
        "content_id": "images", "datatype": "image-downloads", "format": "products:1.0",
        "products": {"lxdctl:bookworm:amd64:base": {
            "aliases": REMOTE_PREFIX + "base", "arch": "amd64", "os": "debian", "release": "bookworm",
            "release_title": "bookworm",
            "versions": {"20261201_0000": {"items": {
                "lxd.tar.xz": {"ftype": "lxd.tar.xz", "path": rel + "lxd.tar.xz", "size": len(meta),
                               "sha256": _sha256(meta), "combined_sha256": fingerprint,
                               "combined_rootxz_sha256": fingerprint},
                "root.tar.xz": {"ftype": "root.tar.xz", "path": rel + "root.tar.xz",
                                "size": os.path.getsize(rootfs), "sha256": _sha256(rootfs)},
            }}},
        }},
    }
    index = {"format": "index:1.0", "index": {"images": {
        "datatype": "image-downloads", "path": "streams/v1/images.json", "format": "products:1.0",
        "products": sorted(products["products"])}}}
    for name, doc in (("images.json", products), ("index.json", index)):
        with open(os.path.join(root, "streams", "v1", name), "w") as handle:
            json.dump(doc, handle)
    return fingerprint


@pytest.fixture(scope="module")
def image_server(tmp_path_factory):
    """``(url, fingerprint, requests)``: the server's URL, the served image's fingerprint and
    the paths requested so far."""
    for leftover in (("delete", "--force", CONTAINER), ("image", "delete", ALIAS)):
        lxc(*leftover)
    workdir = str(tmp_path_factory.mktemp("image-server"))
    root = os.path.join(workdir, "www")
    fingerprint = build_tree(root, workdir)
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=root, **kwargs)

        def log_message(self, fmt, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1], fingerprint, requests
    finally:
        server.shutdown()
        server.server_close()
        lxc("delete", "--force", CONTAINER)
        lxc("image", "delete", ALIAS)


def image_build(server, *extra, **overrides):
    """The image_build playbook (role platform, tasks_from images) for the base image only."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_NOCOLOR="1")
    extravars = {"platform_image_server": server, "platform_image_server_alias_prefix": REMOTE_PREFIX,
                 "platform_images_alias_prefix": PREFIX, "platform_images_runtimes": []}
    extravars.update(overrides)
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", "ansible_python_interpreter=%s" % sys.executable, "-e", json.dumps(extravars),
            playbook_path("image_build")] + list(extra)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
    recap = re.search(r"^localhost\s*:.*changed=(\d+).*failed=(\d+)", proc.stdout, re.M)
    return proc, recap and (int(recap.group(1)), int(recap.group(2)))


def local_fingerprint(alias):
    shown = lxc("image", "info", alias)
    match = re.search(r"^Fingerprint: ([0-9a-f]{64})$", shown.stdout, re.M)
    return match and match.group(1)


def downloads(requests):
    return [path for path in requests if path.endswith(".tar.xz")]


def test_check_mode_pulls_nothing(image_server):
    url, _, requests = image_server
    proc, recap = image_build(url, "--check")
    assert proc.returncode == 0 and recap == (1, 0), proc.stdout[-3000:]
    assert local_fingerprint(ALIAS) is None
    assert downloads(requests) == []


def test_the_role_pulls_the_image_from_the_server(image_server):
    url, fingerprint, requests = image_server
    proc, recap = image_build(url)
    assert proc.returncode == 0 and recap == (1, 0), proc.stdout[-3000:]
    assert local_fingerprint(ALIAS) == fingerprint  # the served image, not a local build
    assert sorted(os.path.basename(path) for path in downloads(requests)) == ["lxd.tar.xz", "root.tar.xz"]
    info = lxc("image", "info", ALIAS).stdout
    assert "Server: %s" % url in info and "Protocol: simplestreams" in info
    assert "Alias: %sbase" % REMOTE_PREFIX in info


def test_a_rerun_changes_nothing_and_downloads_nothing(image_server):
    url, fingerprint, requests = image_server
    before = len(downloads(requests))
    proc, recap = image_build(url)
    assert proc.returncode == 0 and recap == (0, 0), proc.stdout[-3000:]
    assert len(downloads(requests)) == before
    assert local_fingerprint(ALIAS) == fingerprint


def test_a_container_boots_from_the_pulled_image(image_server):
    launched = lxc("launch", ALIAS, CONTAINER, "-p", "lxdctl")
    assert launched.returncode == 0, launched.stderr
    release = lxc("exec", CONTAINER, "--", "cat", "/etc/debian_version")
    assert release.returncode == 0 and release.stdout.startswith("12."), release.stdout + release.stderr
    assert lxc("exec", CONTAINER, "--", "test", "-x", "/usr/bin/python3").returncode == 0


def test_an_unreachable_server_names_the_setting_and_creates_nothing():
    proc, recap = image_build("http://127.0.0.1:9", platform_images_alias_prefix=PREFIX + "none-")
    assert proc.returncode != 0 and recap and recap[1] == 1
    assert "platform_image_server (--image-server) http://127.0.0.1:9 cannot be reached" in proc.stdout
    assert "leave it empty to build the images locally" in proc.stdout
    assert local_fingerprint(PREFIX + "none-base") is None
