"""A local Monaco: the same REST and WebSocket as `adapters.monaco.wire` describes, over real
sockets, with a catalog tape replayed as the market (`exchange`) and auth, rate limits and fault
switches in front of it (`server`). `flashmm monaco-local` runs it; tests run it in a thread."""
