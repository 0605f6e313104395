"""The policy backends behind ``app.recommend.decider``: ``embedded`` (the model in-process), ``vllm`` and
``fallback`` (exact Bayes), one interface (``base``)."""
