"""Shared fixtures.  Integration tests assume the platform that ``scripts/test.sh`` set up."""
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # makes ``tests.support`` importable

from lxdctl.collection import collections_path  # noqa: E402

sys.path.insert(0, collections_path())  # ``ansible_collections.lxdctl.platform`` for unit tests


@pytest.fixture(scope="session")
def platform_config():
    """The platform configuration written by ``lxdctl init``; integration tests need it."""
    path = os.environ.get("LXDCTL_CONFIG", "/etc/lxdctl/platform.json")
    with open(path) as handle:
        return json.load(handle)
