"""Distil chain-of-thought reasoning from teacher LLMs into small students: Fine-tune-CoT, tailored multi-round learning and MAPD as composable, resumable stages.

Modules:

- `learn_reason.core.records`: Typed, JSON round-trippable records for what flows between stages, the one JSON-lines reader and appender, and how records show in JupyterLab."""

__version__ = "0.1.0"
