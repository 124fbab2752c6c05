"""`ray start ARGS...` for a second node on a loopback-only host (see tests/support/ray_cluster.py).

With RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (which keeps every Ray listener on 127.0.0.1) `ray start --address`
refuses to join a cluster. This lifts only that guard, in this process, and keeps 127.0.0.1 as given
(instead of resolving it to the host's public IP); the raylet and agents it starts read the variable
themselves and stay on loopback.
"""

from __future__ import annotations

import sys

import ray._private.ray_constants as ray_constants
import ray._private.services as services

ray_constants.ENABLE_RAY_CLUSTER = True
services.resolve_ip_for_localhost = lambda host: host

from ray.scripts.scripts import main  # noqa: E402

if __name__ == "__main__":
    sys.argv = ["ray", *sys.argv[1:]]
    main()
