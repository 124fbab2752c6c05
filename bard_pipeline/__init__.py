"""The orchestration side of BARD: ``infra`` adapts engines, stores and Ray; ``tasks`` glue stages into Prefect
tasks; ``flows`` are the Prefect flows and the ``bard`` command line. The method itself lives in ``bard_core``."""
