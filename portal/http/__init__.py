"""The portal's HTTP face: the CTERA wire protocols on bare ASGI (see ``app``)."""
