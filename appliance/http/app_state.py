"""The appliance in the Litestar app's state: app_factory puts it there once, the
providers (dependencies.py) and identity.py take it from there.

Litestar's `State` holds values of any type; this is the one place the appliance gets
its type back, so no handler or provider reads `state.appliance` untyped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar.datastructures import State

if TYPE_CHECKING:
    from appliance.app import Appliance


def keep_appliance(state: State, appliance: Appliance) -> None:
    state.appliance = appliance


def appliance_of(state: State) -> Appliance:
    appliance: Appliance = state.appliance
    return appliance
