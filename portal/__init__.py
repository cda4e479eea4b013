"""The reference portal: a small, real CTERA-Portal-compatible server.

It is the embedded default that ``portalfs demo`` mounts, the server that
``portalfs serve`` runs, and the peer every test talks to.  It imports no
client code (``mount``, ``vfs``, ``cache``); it shares only the wire codecs.

Layers: ``portal.store`` (SQLite metadata + immutable content blobs, no HTTP)
under ``portal.http`` (the ASGI application speaking the wire protocols) under
``portal.server`` (hypercorn on trio, TLS, the snapshot scheduler).
"""
