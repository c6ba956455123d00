"""DatasetService: benchmark datasets, imported into the data dir's database or shipped as
demos (shipped/datasets/*.jsonl: written for the appliance, named `demo_*`).

An import is a JSONL or CSV text, or items already read (the CLI reads the file with the
same rules and sends its items in slices, the first replacing, the next appended). A bad
row refuses the whole request, naming its line; nothing is stored. A missing dataset is
a NOT_FOUND saying how to import one, never a fallback to a demo.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import msgspec

from appliance.core.clock import utc_now
from appliance.core.errors import Conflict, NotFound, ValidationError
from appliance.core.identity import ADMIN, EXECUTE, READ, Identity
from appliance.core.llm.datasets import (
    Dataset,
    DatasetError,
    DatasetItem,
    FieldMapping,
    check_name,
    dataset_kind,
    read_rows,
    to_items,
)
from appliance.services.access.auth import require_permission
from appliance.store.datasets import DatasetStore

DEMO_PREFIX = "demo_"
MAX_ITEMS = 1_000_000


class DatasetImport(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """POST /api/v1/datasets: `content` (a JSONL or CSV text, `format` naming which) or
    `items` (as GET /api/v1/datasets/{name}/items shows them)."""

    name: str
    format: str = "jsonl"
    content: str | None = None
    items: list[DatasetItem] | None = None
    mapping: FieldMapping | None = None
    source: str | None = None  # the file's name, kept to show where it came from
    append: bool = False  # after the dataset's items (the CLI's later slices)


class DatasetList(msgspec.Struct, kw_only=True):
    datasets: list[Dataset]


class DatasetItems(msgspec.Struct, kw_only=True):
    dataset: Dataset
    items: list[DatasetItem]


def not_found(name: str) -> NotFound:
    return NotFound(
        f"dataset {name!r} not found: import it with `appliance datasets import FILE --name {name}` "
        "(JSONL or CSV) or POST /api/v1/datasets; GET /api/v1/datasets lists the datasets there are",
        details={"dataset": name},
    )


@cache
def _demos() -> dict[str, tuple[Dataset, tuple[DatasetItem, ...]]]:
    folder = resources.files("appliance.services.llm") / "shipped" / "datasets"
    demos = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".jsonl"):
            continue
        name = entry.name.removesuffix(".jsonl")
        items = tuple(to_items(read_rows(entry.read_text(), "jsonl")))
        dataset = Dataset(
            name=name,
            kind=dataset_kind(list(items)),
            item_count=len(items),
            source=f"shipped with the appliance ({entry.name})",
            owner="appliance",
            created_at=utc_now().replace(year=2026, month=1, day=1, hour=0, minute=0, second=0, microsecond=0),
            demo=True,
        )
        demos[name] = (dataset, items)
    return demos


class DatasetService:
    def __init__(self, store: DatasetStore) -> None:
        self._store = store

    async def import_dataset(self, identity: Identity, request: DatasetImport) -> Dataset:
        require_permission(identity, EXECUTE)
        problem = check_name(request.name)
        if problem:
            raise ValidationError(f"name: {problem}", details={"field": "name", "reason": problem})
        if request.name.startswith(DEMO_PREFIX) or request.name in _demos():
            raise Conflict(f"dataset names starting with {DEMO_PREFIX!r} are the shipped demos'; choose another name")
        if (request.content is None) == (request.items is None):
            raise ValidationError(
                "send the dataset as `content` (a JSONL or CSV text) or as `items`, one of the two",
                details={"field": "content", "reason": "one of content, items"},
            )
        items = request.items if request.items is not None else self._read(request)
        if not items:
            raise ValidationError("the dataset has no items", details={"field": "content", "reason": "empty"})
        existing = await self._store.get(request.name)
        if request.append and existing is None:
            raise not_found(request.name)
        if existing is not None and existing.owner != identity.owner and not identity.can(ADMIN):
            raise Conflict(f"dataset {request.name!r} exists and is another key's: choose another name")
        if len(items) + (existing.item_count if existing and request.append else 0) > MAX_ITEMS:
            raise ValidationError(f"a dataset holds at most {MAX_ITEMS} items", details={"field": "items"})
        dataset = Dataset(
            name=request.name,
            kind=dataset_kind(items),
            item_count=len(items),
            source=request.source or f"{request.format} import",
            owner=identity.owner,
            created_at=utc_now(),
        )
        return await self._store.save(dataset, items, append=request.append)

    def _read(self, request: DatasetImport) -> list[DatasetItem]:
        assert request.content is not None
        try:
            return list(to_items(read_rows(request.content, request.format), request.mapping))
        except DatasetError as exc:
            raise ValidationError(str(exc), details={"field": "content", "line": exc.line}) from None

    async def list_datasets(self, identity: Identity) -> list[Dataset]:
        require_permission(identity, READ)
        demos = [dataset for dataset, _ in _demos().values()]
        return sorted(demos + await self._store.list_all(), key=lambda d: d.name)

    async def get(self, identity: Identity, name: str) -> Dataset:
        require_permission(identity, READ)
        if name in _demos():
            return _demos()[name][0]
        dataset = await self._store.get(name)
        if dataset is None:
            raise not_found(name)
        return dataset

    async def items(self, identity: Identity, name: str, limit: int = -1, offset: int = 0) -> list[DatasetItem]:
        """The items in order (`limit` -1: all)."""
        await self.get(identity, name)
        if name in _demos():
            items = _demos()[name][1]
            return list(items[offset:] if limit < 0 else items[offset : offset + limit])
        return await self._store.items(name, limit, offset)

    async def delete(self, identity: Identity, name: str) -> Dataset:
        require_permission(identity, EXECUTE)
        if name in _demos():
            raise Conflict(f"dataset {name!r} is a shipped demo; it cannot be deleted")
        dataset = await self.get(identity, name)
        if dataset.owner != identity.owner and not identity.can(ADMIN):
            raise Conflict(f"dataset {name!r} is another key's; only it or an admin deletes it")
        await self._store.delete(name)
        return dataset
