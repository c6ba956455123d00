"""What a runtime image holds, read without running anything in it: the Debian packages
installed, from its dpkg database. Synchronous (docker SDK): call through `engine.call`.

The file is copied out of a container that is created and never started, so no code of
the image runs and no sandbox engine is involved; the container is removed at once."""

from __future__ import annotations

import contextlib
import io
import tarfile

import docker
import docker.errors

from appliance.runtime.container_setup import MANAGED_LABEL

DPKG_STATUS = "/var/lib/dpkg/status"


def installed_packages(client: docker.DockerClient, ref: str) -> dict[str, str]:
    """Package name -> Debian version of every package installed in the image `ref`."""
    container = client.api.create_container(
        ref, command=["/bin/true"], network_disabled=True, labels={MANAGED_LABEL: "true"}
    )["Id"]
    try:
        stream, _ = client.api.get_archive(container, DPKG_STATUS)
        archive = b"".join(stream)
    finally:
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_container(container, force=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.next()
        source = tar.extractfile(member) if member is not None else None
        if source is None:
            return {}
        return parse_dpkg_status(source.read().decode("utf-8", errors="replace"))


def parse_dpkg_status(text: str) -> dict[str, str]:
    """The installed packages of a dpkg status file (stanzas of `Field: value` lines;
    continuation lines start with a space; removed packages keep a stanza too)."""
    packages: dict[str, str] = {}
    for stanza in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line.startswith((" ", "\t"))
        )
        if fields.get("Status", "").endswith(" installed") and "Package" in fields and "Version" in fields:
            packages[fields["Package"]] = fields["Version"]
    return packages
