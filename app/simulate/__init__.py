"""``rhythm simulate``: simulated people living through a running Rhythm stack, and the books kept on them."""
