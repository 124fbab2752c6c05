"""The toy world: reasoning-gym problems, the oracle engine and the toy student tokenizer."""
