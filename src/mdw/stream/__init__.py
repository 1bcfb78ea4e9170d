"""The vendor's WebSocket aggregates, kept in the warehouse as provisional minute bars.

``decode`` turns frames into bars, ``client`` holds one connection (auth, subscribe, reconnect
forever), ``sink`` writes bars in small batches with ``source = 'stream'``, ``reconcile``
confirms or corrects each settled span over REST, ``live`` tells listeners (the SSE route) what
was stored, and ``runner`` puts them together for ``mdw stream`` and ``mdw serve``.
"""
