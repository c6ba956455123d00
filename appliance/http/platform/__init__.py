"""The platform API (platform-api.md); its router and path spaces are in router.py."""
