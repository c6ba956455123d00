"""Files in a persistent sandbox (sandbox-api.md "File Management API") through the
Python client: upload, list, download, delete, and the confinement that keeps every one
of them inside the sandbox's files directory whatever the sandbox plants there."""

from __future__ import annotations

import threading

import httpx
import pytest

from appliance.client import ApplianceClient
from tests.sandbox_support import Sandboxes, remove_sandbox_containers, sandbox_exec, user_client
from tests.support import expect_api_error as expect_error


@pytest.fixture
def sandbox_id(admin):
    tracker = Sandboxes(admin)
    yield tracker.create().sandbox_id
    tracker.cleanup()


def names(entries) -> list[str]:
    return [e.path for e in entries]


def test_upload_list_download_delete(admin, sandbox_id):
    uploaded = admin.upload_file(sandbox_id, b"print('hi')\n", name="script.py")
    (one,) = uploaded.files
    assert one.name == "script.py" and one.path == "/sandbox/script.py" and one.size == 12
    assert one.uploaded_at.endswith("Z")
    admin.upload_file(sandbox_id, b'{"a": 1}', name="in.json", path="/sandbox/data/nested/")
    admin.upload_file(sandbox_id, b"renamed", name="local.txt", path="data/renamed.txt")
    admin.upload_file(sandbox_id, b"into an existing dir", name="x.bin", path="/sandbox/data")

    top = admin.list_files(sandbox_id)
    assert names(top) == ["/sandbox/data", "/sandbox/script.py"]
    data_dir = next(e for e in top if e.name == "data")
    assert data_dir.type == "directory" and "size" not in data_dir and data_dir.created_at.endswith("Z")
    script = next(e for e in top if e.name == "script.py")
    assert script.type == "file" and script.size == 12 and script.modified_at.endswith("Z")
    assert names(admin.list_files(sandbox_id, "/sandbox/data", recursive=True)) == [
        "/sandbox/data/nested",
        "/sandbox/data/nested/in.json",
        "/sandbox/data/renamed.txt",
        "/sandbox/data/x.bin",
    ]
    assert names(admin.list_files(sandbox_id, recursive=True))[0] == "/sandbox/data"
    assert names(admin.list_files(sandbox_id, "data/nested")) == ["/sandbox/data/nested/in.json"]

    response = admin.request("GET", f"/api/sandboxes/{sandbox_id}/files/data/nested/in.json")
    assert response.content == b'{"a": 1}' and response.headers["content-type"].startswith("application/json")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-disposition"].startswith('attachment; filename="in.json"')
    assert (
        admin.request("GET", f"/api/sandboxes/{sandbox_id}/files/script.py")
        .headers["content-type"]
        .startswith("text/x-python")
    )
    assert (
        admin.request("GET", f"/api/sandboxes/{sandbox_id}/files/data/x.bin").headers["content-type"]
        == "application/octet-stream"
    )
    assert admin.download_file(sandbox_id, "/sandbox/data/renamed.txt") == b"renamed"

    # Replacing a file keeps one file; an empty file is a file.
    admin.upload_file(sandbox_id, b"", name="script.py")
    assert admin.download_file(sandbox_id, "script.py") == b""

    assert admin.delete_file(sandbox_id, "/sandbox/script.py") == {
        "path": "/sandbox/script.py",
        "type": "file",
        "message": "File deleted successfully",
    }
    assert admin.delete_file(sandbox_id, "data").type == "directory"  # with everything in it
    assert admin.list_files(sandbox_id, recursive=True) == []
    expect_error(lambda: admin.download_file(sandbox_id, "script.py"), 404, "RESOURCE_NOT_FOUND", "script.py")
    expect_error(lambda: admin.delete_file(sandbox_id, "script.py"), 404, "RESOURCE_NOT_FOUND")
    expect_error(lambda: admin.list_files(sandbox_id, "nowhere"), 404, "RESOURCE_NOT_FOUND")
    assert admin.get_sandbox(sandbox_id).file_count == 0


def test_files_made_inside_the_sandbox_are_visible_and_uploads_writable_inside(admin, sandbox_id, docker_client):
    admin.upload_file(sandbox_id, b"from outside", name="in.txt", path="/sandbox/dir/")
    assert (
        sandbox_exec(
            docker_client,
            sandbox_id,
            "cat dir/in.txt && echo more >> dir/in.txt && mkdir -p out && echo result > out/r.txt && echo ok",
        )
        == "from outsideok\n"
    )
    assert admin.download_file(sandbox_id, "dir/in.txt") == b"from outsidemore\n"
    assert admin.download_file(sandbox_id, "out/r.txt") == b"result\n"


@pytest.mark.parametrize(
    "path,words",
    [
        ("../../etc/", ["'..'"]),
        ("/etc/", ["outside", "/sandbox"]),
        ("/sandbox/../etc/", ["'..'"]),
        ("a\x00b/", ["NUL"]),
        ("/sandboxes/x/", ["outside"]),
    ],
)
def test_upload_paths_that_leave_the_sandbox_are_refused(admin, sandbox_id, path, words):
    expect_error(
        lambda: admin.upload_file(sandbox_id, b"evil", name="passwd", path=path), 400, "VALIDATION_ERROR", *words
    )
    assert admin.list_files(sandbox_id, recursive=True) == []


@pytest.mark.parametrize("name", ["../passwd", "..", "a/b", "a\\b"])
def test_upload_file_names_with_directories_are_refused(admin, sandbox_id, name):
    expect_error(lambda: admin.upload_file(sandbox_id, b"evil", name=name), 400, "VALIDATION_ERROR")
    assert admin.list_files(sandbox_id, recursive=True) == []


def test_reads_and_deletes_that_leave_the_sandbox_are_refused(admin, sandbox_id, sandbox_server):
    base = f"/api/sandboxes/{sandbox_id}/files"
    for raw in ("/%2e%2e/%2e%2e/etc/passwd", "/..%2F..%2Fetc%2Fpasswd", "//etc/passwd", "/a%00b"):
        for method in ("GET", "DELETE"):
            response = admin.http.request(method, base + raw)
            assert response.status_code in (400, 404), (method, raw, response.text)
            assert b"root:" not in response.content
    for path in ("../..", "/etc", "/sandbox/../.."):
        expect_error(lambda path=path: admin.list_files(sandbox_id, path), 400, "VALIDATION_ERROR")
    response = admin.http.delete(base + "/%2e")
    assert response.status_code == 400 and "cannot be deleted" in response.json()["error"]["message"]
    assert (sandbox_server.data_dir / "admin.key").exists()


def test_links_planted_by_the_sandbox_are_never_followed(admin, sandbox_id, sandbox_server, docker_client, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("host secret\n")
    victim.chmod(0o644)
    host_data = sandbox_server.data_dir  # an absolute host path: inside the container it means nothing
    sandbox_exec(
        docker_client,
        sandbox_id,
        f"""
        ln -s /etc/passwd passwd-link
        ln -s {host_data} hostlink
        ln -s /etc etcdir
        ln -s {victim} target.txt
        mkdir real && echo safe > real/f.txt
        mkfifo fifo
    """,
    )
    listed = {e.name: e.type for e in admin.list_files(sandbox_id)}
    assert listed == {
        "etcdir": "symlink",
        "fifo": "other",
        "hostlink": "symlink",
        "passwd-link": "symlink",
        "real": "directory",
        "target.txt": "symlink",
    }
    # Recursive listings do not descend into links.
    assert names(admin.list_files(sandbox_id, recursive=True)) == [
        "/sandbox/etcdir",
        "/sandbox/fifo",
        "/sandbox/hostlink",
        "/sandbox/passwd-link",
        "/sandbox/real",
        "/sandbox/real/f.txt",
        "/sandbox/target.txt",
    ]

    for path in ("passwd-link", "etcdir/passwd", "hostlink/admin.key", "hostlink/appliance.db", "target.txt"):
        error = expect_error(
            lambda path=path: admin.download_file(sandbox_id, path), 400, "VALIDATION_ERROR", "symbolic link"
        )
        assert error.details["reason"] == "symbolic link"
    expect_error(lambda: admin.download_file(sandbox_id, "fifo"), 400, "VALIDATION_ERROR", "not a regular file")
    for path in ("hostlink", "etcdir"):
        expect_error(lambda path=path: admin.list_files(sandbox_id, path), 400, "VALIDATION_ERROR", "symbolic link")

    # Writes through a linked directory are refused; a link at the target is replaced, not written through.
    expect_error(
        lambda: admin.upload_file(sandbox_id, b"pwned", name="evil.txt", path="hostlink/"),
        400,
        "VALIDATION_ERROR",
        "symbolic link",
    )
    expect_error(
        lambda: admin.upload_file(sandbox_id, b"pwned", name="x", path="/sandbox/etcdir/x"), 400, "VALIDATION_ERROR"
    )
    assert not (host_data / "evil.txt").exists()
    admin.upload_file(sandbox_id, b"replaced", name="target.txt")
    assert victim.read_text() == "host secret\n"
    assert admin.download_file(sandbox_id, "target.txt") == b"replaced"

    # Deleting through a link is refused; deleting a link removes the link only.
    expect_error(lambda: admin.delete_file(sandbox_id, "hostlink/admin.key"), 400, "VALIDATION_ERROR")
    assert (host_data / "admin.key").exists()
    assert admin.delete_file(sandbox_id, "hostlink").type == "symlink"
    assert admin.delete_file(sandbox_id, "etcdir").type == "symlink"
    assert (host_data / "admin.key").exists() and victim.exists()
    # Sizes count regular files only (the links' targets are not counted).
    assert admin.get_sandbox(sandbox_id).resources.disk_used_bytes == len(b"safe\n") + len(b"replaced")


@pytest.mark.slow
def test_a_directory_swapped_for_a_link_mid_request_never_leaks(admin, sandbox_id, docker_client):
    """The sandbox keeps swapping dir/ between a real directory and a link to /etc while
    files are read and listed: each answer is the real file or a refusal, never /etc."""
    sandbox_exec(docker_client, sandbox_id, "mkdir d && echo SAFE > d/passwd && echo SAFE > d/shadow")
    sandbox_exec(
        docker_client,
        sandbox_id,
        [
            "sh",
            "-c",
            "end=$(( $(date +%s) + 20 )); while [ $(date +%s) -lt $end ]; do "
            "mv d d.real; ln -s /etc d; rm d; mv d.real d; done",
        ],
        detach=True,
    )
    outcomes: dict[str, int] = {}
    for _ in range(150):
        response = admin.http.get(f"/api/sandboxes/{sandbox_id}/files/d/passwd")
        assert b"root:" not in response.content, response.content[:200]
        if response.status_code == 200:
            assert response.content == b"SAFE\n"
        else:
            assert response.status_code in (400, 404, 409), response.text
        listing = admin.http.get(f"/api/sandboxes/{sandbox_id}/files", params={"path": "d"})
        assert listing.status_code in (200, 400, 404, 409), listing.text
        if listing.status_code == 200:
            assert {f["name"] for f in listing.json()["files"]} <= {"passwd", "shadow"}
        outcomes[str(response.status_code)] = outcomes.get(str(response.status_code), 0) + 1
    # Both happened: real reads, and refusals while d was a link or missing.
    assert outcomes.get("200", 0) > 0 and set(outcomes) - {"200"}, outcomes


def test_upload_form_errors(admin, sandbox_id, sandbox_server):
    http = admin.http
    response = http.post("/api/files/upload", data={"sandbox_id": sandbox_id})
    assert response.status_code == 400 and "file" in response.json()["error"]["message"]
    response = http.post("/api/files/upload", files={"file": ("a.txt", b"x")})
    assert response.status_code == 400 and response.json()["error"]["details"]["field"] == "sandbox_id"
    response = http.post("/api/files/upload", json={"sandbox_id": sandbox_id})
    assert response.status_code == 400
    expect_error(lambda: admin.upload_file("sb_000000000000", b"x", name="a.txt"), 404, "RESOURCE_NOT_FOUND")
    with user_client(sandbox_server, admin, permissions=["sandbox_read"], owner="admin") as reader:
        expect_error(lambda: reader.upload_file(sandbox_id, b"x", name="a.txt"), 403, "INSUFFICIENT_PERMISSIONS")
        expect_error(lambda: reader.delete_file(sandbox_id, "a.txt"), 403, "INSUFFICIENT_PERMISSIONS")
        assert reader.list_files(sandbox_id) == []


def test_size_limits_and_the_upload_rate_bucket(fresh_server, docker_client):
    server = fresh_server(env={"APPLIANCE_MAX_UPLOAD_BYTES": "20000", "APPLIANCE_WARM_POOL_MIN_IDLE": "0"})
    try:
        with ApplianceClient(server.url, api_key=server.admin_key) as admin:
            sandbox_id = Sandboxes(admin).create(disk_limit="30K").sandbox_id
            first = admin.http.post(
                "/api/files/upload", data={"sandbox_id": sandbox_id}, files={"file": ("a.bin", b"a" * 15000)}
            )
            assert first.status_code == 201, first.text
            assert first.headers["x-ratelimit-limit"] == "10"  # the upload bucket, 10 a minute
            assert admin.http.get("/api/sandboxes").headers["x-ratelimit-limit"] == "100"

            error = expect_error(
                lambda: admin.upload_file(sandbox_id, b"b" * 25000, name="b.bin"),
                413,
                "RESOURCE_LIMIT_EXCEEDED",
                "max_upload_bytes",
            )
            assert error.details["limit"] == "max_upload_bytes"
            # Far past the limit: refused while the body is read, with the same words.
            expect_error(
                lambda: admin.upload_file(sandbox_id, b"c" * 200_000, name="c.bin"),
                413,
                "RESOURCE_LIMIT_EXCEEDED",
                "max_upload_bytes",
            )
            error = expect_error(
                lambda: admin.upload_file(sandbox_id, b"d" * 16000, name="d.bin"),
                413,
                "RESOURCE_LIMIT_EXCEEDED",
                "disk_limit",
                "30K",
            )
            assert error.details == {"limit": "disk_limit", "limit_bytes": 30 * 1024, "disk_used": 15000}
            assert [f.name for f in admin.list_files(sandbox_id)] == ["a.bin"]  # nothing written
            # Replacing a file frees what it took.
            admin.upload_file(sandbox_id, b"e" * 19000, name="a.bin")
            assert admin.get_sandbox(sandbox_id).resources.disk_used_bytes == 19000

            # Five uploads so far: the bucket runs out within ten more, or within twenty if
            # the clock minute turns meanwhile (the windows renew on the minute).
            answers = []
            while len(answers) < 30 and not (answers and answers[-1].status_code == 429):
                answers.append(
                    admin.http.post(
                        "/api/files/upload", data={"sandbox_id": sandbox_id}, files={"file": ("r.txt", b"r")}
                    )
                )
            *allowed, refused = answers
            assert refused.status_code == 429 and refused.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
            assert allowed and {a.status_code for a in allowed} == {201}, [a.status_code for a in answers]
            # The last allowed one used up the window the refusal is in.
            last = allowed[-1].headers
            assert last["x-ratelimit-remaining"] == "0", [a.headers.get("x-ratelimit-remaining") for a in answers]
            assert last["x-ratelimit-reset"] == refused.headers["x-ratelimit-reset"]
            assert admin.http.get(f"/api/sandboxes/{sandbox_id}").status_code == 200  # other buckets unaffected
            admin.delete_sandbox(sandbox_id, force=True)
    finally:
        server.stop()
        remove_sandbox_containers(docker_client, server.data_dir)


def test_concurrent_uploads_respect_the_disk_limit(admin):
    tracker = Sandboxes(admin)
    try:
        sandbox_id = tracker.create(disk_limit="100K").sandbox_id
        results: list[int] = []

        def send(i: int) -> None:
            with httpx.Client(base_url=admin.base_url, headers={"X-API-Key": admin.api_key}, timeout=60) as http:
                results.append(
                    http.post(
                        "/api/files/upload",
                        data={"sandbox_id": sandbox_id},
                        files={"file": (f"f{i}.bin", b"z" * 30_000)},
                    ).status_code
                )

        threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == [201, 201, 201, 413, 413, 413], results
        assert admin.get_sandbox(sandbox_id).resources.disk_used_bytes == 90_000
    finally:
        tracker.cleanup()
