"""The collection as Ansible sees it: every plugin documents itself and the collection builds."""
import json
import os
import subprocess
import sys
import tarfile

from lxdctl.collection import collection_root, collections_path

BIN = os.path.dirname(sys.executable)


def _env():
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_NOCOLOR="1")


def _plugins(kind):
    folder = os.path.join(collection_root(), "plugins", kind)
    return sorted("lxdctl.platform." + name[:-3] for name in os.listdir(folder)
                  if name.endswith(".py") and not name.startswith("_"))


def _docs(plugin_type, names):
    proc = subprocess.run([os.path.join(BIN, "ansible-doc"), "-t", plugin_type, "--json"] + names,
                          capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_every_module_renders_with_examples_and_return():
    names = _plugins("modules")
    docs = _docs("module", names)
    assert sorted(docs) == names
    for name, doc in docs.items():
        assert doc["doc"]["short_description"], name
        assert doc["doc"]["options"], name
        assert doc["examples"], name
        assert doc.get("return") is not None, name


def test_connection_and_inventory_plugins_render():
    assert _docs("connection", ["lxdctl.platform.lxd"])["lxdctl.platform.lxd"]["doc"]["options"]
    assert _docs("inventory", ["lxdctl.platform.projects"])["lxdctl.platform.projects"]["doc"]["options"]


def test_galaxy_build_produces_the_collection(tmp_path):
    proc = subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", collection_root(),
                           "--output-path", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(tmp_path / "lxdctl-platform-0.1.0.tar.gz") as archive:
        members = set(archive.getnames())
    assert {"MANIFEST.json", "plugins/modules/lxd_instance.py", "roles/platform/tasks/main.yml",
            "playbooks/bootstrap.yml", "meta/runtime.yml"} <= members
    assert not any(name.startswith(("cli/", "bench/", ".git/")) for name in members)
