"""The Textual TUI: one app, attached either to the appliance in the same process
(`appliance run`) or to a running daemon over REST and WebSocket (`appliance tui`).

Screens talk to the appliance only through `Backend` (appliance.client for requests, a
`Feed` for live events), so the same screens serve both ways in.
"""
