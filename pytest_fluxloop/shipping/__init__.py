"""Sending traces to a FluxLoop collector: the wire format (:mod:`.wire`), and (later
modules) the background sender, the spool and the push of spooled batches.

Standard library and the bottom modules only: ``FluxLoopClient(storage="http")`` in a
production app uses it, and the SDK loads nothing heavy.
"""
