"""`POST /api/files/upload` and `/api/sandboxes/{id}/files`: a sandbox's files.

The upload is multipart/form-data (`sandbox_id`, `file` (one or more), optional `path`).
Litestar streams it into spooled temporary files; its body limit is the upload router's
own (max_upload_bytes plus room for the form's other parts), not the global
max_body_bytes, and an upload past it is a 413 that names max_upload_bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, Router, delete, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import ClientException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.response import Stream

from appliance.core.clock import iso_z
from appliance.core.errors import PayloadTooLarge, ValidationError
from appliance.core.identity import Identity
from appliance.core.sizes import format_size
from appliance.http.error_docs import errors
from appliance.http.sandbox.sandbox_schemas import FileDeleted, FileList, UploadedBody, UploadResult, file_body
from appliance.services.sandboxes.files import SandboxFileService

# The multipart envelope and the small form fields around the file.
MULTIPART_ALLOWANCE = 64 * 1024


@dataclass
class UploadOperation(Operation):
    """The upload's body, which the handler reads itself (to say what is wrong with it
    in this document's shape), as the OpenAPI document shows it."""

    def __post_init__(self) -> None:
        text = Schema(type=OpenAPIType.STRING)
        binary = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
        form = Schema(
            type=OpenAPIType.OBJECT,
            required=["sandbox_id", "file"],
            properties={
                "sandbox_id": text,
                "file": Schema(one_of=[binary, Schema(type=OpenAPIType.ARRAY, items=binary)]),
                "path": Schema(
                    type=OpenAPIType.STRING,
                    description="where under /sandbox: a directory (ends with /) or the file's new path",
                ),
            },
        )
        self.request_body = RequestBody(required=True, content={"multipart/form-data": OpenAPIMediaType(schema=form)})


@post(
    "/upload",
    operation_class=UploadOperation,
    status_code=201,
    opt={"rate_bucket": "upload", **errors(400, 403, 404, 409, 413)},
    summary="Upload files to a sandbox (multipart: sandbox_id, file, optional path)",
)
async def upload_file(
    request: Request[Any, Any, Any], sandbox_files: SandboxFileService, identity: Identity
) -> UploadResult:
    sandbox_files.may_upload(identity)
    try:
        form = await request.form()
    except RequestEntityTooLarge:
        raise PayloadTooLarge(
            f"the upload is larger than this appliance accepts ({format_size(sandbox_files.max_upload_bytes)}"
            ", setting max_upload_bytes); send a smaller file",
            details={"limit": "max_upload_bytes", "limit_bytes": sandbox_files.max_upload_bytes},
        ) from None
    except (UnicodeDecodeError, LookupError):
        # A part without a filename is a text field: Litestar decodes it in its charset.
        raise ValidationError(
            "a form field without a filename is not text (UTF-8 or its charset); send each file as a part "
            'with a filename (Content-Disposition: form-data; name="file"; filename="...")',
            details={"reason": "bad multipart"},
        ) from None
    except ClientException as exc:
        raise ValidationError(
            f"the body is not valid multipart/form-data ({exc.detail}); send the fields "
            "sandbox_id, file and optionally path",
            details={"reason": "bad multipart"},
        ) from None
    uploads = [value for value in form.getall("file", []) if isinstance(value, UploadFile)]
    try:
        sandbox_id = form.get("sandbox_id")
        if not isinstance(sandbox_id, str) or not sandbox_id.strip():
            raise ValidationError(
                "sandbox_id is required: send it as a multipart form field",
                details={"field": "sandbox_id", "reason": "missing"},
            )
        path = form.get("path")
        if path is not None and not isinstance(path, str):
            raise ValidationError("path must be a text field", details={"field": "path"})
        stored = await sandbox_files.upload(
            identity, sandbox_id.strip(), [(u.filename, u.file) for u in uploads], path or None
        )
    finally:
        for upload in uploads:
            await upload.close()
    return UploadResult(
        files=[UploadedBody(name=f.name, path=f.path, size=f.size, uploaded_at=iso_z(f.uploaded_at)) for f in stored]
    )


def upload_router(max_upload_bytes: int) -> Router:
    """The upload route with its own body limit (the app-wide one is much smaller)."""
    return Router(
        path="/api/files", route_handlers=[upload_file], request_max_body_size=max_upload_bytes + MULTIPART_ALLOWANCE
    )


class SandboxFilesController(Controller):
    path = "/api/sandboxes/{sandbox_id:str}/files"
    tags = ["files"]

    @get("/", summary="List a directory of the sandbox (path, recursive)", opt=errors(403, 404, 409))
    async def list_files(
        self,
        sandbox_files: SandboxFileService,
        identity: Identity,
        sandbox_id: str,
        path: str | None = None,
        recursive: bool = False,
    ) -> FileList:
        listing = await sandbox_files.listing(identity, sandbox_id, path, recursive)
        return FileList(path=listing.path, files=[file_body(e) for e in listing.entries], truncated=listing.truncated)

    @get(
        "/{file_path:path}",
        summary="Download a file (path relative to /sandbox)",
        opt=errors(400, 403, 404, 409),
        responses={
            200: ResponseSpec(
                data_container=bytes,
                media_type="application/octet-stream",
                description="The file's bytes; Content-Type is guessed from its name, X-File-Size is its size",
                generate_examples=False,
            )
        },
    )
    async def download(
        self, sandbox_files: SandboxFileService, identity: Identity, sandbox_id: str, file_path: str
    ) -> Stream:
        download = await sandbox_files.download(identity, sandbox_id, file_path)
        fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in download.name)
        headers = {
            "Content-Disposition": f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(download.name)}",
            # Never let a browser render a sandbox's HTML as this appliance's page.
            "X-Content-Type-Options": "nosniff",
            "X-File-Size": str(download.size),
        }
        return Stream(download.chunks, media_type=download.content_type, headers=headers)

    @delete(
        "/{file_path:path}",
        status_code=200,
        summary="Delete a file or a directory (path relative to /sandbox)",
        opt=errors(400, 403, 404, 409),
    )
    async def delete_file(
        self, sandbox_files: SandboxFileService, identity: Identity, sandbox_id: str, file_path: str
    ) -> FileDeleted:
        shown, kind = await sandbox_files.delete(identity, sandbox_id, file_path)
        return FileDeleted(path=shown, type=kind, message="File deleted successfully")
