"""LLM evaluation's domain (llm-eval-api.md): prompts and suites with their `{{.name}}`
templates, grader specs and results with pass@k, and model calls. No framework, no I/O."""
