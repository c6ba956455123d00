"""Persistent sandboxes, their files and snapshots."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx

from appliance.client.transport import ApiError, Transport

SANDBOX_ROOT = "/sandbox"


def _relative(path: str) -> str:
    """A path for .../files/{path}: "/sandbox/a/b.txt", "/a/b.txt" and "a/b.txt" are one file."""
    if path == SANDBOX_ROOT or path.startswith(SANDBOX_ROOT + "/"):
        path = path[len(SANDBOX_ROOT) :]
    return quote(path.lstrip("/"), safe="/")


class SandboxesApi(Transport):
    # --- sandboxes --------------------------------------------------------------------

    def create_sandbox(
        self,
        runtime: str | None = None,
        *,
        name: str | None = None,
        template: str | None = None,
        memory_limit: str | int | None = None,
        cpu_limit: float | None = None,
        disk_limit: str | int | None = None,
        network_enabled: bool | None = None,
        allowed_hosts: list[str] | None = None,
        environment: dict[str, str] | None = None,
        engine: str | None = None,
    ) -> Any:
        body: dict[str, Any] = {}
        for key, value in (
            ("name", name),
            ("runtime", runtime),
            ("template", template),
            ("environment", environment),
            ("engine", engine),
        ):
            if value is not None:
                body[key] = value
        resources = {
            k: v
            for k, v in (("memory_limit", memory_limit), ("cpu_limit", cpu_limit), ("disk_limit", disk_limit))
            if v is not None
        }
        if resources:
            body["resources"] = resources
        if network_enabled is not None or allowed_hosts is not None:
            body["network"] = {"enabled": bool(network_enabled), "allowed_hosts": allowed_hosts or []}
        return self.call("POST", "/api/sandboxes", json=body)

    def list_sandboxes(
        self,
        *,
        status: str | None = None,
        runtime: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Any:
        """The documented body ({sandboxes, total, limit, offset}); the X-Pagination-*
        headers are in `list_sandboxes_response`."""
        return self.call("GET", "/api/sandboxes", params=self._list_params(status, runtime, limit, offset))

    def list_sandboxes_response(
        self,
        *,
        status: str | None = None,
        runtime: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> httpx.Response:
        return self.request("GET", "/api/sandboxes", params=self._list_params(status, runtime, limit, offset))

    @staticmethod
    def _list_params(status: str | None, runtime: str | None, limit: int | None, offset: int | None) -> dict[str, Any]:
        return {
            k: v
            for k, v in (("status", status), ("runtime", runtime), ("limit", limit), ("offset", offset))
            if v is not None
        }

    def get_sandbox(self, sandbox_id: str) -> Any:
        return self.call("GET", f"/api/sandboxes/{sandbox_id}")

    def update_sandbox(
        self,
        sandbox_id: str,
        *,
        memory_limit: str | int | None = None,
        cpu_limit: float | None = None,
        disk_limit: str | int | None = None,
        environment: dict[str, str] | None = None,
    ) -> Any:
        body: dict[str, Any] = {}
        resources = {
            k: v
            for k, v in (("memory_limit", memory_limit), ("cpu_limit", cpu_limit), ("disk_limit", disk_limit))
            if v is not None
        }
        if resources:
            body["resources"] = resources
        if environment is not None:
            body["environment"] = environment
        return self.call("PUT", f"/api/sandboxes/{sandbox_id}", json=body)

    def delete_sandbox(self, sandbox_id: str, *, force: bool = False) -> Any:
        params = {"force": "true"} if force else None
        return self.call("DELETE", f"/api/sandboxes/{sandbox_id}", params=params)

    def wait_for_sandbox(
        self, sandbox_id: str, status: str = "running", *, timeout: float = 60.0, interval: float = 0.2
    ) -> Any:
        """Poll until the sandbox has `status`; ApiError-free TimeoutError otherwise. A
        sandbox that ends in "error" while waiting for another status raises at once."""
        deadline = time.monotonic() + timeout
        while True:
            sandbox = self.get_sandbox(sandbox_id)
            if sandbox.status == status:
                return sandbox
            if sandbox.status == "error" and status != "error":
                raise ApiError(409, "SANDBOX_ERROR", f"sandbox {sandbox_id} is in error: {sandbox.status_reason}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"sandbox {sandbox_id} is still {sandbox.status} after {timeout} s")
            time.sleep(interval)

    # --- files ------------------------------------------------------------------------

    def upload_file(
        self, sandbox_id: str, file: str | Path | bytes | BinaryIO, *, name: str | None = None, path: str | None = None
    ) -> Any:
        """Upload a local file (a path), bytes or an open binary file. `name` is the
        file name sent (default: the local file's); `path` where it goes in /sandbox."""
        if isinstance(file, (str, Path)):
            local = Path(file)
            content: Any = local.open("rb")
            name = name or local.name
        elif isinstance(file, bytes):
            content, name = file, name or "upload.bin"
        else:
            content, name = file, name or Path(str(getattr(file, "name", "upload.bin"))).name
        data = {"sandbox_id": sandbox_id}
        if path is not None:
            data["path"] = path
        try:
            return self.call("POST", "/api/files/upload", data=data, files={"file": (name, content)})
        finally:
            if isinstance(file, (str, Path)):
                content.close()

    def list_files(self, sandbox_id: str, path: str | None = None, *, recursive: bool = False) -> list:
        params: dict[str, Any] = {"recursive": "true" if recursive else "false"}
        if path is not None:
            params["path"] = path
        return self.call("GET", f"/api/sandboxes/{sandbox_id}/files", params=params)["files"]

    def download_file(self, sandbox_id: str, path: str) -> bytes:
        return self.request("GET", f"/api/sandboxes/{sandbox_id}/files/{_relative(path)}").content

    def delete_file(self, sandbox_id: str, path: str) -> Any:
        return self.call("DELETE", f"/api/sandboxes/{sandbox_id}/files/{_relative(path)}")

    # --- snapshots --------------------------------------------------------------------

    def create_snapshot(
        self,
        sandbox_id: str,
        name: str | None = None,
        *,
        description: str | None = None,
        type: str | None = None,
        compress: bool | None = None,
        include_memory: bool | None = None,
        tags: dict[str, str] | None = None,
    ) -> Any:
        body = {
            k: v
            for k, v in (
                ("name", name),
                ("description", description),
                ("type", type),
                ("compress", compress),
                ("include_memory", include_memory),
                ("tags", tags),
            )
            if v is not None
        }
        return self.call("POST", f"/api/sandboxes/{sandbox_id}/snapshots", json=body)

    def list_snapshots(self, sandbox_id: str) -> list:
        return self.call("GET", f"/api/sandboxes/{sandbox_id}/snapshots")["snapshots"]

    def wait_for_snapshot(self, sandbox_id: str, snapshot_id: str, *, timeout: float = 60.0) -> Any:
        """Poll until the snapshot is no longer "creating"; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            found = [s for s in self.list_snapshots(sandbox_id) if s.snapshot_id == snapshot_id]
            if found and found[0].status != "creating":
                return found[0]
            if time.monotonic() >= deadline:
                raise TimeoutError(f"snapshot {snapshot_id} still creating after {timeout} s")
            time.sleep(0.1)

    def restore_snapshot(
        self,
        snapshot_id: str,
        target_sandbox_id: str | None = None,
        *,
        include_files: bool | None = None,
        include_memory: bool | None = None,
        preserve_network: bool | None = None,
    ) -> Any:
        body: dict[str, Any] = {}
        if target_sandbox_id is not None:
            body["target_sandbox_id"] = target_sandbox_id
        options = {
            k: v
            for k, v in (
                ("include_files", include_files),
                ("include_memory", include_memory),
                ("preserve_network", preserve_network),
            )
            if v is not None
        }
        if options:
            body["restore_options"] = options
        return self.call("POST", f"/api/snapshots/{snapshot_id}/restore", json=body)

    def delete_snapshot(self, snapshot_id: str) -> Any:
        return self.call("DELETE", f"/api/snapshots/{snapshot_id}")
