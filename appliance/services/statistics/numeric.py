"""The numbers libraries, imported on first use: scipy and numpy take a noticeable part of
a second to import, and most of the appliance's processes (the CLI, the TUI, a server
that never runs a test) never need them."""

from __future__ import annotations

import math
from types import ModuleType
from typing import TYPE_CHECKING, Any

from appliance.core.errors import ValidationError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Array = npt.NDArray[np.float64]
else:
    Array = Any


def numpy() -> ModuleType:
    import numpy as np

    return np


def scipy_stats() -> ModuleType:
    import scipy.stats

    found: ModuleType = scipy.stats
    return found


def brentq() -> Any:
    from scipy.optimize import brentq as found

    return found


def array(values: list[float]) -> Array:
    result: Array = numpy().asarray(values, dtype=float)
    return result


def num(value: Any) -> float:
    """A numpy or scipy scalar as a plain float."""
    return float(value)


def degenerate(field: str, reason: str) -> ValidationError:
    """Data a test cannot say anything about (too few values, no variance): a 422 naming
    the field the values came from, never a NaN in a 200."""
    return ValidationError(f"{field}: {reason}", details={"field": field, "reason": reason})


def finite(value: float, what: str, field: str = "data") -> float:
    if not math.isfinite(value):
        raise degenerate(field, f"the {what} is not a finite number for these values; the test does not apply")
    return value


def z_quantile(p: float) -> float:
    return num(scipy_stats().norm.ppf(p))
