"""The one exception tree of convmem.

    ConvmemError                 anything convmem raises on purpose
    ├── InputError               the caller gave something wrong (bad file, bad argument); message says what to fix
    │   ├── FormatError          a file or payload does not follow its format (names file, item and field)
    │   └── NotFound             a user, session or named component that does not exist
    ├── ConfigError              configuration or environment is wrong (missing model, bad URL)
    ├── MissingDependency        an optional extra is not installed; message carries the pip command
    └── StoreError               the storage backend failed (locked too long, connection lost)

The CLI, HTTP server and MCP server turn every `InputError`/`ConfigError`/`MissingDependency` into a clean
message (exit code 2, HTTP 4xx) and never show a traceback for them.
"""

from __future__ import annotations


class ConvmemError(Exception):
    """Base of every error convmem raises on purpose."""

    code = "convmem_error"


class InputError(ConvmemError, ValueError):
    """The caller gave something wrong; the message says what and how to fix it."""

    code = "invalid_input"


class FormatError(InputError):
    """A file or payload does not follow its format."""

    code = "invalid_format"

    def __init__(self, message: str, *, source: str | None = None, item: str | int | None = None):
        where = []
        if source:
            where.append(str(source))
        if item is not None:
            where.append(f"item {item}")
        self.source, self.item = source, item
        super().__init__(f"{': '.join(where)}: {message}" if where else message)


class NotFound(InputError, LookupError):
    """A user, session or named component that does not exist."""

    code = "not_found"


class ConfigError(ConvmemError):
    """Configuration or environment is wrong."""

    code = "config_error"


class MissingDependency(ConvmemError, ImportError):
    """An optional extra is missing."""

    code = "missing_dependency"

    def __init__(self, module: str, extra: str, purpose: str = ""):
        what = f" for {purpose}" if purpose else ""
        super().__init__(
            f"the Python package '{module}' is needed{what}; install it with: pip install 'convmem[{extra}]'"
        )


class StoreError(ConvmemError):
    """The storage backend failed."""

    code = "store_error"


def require(module: str, extra: str, purpose: str = ""):
    """Import an optional dependency or raise `MissingDependency` with the install hint."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(module, extra, purpose) from exc
