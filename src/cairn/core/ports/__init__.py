"""The contracts the engine needs from the outside world, one small protocol per role, each in the module
of its role and owned by the engine code that uses it: ``blobs`` (bytes by object id; free-space
reporting is a capability, ``ReportsFreeSpace``), ``staging`` (upload sessions' bytes), ``locks``
(who may append to a session across processes), ``ratelimit``, ``inference`` (model runtimes),
``tokens`` (where a model's tokenizer cuts a text), and the rows, one module per aggregate:
``objects``, ``sessions``, ``keys``, ``models`` (registered models), ``completions`` (stored chat
completions), ``jobs`` (durable background work), and the ``database`` that holds them. Adapters
implement them; only the composer (``cairn.compose``) picks which.

Who validates what: the engine checks keys, sizes, tenancy and cursors before it calls a port.
Ports store bytes and rows, translate their native errors into ``core.errors`` (``Unavailable``
when the backend cannot be reached) and never see HTTP.
"""
