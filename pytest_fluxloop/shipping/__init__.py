"""Sending traces to a FluxLoop collector.

* :mod:`.wire`: the batch format (``POST /api/v1/batches``), shared with the collector;
* :mod:`.target`: the collector's URL and token, checked (https, or loopback, or allowed);
* :mod:`.sender`: the background sender (bounded queue, batches, gzip, retries);
* :mod:`.spool`: batches that could not be sent, kept in the results folder;
* :mod:`.push`: sending spooled batches later (``fluxloop collector push``).

Standard library and the bottom modules only (``errors``, ``redact``): the HTTP sink of a
run and ``FluxLoopClient(storage="http")`` in a production app both send through it, and
the SDK loads nothing heavy. Senders hand it plain JSON data, never pydantic objects.
"""
