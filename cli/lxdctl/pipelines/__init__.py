"""CI/CD pipelines: the pipeline file (``spec``), isolated runs (``run``), generated CI files
(``ci_files``) and notifications (``notify``).  Webhooks live in ``lxdctl.api.webhooks``."""
