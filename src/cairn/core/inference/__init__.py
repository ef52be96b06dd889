"""Inference: which models exist for a tenant (``catalog``) and how a request reaches the runtime that
serves one (``router``), with the OpenAI contract enforced on runtimes that do not keep it themselves
(``tool_calls``). No HTTP here: the inference face validates requests and renders what this yields."""
