"""OpenAI's Responses API: its items (``items``), as responses and conversations keep them."""
