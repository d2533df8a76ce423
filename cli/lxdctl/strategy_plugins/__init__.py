"""Ansible strategy plugins used by the CLI's runner (ANSIBLE_STRATEGY_PLUGINS points here)."""
