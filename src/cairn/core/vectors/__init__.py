"""Vector stores (OpenAI's file search) over Cairn's files: the text a file holds (``extract``) and the
chunks of it that are embedded and searched (``chunking``). Both are pure, synchronous CPU work that
knows nothing of tenants, storage or HTTP: the vector store service reads a file's bytes, runs them
here in a worker thread, embeds the chunks and stores them."""
