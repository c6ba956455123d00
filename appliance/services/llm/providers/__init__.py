"""The wire protocols, by the `Wire` an endpoint speaks."""

from __future__ import annotations

from appliance.services.llm.endpoints import Wire
from appliance.services.llm.providers.anthropic import AnthropicMessages
from appliance.services.llm.providers.base import Provider
from appliance.services.llm.providers.ollama import OllamaNative
from appliance.services.llm.providers.openai import OpenAICompatible

PROVIDERS: dict[Wire, Provider] = {
    Wire.OPENAI_CHAT: OpenAICompatible("chat"),
    Wire.OPENAI_COMPLETIONS: OpenAICompatible("completions"),
    Wire.ANTHROPIC: AnthropicMessages(),
    Wire.OLLAMA_CHAT: OllamaNative("chat"),
    Wire.OLLAMA_GENERATE: OllamaNative("generate"),
}


def provider_for(wire: Wire) -> Provider:
    return PROVIDERS[wire]
