"""Operations: request ids, metrics, traces, logs and health (docs/operations.md)."""
