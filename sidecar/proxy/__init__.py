"""The proxy mode: an OpenAI-compatible endpoint that enforces and meters by itself."""
