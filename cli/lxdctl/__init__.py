"""lxdctl: one command gives a project its own LXD container, database, cache, DNS name and site."""

__version__ = "0.1.0"
