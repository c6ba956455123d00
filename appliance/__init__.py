"""appliance: a self-hosted AI evaluation appliance."""

__version__ = "0.1.0"
