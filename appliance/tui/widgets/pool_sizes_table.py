"""The warm pool per runtime image: idle containers ready / the pool's target, for
each engine, from `sandbox_pool` of GET /api/status.

    Image   Languages     docker   gvisor
    python  python, bash  2/2      1/2 +1
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text

from appliance.tui.widgets.fitted_table import FittedDataTable

RUNTIME_IMAGE_PREFIX = "appliance-runtime-"


def image_label(image: str) -> str:
    """`appliance-runtime-python:bookworm-1` -> `python`; other names keep their repo."""
    name = image.rsplit("/", 1)[-1].split(":", 1)[0]
    return name.removeprefix(RUNTIME_IMAGE_PREFIX) or image


class PoolSizesTable(FittedDataTable[Text]):
    """One row per image (several languages may share one), one column per engine.
    A cell is `idle/target`, with `+n` for containers being made; yellow while the pool
    holds fewer idle containers than it aims to, red when it holds none."""

    DEFAULT_CSS = """
    PoolSizesTable { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)

    def show(self, pool: Iterable[dict[str, Any]]) -> None:
        lanes = list(pool)
        engines = sorted({lane["engine"] for lane in lanes})
        images: dict[str, dict[str, Any]] = {}
        for lane in lanes:
            row = images.setdefault(lane["image"], {"languages": [], "engines": {}})
            if lane["language"] not in row["languages"]:
                row["languages"].append(lane["language"])
            cell = row["engines"].setdefault(lane["engine"], [0, 0, 0])
            cell[0] += lane.get("idle", 0)
            cell[1] += lane.get("target", 0)
            cell[2] += lane.get("creating", 0)
        cells = {
            image: [
                Text(image_label(image)),
                Text(", ".join(row["languages"])),
                *(self._cell(row["engines"].get(engine)) for engine in engines),
            ]
            for image, row in images.items()
        }
        labels = ["Image", "Languages", *engines]
        # Widths set here rather than measured by the table as rows arrive: the table's
        # own measuring sometimes lagged its first paint and cut names short.
        widths = [
            max([len(label), *(values[n].cell_len for values in cells.values())]) for n, label in enumerate(labels)
        ]
        # In place only over the same columns and rows: a table not drawn yet has no columns
        # (an empty pool still gets its header).
        same_columns = [key.value for key in self.columns] == labels
        same_layout = same_columns and list(cells) == [key.value for key in self.rows]
        if same_layout and all(w <= c.width for w, c in zip(widths, self.columns.values(), strict=True)):
            # Change the cells in place so the cursor and scroll stay put.
            for image, values in cells.items():
                for column, value in zip(self.columns, values, strict=True):
                    self.update_cell(image, column, value)
            return
        self.clear(columns=True)
        for label, width in zip(labels, widths, strict=True):
            self.add_column(label, width=width, key=label)
        for image, values in cells.items():
            self.add_row(*values, key=image)

    def _cell(self, counts: list[int] | None) -> Text:
        if counts is None:
            return Text("—", style="dim")
        idle, target, creating = counts
        text = Text(f"{idle}/{target}" + (f" +{creating}" if creating else ""))
        colors = self.app.theme_variables
        if target and idle == 0:
            text.stylize(f"bold {colors.get('error', 'red')}")
        elif idle < target:
            text.stylize(colors.get("warning", "yellow"))
        return text
