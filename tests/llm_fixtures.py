"""Fixtures for the LLM evaluation tests: a scripted model server on loopback, an appliance
whose models point at it (tests/llm_support.py), and its admin client.

A pytest plugin (tests/conftest.py names it in `pytest_plugins`): a test asks for them by
name, without an import. Each test module gets a model server and an appliance of its own
(module scope); a module that needs more before its appliance starts (the runtime images,
a key file) defines a fixture of the same name that asks for these."""

from __future__ import annotations

import pytest

from tests.llm_servers import ScriptedModelServer
from tests.llm_support import start_llm_server


@pytest.fixture(scope="module")
def model_server():
    server = ScriptedModelServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def model_key_file():
    """The file an Anthropic key is read from, if the module's appliance has one."""
    return None


@pytest.fixture(scope="module")
def llm(request, tmp_path_factory, model_server, model_key_file):
    data_dir = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    server = start_llm_server(data_dir, model_server, key_file=model_key_file)
    yield server
    server.stop()


@pytest.fixture
def scripted(model_server):
    """The model server, answering as it does by default before and after the test."""
    model_server.reset()
    yield model_server
    model_server.reset()
