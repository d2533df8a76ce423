"""Mitogen's free strategy, with the target importing Ansible from its own disk (lxdctl.mitogen_local)."""
import ansible_mitogen.loaders
import ansible_mitogen.strategy

from lxdctl import mitogen_local

mitogen_local.install()


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, ansible_mitogen.loaders.strategy_loader.get("free", class_only=True)):
    pass
