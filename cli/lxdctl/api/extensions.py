"""Loading the extensions that plug into the server (webhooks, the "pipeline" job kind)."""
import importlib
import importlib.util
import sys

OPTIONAL = ("lxdctl.api.webhooks",)
_loaded = []


def load(router=None):
    """Import the optional modules; call their ``register(router)`` and the registered extensions."""
    from lxdctl.api import router as router_module

    if router is None:
        router = router_module.Router()  # a worker: only the side effects (job kinds) matter
    for name in OPTIONAL:
        if importlib.util.find_spec(name) is None:
            continue
        try:
            module = importlib.import_module(name)
            if hasattr(module, "register") and module.register not in router_module.extensions():
                module.register(router)
        except Exception as exc:  # noqa: BLE001 - a broken extension must not take the API down
            sys.stderr.write("lxdctl serve: extension %s failed to load: %s\n" % (name, exc))
            continue
        _loaded.append(name)
    for func in router_module.extensions():
        func(router)
    return router
