"""Slack / Discord notices: the collection's ``module_utils/_notify.py`` (module
``pipeline_run`` sends them when a run finishes)."""
from lxdctl.collection import module_utils

_notify = module_utils("_notify")

message = _notify.message
payload = _notify.payload
send = _notify.send
send_all = _notify.send_all
