"""The cluster's nodes (cluster mode only), from `cluster` of GET /api/status: each node's
state, and its slots in use / offered for each engine it has.

    Node  State     docker  gvisor  Done
    a     up        1/2     —       14
    b     draining  2/2     0/1     9
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text

from appliance.tui.widgets.fitted_table import FittedDataTable

STATE_COLOURS = {"up": "success", "draining": "warning", "lost": "error"}


class ClusterNodesTable(FittedDataTable[Text]):
    """One row per node, one column per engine any node offers: `busy/slots`, a dash
    where the node has no such engine (so it gets no request for it)."""

    DEFAULT_CSS = """
    ClusterNodesTable { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)

    def show(self, nodes: Iterable[dict[str, Any]]) -> None:
        found = list(nodes)
        engines = sorted({engine for node in found for engine in node.get("slots") or {}})
        cells = {node["name"]: self._row(node, engines) for node in found}
        labels = ["Node", "State", *engines, "Done"]
        widths = [
            max([len(label), *(values[n].cell_len for values in cells.values())]) for n, label in enumerate(labels)
        ]
        same_layout = [k.value for k in self.columns] == labels and list(cells) == [k.value for k in self.rows]
        if same_layout and all(w <= c.width for w, c in zip(widths, self.columns.values(), strict=True)):
            for name, values in cells.items():  # in place: the cursor and scroll stay put
                for column, value in zip(self.columns, values, strict=True):
                    self.update_cell(name, column, value)
            return
        self.clear(columns=True)
        for label, width in zip(labels, widths, strict=True):
            self.add_column(label, width=width, key=label)
        for name, values in cells.items():
            self.add_row(*values, key=name)

    def _row(self, node: dict[str, Any], engines: list[str]) -> list[Text]:
        colours = self.app.theme_variables
        state = node.get("state", "?")
        colour = colours.get(STATE_COLOURS.get(state, ""), "")
        return [
            Text(node["name"]),
            Text(state, style=f"bold {colour}" if state == "lost" else colour),
            *(self._slots(node, engine) for engine in engines),
            Text(str(node.get("completed", 0))),
        ]

    def _slots(self, node: dict[str, Any], engine: str) -> Text:
        total = (node.get("slots") or {}).get(engine)
        if not total:
            return Text("—", style="dim")
        busy = (node.get("busy") or {}).get(engine, 0)
        text = Text(f"{busy}/{total}")
        if node.get("state") == "up" and busy >= total:
            text.stylize(self.app.theme_variables.get("warning", "yellow"))
        return text
