"""The pipeline file's format and rules: the collection's ``module_utils/_pipeline_spec.py``,
so ``lxdctl pipeline create`` and the role ``pipeline`` refuse exactly the same files."""
from lxdctl.collection import module_utils

_spec = module_utils("_pipeline_spec")
globals().update((k, v) for k, v in vars(_spec).items() if k.isupper() or k in (
    "_PATH_RE", "SpecError", "parse", "substitute", "base_domain"))
