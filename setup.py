"""Ships the Ansible collection inside the ``lxdctl`` wheel.

The collection lives at the repository root (galaxy.yml, plugins/, roles/ ...).  ``build_py``
copies it to ``lxdctl/_collection/ansible_collections/lxdctl/platform`` so an installed
``lxdctl`` finds its own playbooks and modules without ``ansible-galaxy install``.
"""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
COLLECTION_PARTS = ("galaxy.yml", "meta", "plugins", "roles", "playbooks", "inventories", "README.md")


class BuildWithCollection(build_py):
    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "lxdctl", "_collection", "ansible_collections", "lxdctl", "platform")
        if os.path.exists(target):
            shutil.rmtree(target)
        os.makedirs(target)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
        for part in COLLECTION_PARTS:
            source = os.path.join(HERE, part)
            if os.path.isdir(source):
                shutil.copytree(source, os.path.join(target, part), ignore=ignore)
            elif os.path.isfile(source):
                shutil.copy2(source, os.path.join(target, part))


setup(cmdclass={"build_py": BuildWithCollection})
