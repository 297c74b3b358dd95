"""The registry of pruning-unit kinds: a name (as notebooks and profiles give it) -> its class."""

from __future__ import annotations

from .errors import ParameterError
from .tokens import Tokens
from .units import ConvChannels, MlpChannels, Unit

UNITS: dict[str, type[Unit]] = {"mlp_channels": MlpChannels, "conv_channels": ConvChannels, "tokens": Tokens}


def get_unit(name: str | Unit, **params) -> Unit:
    """The unit kind `name` with its settings, e.g. `get_unit("tokens", block=3)`."""
    if isinstance(name, Unit):
        return name
    if name not in UNITS:
        raise ParameterError(f"unknown unit {name!r}; valid: {', '.join(UNITS)}")
    try:
        return UNITS[name](**params)
    except TypeError as e:
        raise ParameterError(f"unit {name!r}: {e}") from None
