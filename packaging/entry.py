"""The frozen binary's entry point: the same `main` as `appliance` and `python -m appliance`."""

from appliance.cli import main

raise SystemExit(main())
