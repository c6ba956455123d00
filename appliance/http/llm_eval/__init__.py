"""llm-eval-api.md: prompt evaluation, suites, prompts (and, with issue 19, the
leaderboard, benchmarks and optimisation)."""
