"""The synthesis workflow: a LangGraph graph that drafts a deal's memo section by section.

- config: the knobs (read from Django settings, defaulting to the environment).
- retrieval: the deal's passages and a BM25 index over them; deal intel figures.
- prompts: the prompt templates of the drafters (served by GET /api/canvas/prompts).
- drafters: the offline deterministic drafter and the optional LLM drafter.
- telemetry: the Redis side of a run (events stream, cancel flag, trace, discourse ring).
- graph: the StateGraph (one drafter per section, fanned out with Send, checkpointed).
- brushes: check passes over the memo (figures against intel, citations, completeness).
"""
