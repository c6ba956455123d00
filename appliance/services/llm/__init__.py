"""LLM evaluation (llm-eval-api.md): model calls through providers, prompts and suites
from YAML, graders, and the runs of evaluations and suites.

    endpoints.py   a registry entry as a server to call (provider, base URL, limits)
    keys.py        provider keys from the environment or a 0600 file
    limits.py      per server: calls at once, calls per minute, pauses after a 429
    calls.py       ModelCalls: the cache, limits, retries and telemetry around a call
    providers/     the wire protocols: OpenAI-style, Anthropic Messages, Ollama
    library.py     prompts and suites as versioned YAML files
    promptfoo.py   a promptfoo config as prompts and a suite
    choice.py      which model a request runs on
    graders/       the graders, one module per family
    sandboxed.py   programs of the code and python graders, run as batches
    evaluate.py    LlmEvaluationService: evaluate and suite runs
    optimize.py    PromptOptimizer: a judge model improves a template, each candidate a suite run
    optimize_judge.py  what the optimiser asks its judge, and how the answer is read
    telemetry.py   where model calls are reported
"""
