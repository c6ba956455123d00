"""WebSocket close codes the appliance's sockets use (RFC 6455, section 7.4.1).

One place for them, so that /ws, /ws/execute and /ws/monitor close the same way. The
client package (appliance.client) does not import the server; it needs none of these.
"""

from __future__ import annotations

# Authentication or permission refused: sent after an `error` message that says why.
POLICY_VIOLATION = 1008
