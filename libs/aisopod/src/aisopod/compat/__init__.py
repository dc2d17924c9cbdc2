"""Every use of a dependency's undocumented internals, one module per dependency.

Nothing else in the code base touches a private name of nats-py; `tests/test_compat.py`
checks each one against the installed version, so an upgrade that renames or removes one
fails there, by name, instead of somewhere at run time. The pyproject pins the versions
these modules were written against.
"""
