"""Lists of the experiments API (/api/v1): one page (`{data, meta}`), or every item,
following `next_cursor`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from appliance.client.transport import Transport


def list_params(
    filters: Mapping[str, Any] | None = None,
    sort: str | None = None,
    page: int | None = None,
    per_page: int | None = None,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Query parameters of a list: `filters={"status": "active"}` is `filter[status]=active`."""
    params: dict[str, Any] = {f"filter[{name}]": value for name, value in (filters or {}).items()}
    for name, value in (("sort", sort), ("page", page), ("per_page", per_page), ("cursor", cursor)):
        if value is not None:
            params[name] = value
    return params


class ListsApi(Transport):
    def list_page(self, path: str, **params: Any) -> Any:
        """One page: a Record with `data` (the items) and `meta` (total, page,
        per_page, next_cursor, has_more). `params` as `list_params` takes them."""
        return self.call("GET", path, params=list_params(**params))

    def iterate(
        self, path: str, filters: Mapping[str, Any] | None = None, sort: str | None = None, per_page: int = 100
    ) -> Iterator[Any]:
        """Every item of a list, page after page by cursor."""
        cursor = None
        while True:
            found = self.list_page(path, filters=filters, sort=sort, per_page=per_page, cursor=cursor)
            yield from found["data"]
            cursor = found["meta"]["next_cursor"]
            if not cursor:
                return
