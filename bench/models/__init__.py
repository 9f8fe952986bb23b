"""Policy networks used by the harness (transformer for the sequence tasks)."""
from bench.models.transformer import KVCache, TransformerConfig, TransformerPolicy

__all__ = ["KVCache", "TransformerConfig", "TransformerPolicy"]
