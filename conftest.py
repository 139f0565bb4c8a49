"""Collection rules for the doctests of the optional worlds: a module whose examples need an
extra that is not installed is not collected (its tests under tests/ skip with a reason)."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("dask") else ["lossjit/dask.py"]
