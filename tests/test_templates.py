"""`/api/templates`: one template per language, from the runtime image catalogue, with
the real package versions of the built images; and `resolve_template`, which sandboxes
created from a template use."""

from __future__ import annotations

import httpx
import pytest

from appliance.client import ApiError, ApplianceClient
from appliance.core.errors import ValidationError
from appliance.core.languages import LANGUAGES
from appliance.runtime import images
from appliance.runtime.image_contents import parse_dpkg_status
from appliance.services.sandboxes.templates import resolve_template, upstream_version
from tests.support import assert_sandbox_error

SUMMARY_FIELDS = {
    "template_id",
    "name",
    "description",
    "runtime",
    "version",
    "packages",
    "runtime_version",
    "available",
}
DETAIL_FIELDS = SUMMARY_FIELDS | {
    "base_image",
    "environment",
    "files",
    "source_file",
    "run_command",
    "package_versions",
    "image_size",
    "image_created",
}


@pytest.fixture(scope="module")
def client(server):
    with ApplianceClient(server.url, api_key=server.admin_key) as client:
        yield client


def test_list_has_one_available_template_per_language(client):
    templates = client.list_templates()
    assert [t.template_id for t in templates] == [f"basic-{name}" for name in LANGUAGES]
    for template in templates:
        assert set(template) == SUMMARY_FIELDS, template
        language = LANGUAGES[template.runtime]
        assert template.packages == list(images.IMAGE_RECIPES[language.image].packages)
        assert template.version == images.RUNTIME_IMAGE_VERSION
        assert template.available is True  # the `server` fixture builds every image
        assert template.runtime_version and template.runtime_version[0].isdigit(), template
        assert template.runtime_version in template.description and "bookworm" in template.description
    by_runtime = {t.runtime: t for t in templates}
    assert by_runtime["python"].runtime_version.startswith("3.")
    assert by_runtime["rust"].packages[0] == "rustc"
    assert by_runtime["go"].runtime_version.startswith("1.")
    assert by_runtime["java"].runtime_version.split(".")[0].isdigit()


@pytest.mark.parametrize("language", ["python", "rust", "go", "java"])
def test_details_come_from_the_image_and_its_packages(client, language):
    details = client.get_template(f"basic-{language}")
    assert set(details) == DETAIL_FIELDS, details
    lang = LANGUAGES[language]
    assert details.base_image == images.image_ref(lang.image)
    assert details.environment == images.image_environment(lang.image)
    assert details.environment["LANG"] == "C.UTF-8"
    assert details.files == [{"name": lang.source_file, "content": details.files[0]["content"]}]
    assert "Hello, World!" in details.files[0]["content"]
    assert details.source_file == lang.source_file and details.run_command == lang.run
    assert details.image_size > 10_000_000
    assert details.image_created.endswith("Z")
    # The Debian versions of the recipe's packages, as installed in the image.
    for package in images.IMAGE_RECIPES[lang.image].packages:
        assert details.package_versions[package][0].isdigit(), details.package_versions
    assert details.runtime_version in {upstream_version(v) for v in details.package_versions.values()}


def test_go_template_environment_points_the_toolchain_at_the_work_dir(client):
    environment = client.get_template("basic-go").environment
    assert environment["GOCACHE"].startswith("/work/") and environment["GOTMPDIR"] == "/work"
    assert environment["GOPROXY"] == "off"


def test_unknown_template_is_a_404_in_the_sandbox_error_shape(server, client):
    with pytest.raises(ApiError) as raised:
        client.get_template("basic-cobol")
    error = raised.value
    assert error.status_code == 404 and error.code == "RESOURCE_NOT_FOUND"
    assert error.request_id.startswith("req_")
    assert "basic-python" in error.message and error.details["template_id"] == "basic-cobol"
    with server.admin() as http:
        assert_sandbox_error(http.get("/api/templates/nope"), 404, "RESOURCE_NOT_FOUND", "no template", "basic-java")


def test_anonymous_callers_get_401_and_any_key_may_read(server, client):
    for path in ("/api/templates", "/api/templates/basic-python"):
        assert_sandbox_error(httpx.get(server.url + path), 401, "AUTHENTICATION_REQUIRED", "X-API-Key")
    for permissions in (["sandbox_read"], ["execute"], ["read"]):
        created = client.create_api_key(f"templates-{permissions[0]}", permissions)
        with ApplianceClient(server.url, api_key=created.api_key) as limited:
            assert len(limited.list_templates()) == len(LANGUAGES)
            assert limited.get_template("basic-rust").runtime == "rust"


def test_without_a_docker_engine_the_catalogue_still_lists(fresh_server, tmp_path):
    server = fresh_server(env={"APPLIANCE_DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    with ApplianceClient(server.url, api_key=server.admin_key) as client:
        templates = client.list_templates()
        assert [t.template_id for t in templates] == [f"basic-{name}" for name in LANGUAGES]
        assert {(t.available, t.runtime_version) for t in templates} == {(False, None)}
        assert "not built" in templates[0].description
        details = client.get_template("basic-go")
        assert (details.image_size, details.image_created, details.package_versions) == (None, None, {})
        assert details.environment["GOPROXY"] == "off"  # from the recipe, engine or not


# --- resolve_template: what a sandbox made from a template runs -------------------------


def test_resolve_by_template_id_and_by_runtime():
    java = resolve_template("basic-java")
    assert (java.template_id, java.language, java.image) == ("basic-java", "java", images.image_ref("java"))
    assert java.files[0].name == "Main.java"
    # sandbox-api.md's create request: "runtime": "python", "template": "basic".
    assert resolve_template("basic", "python").template_id == "basic-python"
    assert resolve_template(None, "nodejs").language == "javascript"  # aliases count
    assert resolve_template("basic-go", "golang").environment["GOPROXY"] == "off"
    assert resolve_template("basic-bash").image == images.image_ref("python")


@pytest.mark.parametrize(
    "template, runtime, field, words",
    [
        ("basic-cobol", None, "template", "unknown template"),
        ("basic", "cobol", "runtime", "unknown runtime"),
        ("basic", None, "runtime", "say which runtime"),
        (None, None, "runtime", "say which runtime"),
        ("basic-java", "python", "runtime", "runs java, not python"),
    ],
)
def test_resolve_refuses_what_it_cannot_run(template, runtime, field, words):
    with pytest.raises(ValidationError) as raised:
        resolve_template(template, runtime)
    assert raised.value.details["field"] == field
    assert words in str(raised.value)


def test_upstream_version_and_dpkg_status_parsing():
    assert upstream_version("2:1.19.8-2") == "1.19.8"
    assert upstream_version("17.0.19+10-1~deb12u2") == "17.0.19"
    assert upstream_version("18.20.4+dfsg-1~deb12u2") == "18.20.4"
    assert upstream_version("4:12.2.0-3") == "12.2.0"
    assert upstream_version("1.0") == "1.0"
    status = (
        "Package: a\nStatus: install ok installed\nVersion: 1.2-3\nDescription: x\n more: text\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nVersion: 9\n\n"
        "Package: b\nStatus: install ok installed\nVersion: 2:4.5\n"
    )
    assert parse_dpkg_status(status) == {"a": "1.2-3", "b": "2:4.5"}
