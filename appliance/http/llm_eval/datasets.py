"""The appliance's addition to llm-eval-api.md: benchmark datasets (docs/llm-eval-api.md).
POST /api/v1/datasets imports one (JSONL or CSV text, or items), GET lists them and
shows one with a page of its items, DELETE removes an imported one."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.params import Parameter

from appliance.core.identity import Identity
from appliance.core.llm.datasets import Dataset
from appliance.core.paging import MAX_OFFSET
from appliance.http.error_docs import errors, example
from appliance.services.llm.datasets import DatasetImport, DatasetItems, DatasetList, DatasetService

IMPORT_EXAMPLE = example(
    "Two GSM8K-style items as JSONL",
    {
        "name": "my-arithmetic",
        "format": "jsonl",
        "content": '{"question": "What is 2 + 3?", "answer": "2 + 3 = 5\\n#### 5"}\n'
        '{"question": "What is 10 - 4?", "answer": "#### 6"}\n',
    },
)


class DatasetController(Controller):
    path = "/api/v1/datasets"
    tags = ["llm evaluation"]

    @post("/", status_code=201, summary="Import a dataset (JSONL or CSV)", opt=errors(403, 404, 409))
    async def import_dataset(
        self, datasets: DatasetService, identity: Identity, data: Annotated[DatasetImport, IMPORT_EXAMPLE]
    ) -> Dataset:
        return await datasets.import_dataset(identity, data)

    @get("/", summary="Datasets: the shipped demos and the imported ones", opt=errors(403))
    async def list_datasets(self, datasets: DatasetService, identity: Identity) -> DatasetList:
        return DatasetList(datasets=await datasets.list_datasets(identity))

    @get("/{name:str}", summary="A dataset and a page of its items", opt=errors(403, 404))
    async def get_dataset(
        self,
        datasets: DatasetService,
        identity: Identity,
        name: str,
        limit: Annotated[int, Parameter(ge=0, le=10_000)] = 100,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
    ) -> DatasetItems:
        dataset = await datasets.get(identity, name)
        return DatasetItems(dataset=dataset, items=await datasets.items(identity, name, limit, offset))

    @delete("/{name:str}", status_code=200, summary="Delete an imported dataset", opt=errors(403, 404, 409))
    async def delete_dataset(self, datasets: DatasetService, identity: Identity, name: str) -> Dataset:
        return await datasets.delete(identity, name)
