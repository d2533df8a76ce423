"""Where the ``lxdctl.platform`` collection is, and access to its shared module_utils.

An installed wheel carries the collection under ``lxdctl/_collection``.  A source checkout
(editable install or tests run from the repo) uses the repository root, exposed through a
small symlink tree because Ansible needs the ``ansible_collections/<ns>/<name>`` shape.
"""
import importlib
import os
import sys
from functools import lru_cache

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_EMBEDDED = os.path.join(_PACKAGE_DIR, "_collection")


def _source_root():
    root = os.path.dirname(os.path.dirname(_PACKAGE_DIR))
    return root if os.path.isfile(os.path.join(root, "galaxy.yml")) else None


@lru_cache(maxsize=None)
def collections_path():
    """A directory that contains ``ansible_collections/lxdctl/platform``."""
    if os.path.isdir(os.path.join(_EMBEDDED, "ansible_collections", "lxdctl", "platform")):
        return _EMBEDDED
    root = _source_root()
    if root is None:
        raise RuntimeError("the lxdctl.platform collection is missing from this installation")
    base = os.path.join(os.path.expanduser("~"), ".cache", "lxdctl", "source-collections")
    link_parent = os.path.join(base, "ansible_collections", "lxdctl")
    link = os.path.join(link_parent, "platform")
    os.makedirs(link_parent, exist_ok=True)
    if os.path.realpath(link) != os.path.realpath(root):
        tmp = link + ".%d" % os.getpid()
        os.symlink(root, tmp)
        os.replace(tmp, link)
    return base


def collection_root():
    return os.path.join(collections_path(), "ansible_collections", "lxdctl", "platform")


def playbook_path(name):
    return os.path.join(collection_root(), "playbooks", name if name.endswith(".yml") else name + ".yml")


def module_utils(name):
    """Import ``plugins/module_utils/<name>`` of the collection (the single source of rules)."""
    path = collections_path()
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module("ansible_collections.lxdctl.platform.plugins.module_utils." + name)
