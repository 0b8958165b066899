"""The store: Redis with Lua scripts, one per mutating operation, all keys under ``{c:<id>}``."""

from sidecar.store.redis_store import RedisStore

__all__ = ["RedisStore"]
