"""Statistical tests on experiments' results (scipy, imported on first use)."""
