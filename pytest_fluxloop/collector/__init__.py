"""``fluxloop collector serve``: the service that stores traces sent from many machines.

Built on an ASGI framework and server (the optional extra ``collector``); nothing here is
imported by a run that does not serve.
"""
