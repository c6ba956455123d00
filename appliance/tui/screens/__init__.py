"""The TUI's screens, one per module; each is one mode of the app (see app.MODES)."""
