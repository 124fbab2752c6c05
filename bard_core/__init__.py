"""BARD core: the method, framework-free (no Prefect, no Ray)."""
