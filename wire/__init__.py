"""Codecs for the portal wire protocols, shared by the reference portal and the clients.

Nothing here performs I/O or knows about either side: both ``portal`` and
``vfs.backends`` import from here, and ``wire`` imports neither.
"""
