"""The realtime gateway: websocket fan-out of committed changes, with resume (docs/realtime.md).

Other modules and arq workers only need ``realtime.publish.publish`` (or ``Publisher``).
"""
