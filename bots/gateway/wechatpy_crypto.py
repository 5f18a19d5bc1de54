"""wechatpy's message crypto, without its API clients.

``import wechatpy.crypto`` runs ``wechatpy/__init__.py`` (and ``wechatpy.work``'s), which import every API client
— requests, urllib3, charset_normalizer, dateutil: about 200 modules and 20 MiB of RSS in each server process —
though a server only decrypts callbacks. So the two packages are registered here from their real specs *without*
running their ``__init__``; their submodules then import as usual (``wechatpy.crypto``, ``wechatpy.work.crypto``,
``wechatpy.utils``, ``wechatpy.exceptions``), and the first access to anything the package ``__init__`` defines
(``from wechatpy import WeChatClient``) runs it then, via a module ``__getattr__`` (PEP 562). When wechatpy was
imported fully before this module, nothing is changed.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any


def _register_without_init(name: str) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError(f"{name} is not an installed package")
    package = importlib.util.module_from_spec(spec)  # __path__, __file__, __spec__ set; __init__ not run
    loaded = False

    def __getattr__(attr: str) -> Any:  # PEP 562 module hook
        nonlocal loaded
        if loaded or attr.startswith("__"):
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        loaded = True
        spec.loader.exec_module(package)  # type: ignore[union-attr]  # the package's own __init__, once
        return getattr(package, attr)

    package.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[name] = package
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, package)


def _light() -> ModuleType:
    _register_without_init("wechatpy")
    _register_without_init("wechatpy.work")
    return sys.modules["wechatpy"]


_light()

from wechatpy.crypto import PrpCrypto as MpPrpCrypto  # noqa: E402
from wechatpy.exceptions import InvalidAppIdException  # noqa: E402
from wechatpy.work.crypto import PrpCrypto as WorkPrpCrypto  # noqa: E402
from wechatpy.work.exceptions import InvalidCorpIdException  # noqa: E402

__all__ = ["InvalidAppIdException", "InvalidCorpIdException", "MpPrpCrypto", "WorkPrpCrypto"]
